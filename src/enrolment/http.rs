//! The enrolment endpoints: parse, authorise, call the files of one concern beside this
//! one, map the result to HTTP. The study-plan goals' endpoints are in `http_goals.rs`;
//! every enrolment route is registered in `routes` below.
//!
//! Longer than the ~600-line target: it holds only handlers (parse, authorise, call,
//! map) of one resource and its sub-resources, registered in `routes`; the goals'
//! handlers are in `http_goals.rs`.

use actix_web::http::StatusCode;
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::access::{self, Access};
use super::enums::AssignmentRole;
use super::extent::{self, ExtentChange, ExtentPeriod};
use super::service::{
    self, Assignment, AssignmentInput, Change, CreditedService, CreditedServiceInput, Enrolment,
    EnrolmentPatch, LeaveInput, LeavePeriod, NewEnrolment, Placement, PlacementInput,
    PlacementPatch,
};
use super::time::TimeServed;
use super::{assignments, independence};
use crate::context::Ctx;
use crate::error::{AppError, FieldError};
use crate::http::{check_if_match, etag, if_match, with_etag, Page, PageParams};
use crate::ids::{AssignmentId, EnrolmentId, LeaveId, PlacementId, UserId};

pub(super) const PROBLEM: &str = "application/problem+json";

/// Enrol a trainee
///
/// Administrators and directors of studies of the template's organisation. Placements,
/// leave and the main supervisor may be given at once.
#[utoipa::path(
    tag = "enrolment",
    request_body(content = NewEnrolment, example = json!({
        "trainee_id": "…", "template_id": "…", "track": "bt_standalone",
        "start_date": "2026-09-01", "planned_end": "2027-08-31", "extent_percent": 100,
        "main_supervisor_id": "…",
        "placements": [{"placement_type": "allmanmedicin", "start_date": "2026-09-01", "end_date": "2026-12-31", "unit_id": "…"}],
        "leave_periods": [{"kind": "parental", "start_date": "2027-02-01", "end_date": "2027-02-28", "percent": 100}]
    })),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    responses(
        (status = 201, description = "The enrolment", body = Enrolment),
        (status = 422, description = "Invalid plan", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments")]
pub async fn create_enrolment(
    ctx: Ctx,
    body: web::Json<NewEnrolment>,
) -> Result<HttpResponse, AppError> {
    let e = ctx
        .write(move |c, ctx| service::create_enrolment(c, ctx.now, &ctx.caller, body.into_inner()))
        .await?;
    Ok(with_etag(StatusCode::CREATED, e.etag(), &e))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentFilter {
    pub trainee_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List the enrolments I may see
///
/// A trainee sees their own; supervisors and assessors those they are assigned to today;
/// administrators and directors those of their organisations.
#[utoipa::path(
    tag = "enrolment",
    params(EnrolmentFilter),
    responses((status = 200, description = "A page of enrolments", body = Page<Enrolment>)),
    security(("bearer" = []))
)]
#[get("/enrolments")]
pub async fn list_enrolments(
    ctx: Ctx,
    query: web::Query<EnrolmentFilter>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let today = ctx.today();
    let rows = ctx
        .read(move |c, ctx| {
            service::list_enrolments(
                c,
                &ctx.caller,
                today,
                q.trainee_id.as_deref(),
                after.as_deref(),
                limit,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |e| e.id.clone())))
}

/// Get an enrolment
///
/// The whole plan: placements, leave, assignments (with history), credited service,
/// time served today and warnings against the regulation's structural rules.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The enrolment", body = Enrolment, headers(("ETag" = String))),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}")]
pub async fn get_enrolment(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = ctx.today();
    let e = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &EnrolmentId::from(&id), today, Access::Read)?;
            service::get_enrolment(c, &id, today)
        })
        .await?;
    Ok(with_etag(StatusCode::OK, e.etag(), &e))
}

/// Change an enrolment's planned end, extent or status
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = EnrolmentPatch,
    responses(
        (status = 200, description = "Updated", body = Enrolment),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Imported from another service: read-only (`transferred-read-only`)", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/enrolments/{id}")]
pub async fn patch_enrolment(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<EnrolmentPatch>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let expected = if_match(&req);
    let e = ctx
        .write(move |c, ctx| {
            service::update_enrolment(
                c,
                ctx.now,
                &ctx.caller,
                &id,
                |t| check_if_match(expected.as_deref(), t),
                body.into_inner(),
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, e.etag(), &e))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateMigration {
    pub template_version: i32,
}

/// Move an enrolment to another version of its template
///
/// Administrators only. Records made under the old version keep their meaning.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path)),
    request_body = TemplateMigration,
    responses(
        (status = 200, description = "Migrated", body = Enrolment),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/template-migration")]
pub async fn migrate_template(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<TemplateMigration>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let version = body.template_version;
    let e = ctx
        .write(move |c, ctx| service::migrate_template(c, ctx.now, &ctx.caller, &id, version))
        .await?;
    Ok(with_etag(StatusCode::OK, e.etag(), &e))
}

/// Add a placement
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body = PlacementInput,
    responses(
        (status = 201, description = "Added", body = Placement),
        (status = 404, description = "Unknown enrolment", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/placements")]
pub async fn add_placement(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<PlacementInput>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let p = ctx
        .write(move |c, ctx| {
            service::add_placement(c, ctx.now, &ctx.caller, &id, body.into_inner())
        })
        .await?;
    Ok(with_etag(
        StatusCode::CREATED,
        etag(p.version, p.updated_at),
        &p,
    ))
}

/// Change a placement
///
/// Dates, type or unit; the earlier state stays in the enrolment's history.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = PlacementPatch,
    responses(
        (status = 200, description = "Updated", body = Placement),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Imported from another service: read-only (`transferred-read-only`)", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/placements/{id}")]
pub async fn patch_placement(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<PlacementPatch>,
) -> Result<HttpResponse, AppError> {
    let id = PlacementId::from(path.into_inner());
    let expected = if_match(&req);
    let p = ctx
        .write(move |c, ctx| {
            service::update_placement(
                c,
                ctx.now,
                &ctx.caller,
                &id,
                |t| check_if_match(expected.as_deref(), t),
                body.into_inner(),
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, etag(p.version, p.updated_at), &p))
}

/// Remove a placement from the plan
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Removed (kept in the history)"),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Imported from another service: read-only (`transferred-read-only`)", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/placements/{id}")]
pub async fn delete_placement(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = PlacementId::from(path.into_inner());
    ctx.write(move |c, ctx| service::remove_placement(c, ctx.now, &ctx.caller, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Add a leave period
///
/// Full or partial leave (`percent`); time served is reduced accordingly.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body = LeaveInput,
    responses(
        (status = 201, description = "Added", body = LeavePeriod),
        (status = 404, description = "Unknown enrolment", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/leave-periods")]
pub async fn add_leave(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<LeaveInput>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let l = ctx
        .write(move |c, ctx| service::add_leave(c, ctx.now, &ctx.caller, &id, body.into_inner()))
        .await?;
    Ok(HttpResponse::Created().json(l))
}

/// Record a change of employment extent from a day on
///
/// Employment extent (tjänstgöringsgrad) is a history: a move from 100 % to 75 % from
/// 1 March counts March on at 75 %, and the months before stay as they were served. Time
/// served, pace and the projected end follow it; the enrolment's `extent_percent` is
/// today's. A change recorded again for the same day replaces it (a correction). Who
/// may: those who manage the plan (a director of studies, an administrator).
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = ExtentChange, example = json!({"valid_from": "2027-03-01", "extent_percent": 75})),
    responses(
        (status = 201, description = "Recorded: the period it begins", body = ExtentPeriod),
        (status = 403, description = "May read the plan but not change it", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown enrolment, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Imported from another service: read-only (`transferred-read-only`)", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "Extent outside 10 to 100, or a day before the start", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/extent-changes")]
pub async fn add_extent_change(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<ExtentChange>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let p = ctx
        .write(move |c, ctx| {
            extent::record_extent_change(c, ctx.now, &ctx.caller, &id, body.into_inner())
        })
        .await?;
    Ok(HttpResponse::Created().json(p))
}

/// Remove a leave period
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Removed (kept in the history)"),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Imported from another service: read-only (`transferred-read-only`)", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/leave-periods/{id}")]
pub async fn delete_leave(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = LeaveId::from(path.into_inner());
    ctx.write(move |c, ctx| service::remove_leave(c, ctx.now, &ctx.caller, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Assign a supervisor, director of studies or external assessor
///
/// Access follows assignments and their validity. A new main supervisor ends the previous
/// one's assignment the day the new one starts. An external assessor must never have been
/// involved in the trainee's training.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = AssignmentInput, example = json!({"user_id": "…", "role": "main_supervisor", "valid_from": "2026-09-01"})),
    responses(
        (status = 201, description = "Assigned", body = Assignment),
        (status = 404, description = "Unknown enrolment", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/assignments")]
pub async fn add_assignment(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<AssignmentInput>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let a = ctx
        .write(move |c, ctx| {
            let mut a = service::add_assignment(c, ctx.now, &ctx.caller, &id, body.into_inner())?;
            if a.role == AssignmentRole::ExternalAssessor {
                let user = UserId::from(&a.user_id);
                a.independence = Some(independence::check(c, &ctx.config, &id, &user)?);
            }
            Ok(a)
        })
        .await?;
    Ok(HttpResponse::Created().json(a))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IndependenceQuery {
    /// The person the director of studies considers as external assessor.
    pub user_id: String,
}

/// Check a candidate external assessor's independence
///
/// Before assigning an external assessor (extern bedömare): whether the person took part
/// in the trainee's training (other assignments, assessments asked for or signed, talks,
/// summary assessments, recorded activities or group reviews, directing the programme),
/// each fact named, and what is recorded of their specialist status and training in
/// assessment methods. The pilot asks for a specialist trained in assessment methods who
/// "inte ska ha varit involverad i BT-läkarens utbildning" (seed 002). For those who
/// manage the enrolment (director of studies, administrator).
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), IndependenceQuery),
    responses(
        (status = 200, description = "The check", body = independence::Independence),
        (status = 404, description = "Unknown, or not yours to manage", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "Not a user with the external_assessor role", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/external-assessor-independence")]
pub async fn external_assessor_independence(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<IndependenceQuery>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let user = UserId::from(query.into_inner().user_id);
    let today = ctx.today();
    let check = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &id, today, Access::Manage)?;
            let role = AssignmentRole::ExternalAssessor.account_role();
            if !assignments::user_has_role(c, &user, role)? {
                return Err(AppError::Validation(vec![FieldError::new(
                    "user_id",
                    format!("not a user with the {} role", role.as_str()),
                )]));
            }
            independence::check(c, &ctx.config, &id, &user)
        })
        .await?;
    Ok(HttpResponse::Ok().json(check))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndAssignment {
    /// First day the assignment no longer holds; default today.
    pub valid_to: Option<NaiveDate>,
}

/// End an assignment
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path)),
    request_body = EndAssignment,
    responses(
        (status = 200, description = "Ended; kept in the history", body = Assignment),
        (status = 404, description = "Unknown", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already ended", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/assignments/{id}/end")]
pub async fn end_assignment(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<EndAssignment>,
) -> Result<HttpResponse, AppError> {
    let id = AssignmentId::from(path.into_inner());
    let to = body.valid_to;
    let a = ctx
        .write(move |c, ctx| service::end_assignment(c, ctx.now, &ctx.caller, &id, to))
        .await?;
    Ok(HttpResponse::Ok().json(a))
}

/// Record credited service before licence
///
/// At most six months in all, with evidence and the delmål it supports.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body = CreditedServiceInput,
    responses(
        (status = 201, description = "Recorded", body = CreditedService),
        (status = 404, description = "Unknown enrolment", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/credited-service")]
pub async fn add_credited_service(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<CreditedServiceInput>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let cs = ctx
        .write(move |c, ctx| {
            service::add_credited_service(c, ctx.now, &ctx.caller, &id, body.into_inner())
        })
        .await?;
    Ok(HttpResponse::Created().json(cs))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AsOf {
    /// Default: today.
    pub as_of: Option<NaiveDate>,
}

/// Time served
///
/// Full-time-equivalent time in placements up to a date, with extent and leave taken into
/// account, plus credited service, and the projected end.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), AsOf),
    responses(
        (status = 200, description = "Time served", body = TimeServed),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/time-served")]
pub async fn time_served(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<AsOf>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let today = ctx.today();
    let as_of = query.as_of.unwrap_or(today);
    let t = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &id, today, Access::Read)?;
            service::time_served(c, &id, today, as_of)
        })
        .await?;
    Ok(HttpResponse::Ok().json(t))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesPage {
    /// The last `seq` you have: only later changes are returned (sync from a phone).
    pub since: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Changes feed and history of an enrolment
///
/// Every change to the plan and to the trainee's records, deletions included, oldest
/// first, with who made it. A phone keeps the last `seq` it saw and asks with `since`.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ChangesPage),
    responses(
        (status = 200, description = "Changes", body = Page<Change>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/changes")]
pub async fn list_changes(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<ChangesPage>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let after = match page.after()? {
        None => q.since,
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| AppError::validation("cursor", "is not a cursor from this API"))?,
        ),
    };
    let today = ctx.today();
    let rows = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &id, today, Access::Read)?;
            service::changes(c, &id, after, limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |c| c.seq.to_string())))
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_enrolment)
        .service(list_enrolments)
        .service(get_enrolment)
        .service(patch_enrolment)
        .service(migrate_template)
        .service(add_placement)
        .service(patch_placement)
        .service(delete_placement)
        .service(add_leave)
        .service(add_extent_change)
        .service(delete_leave)
        .service(add_assignment)
        .service(end_assignment)
        .service(external_assessor_independence)
        .service(add_credited_service)
        .service(time_served)
        .service(list_changes)
        .service(super::http_goals::list_goals)
        .service(super::http_goals::add_goal)
        .service(super::http_goals::patch_goal);
}
