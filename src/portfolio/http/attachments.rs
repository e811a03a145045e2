//! Attachments of activities: upload (streamed to storage), download, remove.

use actix_web::http::header;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::PROBLEM;
use crate::app::AppState;
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::media_type;
use crate::portfolio::activities::{self};
use crate::portfolio::attachments::{self, Attachment};
use crate::privacy::attachment_types as accepted_types;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// The file's name, e.g. `kursintyg.pdf`.
    pub filename: String,
    /// `true` when the file name holds something that looks like a personnummer but is
    /// not patient data (recorded in the audit log).
    #[serde(default)]
    pub acknowledge_patient_data_warning: bool,
}

/// Attach a document or photo to an activity
///
/// The body is the file itself, with its media type as `Content-Type`: one the
/// enrolment's region accepts (PDF only unless the region opted in to photos or plain
/// text, see `PUT /organisations/{id}/attachment-types`), and content that is of that
/// type. Streamed to storage; at most 20 MB by default.
#[utoipa::path(
    tag = "portfolio",
    params(("id" = String, Path, description = "Activity"), UploadParams),
    // Every type of the default `ATTACHMENT_TYPES`.
    request_body(content(
        (crate::http::FileBody = "application/pdf"),
        (crate::http::FileBody = "image/jpeg"),
        (crate::http::FileBody = "image/png"),
        (crate::http::FileBody = "image/heic"),
        (String = "text/plain")
    )),
    responses(
        (status = 201, description = "Stored", body = Attachment),
        (status = 404, description = "Unknown activity", body = crate::error::Problem, content_type = PROBLEM),
        (status = 415, description = "A media type the region does not accept, or content that is not of the declared type; the detail names the accepted types", body = crate::error::Problem, content_type = PROBLEM),
        (status = 507, description = "`insufficient-storage`: the attachment store is full; nothing of the upload was kept", body = crate::error::Problem, content_type = PROBLEM),
        (status = 503, description = "`unavailable`: the database is away, or `attachment-store-unavailable`: the object store failed (unreachable, an error, a timeout); nothing of the upload was kept. Retry after `Retry-After` seconds", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "The file name looks like it holds a personnummer (`patient-data-suspected`); resend with `acknowledge_patient_data_warning=true` if it is not patient data", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/activities/{id}/attachments")]
pub async fn upload_attachment(
    ctx: Ctx,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<UploadParams>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let record = path.into_inner();
    let ack = crate::privacy::guard::screen_field(
        &req,
        "filename",
        &query.filename,
        ctx.today(),
        query.acknowledge_patient_data_warning,
    )?;
    let content_type = media_type(&req);
    if !ctx.config.attachment_types.contains(&content_type) {
        return Err(AppError::UnsupportedMediaType(format!(
            "attachments may be {}",
            ctx.config.attachment_types.join(", ")
        )));
    }
    let (enrolment, accepted) = {
        let record = record.clone();
        ctx.read(move |c, ctx| {
            let enrolment = activities::enrolment_of_activity(c, &record)?;
            activities::require_trainee(c, &ctx.caller, &enrolment, ctx.today())?;
            // The region's choice (issue 17: PDF only unless it opted in to photos).
            let accepted = accepted_types::accepted_for_enrolment(
                c,
                &ctx.config,
                &crate::ids::EnrolmentId::from(&enrolment),
            )?;
            Ok((enrolment, accepted))
        })
        .await?
    };
    accepted_types::require_accepted(&accepted, &content_type)?;
    // A retried upload is answered from its key before the file is stored again.
    ctx.settle_idempotency_key().await?;
    let id = attachments::new_id();
    let (size, sha256) = attachments::stream_to_blob(
        state.blobs.clone(),
        content_type.clone(),
        payload,
        ctx.config.attachment_max_bytes,
    )
    .await
    // Content that is not what it was declared as: say what the region takes.
    .map_err(|e| match e {
        AppError::UnsupportedMediaType(d) => AppError::UnsupportedMediaType(format!(
            "{d}; this region accepts {}",
            accepted_types::accepted_list(&accepted)
        )),
        other => other,
    })?;
    let n = attachments::NewAttachment {
        id,
        enrolment_id: enrolment.into_inner(),
        record_id: record,
        filename: attachments::clean_filename(&query.filename),
        content_type,
        size_bytes: size,
        sha256,
    };
    let a = ctx
        .write(move |c, ctx| {
            ack.record(c, ctx)?;
            attachments::record(c, ctx, n)
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
        (status = 500, description = "`attachment-damaged`: the stored file no longer matches its SHA-256 and is not served", body = crate::error::Problem, content_type = PROBLEM),
        (status = 503, description = "`unavailable`: the database is away, or `attachment-store-unavailable`: the object store failed (unreachable, an error, a timeout). Retry after `Retry-After` seconds", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/attachments/{id}")]
pub async fn download_attachment(
    ctx: Ctx,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let (a, key) = ctx
        .read(move |c, ctx| attachments::readable(c, &ctx.caller, &id, ctx.today()))
        .await?;
    let file_path = state.blobs.path(&key)?;
    let (blobs, sha256, size) = (state.blobs.clone(), a.sha256.clone(), a.size_bytes);
    // Checked against its hash first: damaged bytes are never served.
    let opened = web::block(move || {
        crate::storage::check_blob(&*blobs, &key, &sha256, size)?;
        match file_path {
            Some(path) => actix_files::NamedFile::open(path)
                .map(|f| Served::File(Box::new(f)))
                .map_err(AppError::internal),
            // An object store: streamed from a second read of the checked object.
            None => blobs.open(&key).map(|(r, len)| Served::Stream(r, len)),
        }
    })
    .await?
    .map_err(|e| match e {
        AppError::AttachmentDamaged(d) => {
            tracing::error!(attachment = %a.id, "{d}");
            AppError::AttachmentDamaged(d)
        }
        other => other,
    })?;
    let mime: mime::Mime = a
        .content_type
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let mut res = match opened {
        Served::File(file) => file
            .set_content_type(mime)
            .set_content_disposition(attachments::content_disposition(&a.filename))
            .use_etag(false)
            .use_last_modified(false)
            .into_response(&req),
        Served::Stream(reader, len) => HttpResponse::Ok()
            .content_type(mime)
            .insert_header(attachments::content_disposition(&a.filename))
            .body(actix_web::body::SizedStream::new(len, read_stream(reader))),
    };
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{}\"", a.sha256)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    Ok(res)
}

/// What a download sends: a local file, or a store's stream with its length.
enum Served {
    File(Box<actix_files::NamedFile>),
    Stream(Box<dyn std::io::Read + Send>, u64),
}

/// A blocking reader as a response body: read on the blocking pool, a few chunks ahead.
fn read_stream(
    mut reader: Box<dyn std::io::Read + Send>,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<web::Bytes>>(4);
    actix_web::rt::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let item = match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => Ok(web::Bytes::copy_from_slice(&buf[..n])),
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            // A client that went away closes the channel: stop reading.
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
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
    ctx: Ctx,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    ctx.write(move |c, ctx| attachments::delete(c, ctx, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
