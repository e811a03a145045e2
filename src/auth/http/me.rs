//! The caller's own security settings under `/me`.
//!
//! Every change here needs step-up (see `auth::step_up`): the current password and a
//! second factor, unless this session gave one in the last five minutes. Without them
//! the answer is 401 `step-up-required`, whose `requires` and `methods` tell the client
//! what to ask the person for.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sign_in::{hash, EmailCodeSent, TotpSetupResponse};
use crate::app::AppState;
use crate::auth::principal::Principal;
use crate::auth::sessions::{self};
use crate::auth::step_up::{self, StepUp};
use crate::auth::{credentials, link_tokens, ratelimit, recovery_codes, totp, validate};
use crate::clock::{from_db, to_db};
use crate::db;
use crate::error::AppError;
use crate::schema::remembered_devices;

/// Runs a step-up guarded change: the password first (outside the transaction), then the
/// second factor and the change in one transaction. A wrong factor is recorded and the
/// change not made.
async fn guarded<T, F>(
    state: &AppState,
    me: Principal,
    answer: StepUp,
    change: F,
) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut db::DbConn, &Principal) -> Result<T, AppError> + Send + 'static,
{
    step_up::check_password(state, &me, &answer).await?;
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let value = db::write(&state.pool, move |c| {
        if let Err(e) = step_up::check_factor(c, &cfg, now, &me, &answer)? {
            return Ok(Err(e));
        }
        change(c, &me).map(Ok)
    })
    .await??;
    state.outbox.wake();
    Ok(value)
}

/// A request without a (readable) body is a request without step-up, and is answered
/// as such: the `step-up-required` problem tells the client what to send.
fn step_up_answer(body: Option<web::Json<StepUp>>) -> StepUp {
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
    me: Principal,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let setup = guarded(&state, me, step_up_answer(body), move |c, me| {
        totp::totp_setup(c, now, &me.user_id)
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
    me: Principal,
    body: web::Json<CodeRequest>,
) -> Result<HttpResponse, AppError> {
    me.require_person()?;
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let codes = db::write(&state.pool, move |c| {
        // Counted before the code is checked, as at login and step-up; taken back if right.
        let counted = crate::auth::ratelimit::hit(
            c,
            &ratelimit::mfa_key(&me.user_id),
            cfg.rate_limits.mfa_per_account,
            now,
        )?;
        let codes = match totp::totp_confirm(c, now, &me.user_id, &body.code)? {
            Ok(codes) => codes,
            Err(e) => return Ok(Err(e)),
        };
        crate::auth::ratelimit::undo(c, &counted)?;
        step_up::notify_change(c, &cfg, now, &me.user_id, step_up::Change::SecondFactor)?;
        Ok(Ok(codes))
    })
    .await??;
    state.outbox.wake();
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
    me: Principal,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let codes = guarded(&state, me, step_up_answer(body), move |c, me| {
        let codes = recovery_codes::replace_recovery_codes(c, now, &me.user_id)?;
        step_up::notify_change(c, &cfg, now, &me.user_id, step_up::Change::SecondFactor)?;
        Ok(codes)
    })
    .await?;
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
    me: Principal,
) -> Result<HttpResponse, AppError> {
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let (sent_to, expires_at) = db::write(&state.pool, move |c| {
        step_up::send_step_up_code(c, &cfg, now, &me)
    })
    .await?;
    state.outbox.wake();
    Ok(HttpResponse::Accepted().json(EmailCodeSent {
        sent_to,
        expires_at,
    }))
}

#[derive(Queryable)]
struct Device {
    id: String,
    name: String,
    created: chrono::NaiveDateTime,
    last_used: chrono::NaiveDateTime,
    expires: chrono::NaiveDateTime,
}

/// A remembered device (skips the second factor for 30 days).
#[derive(Serialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// List my remembered devices
#[utoipa::path(
    tag = "me",
    responses((status = 200, description = "Active remembered devices", body = crate::http::Page<DeviceView>)),
    security(("bearer" = []))
)]
#[get("/me/devices")]
pub async fn me_devices(
    state: web::Data<AppState>,
    me: Principal,
) -> Result<HttpResponse, AppError> {
    let now = to_db(state.clock.now());
    let rows: Vec<Device> = db::run(&state.pool, move |c| {
        Ok(remembered_devices::table
            .filter(remembered_devices::user_id.eq(&me.user_id))
            .filter(remembered_devices::revoked_at.is_null())
            .filter(remembered_devices::expires_at.gt(now))
            .order(remembered_devices::last_used_at.desc())
            .select((
                remembered_devices::id,
                remembered_devices::name,
                remembered_devices::created_at,
                remembered_devices::last_used_at,
                remembered_devices::expires_at,
            ))
            .load(c)?)
    })
    .await?;
    let items: Vec<DeviceView> = rows
        .into_iter()
        .map(|d| DeviceView {
            id: d.id,
            name: d.name,
            created_at: from_db(d.created),
            last_used_at: from_db(d.last_used),
            expires_at: from_db(d.expires),
        })
        .collect();
    Ok(HttpResponse::Ok().json(crate::http::Page {
        items,
        next_cursor: None,
    }))
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
    me: Principal,
    path: web::Path<String>,
    body: Option<web::Json<StepUp>>,
) -> Result<HttpResponse, AppError> {
    let now = to_db(state.clock.now());
    let id = path.into_inner();
    let n = guarded(&state, me, step_up_answer(body), move |c, me| {
        Ok(diesel::update(
            remembered_devices::table
                .filter(remembered_devices::id.eq(&id))
                .filter(remembered_devices::user_id.eq(&me.user_id))
                .filter(remembered_devices::revoked_at.is_null()),
        )
        .set(remembered_devices::revoked_at.eq(now))
        .execute(c)?)
    })
    .await?;
    if n == 0 {
        return Err(AppError::NotFound);
    }
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
    me: Principal,
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
    step_up::check_password(&state, &me, &answer).await?;
    let new_hash = hash(&state, body.new_password).await?;
    let (cfg, now) = (state.config.clone(), state.clock.now());
    db::write(&state.pool, move |c| {
        if let Err(e) = step_up::check_factor(c, &cfg, now, &me, &answer)? {
            return Ok(Err(e));
        }
        credentials::set_password(c, now, &me.user_id, &new_hash)?;
        link_tokens::cancel_email_changes(c, now, &me.user_id)?;
        sessions::revoke_all_sessions(c, now, &me.user_id, "password_change")?;
        step_up::notify_change(c, &cfg, now, &me.user_id, step_up::Change::Password)?;
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
    me: Principal,
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
    let (cfg, now) = (state.config.clone(), state.clock.now());
    guarded(&state, me, answer, move |c, me| {
        let old = credentials::credentials_by_id(c, &me.user_id)?.email;
        let mail = link_tokens::request_email_change(c, &cfg, now, &me.user_id, &email)?;
        crate::outbox::enqueue(c, now, std::slice::from_ref(&mail))?;
        step_up::notify_change(
            c,
            &cfg,
            now,
            &me.user_id,
            step_up::Change::Email {
                old: &old,
                new: &email,
            },
        )
    })
    .await?;
    Ok(HttpResponse::Accepted().finish())
}
