//! Organisations: region -> care provider (vårdgivare) -> unit (enhet/klinik).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::principal::{Principal, Role};
use crate::auth::validate::validate_name;
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::http::etag;
use crate::schema::organisations;

/// Kind of organisation: region, care provider (vårdgivare) or unit (enhet/klinik).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    Region,
    CareProvider,
    Unit,
}

impl OrgKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Region => "region",
            OrgKind::CareProvider => "care_provider",
            OrgKind::Unit => "unit",
        }
    }
    fn parse(s: &str) -> OrgKind {
        match s {
            "region" => OrgKind::Region,
            "care_provider" => OrgKind::CareProvider,
            _ => OrgKind::Unit,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Organisation {
    pub id: String,
    pub parent_id: Option<String>,
    pub kind: OrgKind,
    pub name: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Organisation {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

type OrgRow = (
    String,
    Option<String>,
    String,
    String,
    i32,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
);

fn org_from(r: OrgRow) -> Organisation {
    Organisation {
        id: r.0,
        parent_id: r.1,
        kind: OrgKind::parse(&r.2),
        name: r.3,
        version: r.4,
        created_at: from_db(r.5),
        updated_at: from_db(r.6),
    }
}

const ORG_COLUMNS: (
    organisations::id,
    organisations::parent_id,
    organisations::kind,
    organisations::name,
    organisations::version,
    organisations::created_at,
    organisations::updated_at,
) = (
    organisations::id,
    organisations::parent_id,
    organisations::kind,
    organisations::name,
    organisations::version,
    organisations::created_at,
    organisations::updated_at,
);

pub fn get_org(conn: &mut DbConn, id: &str) -> Result<Organisation, AppError> {
    let row: OrgRow = organisations::table
        .find(id)
        .select(ORG_COLUMNS)
        .first(conn)?;
    Ok(org_from(row))
}

pub fn list_orgs(
    conn: &mut DbConn,
    kind: Option<OrgKind>,
    parent_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Organisation>, AppError> {
    let mut q = organisations::table.select(ORG_COLUMNS).into_boxed();
    if let Some(k) = kind {
        q = q.filter(organisations::kind.eq(k.as_str()));
    }
    if let Some(p) = parent_id {
        q = q.filter(organisations::parent_id.eq(p.to_string()));
    }
    if let Some(a) = after {
        q = q.filter(organisations::id.gt(a.to_string()));
    }
    let rows: Vec<OrgRow> = q.order(organisations::id).limit(limit + 1).load(conn)?;
    Ok(rows.into_iter().map(org_from).collect())
}

/// Creates an organisation. The tree is region -> care provider -> unit (units may nest).
pub fn create_org(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: Option<&Principal>,
    id: Option<String>,
    kind: OrgKind,
    name: &str,
    parent_id: Option<&str>,
) -> Result<Organisation, AppError> {
    let name = validate_name("name", name)?;
    let parent = match parent_id {
        None => None,
        Some(p) => Some(
            get_org(conn, p)
                .map_err(|_| AppError::validation("parent_id", "no such organisation"))?,
        ),
    };
    let fits = matches!(
        (kind, parent.as_ref().map(|p| p.kind)),
        (OrgKind::Region, None)
            | (OrgKind::CareProvider, Some(OrgKind::Region))
            | (OrgKind::Unit, Some(OrgKind::CareProvider | OrgKind::Unit))
    );
    if !fits {
        return Err(AppError::validation(
            "parent_id",
            "a region has no parent; a care provider belongs to a region; a unit to a care provider or unit",
        ));
    }
    if let Some(me) = me {
        let allowed = match &parent {
            // New regions: only administrators of a region run the platform (not those
            // of a care provider or unit, whose reach ends at their subtree).
            None => administers_a_region(conn, me)?,
            Some(p) => me.has_role_over(conn, Role::Administrator, &p.id)?,
        };
        Principal::require(allowed)?;
    }
    let id = id.unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(organisations::table)
        .values((
            organisations::id.eq(&id),
            organisations::parent_id.eq(parent_id),
            organisations::kind.eq(kind.as_str()),
            organisations::name.eq(&name),
            organisations::version.eq(1),
            organisations::created_at.eq(to_db(now)),
            organisations::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    get_org(conn, &id)
}

/// Does `me` hold the administrator role at an organisation that is a region?
fn administers_a_region(conn: &mut DbConn, me: &Principal) -> Result<bool, AppError> {
    let orgs = me.orgs_with(&[Role::Administrator]);
    if orgs.is_empty() {
        return Ok(false);
    }
    let regions: i64 = organisations::table
        .filter(organisations::id.eq_any(&orgs))
        .filter(organisations::kind.eq(OrgKind::Region.as_str()))
        .count()
        .get_result(conn)?;
    Ok(regions > 0)
}

pub fn rename_org(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    name: &str,
) -> Result<Organisation, AppError> {
    let me = &ctx.caller;
    let now = ctx.now;
    let current = get_org(conn, id)?;
    Principal::require(me.has_role_over(conn, Role::Administrator, id)?)?;
    if_match(&current.etag())?;
    let name = validate_name("name", name)?;
    diesel::update(organisations::table.find(id))
        .set((
            organisations::name.eq(name),
            organisations::version.eq(current.version + 1),
            organisations::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    get_org(conn, id)
}
