//! Vetting of assessors without an account: the list to vet, their qualifications,
//! approve, decline.

use actix_web::{get, post, put, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::AppState;
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::{Page, PageParams};
use crate::portfolio::qualifications::QualificationsInput;
use crate::portfolio::vetting::{
    approve, decline, list, state_qualifications, ExternalAssessor, VettingStatus, PENDING,
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExternalAssessorFilter {
    /// `pending` (default), `approved` or `declined`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Assessors without an account, to vet
///
/// For main supervisors (the people their trainees named) and directors of studies (of
/// their organisations); a trainee sees the people they named. An approval holds for
/// every trainee of that organisation. Each carries its qualification warnings.
#[utoipa::path(
    tag = "assessments",
    params(ExternalAssessorFilter),
    responses((status = 200, description = "A page of people named as assessors", body = Page<ExternalAssessor>)),
    security(("bearer" = []))
)]
#[get("/external-assessors")]
pub async fn list_external_assessors(
    ctx: Ctx,
    query: web::Query<ExternalAssessorFilter>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    let status = match q.status.as_deref() {
        None => PENDING,
        Some(s) => VettingStatus::from_code(s).ok_or_else(|| {
            AppError::validation("status", "must be pending, approved or declined")
        })?,
    };
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let rows = ctx
        .read(move |c, ctx| list(c, &ctx.caller, ctx.today(), status, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |x| x.id.clone())))
}

/// Approve an assessor without an account
///
/// One action: the person may now be sent signing links by trainees of this
/// organisation, and every assessment waiting for them goes out now.
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Approved; waiting requests were sent", body = ExternalAssessor),
        (status = 404, description = "Unknown, or not yours to vet", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already approved or declined", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The service requires both qualifications and one is missing", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/external-assessors/{id}/approve")]
pub async fn approve_external_assessor(
    ctx: Ctx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let x = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| approve(c, ctx, &id))
        .await?;
    Ok(HttpResponse::Ok().json(x))
}

/// Decline an assessor without an account
///
/// No link goes to the person; assessments waiting for them return to their trainees
/// as drafts, to be asked of someone else.
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Declined", body = ExternalAssessor),
        (status = 404, description = "Unknown, or not yours to vet", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already approved or declined", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/external-assessors/{id}/decline")]
pub async fn decline_external_assessor(
    ctx: Ctx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let x = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| decline(c, ctx, &id))
        .await?;
    Ok(HttpResponse::Ok().json(x))
}

/// State an assessor's qualifications
///
/// Specialist status (specialty or "ej specialist") and training in assessment methods
/// of a person still being vetted: by the trainee who named them, or by whoever may
/// approve them. The approval confirms what is stated; without either qualification
/// the vetter sees a warning (a block where `ASSESSOR_QUALIFICATIONS_REQUIRED` is set).
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    request_body = QualificationsInput,
    responses(
        (status = 200, description = "Stated", body = ExternalAssessor),
        (status = 404, description = "Unknown, or not yours", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already approved or declined, or changed meanwhile", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not valid", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/external-assessors/{id}/qualifications")]
pub async fn put_external_assessor_qualifications(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<QualificationsInput>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let x = ctx
        .write(move |c, ctx| state_qualifications(c, ctx, &id, &body))
        .await?;
    Ok(HttpResponse::Ok().json(x))
}
