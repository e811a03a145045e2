//! Endpoints of the trainee's voice: the evaluation form, a placement's evaluation, the
//! aggregate per unit, and group reviews.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::evaluations::{self, EvaluationSummary, NewPlacementEvaluation, PlacementEvaluation};
use super::form::{self, EvaluationForm};
use super::group_reviews::{self, GroupReview, NewGroupReview};
use crate::context::Ctx;
use crate::error::{AppError, PROBLEM_JSON as PROBLEM};
use crate::http::{Page, PageParams};
use crate::ids::{EnrolmentId, GroupReviewId, OrganisationId, PlacementId};
use crate::privacy::guard::Guarded;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_form)
        .service(submit_evaluation)
        .service(get_evaluation)
        .service(evaluation_summary)
        .service(create_group_review)
        .service(list_group_reviews)
        .service(get_group_review);
}

/// The placement evaluation form
///
/// The questions a trainee answers after each placement, with the scale. The same form
/// for every region; its topics and their source are in `catalog/placement-evaluation.json`.
#[utoipa::path(
    tag = "feedback",
    responses((status = 200, description = "The form", body = EvaluationForm)),
    security(("bearer" = []))
)]
#[get("/placement-evaluation-form")]
pub async fn get_form(_ctx: Ctx) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(form::form()?))
}

/// Evaluate a placement
///
/// The trainee's evaluation of a placement that has ended, once. Nobody else reads it:
/// directors see the answers only aggregated per unit and closed half-year
/// (`GET /organisations/{id}/placement-evaluations`).
#[utoipa::path(
    tag = "feedback",
    params(("id" = String, Path, description = "Placement"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body = NewPlacementEvaluation,
    responses(
        (status = 201, description = "Recorded", body = PlacementEvaluation),
        (status = 403, description = "Not the trainee of this placement", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already evaluated, or the placement has not ended", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "An answer missing or off the scale", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/placements/{id}/evaluation")]
pub async fn submit_evaluation(
    ctx: Ctx,
    path: web::Path<String>,
    body: Guarded<NewPlacementEvaluation>,
) -> Result<HttpResponse, AppError> {
    let id = PlacementId::new(path.into_inner());
    let (body, ack) = body.into_parts();
    let e = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            evaluations::submit(c, ctx, &id, body)
        })
        .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(e))
}

/// My evaluation of a placement
#[utoipa::path(
    tag = "feedback",
    params(("id" = String, Path, description = "Placement")),
    responses(
        (status = 200, description = "The trainee's own evaluation", body = PlacementEvaluation),
        (status = 403, description = "Not the trainee of this placement", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Not evaluated, unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/placements/{id}/evaluation")]
pub async fn get_evaluation(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = PlacementId::new(path.into_inner());
    let e = ctx
        .read(move |c, ctx| evaluations::get_own(c, ctx, &id))
        .await?;
    Ok(HttpResponse::Ok().json(e))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HalfYearParam {
    /// A half-year that has ended: `2026-H1` (January to June) or `2026-H2`.
    #[param(example = "2026-H1")]
    pub half_year: String,
}

/// Placement evaluations per unit
///
/// For the organisation's administrators and directors of studies: each unit of its
/// subtree with evaluations submitted in the half-year, as means per question and the
/// comments in alphabetical order. A unit with fewer answers than the form's minimum
/// group size (3) is marked suppressed and shows nothing else; there are no totals over
/// units, and a half-year is shown only once it has ended, so that no one answer can be
/// told apart.
#[utoipa::path(
    tag = "feedback",
    params(("id" = String, Path, description = "Organisation"), HalfYearParam),
    responses(
        (status = 200, description = "The units' aggregated answers", body = EvaluationSummary),
        (status = 403, description = "Not an administrator or director of studies of the organisation", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown organisation", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "The half-year has not ended", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/organisations/{id}/placement-evaluations")]
pub async fn evaluation_summary(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<HalfYearParam>,
) -> Result<HttpResponse, AppError> {
    let id = OrganisationId::new(path.into_inner());
    let half_year = query.into_inner().half_year;
    let s = ctx
        .read(move |c, ctx| evaluations::summary(c, ctx, &id, &half_year))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Record a group review
///
/// By the trainee's supervisors, directors of studies or administrators (kollegium).
#[utoipa::path(
    tag = "feedback",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body = NewGroupReview,
    responses(
        (status = 201, description = "Recorded", body = GroupReview),
        (status = 403, description = "The trainee, or a reader of the plan only", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/group-reviews")]
pub async fn create_group_review(
    ctx: Ctx,
    path: web::Path<String>,
    body: Guarded<NewGroupReview>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::new(path.into_inner());
    let (body, ack) = body.into_parts();
    let r = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            group_reviews::record(c, ctx, &id, body)
        })
        .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(r))
}

/// List group reviews
#[utoipa::path(
    tag = "feedback",
    params(("id" = String, Path, description = "Enrolment"), PageParams),
    responses(
        (status = 200, description = "The enrolment's group reviews, oldest first", body = Page<GroupReview>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/group-reviews")]
pub async fn list_group_reviews(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::new(path.into_inner());
    let params = query.into_inner();
    let all = ctx
        .read(move |c, ctx| group_reviews::list(c, ctx, &id))
        .await?;
    Ok(HttpResponse::Ok().json(Page::of_list(all, &params, |r| r.id.clone())?))
}

/// Get a group review
#[utoipa::path(
    tag = "feedback",
    params(("id" = String, Path, description = "Group review")),
    responses(
        (status = 200, description = "The group review", body = GroupReview),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/group-reviews/{id}")]
pub async fn get_group_review(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = GroupReviewId::new(path.into_inner());
    let r = ctx
        .read(move |c, ctx| group_reviews::get(c, ctx, &id))
        .await?;
    Ok(HttpResponse::Ok().json(r))
}
