//! The final assessment (slutbedömning) and the certificates (intyg) it leads to.
//!
//! `http.rs` holds the endpoints.

pub mod certificates;
pub mod http;
pub mod service;

pub use http::routes;
