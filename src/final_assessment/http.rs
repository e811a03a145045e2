//! The final assessment and certificate endpoints.

use actix_web::http::{header, StatusCode};
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};

use super::certificates::CertificateDraft;
use super::service::{
    FinalAssessment, FinalAssessmentPatch, NewFinalAssessment, SignFinalAssessment,
};
use super::{certificates, service};
use crate::app::AppState;
use crate::auth::principal::Principal;
use crate::db;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::{check_if_match, client_info, if_match, negotiate, with_etag, Page};

const PROBLEM: &str = "application/problem+json";

/// Draft the final assessment
///
/// `mode: external_assessor`: the assigned external assessor or the main supervisor
/// drafts it; both sign. `mode: committee`: a director of studies convenes a clinical
/// competence committee (`committee_member_ids`), whose members all sign one decision.
/// Judgements per delmål may be filled in now or later.
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewFinalAssessment, example = json!({
        "mode": "external_assessor",
        "judgements": [{"code": "BT1", "judgement": "achieved", "comment": "Väl belagt av fyra Mini-CEX."}],
        "decision": null
    })),
    responses(
        (status = 201, description = "The draft", body = FinalAssessment),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/final-assessments")]
pub async fn create_final_assessment(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<NewFinalAssessment>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let f = crate::notifications::write_and_deliver(&state, move |c| {
        service::create(c, &cfg, now, &me, &client, &id, body.into_inner())
    })
    .await?;
    Ok(with_etag(StatusCode::CREATED, f.etag(), &f))
}

/// List a trainee's final assessments
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path, description = "Enrolment")),
    responses(
        (status = 200, description = "Oldest first", body = Page<FinalAssessment>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/final-assessments")]
pub async fn list_final_assessments(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = state.clock.now().date_naive();
    let items = db::run(&state.pool, move |c| {
        access::require(c, &me, &id, today, Access::Read)?;
        service::list(c, &id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}

/// Get a final assessment
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The final assessment", body = FinalAssessment),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/final-assessments/{id}")]
pub async fn get_final_assessment(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = state.clock.now().date_naive();
    let f = db::run(&state.pool, move |c| service::readable(c, &me, &id, today)).await?;
    Ok(with_etag(StatusCode::OK, f.etag(), &f))
}

/// Edit an undecided final assessment
///
/// By one of those who decide. Signatures given so far are withdrawn, since they were for
/// other content; everyone signs again.
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = FinalAssessmentPatch,
    responses(
        (status = 200, description = "Edited", body = FinalAssessment),
        (status = 409, description = "Decided; final", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/final-assessments/{id}")]
pub async fn patch_final_assessment(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<FinalAssessmentPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    let expected = if_match(&req);
    let f = db::write(&state.pool, move |c| {
        service::update(
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
    Ok(with_etag(StatusCode::OK, f.etag(), &f))
}

/// Sign the final assessment
///
/// Each of those who decide signs the same content with a second factor: the session's
/// own, or a fresh `totp_code`/`recovery_code` (required when the session rests on a
/// remembered device). Needs a decision, a judgement of every delmål that agrees with it,
/// and a final check-in confirmed by the trainee and the main supervisor. The last
/// signature decides; the decision is then final.
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = SignFinalAssessment,
    responses(
        (status = 200, description = "Signed; `status` is `decided` after the last signature", body = FinalAssessment),
        (status = 401, description = "The code is wrong", body = crate::error::Problem, content_type = PROBLEM),
        (status = 403, description = "Not one who decides, or a second factor is required", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Decided, or already signed", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/final-assessments/{id}/sign")]
pub async fn sign_final_assessment(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: Option<web::Json<SignFinalAssessment>>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let expected = if_match(&req);
    let body = body.map(|b| b.into_inner()).unwrap_or_default();
    let f = crate::notifications::write_and_deliver_checked(&state, move |c| {
        service::sign(
            c,
            &cfg,
            now,
            &me,
            &client,
            &id,
            |t| check_if_match(expected.as_deref(), t),
            body,
        )
    })
    .await?;
    Ok(with_etag(StatusCode::OK, f.etag(), &f))
}

/// Certificates to sign
///
/// After a decision that the competence is achieved: the certificates the regulation
/// asks for, filled in from the portfolio, as drafts to print and sign. For BT: "Intyg om
/// uppnådd baskompetens" (main supervisor and external assessor), "Intyg om delmål i
/// bastjänstgöringen" per supervisor, and "Intyg om fullgjord bastjänstgöring" for the
/// head of department.
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The drafts", body = Vec<CertificateDraft>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Not decided as achieved", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/final-assessments/{id}/certificates")]
pub async fn list_certificates(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = state.clock.now().date_naive();
    let drafts = db::run(&state.pool, move |c| {
        let f = service::readable(c, &me, &id, today)?;
        certificates::drafts(c, &f, today)
    })
    .await?;
    Ok(HttpResponse::Ok().json(drafts))
}

/// A certificate draft
///
/// `Accept: application/pdf` gives the draft as a PDF ready to print and sign;
/// `application/json` the same fields as data.
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path), ("key" = String, Path, description = "From the list of drafts")),
    responses(
        (status = 200, description = "The draft", content(
            (CertificateDraft = "application/json"),
            (crate::http::FileBody = "application/pdf"),
        )),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 406, description = "Neither PDF nor JSON is acceptable", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Not decided as achieved", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/final-assessments/{id}/certificates/{key}")]
pub async fn get_certificate(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let kind = negotiate(&req, &["application/pdf", "application/json"])?;
    let (id, key) = path.into_inner();
    let today = state.clock.now().date_naive();
    let now = state.clock.now();
    let draft = db::run(&state.pool, move |c| {
        let f = service::readable(c, &me, &id, today)?;
        certificates::drafts(c, &f, today)?
            .into_iter()
            .find(|d| d.key == key)
            .ok_or(AppError::NotFound)
    })
    .await?;
    if kind == "application/json" {
        return Ok(HttpResponse::Ok()
            .insert_header((header::VARY, "Accept"))
            .json(draft));
    }
    let pdf = web::block(move || certificates::render(&draft, now)).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((header::VARY, "Accept"))
        .body(pdf))
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_final_assessment)
        .service(list_final_assessments)
        .service(get_final_assessment)
        .service(patch_final_assessment)
        .service(sign_final_assessment)
        .service(list_certificates)
        .service(get_certificate);
}
