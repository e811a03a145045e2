//! The portfolio: learning activities and their attachments (assessments, supervision
//! and the rest follow the same pattern).

pub mod activities;
pub mod assessments;
pub mod attachments;
pub mod instruments;
pub mod links;
pub mod summaries;
pub mod talks;
pub mod vetting;

use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::AppState;
use crate::auth::principal::Principal;
use crate::db;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::{check_if_match, client_info, if_match, media_type, with_etag, Page, PageParams};
use activities::{Activity, ActivityKind, ActivityPatch, NewActivity};
use assessments::{Assessment, AssessmentContent, NewAssessment};
use attachments::Attachment;
use instruments::InstrumentForm;
use summaries::{NewSummary, SummaryAssessment, SummaryPatch};
use talks::{NewFinalCheckIn, NewHandoverTalk, NewSupervisionSession, Talk, TalkContent, TalkKind};
use utoipa::ToSchema;

const PROBLEM: &str = "application/problem+json";

/// `If-None-Match` naming the current ETag: the client's copy is current.
fn not_modified(req: &HttpRequest, tag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
}

/// Log a learning activity
///
/// The trainee only. Send your own `id` and an `Idempotency-Key` from a phone: a retry
/// never makes a duplicate.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path, description = "Enrolment"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewActivity, example = json!({
        "id": "0b6f1c1e-8f1e-4c57-9a59-2f0c3f1d2b7a", "kind": "course", "title": "Försäkringsmedicinsk dag",
        "start_date": "2026-10-06", "reflection": "Sjukskrivningsprocessen och intygen ...", "delmal": ["BT16"]
    })),
    responses(
        (status = 201, description = "Logged", body = Activity, headers(("ETag" = String))),
        (status = 404, description = "Unknown enrolment", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/activities")]
pub async fn create_activity(
    ctx: crate::context::Ctx,
    path: web::Path<String>,
    body: web::Json<NewActivity>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let a = ctx
        .write(move |c, ctx| {
            activities::create_activity(
                c,
                ctx.now,
                &ctx.caller,
                &ctx.client,
                &id,
                body.into_inner(),
            )
        })
        .await?;
    Ok(with_etag(StatusCode::CREATED, a.etag(), &a))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityFilter {
    /// A delmål code, e.g. `BT7`.
    pub delmal: Option<String>,
    pub placement_id: Option<String>,
    pub kind: Option<ActivityKind>,
    /// On or after this date.
    pub from: Option<NaiveDate>,
    /// On or before this date.
    pub to: Option<NaiveDate>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List learning activities
///
/// Newest first; filter by delmål, placement, kind and date range.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path, description = "Enrolment"), ActivityFilter),
    responses(
        (status = 200, description = "A page of activities", body = Page<Activity>),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/activities")]
pub async fn list_activities(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<ActivityFilter>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let today = state.clock.now().date_naive();
    let filter = activities::Filter {
        delmal: q.delmal,
        placement_id: q.placement_id,
        kind: q.kind,
        from: q.from,
        to: q.to,
    };
    let rows = db::run(&state.pool, move |c| {
        access::require(c, &me, &id, today, Access::Read)?;
        activities::list_activities(c, &id, &filter, after.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |a| {
        format!("{}|{}", a.start_date, a.id)
    })))
}

/// Get a learning activity
///
/// Send `If-None-Match` with the ETag you have: 304 when unchanged.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The activity", body = Activity, headers(("ETag" = String))),
        (status = 304, description = "Unchanged since the ETag you sent"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/activities/{id}")]
pub async fn get_activity(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = state.clock.now().date_naive();
    let a = db::run(&state.pool, move |c| {
        let enrolment = activities::enrolment_of_activity(c, &id)?;
        access::require(c, &me, &enrolment, today, Access::Read)?;
        activities::get_activity(c, &id)
    })
    .await?;
    let tag = a.etag();
    if not_modified(&req, &tag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }
    Ok(with_etag(StatusCode::OK, tag, &a))
}

/// Update a learning activity (partial)
///
/// Fields left out stay as they are, so a draft can be saved as it is typed. Send
/// `If-Match` so two devices cannot overwrite each other.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = ActivityPatch,
    responses(
        (status = 200, description = "Updated", body = Activity),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/activities/{id}")]
pub async fn patch_activity(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<ActivityPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    let expected = if_match(&req);
    let a = db::write(&state.pool, move |c| {
        activities::update_activity(
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
    Ok(with_etag(StatusCode::OK, a.etag(), &a))
}

/// Delete a learning activity
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted (the audit log keeps it)"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/activities/{id}")]
pub async fn delete_activity(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    db::write(&state.pool, move |c| {
        activities::delete_activity(c, now, &me, &client, &id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// The file's name, e.g. `kursintyg.pdf`.
    pub filename: String,
}

/// Attach a document or photo to an activity
///
/// The body is the file itself, with its media type as `Content-Type` (PDF, JPEG, PNG,
/// HEIC or plain text by default). Streamed to storage; at most 20 MB by default.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path, description = "Activity"), UploadParams),
    request_body(content(
        (crate::http::FileBody = "application/pdf"),
        (crate::http::FileBody = "image/jpeg"),
        (crate::http::FileBody = "image/png")
    )),
    responses(
        (status = 201, description = "Stored", body = Attachment),
        (status = 404, description = "Unknown activity", body = crate::error::Problem, content_type = PROBLEM),
        (status = 415, description = "A media type not accepted, or content that is not of the declared type", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/activities/{id}/attachments")]
pub async fn upload_attachment(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<UploadParams>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let record = path.into_inner();
    let content_type = media_type(&req);
    if !state.config.attachment_types.contains(&content_type) {
        return Err(AppError::UnsupportedMediaType(format!(
            "attachments may be {}",
            state.config.attachment_types.join(", ")
        )));
    }
    let now = state.clock.now();
    let enrolment = {
        let (me, record) = (me.clone(), record.clone());
        db::run(&state.pool, move |c| {
            let enrolment = activities::enrolment_of_activity(c, &record)?;
            activities::require_trainee(c, &me, &enrolment, now.date_naive())?;
            Ok(enrolment)
        })
        .await?
    };
    // A retried upload is answered from its key before the file is stored again.
    crate::idempotency::settle(&state.pool, None).await?;
    let id = attachments::new_id();
    let (size, sha256) = attachments::stream_to_blob(
        state.blobs.clone(),
        id.clone(),
        content_type.clone(),
        payload,
        state.config.attachment_max_bytes,
    )
    .await?;
    let client = client_info(&req, &state.config);
    let n = attachments::NewAttachment {
        id,
        enrolment_id: enrolment,
        record_id: record,
        filename: attachments::clean_filename(&query.filename),
        content_type,
        size_bytes: size,
        sha256,
    };
    let a = db::write(&state.pool, move |c| {
        attachments::record(c, now, &me, &client, n)
    })
    .await?;
    Ok(HttpResponse::Created().json(a))
}

/// Download an attachment
///
/// For everyone who may read the record it belongs to.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path)),
    responses(
        // Served with the media type it was uploaded with: the default `ATTACHMENT_TYPES`,
        // and `application/octet-stream` for a stored type that does not parse.
        (status = 200, description = "The file, with the media type it was uploaded with", content(
            (crate::http::FileBody = "application/pdf"),
            (crate::http::FileBody = "image/jpeg"),
            (crate::http::FileBody = "image/png"),
            (crate::http::FileBody = "image/heic"),
            (String = "text/plain"),
            (crate::http::FileBody = "application/octet-stream"),
        )),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/attachments/{id}")]
pub async fn download_attachment(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = state.clock.now().date_naive();
    let (a, key) = db::run(&state.pool, move |c| {
        attachments::readable(c, &me, &id, today)
    })
    .await?;
    let file_path = state.blobs.path(&key)?;
    let file = web::block(move || actix_files::NamedFile::open(file_path))
        .await?
        .map_err(|e| AppError::internal(format!("attachment {}: {e}", a.id)))?;
    let mime: mime::Mime = a
        .content_type
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let mut res = file
        .set_content_type(mime)
        .set_content_disposition(header::ContentDisposition {
            disposition: header::DispositionType::Attachment,
            parameters: vec![header::DispositionParam::Filename(a.filename.clone())],
        })
        .use_etag(false)
        .use_last_modified(false)
        .into_response(&req);
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{}\"", a.sha256)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    Ok(res)
}

/// Remove an attachment
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Removed (the audit log keeps it)"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/attachments/{id}")]
pub async fn delete_attachment(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    db::write(&state.pool, move |c| {
        attachments::delete(c, now, &me, &client, &id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Assessment instruments and their forms
///
/// Domains, scales and context fields of Mini-CEX, DOPS, CbD, sit-in and multi-source
/// feedback, as data.
#[utoipa::path(
    tag = "assessments",
    params(FormsFor),
    responses((status = 200, description = "The forms", body = Page<InstrumentForm>)),
    security(("bearer" = []))
)]
#[get("/assessment-instruments")]
pub async fn list_instruments(
    state: web::Data<AppState>,
    _me: Principal,
    query: web::Query<FormsFor>,
) -> Result<HttpResponse, AppError> {
    let org = query.into_inner().organisation_id;
    let items = db::run(&state.pool, move |c| {
        instruments::forms_for(c, org.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FormsFor {
    /// The forms as they apply in this organisation (its own or the nearest above).
    pub organisation_id: Option<String>,
}

/// Store an organisation's version of an assessment form
///
/// Administrators adjust a form for their region (domains, scale, labels); it applies to
/// trainees of the organisation and below. Each change is a new version.
#[utoipa::path(
    tag = "assessments",
    params(("instrument" = crate::curriculum::templates::AssessmentType, Path)),
    request_body = instruments::FormInput,
    responses(
        (status = 201, description = "The new version", body = InstrumentForm),
        (status = 403, description = "Not an administrator of the organisation", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/assessment-instruments/{instrument}/forms")]
pub async fn store_form(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<crate::curriculum::templates::AssessmentType>,
    body: web::Json<instruments::FormInput>,
) -> Result<HttpResponse, AppError> {
    let instrument = path.into_inner();
    let now = state.clock.now();
    let f = db::write(&state.pool, move |c| {
        instruments::store(c, now, &me, instrument, body.into_inner())
    })
    .await?;
    Ok(HttpResponse::Created().json(f))
}

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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<NewAssessment>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let a = crate::notifications::write_and_deliver(&state, move |c| {
        assessments::create(c, &cfg, now, &me, &client, &id, body.into_inner())
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
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<AssessmentFilter>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let q = query.into_inner();
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let (limit, after) = (page.limit()?, page.after()?);
    let today = state.clock.now().date_naive();
    let filter = assessments::Filter {
        status: q.status,
        instrument: q.instrument,
        delmal: q.delmal,
        placement_id: q.placement_id,
        from: q.from,
        to: q.to,
    };
    let rows = db::run(&state.pool, move |c| {
        access::require(c, &me, &id, today, Access::Read)?;
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let today = state.clock.now().date_naive();
    let a = db::run(&state.pool, move |c| {
        assessments::readable(c, &me, &id, today)
    })
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<AssessmentContent>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    let expected = if_match(&req);
    let a = db::write(&state.pool, move |c| {
        assessments::update(
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<RequestSignature>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let a = crate::notifications::write_and_deliver(&state, move |c| {
        assessments::request(c, &cfg, now, &me, &client, &id, &body.assessor_id)
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: Option<web::Json<AssessmentContent>>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let expected = if_match(&req);
    let content = body.map(|b| b.into_inner()).unwrap_or_default();
    let a = crate::notifications::write_and_deliver(&state, move |c| {
        assessments::sign(
            c,
            &cfg,
            now,
            &me,
            &client,
            &id,
            |t| check_if_match(expected.as_deref(), t),
            content,
        )
    })
    .await?;
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<DeclineRequest>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let a = crate::notifications::write_and_deliver(&state, move |c| {
        assessments::decline(c, &cfg, now, &me, &client, &id, &body.reason)
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<AssessmentContent>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    let a = db::write(&state.pool, move |c| {
        assessments::correct(c, now, &me, &client, &id, body.into_inner())
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    db::write(&state.pool, move |c| {
        assessments::delete(c, now, &me, &client, &id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What is waiting for my signature
///
/// Across all my trainees, oldest request first: the one list a supervisor needs.
#[utoipa::path(
    tag = "me",
    responses((status = 200, description = "Assessments to sign", body = Page<Assessment>)),
    security(("bearer" = []))
)]
#[get("/me/signature-queue")]
pub async fn signature_queue(
    state: web::Data<AppState>,
    me: Principal,
) -> Result<HttpResponse, AppError> {
    let items = db::run(&state.pool, move |c| assessments::signature_queue(c, &me)).await?;
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}

async fn talk_list(
    state: web::Data<AppState>,
    me: Principal,
    enrolment: String,
    kind: TalkKind,
    page: PageParams,
) -> Result<HttpResponse, AppError> {
    let (limit, after) = (page.limit()?, page.after()?);
    let today = state.clock.now().date_naive();
    let rows = db::run(&state.pool, move |c| {
        access::require(c, &me, &enrolment, today, Access::Read)?;
        talks::list(c, &enrolment, kind, after.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |t| t.id.clone())))
}

async fn talk_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    id: String,
    kind: TalkKind,
) -> Result<HttpResponse, AppError> {
    let today = state.clock.now().date_naive();
    let t = db::run(&state.pool, move |c| {
        talks::readable(c, &me, &id, kind, today)
    })
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    id: String,
    kind: TalkKind,
    content: TalkContent,
) -> Result<HttpResponse, AppError> {
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let expected = if_match(&req);
    let t = crate::notifications::write_and_deliver(&state, move |c| {
        talks::update(
            c,
            &cfg,
            now,
            &me,
            &client,
            &id,
            kind,
            |tag| check_if_match(expected.as_deref(), tag),
            content,
        )
    })
    .await?;
    Ok(with_etag(StatusCode::OK, t.etag(), &t))
}

async fn talk_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    id: String,
    kind: TalkKind,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let client = client_info(&req, &state.config);
    let t = db::write(&state.pool, move |c| {
        talks::confirm(c, now, &me, &client, &id, kind)
    })
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<NewSupervisionSession>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let t = crate::notifications::write_and_deliver(&state, move |c| {
        talks::create_session(c, &cfg, now, &me, &client, &id, body.into_inner())
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
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    talk_list(
        state,
        me,
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_get(state, req, me, path.into_inner(), TalkKind::Supervision).await
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<TalkContent>,
) -> Result<HttpResponse, AppError> {
    talk_patch(
        state,
        req,
        me,
        path.into_inner(),
        TalkKind::Supervision,
        body.into_inner(),
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_confirm(state, req, me, path.into_inner(), TalkKind::Supervision).await
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<NewHandoverTalk>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let t = crate::notifications::write_and_deliver(&state, move |c| {
        talks::create_handover(c, &cfg, now, &me, &client, &id, body.into_inner())
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
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    talk_list(
        state,
        me,
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_get(state, req, me, path.into_inner(), TalkKind::Handover).await
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<TalkContent>,
) -> Result<HttpResponse, AppError> {
    talk_patch(
        state,
        req,
        me,
        path.into_inner(),
        TalkKind::Handover,
        body.into_inner(),
    )
    .await
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_confirm(state, req, me, path.into_inner(), TalkKind::Handover).await
}

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

/// What an assessor without an account sees through a signing link.
#[derive(serde::Serialize, ToSchema)]
pub struct SigningLinkView {
    pub assessment: Assessment,
    pub form: InstrumentForm,
    /// The trainee who asked.
    pub trainee_name: String,
    /// The address the link is bound to.
    pub email: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Open a signing link
///
/// For an assessor without an account: the assessment to complete, its form and who
/// asked. The link is bound to one address and one assessment and expires (14 days).
#[utoipa::path(
    tag = "assessments",
    params(("token" = String, Path, description = "The token from the mailed link")),
    responses(
        (status = 200, description = "The assessment to complete", body = SigningLinkView),
        (status = 422, description = "Link unknown, used or expired", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(())
)]
#[get("/auth/signing-links/{token}")]
pub async fn open_signing_link(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let now = state.clock.now();
    let view = db::run(&state.pool, move |c| {
        let (assessment, email, expires_at) = assessments::open_link(c, now, &token)?;
        let trainee_name = {
            use crate::schema::{enrolments, users};
            use diesel::prelude::*;
            let trainee: String = enrolments::table
                .find(&assessment.enrolment_id)
                .select(enrolments::trainee_id)
                .first(c)?;
            users::table
                .find(&trainee)
                .select(users::display_name)
                .first::<String>(c)?
        };
        Ok(SigningLinkView {
            form: {
                use crate::schema::enrolments;
                use diesel::prelude::*;
                let org: String = enrolments::table
                    .find(&assessment.enrolment_id)
                    .select(enrolments::organisation_id)
                    .first(c)?;
                instruments::form_for(c, assessment.instrument, Some(&org))?
            },
            assessment,
            trainee_name,
            email,
            expires_at,
        })
    })
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
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<AssessmentContent>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let a = crate::notifications::write_and_deliver(&state, move |c| {
        assessments::sign_by_link(c, &cfg, now, &client, &token, body.into_inner())
    })
    .await?;
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
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<DeclineRequest>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let a = crate::notifications::write_and_deliver(&state, move |c| {
        assessments::decline_by_link(c, &cfg, now, &client, &token, &body.reason)
    })
    .await?;
    Ok(HttpResponse::Ok().json(a))
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<CoSignRequest>,
) -> Result<HttpResponse, AppError> {
    use crate::auth::service::{MfaMethod, SecondFactor};
    let id = path.into_inner();
    let body = body.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let factor = match body.method {
        MfaMethod::Totp => SecondFactor::Totp(body.code),
        MfaMethod::RecoveryCode => SecondFactor::RecoveryCode(body.code),
        MfaMethod::EmailCode => {
            return Err(AppError::validation(
                "method",
                "co-signing takes a TOTP or recovery code",
            ))
        }
    };
    let (email, start_id) = (body.email.clone(), id.clone());
    let (_, creds) = db::run(&state.pool, move |c| {
        assessments::co_sign_start(c, &cfg, now, &me, &start_id, &email)
    })
    .await?;
    let stored = creds.as_ref().and_then(|c| c.password_hash.clone());
    let dummy = state.dummy_hash.clone();
    let password = body.password;
    let ok = web::block(move || {
        crate::auth::crypto::verify_password(&password, &stored.unwrap_or(dummy))
    })
    .await?;
    let creds = creds.filter(|_| ok);
    let cfg = state.config.clone();
    let client = client_info(&req, &state.config);
    let content = body.content;
    let a = crate::notifications::write_and_deliver_checked(&state, move |c| {
        assessments::co_sign_finish(c, &cfg, now, &client, &id, creds.as_ref(), &factor, content)
    })
    .await?;
    Ok(with_etag(StatusCode::OK, a.etag(), &a))
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<NewFinalCheckIn>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let client = client_info(&req, &state.config);
    let t = crate::notifications::write_and_deliver(&state, move |c| {
        talks::create_final_check_in(c, &cfg, now, &me, &client, &id, body.into_inner())
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
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    talk_list(
        state,
        me,
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_get(state, req, me, path.into_inner(), TalkKind::FinalCheckIn).await
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<TalkContent>,
) -> Result<HttpResponse, AppError> {
    talk_patch(
        state,
        req,
        me,
        path.into_inner(),
        TalkKind::FinalCheckIn,
        body.into_inner(),
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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    talk_confirm(state, req, me, path.into_inner(), TalkKind::FinalCheckIn).await
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_activity)
        .service(list_activities)
        .service(get_activity)
        .service(patch_activity)
        .service(delete_activity)
        .service(upload_attachment)
        .service(download_attachment)
        .service(delete_attachment)
        .service(list_instruments)
        .service(store_form)
        .service(create_assessment)
        .service(list_assessments)
        .service(get_assessment)
        .service(patch_assessment)
        .service(request_signature)
        .service(sign_assessment)
        .service(decline_assessment)
        .service(correct_assessment)
        .service(delete_assessment)
        .service(signature_queue)
        .service(create_supervision_session)
        .service(list_supervision_sessions)
        .service(get_supervision_session)
        .service(patch_supervision_session)
        .service(confirm_supervision_session)
        .service(create_handover_talk)
        .service(list_handover_talks)
        .service(get_handover_talk)
        .service(patch_handover_talk)
        .service(confirm_handover_talk)
        .service(create_summary)
        .service(list_summaries)
        .service(get_summary)
        .service(patch_summary)
        .service(sign_summary)
        .service(create_final_check_in)
        .service(list_final_check_ins)
        .service(get_final_check_in)
        .service(patch_final_check_in)
        .service(confirm_final_check_in)
        .service(correct_summary)
        .service(open_signing_link)
        .service(sign_by_link)
        .service(decline_by_link)
        .service(co_sign)
        .service(vetting::list_external_assessors)
        .service(vetting::approve_external_assessor)
        .service(vetting::decline_external_assessor);
}
