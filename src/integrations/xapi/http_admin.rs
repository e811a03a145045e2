//! HTTP handlers of xAPI for the organisation's administrators: what became of a received
//! statement (resolve, dismiss), activity mappings and account links. The LRS endpoints
//! an LMS talks to are in `http`.

use actix_web::{delete, get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::context::Ctx;
use crate::error::{AppError, Problem};
use crate::http::Page;
use crate::integrations::shared::{require_admin, ListParams, PROBLEM};
use crate::integrations::xapi;
use crate::integrations::xapi::{
    AccountLink, ActivityMapping, NewAccountLink, NewActivityMapping, XapiStatement,
};

/// Which organisation's statement is meant, when the clients of several organisations
/// the caller administers sent the same statement id (ids are unique per organisation).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementOrganisation {
    pub organisation_id: Option<String>,
}

/// Get a received xAPI statement
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path, description = "The statement id"), StatementOrganisation),
    responses(
        (status = 200, description = "The statement and what became of it", body = XapiStatement),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Several of your organisations have a statement with this id: name one", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/xapi/statements/{id}")]
pub async fn get_statement(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<StatementOrganisation>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let org = query.into_inner().organisation_id;
    let s = ctx
        .read(move |c, ctx| xapi::visible_statement(c, &ctx.caller, &id, org.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Resolve an unmatched statement
///
/// Matches it again (after adding an activity mapping or an account link) and creates
/// the learning activity; 422 with the reason when it still does not match.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path, description = "The statement id"), StatementOrganisation),
    responses(
        (status = 200, description = "Resolved: the activity was created", body = XapiStatement),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Not unmatched (already created or dismissed), or the id is several of your organisations' (name one)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Still unmatched; the detail says why", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/xapi/statements/{id}/resolve")]
pub async fn resolve_statement(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<StatementOrganisation>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let org = query.into_inner().organisation_id;
    let s = ctx
        .write(move |c, ctx| xapi::resolve(c, ctx, &id, org.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Dismiss an unmatched statement
///
/// It stays stored, marked `dismissed`, and leaves the work list.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path, description = "The statement id"), StatementOrganisation),
    responses(
        (status = 200, description = "Dismissed", body = XapiStatement),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Not unmatched, or the id is several of your organisations' (name one)", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/xapi/statements/{id}/dismiss")]
pub async fn dismiss_statement(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<StatementOrganisation>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let org = query.into_inner().organisation_id;
    let s = ctx
        .write(move |c, ctx| xapi::dismiss(c, ctx, &id, org.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Map an xAPI activity to a learning activity
///
/// Administrators. Statements about `xapi_activity_id` from clients of this
/// organisation (or below) become activities of this kind and title, linked to these
/// delmål (those of each trainee's regulation).
#[utoipa::path(
    tag = "integrations",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewActivityMapping, example = json!({
        "organisation_id": "…", "xapi_activity_id": "https://lms.regionstockholm.se/courses/forsakringsmedicin",
        "kind": "course", "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]
    })),
    responses((status = 201, description = "Mapped", body = ActivityMapping)),
    security(("bearer" = []))
)]
#[post("/xapi/activity-mappings")]
pub async fn create_mapping(
    ctx: Ctx,
    body: web::Json<NewActivityMapping>,
) -> Result<HttpResponse, AppError> {
    let m = ctx
        .write(move |c, ctx| xapi::create_mapping(c, ctx, body.into_inner()))
        .await?;
    Ok(HttpResponse::Created().json(m))
}

/// List xAPI activity mappings of my organisations
#[utoipa::path(
    tag = "integrations",
    params(ListParams),
    responses((status = 200, description = "A page of mappings", body = Page<ActivityMapping>)),
    security(("bearer" = []))
)]
#[get("/xapi/activity-mappings")]
pub async fn list_mappings(
    ctx: Ctx,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, AppError> {
    require_admin(&ctx.caller)?;
    let (limit, after) = query.into_inner().page()?;
    let rows = ctx
        .read(move |c, ctx| xapi::list_mappings(c, &ctx.caller, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |m| m.id.clone())))
}

/// Delete an xAPI activity mapping
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted (activities created through it stay)"),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/xapi/activity-mappings/{id}")]
pub async fn delete_mapping(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    ctx.write(move |c, ctx| xapi::delete_mapping(c, ctx, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Link an xAPI account to a user
///
/// Administrators. Statements whose `actor.account` is `home_page` + `name` are then
/// the user's (for platforms that do not send e-mail addresses).
#[utoipa::path(
    tag = "integrations",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewAccountLink, example = json!({
        "organisation_id": "…", "home_page": "https://lms.regionstockholm.se", "name": "u12345",
        "email": "bt.lakare@regionstockholm.se"
    })),
    responses((status = 201, description = "Linked", body = AccountLink)),
    security(("bearer" = []))
)]
#[post("/xapi/account-links")]
pub async fn create_link(
    ctx: Ctx,
    body: web::Json<NewAccountLink>,
) -> Result<HttpResponse, AppError> {
    let l = ctx
        .write(move |c, ctx| xapi::create_link(c, ctx, body.into_inner()))
        .await?;
    Ok(HttpResponse::Created().json(l))
}

/// List xAPI account links of my organisations
#[utoipa::path(
    tag = "integrations",
    params(ListParams),
    responses((status = 200, description = "A page of links", body = Page<AccountLink>)),
    security(("bearer" = []))
)]
#[get("/xapi/account-links")]
pub async fn list_links(ctx: Ctx, query: web::Query<ListParams>) -> Result<HttpResponse, AppError> {
    require_admin(&ctx.caller)?;
    let (limit, after) = query.into_inner().page()?;
    let rows = ctx
        .read(move |c, ctx| xapi::list_links(c, &ctx.caller, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |l| l.id.clone())))
}

/// Delete an xAPI account link
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/xapi/account-links/{id}")]
pub async fn delete_link(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    ctx.write(move |c, ctx| xapi::delete_link(c, ctx, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
