//! `/auth/oidc/*` (signing in with a linked e-ID) and `/me/oidc-links` (linking one,
//! after a step-up, and removing it).
//!
//! The browser leg: the client asks for an authorization URL, sends the person there,
//! and the provider sends the browser back to the frontend's `OIDC_REDIRECT_URL` with
//! `code` and `state`, which the frontend posts to the endpoint of what it started
//! (sign-in or link: it knows which, it started it).

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::flows::{self, Owner, Purpose};
use super::links::{self, OidcLink};
use super::provider;
use crate::app::AppState;
use crate::auth::http::{guarded, outcome_response, step_up_answer, AuthResponse};
use crate::auth::login::{after_first_factor, LoginOutcome};
use crate::auth::ratelimit;
use crate::auth::sessions::create_session;
use crate::auth::step_up::{self, StepUp};
use crate::config::OidcProvider;
use crate::context::{Context, Ctx};
use crate::error::AppError;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(oidc_provider)
        .service(oidc_authorize)
        .service(oidc_callback)
        .service(me_oidc_link_authorize)
        .service(me_oidc_link_create)
        .service(me_oidc_links)
        .service(me_oidc_link_remove);
}

/// The configured provider; none configured: 404 for every operation here.
fn configured<C>(ctx: &Context<C>) -> Result<OidcProvider, AppError> {
    ctx.config.oidc.clone().ok_or(AppError::NotFound)
}

/// The region's e-ID provider, for the sign-in button.
#[derive(Serialize, ToSchema)]
pub struct OidcProviderInfo {
    pub display_name: String,
    pub issuer: String,
    /// Whether a sign-in with it is complete by itself (`true`), or is followed by the
    /// account's own second factor (`mfa_required`) like a password.
    pub counts_as_second_factor: bool,
}

/// The e-ID provider
///
/// Which provider signs in here, if any (404 when the region configured none).
#[utoipa::path(
    tag = "auth",
    responses(
        (status = 200, description = "The provider", body = OidcProviderInfo),
        (status = 404, description = "No e-ID provider is configured", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[get("/auth/oidc")]
pub async fn oidc_provider(ctx: Context<()>) -> Result<HttpResponse, AppError> {
    let p = configured(&ctx)?;
    Ok(HttpResponse::Ok().json(OidcProviderInfo {
        display_name: p.display_name,
        issuer: p.issuer,
        counts_as_second_factor: p.counts_as_second_factor,
    }))
}

/// Where to send the person's browser.
#[derive(Serialize, ToSchema)]
pub struct OidcAuthorization {
    /// The provider's authorization URL, with `state`, `nonce` and the PKCE challenge.
    pub authorization_url: String,
    /// The attempt must be finished before this.
    #[serde(with = "crate::clock::millis")]
    pub expires_at: DateTime<Utc>,
}

/// What the provider sent the browser back with.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcAnswer {
    pub state: String,
    pub code: String,
    /// For a sign-in that continues with the account's second factor: a device token
    /// from an earlier login with `remember_device` skips it, as at password login.
    pub device_token: Option<String>,
}

/// Starts an attempt: discovery and the key fetch, blocking, outside any transaction.
async fn prepare(p: &OidcProvider) -> Result<provider::Started, AppError> {
    let p = p.clone();
    web::block(move || provider::start(&p)).await?
}

/// Start signing in with an e-ID
///
/// Answers with the provider's authorization URL; the provider sends the browser back
/// to the frontend, which posts `code` and `state` to `POST /auth/oidc/callback`.
#[utoipa::path(
    tag = "auth",
    responses(
        (status = 200, description = "Where to send the browser", body = OidcAuthorization),
        (status = 404, description = "No e-ID provider is configured", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider cannot be reached", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/oidc/authorize")]
pub async fn oidc_authorize(ctx: Context<()>) -> Result<HttpResponse, AppError> {
    let p = configured(&ctx)?;
    let started = prepare(&p).await?;
    let authorization_url = started.authorization_url.clone();
    let expires_at = ctx
        .write(move |c, ctx| {
            // Every start stores a row: counted like a login attempt from this address.
            ratelimit::hit(
                c,
                &ratelimit::login_address_key(&ctx.client.address),
                ctx.config.rate_limits.login_per_address,
                ctx.now,
            )?;
            flows::save(c, ctx.now, &p, Purpose::SignIn, None, &started)
        })
        .await?;
    Ok(HttpResponse::Ok().json(OidcAuthorization {
        authorization_url,
        expires_at,
    }))
}

/// Exchanges the code of a taken attempt and verifies the ID token (blocking).
async fn identity<C: Send + Sync + 'static>(
    ctx: &Context<C>,
    p: OidcProvider,
    taken: flows::Taken,
    code: String,
) -> Result<provider::Identity, AppError> {
    if taken.issuer != p.issuer {
        // Started with another provider (the configuration changed meanwhile).
        return Err(AppError::OidcRefused("issuer changed".into()));
    }
    let now = ctx.now;
    web::block(move || provider::finish(&p, now, &code, &taken.pkce_verifier, &taken.nonce)).await?
}

/// Finish signing in with an e-ID
///
/// With the `code` and `state` the provider sent the browser back with. The e-ID must be
/// linked to an account (`oidc-not-linked` otherwise, the same for every unlinked
/// e-ID). Answers like `POST /auth/login`: tokens when the provider is configured to
/// count as a second factor, otherwise the account's second factor (`mfa_required`).
/// Every attempt works once (`oidc-refused` when replayed or expired), and so does its
/// nonce.
#[utoipa::path(
    tag = "auth",
    request_body = OidcAnswer,
    responses(
        (status = 200, description = "Next step of signing in", body = AuthResponse),
        (status = 401, description = "Refused (`oidc-refused`) or not linked (`oidc-not-linked`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No e-ID provider is configured", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider cannot be reached", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/oidc/callback")]
pub async fn oidc_callback(
    state: web::Data<AppState>,
    ctx: Context<()>,
    body: web::Json<OidcAnswer>,
) -> Result<HttpResponse, AppError> {
    let p = configured(&ctx)?;
    let OidcAnswer {
        state: flow_state,
        code,
        device_token,
    } = body.into_inner();
    // Taken (committed) before the provider is asked: a second use of the state fails
    // even while the first is still talking to the provider.
    let taken = ctx
        .write_aside(move |c, ctx| flows::take(c, ctx.now, &flow_state, Purpose::SignIn, None))
        .await?;
    let who = identity(&ctx, p.clone(), taken, code).await?;
    let outcome = ctx
        .write(move |c, ctx| {
            let user = links::account_of(c, ctx.now, &ctx.client, &who)?;
            if p.counts_as_second_factor {
                let session =
                    create_session(c, &ctx.config, ctx.now, &user.id, "oidc", &ctx.client)?;
                return Ok(LoginOutcome::Authenticated(session));
            }
            after_first_factor(c, ctx, &user, device_token.as_deref())
        })
        .await?;
    outcome_response(&state, &ctx, outcome)
}

/// Start linking an e-ID to my account
///
/// Needs step-up (the current password and a second factor, unless this session gave
/// one in the last five minutes). Answers with the provider's authorization URL; the
/// frontend posts what the provider sends back to `POST /me/oidc-links`, in this
/// session.
#[utoipa::path(
    tag = "me",
    request_body = StepUp,
    responses(
        (status = 200, description = "Where to send the browser", body = OidcAuthorization),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No e-ID provider is configured", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider cannot be reached", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/oidc-links/authorize")]
pub async fn me_oidc_link_authorize(
    ctx: Ctx,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    ctx.caller.require_person()?;
    let p = configured(&ctx)?;
    let answer = step_up_answer(body);
    step_up::check_password(&ctx, &answer).await?;
    let started = prepare(&p).await?;
    let authorization_url = started.authorization_url.clone();
    // The second factor and the stored attempt in one transaction: a wrong factor is
    // recorded and nothing is started.
    let expires_at = ctx
        .write(move |c, ctx| {
            if let Err(e) = step_up::check_factor(c, ctx, &answer)? {
                return Ok(Err(e));
            }
            let owner = Owner {
                user_id: &ctx.caller.user_id,
                session_id: &ctx.caller.session_id,
            };
            flows::save(c, ctx.now, &p, Purpose::Link, Some(owner), &started).map(Ok)
        })
        .await??;
    Ok(HttpResponse::Ok().json(OidcAuthorization {
        authorization_url,
        expires_at,
    }))
}

/// What the provider sent the browser back with, for a link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcLinkAnswer {
    pub state: String,
    pub code: String,
}

/// Link an e-ID to my account
///
/// With the `code` and `state` of a link this session started. The link is by the
/// provider's subject, never by e-mail; one account per e-ID and one e-ID per account
/// (409 otherwise). Another person's attempt is 404.
#[utoipa::path(
    tag = "me",
    request_body = OidcLinkAnswer,
    responses(
        (status = 201, description = "Linked", body = OidcLink),
        (status = 401, description = "Refused (`oidc-refused`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such attempt of this session, or no provider configured", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The e-ID, or an e-ID of this provider for this account, is linked already", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/oidc-links")]
pub async fn me_oidc_link_create(
    ctx: Ctx,
    body: web::Json<OidcLinkAnswer>,
) -> Result<HttpResponse, AppError> {
    ctx.caller.require_person()?;
    let p = configured(&ctx)?;
    let OidcLinkAnswer {
        state: flow_state,
        code,
    } = body.into_inner();
    let taken = ctx
        .write_aside(move |c, ctx| {
            let owner = Owner {
                user_id: &ctx.caller.user_id,
                session_id: &ctx.caller.session_id,
            };
            flows::take(c, ctx.now, &flow_state, Purpose::Link, Some(owner))
        })
        .await?;
    let who = identity(&ctx, p.clone(), taken, code).await?;
    let link = ctx
        .write(move |c, ctx| {
            links::link(
                c,
                ctx.now,
                &ctx.client,
                &ctx.caller.user_id,
                &who,
                &p.display_name,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(link))
}

/// My linked e-IDs
#[utoipa::path(
    tag = "me",
    responses(
        (status = 200, description = "My links", body = crate::http::Page<OidcLink>),
    ),
    params(crate::http::PageParams),
    security(("bearer" = []))
)]
#[get("/me/oidc-links")]
pub async fn me_oidc_links(
    ctx: Ctx,
    query: web::Query<crate::http::PageParams>,
) -> Result<HttpResponse, AppError> {
    ctx.caller.require_person()?;
    let name = ctx
        .config
        .oidc
        .as_ref()
        .map(|p| p.display_name.clone())
        .unwrap_or_default();
    let items = ctx
        .read(move |c, ctx| links::list(c, &ctx.caller.user_id, &name))
        .await?;
    Ok(HttpResponse::Ok().json(crate::http::Page::of_list(items, &query, |l| l.id.clone())?))
}

/// Remove a linked e-ID
///
/// Signing in with it stops working. Needs step-up: send the step-up fields as the JSON
/// body of the DELETE.
#[utoipa::path(
    tag = "me",
    params(("id" = String, Path, description = "Link id")),
    request_body = StepUp,
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such link of yours", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/me/oidc-links/{id}")]
pub async fn me_oidc_link_remove(
    state: web::Data<AppState>,
    ctx: Ctx,
    path: web::Path<String>,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    guarded(&state, &ctx, step_up_answer(body), move |c, ctx| {
        links::remove(c, ctx.now, &ctx.client, &ctx.caller.user_id, &id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
