//! The outbox: events become pending deliveries, in the transaction of the change.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

use crate::auth::principal::org_chain;
use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::{enrolments, webhook_deliveries, webhook_subscriptions};

use super::*;

/// Whether any webhook subscription is active at all: one cached statement on a small
/// table, so the events of a service without subscribers (most writes) cost nothing
/// more. The organisation chain and the subscriptions are only read when it is true.
fn has_subscribers(conn: &mut DbConn) -> Result<bool, AppError> {
    let query = webhook_subscriptions::table
        .filter(webhook_subscriptions::active.eq(1))
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select(webhook_subscriptions::id);
    let any: Option<String> = crate::on_backend!(conn, |c| query.first(c).optional())?;
    Ok(any.is_some())
}

/// Enqueues `event` for every active subscription of `organisation_id` and of its
/// ancestors (a region's subscription hears about all its units) that names the event
/// (or `*`). Call it inside the write transaction of the change it announces, so the
/// event exists exactly when the change does; delivery happens later, off the request.
///
/// The body delivered is
/// `{"id": <event id>, "type": event, "created_at": now, "organisation_id": ..., "data": payload}`.
/// Events: `activity.created`, `assessment.signed`, `final_assessment.decided` (issue 5:
/// call it when a final assessment is decided, with the decision as `payload`), ...
pub fn enqueue(
    conn: &mut DbConn,
    organisation_id: &str,
    event: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    if !has_subscribers(conn)? {
        return Ok(());
    }
    enqueue_to_chain(conn, organisation_id, event, payload, now)
}

/// [`enqueue`], once it is known that somebody subscribes.
fn enqueue_to_chain(
    conn: &mut DbConn,
    organisation_id: &str,
    event: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let chain = org_chain(conn, organisation_id)?;
    if chain.is_empty() {
        return Ok(());
    }
    let subs: Vec<(String, String, String)> = webhook_subscriptions::table
        .filter(webhook_subscriptions::organisation_id.eq_any(&chain))
        .filter(webhook_subscriptions::active.eq(1))
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select((
            webhook_subscriptions::id,
            webhook_subscriptions::organisation_id,
            webhook_subscriptions::events,
        ))
        .load(conn)?;
    let subs: Vec<_> = subs
        .into_iter()
        .filter(|(_, _, events)| {
            let events: Vec<String> = serde_json::from_str(events).unwrap_or_default();
            events.iter().any(|e| e == event || e == "*")
        })
        .collect();
    if subs.is_empty() {
        return Ok(());
    }
    let event_id = Uuid::new_v4().to_string();
    let body = json!({
        "id": event_id,
        "type": event,
        "created_at": now,
        "organisation_id": organisation_id,
        "data": payload,
    })
    .to_string();
    for (sub, org, _) in subs {
        insert_delivery(conn, now, &sub, &org, &event_id, event, &body, None)?;
    }
    Ok(())
}

/// [`enqueue`] for the organisation of an enrolment.
pub fn enqueue_for_enrolment(
    conn: &mut DbConn,
    enrolment_id: &str,
    event: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    if !has_subscribers(conn)? {
        return Ok(());
    }
    let org: Option<String> = enrolments::table
        .find(enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)
        .optional()?;
    match org {
        Some(org) => enqueue_to_chain(conn, &org, event, payload, now),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn insert_delivery(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    subscription: &str,
    org: &str,
    event_id: &str,
    event: &str,
    body: &str,
    replay_of: Option<&str>,
) -> Result<String, AppError> {
    let id = Uuid::new_v4().to_string();
    diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::id.eq(&id),
            webhook_deliveries::subscription_id.eq(subscription),
            webhook_deliveries::organisation_id.eq(org),
            webhook_deliveries::event_id.eq(event_id),
            webhook_deliveries::event.eq(event),
            webhook_deliveries::body.eq(body),
            webhook_deliveries::status.eq("pending"),
            webhook_deliveries::attempts.eq(0),
            webhook_deliveries::next_attempt_at.eq(Some(to_db(now))),
            webhook_deliveries::give_up_at.eq(to_db(now + Duration::hours(RETRY_WINDOW_HOURS))),
            webhook_deliveries::replay_of.eq(replay_of),
            webhook_deliveries::created_at.eq(to_db(now)),
            webhook_deliveries::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(id)
}
