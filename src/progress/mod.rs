//! Progress: per delmål and checklist item, pace against time served, the cohort overview
//! for directors, and charts of both for a frontend to embed.
//!
//! `http.rs` holds the endpoints.

pub mod chart;
pub mod cohort;
pub mod evaluation;
pub mod http;
pub mod inputs;
pub mod model;
pub mod prerequisites;
pub mod reminders;
pub mod service;
pub mod supervision_flags;

pub use http::routes;
