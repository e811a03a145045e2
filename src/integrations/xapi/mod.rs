//! xAPI 1.0.3 ingestion: learning record stores (or platforms) forward statements; a
//! statement whose verb records learning (completed, passed, attended, ...) about a
//! mapped xAPI activity becomes a learning activity of the matching trainee.
//!
//! - Learner: `actor.mbox` (`mailto:` e-mail of an account) or `actor.account`
//!   (`homePage` + `name`) linked to a user by an administrator.
//! - The trainee must have an enrolment in the client's organisation subtree; accounts
//!   are looked up only there, so that a platform learns nothing about accounts of other
//!   organisations (no account and an account elsewhere are the same `unknown_learner`).
//! - The xAPI activity id (`object.id`) must be mapped by an administrator of the
//!   client's organisation (or an ancestor) to an activity kind, title and delmål.
//!
//! Statement ids (unique per organisation: one organisation's platform can neither block
//! nor probe another's ids) make ingestion idempotent: the same id and content again is a
//! `duplicate`; the same id with other content is a `conflict`. Statements that cannot be
//! matched are kept as `unmatched` with the reason, listed for administrators and resolved
//! later. Malformed ones are `rejected` with a reason and not kept.

pub mod enrolled;
pub mod http;
pub mod http_admin;
mod ingest;
mod links;
mod lrs;
mod mappings;
mod matching;
mod parse;
mod statements;

pub use ingest::*;
pub use links::*;
pub use lrs::*;
pub use mappings::*;
pub use matching::*;
pub use parse::*;
pub use statements::*;

/// Verbs that record a learning activity (ADL and common community IRIs).
pub const RECORDING_VERBS: [&str; 6] = [
    "http://adlnet.gov/expapi/verbs/completed",
    "http://adlnet.gov/expapi/verbs/passed",
    "http://adlnet.gov/expapi/verbs/attended",
    "https://w3id.org/xapi/adl/verbs/completed",
    "https://w3id.org/xapi/adl/verbs/passed",
    "https://w3id.org/xapi/adl/verbs/attended",
];

/// At most this many statements per request.
pub const MAX_BATCH: usize = 500;
