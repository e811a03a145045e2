//! The HTTP handlers of a person's signer profile (specialty, tjänsteställe,
//! handledarutbildning): `/users/{id}/signer-profile`. Beside `http.rs`, which is full.

use actix_web::http::StatusCode;
use actix_web::{get, put, web, HttpRequest, HttpResponse};

use crate::accounts::signer_profiles::{self, SignerProfile, SignerProfileInput};
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag};
use crate::ids::UserId;

/// Get a person's signer profile
///
/// What the certificates and the dossier print beside the person's name: specialty,
/// tjänsteställe and the date of their handledarutbildning. For the person themselves,
/// and administrators and directors of studies over an organisation where the person
/// holds a role; 404 for everyone else.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The profile (version 0: nothing stated yet)", body = SignerProfile, headers(("ETag" = String))),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/users/{id}/signer-profile")]
pub async fn get_signer_profile(
    ctx: Ctx,
    path: web::Path<UserId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let profile = ctx
        .read(move |c, ctx| signer_profiles::get(c, ctx, &id))
        .await?;
    Ok(with_etag(StatusCode::OK, profile.etag(), &profile))
}

/// Set a person's signer profile
///
/// The whole profile: a field left out or null is cleared. By the person, or an
/// administrator or director of studies over them; 404 for everyone else. `If-Match`
/// (the ETag read) guards against overwriting an edit made since.
#[utoipa::path(
    tag = "users",
    params(
        ("id" = String, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the version you edited"),
    ),
    request_body = SignerProfileInput,
    responses(
        (status = 200, description = "Stored", body = SignerProfile, headers(("ETag" = String))),
        (status = 404, description = "Unknown, or not yours to edit", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not valid", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/users/{id}/signer-profile")]
pub async fn put_signer_profile(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<UserId>,
    body: web::Json<SignerProfileInput>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let expected = if_match(&req);
    let profile: SignerProfile = ctx
        .write(move |c, ctx| {
            signer_profiles::put(
                c,
                ctx,
                &id,
                |tag| check_if_match(expected.as_deref(), tag),
                &body,
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, profile.etag(), &profile))
}
