//! What the integrations' subsystems share: audit entries, who administers what,
//! cursors and list parameters.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::{self, Event};
use crate::auth::principal::{org_subtrees, Principal, Role};
use crate::db::DbConn;
use crate::error::AppError;
use crate::http::PageParams;
use crate::ids::OrganisationId;

pub(crate) const PROBLEM: &str = "application/problem+json";

/// Appends an audit entry for a write by `me` (a person, or `client:<id>` for API clients).
///
/// `entity_id` stays a `&str`: the entity is of any kind the integrations write (API
/// clients, webhook subscriptions and deliveries, xAPI statements, links and mappings,
/// imported invitations), named by `entity`, and the audit log stores it as text.
pub(crate) fn audit_write(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    action: &str,
    entity: &str,
    entity_id: &str,
    data: &serde_json::Value,
) -> Result<(), AppError> {
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client: me.client.as_ref().map(|c| c.name.as_str()),
            action,
            entity,
            entity_id,
            enrolment_id: None,
            data,
        },
    )
}

/// A person administering `org` (or one of its ancestors).
pub(crate) fn require_admin_over(
    conn: &mut DbConn,
    me: &Principal,
    org: &OrganisationId,
) -> Result<(), AppError> {
    me.require_person()?;
    Principal::require(me.has_role_over(conn, Role::Administrator, org)?)
}

/// Organisations whose integrations the caller manages: their administrator subtrees.
pub(crate) fn visible_orgs(conn: &mut DbConn, me: &Principal) -> Result<Vec<String>, AppError> {
    if me.is_client() {
        return Ok(Vec::new());
    }
    org_subtrees(conn, &me.orgs_with(&[Role::Administrator]))
}

/// A cursor `<RFC 3339 time>|<id>`.
pub(crate) fn parse_time_cursor(c: &str) -> Result<(DateTime<Utc>, String), AppError> {
    let bad = || AppError::validation("cursor", "is not a cursor from this API");
    let (t, id) = c.split_once('|').ok_or_else(bad)?;
    let t = DateTime::parse_from_rfc3339(t).map_err(|_| bad())?;
    Ok((t.with_timezone(&Utc), id.to_string()))
}

/// Integrations are managed by administrators (people).
pub(crate) fn require_admin(me: &Principal) -> Result<(), AppError> {
    me.require_person()?;
    Principal::require(me.has_role(Role::Administrator))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl ListParams {
    pub(crate) fn page(self) -> Result<(i64, Option<String>), AppError> {
        let p = PageParams {
            limit: self.limit,
            cursor: self.cursor,
        };
        Ok((p.limit()?, p.after()?))
    }
}

/// A JSON document stored as text (a delivery's body, a received statement); stored text that is not JSON is
/// an error, never `null`.
#[derive(Debug, Clone)]
pub struct JsonText(pub serde_json::Value);

impl TryFrom<String> for JsonText {
    type Error = serde_json::Error;
    fn try_from(s: String) -> Result<JsonText, serde_json::Error> {
        serde_json::from_str(&s).map(JsonText)
    }
}
