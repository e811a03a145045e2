//! Passkeys over HTTP: registering, listing, renaming and revoking them under
//! `/me/passkeys`, and signing in with one under `/auth/passkeys` (the second factor of
//! a login, or without a password). See `auth::passkeys` and docs/passkeys.md.

use actix_web::http::StatusCode;
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::me::{guarded, step_up_answer};
use super::sign_in::{remember, tokens, AuthResponse};
use crate::app::AppState;
use crate::auth::passkeys::assertion;
use crate::auth::passkeys::store::{self, CeremonyOptions, PasskeyView};
use crate::auth::step_up::StepUp;
use crate::auth::validate;
use crate::context::{Context, Ctx};
use crate::error::AppError;
use crate::http::{check_if_match, if_match, with_etag, Page};
use crate::ids::{CeremonyId, PasskeyId};
use crate::telemetry::security::{Event, SecurityEvent};

/// A passkey's name: required, like any display name free of control and
/// text-direction characters, at most 100 characters.
fn valid_name(name: &str) -> Result<(), AppError> {
    if name.trim().is_empty() {
        return Err(AppError::validation("name", "give the passkey a name"));
    }
    if name.trim().chars().count() > 100 {
        return Err(AppError::validation("name", "at most 100 characters"));
    }
    if let Some(problem) = validate::name_problem(name) {
        return Err(AppError::validation("name", problem));
    }
    Ok(())
}

/// Start registering a passkey
///
/// Needs step-up (the password, and a second factor unless this session gave one in the
/// last five minutes). Hand `options` to `navigator.credentials.create()`, then send the
/// answer to `POST /me/passkeys` with `ceremony_id` within five minutes. Attestation is
/// `none`; user verification is required.
#[utoipa::path(
    tag = "me",
    request_body = StepUp,
    responses(
        (status = 200, description = "Registration options", body = CeremonyOptions),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account has the most passkeys it may have", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Passkeys are not configured on this server", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/passkeys/options")]
pub async fn me_passkey_options(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    let options = guarded(&state, &ctx, step_up_answer(body), move |c, ctx| {
        store::start_registration(c, ctx)
    })
    .await?;
    Ok(HttpResponse::Ok().json(options))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPasskey {
    /// From `POST /me/passkeys/options`.
    pub ceremony_id: String,
    /// A name to recognise it by ("iPhone").
    pub name: String,
    /// What `navigator.credentials.create()` returned, as JSON (binary values base64url).
    #[schema(value_type = Object)]
    pub credential: RegisterPublicKeyCredential,
}

/// Register a passkey
///
/// The authenticator's answer to `POST /me/passkeys/options`. The ceremony is used up
/// by this call, right or wrong. The account's address is told, with a link that undoes
/// the change.
#[utoipa::path(
    tag = "me",
    request_body = NewPasskey,
    responses(
        (status = 201, description = "Registered", body = PasskeyView),
        (status = 401, description = "The ceremony expired, was used, or is not yours", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "This passkey is registered already, or the account has the most it may have", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad name, or an answer that does not fit the ceremony (wrong origin, challenge, no user verification)", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/passkeys")]
pub async fn me_passkey_register(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: web::Json<NewPasskey>,
) -> Result<HttpResponse, AppError> {
    ctx.caller.require_person()?;
    let body = body.into_inner();
    valid_name(&body.name)?;
    let view = ctx
        .write(move |c, ctx| {
            store::finish_registration(
                c,
                ctx,
                &CeremonyId::from(body.ceremony_id.as_str()),
                &body.name,
                &body.credential,
            )
        })
        .await??;
    state.outbox.wake();
    SecurityEvent::new(Event::SecondFactorAdded)
        .user(&ctx.caller.user_id)
        .kind("passkey")
        .client(&ctx.client)
        .emit();
    Ok(with_etag(StatusCode::CREATED, view.etag(), &view))
}

/// List my passkeys
///
/// The active ones (revoked passkeys are not listed), oldest first.
#[utoipa::path(
    tag = "me",
    params(crate::http::PageParams),
    responses((status = 200, description = "My passkeys", body = Page<PasskeyView>)),
    security(("bearer" = []))
)]
#[get("/me/passkeys")]
pub async fn me_passkeys(
    ctx: Ctx,
    query: web::Query<crate::http::PageParams>,
) -> Result<HttpResponse, AppError> {
    ctx.caller.require_person()?;
    let items = ctx
        .read(|c, ctx| store::list(c, &ctx.caller.user_id))
        .await?;
    Ok(HttpResponse::Ok().json(Page::of_list(items, &query, |p| p.id.clone())?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyPatch {
    pub name: String,
}

/// Rename one of my passkeys
#[utoipa::path(
    tag = "me",
    params(("id" = String, Path, description = "Passkey id")),
    request_body = PasskeyPatch,
    responses(
        (status = 200, description = "Renamed", body = PasskeyView),
        (status = 404, description = "No such passkey of yours", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since you read it", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad name", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/me/passkeys/{id}")]
pub async fn me_passkey_rename(
    ctx: Ctx,
    req: HttpRequest,
    path: web::Path<PasskeyId>,
    body: web::Json<PasskeyPatch>,
) -> Result<HttpResponse, AppError> {
    ctx.caller.require_person()?;
    valid_name(&body.name)?;
    let id = path.into_inner();
    let expected = if_match(&req);
    let view = ctx
        .write(move |c, ctx| {
            store::rename(
                c,
                ctx,
                &id,
                |tag| check_if_match(expected.as_deref(), tag),
                &body.name,
            )
        })
        .await?;
    Ok(with_etag(StatusCode::OK, view.etag(), &view))
}

/// Revoke one of my passkeys
///
/// It never signs in again. Needs step-up: send the step-up fields as the JSON body of
/// the DELETE.
#[utoipa::path(
    tag = "me",
    params(("id" = String, Path, description = "Passkey id")),
    request_body = StepUp,
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such passkey of yours", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/me/passkeys/{id}")]
pub async fn me_passkey_revoke(
    state: web::Data<AppState>,
    ctx: Ctx,
    path: web::Path<PasskeyId>,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    guarded(&state, &ctx, step_up_answer(body), move |c, ctx| {
        store::revoke(c, ctx, &id)
    })
    .await?;
    SecurityEvent::new(Event::SecondFactorRemoved)
        .user(&ctx.caller.user_id)
        .kind("passkey")
        .client(&ctx.client)
        .emit();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyOptionsRequest {
    /// The second-factor step of a login: the `mfa_token` from `/auth/login`.
    pub mfa_token: Option<String>,
    /// A passwordless sign-in: the account's e-mail address.
    pub email: Option<String>,
}

/// Start signing in with a passkey
///
/// Send `mfa_token` (after the password, when `methods` lists `passkey`) or `email` (a
/// sign-in without password), not both. Hand `options` to `navigator.credentials.get()`,
/// then send the answer to `POST /auth/passkeys/verify` within five minutes. An unknown
/// address and an account without passkeys get options too (which no passkey answers),
/// so the answer does not tell which addresses have accounts.
#[utoipa::path(
    tag = "auth",
    request_body = PasskeyOptionsRequest,
    responses(
        (status = 200, description = "Assertion options", body = CeremonyOptions),
        (status = 401, description = "The sign-in step (`mfa_token`) expired or was used", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The `mfa_token` is for enrolling a first second factor, which a passkey is not", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Passkeys are not configured on this server", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/passkeys/options")]
pub async fn passkey_options(
    ctx: Context<()>,
    body: web::Json<PasskeyOptionsRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let options = match (body.mfa_token, body.email) {
        (Some(token), None) => {
            ctx.write(move |c, ctx| assertion::start_second_factor(c, ctx, &token))
                .await?
        }
        (None, Some(email)) => {
            let email = validate::normalize_email(&email);
            ctx.write(move |c, ctx| assertion::start_sign_in(c, ctx, &email))
                .await?
        }
        _ => {
            return Err(AppError::validation(
                "mfa_token",
                "send either mfa_token (after the password) or email (without one)",
            ))
        }
    };
    Ok(HttpResponse::Ok().json(options))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyVerifyRequest {
    /// From `POST /auth/passkeys/options`.
    pub ceremony_id: String,
    /// What `navigator.credentials.get()` returned, as JSON (binary values base64url).
    #[schema(value_type = Object)]
    pub credential: PublicKeyCredential,
    /// The `mfa_token` the options were asked for with; absent for a passwordless
    /// sign-in.
    pub mfa_token: Option<String>,
    /// Second factor only: remember this device for 30 days (as `/auth/mfa/verify`).
    #[serde(default)]
    pub remember_device: bool,
    pub device_name: Option<String>,
}

/// Complete signing in with a passkey
///
/// Refused (401 `invalid-second-factor`) when the answer does not fit: another origin,
/// a revoked passkey, a signature counter that did not go up (a cloned authenticator,
/// audited), no user verification; a ceremony answers once (a replay: 401). The session
/// counts as having a fresh second factor (step-up, signing).
#[utoipa::path(
    tag = "auth",
    request_body = PasskeyVerifyRequest,
    responses(
        (status = 200, description = "Signed in", body = AuthResponse),
        (status = 401, description = "A refused answer, or the ceremony or sign-in step expired or was used", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/passkeys/verify")]
pub async fn passkey_verify(
    state: web::Data<AppState>,
    ctx: Context<()>,
    body: web::Json<PasskeyVerifyRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let (ceremony_id, credential) = (CeremonyId::new(body.ceremony_id), body.credential);
    let (session, device_token) = match body.mfa_token {
        Some(token) => {
            let remember = remember(body.remember_device, body.device_name)?;
            ctx.write(move |c, ctx| {
                assertion::finish_second_factor_step(
                    c,
                    ctx,
                    &token,
                    &ceremony_id,
                    &credential,
                    remember,
                )
            })
            .await??
        }
        None => {
            if body.remember_device {
                return Err(AppError::validation(
                    "remember_device",
                    "a passwordless sign-in skips nothing to remember a device for",
                ));
            }
            let session = ctx
                .write(move |c, ctx| assertion::finish_sign_in(c, ctx, &ceremony_id, &credential))
                .await??;
            (session, None)
        }
    };
    SecurityEvent::new(Event::SecondFactorSucceeded)
        .user(session.user_id.as_str())
        .kind("passkey")
        .client(&ctx.client)
        .emit();
    let mut out = tokens(&state, &ctx, &session)?;
    out.device_token = device_token;
    // Tokens: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(HttpResponse::Ok().json(out)))
}
