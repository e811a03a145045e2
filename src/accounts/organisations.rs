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
use crate::ids::OrganisationId;
use crate::schema::organisations;

/// Kind of organisation: region, care provider (vårdgivare) or unit (enhet/klinik).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
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
    /// A stored code; `None` for one this build does not know.
    pub fn from_code(s: &str) -> Option<OrgKind> {
        match s {
            "region" => Some(OrgKind::Region),
            "care_provider" => Some(OrgKind::CareProvider),
            "unit" => Some(OrgKind::Unit),
            _ => None,
        }
    }
}

crate::text_enum_sql!(OrgKind);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Organisation {
    pub id: String,
    pub parent_id: Option<String>,
    pub kind: OrgKind,
    pub name: String,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl Organisation {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

/// An `organisations` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = organisations, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct OrgRow {
    id: OrganisationId,
    parent_id: Option<OrganisationId>,
    kind: OrgKind,
    name: String,
    version: i32,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

impl From<OrgRow> for Organisation {
    fn from(r: OrgRow) -> Self {
        Organisation {
            id: r.id.into_inner(),
            parent_id: r.parent_id.map(OrganisationId::into_inner),
            kind: r.kind,
            name: r.name,
            version: r.version,
            created_at: from_db(r.created_at),
            updated_at: from_db(r.updated_at),
        }
    }
}

pub fn get_org(conn: &mut DbConn, id: &str) -> Result<Organisation, AppError> {
    let row = organisations::table
        .find(id)
        .select(OrgRow::as_select())
        .first(conn)?;
    Ok(Organisation::from(row))
}

pub fn list_orgs(
    conn: &mut DbConn,
    kind: Option<OrgKind>,
    parent_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Organisation>, AppError> {
    let mut q = organisations::table
        .select(OrgRow::as_select())
        .into_boxed();
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
    Ok(rows.into_iter().map(Organisation::from).collect())
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
            Some(p) => me.has_role_over(conn, Role::Administrator, &OrganisationId::from(&p.id))?,
        };
        Principal::require(allowed)?;
    }
    let id = id.unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(organisations::table)
        .values((
            organisations::id.eq(&id),
            organisations::parent_id.eq(parent_id),
            organisations::kind.eq(kind),
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
    Principal::require(me.has_role_over(conn, Role::Administrator, &OrganisationId::from(id))?)?;
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
