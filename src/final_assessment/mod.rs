//! The final assessment (slutbedömning) and the certificates (intyg) it leads to.
//!
//! `http.rs` holds the endpoints, `model.rs` the types, `read.rs` the reads,
//! `service.rs` creating, changing and signing, `certificates.rs` the certificates:
//! `forms.rs` which forms a regulation leads to, `cert_signers.rs` who fills each
//! signature line, `cert_delmal.rs` the delmål certificate per supervisor,
//! `cert_service.rs` the service certificates, `cert_activities.rs` the training-activity
//! and STa3 certificates, `application.rs` the application summary (the certificates an
//! application encloses: which exist, which are signed, which are missing).

pub mod application;
pub mod cert_activities;
pub mod cert_delmal;
pub mod cert_service;
pub mod cert_signers;
pub mod certificates;
pub mod forms;
pub mod http;
pub mod model;
pub mod read;
pub mod service;

pub use http::routes;
