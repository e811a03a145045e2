//! Fixed-window counters against brute force, kept in the database so that every API
//! node sees the same counts. Callers run these inside a write transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::clock::{dur, from_db, to_db};
use crate::config::Limit;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::rate_limits;

fn current(
    conn: &mut DbConn,
    key: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<(i32, DateTime<Utc>), AppError> {
    let row: Option<(chrono::NaiveDateTime, i32)> = rate_limits::table
        .find(key)
        .select((rate_limits::window_start, rate_limits::count))
        .first(conn)
        .optional()?;
    Ok(match row {
        Some((start, count)) if from_db(start) + dur(limit.window) > now => (count, from_db(start)),
        _ => (0, now),
    })
}

fn refuse(limit: Limit, window_start: DateTime<Utc>, now: DateTime<Utc>) -> AppError {
    let left = (window_start + dur(limit.window) - now)
        .num_seconds()
        .max(1);
    AppError::RateLimited {
        retry_after: std::time::Duration::from_secs(left as u64),
    }
}

/// Fails with 429 if `key` already used up its window, without counting this attempt.
pub fn check(
    conn: &mut DbConn,
    key: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let (count, start) = current(conn, key, limit, now)?;
    if count >= limit.max {
        return Err(refuse(limit, start, now));
    }
    Ok(())
}

/// Counts one attempt against `key`; fails with 429 once the window is used up.
pub fn hit(conn: &mut DbConn, key: &str, limit: Limit, now: DateTime<Utc>) -> Result<(), AppError> {
    let (count, start) = current(conn, key, limit, now)?;
    if count >= limit.max {
        return Err(refuse(limit, start, now));
    }
    record(conn, key, count + 1, start)
}

/// Counts a failure (e.g. a wrong password) after the fact.
pub fn fail(
    conn: &mut DbConn,
    key: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let (count, start) = current(conn, key, limit, now)?;
    record(conn, key, count + 1, start)
}

pub fn clear(conn: &mut DbConn, key: &str) -> Result<(), AppError> {
    diesel::delete(rate_limits::table.find(key)).execute(conn)?;
    Ok(())
}

fn record(conn: &mut DbConn, key: &str, count: i32, start: DateTime<Utc>) -> Result<(), AppError> {
    let updated = diesel::update(rate_limits::table.find(key))
        .set((
            rate_limits::count.eq(count),
            rate_limits::window_start.eq(to_db(start)),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(rate_limits::table)
            .values((
                rate_limits::key.eq(key),
                rate_limits::count.eq(count),
                rate_limits::window_start.eq(to_db(start)),
            ))
            .execute(conn)?;
    }
    Ok(())
}
