//! `GET /me/export`: the route (with the other `/me` routes in the document's `me` tag).

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{get, web, HttpResponse};

use super::{archive, gather};
use crate::app::AppState;
use crate::auth::{ratelimit, step_up};
use crate::context::Ctx;
use crate::error::AppError;

/// `attachment; filename="eportfolio-export-<date>.tar.gz"` (ASCII only).
fn download_name(name: &str) -> ContentDisposition {
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(name.to_string())],
    }
}

/// Export everything about me
///
/// GDPR Art. 15 (access) and Art. 20 (portability): everything the service holds about
/// the caller, as one gzip-compressed tar archive, streamed. `manifest.json` comes first
/// and lists every file with its size and SHA-256, and what is left out and why; then
/// JSON documents (account, personal identity, sessions, second factors, audit entries
/// by or about you, and per enrolment of which you are the trainee its records and
/// audit log) and the attachments you uploaded as they were stored. Never a secret
/// (password hash, authenticator secret, recovery codes, tokens).
///
/// Sensitive: the session must have given a second factor in the last five minutes (a
/// fresh sign-in, or `POST /me/step-up`); at most 5 exports an hour by default
/// (`RATE_LIMIT_EXPORT_PER_ACCOUNT`); audited
/// (`exported`, entity `user`).
#[utoipa::path(
    tag = "me",
    responses(
        (status = 200, description = "The archive (`eportfolio-export-<date>.tar.gz`)", content_type = "application/gzip", body = crate::http::FileBody),
        (status = 401, description = "Step-up needed (`step-up-required`): sign in again or `POST /me/step-up`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "An API client: only people export their data", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many exports; see `Retry-After`", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/me/export")]
pub async fn me_export(state: web::Data<AppState>, ctx: Ctx) -> Result<HttpResponse, AppError> {
    ctx.read(step_up::require_recent).await?;
    let key = format!("export:{}", ctx.caller.user_id);
    ctx.write_aside(move |c, ctx| {
        ratelimit::hit(c, &key, ctx.config.rate_limits.export_per_account, ctx.now)
    })
    .await?;
    let everything = ctx.read(gather::gather).await?;
    let summary = serde_json::json!({
        "documents": everything.documents.len(),
        "attachments": everything.attachments.len(),
    });
    ctx.write(move |c, ctx| gather::audit(c, ctx, &summary))
        .await?;
    let name = format!("eportfolio-export-{}.tar.gz", ctx.today());
    let chunks = archive::stream(everything, state.blobs.clone());
    let body = futures_util::stream::unfold(chunks, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        // Already compressed: the compression middleware leaves it alone.
        .insert_header(actix_web::http::header::ContentEncoding::Identity)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .insert_header(download_name(&name))
        .streaming(body))
}
