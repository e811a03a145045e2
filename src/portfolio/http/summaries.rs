//! Summary assessments of placements: write, list, read, edit, sign, correct.

use actix_web::http::StatusCode;
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};

use super::PROBLEM;
use crate::app::AppState;
use crate::auth::principal::Principal;
use crate::db;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::{check_if_match, client_info, if_match, with_etag, Page};
use crate::portfolio::summaries::{self, NewSummary, SummaryAssessment, SummaryPatch};

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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<NewSummary>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    let s = db::write(&state.pool, move |c| {
        summaries::create(c, now, &me, &client, &id, body.into_inner())
    })
    .await?;
    Ok(with_etag(StatusCode::CREATED, s.etag(), &s))
}

/// List summary assessments
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path, description = "Enrolment")),
    responses(
        (status = 200, description = "All versions", body = Page<SummaryAssessment>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/summary-assessments")]
pub async fn list_summaries(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = state.clock.now().date_naive();
    let items = db::run(&state.pool, move |c| {
        access::require(c, &me, &id, today, Access::Read)?;
        summaries::list(c, &id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
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
pub async fn get_summary(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = state.clock.now().date_naive();
    let s = db::run(&state.pool, move |c| {
        summaries::readable(c, &me, &id, today)
    })
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<SummaryPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    let expected = if_match(&req);
    let s = db::write(&state.pool, move |c| {
        summaries::update(
            c,
            now,
            &me,
            &client,
            &id,
            |t| check_if_match(expected.as_deref(), t),
            body.into_inner(),
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let s = crate::notifications::write_and_deliver(&state, move |c| {
        summaries::sign(c, &cfg, now, &me, &client, &id)
    })
    .await?;
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<SummaryPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    let s = db::write(&state.pool, move |c| {
        summaries::correct(c, now, &me, &client, &id, body.into_inner())
    })
    .await?;
    Ok(with_etag(StatusCode::CREATED, s.etag(), &s))
}
