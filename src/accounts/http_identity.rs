//! The HTTP handlers of a person's identity record (personnummer, protected identity,
//! HSA-id): `/users/{id}/personal-identity`. Beside `http.rs`, which is full.

use actix_web::http::StatusCode;
use actix_web::{get, patch, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::accounts::personal_identity::{self, Change, PersonalIdentity};
use crate::context::Ctx;
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag};
use crate::ids::UserId;

/// Responses that hold the number are never cached by a shared cache or kept by the
/// browser beyond the page.
fn private(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    res
}

/// Get a person's identity record
///
/// Personnummer or samordningsnummer, protected identity (skyddad personuppgift) and
/// HSA-id. For the person themselves, and administrators and directors of studies over
/// an organisation where the person holds a role; 404 for everyone else.
#[utoipa::path(
    tag = "users",
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The identity record (version 0: nothing recorded yet)", body = PersonalIdentity, headers(("ETag" = String))),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/users/{id}/personal-identity")]
pub async fn get_personal_identity(
    ctx: Ctx,
    path: web::Path<UserId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let identity = ctx
        .read(move |c, ctx| personal_identity::get(c, ctx, &id))
        .await?;
    Ok(private(with_etag(
        StatusCode::OK,
        identity.etag(),
        &identity,
    )))
}

/// A field that may be sent as a value, sent as `null` (clear it) or left out.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalIdentityPatch {
    /// Personnummer or samordningsnummer: `YYYYMMDD-NNNN`, `YYYYMMDDNNNN`, `YYMMDD-NNNN`
    /// or `YYMMDD+NNNN` (`+` from the year the person turns 100). Stored as 12 digits.
    /// `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, example = "19121212-1212")]
    pub personal_identity_number: Option<Option<String>>,
    /// HSA-id: `SE`, the directory owner's 10-digit organisation number, `-`, letters
    /// and digits; at most 31 characters. `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, example = "SE2321000016-15R7")]
    pub hsa_id: Option<Option<String>>,
    /// Skyddad personuppgift. Only administrators and directors of studies may set it.
    pub protected_identity: Option<bool>,
}

/// Change a person's identity record
///
/// The person may record their own number and HSA-id; administrators and directors of
/// studies over them may too, and they alone set protected identity. A number is
/// checked (form, date of birth, check digit) and must be unique in the person's region.
/// The audit log records which fields changed, never the number.
#[utoipa::path(
    tag = "users",
    params(
        ("id" = String, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, description = "ETag of the version you edited"),
    ),
    request_body = PersonalIdentityPatch,
    responses(
        (status = 200, description = "Updated", body = PersonalIdentity, headers(("ETag" = String))),
        (status = 403, description = "Protected identity set by someone who is not an administrator or director of studies over the person", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, or not yours to see", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A number in the wrong form, with no such date of birth, a wrong check digit or already recorded for another person in the region; an HSA-id in the wrong form", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/users/{id}/personal-identity")]
pub async fn patch_personal_identity(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<UserId>,
    body: web::Json<PersonalIdentityPatch>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let expected = if_match(&req);
    let body = body.into_inner();
    let identity = ctx
        .write(move |c, ctx| {
            personal_identity::update(
                c,
                ctx,
                &id,
                |tag| check_if_match(expected.as_deref(), tag),
                Change {
                    personal_identity_number: body.personal_identity_number,
                    hsa_id: body.hsa_id,
                    protected_identity: body.protected_identity,
                },
            )
        })
        .await?;
    Ok(private(with_etag(
        StatusCode::OK,
        identity.etag(),
        &identity,
    )))
}
