//! The ten single-use recovery codes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::auth::crypto::{self, normalize_code, sha256_hex};
use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::UserId;
use crate::schema::{recovery_codes, users};

pub const RECOVERY_CODE_COUNT: usize = 10;

pub fn replace_recovery_codes(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
) -> Result<Vec<String>, AppError> {
    // Replacements take turns per account: on PostgreSQL two at once would each delete
    // only the codes they saw and both insert ten, leaving twenty valid codes. (SQLite's
    // write transactions are exclusive already.)
    if let DbConn::Pg(pg) = conn {
        users::table
            .find(user_id)
            .select(users::id)
            .for_update()
            .first::<String>(pg)
            .optional()?;
    }
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

pub(crate) fn use_recovery_code(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
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

pub fn recovery_codes_left(conn: &mut DbConn, user_id: &UserId) -> Result<i64, AppError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}
