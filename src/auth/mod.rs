//! Authentication: login with password and a second factor, sessions, link tokens.
//!
//! Where things are: `http` (handlers), `login` (password step), `challenges` (the
//! sign-in step after the password), `mfa` (answering it with a second factor),
//! `email_codes`, `totp`, `recovery_codes`, `devices` (remembered devices), `sessions`
//! (sessions and refresh tokens), `link_tokens` (password reset, e-mail verification),
//! `step_up` (re-authentication for security changes), `credentials`, `validate` (what
//! people type into account fields), `ratelimit`, `crypto`, and `principal` (who is
//! calling), `roles` (role grants), `client_tokens` (API clients' tokens, scopes and
//! the routes they may call), `oidc` (sign-in with a Swedish e-ID over OpenID Connect),
//! `passkeys` (WebAuthn: registration, second factor and passwordless sign-in).

pub mod challenges;
pub mod client_tokens;
pub mod credentials;
pub mod crypto;
pub mod devices;
pub mod email_codes;
pub mod http;
pub mod link_tokens;
pub mod login;
pub mod mfa;
pub mod oidc;
pub mod passkeys;
pub mod principal;
pub mod ratelimit;
pub mod recovery_codes;
pub mod roles;
pub mod sessions;
pub mod step_up;
pub mod totp;
pub mod validate;

/// What other features use of authentication, under the path they have always used.
pub mod service {
    pub use super::challenges::{ChallengePurpose, CHALLENGE_MAX_ATTEMPTS};
    pub use super::credentials::{credentials_by_email, credentials_by_id, Credentials};
    pub use super::email_codes::mask_email;
    pub use super::mfa::{check_in_person, MfaMethod, SecondFactor};
    pub use super::ratelimit::{login_account_key, login_address_key, mail_account_key, mfa_key};
    pub use super::sessions::{create_session, IssuedSession};
    pub use super::validate::{check_password, normalize_email, valid_email, MIN_PASSWORD_CHARS};
    pub use crate::http::ClientInfo;
}
