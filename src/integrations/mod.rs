//! Integrations with learning platforms (issue 6): API clients and the OAuth 2.0
//! client-credentials grant, xAPI statement ingestion, webhooks (durable outbox and a
//! background worker) and bulk import of a cohort.
//!
//! Administrators of an organisation manage its clients, mappings, subscriptions and
//! imports; nobody else sees them (404 for other regions' records).
//!
//! What is where: `shared` (audit, who administers what, list parameters); per
//! subsystem a folder with its domain logic, one concern per file, and its handlers in
//! `http.rs`: `clients` (API clients and the OAuth token endpoint), `xapi` (statement
//! ingestion, mappings, account links), `webhooks` (subscriptions, the outbox, the
//! delivery worker), `imports` (bulk import of a cohort).

pub mod clients;
pub mod imports;
mod shared;
pub mod webhooks;
pub mod xapi;

pub use shared::ListParams;
pub(crate) use shared::{
    audit_write, parse_time_cursor, require_admin_over, visible_orgs, JsonText,
};
pub use webhooks::{deliver_due, spawn_worker};

/// Webhooks' subscriber to domain events, installed by `AppState::new`.
pub const WEBHOOK_SUBSCRIBER: crate::events::Subscriber = crate::events::Subscriber {
    listens: webhooks::listens,
    on_event: webhooks::on_event,
};

/// xAPI's subscriber to domain events: statements kept as `unknown_learner` become
/// activities when their learner enrols (`enrolment.created`).
pub const XAPI_SUBSCRIBER: crate::events::Subscriber = crate::events::Subscriber {
    listens: xapi::enrolled::listens,
    on_event: xapi::enrolled::on_event,
};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(clients::http::token)
        .service(clients::http::create_client)
        .service(clients::http::list_clients)
        .service(clients::http::get_client)
        .service(clients::http::rotate_client_secret)
        .service(clients::http::revoke_client)
        .service(xapi::http::post_statements)
        .service(xapi::http::put_statement)
        .service(xapi::http::about)
        .service(xapi::http::list_statements)
        .service(xapi::http_admin::get_statement)
        .service(xapi::http_admin::resolve_statement)
        .service(xapi::http_admin::dismiss_statement)
        .service(xapi::http_admin::create_mapping)
        .service(xapi::http_admin::list_mappings)
        .service(xapi::http_admin::delete_mapping)
        .service(xapi::http_admin::create_link)
        .service(xapi::http_admin::list_links)
        .service(xapi::http_admin::delete_link)
        .service(webhooks::http::create_subscription)
        .service(webhooks::http::list_subscriptions)
        .service(webhooks::http::get_subscription)
        .service(webhooks::http::patch_subscription)
        .service(webhooks::http::delete_subscription)
        .service(webhooks::http::rotate_subscription_secret)
        .service(webhooks::http::ping_subscription)
        .service(webhooks::http::list_deliveries)
        .service(webhooks::http::get_delivery)
        .service(webhooks::http::replay_delivery)
        .service(imports::http::import_users)
        .service(imports::http::import_enrolments);
}
