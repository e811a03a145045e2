//! HTTP handlers of webhooks: subscriptions and their delivery logs.

use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::config::Config;
use crate::context::Ctx;
use crate::error::{AppError, Problem};
use crate::http::{check_if_match, if_match, with_etag, Page};
use crate::integrations::shared::{require_admin, ListParams, PROBLEM};
use crate::integrations::webhooks;
use crate::integrations::webhooks::{
    DeliveryId, NewWebhookSubscription, WebhookDelivery, WebhookId, WebhookSubscription,
    WebhookSubscriptionPatch, WebhookSubscriptionWithSecret,
};

/// Subscribe a URL to events
///
/// Administrators of the organisation. Events of the organisation and every unit below
/// it are delivered as signed POSTs (see the README: `Eportfolio-Signature`). The answer
/// holds the signing `secret`, shown this once.
#[utoipa::path(
    tag = "integrations",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewWebhookSubscription, example = json!({
        "organisation_id": "…", "url": "https://lms.example.org/hooks/eportfolio",
        "events": ["activity.created", "assessment.signed", "final_assessment.decided"]
    })),
    responses((status = 201, description = "Subscribed; the secret is shown once", body = WebhookSubscriptionWithSecret)),
    security(("bearer" = []))
)]
#[post("/webhook-subscriptions")]
pub async fn create_subscription(
    ctx: Ctx,
    body: web::Json<NewWebhookSubscription>,
) -> Result<HttpResponse, AppError> {
    require_admin(&ctx.caller)?;
    check_webhook_destination(&ctx.config, &body.url).await?;
    let s = ctx
        .write(move |c, ctx| webhooks::create_subscription(c, ctx, body.into_inner()))
        .await?;
    // The secret is shown once: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(
        HttpResponse::Created()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(s),
    ))
}

/// Refuses (422 on `url`) a webhook URL that is not https (unless allowed) or whose host
/// resolves to an address that is not public (unless in an allowed network). Resolved off
/// the executor and before the write transaction, which a slow DNS must not hold open.
async fn check_webhook_destination(config: &Config, url: &str) -> Result<(), AppError> {
    let policy = webhooks::DestinationPolicy::from_config(config);
    let url = url.to_string();
    web::block(move || webhooks::check_destination(&url, &policy)).await?
}

/// List webhook subscriptions of my organisations
#[utoipa::path(
    tag = "integrations",
    params(ListParams),
    responses((status = 200, description = "A page of subscriptions", body = Page<WebhookSubscription>)),
    security(("bearer" = []))
)]
#[get("/webhook-subscriptions")]
pub async fn list_subscriptions(
    ctx: Ctx,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, AppError> {
    require_admin(&ctx.caller)?;
    let (limit, after) = query.into_inner().page()?;
    let rows = ctx
        .read(move |c, ctx| webhooks::list_subscriptions(c, &ctx.caller, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |s| s.id.clone())))
}

/// Get a webhook subscription
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The subscription", body = WebhookSubscription, headers(("ETag" = String))),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/webhook-subscriptions/{id}")]
pub async fn get_subscription(
    ctx: Ctx,
    path: web::Path<WebhookId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let s = ctx
        .read(move |c, ctx| webhooks::visible_subscription(c, &ctx.caller, &id))
        .await?;
    Ok(with_etag(StatusCode::OK, s.etag(), &s))
}

/// Update a webhook subscription (partial)
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = WebhookSubscriptionPatch,
    responses(
        (status = 200, description = "Updated", body = WebhookSubscription),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/webhook-subscriptions/{id}")]
pub async fn patch_subscription(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<WebhookId>,
    body: web::Json<WebhookSubscriptionPatch>,
) -> Result<HttpResponse, AppError> {
    if let Some(url) = &body.url {
        require_admin(&ctx.caller)?;
        check_webhook_destination(&ctx.config, url).await?;
    }
    let id = path.into_inner();
    let expected = if_match(&req);
    let s = ctx
        .write(move |c, ctx| {
            webhooks::update_subscription(
                c,
                ctx,
                &id,
                |t| check_if_match(expected.as_deref(), t),
                body.into_inner(),
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, s.etag(), &s))
}

/// Delete a webhook subscription
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted; pending deliveries are dropped"),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/webhook-subscriptions/{id}")]
pub async fn delete_subscription(
    ctx: Ctx,
    path: web::Path<WebhookId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    ctx.write(move |c, ctx| webhooks::delete_subscription(c, ctx, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate a webhook subscription's signing secret
///
/// The new secret is shown once and signs every delivery from now on, retries included.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The subscription with its new secret", body = WebhookSubscriptionWithSecret),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/webhook-subscriptions/{id}/rotate-secret")]
pub async fn rotate_subscription_secret(
    ctx: Ctx,
    path: web::Path<WebhookId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let s = ctx
        .write(move |c, ctx| webhooks::rotate_subscription_secret(c, ctx, &id))
        .await?;
    // The secret is shown once: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(s),
    ))
}

/// Send a test event to a subscription
///
/// Queues a `webhook.test` delivery to this subscription only.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 201, description = "Queued", body = WebhookDelivery),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/webhook-subscriptions/{id}/ping")]
pub async fn ping_subscription(
    ctx: Ctx,
    path: web::Path<WebhookId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let d = ctx.write(move |c, ctx| webhooks::ping(c, ctx, &id)).await?;
    Ok(HttpResponse::Created().json(d))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFilter {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The delivery log of a subscription
///
/// Newest first, each with its attempts (time, status code or error, duration), the
/// next attempt and the exact body.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path), DeliveryFilter),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<WebhookDelivery>),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/webhook-subscriptions/{id}/deliveries")]
pub async fn list_deliveries(
    ctx: Ctx,
    path: web::Path<WebhookId>,
    query: web::Query<DeliveryFilter>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let q = query.into_inner();
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            webhooks::DeliveryStatus::from_code(s)
                .ok_or_else(|| AppError::validation("status", "pending, delivered or failed"))?,
        ),
    };
    let (limit, after) = ListParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let rows = ctx
        .read(move |c, ctx| {
            webhooks::list_deliveries(c, &ctx.caller, &id, status, after.as_deref(), limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |d| {
        format!("{}|{}", d.created_at.to_rfc3339(), d.id)
    })))
}

/// Get a webhook delivery
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The delivery and its attempts", body = WebhookDelivery),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/webhook-deliveries/{id}")]
pub async fn get_delivery(ctx: Ctx, path: web::Path<DeliveryId>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let d = ctx
        .read(move |c, ctx| webhooks::visible_delivery(c, &ctx.caller, &id))
        .await?;
    Ok(HttpResponse::Ok().json(d))
}

/// Replay a webhook delivery
///
/// Queues the same event (same event id and body) again as a new delivery, with a new
/// day of retries.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 201, description = "The new delivery, queued", body = WebhookDelivery),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/webhook-deliveries/{id}/replay")]
pub async fn replay_delivery(
    ctx: Ctx,
    path: web::Path<DeliveryId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let d = ctx
        .write(move |c, ctx| webhooks::replay(c, ctx, &id))
        .await?;
    Ok(HttpResponse::Created().json(d))
}
