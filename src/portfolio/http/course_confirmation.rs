//! A course's kursledare: the trainee asks for the confirmation, anyone who reads the
//! enrolment sees it, and the kursledare opens and confirms it by link.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};

use super::PROBLEM;
use crate::app::AppState;
use crate::context::{Context, Ctx};
use crate::error::AppError;
use crate::http::with_etag;
use crate::ids::ActivityId;
use crate::portfolio::course_confirmation::{
    self, CourseConfirmation, CourseConfirmationLinkView, CourseConfirmationRequest,
};
use crate::telemetry::security::{Event, SecurityEvent};

/// Ask the kursledare to confirm a course
///
/// The trainee only, for an activity of kind `course`. The kursledare (name, e-mail,
/// workplace or course organiser; no account needed) is vetted as an assessor without an
/// account is: a person not yet approved in the organisation waits for the main
/// supervisor or a director of studies (`awaiting_vetting`); an approved one gets a
/// single-use link at once (`awaiting_confirmation`). Asking again replaces a request not
/// yet confirmed; a confirmed course: 409.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path, description = "The course activity"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request safe")),
    request_body(content = CourseConfirmationRequest, example = json!({
        "kursledare_email": "karin.kurs@kursgivare.se", "kursledare_name": "Karin Kurs",
        "kursledare_workplace": "Kursgivare Syd AB"
    })),
    responses(
        (status = 201, description = "Requested: sent, or waiting for vetting", body = CourseConfirmation, headers(("ETag" = String))),
        (status = 403, description = "Not the trainee", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already confirmed", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "Not a course, a field is not valid, or the person was not approved", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/activities/{id}/course-confirmation")]
pub async fn request_course_confirmation(
    ctx: Ctx,
    state: web::Data<AppState>,
    path: web::Path<ActivityId>,
    body: web::Json<CourseConfirmationRequest>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let body = body.into_inner();
    let c = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        course_confirmation::request(c, ctx, &id, body)
    })
    .await?;
    Ok(with_etag(StatusCode::CREATED, c.etag(), &c))
}

/// A course's kursledare confirmation
///
/// For anyone who may read the enrolment: whom the trainee asked, the state of the
/// request and, once confirmed, who confirmed it (role kursledare) and when.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path, description = "The course activity")),
    responses(
        (status = 200, description = "The request or confirmation", body = CourseConfirmation, headers(("ETag" = String))),
        (status = 404, description = "None asked for, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/activities/{id}/course-confirmation")]
pub async fn get_course_confirmation(
    ctx: Ctx,
    path: web::Path<ActivityId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let c = ctx
        .read(move |c, ctx| course_confirmation::get(c, ctx, &id))
        .await?;
    Ok(with_etag(StatusCode::OK, c.etag(), &c))
}

/// Open a course confirmation link
///
/// For the kursledare, without an account: the course, the trainee and what confirming
/// states. The link is bound to one address and one course and expires (14 days).
#[utoipa::path(
    tag = "portfolio",
    params(("token" = String, Path, description = "The token from the mailed link")),
    responses(
        (status = 200, description = "The course to confirm", body = CourseConfirmationLinkView),
        (status = 409, description = "Already confirmed: the link was used", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "Link unknown or expired", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(())
)]
#[get("/auth/course-confirmation-links/{token}")]
pub async fn open_course_confirmation_link(
    ctx: Context<()>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let view = ctx
        .read(move |c, ctx| course_confirmation::link_view(c, ctx.now, &token))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Confirm a course through its link
///
/// The kursledare confirms that the trainee took part in the course and met its
/// kompetenskrav. Recorded with role kursledare, the link's address and the time; the
/// confirmation then never changes and the link stops working. Of two confirmations at
/// once one succeeds and the other gets 409.
#[utoipa::path(
    tag = "portfolio",
    params(("token" = String, Path, description = "The token from the mailed link")),
    responses(
        (status = 200, description = "Confirmed", body = CourseConfirmation),
        (status = 409, description = "Already confirmed", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "Link unknown or expired", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(())
)]
#[post("/auth/course-confirmation-links/{token}/confirm")]
pub async fn confirm_course(
    ctx: Context<()>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let c = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        course_confirmation::confirm(c, ctx, &token)
    })
    .await?;
    SecurityEvent::new(Event::SigningLinkUsed)
        .kind("course_confirmation")
        .client(&ctx.client)
        .emit();
    Ok(HttpResponse::Ok().json(c))
}
