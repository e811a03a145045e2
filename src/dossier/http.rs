//! The dossier's handlers: issue (JSON or PDF), verify, the public keys.

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::build;
use super::signing::{self, PublicKey, Verification};
use crate::app::AppState;
use crate::audit::{self, Event};
use crate::auth::principal::Principal;
use crate::db;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::http::{client_info, media_type, negotiate, read_body};

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
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    // Besides the route policy: the pull is audited to a person, never to a client.
    me.require_person()?;
    let kind = negotiate(&req, &["application/json", "application/pdf"])?;
    let id = path.into_inner();
    let now = state.clock.now();
    let today = now.date_naive();
    let actor = me.user_id.clone();
    let eid = id.clone();
    let (dossier, key_id, key) = db::run(&state.pool, move |c| {
        let allowed = access::access(c, &me, &eid, today)? >= Access::Read
            || crate::final_assessment::service::is_signer_of_enrolment(c, &me.user_id, &eid)?;
        if !allowed {
            return Err(AppError::NotFound);
        }
        let (key_id, key) = signing::current_key(c)?;
        Ok((build::build(c, &eid, now)?, key_id, key))
    })
    .await?;
    let signature = signing::sign_dossier(&key_id, &key, &dossier);
    let pdf = kind == "application/pdf";
    let dossier_id = dossier["dossier_id"].as_str().unwrap_or("").to_string();
    let records = dossier["records"].as_array().map(|r| r.len()).unwrap_or(0);
    let hash = signature.content_hash.clone();
    let client = client_info(&req, &state.config);
    db::write(&state.pool, move |c| {
        audit::append(
            c,
            now,
            Event {
                actor_id: Some(&actor),
                client: client.user_agent.as_deref(),
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
            let bytes = build::pdf(&dossier, &signature.content_hash, &key_id);
            signing::seal_pdf(&key_id, &key, bytes, &dossier, &signature.content_hash)
        })
        .await?;
        return Ok(HttpResponse::Ok()
            .content_type("application/pdf")
            .insert_header((header::VARY, "Accept"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{file}.pdf\""),
            ))
            .body(body));
    }
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
    state: web::Data<AppState>,
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
    let keys = db::run(&state.pool, signing::verifying_keys).await?;
    let v = web::block(move || signing::verify(&body, &keys)).await?;
    Ok(HttpResponse::Ok().json(v))
}

/// The service's public keys
///
/// Public. The Ed25519 keys dossiers are signed with, raw (base64) and as PEM, current and
/// retired, so anyone can verify a dossier offline.
#[utoipa::path(
    tag = "dossier",
    responses(
        (status = 200, description = "Keys, oldest first", body = Vec<PublicKey>),
    ),
    security(())
)]
#[get("/dossier-keys")]
pub async fn list_keys(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let keys = db::run(&state.pool, signing::public_keys).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(keys))
}

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_dossier)
        .service(verify_dossier)
        .service(list_keys);
}
