//! `/auth/*`: signing in (password, second factor, tokens) and the mailed links.

use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::challenges::{self, ChallengePurpose};
use crate::auth::crypto;
use crate::auth::login::{login_start, login_succeeded, LoginOutcome};
use crate::auth::mfa::{self, MfaMethod, SecondFactor, Verified};
use crate::auth::sessions::{self, IssuedSession};
use crate::auth::step_up::{self};
use crate::auth::{email_codes, link_tokens, totp, validate};
use crate::context::{Context, Ctx};
use crate::error::AppError;
use crate::telemetry::security::{Event, SecurityEvent};

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
    #[serde(default, with = "crate::clock::millis_opt")]
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

pub(super) fn tokens<C>(
    state: &AppState,
    ctx: &Context<C>,
    session: &IssuedSession,
) -> Result<AuthResponse, AppError> {
    let ttl = ctx.config.access_token_ttl;
    let access = state
        .jwt
        .issue(&session.user_id, &session.session_id, ctx.now, ttl)?;
    Ok(AuthResponse {
        status: "authenticated".into(),
        access_token: Some(access),
        token_type: Some("Bearer".into()),
        expires_in: Some(ttl.as_secs()),
        refresh_token: Some(session.refresh_token.clone()),
        ..Default::default()
    })
}

fn verified<C>(state: &AppState, ctx: &Context<C>, v: Verified) -> Result<HttpResponse, AppError> {
    let mut body = tokens(state, ctx, &v.session)?;
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
    ctx: Context<()>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let email = validate::normalize_email(&body.email);
    // The attempt is counted before the password is checked: N parallel guesses get at
    // most the limit's worth of checks, the rest 429.
    let attempt = ctx.write(move |c, ctx| login_start(c, ctx, &email)).await?;
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
        known => {
            let mut event = SecurityEvent::new(Event::LoginFailed).client(&ctx.client);
            if let Some(u) = &known {
                event = event.user(&u.id);
            }
            event.emit();
            return Err(AppError::InvalidCredentials);
        }
    };
    SecurityEvent::new(Event::LoginSucceeded)
        .user(&user.id)
        .client(&ctx.client)
        .emit();
    let device = body.device_token;
    let counted = attempt.counted;
    let outcome = ctx
        .write(move |c, ctx| login_succeeded(c, ctx, &user, &counted, device.as_deref()))
        .await?;
    outcome_response(&state, &ctx, outcome)
}

/// The answer to a proven first factor (a password, or an e-ID sign-in): the next step,
/// or tokens.
pub(crate) fn outcome_response<C>(
    state: &AppState,
    ctx: &Context<C>,
    outcome: LoginOutcome,
) -> Result<HttpResponse, AppError> {
    let body = match outcome {
        LoginOutcome::Authenticated(session) => tokens(state, ctx, &session)?,
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
pub(super) fn remember(
    remember_device: bool,
    device_name: Option<String>,
) -> Result<mfa::RememberAs, AppError> {
    let name = device_name.unwrap_or_default();
    if !name.trim().is_empty() {
        if let Some(problem) = crate::auth::validate::name_problem(&name) {
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
    ctx: Context<()>,
    body: web::Json<VerifyRequest>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let factor = match body.method {
        MfaMethod::Totp => SecondFactor::Totp(body.code),
        MfaMethod::EmailCode => SecondFactor::EmailCode(body.code),
        MfaMethod::RecoveryCode => SecondFactor::RecoveryCode(body.code),
        MfaMethod::Passkey => {
            return Err(AppError::validation(
                "method",
                "a passkey answers with POST /auth/passkeys/options and /auth/passkeys/verify",
            ))
        }
    };
    let remember = remember(body.remember_device, body.device_name)?;
    let method = match body.method {
        MfaMethod::Totp => "totp",
        MfaMethod::EmailCode => "email_code",
        MfaMethod::RecoveryCode => "recovery_code",
        MfaMethod::Passkey => "passkey",
    };
    let v = ctx
        .write(move |c, ctx| mfa::verify_second_factor(c, ctx, &body.mfa_token, &factor, remember))
        .await?;
    let event = match &v {
        Ok(v) => {
            Some(SecurityEvent::new(Event::SecondFactorSucceeded).user(v.session.user_id.as_str()))
        }
        Err(AppError::InvalidSecondFactor) => Some(SecurityEvent::new(Event::SecondFactorFailed)),
        Err(_) => None,
    };
    if let Some(event) = event {
        event.kind(method).client(&ctx.client).emit();
    }
    verified(&state, &ctx, v?)
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
    #[serde(with = "crate::clock::millis")]
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
    ctx: Context<()>,
    body: web::Json<MfaTokenRequest>,
) -> Result<HttpResponse, AppError> {
    let (sent_to, expires_at) = ctx
        .write(move |c, ctx| {
            let (mail, expires_at) = email_codes::send_email_code(c, ctx, &body.mfa_token)?;
            crate::outbox::enqueue(c, ctx.keyring()?, ctx.now, std::slice::from_ref(&mail))?;
            Ok((email_codes::mask_email(&mail.to), expires_at))
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

impl From<totp::TotpSetup> for TotpSetupResponse {
    fn from(s: totp::TotpSetup) -> Self {
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
    ctx: Context<()>,
    body: web::Json<MfaTokenRequest>,
) -> Result<HttpResponse, AppError> {
    let setup = ctx
        .write(move |c, ctx| {
            let challenge =
                challenges::open_challenge(c, ctx.now, &body.mfa_token, ChallengePurpose::Enrol)?;
            totp::totp_setup(c, ctx.keyring()?, ctx.now, &challenge.user_id)
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
    ctx: Context<()>,
    body: web::Json<TotpConfirmWhileSigningIn>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let remember = remember(body.remember_device, body.device_name)?;
    let v = ctx
        .write(move |c, ctx| {
            totp::enrol_totp_and_sign_in(c, ctx, &body.mfa_token, &body.code, remember)
        })
        .await??;
    SecurityEvent::new(Event::SecondFactorAdded)
        .user(v.session.user_id.as_str())
        .kind("totp")
        .client(&ctx.client)
        .emit();
    verified(&state, &ctx, v)
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
    ctx: Context<()>,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let session = ctx
        .write(move |c, ctx| sessions::refresh(c, ctx, &body.refresh_token))
        .await??;
    Ok(crate::idempotency::secret(
        HttpResponse::Ok().json(tokens(&state, &ctx, &session)?),
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
pub async fn logout(ctx: Ctx) -> Result<HttpResponse, AppError> {
    ctx.write(|c, ctx| sessions::revoke_session(c, ctx, &ctx.caller.session_id, "logout"))
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
    ctx: Context<()>,
    body: web::Json<PasswordResetRequest>,
) -> Result<HttpResponse, AppError> {
    let email = validate::normalize_email(&body.email);
    ctx.write(move |c, ctx| {
        let mail = link_tokens::request_password_reset(c, ctx, &email)?;
        crate::outbox::enqueue(c, ctx.keyring()?, ctx.now, mail.as_slice())
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

pub(super) async fn hash<C>(ctx: &Context<C>, password: String) -> Result<String, AppError> {
    let params = ctx.config.argon2;
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
    ctx: Context<()>,
    body: web::Json<PasswordResetConfirm>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    validate::check_password("new_password", &body.new_password)?;
    let new_hash = hash(&ctx, body.new_password).await?;
    ctx.write(move |c, ctx| {
        let user_id = link_tokens::reset_password(c, ctx, &body.token, &new_hash)?;
        // Told like a change from a session (ASVS 2.2.3): whoever used the link may
        // not be the owner.
        step_up::notify_change(c, ctx, &user_id, step_up::Change::Password)
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
    ctx: Context<()>,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    ctx.write(move |c, ctx| link_tokens::confirm_email(c, ctx, &body.token))
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
    ctx: Context<()>,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    ctx.write(move |c, ctx| step_up::undo_change(c, ctx, &body.token))
        .await?;
    state.outbox.wake();
    Ok(HttpResponse::NoContent().finish())
}
