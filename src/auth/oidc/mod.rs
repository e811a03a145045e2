//! Sign-in with a Swedish e-ID through the region's OpenID Connect provider (its
//! identity broker for SITHS, Freja eID or BankID), beside e-mail and password.
//!
//! A person links the e-ID to their account once, after a normal login and a step-up;
//! the link is by the provider's (issuer, subject), never by e-mail. Then they sign in
//! with it. Whether that sign-in is complete by itself or is followed by the account's
//! second factor is the provider's setting (`OIDC_COUNTS_AS_SECOND_FACTOR`, off by
//! default; see docs/oidc.md).
//!
//! Where things are: `provider` (discovery, keys, the authorization URL, the code
//! exchange and the ID token's verification, through the `openidconnect` crate),
//! `flows` (started attempts, in the database, single use), `links` (accounts' links,
//! audited), `http` (handlers).

pub mod flows;
pub mod http;
pub mod links;
pub mod provider;
