//! Authenticator apps (TOTP, RFC 6238): set up, confirm, accept a code once per step.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::auth::challenges::challenge_to_answer;
use crate::auth::challenges::ChallengePurpose;
use crate::auth::credentials::credentials_by_id;
use crate::auth::mfa::{finish_second_factor, RememberAs, Verified};
use crate::auth::recovery_codes::{recovery_codes_left, replace_recovery_codes};
use crate::clock::to_db;
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::UserId;
use crate::schema::totp_credentials;
use crate::secrets::Keyring;

const TOTP_ISSUER: &str = "eportfolio";

pub(crate) fn has_totp(conn: &mut DbConn, user_id: &UserId) -> Result<bool, AppError> {
    let secret: Option<Option<String>> = totp_credentials::table
        .find(user_id)
        .select(totp_credentials::secret)
        .first(conn)
        .optional()?;
    Ok(matches!(secret, Some(Some(_))))
}

pub(crate) fn build_totp(secret_b32: &str, account: &str) -> Result<Totp, AppError> {
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
    keys: &Keyring,
    now: DateTime<Utc>,
    user_id: &UserId,
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
    let sealed = keys.seal(&crate::secrets::totp_aad(user_id), &secret)?;
    // One statement: two set-ups at once (two tabs, two nodes) must not both find no
    // row and both insert; the later simply replaces the pending secret.
    let upsert = diesel::insert_into(totp_credentials::table)
        .values((
            totp_credentials::user_id.eq(user_id),
            totp_credentials::pending_secret.eq(&sealed),
            totp_credentials::created_at.eq(to_db(now)),
        ))
        .on_conflict(totp_credentials::user_id)
        .do_update()
        .set(totp_credentials::pending_secret.eq(&sealed));
    crate::on_backend!(conn, |c| upsert.execute(c))?;
    Ok(TotpSetup {
        secret,
        otpauth_uri,
        qr_png_base64,
    })
}

/// An account's sealed TOTP secrets: the active one and one being set up.
#[derive(Queryable, Selectable)]
#[diesel(table_name = totp_credentials, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Secrets {
    secret: Option<String>,
    pending_secret: Option<String>,
}

/// Accepts a TOTP code (the pending secret when `pending`), at most once per time step:
/// a code that was already used, or one from an earlier step, is refused (no replay).
///
/// The step is recorded by one conditional statement (only if it is later than the last
/// one, and only if the secret checked is still the one stored), so one code accepted
/// by N parallel requests succeeds once.
pub(crate) fn totp_accept(
    conn: &mut DbConn,
    keys: &Keyring,
    now: DateTime<Utc>,
    user_id: &UserId,
    code: &str,
    pending: bool,
) -> Result<Option<u64>, AppError> {
    let row: Option<Secrets> = totp_credentials::table
        .find(user_id)
        .select(Secrets::as_select())
        .first(conn)
        .optional()?;
    let Some(Secrets {
        secret,
        pending_secret,
    }) = row
    else {
        return Ok(None);
    };
    let Some(secret) = (if pending { pending_secret } else { secret }) else {
        return Ok(None);
    };
    // A sealed secret that does not open here (copied from another account's row, or
    // damaged) is no second factor of this account: refused like a wrong code.
    let stored = secret;
    let secret = match keys.open(&crate::secrets::totp_aad(user_id), &stored) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(user_id = %user_id, error = %e, "a TOTP secret does not open");
            return Ok(None);
        }
    };
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let totp = build_totp(&secret, "user")?;
    let Some(step) = totp.check(&code, now.timestamp().max(0) as u64) else {
        return Ok(None);
    };
    let step_db = i64::try_from(step).map_err(AppError::internal)?;
    let later = totp_credentials::last_used_step
        .is_null()
        .or(totp_credentials::last_used_step
            .assume_not_null()
            .lt(step_db));
    // Compared as stored (sealed): the step counts only if the secret checked is still
    // the account's, not one replaced by a concurrent re-enrolment.
    let target = totp_credentials::table.find(user_id).filter(later);
    let recorded = if pending {
        diesel::update(target.filter(totp_credentials::pending_secret.eq(&stored)))
            .set(totp_credentials::last_used_step.eq(step_db))
            .execute(conn)?
    } else {
        diesel::update(target.filter(totp_credentials::secret.eq(&stored)))
            .set(totp_credentials::last_used_step.eq(step_db))
            .execute(conn)?
    };
    Ok((recorded == 1).then_some(step))
}

/// Activates the pending secret when `code` matches it. Returns fresh recovery codes
/// when this is the user's first second factor.
pub fn totp_confirm(
    conn: &mut DbConn,
    keys: &Keyring,
    now: DateTime<Utc>,
    user_id: &UserId,
    code: &str,
) -> Result<Result<Option<Vec<String>>, AppError>, AppError> {
    if totp_accept(conn, keys, now, user_id, code, true)?.is_none() {
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    let activated = diesel::update(
        totp_credentials::table
            .find(user_id)
            .filter(totp_credentials::pending_secret.is_not_null()),
    )
    .set((
        totp_credentials::secret.eq(totp_credentials::pending_secret),
        totp_credentials::pending_secret.eq(None::<String>),
        totp_credentials::confirmed_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    if activated != 1 {
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    let codes = if recovery_codes_left(conn, user_id)? == 0 {
        Some(replace_recovery_codes(conn, now, user_id)?)
    } else {
        None
    };
    Ok(Ok(codes))
}

/// Completes enrolment from a sign-in challenge: confirm the authenticator, then sign in.
pub fn enrol_totp_and_sign_in<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    mfa_token: &str,
    code: &str,
    remember: RememberAs,
) -> Result<Result<Verified, AppError>, AppError> {
    let (_cfg, now, _client) = (&*ctx.config, ctx.now, &ctx.client);
    let (challenge, _, counted) =
        challenge_to_answer(conn, ctx, mfa_token, |_, _| ChallengePurpose::Enrol)?;
    match totp_confirm(conn, ctx.keyring()?, now, &challenge.user_id, code)? {
        // The attempt stays counted: committed, then reported.
        Err(e) => Ok(Err(e)),
        Ok(codes) => {
            let (session, device_token) =
                finish_second_factor(conn, ctx, &challenge, &counted, "totp", remember)?;
            Ok(Ok(Verified {
                session,
                device_token,
                recovery_codes: codes,
                recovery_codes_remaining: None,
            }))
        }
    }
}
