//! Password login: the attempt counted first, then the next step (a second factor,
//! enrolling one, or a session when a remembered device skips it).

use chrono::{DateTime, Utc};

use crate::auth::challenges::create_challenge;
use crate::auth::challenges::ChallengePurpose;
use crate::auth::credentials::{credentials_by_email, Credentials};
use crate::auth::devices::remembered_device_valid;
use crate::auth::mfa::{methods_of, MfaMethod};
use crate::auth::ratelimit::{self};
use crate::auth::ratelimit::{login_account_key, login_address_key};
use crate::auth::sessions::{create_session, IssuedSession};
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;

/// Step 1 of a login, before the password is checked: count the attempt against the
/// address and the account (429 once either is used up), and fetch what the password is
/// checked against. Unknown addresses are counted too, so limits never reveal which
/// accounts exist. A wrong password needs no second step: it was counted here already.
pub fn login_start<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    email: &str,
) -> Result<LoginAttempt, AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
    ratelimit::hit(
        conn,
        &login_address_key(&client.address),
        cfg.rate_limits.login_per_address,
        now,
    )?;
    let counted = ratelimit::hit(
        conn,
        &login_account_key(email),
        cfg.rate_limits.login_per_account,
        now,
    )?;
    Ok(LoginAttempt {
        user: credentials_by_email(conn, email)?,
        counted,
    })
}

/// A counted login attempt: the account, if any, and the count to take back if the
/// password turns out right.
pub struct LoginAttempt {
    pub user: Option<Credentials>,
    pub counted: ratelimit::Counted,
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

/// Step 2 of a login, after the password matched.
pub fn login_succeeded<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    user: &Credentials,
    counted: &ratelimit::Counted,
    device_token: Option<&str>,
) -> Result<LoginOutcome, AppError> {
    ratelimit::undo(conn, counted)?;
    after_first_factor(conn, ctx, user, device_token)
}

/// The next step once the first factor (a password, or an e-ID that does not count as a
/// second factor) is proven: a second factor, enrolling one, or a session when a
/// remembered device skips it.
pub fn after_first_factor<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    user: &Credentials,
    device_token: Option<&str>,
) -> Result<LoginOutcome, AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
    let methods = methods_of(conn, user)?;
    if methods.is_empty() {
        let (mfa_token, expires_at) =
            create_challenge(conn, ctx, &user.id, ChallengePurpose::Enrol)?;
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
    let (mfa_token, expires_at) = create_challenge(conn, ctx, &user.id, ChallengePurpose::Login)?;
    Ok(LoginOutcome::MfaRequired {
        mfa_token,
        methods,
        expires_at,
    })
}
