//! Webhooks: an organisation subscribes a URL to events; every domain event (see
//! `crate::events`) is fanned out into a durable outbox (`webhook_deliveries`) by
//! [`on_event`], in the same transaction as the change it announces, and a background
//! worker delivers it, signed, with retries.
//!
//! What is where: `subscriptions` (the API's subscriptions), `outbox` (the subscriber:
//! events become pending deliveries), `deliveries` (the delivery log, replays),
//! `worker` (claim, send, record), `destinations` (which addresses a delivery may go
//! to), `signing`, `http` (handlers).
//!
//! **Signature.** Deliveries are signed as Standard Webhooks specifies
//! (https://www.standardwebhooks.com): `webhook-id` (the delivery id, the same on every
//! retry), `webhook-timestamp` (unix seconds) and `webhook-signature:
//! v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>`, where the secret is
//! `whsec_<base64 of key>`; its libraries verify them and refuse old timestamps. The
//! older `Eportfolio-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret text,
//! t + "." + body)>` is still sent, so receivers written against it keep working; new
//! receivers should use a Standard Webhooks library. `Eportfolio-Event`,
//! `Eportfolio-Delivery` and `Eportfolio-Event-Id` name what is delivered.
//!
//! **Retries.** Any answer but 2xx (or no answer within `WEBHOOK_TIMEOUT_SECONDS`) is
//! retried with exponential backoff (30 s, 1 min, 2 min, ... capped at 1 h) for a day
//! after the event; then the delivery is `failed`. Administrators can replay any
//! delivery. Every attempt is logged.
//!
//! **Several nodes.** A worker claims a due delivery by setting a lease
//! (`locked_until`, `lease`) with a conditional update; only one node wins it. A node that
//! dies mid-delivery leaves the lease to expire, and another node retries.

mod deliveries;
mod destinations;
pub mod http;
mod outbox;
mod signing;
mod spec;
mod subscriptions;
mod worker;

pub use deliveries::*;
pub use destinations::*;
pub use outbox::*;
pub use signing::*;
pub use spec::document;
pub use subscriptions::*;
pub use worker::*;

pub use crate::ids::WebhookId;
pub(crate) use crate::integrations::shared::JsonText;

crate::id_types! {
    /// A webhook delivery.
    DeliveryId;
}

pub const SIGNATURE_HEADER: &str = "Eportfolio-Signature";

/// Events a subscription may name (or `*` for all, including events added later).
pub const EVENTS: [&str; 6] = [
    "activity.created",
    "assessment.signed",
    "final_assessment.decided",
    "xapi.statement_unmatched",
    "enrolment.created",
    "webhook.test",
];

/// How long a claimed delivery is reserved for the node that claimed it.
const LEASE_SECONDS: i64 = 120;
/// Deliveries are retried for this long after the event.
const RETRY_WINDOW_HOURS: i64 = 24;
// Stored domain events outlive the deliveries made of them.
const _: () = assert!(crate::events::RETENTION_HOURS >= RETRY_WINDOW_HOURS);

/// Where a delivery stands (declared in `ids`, below the metrics that count the
/// pending ones).
pub use crate::ids::DeliveryStatus;

/// The event names a subscription listens to, stored as a JSON array; stored text that
/// is not one is an error, never an empty list.
#[derive(Debug, Clone)]
pub struct EventNames(pub Vec<String>);

impl TryFrom<String> for EventNames {
    type Error = serde_json::Error;
    fn try_from(s: String) -> Result<EventNames, serde_json::Error> {
        serde_json::from_str(&s).map(EventNames)
    }
}
