//! The trainee's voice (issue 14, item 12): the trainee evaluates each placement with a
//! short fixed form, directors read the answers aggregated per unit and half-year (never
//! per person, never for fewer than three answers), and supervisors and directors record
//! the group reviews of a trainee (BT/AT/ST-kollegium) with their outcome.
//!
//! - `form`: the evaluation form from `catalog/placement-evaluation.json`, half-years.
//! - `evaluations`: submitting, reading one's own, and the aggregate per unit.
//! - `group_reviews`: recording and listing group reviews.
//! - `http`: the endpoints.

pub mod evaluations;
pub mod form;
pub mod group_reviews;
pub mod http;

pub use http::routes;
