//! Talks: supervision sessions, handover talks and final check-ins (one table, one
//! set of rules; the kind is fixed by the route).

use actix_web::http::{header, StatusCode};
use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};

use super::{not_modified, PROBLEM};
use crate::app::AppState;
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag, Page, PageParams};
use crate::ids::EnrolmentId;
use crate::portfolio::talks::{
    self, NewFinalCheckIn, NewHandoverTalk, NewSupervisionSession, NewSupervisorCheckIn, Talk,
    TalkContent, TalkKind,
};
use crate::privacy::guard::Guarded;

async fn talk_list(
    ctx: Ctx,
    enrolment: EnrolmentId,
    kind: TalkKind,
    page: PageParams,
) -> Result<HttpResponse, AppError> {
    let (limit, after) = (page.limit()?, page.after()?);
    let rows = ctx
        .read(move |c, ctx| {
            talks::list_readable(
                c,
                &ctx.caller,
                &enrolment,
                kind,
                ctx.today(),
                after.as_deref(),
                limit,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |t| t.id.clone())))
}

async fn talk_get(
    ctx: Ctx,
    req: HttpRequest,
    id: String,
    kind: TalkKind,
) -> Result<HttpResponse, AppError> {
    let t = ctx
        .read(move |c, ctx| talks::readable(c, &ctx.caller, &id, kind, ctx.today()))
        .await?;
    let tag = t.etag();
    if not_modified(&req, &tag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }
    Ok(with_etag(StatusCode::OK, tag, &t))
}

async fn talk_patch(
    ctx: Ctx,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: String,
    kind: TalkKind,
    content: Guarded<TalkContent>,
) -> Result<HttpResponse, AppError> {
    let expected = if_match(&req);
    let (content, ack) = content.into_parts();
    let t = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record(c, ctx)?;
        talks::update(
            c,
            ctx,
            &id,
            kind,
            |tag| check_if_match(expected.as_deref(), tag),
            content,
        )
    })
    .await?;
    Ok(with_etag(StatusCode::OK, t.etag(), &t))
}

async fn talk_confirm(ctx: Ctx, id: String, kind: TalkKind) -> Result<HttpResponse, AppError> {
    let t = ctx
        .write(move |c, ctx| talks::confirm(c, ctx, &id, kind))
        .await?;
    Ok(with_etag(StatusCode::OK, t.etag(), &t))
}

/// Record a supervision session
///
/// Ad hoc, whenever it happened: by the trainee or one of their supervisors. The other
/// participants are asked to confirm by mail.
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewSupervisionSession, example = json!({
        "held_on": "2026-10-20", "participant_ids": [], "topics": ["Bemötande i svåra samtal"],
        "notes": "Gick igenom ett svårt samtal från förra veckan.", "agreed_actions": "Medsittning nästa vecka.", "delmal": ["BT9"]
    })),
    responses(
        (status = 201, description = "Recorded; confirmed by its creator", body = Talk),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/supervision-sessions")]
pub async fn create_supervision_session(
    ctx: Ctx,
    state: web::Data<AppState>,
    _req: HttpRequest,
    path: web::Path<EnrolmentId>,
    body: Guarded<NewSupervisionSession>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let t = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record(c, ctx)?;
        talks::create_session(c, ctx, &id, body)
    })
    .await?;
    Ok(with_etag(StatusCode::CREATED, t.etag(), &t))
}

/// List supervision sessions
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path, description = "Enrolment"), PageParams),
    responses(
        (status = 200, description = "A page of sessions", body = Page<Talk>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/supervision-sessions")]
pub async fn list_supervision_sessions(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    talk_list(
        ctx,
        path.into_inner(),
        TalkKind::Supervision,
        query.into_inner(),
    )
    .await
}

/// Get a supervision session
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The session", body = Talk),
        (status = 304, description = "Unchanged since the ETag you sent"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/supervision-sessions/{id}")]
pub async fn get_supervision_session(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_get(ctx, req, path.into_inner(), TalkKind::Supervision).await
}

/// Edit a supervision session (partial)
///
/// Until every participant has confirmed. The others are asked to confirm again.
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = TalkContent,
    responses(
        (status = 200, description = "Saved", body = Talk),
        (status = 409, description = "Confirmed by everyone: final", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/supervision-sessions/{id}")]
pub async fn patch_supervision_session(
    ctx: Ctx,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<TalkContent>,
) -> Result<HttpResponse, AppError> {
    talk_patch(
        ctx,
        state,
        req,
        path.into_inner(),
        TalkKind::Supervision,
        body,
    )
    .await
}

/// Confirm a supervision session
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Confirmed (final once everyone has)", body = Talk),
        (status = 403, description = "Not a participant", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already confirmed", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/supervision-sessions/{id}/confirm")]
pub async fn confirm_supervision_session(
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_confirm(ctx, path.into_inner(), TalkKind::Supervision).await
}

/// Record a handover talk
///
/// At a placement change, led by the trainee with the main supervisor and the outgoing
/// and incoming placement supervisors, who are each asked to confirm.
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewHandoverTalk, example = json!({
        "held_on": "2026-12-28", "placement_id": "…", "next_placement_id": "…",
        "outgoing_supervisor_id": "…", "incoming_supervisor_id": "…",
        "handover": {"delmal_status": [{"code": "BT1", "status": "in_progress", "comment": "Två Mini-CEX klara"}],
                     "strengths": "Trygg i akuta bedömningar.", "areas_to_develop": "Prioritering.",
                     "plan_next_placement": "DOPS första månaden."}
    })),
    responses(
        (status = 201, description = "Recorded; confirmed by the trainee", body = Talk),
        (status = 403, description = "Only the trainee records it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/handover-talks")]
pub async fn create_handover_talk(
    ctx: Ctx,
    state: web::Data<AppState>,
    _req: HttpRequest,
    path: web::Path<EnrolmentId>,
    body: Guarded<NewHandoverTalk>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let t = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record(c, ctx)?;
        talks::create_handover(c, ctx, &id, body)
    })
    .await?;
    Ok(with_etag(StatusCode::CREATED, t.etag(), &t))
}

/// List handover talks
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path, description = "Enrolment"), PageParams),
    responses(
        (status = 200, description = "A page of handover talks", body = Page<Talk>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/handover-talks")]
pub async fn list_handover_talks(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    talk_list(
        ctx,
        path.into_inner(),
        TalkKind::Handover,
        query.into_inner(),
    )
    .await
}

/// Get a handover talk
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The handover talk", body = Talk),
        (status = 304, description = "Unchanged since the ETag you sent"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/handover-talks/{id}")]
pub async fn get_handover_talk(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_get(ctx, req, path.into_inner(), TalkKind::Handover).await
}

/// Edit a handover talk (partial)
///
/// Until all four have confirmed. The others are asked to confirm again.
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = TalkContent,
    responses(
        (status = 200, description = "Saved", body = Talk),
        (status = 409, description = "Confirmed by everyone: final", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/handover-talks/{id}")]
pub async fn patch_handover_talk(
    ctx: Ctx,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<TalkContent>,
) -> Result<HttpResponse, AppError> {
    talk_patch(ctx, state, req, path.into_inner(), TalkKind::Handover, body).await
}

/// Confirm a handover talk
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Confirmed (final once all four have)", body = Talk),
        (status = 403, description = "Not a participant", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already confirmed", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/handover-talks/{id}/confirm")]
pub async fn confirm_handover_talk(
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_confirm(ctx, path.into_inner(), TalkKind::Handover).await
}

/// Record the final check-in
///
/// The slutavstämning between the trainee and the main supervisor that precedes the final
/// assessment, recorded like a supervision session by either of them; the other confirms.
/// The final assessment cannot be signed before both have confirmed one.
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewFinalCheckIn, example = json!({
        "held_on": "2027-08-10", "notes": "Gick igenom alla delmål och underlagen inför slutbedömningen.",
        "agreed_actions": "Portföljen skickas till extern bedömare.", "delmal": []
    })),
    responses(
        (status = 201, description = "Recorded; confirmed by its creator", body = Talk),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/final-check-ins")]
pub async fn create_final_check_in(
    ctx: Ctx,
    state: web::Data<AppState>,
    _req: HttpRequest,
    path: web::Path<EnrolmentId>,
    body: Guarded<NewFinalCheckIn>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let t = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record(c, ctx)?;
        talks::create_final_check_in(c, ctx, &id, body)
    })
    .await?;
    Ok(with_etag(StatusCode::CREATED, t.etag(), &t))
}

/// List final check-ins
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path, description = "Enrolment"), PageParams),
    responses(
        (status = 200, description = "A page of final check-ins", body = Page<Talk>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/final-check-ins")]
pub async fn list_final_check_ins(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    talk_list(
        ctx,
        path.into_inner(),
        TalkKind::FinalCheckIn,
        query.into_inner(),
    )
    .await
}

/// Get a final check-in
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The final check-in", body = Talk),
        (status = 304, description = "Unchanged since the ETag you sent"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/final-check-ins/{id}")]
pub async fn get_final_check_in(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_get(ctx, req, path.into_inner(), TalkKind::FinalCheckIn).await
}

/// Edit a final check-in not yet confirmed by both
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = TalkContent,
    responses(
        (status = 200, description = "Edited; the other participant is asked again", body = Talk),
        (status = 409, description = "Confirmed by both; final", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/final-check-ins/{id}")]
pub async fn patch_final_check_in(
    ctx: Ctx,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<TalkContent>,
) -> Result<HttpResponse, AppError> {
    talk_patch(
        ctx,
        state,
        req,
        path.into_inner(),
        TalkKind::FinalCheckIn,
        body,
    )
    .await
}

/// Confirm a final check-in
#[utoipa::path(
    tag = "final-assessment",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Confirmed", body = Talk),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/final-check-ins/{id}/confirm")]
pub async fn confirm_final_check_in(
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_confirm(ctx, path.into_inner(), TalkKind::FinalCheckIn).await
}

/// Record a supervisors' check-in
///
/// "Avstämning tjg-HL + HHL": the main supervisor and a placement supervisor talk about
/// the trainee without them. Recorded by either; the other is asked to confirm. The
/// trainee never sees it, and it is no evidence of a delmål.
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewSupervisorCheckIn, example = json!({
        "held_on": "2026-10-22", "with_supervisor_id": "…",
        "notes": "Behöver mer stöd i prioritering på akuten.", "agreed_actions": "Extra medsittning."
    })),
    responses(
        (status = 201, description = "Recorded; confirmed by its creator", body = Talk),
        (status = 403, description = "Not the trainee's main or placement supervisor", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/supervisor-check-ins")]
pub async fn create_supervisor_check_in(
    ctx: Ctx,
    state: web::Data<AppState>,
    path: web::Path<EnrolmentId>,
    body: Guarded<NewSupervisorCheckIn>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let t = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record(c, ctx)?;
        talks::create_supervisor_check_in(c, ctx, &id, body)
    })
    .await?;
    Ok(with_etag(StatusCode::CREATED, t.etag(), &t))
}

/// List supervisors' check-ins
///
/// For the trainee's supervisors and directors; the trainee is refused.
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path, description = "Enrolment"), PageParams),
    responses(
        (status = 200, description = "A page of check-ins", body = Page<Talk>),
        (status = 403, description = "The trainee, or someone who only reads the plan", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/supervisor-check-ins")]
pub async fn list_supervisor_check_ins(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    talk_list(
        ctx,
        path.into_inner(),
        TalkKind::SupervisorCheckIn,
        query.into_inner(),
    )
    .await
}

/// Get a supervisors' check-in
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The check-in", body = Talk),
        (status = 304, description = "Unchanged since the ETag you sent"),
        (status = 404, description = "Unknown, or not yours to see (always for the trainee)", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/supervisor-check-ins/{id}")]
pub async fn get_supervisor_check_in(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_get(ctx, req, path.into_inner(), TalkKind::SupervisorCheckIn).await
}

/// Confirm a supervisors' check-in
#[utoipa::path(
    tag = "supervision",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Confirmed (final once both have)", body = Talk),
        (status = 403, description = "Not a participant", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already confirmed", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/supervisor-check-ins/{id}/confirm")]
pub async fn confirm_supervisor_check_in(
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_confirm(ctx, path.into_inner(), TalkKind::SupervisorCheckIn).await
}
