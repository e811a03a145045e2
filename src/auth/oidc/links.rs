//! Links between accounts and e-IDs, by the provider's (issuer, subject): never by
//! e-mail. The subject is not shown or audited in clear (a Swedish broker's subject may
//! be the personnummer); audit entries carry its SHA-256.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::provider::Identity;
use crate::audit::{self, Event};
use crate::auth::credentials::{credentials_by_id, Credentials};
use crate::auth::crypto::sha256_hex;
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::AppError;
use crate::http::ClientInfo;
use crate::ids::UserId;
use crate::schema::oidc_links;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_links, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LinkRow {
    id: String,
    user_id: String,
    issuer: String,
    subject: String,
    created_at: chrono::NaiveDateTime,
    last_used_at: Option<chrono::NaiveDateTime>,
}

/// An e-ID linked to my account.
#[derive(Debug, Serialize, ToSchema)]
pub struct OidcLink {
    pub id: String,
    /// The provider (its issuer URL).
    pub issuer: String,
    /// What the region calls it ("Freja eID", "SITHS").
    pub display_name: String,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    /// The last sign-in with it.
    #[serde(default, with = "crate::clock::millis_opt")]
    pub last_used_at: Option<DateTime<Utc>>,
}

fn view(r: LinkRow, display_name: &str) -> OidcLink {
    OidcLink {
        id: r.id,
        issuer: r.issuer,
        display_name: display_name.to_string(),
        created_at: from_db(r.created_at),
        last_used_at: r.last_used_at.map(from_db),
    }
}

/// An audit entry about `link`, by its account's person.
fn log(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    client: &ClientInfo,
    action: &str,
    link: &LinkRow,
) -> Result<(), AppError> {
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&link.user_id),
            client: client.user_agent.as_deref(),
            action,
            entity: "oidc_link",
            entity_id: &link.id,
            enrolment_id: None,
            data: &json!({
                "issuer": link.issuer,
                "subject_sha256": sha256_hex(&link.subject),
            }),
        },
    )
}

/// Links `who` to the account. One account per e-ID, one e-ID per account and
/// provider: either taken is 409 (the unique constraints decide races the same way).
pub fn link(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    client: &ClientInfo,
    user_id: &UserId,
    who: &Identity,
    display_name: &str,
) -> Result<OidcLink, AppError> {
    let taken: i64 = oidc_links::table
        .filter(oidc_links::issuer.eq(&who.issuer))
        .filter(
            oidc_links::subject
                .eq(&who.subject)
                .or(oidc_links::user_id.eq(user_id)),
        )
        .count()
        .get_result(conn)?;
    if taken > 0 {
        // Only the holder of this e-ID gets this far with it: telling them it is taken
        // reveals nothing about anyone else.
        return Err(AppError::Conflict(
            "this e-ID is already linked to an account, or your account already has an \
             e-ID of this provider (remove that one first)"
                .into(),
        ));
    }
    let row = LinkRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_string(),
        issuer: who.issuer.clone(),
        subject: who.subject.clone(),
        created_at: to_db(now),
        last_used_at: None,
    };
    diesel::insert_into(oidc_links::table)
        .values(&row)
        .execute(conn)?;
    log(conn, now, client, "oidc_linked", &row)?;
    Ok(view(row, display_name))
}

/// The active account `who` is linked to. Unlinked, or linked to an account that is not
/// active: the same refusal, so a sign-in tells nothing about which accounts exist.
pub fn account_of(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    client: &ClientInfo,
    who: &Identity,
) -> Result<Credentials, AppError> {
    let row: Option<LinkRow> = oidc_links::table
        .filter(oidc_links::issuer.eq(&who.issuer))
        .filter(oidc_links::subject.eq(&who.subject))
        .select(LinkRow::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else {
        tracing::info!("OIDC sign-in with an unlinked e-ID");
        return Err(AppError::OidcNotLinked);
    };
    let user = credentials_by_id(conn, &row.user_id)?;
    if user.status != "active" {
        return Err(AppError::OidcNotLinked);
    }
    diesel::update(oidc_links::table.find(&row.id))
        .set(oidc_links::last_used_at.eq(to_db(now)))
        .execute(conn)?;
    log(conn, now, client, "oidc_sign_in", &row)?;
    Ok(user)
}

/// My links.
pub fn list(
    conn: &mut DbConn,
    user_id: &UserId,
    display_name: &str,
) -> Result<Vec<OidcLink>, AppError> {
    let rows: Vec<LinkRow> = oidc_links::table
        .filter(oidc_links::user_id.eq(user_id))
        .order(oidc_links::created_at.asc())
        .select(LinkRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(|r| view(r, display_name)).collect())
}

/// Removes my link `id`; another's, or an unknown one, is 404.
pub fn remove(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    client: &ClientInfo,
    user_id: &UserId,
    id: &str,
) -> Result<(), AppError> {
    let row: LinkRow = oidc_links::table
        .find(id)
        .filter(oidc_links::user_id.eq(user_id))
        .select(LinkRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    diesel::delete(oidc_links::table.find(id)).execute(conn)?;
    log(conn, now, client, "oidc_unlinked", &row)
}
