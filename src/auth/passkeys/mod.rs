//! Passkeys (WebAuthn, issue 15): several per user, registered under `/me/passkeys`
//! after step-up; each answers the second-factor step of a login, and signs in without
//! a password (the phone sends the e-mail address, the passkey proves the rest).
//!
//! Where things are: `relying_party` (the RP id and origins, from the configuration),
//! `ceremonies` (a ceremony's state, server-side, single use, short-lived), `store`
//! (the registered passkeys: register, list, rename, revoke), `assertion` (checking an
//! assertion: counter, revocation, the audit of a cloned authenticator).
//!
//! Every ceremony asks for user verification (webauthn-rs's passkey ceremonies always
//! do, and refuse an answer without the UV flag): a passkey session is a session with a
//! fresh second factor, good for step-up and for signing records.

pub mod assertion;
pub mod ceremonies;
pub mod relying_party;
pub mod store;

/// The second-factor method a passkey session records (`sessions.second_factor`, and
/// the signature method of what it signs).
pub const PASSKEY_METHOD: &str = "passkey";
