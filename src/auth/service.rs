//! Login, second factors, sessions and link tokens. Functions take a connection and the
//! current time; handlers run them inside `db::write` and send the mail they return.
//!
//! Functions whose failure must still be recorded (a wrong code counts against the
//! attempt limit) return `Result<Result<T, AppError>, AppError>`: the outer error rolls
//! the transaction back, the inner one is committed and then reported.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

use crate::auth::crypto::{self, normalize_code, random_token, sha256_hex};
use crate::auth::ratelimit;
use crate::clock::{dur, from_db, to_db};
use crate::config::Config;
use crate::db::DbConn;
use crate::error::AppError;
use crate::mail::Mail;
use crate::schema::{
    mail_tokens, mfa_challenges, recovery_codes, refresh_tokens, remembered_devices, sessions,
    totp_credentials, users,
};

pub const RECOVERY_CODE_COUNT: usize = 10;
/// Wrong second-factor attempts one login challenge tolerates before it must start over.
pub const CHALLENGE_MAX_ATTEMPTS: i32 = 5;
const TOTP_ISSUER: &str = "eportfolio";

/// Where a request came from, for sessions, devices and rate limits.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible e-mail address of any domain (external supervisors use their own).
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.parse::<lettre::Address>().is_ok()
}

pub const MIN_PASSWORD_CHARS: usize = 10;

/// Length over composition rules (NIST SP 800-63B): at least 10 characters, at most 256.
pub fn check_password(field: &str, password: &str) -> Result<(), AppError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(AppError::validation(
            field,
            &format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > 256 {
        return Err(AppError::validation(
            field,
            "must be at most 256 characters",
        ));
    }
    Ok(())
}

/// A user's sign-in data.
#[derive(Queryable, Debug, Clone)]
pub struct Credentials {
    pub id: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub status: String,
    pub email_mfa_enabled: i32,
}

pub fn credentials_by_email(
    conn: &mut DbConn,
    email: &str,
) -> Result<Option<Credentials>, AppError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select((
            users::id,
            users::email,
            users::password_hash,
            users::status,
            users::email_mfa_enabled,
        ))
        .first(conn)
        .optional()?)
}

pub fn credentials_by_id(conn: &mut DbConn, id: &str) -> Result<Credentials, AppError> {
    Ok(users::table
        .find(id)
        .select((
            users::id,
            users::email,
            users::password_hash,
            users::status,
            users::email_mfa_enabled,
        ))
        .first(conn)?)
}

pub fn login_address_key(address: &Option<String>) -> String {
    format!("login:addr:{}", address.as_deref().unwrap_or("unknown"))
}

pub fn login_account_key(email: &str) -> String {
    format!("login:acct:{email}")
}

/// Step 1 of a login: count the attempt and fetch what the password is checked against.
/// Unknown addresses are counted too, so limits never reveal which accounts exist.
pub fn login_start(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    email: &str,
    client: &ClientInfo,
) -> Result<Option<Credentials>, AppError> {
    ratelimit::hit(
        conn,
        &login_address_key(&client.address),
        cfg.rate_limits.login_per_address,
        now,
    )?;
    ratelimit::check(
        conn,
        &login_account_key(email),
        cfg.rate_limits.login_per_account,
        now,
    )?;
    credentials_by_email(conn, email)
}

pub fn login_failed(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    email: &str,
) -> Result<(), AppError> {
    ratelimit::fail(
        conn,
        &login_account_key(email),
        cfg.rate_limits.login_per_account,
        now,
    )
}

/// Which second factors a user can answer a login challenge with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    /// A code from an authenticator app (RFC 6238).
    Totp,
    /// A 6-digit code sent by e-mail on request.
    EmailCode,
    /// One of the ten single-use recovery codes.
    RecoveryCode,
}

pub struct IssuedSession {
    pub user_id: String,
    pub session_id: String,
    pub refresh_token: String,
}

pub enum LoginOutcome {
    Authenticated(IssuedSession),
    MfaRequired {
        mfa_token: String,
        methods: Vec<MfaMethod>,
        expires_at: DateTime<Utc>,
    },
    EnrolmentRequired {
        mfa_token: String,
        expires_at: DateTime<Utc>,
    },
}

fn has_totp(conn: &mut DbConn, user_id: &str) -> Result<bool, AppError> {
    let secret: Option<Option<String>> = totp_credentials::table
        .find(user_id)
        .select(totp_credentials::secret)
        .first(conn)
        .optional()?;
    Ok(matches!(secret, Some(Some(_))))
}

pub fn methods_of(conn: &mut DbConn, user: &Credentials) -> Result<Vec<MfaMethod>, AppError> {
    let mut methods = Vec::new();
    if has_totp(conn, &user.id)? {
        methods.push(MfaMethod::Totp);
    }
    if user.email_mfa_enabled != 0 {
        methods.push(MfaMethod::EmailCode);
    }
    if !methods.is_empty() {
        methods.push(MfaMethod::RecoveryCode);
    }
    Ok(methods)
}

/// Step 2 of a login, after the password matched.
pub fn login_succeeded(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user: &Credentials,
    device_token: Option<&str>,
    client: &ClientInfo,
) -> Result<LoginOutcome, AppError> {
    ratelimit::clear(conn, &login_account_key(&user.email))?;
    let methods = methods_of(conn, user)?;
    if methods.is_empty() {
        let (mfa_token, expires_at) = create_challenge(conn, cfg, now, &user.id, "enrol")?;
        return Ok(LoginOutcome::EnrolmentRequired {
            mfa_token,
            expires_at,
        });
    }
    if let Some(token) = device_token {
        if remembered_device_valid(conn, now, &user.id, token)? {
            let session = create_session(conn, cfg, now, &user.id, "remembered_device", client)?;
            return Ok(LoginOutcome::Authenticated(session));
        }
    }
    let (mfa_token, expires_at) = create_challenge(conn, cfg, now, &user.id, "login")?;
    Ok(LoginOutcome::MfaRequired {
        mfa_token,
        methods,
        expires_at,
    })
}

fn remembered_device_valid(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    token: &str,
) -> Result<bool, AppError> {
    let n = diesel::update(
        remembered_devices::table
            .filter(remembered_devices::token_hash.eq(sha256_hex(token)))
            .filter(remembered_devices::user_id.eq(user_id))
            .filter(remembered_devices::revoked_at.is_null())
            .filter(remembered_devices::expires_at.gt(to_db(now))),
    )
    .set(remembered_devices::last_used_at.eq(to_db(now)))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn create_challenge(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    purpose: &str,
) -> Result<(String, DateTime<Utc>), AppError> {
    let token = random_token();
    let expires_at = now + dur(cfg.mfa_challenge_ttl);
    diesel::insert_into(mfa_challenges::table)
        .values((
            mfa_challenges::id.eq(Uuid::new_v4().to_string()),
            mfa_challenges::token_hash.eq(sha256_hex(&token)),
            mfa_challenges::user_id.eq(user_id),
            mfa_challenges::purpose.eq(purpose),
            mfa_challenges::attempts.eq(0),
            mfa_challenges::email_code_attempts.eq(0),
            mfa_challenges::created_at.eq(to_db(now)),
            mfa_challenges::expires_at.eq(to_db(expires_at)),
        ))
        .execute(conn)?;
    Ok((token, expires_at))
}

#[derive(Queryable, Debug)]
pub struct Challenge {
    pub id: String,
    pub user_id: String,
    pub purpose: String,
    pub attempts: i32,
    pub email_code_hash: Option<String>,
    pub email_code_expires_at: Option<chrono::NaiveDateTime>,
    pub email_code_attempts: i32,
}

/// An open challenge for `mfa_token`, or 401: the client must log in again.
pub fn open_challenge(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    mfa_token: &str,
) -> Result<Challenge, AppError> {
    let found: Option<Challenge> = mfa_challenges::table
        .filter(mfa_challenges::token_hash.eq(sha256_hex(mfa_token)))
        .filter(mfa_challenges::consumed_at.is_null())
        .filter(mfa_challenges::expires_at.gt(to_db(now)))
        .filter(mfa_challenges::attempts.lt(CHALLENGE_MAX_ATTEMPTS))
        .select((
            mfa_challenges::id,
            mfa_challenges::user_id,
            mfa_challenges::purpose,
            mfa_challenges::attempts,
            mfa_challenges::email_code_hash,
            mfa_challenges::email_code_expires_at,
            mfa_challenges::email_code_attempts,
        ))
        .first(conn)
        .optional()?;
    found.ok_or_else(|| {
        AppError::Unauthenticated(
            "the sign-in step has expired or was used up; log in again".into(),
        )
    })
}

fn consume_challenge(conn: &mut DbConn, now: DateTime<Utc>, id: &str) -> Result<(), AppError> {
    diesel::update(mfa_challenges::table.find(id))
        .set(mfa_challenges::consumed_at.eq(to_db(now)))
        .execute(conn)?;
    Ok(())
}

pub fn mfa_key(user_id: &str) -> String {
    format!("mfa:acct:{user_id}")
}

/// An open challenge whose account has not used up its second-factor attempts.
fn challenge_to_answer(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    mfa_token: &str,
) -> Result<Challenge, AppError> {
    let challenge = open_challenge(conn, now, mfa_token)?;
    ratelimit::check(
        conn,
        &mfa_key(&challenge.user_id),
        cfg.rate_limits.mfa_per_account,
        now,
    )?;
    Ok(challenge)
}

/// Counts a wrong second factor against the challenge and the account.
fn wrong_answer(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    challenge: &Challenge,
) -> Result<(), AppError> {
    diesel::update(mfa_challenges::table.find(&challenge.id))
        .set(mfa_challenges::attempts.eq(challenge.attempts + 1))
        .execute(conn)?;
    ratelimit::fail(
        conn,
        &mfa_key(&challenge.user_id),
        cfg.rate_limits.mfa_per_account,
        now,
    )
}

fn email_code_hash(challenge_id: &str, code: &str) -> String {
    sha256_hex(format!("{challenge_id}:{code}"))
}

/// Masks an address for display: `a***@example.org`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// Checks a second factor presented in person (co-signing on someone else's device):
/// a TOTP code or a recovery code. Wrong answers count against the account's limit;
/// no session is created. Returns the method used.
pub fn check_in_person(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    factor: &SecondFactor,
) -> Result<Result<&'static str, AppError>, AppError> {
    ratelimit::check(
        conn,
        &mfa_key(user_id),
        cfg.rate_limits.mfa_per_account,
        now,
    )?;
    let ok = match factor {
        SecondFactor::Totp(code) => totp_accept(conn, now, user_id, code, false)?.is_some(),
        SecondFactor::RecoveryCode(code) => use_recovery_code(conn, now, user_id, code)?,
        SecondFactor::EmailCode(_) => false,
    };
    if !ok {
        ratelimit::fail(
            conn,
            &mfa_key(user_id),
            cfg.rate_limits.mfa_per_account,
            now,
        )?;
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    Ok(Ok(match factor {
        SecondFactor::Totp(_) => "in_person_totp",
        _ => "in_person_recovery_code",
    }))
}

/// Sends a 6-digit code for the challenge to the user's address. Allowed for users who
/// chose e-mailed codes, and during enrolment (to choose them).
pub fn send_email_code(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    mfa_token: &str,
    client: &ClientInfo,
) -> Result<(Mail, DateTime<Utc>), AppError> {
    let challenge = open_challenge(conn, now, mfa_token)?;
    let user = credentials_by_id(conn, &challenge.user_id)?;
    if challenge.purpose == "login" && user.email_mfa_enabled == 0 {
        return Err(AppError::Forbidden(
            "e-mailed codes are not enabled for this account; use your authenticator app or a recovery code"
                .into(),
        ));
    }
    ratelimit::hit(
        conn,
        &format!("mail:acct:{}", user.id),
        cfg.rate_limits.mail_per_account,
        now,
    )?;
    ratelimit::hit(
        conn,
        &format!(
            "mail:addr:{}",
            client.address.as_deref().unwrap_or("unknown")
        ),
        cfg.rate_limits.mail_per_address,
        now,
    )?;
    let code = crypto::six_digit_code();
    let expires_at = now + dur(cfg.email_code_ttl);
    diesel::update(mfa_challenges::table.find(&challenge.id))
        .set((
            mfa_challenges::email_code_hash.eq(email_code_hash(&challenge.id, &code)),
            mfa_challenges::email_code_expires_at.eq(to_db(expires_at)),
            mfa_challenges::email_code_attempts.eq(0),
        ))
        .execute(conn)?;
    let minutes = cfg.email_code_ttl.as_secs() / 60;
    let mail = Mail {
        to: user.email.clone(),
        subject: "Din inloggningskod / Your sign-in code".into(),
        body: format!(
            "Din kod: {code}\n\nKoden gäller i {minutes} minuter och kan bara användas en gång.\n\
             Your code is valid for {minutes} minutes and can be used once.\n\n\
             Har du inte försökt logga in? Byt lösenord. / Not you? Change your password.\n"
        ),
    };
    Ok((mail, expires_at))
}

/// The second factor a client presents.
#[derive(Debug, Clone)]
pub enum SecondFactor {
    Totp(String),
    EmailCode(String),
    RecoveryCode(String),
}

pub struct Verified {
    pub session: IssuedSession,
    pub device_token: Option<String>,
    /// Present when this step completed the user's first enrolment.
    pub recovery_codes: Option<Vec<String>>,
    pub recovery_codes_remaining: Option<i64>,
}

/// Remember-device request: the device's display name.
pub type RememberAs = Option<String>;

pub fn verify_second_factor(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    mfa_token: &str,
    factor: &SecondFactor,
    remember: RememberAs,
    client: &ClientInfo,
) -> Result<Result<Verified, AppError>, AppError> {
    let challenge = challenge_to_answer(conn, cfg, now, mfa_token)?;
    let user = credentials_by_id(conn, &challenge.user_id)?;
    let enrolling = challenge.purpose == "enrol";
    let mut remaining = None;
    let mut new_codes = None;
    let ok = match factor {
        SecondFactor::Totp(code) => {
            !enrolling && totp_accept(conn, now, &user.id, code, false)?.is_some()
        }
        SecondFactor::EmailCode(code) => {
            let valid = challenge.email_code_hash.as_deref()
                == Some(&email_code_hash(&challenge.id, code.trim()))
                && challenge
                    .email_code_expires_at
                    .is_some_and(|t| from_db(t) > now)
                && challenge.email_code_attempts < cfg.email_code_max_attempts
                && (enrolling || user.email_mfa_enabled != 0);
            if valid {
                // Single use: the code is gone once accepted.
                diesel::update(mfa_challenges::table.find(&challenge.id))
                    .set(mfa_challenges::email_code_hash.eq(None::<String>))
                    .execute(conn)?;
                if enrolling {
                    diesel::update(users::table.find(&user.id))
                        .set(users::email_mfa_enabled.eq(1))
                        .execute(conn)?;
                    new_codes = Some(replace_recovery_codes(conn, now, &user.id)?);
                }
            } else {
                diesel::update(mfa_challenges::table.find(&challenge.id))
                    .set(mfa_challenges::email_code_attempts.eq(challenge.email_code_attempts + 1))
                    .execute(conn)?;
            }
            valid
        }
        SecondFactor::RecoveryCode(code) => {
            let used = !enrolling && use_recovery_code(conn, now, &user.id, code)?;
            if used {
                remaining = Some(recovery_codes_left(conn, &user.id)?);
            }
            used
        }
    };
    if !ok {
        wrong_answer(conn, cfg, now, &challenge)?;
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    let method = match factor {
        SecondFactor::Totp(_) => "totp",
        SecondFactor::EmailCode(_) => "email_code",
        SecondFactor::RecoveryCode(_) => "recovery_code",
    };
    finish_second_factor(conn, cfg, now, &challenge, method, remember, client).map(
        |(session, device_token)| {
            Ok(Verified {
                session,
                device_token,
                recovery_codes: new_codes,
                recovery_codes_remaining: remaining,
            })
        },
    )
}

fn finish_second_factor(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    challenge: &Challenge,
    method: &str,
    remember: RememberAs,
    client: &ClientInfo,
) -> Result<(IssuedSession, Option<String>), AppError> {
    consume_challenge(conn, now, &challenge.id)?;
    ratelimit::clear(conn, &mfa_key(&challenge.user_id))?;
    let session = create_session(conn, cfg, now, &challenge.user_id, method, client)?;
    let device_token = match remember {
        Some(name) => Some(remember_device(
            conn,
            cfg,
            now,
            &challenge.user_id,
            &name,
            client,
        )?),
        None => None,
    };
    Ok((session, device_token))
}

fn remember_device(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    name: &str,
    client: &ClientInfo,
) -> Result<String, AppError> {
    let token = random_token();
    let name = if name.trim().is_empty() {
        client
            .user_agent
            .clone()
            .unwrap_or_else(|| "Unnamed device".into())
    } else {
        name.trim().to_string()
    };
    diesel::insert_into(remembered_devices::table)
        .values((
            remembered_devices::id.eq(Uuid::new_v4().to_string()),
            remembered_devices::user_id.eq(user_id),
            remembered_devices::token_hash.eq(sha256_hex(&token)),
            remembered_devices::name.eq(name.chars().take(120).collect::<String>()),
            remembered_devices::created_at.eq(to_db(now)),
            remembered_devices::last_used_at.eq(to_db(now)),
            remembered_devices::expires_at.eq(to_db(now + dur(cfg.device_token_ttl))),
        ))
        .execute(conn)?;
    Ok(token)
}

pub fn create_session(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    second_factor: &str,
    client: &ClientInfo,
) -> Result<IssuedSession, AppError> {
    let session_id = Uuid::new_v4().to_string();
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(&session_id),
            sessions::user_id.eq(user_id),
            sessions::second_factor.eq(second_factor),
            sessions::client_address.eq(&client.address),
            sessions::user_agent.eq(client
                .user_agent
                .as_ref()
                .map(|u| u.chars().take(300).collect::<String>())),
            sessions::created_at.eq(to_db(now)),
            sessions::last_used_at.eq(to_db(now)),
            sessions::expires_at.eq(to_db(now + dur(cfg.refresh_token_ttl))),
            // A remembered device proves no second factor now: a step-up asks for one.
            sessions::second_factor_at
                .eq((second_factor != "remembered_device").then(|| to_db(now))),
        ))
        .execute(conn)?;
    let refresh_token = new_refresh_token(conn, now, &session_id)?;
    Ok(IssuedSession {
        user_id: user_id.into(),
        session_id,
        refresh_token,
    })
}

fn new_refresh_token(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    session_id: &str,
) -> Result<String, AppError> {
    let token = random_token();
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(sha256_hex(&token)),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Rotates a refresh token. Presenting a token that was already rotated means it leaked
/// (or a client raced itself): the whole session is revoked.
pub fn refresh(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    refresh_token: &str,
) -> Result<Result<IssuedSession, AppError>, AppError> {
    let denied =
        || AppError::Unauthenticated("the refresh token is not valid; log in again".into());
    let found: Option<(String, Option<chrono::NaiveDateTime>)> = refresh_tokens::table
        .find(sha256_hex(refresh_token))
        .select((refresh_tokens::session_id, refresh_tokens::used_at))
        .first(conn)
        .optional()?;
    let Some((session_id, used_at)) = found else {
        return Ok(Err(denied()));
    };
    if used_at.is_some() {
        revoke_session(conn, now, &session_id, "refresh_token_reuse")?;
        tracing::warn!(session = %session_id, "refresh token reuse: session revoked");
        return Ok(Err(denied()));
    }
    let session: Option<String> = sessions::table
        .find(&session_id)
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(to_db(now)))
        .select(sessions::user_id)
        .first(conn)
        .optional()?;
    let Some(user_id) = session else {
        return Ok(Err(denied()));
    };
    let active: Option<String> = users::table
        .find(&user_id)
        .filter(users::status.eq("active"))
        .select(users::id)
        .first(conn)
        .optional()?;
    if active.is_none() {
        return Ok(Err(denied()));
    }
    diesel::update(refresh_tokens::table.find(sha256_hex(refresh_token)))
        .set(refresh_tokens::used_at.eq(to_db(now)))
        .execute(conn)?;
    diesel::update(sessions::table.find(&session_id))
        .set((
            sessions::last_used_at.eq(to_db(now)),
            sessions::expires_at.eq(to_db(now + dur(cfg.refresh_token_ttl))),
        ))
        .execute(conn)?;
    let refresh_token = new_refresh_token(conn, now, &session_id)?;
    Ok(Ok(IssuedSession {
        user_id,
        session_id,
        refresh_token,
    }))
}

pub fn revoke_session(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    session_id: &str,
    reason: &str,
) -> Result<(), AppError> {
    diesel::update(
        sessions::table
            .find(session_id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(to_db(now)),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?;
    crate::auth::principal::auth_changed();
    Ok(())
}

/// Ends every session of a user (password change or reset). Remembered devices are
/// forgotten too: whoever changed the password may be evicting an intruder.
pub fn revoke_all_sessions(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    reason: &str,
) -> Result<(), AppError> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(to_db(now)),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)?;
    diesel::update(
        remembered_devices::table
            .filter(remembered_devices::user_id.eq(user_id))
            .filter(remembered_devices::revoked_at.is_null()),
    )
    .set(remembered_devices::revoked_at.eq(to_db(now)))
    .execute(conn)?;
    crate::auth::principal::auth_changed();
    Ok(())
}

// ---- TOTP -------------------------------------------------------------------------

fn build_totp(secret_b32: &str, account: &str) -> Result<Totp, AppError> {
    let secret = Secret::try_from_base32(secret_b32)
        .map_err(|e| AppError::internal(format!("totp secret: {e:?}")))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .with_issuer(Some(TOTP_ISSUER))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(|e| AppError::internal(format!("totp: {e:?}")))
}

pub struct TotpSetup {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_png_base64: String,
}

/// Starts (or restarts) TOTP enrolment; an active secret keeps working until the new
/// one is confirmed.
pub fn totp_setup(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
) -> Result<TotpSetup, AppError> {
    let user = credentials_by_id(conn, user_id)?;
    let secret = Secret::generate().to_base32();
    let totp = build_totp(&secret, &user.email)?;
    let otpauth_uri = totp
        .to_url()
        .map_err(|e| AppError::internal(format!("totp url: {e:?}")))?;
    let qr_png_base64 = totp
        .to_qr_base64()
        .map_err(|e| AppError::internal(format!("totp qr: {e:?}")))?;
    let updated = diesel::update(totp_credentials::table.find(user_id))
        .set(totp_credentials::pending_secret.eq(&secret))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(totp_credentials::table)
            .values((
                totp_credentials::user_id.eq(user_id),
                totp_credentials::pending_secret.eq(&secret),
                totp_credentials::created_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    Ok(TotpSetup {
        secret,
        otpauth_uri,
        qr_png_base64,
    })
}

/// Accepts a TOTP code (the pending secret when `pending`), at most once per time step:
/// a code that was already used, or one from an earlier step, is refused (no replay).
fn totp_accept(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    code: &str,
    pending: bool,
) -> Result<Option<u64>, AppError> {
    type Row = (Option<String>, Option<String>, Option<i64>);
    let row: Option<Row> = totp_credentials::table
        .find(user_id)
        .select((
            totp_credentials::secret,
            totp_credentials::pending_secret,
            totp_credentials::last_used_step,
        ))
        .first(conn)
        .optional()?;
    let Some((secret, pending_secret, last_step)) = row else {
        return Ok(None);
    };
    let Some(secret) = (if pending { pending_secret } else { secret }) else {
        return Ok(None);
    };
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let totp = build_totp(&secret, "user")?;
    let Some(step) = totp.check(&code, now.timestamp().max(0) as u64) else {
        return Ok(None);
    };
    if last_step.is_some_and(|last| step as i64 <= last) {
        return Ok(None);
    }
    diesel::update(totp_credentials::table.find(user_id))
        .set(totp_credentials::last_used_step.eq(step as i64))
        .execute(conn)?;
    Ok(Some(step))
}

/// Activates the pending secret when `code` matches it. Returns fresh recovery codes
/// when this is the user's first second factor.
pub fn totp_confirm(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    code: &str,
) -> Result<Result<Option<Vec<String>>, AppError>, AppError> {
    if totp_accept(conn, now, user_id, code, true)?.is_none() {
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    diesel::update(totp_credentials::table.find(user_id))
        .set((
            totp_credentials::secret.eq(totp_credentials::pending_secret),
            totp_credentials::pending_secret.eq(None::<String>),
            totp_credentials::confirmed_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let codes = if recovery_codes_left(conn, user_id)? == 0 {
        Some(replace_recovery_codes(conn, now, user_id)?)
    } else {
        None
    };
    Ok(Ok(codes))
}

/// Completes enrolment from a sign-in challenge: confirm the authenticator, then sign in.
pub fn enrol_totp_and_sign_in(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    mfa_token: &str,
    code: &str,
    remember: RememberAs,
    client: &ClientInfo,
) -> Result<Result<Verified, AppError>, AppError> {
    let challenge = challenge_to_answer(conn, cfg, now, mfa_token)?;
    match totp_confirm(conn, now, &challenge.user_id, code)? {
        Err(e) => {
            wrong_answer(conn, cfg, now, &challenge)?;
            Ok(Err(e))
        }
        Ok(codes) => {
            let (session, device_token) =
                finish_second_factor(conn, cfg, now, &challenge, "totp", remember, client)?;
            Ok(Ok(Verified {
                session,
                device_token,
                recovery_codes: codes,
                recovery_codes_remaining: None,
            }))
        }
    }
}

// ---- Recovery codes -----------------------------------------------------------------

pub fn replace_recovery_codes(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
) -> Result<Vec<String>, AppError> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
        .execute(conn)?;
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT)
        .map(|_| crypto::recovery_code())
        .collect();
    for code in &codes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::id.eq(Uuid::new_v4().to_string()),
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(sha256_hex(normalize_code(code))),
                recovery_codes::created_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    Ok(codes)
}

fn use_recovery_code(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    code: &str,
) -> Result<bool, AppError> {
    let n = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(sha256_hex(normalize_code(code))))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(to_db(now)))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn recovery_codes_left(conn: &mut DbConn, user_id: &str) -> Result<i64, AppError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}

// ---- Link tokens: password reset, e-mail verification -----------------------------

/// Always succeeds from the caller's point of view; a mail goes out only when the
/// address has an account, so the response never tells whether it does.
pub fn request_password_reset(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    email: &str,
    client: &ClientInfo,
) -> Result<Option<Mail>, AppError> {
    ratelimit::hit(
        conn,
        &format!(
            "mail:addr:{}",
            client.address.as_deref().unwrap_or("unknown")
        ),
        cfg.rate_limits.mail_per_address,
        now,
    )?;
    ratelimit::hit(
        conn,
        &format!("reset:acct:{email}"),
        cfg.rate_limits.mail_per_account,
        now,
    )?;
    let Some(user) = credentials_by_email(conn, email)? else {
        return Ok(None);
    };
    if user.status != "active" {
        return Ok(None);
    }
    let token = create_mail_token(
        conn,
        now,
        &user.id,
        "password_reset",
        None,
        cfg.reset_token_ttl,
    )?;
    let minutes = cfg.reset_token_ttl.as_secs() / 60;
    Ok(Some(Mail {
        to: user.email,
        subject: "Återställ ditt lösenord / Reset your password".into(),
        body: format!(
            "Någon (förhoppningsvis du) bad om att återställa lösenordet.\n\
             Someone (hopefully you) asked to reset your password.\n\n\
             {}/reset-password?token={token}\n\n\
             Länken gäller i {minutes} minuter och kan användas en gång.\n\
             The link is valid for {minutes} minutes and can be used once.\n",
            cfg.public_url.trim_end_matches('/')
        ),
    }))
}

pub fn create_mail_token(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    purpose: &str,
    new_email: Option<&str>,
    ttl: std::time::Duration,
) -> Result<String, AppError> {
    let token = random_token();
    diesel::insert_into(mail_tokens::table)
        .values((
            mail_tokens::token_hash.eq(sha256_hex(&token)),
            mail_tokens::purpose.eq(purpose),
            mail_tokens::user_id.eq(user_id),
            mail_tokens::new_email.eq(new_email),
            mail_tokens::created_at.eq(to_db(now)),
            mail_tokens::expires_at.eq(to_db(now + dur(ttl))),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Marks a link token used and returns (user id, new e-mail).
fn take_mail_token(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
    purpose: &str,
) -> Result<(String, Option<String>), AppError> {
    let hash = sha256_hex(token);
    let found: Option<(String, Option<String>)> = mail_tokens::table
        .find(&hash)
        .filter(mail_tokens::purpose.eq(purpose))
        .filter(mail_tokens::used_at.is_null())
        .filter(mail_tokens::expires_at.gt(to_db(now)))
        .select((mail_tokens::user_id, mail_tokens::new_email))
        .first(conn)
        .optional()?;
    let found = found.ok_or(AppError::InvalidToken)?;
    diesel::update(mail_tokens::table.find(&hash))
        .set(mail_tokens::used_at.eq(to_db(now)))
        .execute(conn)?;
    Ok(found)
}

/// Sets a new password from a reset link (hash computed by the caller, outside the
/// transaction) and ends every session.
pub fn reset_password(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
    new_hash: &str,
) -> Result<(), AppError> {
    let (user_id, _) = take_mail_token(conn, now, token, "password_reset")?;
    set_password(conn, now, &user_id, new_hash)?;
    // Other reset links sent earlier stop working too.
    diesel::update(
        mail_tokens::table
            .filter(mail_tokens::user_id.eq(&user_id))
            .filter(mail_tokens::purpose.eq("password_reset"))
            .filter(mail_tokens::used_at.is_null()),
    )
    .set(mail_tokens::used_at.eq(to_db(now)))
    .execute(conn)?;
    revoke_all_sessions(conn, now, &user_id, "password_reset")
}

pub fn set_password(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    new_hash: &str,
) -> Result<(), AppError> {
    diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(new_hash),
            users::updated_at.eq(to_db(now)),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn password_hash_of(conn: &mut DbConn, user_id: &str) -> Result<Option<String>, AppError> {
    Ok(credentials_by_id(conn, user_id)?.password_hash)
}

/// Starts an e-mail change: the new address must prove it receives mail.
pub fn request_email_change(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &str,
    new_email: &str,
) -> Result<Mail, AppError> {
    let taken: i64 = users::table
        .filter(users::email.eq(new_email))
        .count()
        .get_result(conn)?;
    if taken > 0 {
        return Err(AppError::Conflict(
            "that e-mail address belongs to another account".into(),
        ));
    }
    ratelimit::hit(
        conn,
        &format!("mail:acct:{user_id}"),
        cfg.rate_limits.mail_per_account,
        now,
    )?;
    let token = create_mail_token(
        conn,
        now,
        user_id,
        "email_verification",
        Some(new_email),
        cfg.reset_token_ttl,
    )?;
    Ok(Mail {
        to: new_email.into(),
        subject: "Bekräfta din e-postadress / Confirm your e-mail address".into(),
        body: format!(
            "Bekräfta att du vill använda den här adressen för eportfolio:\n\
             Confirm that you want to use this address for eportfolio:\n\n\
             {}/verify-email?token={token}\n",
            cfg.public_url.trim_end_matches('/')
        ),
    })
}

pub fn confirm_email(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
) -> Result<String, AppError> {
    let (user_id, new_email) = take_mail_token(conn, now, token, "email_verification")?;
    match new_email {
        Some(email) => {
            let taken: i64 = users::table
                .filter(users::email.eq(&email))
                .filter(users::id.ne(&user_id))
                .count()
                .get_result(conn)?;
            if taken > 0 {
                return Err(AppError::Conflict(
                    "that e-mail address belongs to another account".into(),
                ));
            }
            diesel::update(users::table.find(&user_id))
                .set((
                    users::email.eq(&email),
                    users::email_verified_at.eq(to_db(now)),
                    users::updated_at.eq(to_db(now)),
                    users::version.eq(users::version + 1),
                ))
                .execute(conn)?;
            crate::auth::principal::auth_changed();
        }
        None => {
            diesel::update(users::table.find(&user_id))
                .set(users::email_verified_at.eq(to_db(now)))
                .execute(conn)?;
        }
    }
    Ok(user_id)
}
