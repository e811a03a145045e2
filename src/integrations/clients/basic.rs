//! HTTP Basic authentication of an API client by its id and secret, what LRS clients
//! (learning platforms' xAPI plugins) send instead of getting a token first. The secret
//! is checked as the token endpoint checks it (constant time, revoked clients refused)
//! and under the same counter of attempts per client.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::auth::crypto::sha256_hex;
use crate::auth::principal::{ClientPrincipal, Principal};
use crate::auth::ratelimit;
use crate::config::Config;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::ClientId;
use crate::schema::api_clients;

use super::split_scopes;

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_clients, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Client {
    id: String,
    organisation_id: String,
    name: String,
    secret_hash: String,
    scopes: String,
    revoked_at: Option<chrono::NaiveDateTime>,
}

/// The counter of secret attempts for one client id (Basic and the token endpoint).
fn attempts_key(client_id: &ClientId) -> String {
    format!("client:secret:{client_id}")
}

/// Counts one attempt at a client's secret (429 beyond the limit of failed attempts);
/// `check` says whether it was right, and a right one is taken back, so only failures
/// use up the limit. Run in a write transaction that commits even when the secret is
/// wrong (the caller returns the failure inside `Ok`), or the count would roll back.
pub fn count_attempt(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    client_id: &ClientId,
    check: impl FnOnce(&mut DbConn) -> Result<bool, AppError>,
) -> Result<bool, AppError> {
    let counted = ratelimit::hit(
        conn,
        &attempts_key(client_id),
        cfg.rate_limits.login_per_account,
        now,
    )?;
    let ok = check(conn)?;
    if ok {
        ratelimit::undo(conn, &counted)?;
    }
    Ok(ok)
}

/// Constant-time comparison of equal-length byte strings.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The principal of a client presenting its id and secret: `Ok(None)` for an unknown
/// client, a wrong secret or a revoked client (one answer for all three), 429 when
/// the client's id has had too many wrong secrets. The client holds all its scopes.
pub fn basic_principal(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    client_id: &ClientId,
    secret: &str,
) -> Result<Option<Principal>, AppError> {
    let found: Option<Client> = api_clients::table
        .find(client_id)
        .select(Client::as_select())
        .first(conn)
        .optional()?;
    // Unknown ids are not counted (no secret to guess; no counter rows for any name sent).
    let Some(c) = found else {
        return Ok(None);
    };
    let ok = count_attempt(conn, cfg, now, client_id, |_| {
        Ok(same(c.secret_hash.as_bytes(), sha256_hex(secret).as_bytes()) && c.revoked_at.is_none())
    })?;
    if !ok {
        return Ok(None);
    }
    Ok(Some(Principal {
        user_id: crate::ids::UserId::new(format!("client:{}", c.id)),
        // No token: the credentials themselves, on every request.
        session_id: crate::ids::SessionId::new(format!("basic:{}", c.id)),
        second_factor: "client_credentials".into(),
        email: String::new(),
        roles: Vec::new(),
        client: Some(ClientPrincipal {
            client_id: c.id,
            organisation_id: c.organisation_id,
            name: c.name,
            scopes: split_scopes(&c.scopes),
        }),
    }))
}
