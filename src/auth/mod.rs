//! Authentication: login with password and a second factor, sessions, link tokens.

pub mod client_tokens;
pub mod crypto;
pub mod handlers;
pub mod principal;
pub mod ratelimit;
pub mod service;
pub mod step_up;
