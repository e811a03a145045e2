//! Second factors: which an account has, answering a sign-in challenge with one, and
//! checking one presented in person (co-signing on someone else's device).
//!
//! Functions whose failure must still be recorded (a wrong code counts against the
//! attempt limit) return `Result<Result<T, AppError>, AppError>`: the outer error rolls
//! the transaction back, the inner one is committed and then reported.

use diesel::prelude::*;

use crate::auth::challenges::{challenge_to_answer, consume_challenge};
use crate::auth::challenges::{Challenge, ChallengePurpose};
use crate::auth::credentials::Credentials;
use crate::auth::devices::remember_device;
use crate::auth::email_codes::take_email_code;
use crate::auth::ratelimit::{self, mfa_key};
use crate::auth::recovery_codes::{recovery_codes_left, replace_recovery_codes, use_recovery_code};
use crate::auth::sessions::{create_session, IssuedSession};
use crate::auth::totp::{has_totp, totp_accept};
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::UserId;
use crate::schema::users;

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
    /// A registered passkey (WebAuthn): answered with `POST /auth/passkeys/options` and
    /// `POST /auth/passkeys/verify`, not with a code.
    Passkey,
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
    // After the codes: clients that know no passkeys still see the methods they knew
    // first. A passkey is registered only behind another second factor.
    if crate::auth::passkeys::store::has_passkey(conn, &user.id)? {
        methods.push(MfaMethod::Passkey);
    }
    Ok(methods)
}

/// Checks a second factor presented in person (co-signing on someone else's device):
/// a TOTP code or a recovery code. The attempt counts against the account's limit before
/// the code is checked (taken back when right); no session is created. Returns the
/// method used.
pub fn check_in_person<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    user_id: &UserId,
    factor: &SecondFactor,
) -> Result<Result<&'static str, AppError>, AppError> {
    let (cfg, now) = (&*ctx.config, ctx.now);
    let counted = ratelimit::hit(
        conn,
        &mfa_key(user_id),
        cfg.rate_limits.mfa_per_account,
        now,
    )?;
    let ok = match factor {
        SecondFactor::Totp(code) => {
            totp_accept(conn, ctx.keyring()?, now, user_id, code, false)?.is_some()
        }
        SecondFactor::RecoveryCode(code) => use_recovery_code(conn, now, user_id, code)?,
        SecondFactor::EmailCode(_) => false,
    };
    if !ok {
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    ratelimit::undo(conn, &counted)?;
    Ok(Ok(match factor {
        SecondFactor::Totp(_) => "in_person_totp",
        _ => "in_person_recovery_code",
    }))
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

pub fn verify_second_factor<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    mfa_token: &str,
    factor: &SecondFactor,
    remember: RememberAs,
) -> Result<Result<Verified, AppError>, AppError> {
    let (_cfg, now, _client) = (&*ctx.config, ctx.now, &ctx.client);
    // An authenticator or recovery code verifies an existing second factor: a login
    // challenge. An e-mailed code answers either kind (on an enrolment challenge it
    // turns e-mailed codes on).
    let (challenge, user, counted) =
        challenge_to_answer(conn, ctx, mfa_token, |challenge, _| match factor {
            SecondFactor::EmailCode(_) => challenge.purpose,
            SecondFactor::Totp(_) | SecondFactor::RecoveryCode(_) => ChallengePurpose::Login,
        })?;
    let enrolling = challenge.purpose == ChallengePurpose::Enrol;
    let mut remaining = None;
    let mut new_codes = None;
    let ok = match factor {
        SecondFactor::Totp(code) => {
            totp_accept(conn, ctx.keyring()?, now, &user.id, code, false)?.is_some()
        }
        SecondFactor::EmailCode(code) => {
            let valid = (enrolling || user.email_mfa_enabled != 0)
                && take_email_code(conn, ctx, &challenge, code.trim())?;
            if valid && enrolling {
                diesel::update(users::table.find(&user.id))
                    .set(users::email_mfa_enabled.eq(1))
                    .execute(conn)?;
                new_codes = Some(replace_recovery_codes(conn, now, &user.id)?);
            }
            valid
        }
        SecondFactor::RecoveryCode(code) => {
            let used = use_recovery_code(conn, now, &user.id, code)?;
            if used {
                remaining = Some(recovery_codes_left(conn, &user.id)?);
            }
            used
        }
    };
    if !ok {
        // The attempt stays counted (challenge and account): committed, then reported.
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    let method = match factor {
        SecondFactor::Totp(_) => "totp",
        SecondFactor::EmailCode(_) => "email_code",
        SecondFactor::RecoveryCode(_) => "recovery_code",
    };
    finish_second_factor(conn, ctx, &challenge, &counted, method, remember).map(
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

/// A right answer: the challenge is used up (by this request only: if a parallel one
/// consumed it first, this one fails and rolls back), the attempt is taken back from the
/// account's limit, and a session starts.
pub(crate) fn finish_second_factor<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    challenge: &Challenge,
    counted: &ratelimit::Counted,
    method: &str,
    remember: RememberAs,
) -> Result<(IssuedSession, Option<String>), AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
    consume_challenge(conn, now, &challenge.id)?;
    ratelimit::undo(conn, counted)?;
    let session = create_session(conn, cfg, now, &challenge.user_id, method, client)?;
    let device_token = match remember {
        Some(name) => Some(remember_device(conn, ctx, &challenge.user_id, &name)?),
        None => None,
    };
    Ok((session, device_token))
}
