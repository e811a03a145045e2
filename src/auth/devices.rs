//! Remembered devices: a device token from a login skips the second factor for a while.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::auth::crypto::{random_token, sha256_hex};
use crate::clock::{dur, to_db};
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::UserId;
use crate::schema::remembered_devices;

pub(crate) fn remembered_device_valid(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
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

pub(crate) fn remember_device<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    user_id: &UserId,
    name: &str,
) -> Result<String, AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
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

/// A remembered device as listed to its owner.
#[derive(Queryable, Selectable)]
#[diesel(table_name = remembered_devices, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Device {
    pub id: String,
    pub name: String,
    pub created_at: chrono::NaiveDateTime,
    pub last_used_at: chrono::NaiveDateTime,
    pub expires_at: chrono::NaiveDateTime,
}

/// The user's devices that still skip the second factor, most recently used first.
pub fn list(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
) -> Result<Vec<Device>, AppError> {
    Ok(remembered_devices::table
        .filter(remembered_devices::user_id.eq(user_id))
        .filter(remembered_devices::revoked_at.is_null())
        .filter(remembered_devices::expires_at.gt(to_db(now)))
        .order(remembered_devices::last_used_at.desc())
        .select(Device::as_select())
        .load(conn)?)
}

/// Forgets one of the user's devices; how many were forgotten (0: none of theirs).
pub fn forget(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    id: &str,
) -> Result<usize, AppError> {
    Ok(diesel::update(
        remembered_devices::table
            .filter(remembered_devices::id.eq(id))
            .filter(remembered_devices::user_id.eq(user_id))
            .filter(remembered_devices::revoked_at.is_null()),
    )
    .set(remembered_devices::revoked_at.eq(to_db(now)))
    .execute(conn)?)
}
