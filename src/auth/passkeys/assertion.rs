//! Signing in with a passkey: as the second factor of a login (after the password,
//! answering its `mfa_token`), or without a password (the e-mail address names the
//! account; the passkey is both factors: something the person has, unlocked by
//! something they know or are, which the user-verification flag proves).
//!
//! An assertion is refused when: its ceremony is unknown, expired or used (a replay);
//! the origin or RP id is not ours; user verification is missing; the passkey is not one
//! of the account's active ones (revoked); or its signature counter did not go up (a
//! cloned authenticator: audited as `counter_regressed`). Every refusal is counted
//! against the account's second-factor limit.

use diesel::prelude::*;
use webauthn_rs::prelude::{PasskeyAuthentication, PublicKeyCredential, WebauthnError};

use super::ceremonies::CEREMONY_TTL;
use super::ceremonies::{self, Ceremony, Purpose};
use super::relying_party::{relying_party, rp_settings};
use super::store::{
    active_passkeys, audit_passkey, credential_id_text, has_passkey, CeremonyOptions,
};
use super::PASSKEY_METHOD;
use crate::auth::challenges::{challenge_to_answer, open_challenge, ChallengePurpose};
use crate::auth::credentials::{credentials_by_email, credentials_by_id};
use crate::auth::mfa::{finish_second_factor, RememberAs};
use crate::auth::ratelimit::{self, login_address_key, mfa_key};
use crate::auth::sessions::{create_session, IssuedSession};
use crate::clock::to_db;
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{CeremonyId, UserId};
use crate::schema::passkeys;

/// Options for an assertion by one of `user_id`'s passkeys (none: 401).
fn options<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    purpose: Purpose,
    user_id: &UserId,
    challenge_id: Option<&str>,
) -> Result<CeremonyOptions, AppError> {
    let rp = relying_party(&ctx.config)?;
    let keys = active_passkeys(conn, user_id)?
        .iter()
        .map(|r| r.passkey())
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(AppError::InvalidCredentials);
    }
    let (options, state) = rp
        .start_passkey_authentication(&keys)
        .map_err(|e| AppError::internal(format!("passkey authentication options: {e}")))?;
    let (ceremony_id, expires_at) =
        ceremonies::open(conn, ctx.now, purpose, user_id, challenge_id, &state)?;
    Ok(CeremonyOptions {
        ceremony_id,
        expires_at,
        options: serde_json::to_value(options)
            .map_err(|e| AppError::internal(format!("passkey options: {e}")))?,
    })
}

/// Options for the second-factor step of a login (`mfa_token` from `/auth/login`).
pub fn start_second_factor<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    mfa_token: &str,
) -> Result<CeremonyOptions, AppError> {
    let challenge = open_challenge(conn, ctx.now, mfa_token, ChallengePurpose::Login)?;
    options(
        conn,
        ctx,
        Purpose::SecondFactor,
        &challenge.user_id,
        Some(&challenge.id),
    )
}

/// Options for a passwordless sign-in of the account with `email`. Counted against the
/// client address's login limit, as a password attempt is. An unknown address, an
/// inactive account and one without passkeys get decoy options.
pub fn start_sign_in<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    email: &str,
) -> Result<CeremonyOptions, AppError> {
    ratelimit::hit(
        conn,
        &login_address_key(&ctx.client.address),
        ctx.config.rate_limits.login_per_address,
        ctx.now,
    )?;
    let user = credentials_by_email(conn, email)?.filter(|u| u.status == "active");
    match user {
        Some(u) if has_passkey(conn, &u.id)? => options(conn, ctx, Purpose::SignIn, &u.id, None),
        _ => decoy_options(ctx, email),
    }
}

/// Options for an address without passkeys (or without an account), shaped like real
/// ones: a fresh challenge and one credential id, a keyed hash of the address, so the
/// same address always names the same id and nobody can compute it. No ceremony is
/// stored: its answer is refused like a wrong assertion. (The number of credential ids
/// still differs from an account with several passkeys: docs/passkeys.md.)
fn decoy_options<C>(ctx: &Context<C>, email: &str) -> Result<CeremonyOptions, AppError> {
    // Fails as the real options would when passkeys are not configured.
    relying_party(&ctx.config)?;
    let (rp_id, _) = rp_settings(&ctx.config).map_err(AppError::internal)?;
    let mac = ctx.keyring()?.mac(DECOY_PURPOSE, email.as_bytes())?;
    let id = hex::decode(mac).map_err(|e| AppError::internal(format!("decoy id: {e}")))?;
    let challenge: [u8; 32] = rand::random();
    // The shape webauthn-rs gives real options (tests/api/passkeys.rs compares them).
    let options = serde_json::json!({"publicKey": {
        "challenge": credential_id_text(&challenge),
        "timeout": CEREMONY_TTL.as_millis() as u64,
        "rpId": rp_id,
        // The transports a phone's platform passkey reports, the most common kind.
        "allowCredentials": [{
            "type": "public-key",
            "id": credential_id_text(&id),
            "transports": ["internal", "hybrid"],
        }],
        "userVerification": "required",
    }});
    Ok(CeremonyOptions {
        ceremony_id: uuid::Uuid::new_v4().to_string(),
        expires_at: ctx.now + crate::clock::dur(ceremonies::CEREMONY_TTL),
        options,
    })
}

const DECOY_PURPOSE: &str = "passkey decoy credential id";

/// Answers the second-factor step of a login with a passkey: the challenge's attempt
/// and the account's limit are counted first (committed even when refused), then the
/// ceremony is taken (once) and the assertion checked; a right one starts the session.
pub fn finish_second_factor_step<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    mfa_token: &str,
    ceremony_id: &CeremonyId,
    answer: &PublicKeyCredential,
    remember: RememberAs,
) -> Result<Result<(IssuedSession, Option<String>), AppError>, AppError> {
    let (challenge, _user, counted) =
        challenge_to_answer(conn, ctx, mfa_token, |_, _| ChallengePurpose::Login)?;
    let ceremony = match ceremonies::take(conn, ctx.now, ceremony_id, Purpose::SecondFactor) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    if ceremony.challenge_id.as_deref() != Some(challenge.id.as_str()) {
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    if let Err(e) = check_assertion(conn, ctx, &ceremony, answer)? {
        return Ok(Err(e));
    }
    finish_second_factor(conn, ctx, &challenge, &counted, PASSKEY_METHOD, remember).map(Ok)
}

/// Answers a passwordless sign-in: the ceremony taken (once), the account's
/// second-factor limit counted, the assertion checked, then a session whose second
/// factor is the passkey (fresh for step-up and signing).
pub fn finish_sign_in<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    ceremony_id: &CeremonyId,
    answer: &PublicKeyCredential,
) -> Result<Result<IssuedSession, AppError>, AppError> {
    // An unknown ceremony gets the answer a wrong assertion gets: the options for an
    // address without passkeys store none, and must not be told apart by their answer.
    let ceremony = match ceremonies::take(conn, ctx.now, ceremony_id, Purpose::SignIn) {
        Ok(c) => c,
        Err(_) => return Ok(Err(AppError::InvalidSecondFactor)),
    };
    let counted = ratelimit::hit(
        conn,
        &mfa_key(&ceremony.user_id),
        ctx.config.rate_limits.mfa_per_account,
        ctx.now,
    )?;
    let user = credentials_by_id(conn, &ceremony.user_id)?;
    if user.status != "active" {
        return Ok(Err(AppError::InvalidCredentials));
    }
    if let Err(e) = check_assertion(conn, ctx, &ceremony, answer)? {
        return Ok(Err(e));
    }
    ratelimit::undo(conn, &counted)?;
    let session = create_session(
        conn,
        &ctx.config,
        ctx.now,
        &user.id,
        PASSKEY_METHOD,
        &ctx.client,
    )?;
    Ok(Ok(session))
}

/// Checks an assertion against its ceremony and the passkey as stored now; a right one
/// moves the stored counter forward. The outer error rolls back; the inner one is a
/// refusal, committed with its audit entry.
fn check_assertion<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    ceremony: &Ceremony,
    answer: &PublicKeyCredential,
) -> Result<Result<(), AppError>, AppError> {
    let rp = relying_party(&ctx.config)?;
    let state: PasskeyAuthentication = ceremony.state()?;
    let credential_id = credential_id_text(answer.raw_id.as_ref());
    let row = passkeys::table
        .filter(passkeys::credential_id.eq(&credential_id))
        .filter(passkeys::user_id.eq(&ceremony.user_id))
        .select(super::store::PasskeyRow::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else {
        return Ok(Err(AppError::InvalidSecondFactor));
    };
    if row.revoked_at.is_some() {
        tracing::info!(passkey = %row.id, "revoked passkey refused");
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    let result = match rp.finish_passkey_authentication(answer, &state) {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            return counter_regressed(conn, ctx, &row, None);
        }
        Err(e) => {
            tracing::info!(passkey = %row.id, error = %e, "passkey assertion refused");
            return Ok(Err(AppError::InvalidSecondFactor));
        }
    };
    if !result.user_verified() {
        return Ok(Err(AppError::InvalidSecondFactor));
    }
    // The ceremony's state holds the counter as it was when the ceremony started; a
    // clone used in a ceremony started before the original's last use would pass that
    // check. So the counter is compared with the stored one here, in the same
    // conditional UPDATE that moves it forward.
    let counter = i64::from(result.counter());
    let mut passkey = row.passkey()?;
    passkey.update_credential(&result);
    let credential = serde_json::to_string(&passkey)
        .map_err(|e| AppError::internal(format!("passkey credential: {e}")))?;
    let target = passkeys::table
        .find(&row.id)
        .filter(passkeys::revoked_at.is_null());
    let set = (
        passkeys::credential.eq(credential),
        passkeys::sign_count.eq(counter),
        passkeys::last_used_at.eq(Some(to_db(ctx.now))),
    );
    // Authenticators without a counter (synced passkeys) always send 0: nothing to
    // compare then, unless this one counted before.
    let moved = if counter == 0 {
        diesel::update(target.filter(passkeys::sign_count.eq(0i64)))
            .set(set)
            .execute(conn)?
    } else {
        diesel::update(target.filter(passkeys::sign_count.lt(counter)))
            .set(set)
            .execute(conn)?
    };
    if moved != 1 {
        return counter_regressed(conn, ctx, &row, Some(counter));
    }
    Ok(Ok(()))
}

/// A counter that did not go up: two authenticators hold one key. Refused and audited
/// (entity `passkey`, action `counter_regressed`); the passkey stays registered, so the
/// owner decides which device to keep (docs/passkeys.md).
fn counter_regressed<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    row: &super::store::PasskeyRow,
    presented: Option<i64>,
) -> Result<Result<(), AppError>, AppError> {
    tracing::warn!(passkey = %row.id, user = %row.user_id, "passkey counter went backwards: a cloned authenticator?");
    let stored: i64 = passkeys::table
        .find(&row.id)
        .select(passkeys::sign_count)
        .first(conn)?;
    audit_passkey(
        conn,
        ctx,
        "counter_regressed",
        &row.id,
        serde_json::json!({ "stored_counter": stored, "presented_counter": presented }),
    )?;
    Ok(Err(AppError::InvalidSecondFactor))
}
