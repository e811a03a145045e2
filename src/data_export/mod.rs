//! The personal data export (GDPR Art. 15 and 20, issue 17): `GET /me/export`, everything
//! the service holds about the caller as one streamed archive.
//!
//! A feature of its own, above the ones it reads (accounts, enrolment, portfolio, final
//! assessment): they never need it, so it cannot sit inside any of them (nor in
//! `privacy`, which portfolio uses for its guards).
//!
//! - `gather`: what the archive holds, read in one transaction, never a secret.
//! - `archive`: the tar.gz, written while it is sent.
//! - `http`: the route: recent second factor, rate limit, audit.

pub mod archive;
pub mod gather;
pub mod http;
