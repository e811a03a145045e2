//! eportfolio: a competence portfolio for Swedish doctors in BT/ST training.
//!
//! Layout: `app` wires routes and the OpenAPI document; each feature module (`auth`,
//! `accounts`, ...) has thin handlers over domain functions that take a connection and
//! the time. Shared plumbing: `config`, `db`, `error`, `mail`, `clock`, `http`.

pub mod accounts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod body_deadline;
pub mod clock;
pub mod compression;
pub mod config;
pub mod context;
pub mod cors;
pub mod curriculum;
pub mod data_export;
pub mod db;
pub mod demo;
pub mod dossier;
pub mod enrolment;
pub mod error;
pub mod events;
pub mod feedback;
pub mod final_assessment;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod integrations;
pub mod mail;
pub mod notifications;
pub mod outbox;
pub mod portfolio;
pub mod principal;
pub mod privacy;
pub mod progress;
pub mod render;
pub mod schema;
pub mod secrets;
pub mod service_key;
pub mod spec;
pub mod storage;
pub mod telemetry;
pub mod transfer;

pub use app::{openapi, openapi_json, server, server_with_metrics, AppState};
pub use config::Config;

/// glibc gives each thread that allocates its own arena (up to eight per core), and
/// memory a large response used stays cached in that arena: resident memory then grows
/// with the number of threads that ever built a big dossier, not with the work. Two
/// arenas keep it bounded, without measurable contention on a small machine.
/// `MALLOC_ARENA_MAX` in the environment still wins.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tuning; called before any worker thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod lib_tests;
