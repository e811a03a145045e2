//! Learning activities: log, list, read, edit, delete.

use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{not_modified, PROBLEM};
use crate::context::Ctx;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag, Page, PageParams};
use crate::ids::EnrolmentId;
use crate::portfolio::activities::{self, Activity, ActivityKind, ActivityPatch, NewActivity};
use crate::privacy::guard::Guarded;

/// Log a learning activity
///
/// The trainee only. Send your own `id` and an `Idempotency-Key` from a phone: a retry
/// never makes a duplicate.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewActivity, example = json!({
        "id": "0b6f1c1e-8f1e-4c57-9a59-2f0c3f1d2b7a", "kind": "course", "title": "Försäkringsmedicinsk dag",
        "start_date": "2026-10-06", "reflection": "Sjukskrivningsprocessen och intygen ...", "delmal": ["BT16"]
    })),
    responses(
        (status = 201, description = "Logged", body = Activity, headers(("ETag" = String))),
        (status = 404, description = "Unknown enrolment", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/activities")]
pub async fn create_activity(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    body: Guarded<NewActivity>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let a = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            activities::create_activity(c, ctx, &id, body)
        })
        .await?;
    Ok(with_etag(StatusCode::CREATED, a.etag(), &a))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityFilter {
    /// A delmål code, e.g. `BT7`.
    pub delmal: Option<String>,
    pub placement_id: Option<String>,
    pub kind: Option<ActivityKind>,
    /// On or after this date.
    pub from: Option<NaiveDate>,
    /// On or before this date.
    pub to: Option<NaiveDate>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List learning activities
///
/// Newest first; filter by delmål, placement, kind and date range.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path, description = "Enrolment"), ActivityFilter),
    responses(
        (status = 200, description = "A page of activities", body = Page<Activity>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/activities")]
pub async fn list_activities(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    query: web::Query<ActivityFilter>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let filter = activities::Filter {
        delmal: q.delmal,
        placement_id: q.placement_id,
        kind: q.kind,
        from: q.from,
        to: q.to,
    };
    let rows = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &id, ctx.today(), Access::Read)?;
            activities::list_activities(c, &id, &filter, after.as_deref(), limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |a| {
        format!("{}|{}", a.start_date, a.id)
    })))
}

/// Get a learning activity
///
/// Send `If-None-Match` with the ETag you have: 304 when unchanged.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The activity", body = Activity, headers(("ETag" = String))),
        (status = 304, description = "Unchanged since the ETag you sent"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/activities/{id}")]
pub async fn get_activity(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let a = ctx
        .read(move |c, ctx| {
            let enrolment = activities::enrolment_of_activity(c, &id)?;
            access::require(
                c,
                &ctx.caller,
                &EnrolmentId::from(&enrolment),
                ctx.today(),
                Access::Read,
            )?;
            activities::get_activity(c, &id)
        })
        .await?;
    let tag = a.etag();
    if not_modified(&req, &tag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }
    Ok(with_etag(StatusCode::OK, tag, &a))
}

/// Update a learning activity (partial)
///
/// Fields left out stay as they are, so a draft can be saved as it is typed. Send
/// `If-Match` so two devices cannot overwrite each other.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = ActivityPatch,
    responses(
        (status = 200, description = "Updated", body = Activity),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/activities/{id}")]
pub async fn patch_activity(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<ActivityPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let expected = if_match(&req);
    let a = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            activities::update_activity(
                c,
                ctx,
                &id,
                |t| check_if_match(expected.as_deref(), t),
                body,
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, a.etag(), &a))
}

/// Delete a learning activity
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted (the audit log keeps it)"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/activities/{id}")]
pub async fn delete_activity(
    ctx: Ctx,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    ctx.write(move |c, ctx| activities::delete_activity(c, ctx, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
