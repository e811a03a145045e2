//! The dossier's handlers: issue (JSON or PDF), verify, the public keys.

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::build;
use super::signing::{self, PublicKey, Verification};
use crate::audit::{self, Event};
use crate::context::{Context, Ctx};
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::{media_type, negotiate, read_body};
use crate::ids::EnrolmentId;

const PROBLEM: &str = "application/problem+json";

/// Largest dossier file accepted for verification.
const MAX_VERIFY_BYTES: usize = 64 * 1024 * 1024;

/// The dossier of a trainee
///
/// Everything the final assessment rests on: the plan and who supervised, every delmål
/// with its evidence in date order, all signed assessments, summary assessments,
/// supervision and handover records, the final assessment, and the audit facts (who
/// signed what and when). Signed by the service (Ed25519). `Accept: application/json`
/// (default) or `application/pdf` (the same content, for paper; the signature rides in
/// a comment after `%%EOF`). Every issue is recorded in the audit log.
#[utoipa::path(
    tag = "dossier",
    params(("id" = String, Path, description = "Enrolment")),
    responses(
        (status = 200, description = "The signed dossier", content(
            (signing::SignedDossier = "application/json"),
            (crate::http::FileBody = "application/pdf"),
        )),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = PROBLEM),
        (status = 406, description = "Neither JSON nor PDF is acceptable", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/enrolments/{id}/dossier")]
pub async fn get_dossier(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    // Besides the route policy: the pull is audited to a person, never to a client.
    ctx.caller.require_person()?;
    let kind = negotiate(&req, &["application/json", "application/pdf"])?;
    let id = path.into_inner();
    let eid = EnrolmentId::new(id.clone());
    let (dossier, key_id, key) = ctx
        .read(move |c, ctx| {
            let me = &ctx.caller;
            let allowed = access::access(c, me, &eid, ctx.today())? >= Access::Read
                || crate::final_assessment::service::is_signer_of_enrolment(c, &me.user_id, &eid)?;
            if !allowed {
                return Err(AppError::NotFound);
            }
            let (key_id, key) = signing::current_key(c, ctx.keyring()?)?;
            Ok((build::build(c, &eid, ctx.now)?, key_id, key))
        })
        .await?;
    let signature = signing::sign_dossier(&key_id, &key, &dossier);
    let pdf = kind == "application/pdf";
    let dossier_id = dossier["dossier_id"].as_str().unwrap_or("").to_string();
    let records = dossier["records"].as_array().map(|r| r.len()).unwrap_or(0);
    let hash = signature.content_hash.clone();
    ctx.write(move |c, ctx| {
        audit::append(
            c,
            ctx.now,
            Event {
                actor_id: Some(&ctx.caller.user_id),
                client: ctx.client.user_agent.as_deref(),
                action: "issued",
                entity: "dossier",
                entity_id: &dossier_id,
                enrolment_id: Some(&id),
                data: &json!({"format": if pdf { "pdf" } else { "json" }, "content_hash": hash, "records": records}),
            },
        )
    })
    .await?;
    let file = format!(
        "dossier-{}-{}",
        dossier["enrolment"]["id"].as_str().unwrap_or(""),
        build::stamp(&dossier)
    );
    if pdf {
        let body = web::block(move || {
            let bytes = build::pdf(&dossier, &signature.content_hash, &key_id)?;
            Ok::<_, AppError>(signing::seal_pdf(
                &key_id,
                &key,
                bytes,
                &dossier,
                &signature.content_hash,
            ))
        })
        .await??;
        crate::telemetry::metrics::dossier("pdf");
        return Ok(HttpResponse::Ok()
            .content_type("application/pdf")
            .insert_header((header::VARY, "Accept"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{file}.pdf\""),
            ))
            .body(body));
    }
    crate::telemetry::metrics::dossier("json");
    Ok(HttpResponse::Ok()
        .insert_header((header::VARY, "Accept"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{file}.json\""),
        ))
        .json(json!({"dossier": dossier, "signature": signature})))
}

/// Verify a dossier
///
/// Public. Send a dossier file exactly as it was issued, JSON (`application/json`) or
/// PDF (`application/pdf`): the answer says whether the service signed it and it is
/// unchanged, and which records it covers. To verify offline, use the public key from
/// `/dossier-keys` (see the README).
#[utoipa::path(
    tag = "dossier",
    request_body(description = "The dossier file exactly as issued", content(
        (signing::SignedDossier = "application/json"),
        (crate::http::FileBody = "application/pdf"),
    )),
    responses(
        (status = 200, description = "The verdict; `authentic` false with a `reason` for a changed or foreign file", body = Verification),
        (status = 413, description = "Too large", body = crate::error::Problem, content_type = PROBLEM),
        (status = 415, description = "Not JSON or PDF", body = crate::error::Problem, content_type = PROBLEM),
    ),
    security(())
)]
#[post("/dossier-verifications")]
pub async fn verify_dossier(
    ctx: Context<()>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let media = media_type(&req);
    if media != "application/json" && media != "application/pdf" {
        return Err(AppError::UnsupportedMediaType(
            "send the dossier as application/json or application/pdf".into(),
        ));
    }
    let body = read_body(payload, MAX_VERIFY_BYTES).await?;
    let keys = ctx.read(|c, _| signing::verifying_keys(c)).await?;
    let v = web::block(move || signing::verify(&body, &keys)).await?;
    Ok(HttpResponse::Ok().json(v))
}

/// The service's public keys
///
/// Public. The Ed25519 keys dossiers are signed with, raw (base64) and as PEM, current and
/// retired, so anyone can verify a dossier offline.
#[utoipa::path(
    tag = "dossier",
    params(crate::http::PageParams),
    responses(
        (status = 200, description = "A page of keys, oldest first", body = crate::http::Page<PublicKey>),
    ),
    security(())
)]
#[get("/dossier-keys")]
pub async fn list_keys(
    ctx: Context<()>,
    query: web::Query<crate::http::PageParams>,
) -> Result<HttpResponse, AppError> {
    query.limit()?;
    let keys = ctx.read(|c, _| signing::public_keys(c)).await?;
    let page = crate::http::Page::of_list(keys, &query, |k| k.key_id.clone())?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(page))
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_dossier)
        .service(verify_dossier)
        .service(list_keys);
}
