//! Summary assessments of placements: write, list, read, edit, sign, correct.

use actix_web::http::StatusCode;
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};

use super::PROBLEM;
use crate::app::AppState;
use crate::context::Ctx;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag, Page};
use crate::ids::EnrolmentId;
use crate::portfolio::summaries::{self, NewSummary, SummaryAssessment, SummaryPatch};
use crate::privacy::guard::Guarded;

/// Write a summary assessment of a placement
///
/// By that placement's supervisor (the main supervisor for placement 1): a judgement per
/// delmål worked on there and an overall assessment. A draft until signed.
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewSummary, example = json!({
        "placement_id": "…", "judgements": [{"code": "BT1", "judgement": "progressing", "comment": "Behöver fler sepsisfall."}],
        "overall": "En trygg och engagerad BT-läkare."
    })),
    responses(
        (status = 201, description = "Draft saved", body = SummaryAssessment),
        (status = 403, description = "Not the placement's supervisor", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/summary-assessments")]
pub async fn create_summary(
    ctx: Ctx,
    _req: HttpRequest,
    path: web::Path<EnrolmentId>,
    body: Guarded<NewSummary>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let s = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            summaries::create(c, ctx, &id, body)
        })
        .await?;
    Ok(with_etag(StatusCode::CREATED, s.etag(), &s))
}

/// List summary assessments
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path, description = "Enrolment"), crate::http::PageParams),
    responses(
        (status = 200, description = "All versions", body = Page<SummaryAssessment>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/summary-assessments")]
pub async fn list_summaries(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    query: web::Query<crate::http::PageParams>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let items = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &id, ctx.today(), Access::Read)?;
            summaries::list(c, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::of_list(items, &query, |s| s.id.to_string())?))
}

/// Get a summary assessment
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The summary assessment", body = SummaryAssessment),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/summary-assessments/{id}")]
pub async fn get_summary(ctx: Ctx, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let s = ctx
        .read(move |c, ctx| summaries::readable(c, &ctx.caller, &id, ctx.today()))
        .await?;
    Ok(with_etag(StatusCode::OK, s.etag(), &s))
}

/// Save a summary assessment draft (partial)
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = SummaryPatch,
    responses(
        (status = 200, description = "Saved", body = SummaryAssessment),
        (status = 409, description = "Signed", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/summary-assessments/{id}")]
pub async fn patch_summary(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<SummaryPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let expected = if_match(&req);
    let s = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            summaries::update(
                c,
                ctx,
                &id,
                |t| check_if_match(expected.as_deref(), t),
                body,
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, s.etag(), &s))
}

/// Sign a summary assessment
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Signed; final", body = SummaryAssessment),
        (status = 409, description = "Already signed", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/summary-assessments/{id}/sign")]
pub async fn sign_summary(
    ctx: Ctx,
    state: web::Data<AppState>,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let s = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        summaries::sign(c, ctx, &id)
    })
    .await?;
    crate::telemetry::metrics::signed("summary_assessment");
    Ok(with_etag(StatusCode::OK, s.etag(), &s))
}

/// Correct a signed summary assessment
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    request_body = SummaryPatch,
    responses(
        (status = 201, description = "The correction (a draft)", body = SummaryAssessment),
        (status = 409, description = "Not signed, or already corrected", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/summary-assessments/{id}/corrections")]
pub async fn correct_summary(
    ctx: Ctx,
    _req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<SummaryPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let s = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            summaries::correct(c, ctx, &id, body)
        })
        .await?;
    Ok(with_etag(StatusCode::CREATED, s.etag(), &s))
}
