//! Sessions and their rotating refresh tokens: start, refresh, revoke.
//!
//! The only writer of `sessions`: what ends a session records it on the context's
//! `AuthChanges`, so that no cached principal of it is used again (see
//! `principal::SessionCache`); a test of the composition root fails on a write to the
//! table anywhere else. Starting or extending a session needs no record: only live
//! sessions are cached, and an extended one is read again when its entry expires.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::auth::crypto::{random_token, sha256_hex};
use crate::clock::{dur, to_db};
use crate::config::Config;
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::http::ClientInfo;
use crate::ids::{SessionId, UserId};
use crate::principal::AuthChange;
use crate::schema::{refresh_tokens, remembered_devices, sessions, users};

pub struct IssuedSession {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub refresh_token: String,
}

pub fn create_session(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    user_id: &UserId,
    second_factor: &str,
    client: &ClientInfo,
) -> Result<IssuedSession, AppError> {
    let session_id = SessionId::random();
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
        user_id: user_id.clone(),
        session_id,
        refresh_token,
    })
}

fn new_refresh_token(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    session_id: &SessionId,
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
///
/// The token is taken by one conditional statement (`used_at IS NULL`), so of N
/// parallel requests with the same token exactly one rotates it.
pub fn refresh<C: Send + Sync + 'static>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    refresh_token: &str,
) -> Result<Result<IssuedSession, AppError>, AppError> {
    let (cfg, now) = (&*ctx.config, ctx.now);
    let denied =
        || AppError::Unauthenticated("the refresh token is not valid; log in again".into());
    let hash = sha256_hex(refresh_token);
    let take = diesel::update(
        refresh_tokens::table
            .find(&hash)
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(to_db(now)))
    .returning(refresh_tokens::session_id);
    let taken: Option<SessionId> = crate::on_backend!(conn, |c| take.get_result(c).optional())?;
    let Some(session_id) = taken else {
        let known: Option<SessionId> = refresh_tokens::table
            .find(&hash)
            .select(refresh_tokens::session_id)
            .first(conn)
            .optional()?;
        if let Some(session_id) = known {
            revoke_session(conn, ctx, &session_id, "refresh_token_reuse")?;
            tracing::warn!(session = %session_id, "refresh token reuse: session revoked");
        }
        return Ok(Err(denied()));
    };
    let session: Option<UserId> = sessions::table
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

pub fn revoke_session<C: Send + Sync + 'static>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    session_id: &SessionId,
    reason: &str,
) -> Result<(), AppError> {
    let now = ctx.now;
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
    ctx.auth_changes().record(AuthChange::SessionsEnded);
    Ok(())
}

/// Ends every session of a user (password change or reset). Remembered devices are
/// forgotten too: whoever changed the password may be evicting an intruder.
pub fn revoke_all_sessions<C: Send + Sync + 'static>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    user_id: &UserId,
    reason: &str,
) -> Result<(), AppError> {
    let now = ctx.now;
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
    ctx.auth_changes().record(AuthChange::SessionsEnded);
    Ok(())
}

/// A second factor was just proven in session `session_id` (a step-up).
pub fn mark_second_factor(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    session_id: &SessionId,
) -> Result<(), AppError> {
    diesel::update(sessions::table.find(session_id))
        .set(sessions::second_factor_at.eq(to_db(now)))
        .execute(conn)?;
    Ok(())
}

/// Deletes every session of a user and its refresh tokens (an account erased); returns
/// how many sessions there were.
pub fn erase_all_of<C: Send + Sync + 'static>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    user_id: &UserId,
) -> Result<usize, AppError> {
    let session_ids: Vec<SessionId> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(sessions::id)
        .load(conn)?;
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(&session_ids)))
        .execute(conn)?;
    let n = diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?;
    ctx.auth_changes().record(AuthChange::SessionsEnded);
    Ok(n)
}
