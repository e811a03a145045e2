//! Curriculum: the regulation catalogue (delmål) and programme templates.
//!
//! `http.rs` holds the endpoints.

pub mod catalogue;
pub mod http;
pub mod templates;

pub use http::routes;
