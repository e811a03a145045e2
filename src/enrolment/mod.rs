//! Enrolment: a trainee's training plan (placements, leave, assignments, time served,
//! credited service, study plan, history).
//!
//! - `http.rs`: the endpoints.
//! - `service.rs`: what other features use, re-exported from the files below.
//! - `loaders.rs`: the enrolment read model and its loading; `enrolments.rs`: creating and
//!   changing the enrolment itself; `enums.rs`: track and assignment roles.
//! - `extent.rs`: employment extent as a history of periods.
//! - `placements.rs`, `leave.rs`, `assignments.rs`, `credited.rs`, `goals.rs`: one kind of
//!   record of the plan each.
//! - `warnings.rs`: the plan checked against the regulation; `time.rs`: time served;
//!   `st_rules.rs`: an ST enrolment linked to its BT (minimum length, BT application).
//! - `independence.rs`: whether an external assessor took part in the training, and what
//!   is recorded of their qualifications (assignment and final assessment check it).
//! - `history.rs`: the audit trail of the plan; `access.rs`: who may do what.
//! - `imported.rs`: records imported from another service are read-only.
//! - `completion.rs`: a positive final decision completes the enrolment (a domain-event
//!   subscriber).

pub mod access;
pub mod assignments;
pub mod completion;
pub mod credited;
pub mod enrolments;
pub mod enums;
pub mod extent;
pub mod goals;
pub mod history;
pub mod http;
pub mod http_goals;
pub mod imported;
pub mod independence;
pub mod leave;
pub mod loaders;
pub mod placements;
pub mod service;
pub mod st_rules;
pub mod time;
pub mod warnings;

pub use http::routes;
