//! The transfer handlers: export a bundle, import one, and the trusted services.

use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::bundle::{self, SignedBundle};
use super::import::{self, NewTransfer, StoredFile, TransferImport};
use super::trust::{self, NewTrustedService, TrustedService};
use crate::app::AppState;
use crate::auth::{ratelimit, step_up};
use crate::config::Limit;
use crate::context::Ctx;
use crate::dossier::signing;
use crate::error::AppError;
use crate::http::{media_type, read_body, Page, PageParams};
use crate::ids::{EnrolmentId, TemplateId, TrustedServiceId};

const PROBLEM: &str = "application/problem+json";

/// Exports per account and hour: a bundle is the whole portfolio.
const EXPORT_LIMIT: Limit = Limit {
    max: 10,
    window: std::time::Duration::from_secs(3600),
};

/// Export a signed transfer bundle
///
/// For a doctor who moves to another region's service: the enrolment's records
/// (activities, signed assessments and summary assessments, supervision and handover
/// talks, final assessments, placements, leave, extent, credited service), who signed
/// them, their attachments (bytes and SHA-256) and the audit facts about them, as one
/// JSON document signed with this service's dossier key (Ed25519 over the canonical
/// form, as the JSON dossier). The trainee, or a director of studies of the enrolment's
/// region. The session must have given a second factor in the last five minutes
/// (`POST /me/step-up`). Audited (`exported`, entity `enrolment`). See docs/transfer.md.
#[utoipa::path(
    tag = "transfer",
    params(("id" = String, Path, description = "Enrolment")),
    responses(
        (status = 200, description = "The signed bundle (`transfer-<enrolment>-<date>.json`)", body = SignedBundle),
        (status = 401, description = "Step-up needed (`step-up-required`)", body = crate::error::Problem, content_type = PROBLEM),
        (status = 403, description = "Not the trainee or a director of studies of the region", body = crate::error::Problem, content_type = PROBLEM),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 429, description = "Too many exports; see `Retry-After`", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/enrolments/{id}/transfer-export")]
pub async fn transfer_export(
    state: web::Data<AppState>,
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let eid = EnrolmentId::from(id.as_str());
    let exporter = ctx
        .read(move |c, ctx| bundle::may_export(c, &ctx.caller, &eid, ctx.today()))
        .await?;
    ctx.read(step_up::require_recent).await?;
    let key = format!("transfer-export:{}", ctx.caller.user_id);
    ctx.write_aside(move |c, ctx| ratelimit::hit(c, &key, EXPORT_LIMIT, ctx.now))
        .await?;
    let eid = EnrolmentId::from(id.as_str());
    let (mut content, files, key_id, key) = ctx
        .read(move |c, ctx| {
            let (content, files) = bundle::gather(c, ctx, &eid, exporter)?;
            let (key_id, key) = signing::current_key(c, ctx.keyring()?)?;
            Ok((content, files, key_id, key))
        })
        .await?;
    let blobs = state.blobs.clone();
    let (content, signature) = web::block(move || {
        bundle::add_attachments(&mut content, files, &*blobs)?;
        let signature = signing::sign_dossier(&key_id, &key, &content);
        Ok::<_, AppError>((content, signature))
    })
    .await??;
    let summary = json!({
        "bundle_id": content["bundle_id"], "content_hash": signature.content_hash,
        "by": exporter.as_str(),
        "activities": content["activities"].as_array().map(Vec::len),
        "assessments": content["assessments"].as_array().map(Vec::len),
        "attachments": content["attachments"].as_array().map(Vec::len),
    });
    let eid = id.clone();
    ctx.write(move |c, ctx| {
        crate::audit::append(
            c,
            ctx.now,
            crate::audit::Event {
                actor_id: Some(&ctx.caller.user_id),
                client: ctx.client.user_agent.as_deref(),
                action: "exported",
                entity: "enrolment",
                entity_id: &eid,
                enrolment_id: Some(&eid),
                data: &summary,
            },
        )
    })
    .await?;
    let name = format!("transfer-{id}-{}.json", ctx.today());
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(name)],
        })
        .json(SignedBundle {
            bundle: content,
            signature,
        }))
}

/// Import a transfer bundle
///
/// A director of studies of the receiving region. The body names the bundle (exactly as
/// exported), the trainee's account here (by e-mail) and optionally the receiving
/// template (default: the one template of the bundle's regulation code in the caller's
/// region). The bundle's signature is checked against the keys of the services the
/// region trusts (`/trusted-services`); then the enrolment is created with the
/// activities and signed assessments as read-only records with their provenance, the
/// rest as evidence, and the attachments. Delmål are mapped by code; codes the template
/// does not know are named in `unmapped_delmal` and kept with the record.
///
/// Refusals: 403 `transfer-untrusted` (a key no trusted service holds), 422
/// `transfer-tampered` (changed after signing), 409 `transfer-already-imported` (the
/// same bundle again, by its digest), 413 (larger than `TRANSFER_MAX_BYTES`), 422
/// `transfer-template-needed` or `validation` (the template, the trainee).
#[utoipa::path(
    tag = "transfer",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried import safe")),
    request_body(content = NewTransfer),
    responses(
        (status = 201, description = "Imported", body = TransferImport),
        (status = 403, description = "Not a director of studies, or `transfer-untrusted`", body = crate::error::Problem, content_type = PROBLEM),
        (status = 409, description = "`transfer-already-imported`", body = crate::error::Problem, content_type = PROBLEM),
        (status = 413, description = "Larger than `TRANSFER_MAX_BYTES`", body = crate::error::Problem, content_type = PROBLEM),
        (status = 415, description = "Not JSON", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "`transfer-tampered`, `transfer-template-needed` or `validation`", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/transfers")]
pub async fn create_transfer(
    state: web::Data<AppState>,
    ctx: Ctx,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    ctx.caller.require_person()?;
    if media_type(&req) != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "send the import as application/json".into(),
        ));
    }
    let max = ctx.config.transfer_max_bytes;
    let body = read_body(payload, max).await?;
    let input: NewTransfer = web::block(move || serde_json::from_slice::<NewTransfer>(&body))
        .await?
        .map_err(|e| AppError::Malformed(format!("not an import request: {e}")))?;
    let code = input.bundle["bundle"]["regulation"]["code"]
        .as_str()
        .ok_or_else(|| AppError::validation("bundle.bundle.regulation.code", "missing"))?
        .to_string();
    let (requested, doc) = (input.template_id.clone(), input.bundle);
    let (template, verified, trusted_id, trusted_name) = ctx
        .read(move |c, ctx| {
            let template = import::choose_template(c, &ctx.caller, requested.as_deref(), &code)?;
            let trusted = import::trusted_keys(c, &template)?;
            let keys: Vec<_> = trusted.iter().map(|t| (t.key_id.clone(), t.key)).collect();
            let verified = bundle::verify(&doc, &keys)?;
            let holder = trusted
                .iter()
                .find(|t| t.key_id == verified.key_id)
                .ok_or_else(|| AppError::internal("verified with a key no service holds"))?;
            Ok((
                template,
                verified,
                holder.service_id.clone(),
                holder.service_name.clone(),
            ))
        })
        .await?;
    // The attachments go to the blob store before the transaction: one the transaction
    // then does not name is removed by the sweep (`storage::sweep`).
    let list = verified.bundle["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let blobs = state.blobs.clone();
    let files = web::block(move || {
        let mut files = Vec::with_capacity(list.len());
        for a in &list {
            let bytes = bundle::attachment_bytes(a)?;
            let id = crate::portfolio::attachments::new_id();
            // Stored under its content hash, as uploads are (`storage::content_key`).
            let sha256 = crate::auth::crypto::sha256_hex(&bytes);
            let mut w = blobs.create()?;
            w.write(&bytes)?;
            w.commit(&crate::storage::content_key(&sha256)?)?;
            files.push(StoredFile {
                id,
                original_record_id: a["record_id"].as_str().unwrap_or("").to_string(),
                filename: crate::portfolio::attachments::clean_filename(
                    a["filename"].as_str().unwrap_or("attachment"),
                ),
                content_type: a["content_type"]
                    .as_str()
                    .unwrap_or("application/octet-stream")
                    .to_string(),
                size_bytes: i64::try_from(bytes.len()).map_err(AppError::internal)?,
                sha256,
            });
        }
        Ok::<_, AppError>(files)
    })
    .await??;
    let email = input.trainee_email;
    let done = ctx
        .write(move |c, ctx| {
            // Still a director over the template, in this transaction.
            let code = verified.bundle["regulation"]["code"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let t = import::choose_template(c, &ctx.caller, Some(&template.id), &code)?;
            import::import(
                c,
                ctx,
                &verified,
                import::Destination {
                    template_id: &TemplateId::from(t.id.as_str()),
                    trusted_service_id: &TrustedServiceId::from(trusted_id.as_str()),
                    service_name: &trusted_name,
                    trainee_email: &email,
                },
                &files,
            )
        })
        .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(done))
}

/// List trusted services
///
/// Administrators: the services trusted in the organisations they administer, with
/// their keys.
#[utoipa::path(
    tag = "transfer",
    params(PageParams),
    responses(
        (status = 200, description = "A page of trusted services, oldest first", body = Page<TrustedService>),
        (status = 403, description = "Not an administrator", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/trusted-services")]
pub async fn list_trusted_services(
    ctx: Ctx,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, AppError> {
    query.limit()?;
    let list = ctx.read(|c, ctx| trust::list(c, &ctx.caller)).await?;
    let page = Page::of_list(list, &query, |s| s.id.clone())?;
    Ok(HttpResponse::Ok().json(page))
}

/// Trust a service
///
/// An administrator of the organisation: the region then accepts transfer bundles
/// signed with one of these keys (PEM, as `GET /dossier-keys` on that service
/// publishes them). Check the keys with the other service's operators over a second
/// channel: a key is all that makes a bundle trusted. Audited.
#[utoipa::path(
    tag = "transfer",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewTrustedService),
    responses(
        (status = 201, description = "Trusted", body = TrustedService),
        (status = 403, description = "Not an administrator of the organisation", body = crate::error::Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid (a key that is not Ed25519, a bad URL)", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/trusted-services")]
pub async fn create_trusted_service(
    ctx: Ctx,
    body: web::Json<NewTrustedService>,
) -> Result<HttpResponse, AppError> {
    let n = body.into_inner();
    let s = ctx.write(move |c, ctx| trust::create(c, ctx, n)).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(s))
}

/// Stop trusting a service
///
/// Its bundles are refused from now on; what was imported from it stays, with its
/// provenance. Audited.
#[utoipa::path(
    tag = "transfer",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "No longer trusted"),
        (status = 404, description = "Unknown, or not yours to manage", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/trusted-services/{id}")]
pub async fn delete_trusted_service(
    ctx: Ctx,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    ctx.write(move |c, ctx| trust::delete(c, ctx, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(transfer_export)
        .service(create_transfer)
        .service(list_trusted_services)
        .service(create_trusted_service)
        .service(delete_trusted_service);
}
