//! The final assessment and certificate endpoints.

use actix_web::http::{header, StatusCode};
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};

use super::application::{self, ApplicationSummary};
use super::certificates::CertificateDraft;
use super::service::{
    FinalAssessment, FinalAssessmentPatch, NewFinalAssessment, SignFinalAssessment,
};
use super::{certificates, service};
use crate::app::AppState;
use crate::context::Ctx;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::{check_if_match, if_match, negotiate, with_etag, Page};
use crate::ids::EnrolmentId;

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
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    body: web::Json<NewFinalAssessment>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let f = ctx
        .write(move |c, ctx| {
            let (f, mails) = service::create(c, ctx, &id, body.into_inner())?;
            crate::notifications::queue(c, ctx.keyring()?, ctx.now, mails)?;
            Ok(f)
        })
        .await?;
    state.outbox.wake();
    Ok(with_etag(StatusCode::CREATED, f.etag(), &f))
}

/// List a trainee's final assessments
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path, description = "Enrolment"), crate::http::PageParams),
    responses(
        (status = 200, description = "Oldest first", body = Page<FinalAssessment>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/final-assessments")]
pub async fn list_final_assessments(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    query: web::Query<crate::http::PageParams>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = ctx.today();
    let items = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &EnrolmentId::from(&id), today, Access::Read)?;
            service::list(c, &id)?
                .into_iter()
                .map(|f| service::with_independence(c, &ctx.config, f))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::of_list(items, &query, |f| f.id.to_string())?))
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
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = ctx.today();
    let f = ctx
        .read(move |c, ctx| {
            let f = service::readable(c, &ctx.caller, &id, today)?;
            service::with_independence(c, &ctx.config, f)
        })
        .await?;
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
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<FinalAssessmentPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let expected = if_match(&req);
    let f = ctx
        .write(move |c, ctx| {
            service::update(
                c,
                ctx,
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
    ctx: Ctx,
    path: web::Path<String>,
    body: Option<web::Json<SignFinalAssessment>>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let expected = if_match(&req);
    let body = body.map(|b| b.into_inner()).unwrap_or_default();
    // A wrong code is committed too (it counts against a limit); mail only on success.
    let f = ctx
        .write(move |c, ctx| {
            match service::sign(
                c,
                ctx,
                &id,
                |t| check_if_match(expected.as_deref(), t),
                body,
            )? {
                Ok((f, mails)) => {
                    crate::notifications::queue(c, ctx.keyring()?, ctx.now, mails)?;
                    Ok(Ok(f))
                }
                Err(e) => Ok(Err(e)),
            }
        })
        .await??;
    state.outbox.wake();
    crate::telemetry::metrics::signed("final_assessment");
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
    params(("id" = String, Path), crate::http::PageParams),
    responses(
        (status = 200, description = "A page of the drafts", body = Page<CertificateDraft>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Not decided as achieved", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/final-assessments/{id}/certificates")]
pub async fn list_certificates(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<crate::http::PageParams>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = ctx.today();
    query.limit()?;
    let drafts = ctx
        .read(move |c, ctx| {
            let f = service::readable(c, &ctx.caller, &id, today)?;
            certificates::drafts(c, ctx.keyring()?, &f, today)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::of_list(drafts, &query, |d| d.key.clone())?))
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
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let kind = negotiate(&req, &["application/pdf", "application/json"])?;
    let (id, key) = path.into_inner();
    let today = ctx.today();
    let now = ctx.now;
    let draft = ctx
        .read(move |c, ctx| {
            let f = service::readable(c, &ctx.caller, &id, today)?;
            certificates::drafts(c, ctx.keyring()?, &f, today)?
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
    let pdf = web::block(move || certificates::render(&draft, now)).await??;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((header::VARY, "Accept"))
        .body(pdf))
}

/// The application summary
///
/// The certificates the trainee's application encloses (BT: HSLF-FS 2021:8 bilaga 1,
/// "Ansökan om intyg om godkänd bastjänstgöring"; ST 2021: bilaga 5, "Ansökan om bevis
/// om specialistkompetens"; ST 2015: the SOSFS 2015:8 set), each `signed` (the service
/// holds its signatures), `drafted` (from the portfolio, to sign on paper) or `missing`
/// (with the reason). `Accept: application/pdf` gives the same list as a PDF. For those
/// who may read the enrolment.
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path, description = "Enrolment")),
    responses(
        (status = 200, description = "The summary", content(
            (ApplicationSummary = "application/json"),
            (crate::http::FileBody = "application/pdf"),
        )),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 406, description = "Neither PDF nor JSON is acceptable", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "The enrolment's regulation has no catalogued certificates", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/application-summary")]
pub async fn get_application_summary(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
) -> Result<HttpResponse, AppError> {
    let kind = negotiate(&req, &["application/json", "application/pdf"])?;
    let id = path.into_inner();
    let today = ctx.today();
    let now = ctx.now;
    let summary = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &EnrolmentId::from(&id), today, Access::Read)?;
            let finals = service::list(c, &id)?;
            application::summary(c, ctx.keyring()?, &id, &finals, today)
        })
        .await?;
    if kind == "application/json" {
        return Ok(HttpResponse::Ok()
            .insert_header((header::VARY, "Accept"))
            .json(summary));
    }
    let pdf = web::block(move || application::render(&summary, now)).await??;
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
        .service(get_certificate)
        .service(get_application_summary);
}
