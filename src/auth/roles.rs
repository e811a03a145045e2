//! Role grants (`user_roles`): the only writer of the table. Every grant or removal is
//! recorded on the caller's `AuthChanges`, so that a principal cached with the old roles
//! is not used again (see `principal::SessionCache`); a test of the composition root
//! fails on a write to the table anywhere else.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::UserId;
use crate::principal::{AuthChange, AuthChanges, Role};
use crate::schema::user_roles;

/// A role to grant: to whom, which, where, and who granted it (none for a grant the
/// person's own acceptance of an invitation completes).
pub struct Grant<'a> {
    pub user_id: &'a UserId,
    pub role: Role,
    pub organisation_id: &'a str,
    pub granted_by: Option<&'a UserId>,
}

/// Grants a role.
pub fn grant(
    conn: &mut DbConn,
    changes: &AuthChanges,
    now: DateTime<Utc>,
    g: Grant<'_>,
) -> Result<(), AppError> {
    diesel::insert_into(user_roles::table)
        .values((
            user_roles::id.eq(Uuid::new_v4().to_string()),
            user_roles::user_id.eq(g.user_id),
            user_roles::role.eq(g.role.as_str()),
            user_roles::organisation_id.eq(g.organisation_id),
            user_roles::granted_by.eq(g.granted_by),
            user_roles::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    changes.record(AuthChange::RolesChanged);
    Ok(())
}

/// Takes away every role of a user (an account erased); returns how many there were.
pub fn remove_all_of(
    conn: &mut DbConn,
    changes: &AuthChanges,
    user_id: &UserId,
) -> Result<usize, AppError> {
    let n =
        diesel::delete(user_roles::table.filter(user_roles::user_id.eq(user_id))).execute(conn)?;
    changes.record(AuthChange::RolesChanged);
    Ok(n)
}
