//! `/auth/*` and the caller's own security settings under `/me`.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::crypto;
use crate::auth::principal::Principal;
use crate::auth::service::{
    self, ChallengePurpose, IssuedSession, LoginOutcome, MfaMethod, SecondFactor, Verified,
};
use crate::auth::step_up::{self, StepUp};
use crate::clock::{from_db, to_db};
use crate::db;
use crate::error::AppError;
use crate::http::client_info;
use crate::schema::remembered_devices;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// A device token from an earlier login with `remember_device`: skips the second factor.
    pub device_token: Option<String>,
}

/// Outcome of a step of signing in.
#[derive(Serialize, ToSchema, Default)]
pub struct AuthResponse {
    /// `authenticated`, `mfa_required` or `mfa_enrolment_required`.
    pub status: String,
    /// For `mfa_required`/`mfa_enrolment_required`: pass to the `/auth/mfa/*` calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token_expires_at: Option<DateTime<Utc>>,
    /// Second factors this account can use now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<MfaMethod>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Seconds until the access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Present when `remember_device` was asked for: send it with later logins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// Shown once, at first enrolment: store them somewhere safe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_remaining: Option<i64>,
}

fn tokens(state: &AppState, session: &IssuedSession) -> Result<AuthResponse, AppError> {
    let access = state.jwt.issue(
        &session.user_id,
        &session.session_id,
        state.clock.now(),
        state.config.access_token_ttl,
    )?;
    Ok(AuthResponse {
        status: "authenticated".into(),
        access_token: Some(access),
        token_type: Some("Bearer".into()),
        expires_in: Some(state.config.access_token_ttl.as_secs()),
        refresh_token: Some(session.refresh_token.clone()),
        ..Default::default()
    })
}

fn verified(state: &AppState, v: Verified) -> Result<HttpResponse, AppError> {
    let mut body = tokens(state, &v.session)?;
    body.device_token = v.device_token;
    body.recovery_codes = v.recovery_codes;
    body.recovery_codes_remaining = v.recovery_codes_remaining;
    // Tokens: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(HttpResponse::Ok().json(body)))
}

/// Log in with e-mail and password
///
/// Answers with the next step: a second factor (`mfa_required`), enrolling one
/// (`mfa_enrolment_required`), or tokens when a remembered device skips the second factor.
/// A wrong e-mail and a wrong password get the same answer.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Next step of signing in", body = AuthResponse),
        (status = 401, description = "Wrong e-mail or password", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let email = service::normalize_email(&body.email);
    let client = client_info(&req, &state.config);
    let now = state.clock.now();
    let cfg = state.config.clone();
    // The attempt is counted before the password is checked: N parallel guesses get at
    // most the limit's worth of checks, the rest 429.
    let attempt = {
        let (email, client) = (email.clone(), client.clone());
        db::write(&state.pool, move |c| {
            service::login_start(c, &cfg, now, &email, &client)
        })
        .await?
    };
    let stored = attempt.user.as_ref().and_then(|u| u.password_hash.clone());
    let has_password = stored.is_some();
    let dummy = state.dummy_hash.clone();
    let password = body.password;
    let matches = web::block(move || {
        // Verify against a dummy hash when there is no account (or no password), so
        // timing tells nothing; such a match never counts.
        let hash = stored.unwrap_or(dummy);
        crypto::verify_password(&password, &hash)
    })
    .await?;
    let password_ok = has_password && matches;
    let user = match attempt.user {
        Some(u) if password_ok && u.status == "active" => u,
        // Already counted in `login_start`.
        _ => return Err(AppError::InvalidCredentials),
    };
    let cfg = state.config.clone();
    let device = body.device_token;
    let counted = attempt.counted;
    let outcome = db::write(&state.pool, move |c| {
        service::login_succeeded(c, &cfg, now, &user, &counted, device.as_deref(), &client)
    })
    .await?;
    let body = match outcome {
        LoginOutcome::Authenticated(session) => tokens(&state, &session)?,
        LoginOutcome::MfaRequired {
            mfa_token,
            methods,
            expires_at,
        } => AuthResponse {
            status: "mfa_required".into(),
            mfa_token: Some(mfa_token),
            mfa_token_expires_at: Some(expires_at),
            methods: Some(methods),
            ..Default::default()
        },
        LoginOutcome::EnrolmentRequired {
            mfa_token,
            expires_at,
        } => AuthResponse {
            status: "mfa_enrolment_required".into(),
            mfa_token: Some(mfa_token),
            mfa_token_expires_at: Some(expires_at),
            ..Default::default()
        },
    };
    // Tokens: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(HttpResponse::Ok().json(body)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub mfa_token: String,
    pub method: MfaMethod,
    pub code: String,
    /// Remember this device for 30 days: later logins from it skip the second factor.
    #[serde(default)]
    pub remember_device: bool,
    /// A name to recognise the device by in `/me/devices` (default: its user agent).
    pub device_name: Option<String>,
}

/// The device name is shown in `/me/devices` and in notices: like any display name it
/// may not carry control or text-direction characters (empty: the user agent is used).
fn remember(
    remember_device: bool,
    device_name: Option<String>,
) -> Result<service::RememberAs, AppError> {
    let name = device_name.unwrap_or_default();
    if !name.trim().is_empty() {
        if let Some(problem) = crate::accounts::service::name_problem(&name) {
            return Err(AppError::validation("device_name", problem));
        }
    }
    Ok(remember_device.then_some(name))
}

/// Complete a login with a second factor
///
/// A TOTP code, an e-mailed code (request one first) or a recovery code. Completing an
/// enrolment by e-mailed code turns e-mailed codes on and returns the recovery codes.
#[utoipa::path(
    tag = "auth",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Signed in", body = AuthResponse),
        (status = 401, description = "Wrong code, or the sign-in step expired", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The sign-in step cannot be answered this way (an authenticator or recovery code for an enrolment step)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/mfa/verify")]
pub async fn mfa_verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let factor = match body.method {
        MfaMethod::Totp => SecondFactor::Totp(body.code),
        MfaMethod::EmailCode => SecondFactor::EmailCode(body.code),
        MfaMethod::RecoveryCode => SecondFactor::RecoveryCode(body.code),
    };
    let client = client_info(&req, &state.config);
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let remember = remember(body.remember_device, body.device_name)?;
    let v = db::write(&state.pool, move |c| {
        service::verify_second_factor(c, &cfg, now, &body.mfa_token, &factor, remember, &client)
    })
    .await??;
    verified(&state, v)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaTokenRequest {
    pub mfa_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct EmailCodeSent {
    /// The address the code went to, masked.
    pub sent_to: String,
    pub expires_at: DateTime<Utc>,
}

/// Send a sign-in code by e-mail
///
/// For accounts that use e-mailed codes, and during enrolment to choose them. The code
/// is valid for 10 minutes, once, with a limited number of attempts.
#[utoipa::path(
    tag = "auth",
    request_body = MfaTokenRequest,
    responses(
        (status = 202, description = "Code sent", body = EmailCodeSent),
        (status = 401, description = "The sign-in step expired", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "E-mailed codes are not enabled for this account", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/mfa/email-code")]
pub async fn mfa_email_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<MfaTokenRequest>,
) -> Result<HttpResponse, AppError> {
    let client = client_info(&req, &state.config);
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let (sent_to, expires_at) = db::write(&state.pool, move |c| {
        let (mail, expires_at) = service::send_email_code(c, &cfg, now, &body.mfa_token, &client)?;
        crate::outbox::enqueue(c, now, std::slice::from_ref(&mail))?;
        Ok((service::mask_email(&mail.to), expires_at))
    })
    .await?;
    state.outbox.wake();
    Ok(HttpResponse::Accepted().json(EmailCodeSent {
        sent_to,
        expires_at,
    }))
}

/// TOTP enrolment data: add it to an authenticator app, then confirm with a code.
#[derive(Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32 secret, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/...` URI.
    pub otpauth_uri: String,
    /// The URI as a QR code: a PNG image, base64-encoded.
    pub qr_png_base64: String,
}

impl From<service::TotpSetup> for TotpSetupResponse {
    fn from(s: service::TotpSetup) -> Self {
        TotpSetupResponse {
            secret: s.secret,
            otpauth_uri: s.otpauth_uri,
            qr_png_base64: s.qr_png_base64,
        }
    }
}

/// Start TOTP enrolment while signing in
///
/// For a sign-in step with status `mfa_enrolment_required` only: the step of a login
/// to an account that has a second factor (`mfa_required`) cannot set up a new one.
#[utoipa::path(
    tag = "auth",
    request_body = MfaTokenRequest,
    responses(
        (status = 200, description = "Secret, URI and QR code", body = TotpSetupResponse),
        (status = 401, description = "The sign-in step expired", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an enrolment step (a login step verifies the existing second factor), or the account already has a second factor", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/mfa/totp/setup")]
pub async fn mfa_totp_setup(
    state: web::Data<AppState>,
    body: web::Json<MfaTokenRequest>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let setup = db::write(&state.pool, move |c| {
        let challenge = service::open_challenge(c, now, &body.mfa_token, ChallengePurpose::Enrol)?;
        service::totp_setup(c, now, &challenge.user_id)
    })
    .await?;
    Ok(crate::idempotency::secret(
        HttpResponse::Ok().json(TotpSetupResponse::from(setup)),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmWhileSigningIn {
    pub mfa_token: String,
    pub code: String,
    #[serde(default)]
    pub remember_device: bool,
    pub device_name: Option<String>,
}

/// Confirm TOTP enrolment and sign in
///
/// The authenticator is active once a code from it is accepted. Returns tokens and,
/// at first enrolment, the ten recovery codes (shown once).
#[utoipa::path(
    tag = "auth",
    request_body = TotpConfirmWhileSigningIn,
    responses(
        (status = 200, description = "Enrolled and signed in", body = AuthResponse),
        (status = 401, description = "Wrong code, or the sign-in step expired", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an enrolment step (a login step verifies the existing second factor), or the account already has a second factor", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/mfa/totp/confirm")]
pub async fn mfa_totp_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<TotpConfirmWhileSigningIn>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let client = client_info(&req, &state.config);
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let remember = remember(body.remember_device, body.device_name)?;
    let v = db::write(&state.pool, move |c| {
        service::enrol_totp_and_sign_in(
            c,
            &cfg,
            now,
            &body.mfa_token,
            &body.code,
            remember,
            &client,
        )
    })
    .await??;
    verified(&state, v)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchange a refresh token for new tokens
///
/// The refresh token is rotated: each one works once. Presenting a used one revokes
/// the whole session (it may have been stolen).
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New access and refresh token", body = AuthResponse),
        (status = 401, description = "Unknown, used or revoked refresh token", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let session = db::write(&state.pool, move |c| {
        service::refresh(c, &cfg, now, &body.refresh_token)
    })
    .await??;
    Ok(crate::idempotency::secret(
        HttpResponse::Ok().json(tokens(&state, &session)?),
    ))
}

/// Log out
///
/// Ends the current session: its access and refresh tokens stop working at once.
#[utoipa::path(
    tag = "auth",
    responses((status = 204, description = "Logged out")),
    security(("bearer" = []))
)]
#[post("/auth/logout")]
pub async fn logout(state: web::Data<AppState>, me: Principal) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    db::write(&state.pool, move |c| {
        service::revoke_session(c, now, &me.session_id, "logout")
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    pub email: String,
}

/// Ask for a password-reset link
///
/// Always answers 202, whether or not the address has an account, in the same time:
/// the mail is queued in the outbox and sent afterwards, never inside the request.
#[utoipa::path(
    tag = "auth",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "If the address has an account, a link is on its way"),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/password-reset")]
pub async fn password_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<PasswordResetRequest>,
) -> Result<HttpResponse, AppError> {
    let email = service::normalize_email(&body.email);
    let client = client_info(&req, &state.config);
    let (cfg, now) = (state.config.clone(), state.clock.now());
    db::write(&state.pool, move |c| {
        let mail = service::request_password_reset(c, &cfg, now, &email, &client)?;
        crate::outbox::enqueue(c, now, mail.as_slice())
    })
    .await?;
    state.outbox.wake();
    Ok(HttpResponse::Accepted().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    pub token: String,
    pub new_password: String,
}

async fn hash(state: &AppState, password: String) -> Result<String, AppError> {
    let params = state.config.argon2;
    web::block(move || crypto::hash_password(params, &password)).await?
}

/// Set a new password from a reset link
///
/// Ends every session, forgets remembered devices and cancels pending e-mail changes.
/// The second factor is still asked at the next login. The account's address is told,
/// with a link that undoes the change.
#[utoipa::path(
    tag = "auth",
    request_body = PasswordResetConfirm,
    responses(
        (status = 204, description = "Password changed"),
        (status = 422, description = "Link unknown, used or expired, or password too weak", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/password-reset/confirm")]
pub async fn password_reset_confirm(
    state: web::Data<AppState>,
    body: web::Json<PasswordResetConfirm>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    service::check_password("new_password", &body.new_password)?;
    let new_hash = hash(&state, body.new_password).await?;
    let (cfg, now) = (state.config.clone(), state.clock.now());
    db::write(&state.pool, move |c| {
        let user_id = service::reset_password(c, now, &body.token, &new_hash)?;
        // Told like a change from a session (ASVS 2.2.3): whoever used the link may
        // not be the owner.
        step_up::notify_change(c, &cfg, now, &user_id, step_up::Change::Password)
    })
    .await?;
    state.outbox.wake();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

/// Confirm an e-mail address from a verification link
#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 204, description = "Address confirmed (and changed, for an e-mail change)"),
        (status = 422, description = "Link unknown, used or expired", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/email-verification")]
pub async fn email_verification(
    state: web::Data<AppState>,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    db::write(&state.pool, move |c| {
        service::confirm_email(c, now, &body.token)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Undo a change to my account from the mailed link
///
/// The link in the notice of an e-mail, password or second-factor change. Restores the
/// old address (for an e-mail change), removes a changed second factor, ends every
/// session and remembered device, and mails a password-reset link to the account's
/// (restored) address: no password works until a new one is set. Works once, for 7 days.
#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 204, description = "Undone; a password-reset link is on its way"),
        (status = 404, description = "No such link", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The link was already used or has expired", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/auth/undo-change")]
pub async fn undo_change(
    state: web::Data<AppState>,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    let (cfg, now) = (state.config.clone(), state.clock.now());
    db::write(&state.pool, move |c| {
        step_up::undo_change(c, &cfg, now, &body.token)
    })
    .await?;
    state.outbox.wake();
    Ok(HttpResponse::NoContent().finish())
}

// ---- /me: the caller's own security settings ------------------------------------------
//
// Every change here needs step-up (see `auth::step_up`): the current password and a
// second factor, unless this session gave one in the last five minutes. Without them
// the answer is 401 `step-up-required`, whose `requires` and `methods` tell the client
// what to ask the person for.

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
        service::totp_setup(c, now, &me.user_id)
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
            &service::mfa_key(&me.user_id),
            cfg.rate_limits.mfa_per_account,
            now,
        )?;
        let codes = match service::totp_confirm(c, now, &me.user_id, &body.code)? {
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
        let codes = service::replace_recovery_codes(c, now, &me.user_id)?;
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
    service::check_password("new_password", &body.new_password)?;
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
        service::set_password(c, now, &me.user_id, &new_hash)?;
        service::cancel_email_changes(c, now, &me.user_id)?;
        service::revoke_all_sessions(c, now, &me.user_id, "password_change")?;
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
    let email = service::normalize_email(&body.new_email);
    if !service::valid_email(&email) {
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
        let old = service::credentials_by_id(c, &me.user_id)?.email;
        let mail = service::request_email_change(c, &cfg, now, &me.user_id, &email)?;
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
