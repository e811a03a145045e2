//! Account links: an xAPI account (`homePage` + `name`) to a user.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::principal::{Principal, Role};
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::ids::OrganisationId;
use crate::integrations::{audit_write, require_admin_over, visible_orgs};
use crate::schema::{users, xapi_account_links};

use super::*;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountLink {
    pub id: String,
    pub organisation_id: String,
    /// `actor.account.homePage` of statements.
    #[schema(example = "https://lms.regionstockholm.se")]
    pub home_page: String,
    /// `actor.account.name` of statements.
    #[schema(example = "u12345")]
    pub name: String,
    pub user_id: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountLink {
    pub id: Option<Uuid>,
    pub organisation_id: String,
    #[schema(example = "https://lms.regionstockholm.se")]
    pub home_page: String,
    #[schema(example = "u12345")]
    pub name: String,
    /// The user, by id or by e-mail (one of the two).
    pub user_id: Option<String>,
    pub email: Option<String>,
}

/// An account link as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = xapi_account_links, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LinkRecord {
    id: String,
    organisation_id: String,
    home_page: String,
    name: String,
    user_id: String,
    created_by: Option<String>,
    created_at: NaiveDateTime,
}

impl From<LinkRecord> for AccountLink {
    fn from(r: LinkRecord) -> AccountLink {
        AccountLink {
            id: r.id,
            organisation_id: r.organisation_id,
            home_page: r.home_page,
            name: r.name,
            user_id: r.user_id,
            created_by: r.created_by,
            created_at: from_db(r.created_at),
        }
    }
}

pub fn create_link(
    conn: &mut DbConn,
    ctx: &Ctx,
    n: NewAccountLink,
) -> Result<AccountLink, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let mut errors = Vec::new();
    if !is_iri(&n.home_page) {
        errors.push(FieldError::new(
            "home_page",
            "an IRL, e.g. https://lms.example.org",
        ));
    }
    if n.name.is_empty() || n.name.chars().count() > 300 {
        errors.push(FieldError::new("name", "1 to 300 characters"));
    }
    let user = match (&n.user_id, &n.email) {
        (Some(u), None) => Some(u.clone()),
        (None, Some(e)) => users::table
            .filter(users::email.eq(e.trim().to_lowercase()))
            .select(users::id)
            .first(conn)
            .optional()?,
        _ => {
            errors.push(FieldError::new("user_id", "give user_id or email (one)"));
            None
        }
    };
    let user = match user {
        Some(u) if crate::accounts::service::visible_user(conn, me, &u).is_ok() => Some(u),
        Some(_) | None => {
            if errors.iter().all(|e| e.field != "user_id") {
                errors.push(FieldError::new("user_id", "no such user among your people"));
            }
            None
        }
    };
    if crate::accounts::service::get_org(conn, &n.organisation_id).is_err() {
        errors.push(FieldError::new("organisation_id", "no such organisation"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    require_admin_over(conn, me, &OrganisationId::from(&n.organisation_id))?;
    let user = user.ok_or(AppError::NotFound)?;
    let exists: i64 = xapi_account_links::table
        .filter(xapi_account_links::organisation_id.eq(&n.organisation_id))
        .filter(xapi_account_links::home_page.eq(&n.home_page))
        .filter(xapi_account_links::name.eq(&n.name))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(AppError::Conflict(
            "this account is already linked in the organisation".into(),
        ));
    }
    let id =
        n.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(xapi_account_links::table)
        .values((
            xapi_account_links::id.eq(&id),
            xapi_account_links::organisation_id.eq(&n.organisation_id),
            xapi_account_links::home_page.eq(&n.home_page),
            xapi_account_links::name.eq(&n.name),
            xapi_account_links::user_id.eq(&user),
            xapi_account_links::created_by.eq(&me.user_id),
            xapi_account_links::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let r: LinkRecord = xapi_account_links::table
        .find(&id)
        .select(LinkRecord::as_select())
        .first(conn)?;
    let l = AccountLink::from(r);
    audit_write(
        conn,
        now,
        me,
        "created",
        "xapi_account_link",
        &id,
        &json!(l),
    )?;
    // Statements of this account waiting in the organisation's subtree match now.
    let orgs =
        crate::auth::principal::org_subtrees(conn, std::slice::from_ref(&n.organisation_id))?;
    let learner = Learner::Account {
        home_page: n.home_page.clone(),
        name: n.name.clone(),
    }
    .describe();
    retry_unmatched(conn, ctx, &orgs, "unknown_learner", None, Some(&learner))?;
    Ok(l)
}

pub fn list_links(
    conn: &mut DbConn,
    me: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AccountLink>, AppError> {
    let orgs = visible_orgs(conn, me)?;
    let mut q = xapi_account_links::table
        .filter(xapi_account_links::organisation_id.eq_any(orgs))
        .select(LinkRecord::as_select())
        .order(xapi_account_links::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(xapi_account_links::id.gt(a.to_string()));
    }
    Ok(q.load::<LinkRecord>(conn)?
        .into_iter()
        .map(AccountLink::from)
        .collect())
}

pub fn delete_link(conn: &mut DbConn, ctx: &Ctx, id: &str) -> Result<(), AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let r: LinkRecord = xapi_account_links::table
        .find(id)
        .select(LinkRecord::as_select())
        .first(conn)?;
    let l = AccountLink::from(r);
    if me.is_client()
        || !me.has_role_over(
            conn,
            Role::Administrator,
            &OrganisationId::from(&l.organisation_id),
        )?
    {
        return Err(AppError::NotFound);
    }
    diesel::delete(xapi_account_links::table.find(id)).execute(conn)?;
    audit_write(conn, now, me, "deleted", "xapi_account_link", id, &json!(l))
}
