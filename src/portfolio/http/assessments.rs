//! Formative assessments: create, list, edit, request, sign, decline, correct,
//! delete, the signature queue, and co-signing on the trainee's phone.

use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{not_modified, PROBLEM};
use crate::app::AppState;
use crate::context::Ctx;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag, Page, PageParams};
use crate::ids::{EnrolmentId, UserId};
use crate::portfolio::assessments::{self, Assessment, AssessmentContent, NewAssessment};
use crate::privacy::guard::Guarded;

/// Start a formative assessment
///
/// A trainee names an `assessor_id` (any supervisor, also an external one): the request
/// is mailed to them at once. An assigned supervisor recording directly leaves it out and
/// gets a draft to sign.
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewAssessment, example = json!({
        "instrument": "mini_cex", "performed_on": "2026-10-14", "assessor_id": "…",
        "context": {"setting (outpatient, inpatient, emergency)": "emergency", "focus": "buksmärta"},
        "delmal": ["BT1"], "trainee_reflection": "Jag missade att fråga om ..."
    })),
    responses(
        (status = 201, description = "Created (awaiting signature, or a draft)", body = Assessment),
        (status = 404, description = "Unknown enrolment", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/assessments")]
pub async fn create_assessment(
    ctx: Ctx,
    state: web::Data<AppState>,
    _req: HttpRequest,
    path: web::Path<EnrolmentId>,
    body: Guarded<NewAssessment>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let a = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record(c, ctx)?;
        assessments::create(c, ctx, &id, body)
    })
    .await?;
    Ok(with_etag(StatusCode::CREATED, a.etag(), &a))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AssessmentFilter {
    /// `draft`, `awaiting_vetting`, `awaiting_signature`, `signed` or `declined`.
    pub status: Option<String>,
    pub instrument: Option<crate::curriculum::templates::AssessmentType>,
    pub delmal: Option<String>,
    pub placement_id: Option<String>,
    /// Performed on or after this date.
    pub from: Option<NaiveDate>,
    /// Performed on or before this date.
    pub to: Option<NaiveDate>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List a trainee's assessments
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path, description = "Enrolment"), AssessmentFilter),
    responses(
        (status = 200, description = "A page of assessments", body = Page<Assessment>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/assessments")]
pub async fn list_assessments(
    ctx: Ctx,
    path: web::Path<EnrolmentId>,
    query: web::Query<AssessmentFilter>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let filter = assessments::Filter {
        status: q.status,
        instrument: q.instrument,
        delmal: q.delmal,
        placement_id: q.placement_id,
        from: q.from,
        to: q.to,
    };
    let rows = ctx
        .read(move |c, ctx| {
            access::require(c, &ctx.caller, &id, ctx.today(), Access::Read)?;
            assessments::list(c, &id, &filter, after.as_deref(), limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |a| a.id.clone())))
}

/// Get an assessment
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The assessment", body = Assessment, headers(("ETag" = String))),
        (status = 304, description = "Unchanged since the ETag you sent"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/assessments/{id}")]
pub async fn get_assessment(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let a = ctx
        .read(move |c, ctx| assessments::readable(c, &ctx.caller, &id, ctx.today()))
        .await?;
    let tag = a.etag();
    if not_modified(&req, &tag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }
    Ok(with_etag(StatusCode::OK, tag, &a))
}

/// Save an assessment in progress (partial)
///
/// The trainee edits context and reflection; the assessor rates and gives feedback.
/// Signed assessments cannot change (409): correct them instead.
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = AssessmentContent,
    responses(
        (status = 200, description = "Saved", body = Assessment),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Signed or declined", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/assessments/{id}")]
pub async fn patch_assessment(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<AssessmentContent>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let expected = if_match(&req);
    let a = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            assessments::update(
                c,
                ctx,
                &id,
                |t| check_if_match(expected.as_deref(), t),
                body,
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, a.etag(), &a))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSignature {
    pub assessor_id: String,
}

/// Ask an assessor to assess and sign a draft
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    request_body = RequestSignature,
    responses(
        (status = 200, description = "Requested; the assessor is mailed", body = Assessment),
        (status = 409, description = "Not a draft", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/assessments/{id}/request")]
pub async fn request_signature(
    ctx: Ctx,
    state: web::Data<AppState>,
    _req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<RequestSignature>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let a = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        assessments::request(c, ctx, &id, &UserId::from(&body.assessor_id))
    })
    .await?;
    Ok(with_etag(StatusCode::OK, a.etag(), &a))
}

/// Sign an assessment
///
/// One request: the assessor's last ratings and feedback (optional) are applied and the
/// assessment is signed. Needs a rating and feed forward. Recorded with who, when, the
/// session's second factor and a hash of the signed content; never changes afterwards.
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body(content = AssessmentContent, example = json!({
        "ratings": {"history taking (anamnes)": 6, "communication": 7, "overall": 6},
        "feedback_strengths": "Strukturerad anamnes.", "feedback_next_steps": "Öva riktat status vid buksmärta."
    })),
    responses(
        (status = 200, description = "Signed", body = Assessment),
        (status = 403, description = "Not the named assessor, or the trainee", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "Already signed or declined", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/assessments/{id}/sign")]
pub async fn sign_assessment(
    ctx: Ctx,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<Option<AssessmentContent>>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let expected = if_match(&req);
    let (content, ack) = body.into_parts();
    let content = content.unwrap_or_default();
    let a = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record(c, ctx)?;
        assessments::sign(
            c,
            ctx,
            &id,
            |t| check_if_match(expected.as_deref(), t),
            content,
        )
    })
    .await?;
    crate::telemetry::metrics::signed("assessment");
    Ok(with_etag(StatusCode::OK, a.etag(), &a))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclineRequest {
    #[schema(example = "Jag observerade inte detta besök.")]
    pub reason: String,
}

/// Decline to sign an assessment
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    request_body = DeclineRequest,
    responses(
        (status = 200, description = "Declined; the trainee is told why", body = Assessment),
        (status = 409, description = "Already signed or declined", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/assessments/{id}/decline")]
pub async fn decline_assessment(
    ctx: Ctx,
    state: web::Data<AppState>,
    _req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<DeclineRequest>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let a = crate::notifications::deliver(&ctx, &state.outbox, move |c, ctx| {
        ack.record(c, ctx)?;
        assessments::decline(c, ctx, &id, &body.reason)
    })
    .await?;
    Ok(with_etag(StatusCode::OK, a.etag(), &a))
}

/// Correct a signed assessment
///
/// Creates a new draft that supersedes the signed one, for its signer to edit and sign.
/// The original stays visible, unchanged, with `superseded_by` once the correction is signed.
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    request_body = AssessmentContent,
    responses(
        (status = 201, description = "The correction (a draft)", body = Assessment),
        (status = 409, description = "Not signed, or already corrected", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/assessments/{id}/corrections")]
pub async fn correct_assessment(
    ctx: Ctx,
    _req: HttpRequest,
    path: web::Path<String>,
    body: Guarded<AssessmentContent>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let a = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            assessments::correct(c, ctx, &id, body)
        })
        .await?;
    Ok(with_etag(StatusCode::CREATED, a.etag(), &a))
}

/// Delete a draft assessment
///
/// Its author only; nothing signed is ever deleted.
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted (the audit log keeps it)"),
        (status = 409, description = "Signed", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/assessments/{id}")]
pub async fn delete_assessment(
    ctx: Ctx,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    ctx.write(move |c, ctx| assessments::delete(c, ctx, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What is waiting for my signature
///
/// Across all my trainees, oldest request first (a draft of my own from its creation),
/// a page at a time: the one list a supervisor needs.
#[utoipa::path(
    tag = "me",
    params(PageParams),
    responses((status = 200, description = "Assessments to sign", body = Page<Assessment>)),
    security(("bearer" = []))
)]
#[get("/me/signature-queue")]
pub async fn signature_queue(
    ctx: Ctx,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    let (limit, after) = (query.limit()?, query.after()?);
    let rows = ctx
        .read(move |c, ctx| assessments::signature_queue(c, &ctx.caller, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_keyed_rows(rows, limit)))
}

/// The assessor's credentials, given on the trainee's phone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CoSignRequest {
    /// The named assessor's e-mail and password.
    pub email: String,
    pub password: String,
    /// `totp` or `recovery_code`.
    pub method: crate::auth::service::MfaMethod,
    pub code: String,
    #[serde(flatten)]
    pub content: AssessmentContent,
}

/// Sign on the trainee's phone
///
/// The trainee hands over the phone; the named assessor signs with their own e-mail,
/// password and second factor in this one request. No session is created and the
/// trainee's session gains nothing. Failed attempts count against the assessor's limits.
#[utoipa::path(
    tag = "assessments",
    params(("id" = String, Path)),
    request_body = CoSignRequest,
    responses(
        (status = 200, description = "Signed by the assessor", body = Assessment),
        (status = 401, description = "Wrong credentials or code", body = crate::error::Problem, content_type = PROBLEM),
        (status = 403, description = "Not the trainee's session", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/assessments/{id}/co-sign")]
pub async fn co_sign(
    ctx: Ctx,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: Guarded<CoSignRequest>,
) -> Result<HttpResponse, AppError> {
    use crate::auth::service::{MfaMethod, SecondFactor};
    let id = path.into_inner();
    let (body, ack) = body.into_parts();
    let factor = match body.method {
        MfaMethod::Totp => SecondFactor::Totp(body.code),
        MfaMethod::RecoveryCode => SecondFactor::RecoveryCode(body.code),
        MfaMethod::EmailCode | MfaMethod::Passkey => {
            return Err(AppError::validation(
                "method",
                "co-signing takes a TOTP or recovery code",
            ))
        }
    };
    let (email, start_id) = (body.email.clone(), id.clone());
    // Counting the attempt is not the request's effect: the key waits for the signature.
    let (_, creds) = ctx
        .write_aside(move |c, ctx| assessments::co_sign_start(c, ctx, &start_id, &email))
        .await?;
    let stored = creds.as_ref().and_then(|c| c.password_hash.clone());
    let dummy = state.dummy_hash.clone();
    let password = body.password;
    let ok = web::block(move || {
        crate::auth::crypto::verify_password(&password, &stored.unwrap_or(dummy))
    })
    .await?;
    let creds = creds.filter(|_| ok);
    let content = body.content;
    let a = crate::notifications::deliver_checked(&ctx, &state.outbox, move |c, ctx| {
        ack.record(c, ctx)?;
        assessments::co_sign_finish(c, ctx, &id, creds.as_ref(), &factor, content)
    })
    .await?;
    crate::telemetry::metrics::signed("assessment_co_signature");
    Ok(with_etag(StatusCode::OK, a.etag(), &a))
}
