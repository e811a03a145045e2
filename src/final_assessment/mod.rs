//! The final assessment (slutbedömning) and the certificates (intyg) it leads to.
//!
//! `http.rs` holds the endpoints, `model.rs` the types, `read.rs` the reads,
//! `service.rs` creating, changing and signing, `certificates.rs` the certificates.

pub mod certificates;
pub mod http;
pub mod model;
pub mod read;
pub mod service;

pub use http::routes;
