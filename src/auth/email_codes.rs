//! Six-digit sign-in codes sent by e-mail for a challenge.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::auth::challenges::{find_open_challenge, require_purpose};
use crate::auth::challenges::{Challenge, ChallengePurpose};
use crate::auth::credentials::credentials_by_id;
use crate::auth::crypto::{self, sha256_hex};
use crate::auth::ratelimit::{self, mail_account_key};
use crate::clock::{dur, to_db};
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::ChallengeId;
use crate::mail::Mail;
use crate::schema::mfa_challenges;

fn email_code_hash(challenge_id: &ChallengeId, code: &str) -> String {
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

/// Sends a 6-digit code for the challenge to the user's address: on a login challenge
/// for users who chose e-mailed codes, on an enrolment challenge to choose them.
pub fn send_email_code<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    mfa_token: &str,
) -> Result<(Mail, DateTime<Utc>), AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
    let challenge = find_open_challenge(conn, now, mfa_token)?;
    let user = credentials_by_id(conn, &challenge.user_id)?;
    // Either kind may ask for a code; an enrolment challenge only while the account has
    // no second factor.
    require_purpose(conn, &challenge, &user, challenge.purpose)?;
    if challenge.purpose == ChallengePurpose::Login && user.email_mfa_enabled == 0 {
        return Err(AppError::Forbidden(
            "e-mailed codes are not enabled for this account; use your authenticator app or a recovery code"
                .into(),
        ));
    }
    ratelimit::hit(
        conn,
        &mail_account_key(&user.id),
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

/// Takes the challenge's e-mailed code if `code` is it. Each try is counted against the
/// code before the comparison, and the code is taken by the statement that compares it,
/// so of N parallel tries at most `email_code_max_attempts` are compared and one wins.
pub(crate) fn take_email_code<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    challenge: &Challenge,
    code: &str,
) -> Result<bool, AppError> {
    let (cfg, now) = (&*ctx.config, ctx.now);
    let live = || {
        mfa_challenges::table
            .find(&challenge.id)
            .filter(mfa_challenges::email_code_hash.is_not_null())
            .filter(mfa_challenges::email_code_expires_at.gt(to_db(now)))
    };
    let counted = diesel::update(
        live().filter(mfa_challenges::email_code_attempts.lt(cfg.email_code_max_attempts)),
    )
    .set(mfa_challenges::email_code_attempts.eq(mfa_challenges::email_code_attempts + 1))
    .execute(conn)?;
    if counted != 1 {
        return Ok(false);
    }
    let taken = diesel::update(
        live().filter(mfa_challenges::email_code_hash.eq(email_code_hash(&challenge.id, code))),
    )
    .set(mfa_challenges::email_code_hash.eq(None::<String>))
    .execute(conn)?;
    Ok(taken == 1)
}
