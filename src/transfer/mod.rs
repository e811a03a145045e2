//! A portfolio that moves with the doctor (issue 17, docs/transfer.md): one service
//! exports an enrolment as a signed transfer bundle, another that trusts its key imports
//! it, keeping every imported record read-only with its provenance.
//!
//! - `bundle`: the format, what goes in it (export), and its verification.
//! - `trust`: the services (and keys) a region accepts bundles from.
//! - `import`: creating the enrolment from a verified bundle, with the template it follows.
//! - `records`: each record of the bundle written here, with its provenance.
//! - `plan`: the sending enrolment's placements, leave, extent and credited service as
//!   the new enrolment's own, so time served counts them.
//! - `supervisors`: who supervised there (main and placement supervisors, with their
//!   periods), as provenance facts.
//!
//! The provenance of imported records, and the guard that keeps them read-only, are in
//! `portfolio::transferred` (the portfolio, progress and the dossier show them).

pub mod bundle;
pub mod http;
pub mod import;
mod plan;
mod records;
mod supervisors;
pub mod trust;

pub use http::routes;
