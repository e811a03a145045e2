//! The delivery log: deliveries with their attempts, and replays.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::principal::Principal;
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::integrations::audit_write;
use crate::schema::{webhook_attempts, webhook_deliveries};

use super::*;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryAttempt {
    pub attempt: i32,
    #[serde(with = "crate::clock::millis")]
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Why the attempt failed, if it did: `timeout`, `connection failed`, `destination
    /// not allowed` (the host is or resolves to a non-public address), `HTTP 500`, ...
    /// (a class, never the operating system's error text).
    pub error: Option<String>,
    pub duration_ms: i32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    #[schema(example = "activity.created")]
    pub event: String,
    /// `pending`, `delivered` or `failed` (gave up after a day, or subscription deleted).
    pub status: String,
    pub attempts: i32,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    #[serde(with = "crate::clock::millis")]
    pub give_up_at: DateTime<Utc>,
    pub replay_of: Option<String>,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// The exact body delivered (what the signature covers).
    pub body: serde_json::Value,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<DeliveryAttempt>,
}

/// A delivery as stored (without the subscription's secret or the lease).
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct DeliveryRecord {
    id: String,
    subscription_id: String,
    event_id: String,
    event: String,
    status: DeliveryStatus,
    attempts: i32,
    next_attempt_at: Option<NaiveDateTime>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    give_up_at: NaiveDateTime,
    replay_of: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    delivered_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = String)]
    body: JsonText,
}

/// One attempt as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_attempts, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct AttemptRecord {
    delivery_id: String,
    attempt: i32,
    at: NaiveDateTime,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
}

fn deliveries_from(
    conn: &mut DbConn,
    rows: Vec<DeliveryRecord>,
) -> Result<Vec<WebhookDelivery>, AppError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let attempts: Vec<AttemptRecord> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(&ids))
        .order((webhook_attempts::delivery_id, webhook_attempts::attempt))
        .select(AttemptRecord::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| WebhookDelivery {
            attempt_log: attempts
                .iter()
                .filter(|a| a.delivery_id == r.id)
                .map(|a| DeliveryAttempt {
                    attempt: a.attempt,
                    at: from_db(a.at),
                    status_code: a.status_code,
                    error: a.error.clone(),
                    duration_ms: a.duration_ms,
                })
                .collect(),
            id: r.id,
            subscription_id: r.subscription_id,
            event_id: r.event_id,
            event: r.event,
            status: r.status.as_str().to_string(),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at.map(from_db),
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            give_up_at: from_db(r.give_up_at),
            replay_of: r.replay_of,
            created_at: from_db(r.created_at),
            updated_at: from_db(r.updated_at),
            delivered_at: r.delivered_at.map(from_db),
            body: r.body.0,
        })
        .collect())
}

pub fn get_delivery(conn: &mut DbConn, id: &DeliveryId) -> Result<WebhookDelivery, AppError> {
    let row: DeliveryRecord = webhook_deliveries::table
        .find(id)
        .select(DeliveryRecord::as_select())
        .first(conn)?;
    deliveries_from(conn, vec![row])?
        .pop()
        .ok_or(AppError::NotFound)
}

/// The delivery log of a subscription, newest first (cursor: `created_at|id`).
pub fn list_deliveries(
    conn: &mut DbConn,
    me: &Principal,
    subscription_id: &WebhookId,
    status: Option<DeliveryStatus>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<WebhookDelivery>, AppError> {
    visible_subscription(conn, me, subscription_id)?;
    let mut q = webhook_deliveries::table
        .filter(webhook_deliveries::subscription_id.eq(subscription_id.to_string()))
        .select(DeliveryRecord::as_select())
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(webhook_deliveries::status.eq(s));
    }
    if let Some(a) = after {
        let (t, id) = crate::integrations::parse_time_cursor(a)?;
        q = q.filter(
            webhook_deliveries::created_at
                .lt(to_db(t))
                .or(webhook_deliveries::created_at
                    .eq(to_db(t))
                    .and(webhook_deliveries::id.lt(id))),
        );
    }
    let rows: Vec<DeliveryRecord> = q
        .order((
            webhook_deliveries::created_at.desc(),
            webhook_deliveries::id.desc(),
        ))
        .limit(limit + 1)
        .load(conn)?;
    deliveries_from(conn, rows)
}

/// A delivery the caller administers (404 otherwise).
pub fn visible_delivery(
    conn: &mut DbConn,
    me: &Principal,
    id: &DeliveryId,
) -> Result<WebhookDelivery, AppError> {
    let d = get_delivery(conn, id)?;
    visible_subscription(conn, me, &WebhookId::new(d.subscription_id.as_str()))?;
    Ok(d)
}

/// Delivers the same event again, as a new delivery (same event id and body, a fresh
/// day of retries), whatever became of the original.
pub fn replay(conn: &mut DbConn, ctx: &Ctx, id: &DeliveryId) -> Result<WebhookDelivery, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let d = visible_delivery(conn, me, id)?;
    let org: String = webhook_deliveries::table
        .find(id)
        .select(webhook_deliveries::organisation_id)
        .first(conn)?;
    let new = insert_delivery(
        conn,
        now,
        NewDelivery {
            subscription_id: &d.subscription_id,
            organisation_id: &org,
            event_id: &d.event_id,
            event: &d.event,
            body: &d.body.to_string(),
            replay_of: Some(&d.id),
        },
    )?;
    audit_write(
        conn,
        now,
        me,
        "replayed",
        "webhook_delivery",
        id,
        &json!({"replay": new}),
    )?;
    get_delivery(conn, &new)
}
