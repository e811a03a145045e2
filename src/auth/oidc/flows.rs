//! Started sign-in and link attempts, kept in the database between the start and the
//! provider's answer, so that any API node can finish what another started. Each is
//! taken once, by one conditional UPDATE, before it expires: a replayed `state` (and
//! with it the attempt's nonce and PKCE verifier) is refused.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::provider::Started;
use crate::auth::crypto::sha256_hex;
use crate::clock::{dur, to_db};
use crate::config::OidcProvider;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::oidc_flows;

/// What an attempt is for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Purpose {
    /// Signing in with a linked e-ID (anonymous start).
    SignIn,
    /// Linking an e-ID to the signed-in account (started after a step-up).
    Link,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::SignIn => "sign_in",
            Purpose::Link => "link",
        }
    }

    pub fn from_code(value: &str) -> Option<Purpose> {
        match value {
            "sign_in" => Some(Purpose::SignIn),
            "link" => Some(Purpose::Link),
            _ => None,
        }
    }
}

crate::text_enum_sql!(Purpose);

/// One attempt, as stored.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_flows, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct FlowRow {
    state_hash: String,
    purpose: Purpose,
    user_id: Option<String>,
    session_id: Option<String>,
    issuer: String,
    nonce: String,
    pkce_verifier: String,
    created_at: chrono::NaiveDateTime,
    expires_at: chrono::NaiveDateTime,
    used_at: Option<chrono::NaiveDateTime>,
}

/// A taken attempt: what finishing it needs.
pub struct Taken {
    pub issuer: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Whose attempt a link is: the account and the session that stepped up.
pub struct Owner<'a> {
    pub user_id: &'a str,
    pub session_id: &'a str,
}

/// Stores a started attempt; returns when it expires. Attempts that expired an hour ago
/// or more are deleted on the way, so the table stays small without a separate sweep.
pub fn save(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    p: &OidcProvider,
    purpose: Purpose,
    owner: Option<Owner<'_>>,
    started: &Started,
) -> Result<DateTime<Utc>, AppError> {
    diesel::delete(
        oidc_flows::table
            .filter(oidc_flows::expires_at.lt(to_db(now - chrono::Duration::hours(1)))),
    )
    .execute(conn)?;
    let expires_at = now + dur(p.flow_ttl);
    diesel::insert_into(oidc_flows::table)
        .values(FlowRow {
            state_hash: sha256_hex(&started.state),
            purpose,
            user_id: owner.as_ref().map(|o| o.user_id.to_string()),
            session_id: owner.as_ref().map(|o| o.session_id.to_string()),
            issuer: p.issuer.clone(),
            nonce: started.nonce.clone(),
            pkce_verifier: started.pkce_verifier.clone(),
            created_at: to_db(now),
            expires_at: to_db(expires_at),
            used_at: None,
        })
        .execute(conn)?;
    Ok(expires_at)
}

/// Takes the attempt `state` names, once. A link attempt must be the caller's, from
/// the session that started it: another's (or an unknown one) is 404, so a stolen
/// `state` cannot link someone else's e-ID to the thief's account. Unknown sign-in
/// attempts, and used or expired ones of either kind, are refused.
pub fn take(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    state: &str,
    purpose: Purpose,
    owner: Option<Owner<'_>>,
) -> Result<Taken, AppError> {
    let hash = sha256_hex(state.trim());
    let row: Option<FlowRow> = oidc_flows::table
        .find(&hash)
        .filter(oidc_flows::purpose.eq(purpose))
        .select(FlowRow::as_select())
        .first(conn)
        .optional()?;
    let mine = |r: &FlowRow| match &owner {
        None => r.user_id.is_none(),
        Some(o) => {
            r.user_id.as_deref() == Some(o.user_id) && r.session_id.as_deref() == Some(o.session_id)
        }
    };
    let row = match row {
        Some(r) if mine(&r) => r,
        _ if owner.is_some() => return Err(AppError::NotFound),
        _ => return Err(AppError::OidcRefused("unknown state".into())),
    };
    let n = diesel::update(
        oidc_flows::table
            .find(&hash)
            .filter(oidc_flows::used_at.is_null())
            .filter(oidc_flows::expires_at.gt(to_db(now))),
    )
    .set(oidc_flows::used_at.eq(to_db(now)))
    .execute(conn)?;
    if n != 1 {
        tracing::warn!("OIDC attempt replayed or expired");
        return Err(AppError::OidcRefused("used or expired state".into()));
    }
    Ok(Taken {
        issuer: row.issuer,
        nonce: row.nonce,
        pkce_verifier: row.pkce_verifier,
    })
}
