//! The HTTP handlers of authentication: `sign_in` for `/auth/*` (password, second
//! factor, tokens, mailed links), `me` for the caller's own security settings under
//! `/me` (all behind step-up), `passkeys` for both of these with a passkey. All three
//! are re-exported here for the route table.

mod me;
mod passkeys;
mod sign_in;

pub use me::*;
pub use passkeys::*;
pub use sign_in::*;
