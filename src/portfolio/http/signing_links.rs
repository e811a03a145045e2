//! Signing links: what an assessor without an account opens, signs or declines.

use actix_web::{get, post, web, HttpResponse};

use super::assessments::DeclineRequest;
use super::PROBLEM;
use crate::app::AppState;
use crate::context::Context;
use crate::error::AppError;
use crate::portfolio::assessments::{self, Assessment, AssessmentContent};
use crate::privacy::guard::Guarded;
use crate::telemetry::security::{Event, SecurityEvent};

/// Open a signing link
///
/// For an assessor without an account: the assessment to complete, its form and who
/// asked. The link is bound to one address and one assessment and expires (14 days).
#[utoipa::path(
    tag = "assessments",
    params(("token" = String, Path, description = "The token from the mailed link")),
    responses(
        (status = 200, description = "The assessment to complete", body = assessments::SigningLinkView),
        (status = 422, description = "Link unknown, used or expired", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(())
)]
#[get("/auth/signing-links/{token}")]
pub async fn open_signing_link(
    ctx: Context<()>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let view = ctx
        .read(move |c, ctx| assessments::link_view(c, ctx.now, &token))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Complete and sign through a signing link
///
/// One request with the ratings and feedback. The signature records the address the link
/// was bound to; the link then stops working.
#[utoipa::path(
    tag = "assessments",
    params(("token" = String, Path, description = "The token from the mailed link")),
    request_body = AssessmentContent,
    responses(
        (status = 200, description = "Signed", body = Assessment),
        (status = 422, description = "Link unknown, used or expired, or the form is incomplete", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(())
)]
#[post("/auth/signing-links/{token}/sign")]
pub async fn sign_by_link(
    ctx: Context<()>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Guarded<AssessmentContent>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let (body, ack) = body.into_parts();
    let a = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record_for(c, ctx.now, None, ctx.client.user_agent.as_deref())?;
        assessments::sign_by_link(c, ctx, &token, body)
    })
    .await?;
    SecurityEvent::new(Event::SigningLinkUsed)
        .kind("sign")
        .client(&ctx.client)
        .emit();
    crate::telemetry::metrics::signed("assessment_by_link");
    Ok(HttpResponse::Ok().json(a))
}

/// Decline through a signing link
#[utoipa::path(
    tag = "assessments",
    params(("token" = String, Path, description = "The token from the mailed link")),
    request_body = DeclineRequest,
    responses(
        (status = 200, description = "Declined; the trainee is told why", body = Assessment),
        (status = 422, description = "Link unknown, used or expired", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(())
)]
#[post("/auth/signing-links/{token}/decline")]
pub async fn decline_by_link(
    ctx: Context<()>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Guarded<DeclineRequest>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let (body, ack) = body.into_parts();
    let a = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record_for(c, ctx.now, None, ctx.client.user_agent.as_deref())?;
        assessments::decline_by_link(c, ctx, &token, &body.reason)
    })
    .await?;
    SecurityEvent::new(Event::SigningLinkUsed)
        .kind("decline")
        .client(&ctx.client)
        .emit();
    Ok(HttpResponse::Ok().json(a))
}
