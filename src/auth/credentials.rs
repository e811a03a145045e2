//! An account's sign-in data (address, password hash, status): read and set.
//!
//! The only writer of the users' columns a principal or its session check reads (e-mail
//! address, status): each such write records an `AuthChange` on the caller's
//! `AuthChanges`, so that no cached principal keeps the old value (see
//! `principal::SessionCache`); a test of the composition root fails on a write of
//! those columns anywhere else.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::UserId;
use crate::principal::{AuthChange, AuthChanges};
use crate::schema::users;

crate::text_enum! {
    /// Whether an account may sign in.
    pub enum UserStatus { Active = "active", Disabled = "disabled" }
}

/// A user's sign-in data.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Credentials {
    pub id: UserId,
    pub email: String,
    pub password_hash: Option<String>,
    pub status: UserStatus,
    pub email_mfa_enabled: i32,
}

pub fn credentials_by_email(
    conn: &mut DbConn,
    email: &str,
) -> Result<Option<Credentials>, AppError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(Credentials::as_select())
        .first(conn)
        .optional()?)
}

pub fn credentials_by_id(conn: &mut DbConn, id: &str) -> Result<Credentials, AppError> {
    Ok(users::table
        .find(id)
        .select(Credentials::as_select())
        .first(conn)?)
}

pub fn set_password(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    new_hash: &str,
) -> Result<(), AppError> {
    diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(new_hash),
            users::updated_at.eq(to_db(now)),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

/// A new e-mail address, confirmed from a link sent to it: the address is verified.
pub fn confirm_new_email(
    conn: &mut DbConn,
    changes: &AuthChanges,
    now: DateTime<Utc>,
    user_id: &UserId,
    email: &str,
) -> Result<(), AppError> {
    diesel::update(users::table.find(user_id))
        .set((
            users::email.eq(email),
            users::email_verified_at.eq(to_db(now)),
            users::updated_at.eq(to_db(now)),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    changes.record(AuthChange::EmailChanged);
    Ok(())
}

/// The address from before a change, back (the owner undid the change).
pub fn restore_email(
    conn: &mut DbConn,
    changes: &AuthChanges,
    user_id: &UserId,
    email: &str,
) -> Result<(), AppError> {
    diesel::update(users::table.find(user_id))
        .set(users::email.eq(email))
        .execute(conn)?;
    changes.record(AuthChange::EmailChanged);
    Ok(())
}

/// Closes an account for good (erasure): the row stays under the pseudonymous address
/// `pseudonym`, disabled, with nothing to sign in with and no digest due.
pub fn close_account(
    conn: &mut DbConn,
    changes: &AuthChanges,
    now: DateTime<Utc>,
    user_id: &UserId,
    pseudonym: &str,
) -> Result<(), AppError> {
    diesel::update(users::table.find(user_id))
        .set((
            users::email.eq(pseudonym),
            users::password_hash.eq(None::<String>),
            users::email_verified_at.eq(None::<chrono::NaiveDateTime>),
            users::email_mfa_enabled.eq(0),
            users::status.eq(UserStatus::Disabled),
            users::last_digest_at.eq(None::<chrono::NaiveDateTime>),
            users::version.eq(users::version + 1),
            users::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    changes.record(AuthChange::StatusChanged);
    Ok(())
}

pub fn password_hash_of(conn: &mut DbConn, user_id: &UserId) -> Result<Option<String>, AppError> {
    Ok(credentials_by_id(conn, user_id)?.password_hash)
}
