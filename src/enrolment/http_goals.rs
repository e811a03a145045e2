//! The study-plan goal endpoints (individuell utbildningsplan): parse, authorise, call
//! `goals.rs`, map. Registered with the other enrolment routes in `http.rs`.

use actix_web::http::StatusCode;
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};

use super::access::{self, Access};
use super::http::PROBLEM;
use super::service::{self, StudyPlanGoal, StudyPlanGoalInput, StudyPlanGoalPatch};
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag, Page, PageParams};
use crate::ids::EnrolmentId;

/// The individual study plan
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), PageParams),
    responses(
        (status = 200, description = "Goals", body = Page<StudyPlanGoal>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/study-plan-goals")]
pub async fn list_goals(
    ctx: Ctx,
    path: web::Path<String>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let today = ctx.today();
    let items = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &id, today, Access::Read)?;
            service::list_goals(c, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::of_list(items, &query, |g| g.id.to_string())?))
}

/// Add a goal to the study plan
///
/// The trainee, their supervisors and the programme's managers may write the plan.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = StudyPlanGoalInput, example = json!({"goal": "Leda ett överlämningsmöte på vårdavdelningen", "delmal": ["BT10"]})),
    responses(
        (status = 201, description = "Added", body = StudyPlanGoal),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/study-plan-goals")]
pub async fn add_goal(
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<StudyPlanGoalInput>,
) -> Result<HttpResponse, AppError> {
    let id = EnrolmentId::from(path.into_inner());
    let g = ctx
        .write(move |c, ctx| service::add_goal(c, ctx.now, &ctx.caller, &id, body.into_inner()))
        .await?;
    Ok(with_etag(StatusCode::CREATED, g.etag(), &g))
}

/// Change a study-plan goal
///
/// Every version stays in the enrolment's history.
#[utoipa::path(
    tag = "enrolment",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = StudyPlanGoalPatch,
    responses(
        (status = 200, description = "Updated", body = StudyPlanGoal),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/study-plan-goals/{id}")]
pub async fn patch_goal(
    req: HttpRequest,
    ctx: Ctx,
    path: web::Path<String>,
    body: web::Json<StudyPlanGoalPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let expected = if_match(&req);
    let g = ctx
        .write(move |c, ctx| {
            service::update_goal(
                c,
                ctx.now,
                &ctx.caller,
                &id,
                |t| check_if_match(expected.as_deref(), t),
                body.into_inner(),
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, g.etag(), &g))
}
