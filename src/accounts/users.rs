//! Users (användare): profiles, who may see whom, the caller's own profile.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::auth::credentials::UserStatus;
use crate::auth::principal::{load_roles, org_subtrees, Principal, Role, RoleGrant};
use crate::auth::validate::validate_name;
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::http::etag;
use crate::ids::UserId;
use crate::schema::{restrictions, totp_credentials, user_roles, users};

/// The second factors a user has set up.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MfaStatus {
    pub totp: bool,
    pub email_code: bool,
    pub recovery_codes_remaining: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    /// Login; any domain.
    pub email: String,
    pub display_name: String,
    pub email_verified: bool,
    /// `active` or `disabled`.
    pub status: String,
    pub roles: Vec<RoleGrant>,
    pub mfa: MfaStatus,
    /// `immediate` or `daily_digest`: how portfolio notifications arrive.
    pub notification_mode: String,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

/// What a user's view reads of their row (never the password hash).
#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct UserRow {
    id: UserId,
    email: String,
    display_name: String,
    email_verified_at: Option<chrono::NaiveDateTime>,
    status: UserStatus,
    email_mfa_enabled: i32,
    notification_mode: String,
    version: i32,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

fn user_from(conn: &mut DbConn, r: UserRow) -> Result<User, AppError> {
    let totp: Option<Option<String>> = totp_credentials::table
        .find(&r.id)
        .select(totp_credentials::secret)
        .first(conn)
        .optional()?;
    Ok(User {
        roles: load_roles(conn, &r.id)?,
        mfa: MfaStatus {
            totp: matches!(totp, Some(Some(_))),
            email_code: r.email_mfa_enabled != 0,
            recovery_codes_remaining: crate::auth::recovery_codes::recovery_codes_left(
                conn, &r.id,
            )?,
        },
        id: r.id.into_inner(),
        email: r.email,
        display_name: r.display_name,
        email_verified: r.email_verified_at.is_some(),
        status: r.status.as_str().into(),
        notification_mode: r.notification_mode,
        version: r.version,
        created_at: from_db(r.created_at),
        updated_at: from_db(r.updated_at),
    })
}

pub fn get_user(conn: &mut DbConn, id: &str) -> Result<User, AppError> {
    let row = users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)?;
    user_from(conn, row)
}

/// A user is visible to themselves and to administrators and directors of studies
/// over an organisation where the user holds a role. Others get 404, not 403.
pub fn visible_user(conn: &mut DbConn, me: &Principal, id: &str) -> Result<User, AppError> {
    if me.user_id == id {
        return get_user(conn, id);
    }
    let user = get_user(conn, id)?;
    for grant in &user.roles {
        if me.has_role_over(conn, Role::Administrator, &grant.organisation_id)?
            || me.has_role_over(conn, Role::DirectorOfStudies, &grant.organisation_id)?
        {
            return Ok(user);
        }
    }
    Err(AppError::NotFound)
}

pub fn list_users(
    conn: &mut DbConn,
    me: &Principal,
    role: Option<Role>,
    organisation_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<User>, AppError> {
    let roots = me.orgs_with(&[Role::Administrator, Role::DirectorOfStudies]);
    if roots.is_empty() {
        return Err(AppError::Forbidden(
            "listing users needs the administrator or director-of-studies role".into(),
        ));
    }
    let mut orgs = org_subtrees(conn, &roots)?;
    if let Some(o) = organisation_id {
        // That organisation and everything below it, within what the caller may see.
        let below = org_subtrees(conn, &[o.to_string()])?;
        orgs.retain(|x| below.contains(x));
    }
    let mut q = user_roles::table
        .filter(user_roles::organisation_id.eq_any(orgs))
        .select(user_roles::user_id)
        .distinct()
        .into_boxed();
    if let Some(r) = role {
        q = q.filter(user_roles::role.eq(r.as_str()));
    }
    if let Some(a) = after {
        q = q.filter(user_roles::user_id.gt(a.to_string()));
    }
    // Restricted accounts (GDPR Art. 18) are hidden from lists; administrators find
    // them under `/restrictions`.
    let hidden = restricted_accounts(conn, None)?;
    if !hidden.is_empty() {
        q = q.filter(user_roles::user_id.ne_all(hidden));
    }
    let ids: Vec<String> = q.order(user_roles::user_id).limit(limit + 1).load(conn)?;
    ids.iter().map(|id| get_user(conn, id)).collect()
}

/// Accounts whose processing is restricted now (GDPR Art. 18; `privacy::restriction`
/// writes them), all or only `one`. Read here from the table rather than through
/// `privacy`, which sits above accounts.
fn restricted_accounts(conn: &mut DbConn, one: Option<&str>) -> Result<Vec<String>, AppError> {
    let mut q = restrictions::table
        .filter(restrictions::subject_kind.eq("account"))
        .filter(restrictions::lifted_at.is_null())
        .select(restrictions::subject_id)
        .into_boxed();
    if let Some(id) = one {
        q = q.filter(restrictions::subject_id.eq(id.to_string()));
    }
    Ok(q.load(conn)?)
}

pub fn update_me(
    conn: &mut DbConn,
    ctx: &Ctx,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    display_name: Option<&str>,
    notification_mode: Option<&str>,
) -> Result<User, AppError> {
    let me = &ctx.caller;
    let now = ctx.now;
    // A restricted account (GDPR Art. 18) is read-only, its profile too.
    if !restricted_accounts(conn, Some(&me.user_id))?.is_empty() {
        return Err(AppError::ProcessingRestricted(
            "processing of this account is restricted at the person's request: the profile \
             can be read but not changed until an administrator lifts the restriction"
                .into(),
        ));
    }
    let current = get_user(conn, &me.user_id)?;
    if_match(&current.etag())?;
    let name = validate_name(
        "display_name",
        display_name.unwrap_or(&current.display_name),
    )?;
    let mode = notification_mode.unwrap_or(&current.notification_mode);
    if !["immediate", "daily_digest"].contains(&mode) {
        return Err(AppError::validation(
            "notification_mode",
            "immediate or daily_digest",
        ));
    }
    diesel::update(users::table.find(&me.user_id))
        .set((
            users::display_name.eq(name),
            users::notification_mode.eq(mode),
            users::version.eq(current.version + 1),
            users::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    get_user(conn, &me.user_id)
}

pub fn user_count(conn: &mut DbConn) -> Result<i64, AppError> {
    Ok(users::table.count().get_result(conn)?)
}

/// A person's name as shown on documents (their e-mail address when they gave none).
pub fn display_name(conn: &mut DbConn, id: &str) -> Result<String, AppError> {
    #[derive(Queryable, Selectable)]
    #[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
    struct Named {
        display_name: String,
        email: String,
    }
    let n: Named = users::table
        .find(id)
        .select(Named::as_select())
        .first(conn)?;
    Ok(if n.display_name.trim().is_empty() {
        n.email
    } else {
        n.display_name
    })
}
