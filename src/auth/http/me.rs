//! The caller's own security settings under `/me`.
//!
//! Every change here needs step-up (see `auth::step_up`): the current password and a
//! second factor, unless this session gave one in the last five minutes. Without them
//! the answer is 401 `step-up-required`, whose `requires` and `methods` tell the client
//! what to ask the person for.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sign_in::{hash, EmailCodeSent, TotpSetupResponse};
use crate::app::AppState;
use crate::auth::sessions::{self};
use crate::auth::step_up::{self, StepUp};
use crate::auth::{credentials, devices, link_tokens, ratelimit, recovery_codes, totp, validate};
use crate::clock::from_db;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::telemetry::security::{Event, SecurityEvent};

/// Runs a step-up guarded change: the password first (outside the transaction), then the
/// second factor and the change in one transaction. A wrong factor is recorded and the
/// change not made.
pub(crate) async fn guarded<T, F>(
    state: &AppState,
    ctx: &Ctx,
    answer: StepUp,
    change: F,
) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &Ctx) -> Result<T, AppError> + Send + 'static,
{
    step_up::check_password(ctx, &answer).await?;
    let value = ctx
        .write(move |c, ctx| {
            if let Err(e) = step_up::check_factor(c, ctx, &answer)? {
                return Ok(Err(e));
            }
            change(c, ctx).map(Ok)
        })
        .await??;
    state.outbox.wake();
    Ok(value)
}

/// A request without a (readable) body is a request without step-up, and is answered
/// as such: the `step-up-required` problem tells the client what to send.
pub(crate) fn step_up_answer(body: Option<web::Json<StepUp>>) -> StepUp {
    body.map(|b| b.into_inner()).unwrap_or_default()
}

/// Start (or restart) TOTP enrolment
///
/// A new secret; the current authenticator keeps working until the new one is confirmed.
/// Needs step-up: `password`, and a second factor unless this session gave one in the
/// last five minutes.
#[utoipa::path(
    tag = "me",
    request_body = StepUp,
    responses(
        (status = 200, description = "Secret, URI and QR code", body = TotpSetupResponse),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/totp")]
pub async fn me_totp_setup(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    let setup = guarded(&state, &ctx, step_up_answer(body), move |c, ctx| {
        totp::totp_setup(c, ctx.keyring()?, ctx.now, &ctx.caller.user_id)
    })
    .await?;
    Ok(crate::idempotency::secret(
        HttpResponse::Ok().json(TotpSetupResponse::from(setup)),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct TotpConfirmed {
    /// Present when the account had no recovery codes yet (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

/// Confirm TOTP enrolment
///
/// With a code from the new authenticator, whose secret only the step-up guarded
/// `POST /me/totp` handed out. The account's address is told, with a link that undoes
/// the change.
#[utoipa::path(
    tag = "me",
    request_body = CodeRequest,
    responses(
        (status = 200, description = "Authenticator active", body = TotpConfirmed),
        (status = 401, description = "Wrong code", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/totp/confirm")]
pub async fn me_totp_confirm(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, AppError> {
    ctx.caller.require_person()?;
    let codes = ctx
        .write(move |c, ctx| {
            let (me, now) = (&ctx.caller, ctx.now);
            // Counted before the code is checked, as at login and step-up; taken back if
            // right.
            let counted = ratelimit::hit(
                c,
                &ratelimit::mfa_key(&me.user_id),
                ctx.config.rate_limits.mfa_per_account,
                now,
            )?;
            let codes = match totp::totp_confirm(c, ctx.keyring()?, now, &me.user_id, &body.code)? {
                Ok(codes) => codes,
                Err(e) => return Ok(Err(e)),
            };
            ratelimit::undo(c, &counted)?;
            step_up::notify_change(c, ctx, &me.user_id, step_up::Change::SecondFactor)?;
            Ok(Ok(codes))
        })
        .await??;
    state.outbox.wake();
    SecurityEvent::new(Event::SecondFactorAdded)
        .user(&ctx.caller.user_id)
        .kind("totp")
        .client(&ctx.client)
        .emit();
    Ok(crate::idempotency::secret(HttpResponse::Ok().json(
        TotpConfirmed {
            recovery_codes: codes,
        },
    )))
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes, shown only now; earlier codes stop working.
    pub recovery_codes: Vec<String>,
}

/// Replace the recovery codes
///
/// Needs step-up. The account's address is told, with a link that undoes the change.
#[utoipa::path(
    tag = "me",
    request_body = StepUp,
    responses(
        (status = 201, description = "New codes", body = RecoveryCodes),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/recovery-codes")]
pub async fn me_recovery_codes(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    let codes = guarded(&state, &ctx, step_up_answer(body), move |c, ctx| {
        let me = &ctx.caller.user_id;
        let codes = recovery_codes::replace_recovery_codes(c, ctx.now, me)?;
        step_up::notify_change(c, ctx, me, step_up::Change::SecondFactor)?;
        Ok(codes)
    })
    .await?;
    SecurityEvent::new(Event::SecondFactorAdded)
        .user(&ctx.caller.user_id)
        .kind("recovery_codes")
        .client(&ctx.client)
        .emit();
    Ok(crate::idempotency::secret(HttpResponse::Created().json(
        RecoveryCodes {
            recovery_codes: codes,
        },
    )))
}

/// Send a step-up code by e-mail
///
/// For accounts that use e-mailed codes: the code answers a step-up as `email_code`.
/// Valid for 10 minutes, once.
#[utoipa::path(
    tag = "me",
    responses(
        (status = 202, description = "Code sent", body = EmailCodeSent),
        (status = 403, description = "E-mailed codes are not enabled for this account", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/step-up/email-code")]
pub async fn me_step_up_email_code(
    state: web::Data<AppState>,
    ctx: Ctx,
) -> Result<HttpResponse, AppError> {
    let (sent_to, expires_at) = ctx.write(step_up::send_step_up_code).await?;
    state.outbox.wake();
    Ok(HttpResponse::Accepted().json(EmailCodeSent {
        sent_to,
        expires_at,
    }))
}

/// A remembered device (skips the second factor for 30 days).
#[derive(Serialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub last_used_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub expires_at: DateTime<Utc>,
}

/// List my remembered devices
#[utoipa::path(
    tag = "me",
    params(crate::http::PageParams),
    responses((status = 200, description = "Active remembered devices", body = crate::http::Page<DeviceView>)),
    security(("bearer" = []))
)]
#[get("/me/devices")]
pub async fn me_devices(
    ctx: Ctx,
    query: web::Query<crate::http::PageParams>,
) -> Result<HttpResponse, AppError> {
    let rows = ctx
        .read(|c, ctx| devices::list(c, ctx.now, &ctx.caller.user_id))
        .await?;
    let items: Vec<DeviceView> = rows
        .into_iter()
        .map(|d| DeviceView {
            id: d.id,
            name: d.name,
            created_at: from_db(d.created_at),
            last_used_at: from_db(d.last_used_at),
            expires_at: from_db(d.expires_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(crate::http::Page::of_list(items, &query, |d| d.id.clone())?))
}

/// Forget a remembered device
///
/// Its next login asks for the second factor again. Needs step-up: send the step-up
/// fields as the JSON body of the DELETE.
#[utoipa::path(
    tag = "me",
    params(("id" = String, Path, description = "Device id")),
    request_body = StepUp,
    responses(
        (status = 204, description = "Forgotten"),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device of yours", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/me/devices/{id}")]
pub async fn me_device_revoke(
    state: web::Data<AppState>,
    ctx: Ctx,
    path: web::Path<String>,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let n = guarded(&state, &ctx, step_up_answer(body), move |c, ctx| {
        devices::forget(c, ctx.now, &ctx.caller.user_id, &id)
    })
    .await?;
    if n == 0 {
        return Err(AppError::NotFound);
    }
    SecurityEvent::new(Event::SecondFactorRemoved)
        .user(&ctx.caller.user_id)
        .kind("remembered_device")
        .client(&ctx.client)
        .emit();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password (`current_password` is accepted too).
    #[serde(alias = "current_password")]
    pub password: Option<String>,
    pub new_password: String,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
    pub email_code: Option<String>,
}

/// Change my password
///
/// Needs step-up. Ends all sessions, this one included, forgets remembered devices and
/// cancels pending e-mail changes.
/// The account's address is told, with a link that undoes the change.
#[utoipa::path(
    tag = "me",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; log in again"),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/password")]
pub async fn me_password(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    validate::check_password("new_password", &body.new_password)?;
    let answer = StepUp {
        password: body.password,
        totp_code: body.totp_code,
        recovery_code: body.recovery_code,
        email_code: body.email_code,
    };
    // Refuse a missing or wrong step-up before spending a hash on the new password.
    step_up::check_password(&ctx, &answer).await?;
    let new_hash = hash(&ctx, body.new_password).await?;
    ctx.write(move |c, ctx| {
        if let Err(e) = step_up::check_factor(c, ctx, &answer)? {
            return Ok(Err(e));
        }
        let (me, now) = (&ctx.caller.user_id, ctx.now);
        credentials::set_password(c, now, me, &new_hash)?;
        link_tokens::cancel_email_changes(c, now, me)?;
        sessions::revoke_all_sessions(c, ctx, me, "password_change")?;
        step_up::notify_change(c, ctx, me, step_up::Change::Password)?;
        Ok(Ok(()))
    })
    .await??;
    state.outbox.wake();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChange {
    pub new_email: String,
    /// The current password.
    pub password: Option<String>,
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
    pub email_code: Option<String>,
}

/// Change my e-mail address
///
/// Needs step-up. Sends a confirmation link to the new address; the change takes effect
/// when it is used. The current address is told at once, with a link (valid 7 days)
/// that undoes the change and ends every session.
#[utoipa::path(
    tag = "me",
    request_body = EmailChange,
    responses(
        (status = 202, description = "Confirmation link sent to the new address"),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The address belongs to another account", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/email")]
pub async fn me_email(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: web::Json<EmailChange>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let email = validate::normalize_email(&body.new_email);
    if !validate::valid_email(&email) {
        return Err(AppError::validation(
            "new_email",
            "is not an e-mail address",
        ));
    }
    let answer = StepUp {
        password: body.password,
        totp_code: body.totp_code,
        recovery_code: body.recovery_code,
        email_code: body.email_code,
    };
    guarded(&state, &ctx, answer, move |c, ctx| {
        let me = &ctx.caller.user_id;
        let old = credentials::credentials_by_id(c, me)?.email;
        let mail = link_tokens::request_email_change(c, ctx, me, &email)?;
        crate::outbox::enqueue(c, ctx.keyring()?, ctx.now, std::slice::from_ref(&mail))?;
        step_up::notify_change(
            c,
            ctx,
            me,
            step_up::Change::Email {
                old: &old,
                new: &email,
            },
        )
    })
    .await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Confirm who I am
///
/// Step-up without a change: the current password and a second factor. The session
/// then counts as having given a second factor just now, for five minutes: what
/// `GET /me/export` needs when the sign-in was longer ago (or on a remembered device).
#[utoipa::path(
    tag = "me",
    request_body = StepUp,
    responses(
        (status = 204, description = "Confirmed; sensitive reads are open for five minutes"),
        (status = 401, description = "Step-up needed (`step-up-required`: see `requires` and `methods`), or a wrong password or code", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/me/step-up")]
pub async fn me_step_up(
    state: web::Data<AppState>,
    ctx: Ctx,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    guarded(&state, &ctx, step_up_answer(body), |_, _| Ok(())).await?;
    Ok(HttpResponse::NoContent().finish())
}
