//! An account's sign-in data (address, password hash, status): read and set.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::UserId;
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

pub fn password_hash_of(conn: &mut DbConn, user_id: &UserId) -> Result<Option<String>, AppError> {
    Ok(credentials_by_id(conn, user_id)?.password_hash)
}
