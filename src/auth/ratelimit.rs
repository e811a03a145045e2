//! Fixed-window counters against brute force, kept in the database so that every API
//! node sees the same counts. Callers run these inside a write transaction.
//!
//! An attempt is counted *before* the thing it guards is checked, by one statement that
//! increments and returns the count (`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`).
//! Reading the count and writing it back in two statements let parallel requests all
//! read the same count (READ COMMITTED on PostgreSQL), and counting a failure only after
//! the (slow) password check let every one of N parallel guesses through.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Timestamp};

use crate::clock::{dur, from_db, to_db};
use crate::config::Limit;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::UserId;
use crate::schema::rate_limits;

/// One attempt counted against a key, in the window that was current then.
#[derive(Debug, Clone)]
pub struct Counted {
    key: String,
    window_start: NaiveDateTime,
}

fn refuse(limit: Limit, window_start: DateTime<Utc>, now: DateTime<Utc>) -> AppError {
    let left = (window_start + dur(limit.window) - now)
        .num_seconds()
        .max(1);
    AppError::RateLimited {
        retry_after: std::time::Duration::from_secs(left as u64),
    }
}

/// Counts one attempt against `key` and fails with 429 when it is beyond the limit of
/// the current window. The increment, the window reset and reading the new count are one
/// statement, so N parallel attempts get N distinct counts and at most `limit.max` pass.
///
/// A refused attempt leaves the count at `max + 1` (it does not grow without bound);
/// when the caller's transaction rolls back, so does the count.
pub fn hit(
    conn: &mut DbConn,
    key: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<Counted, AppError> {
    let now_db = to_db(now);
    let expired = rate_limits::window_start.le(to_db(now - dur(limit.window)));
    let upsert = diesel::insert_into(rate_limits::table)
        .values((
            rate_limits::key.eq(key),
            rate_limits::window_start.eq(now_db),
            rate_limits::count.eq(1),
        ))
        .on_conflict(rate_limits::key)
        .do_update()
        .set((
            rate_limits::count.eq(case_when::<_, _, Integer>(expired, 1)
                .when(rate_limits::count.gt(limit.max), rate_limits::count)
                .otherwise(rate_limits::count + 1)),
            rate_limits::window_start
                .eq(case_when::<_, _, Timestamp>(expired, now_db)
                    .otherwise(rate_limits::window_start)),
        ))
        .returning((rate_limits::count, rate_limits::window_start));
    let (count, window_start): (i32, NaiveDateTime) =
        crate::on_backend!(conn, |c| upsert.get_result(c))?;
    if count > limit.max {
        // The key holds an e-mail, a user id or an address: only its kind is told.
        use crate::telemetry::security::{limit_kind, limit_user, SecurityEvent};
        let (event, kind) = limit_kind(key);
        let mut event = SecurityEvent::new(event).kind(kind);
        if let Some(user) = limit_user(key) {
            event = event.user(user);
        }
        event.emit();
        return Err(refuse(limit, from_db(window_start), now));
    }
    Ok(Counted {
        key: key.to_string(),
        window_start,
    })
}

/// Takes back an attempt that turned out to be the owner's (the right password, the
/// right code), so that typing mistakes followed by a success do not lock the account.
/// Only that one attempt: clearing the counter would let guesses racing the owner's
/// login through. A window that has started over since is left alone.
pub fn undo(conn: &mut DbConn, counted: &Counted) -> Result<(), AppError> {
    diesel::update(
        rate_limits::table
            .find(&counted.key)
            .filter(rate_limits::window_start.eq(counted.window_start))
            .filter(rate_limits::count.gt(0)),
    )
    .set(rate_limits::count.eq(rate_limits::count - 1))
    .execute(conn)?;
    Ok(())
}

// ---- The counters' keys ----------------------------------------------------------

pub fn login_address_key(address: &Option<String>) -> String {
    format!("login:addr:{}", address.as_deref().unwrap_or("unknown"))
}

pub fn login_account_key(email: &str) -> String {
    format!("login:acct:{email}")
}

/// The counter of mails (codes, links) sent to one account, whatever asked for them.
pub fn mail_account_key(user_id: &UserId) -> String {
    format!("mail:acct:{user_id}")
}

pub fn mfa_key(user_id: &UserId) -> String {
    format!("mfa:acct:{user_id}")
}
