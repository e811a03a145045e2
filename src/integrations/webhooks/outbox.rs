//! The outbox: events become pending deliveries, in the transaction of the change.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use crate::auth::principal::org_chain;
use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::events::{EventKind, StoredEvent};
use crate::ids::{OrganisationId, WebhookId};
use crate::schema::{enrolments, webhook_deliveries, webhook_subscriptions};

use super::*;

/// Whether any webhook subscription is active at all (the webhooks' answer to
/// `events::Subscriber::listens`, whatever the kind): one cached statement on a small
/// table, so the events of a service without subscribers (most writes) cost nothing
/// more, not even the event's row. The organisation chain and the subscriptions are
/// only read when it is true. It reads the table in the publishing transaction on
/// purpose: a subscription created on another node counts at once.
pub fn listens(conn: &mut DbConn, _kind: EventKind) -> Result<bool, AppError> {
    let query = webhook_subscriptions::table
        .filter(webhook_subscriptions::active.eq(1))
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select(webhook_subscriptions::id);
    let any: Option<String> = crate::on_backend!(conn, |c| query.first(c).optional())?;
    Ok(any.is_some())
}

/// The webhooks' subscriber to domain events (see `events`): queues a delivery of the
/// event for every active subscription of its organisation and of that organisation's
/// ancestors (a region's subscription hears about all its units) that names the event
/// (or `*`). It runs inside the transaction of the change that published the event, so
/// the delivery exists exactly when the change does; delivery happens later, off the
/// request.
///
/// The body delivered is
/// `{"id": <event id>, "type": event, "created_at": now, "organisation_id": ..., "data": payload}`.
///
/// `events::publish` calls it only after [`listens`] said yes.
pub fn on_event(conn: &mut DbConn, event: &StoredEvent) -> Result<(), AppError> {
    let organisation: Option<OrganisationId> = match (&event.organisation_id, &event.enrolment_id) {
        (Some(org), _) => Some(OrganisationId::new(org.as_str())),
        (None, Some(enrolment)) => enrolments::table
            .find(enrolment)
            .select(enrolments::organisation_id)
            .first(conn)
            .optional()?,
        (None, None) => None,
    };
    match organisation {
        Some(org) => enqueue_to_chain(conn, &org, event),
        None => Ok(()),
    }
}

/// A subscription as the fan-out reads it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_subscriptions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Listener {
    id: WebhookId,
    organisation_id: String,
    #[diesel(deserialize_as = String)]
    events: EventNames,
}

/// [`on_event`], once it is known that somebody subscribes.
fn enqueue_to_chain(
    conn: &mut DbConn,
    organisation_id: &OrganisationId,
    event: &StoredEvent,
) -> Result<(), AppError> {
    let chain = org_chain(conn, organisation_id)?;
    if chain.is_empty() {
        return Ok(());
    }
    let name = event.kind.as_str();
    let listeners: Vec<Listener> = webhook_subscriptions::table
        .filter(webhook_subscriptions::organisation_id.eq_any(&chain))
        .filter(webhook_subscriptions::active.eq(1))
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select(Listener::as_select())
        .load(conn)?;
    let listeners: Vec<Listener> = listeners
        .into_iter()
        .filter(|l| l.events.0.iter().any(|e| e == name || e == "*"))
        .collect();
    if listeners.is_empty() {
        return Ok(());
    }
    let now = event.created_at.0;
    let body = json!({
        "id": event.id,
        "type": name,
        "created_at": now,
        "organisation_id": organisation_id,
        "data": event.data.0,
    })
    .to_string();
    for l in listeners {
        insert_delivery(
            conn,
            now,
            NewDelivery {
                subscription_id: &l.id,
                organisation_id: &l.organisation_id,
                event_id: &event.id,
                event: name,
                body: &body,
                replay_of: None,
            },
        )?;
    }
    Ok(())
}

/// Which subscription gets which event (the body is what the signature covers).
pub(super) struct NewDelivery<'a> {
    pub subscription_id: &'a str,
    pub organisation_id: &'a str,
    pub event_id: &'a str,
    pub event: &'a str,
    pub body: &'a str,
    pub replay_of: Option<&'a str>,
}

/// A new delivery's row: pending, due now, retried for a day.
#[derive(Insertable)]
#[diesel(table_name = webhook_deliveries)]
struct DeliveryRow<'a> {
    id: &'a str,
    subscription_id: &'a str,
    organisation_id: &'a str,
    event_id: &'a str,
    event: &'a str,
    body: &'a str,
    status: &'a str,
    attempts: i32,
    next_attempt_at: Option<NaiveDateTime>,
    give_up_at: NaiveDateTime,
    replay_of: Option<&'a str>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

/// Queues a delivery; returns its id. With traces on, the delivery keeps the trace
/// context of the change queuing it (see `telemetry::traces::current_context`).
pub(super) fn insert_delivery(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    d: NewDelivery<'_>,
) -> Result<DeliveryId, AppError> {
    let id = DeliveryId::random();
    let trace = crate::telemetry::traces::current_context();
    diesel::insert_into(webhook_deliveries::table)
        .values(DeliveryRow {
            id: &id,
            subscription_id: d.subscription_id,
            organisation_id: d.organisation_id,
            event_id: d.event_id,
            event: d.event,
            body: d.body,
            status: DeliveryStatus::Pending.as_str(),
            attempts: 0,
            next_attempt_at: Some(to_db(now)),
            give_up_at: to_db(now + Duration::hours(RETRY_WINDOW_HOURS)),
            replay_of: d.replay_of,
            created_at: to_db(now),
            updated_at: to_db(now),
            traceparent: trace.as_ref().map(|t| t.traceparent.as_str()),
            tracestate: trace.as_ref().and_then(|t| t.tracestate.as_deref()),
        })
        .execute(conn)?;
    Ok(id)
}
