//! The delivery log: deliveries with their attempts, and replays.

use chrono::{DateTime, Utc};
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
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub give_up_at: DateTime<Utc>,
    pub replay_of: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The exact body delivered (what the signature covers).
    pub body: serde_json::Value,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<DeliveryAttempt>,
}

type DeliveryRow = (
    String,
    String,
    String,
    String,
    String,
    i32,
    Option<chrono::NaiveDateTime>,
    Option<i32>,
    Option<String>,
    chrono::NaiveDateTime,
    Option<String>,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    Option<chrono::NaiveDateTime>,
    String,
);

#[allow(clippy::type_complexity)]
const DELIVERY_COLUMNS: (
    webhook_deliveries::id,
    webhook_deliveries::subscription_id,
    webhook_deliveries::event_id,
    webhook_deliveries::event,
    webhook_deliveries::status,
    webhook_deliveries::attempts,
    webhook_deliveries::next_attempt_at,
    webhook_deliveries::last_status_code,
    webhook_deliveries::last_error,
    webhook_deliveries::give_up_at,
    webhook_deliveries::replay_of,
    webhook_deliveries::created_at,
    webhook_deliveries::updated_at,
    webhook_deliveries::delivered_at,
    webhook_deliveries::body,
) = (
    webhook_deliveries::id,
    webhook_deliveries::subscription_id,
    webhook_deliveries::event_id,
    webhook_deliveries::event,
    webhook_deliveries::status,
    webhook_deliveries::attempts,
    webhook_deliveries::next_attempt_at,
    webhook_deliveries::last_status_code,
    webhook_deliveries::last_error,
    webhook_deliveries::give_up_at,
    webhook_deliveries::replay_of,
    webhook_deliveries::created_at,
    webhook_deliveries::updated_at,
    webhook_deliveries::delivered_at,
    webhook_deliveries::body,
);

fn deliveries_from(
    conn: &mut DbConn,
    rows: Vec<DeliveryRow>,
) -> Result<Vec<WebhookDelivery>, AppError> {
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    type AttemptRow = (
        String,
        i32,
        chrono::NaiveDateTime,
        Option<i32>,
        Option<String>,
        i32,
    );
    let attempts: Vec<AttemptRow> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(&ids))
        .order((webhook_attempts::delivery_id, webhook_attempts::attempt))
        .select((
            webhook_attempts::delivery_id,
            webhook_attempts::attempt,
            webhook_attempts::at,
            webhook_attempts::status_code,
            webhook_attempts::error,
            webhook_attempts::duration_ms,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| WebhookDelivery {
            attempt_log: attempts
                .iter()
                .filter(|a| a.0 == r.0)
                .map(|a| DeliveryAttempt {
                    attempt: a.1,
                    at: from_db(a.2),
                    status_code: a.3,
                    error: a.4.clone(),
                    duration_ms: a.5,
                })
                .collect(),
            id: r.0,
            subscription_id: r.1,
            event_id: r.2,
            event: r.3,
            status: r.4,
            attempts: r.5,
            next_attempt_at: r.6.map(from_db),
            last_status_code: r.7,
            last_error: r.8,
            give_up_at: from_db(r.9),
            replay_of: r.10,
            created_at: from_db(r.11),
            updated_at: from_db(r.12),
            delivered_at: r.13.map(from_db),
            body: serde_json::from_str(&r.14).unwrap_or(serde_json::Value::Null),
        })
        .collect())
}

pub fn get_delivery(conn: &mut DbConn, id: &str) -> Result<WebhookDelivery, AppError> {
    let row: DeliveryRow = webhook_deliveries::table
        .find(id)
        .select(DELIVERY_COLUMNS)
        .first(conn)?;
    deliveries_from(conn, vec![row])?
        .pop()
        .ok_or(AppError::NotFound)
}

/// The delivery log of a subscription, newest first (cursor: `created_at|id`).
pub fn list_deliveries(
    conn: &mut DbConn,
    me: &Principal,
    subscription_id: &str,
    status: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<WebhookDelivery>, AppError> {
    visible_subscription(conn, me, subscription_id)?;
    let mut q = webhook_deliveries::table
        .filter(webhook_deliveries::subscription_id.eq(subscription_id.to_string()))
        .select(DELIVERY_COLUMNS)
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(webhook_deliveries::status.eq(s.to_string()));
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
    let rows: Vec<DeliveryRow> = q
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
    id: &str,
) -> Result<WebhookDelivery, AppError> {
    let d = get_delivery(conn, id)?;
    visible_subscription(conn, me, &d.subscription_id)?;
    Ok(d)
}

/// Delivers the same event again, as a new delivery (same event id and body, a fresh
/// day of retries), whatever became of the original.
pub fn replay(conn: &mut DbConn, ctx: &Ctx, id: &str) -> Result<WebhookDelivery, AppError> {
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
