//! The HTTP handlers of authentication: `sign_in` for `/auth/*` (password, second
//! factor, tokens, mailed links), `me` for the caller's own security settings under
//! `/me` (all behind step-up). Both are re-exported here for the route table.

mod me;
mod sign_in;

pub use me::*;
pub use sign_in::*;
