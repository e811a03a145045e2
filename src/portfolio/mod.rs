//! The portfolio: what a trainee's training leaves behind. Learning activities and their
//! attachments, formative assessments (with signing links and the vetting of assessors
//! without an account, and their qualifications), talks (supervision sessions, handover talks, final check-ins)
//! summary assessments of placements, and
//! the kursledare's confirmation of a course. Each sub-resource's domain logic and queries
//! are in its own module; the HTTP handlers of all of them are in `http`.

pub mod activities;
pub mod activity_list;
pub mod assessments;
pub mod attachments;
pub mod course_confirmation;
pub mod http;
pub mod instruments;
pub mod links;
pub mod provenance;
pub mod qualifications;
pub mod summaries;
pub mod talks;
pub mod transferred;
pub mod vetting;
