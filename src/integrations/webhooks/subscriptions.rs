//! Webhook subscriptions: create, read, update, rotate the secret, delete, ping.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::OrganisationId;
use crate::integrations::{audit_write, require_admin_over, visible_orgs};
use crate::schema::{webhook_deliveries, webhook_subscriptions};

use super::*;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookSubscription {
    pub id: String,
    pub organisation_id: String,
    #[schema(example = "https://lms.example.org/hooks/eportfolio")]
    pub url: String,
    #[schema(example = json!(["activity.created", "assessment.signed"]))]
    pub events: Vec<String>,
    pub description: String,
    pub active: bool,
    pub created_by: Option<String>,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl WebhookSubscription {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

/// A subscription with its signing secret: shown at creation and rotation only.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookSubscriptionWithSecret {
    #[serde(flatten)]
    pub subscription: WebhookSubscription,
    /// The signing secret (Standard Webhooks: `whsec_` and the base64 of the HMAC-SHA256
    /// key); shown once.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookSubscription {
    pub id: Option<Uuid>,
    pub organisation_id: String,
    /// `https://` URL that receives POSTs (`http://` only where the operator allows it).
    /// Its host must resolve to public addresses only (or to a network the operator
    /// allows); checked now and before every delivery.
    #[schema(example = "https://lms.example.org/hooks/eportfolio")]
    pub url: String,
    /// Event names, or `["*"]` for every event.
    #[schema(example = json!(["activity.created", "assessment.signed", "final_assessment.decided"]))]
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSubscriptionPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Pause (`false`) or resume deliveries; events while paused are not kept.
    pub active: Option<bool>,
}

/// A subscription as stored (without its secret).
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_subscriptions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SubscriptionRecord {
    id: String,
    organisation_id: String,
    url: String,
    #[diesel(deserialize_as = String)]
    events: EventNames,
    description: String,
    active: i32,
    created_by: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    version: i32,
}

impl From<SubscriptionRecord> for WebhookSubscription {
    fn from(r: SubscriptionRecord) -> WebhookSubscription {
        WebhookSubscription {
            id: r.id,
            organisation_id: r.organisation_id,
            url: r.url,
            events: r.events.0,
            description: r.description,
            active: r.active != 0,
            created_by: r.created_by,
            created_at: from_db(r.created_at),
            updated_at: from_db(r.updated_at),
            version: r.version,
        }
    }
}

fn check_url(url: &str, errors: &mut Vec<FieldError>) {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2000
        && !url.chars().any(char::is_whitespace)
        && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
    if !ok {
        errors.push(FieldError::new(
            "url",
            "an https:// URL of at most 2000 characters, without spaces",
        ));
    }
}

fn check_events(events: &[String], errors: &mut Vec<FieldError>) {
    if events.is_empty() {
        errors.push(FieldError::new("events", "at least one event, or \"*\""));
    }
    for (i, e) in events.iter().enumerate() {
        if e != "*" && !EVENTS.contains(&e.as_str()) {
            errors.push(FieldError::new(
                format!("events[{i}]"),
                format!("unknown event; known: {}", EVENTS.join(", ")),
            ));
        }
    }
}

pub fn get_subscription(
    conn: &mut DbConn,
    id: &WebhookId,
) -> Result<WebhookSubscription, AppError> {
    let r: SubscriptionRecord = webhook_subscriptions::table
        .find(id)
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select(SubscriptionRecord::as_select())
        .first(conn)?;
    Ok(r.into())
}

/// A subscription the caller administers (404 otherwise).
pub fn visible_subscription(
    conn: &mut DbConn,
    me: &Principal,
    id: &WebhookId,
) -> Result<WebhookSubscription, AppError> {
    let s = get_subscription(conn, id)?;
    if me.is_client()
        || !me.has_role_over(
            conn,
            crate::auth::principal::Role::Administrator,
            &OrganisationId::from(&s.organisation_id),
        )?
    {
        return Err(AppError::NotFound);
    }
    Ok(s)
}

pub fn create_subscription(
    conn: &mut DbConn,
    ctx: &Ctx,
    n: NewWebhookSubscription,
) -> Result<WebhookSubscriptionWithSecret, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let mut errors = Vec::new();
    let url = n.url.trim().to_string();
    check_url(&url, &mut errors);
    check_events(&n.events, &mut errors);
    if n.description.chars().count() > 500 {
        errors.push(FieldError::new("description", "at most 500 characters"));
    }
    if crate::accounts::service::get_org(conn, &n.organisation_id).is_err() {
        errors.push(FieldError::new("organisation_id", "no such organisation"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    require_admin_over(conn, me, &OrganisationId::from(&n.organisation_id))?;
    let id =
        n.id.map_or_else(WebhookId::random, |u| WebhookId::new(u.to_string()));
    let secret = new_secret();
    diesel::insert_into(webhook_subscriptions::table)
        .values((
            webhook_subscriptions::id.eq(&id),
            webhook_subscriptions::organisation_id.eq(&n.organisation_id),
            webhook_subscriptions::url.eq(&url),
            webhook_subscriptions::events.eq(json!(n.events).to_string()),
            webhook_subscriptions::description.eq(n.description.trim()),
            webhook_subscriptions::secret
                .eq(ctx.keyring()?.seal(crate::secrets::WEBHOOK_AAD, &secret)?),
            webhook_subscriptions::active.eq(1),
            webhook_subscriptions::created_by.eq(&me.user_id),
            webhook_subscriptions::version.eq(1),
            webhook_subscriptions::created_at.eq(to_db(now)),
            webhook_subscriptions::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let s = get_subscription(conn, &id)?;
    audit_write(
        conn,
        now,
        me,
        "created",
        "webhook_subscription",
        &id,
        &json!(s),
    )?;
    Ok(WebhookSubscriptionWithSecret {
        subscription: s,
        secret,
    })
}

pub fn list_subscriptions(
    conn: &mut DbConn,
    me: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<WebhookSubscription>, AppError> {
    let orgs = visible_orgs(conn, me)?;
    let mut q = webhook_subscriptions::table
        .filter(webhook_subscriptions::organisation_id.eq_any(orgs))
        .filter(webhook_subscriptions::deleted_at.is_null())
        .select(SubscriptionRecord::as_select())
        .order(webhook_subscriptions::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(webhook_subscriptions::id.gt(a.to_string()));
    }
    Ok(q.load::<SubscriptionRecord>(conn)?
        .into_iter()
        .map(Into::into)
        .collect())
}

pub fn update_subscription(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &WebhookId,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    p: WebhookSubscriptionPatch,
) -> Result<WebhookSubscription, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let s = visible_subscription(conn, me, id)?;
    if_match(&s.etag())?;
    let mut errors = Vec::new();
    let url = p.url.map(|u| u.trim().to_string()).unwrap_or(s.url);
    check_url(&url, &mut errors);
    let events = p.events.unwrap_or(s.events);
    check_events(&events, &mut errors);
    let description = p.description.unwrap_or(s.description);
    if description.chars().count() > 500 {
        errors.push(FieldError::new("description", "at most 500 characters"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    diesel::update(webhook_subscriptions::table.find(id))
        .set((
            webhook_subscriptions::url.eq(&url),
            webhook_subscriptions::events.eq(json!(events).to_string()),
            webhook_subscriptions::description.eq(description.trim()),
            webhook_subscriptions::active.eq(i32::from(p.active.unwrap_or(s.active))),
            webhook_subscriptions::version.eq(s.version + 1),
            webhook_subscriptions::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let s = get_subscription(conn, id)?;
    audit_write(
        conn,
        now,
        me,
        "updated",
        "webhook_subscription",
        id,
        &json!(s),
    )?;
    Ok(s)
}

pub fn rotate_subscription_secret(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &WebhookId,
) -> Result<WebhookSubscriptionWithSecret, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let s = visible_subscription(conn, me, id)?;
    let secret = new_secret();
    diesel::update(webhook_subscriptions::table.find(id))
        .set((
            webhook_subscriptions::secret
                .eq(ctx.keyring()?.seal(crate::secrets::WEBHOOK_AAD, &secret)?),
            webhook_subscriptions::version.eq(s.version + 1),
            webhook_subscriptions::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let s = get_subscription(conn, id)?;
    audit_write(
        conn,
        now,
        me,
        "secret_rotated",
        "webhook_subscription",
        id,
        &json!(s),
    )?;
    Ok(WebhookSubscriptionWithSecret {
        subscription: s,
        secret,
    })
}

/// Deletes a subscription; its pending deliveries are dropped (marked failed).
pub fn delete_subscription(conn: &mut DbConn, ctx: &Ctx, id: &WebhookId) -> Result<(), AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let s = visible_subscription(conn, me, id)?;
    diesel::update(webhook_subscriptions::table.find(id))
        .set((
            webhook_subscriptions::deleted_at.eq(to_db(now)),
            webhook_subscriptions::active.eq(0),
            webhook_subscriptions::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::subscription_id.eq(id))
            .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending)),
    )
    .set((
        webhook_deliveries::status.eq(DeliveryStatus::Failed),
        webhook_deliveries::last_error.eq("subscription deleted"),
        webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
        webhook_deliveries::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    audit_write(
        conn,
        now,
        me,
        "deleted",
        "webhook_subscription",
        id,
        &json!(s),
    )
}

/// Sends a `webhook.test` event to this subscription only (to check the receiver).
pub fn ping(conn: &mut DbConn, ctx: &Ctx, id: &WebhookId) -> Result<WebhookDelivery, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let s = visible_subscription(conn, me, id)?;
    let event_id = Uuid::new_v4().to_string();
    let body = json!({
        "id": event_id, "type": "webhook.test", "created_at": now,
        "organisation_id": s.organisation_id, "data": {"subscription_id": s.id},
    })
    .to_string();
    let d = insert_delivery(
        conn,
        now,
        NewDelivery {
            subscription_id: &s.id,
            organisation_id: &s.organisation_id,
            event_id: &event_id,
            event: "webhook.test",
            body: &body,
            replay_of: None,
        },
    )?;
    get_delivery(conn, &d)
}
