//! Activity mappings: an xAPI activity id to an activity kind, title and delmål.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::principal::{Principal, Role};
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::ids::OrganisationId;
use crate::integrations::{audit_write, require_admin_over, visible_orgs, JsonText};
use crate::portfolio::activities::ActivityKind;
use crate::schema::{delmal, xapi_activity_mappings};

use super::*;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityMapping {
    pub id: String,
    pub organisation_id: String,
    /// The xAPI activity id (`object.id` of statements).
    #[schema(example = "https://lms.regionstockholm.se/courses/forsakringsmedicin")]
    pub xapi_activity_id: String,
    pub kind: ActivityKind,
    #[schema(example = "Försäkringsmedicinsk dag")]
    pub title: String,
    #[schema(example = json!(["BT16"]))]
    pub delmal: Vec<String>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActivityMapping {
    pub id: Option<Uuid>,
    /// Statements about trainees enrolled at this organisation or below use the mapping.
    pub organisation_id: String,
    #[schema(example = "https://lms.regionstockholm.se/courses/forsakringsmedicin")]
    pub xapi_activity_id: String,
    pub kind: ActivityKind,
    #[schema(example = "Försäkringsmedicinsk dag")]
    pub title: String,
    /// Delmål codes; only those of each trainee's regulation are linked.
    #[serde(default)]
    #[schema(example = json!(["BT16"]))]
    pub delmal: Vec<String>,
}

/// A mapping as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = xapi_activity_mappings, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct MappingRecord {
    id: String,
    organisation_id: String,
    activity_iri: String,
    kind: String,
    title: String,
    #[diesel(deserialize_as = String)]
    delmal: JsonText,
    created_by: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    version: i32,
}

impl TryFrom<MappingRecord> for ActivityMapping {
    type Error = AppError;
    /// An activity kind or delmål list this build cannot read is an error, never a
    /// default.
    fn try_from(r: MappingRecord) -> Result<ActivityMapping, AppError> {
        let unreadable = |what: &str, e: serde_json::Error| {
            AppError::unreadable("activity mapping", &r.id, what, e)
        };
        Ok(ActivityMapping {
            kind: serde_json::from_value(Value::String(r.kind.clone()))
                .map_err(|e| unreadable("kind", e))?,
            delmal: serde_json::from_value(r.delmal.0.clone())
                .map_err(|e| unreadable("delmal", e))?,
            id: r.id,
            organisation_id: r.organisation_id,
            xapi_activity_id: r.activity_iri,
            title: r.title,
            created_by: r.created_by,
            created_at: from_db(r.created_at),
            updated_at: from_db(r.updated_at),
            version: r.version,
        })
    }
}

pub fn create_mapping(
    conn: &mut DbConn,
    ctx: &Ctx,
    n: NewActivityMapping,
) -> Result<ActivityMapping, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let mut errors = Vec::new();
    if !is_iri(&n.xapi_activity_id) || n.xapi_activity_id.len() > 2000 {
        errors.push(FieldError::new("xapi_activity_id", "an IRI"));
    }
    let title = n.title.trim().to_string();
    if title.is_empty() || title.chars().count() > 300 {
        errors.push(FieldError::new("title", "1 to 300 characters"));
    }
    let mut codes = n.delmal.clone();
    codes.sort();
    codes.dedup();
    let known: Vec<String> = delmal::table
        .filter(delmal::code.eq_any(&codes))
        .select(delmal::code)
        .distinct()
        .load(conn)?;
    for (i, c) in n.delmal.iter().enumerate() {
        if !known.contains(c) {
            errors.push(FieldError::new(
                format!("delmal[{i}]"),
                format!("{c} is no delmål of any regulation"),
            ));
        }
    }
    if crate::accounts::service::get_org(conn, &n.organisation_id).is_err() {
        errors.push(FieldError::new("organisation_id", "no such organisation"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    require_admin_over(conn, me, &OrganisationId::from(&n.organisation_id))?;
    let exists: i64 = xapi_activity_mappings::table
        .filter(xapi_activity_mappings::organisation_id.eq(&n.organisation_id))
        .filter(xapi_activity_mappings::activity_iri.eq(&n.xapi_activity_id))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(AppError::Conflict(
            "this xAPI activity is already mapped for the organisation; delete that mapping first"
                .into(),
        ));
    }
    let id =
        n.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    let kind = serde_json::to_value(n.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "other".into());
    diesel::insert_into(xapi_activity_mappings::table)
        .values((
            xapi_activity_mappings::id.eq(&id),
            xapi_activity_mappings::organisation_id.eq(&n.organisation_id),
            xapi_activity_mappings::activity_iri.eq(&n.xapi_activity_id),
            xapi_activity_mappings::kind.eq(kind),
            xapi_activity_mappings::title.eq(&title),
            xapi_activity_mappings::delmal.eq(json!(n.delmal).to_string()),
            xapi_activity_mappings::created_by.eq(&me.user_id),
            xapi_activity_mappings::version.eq(1),
            xapi_activity_mappings::created_at.eq(to_db(now)),
            xapi_activity_mappings::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let m = get_mapping(conn, &id)?;
    audit_write(
        conn,
        now,
        me,
        "created",
        "xapi_activity_mapping",
        &id,
        &json!(m),
    )?;
    // Statements waiting for this mapping become activities now: received by clients
    // of the mapping's organisation, above it (a region's platform, a unit's trainee)
    // or below it.
    let mut orgs =
        crate::auth::principal::org_chain(conn, &OrganisationId::from(&n.organisation_id))?;
    orgs.extend(crate::auth::principal::org_subtrees(
        conn,
        std::slice::from_ref(&n.organisation_id),
    )?);
    retry_unmatched(
        conn,
        ctx,
        &orgs,
        "unmapped_activity",
        Some(&n.xapi_activity_id),
        None,
    )?;
    Ok(m)
}

fn get_mapping(conn: &mut DbConn, id: &str) -> Result<ActivityMapping, AppError> {
    let r: MappingRecord = xapi_activity_mappings::table
        .find(id)
        .select(MappingRecord::as_select())
        .first(conn)?;
    r.try_into()
}

pub fn list_mappings(
    conn: &mut DbConn,
    me: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ActivityMapping>, AppError> {
    let orgs = visible_orgs(conn, me)?;
    let mut q = xapi_activity_mappings::table
        .filter(xapi_activity_mappings::organisation_id.eq_any(orgs))
        .select(MappingRecord::as_select())
        .order(xapi_activity_mappings::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(xapi_activity_mappings::id.gt(a.to_string()));
    }
    q.load::<MappingRecord>(conn)?
        .into_iter()
        .map(ActivityMapping::try_from)
        .collect()
}

pub fn delete_mapping(conn: &mut DbConn, ctx: &Ctx, id: &str) -> Result<(), AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let m = get_mapping(conn, id)?;
    if me.is_client()
        || !me.has_role_over(
            conn,
            Role::Administrator,
            &OrganisationId::from(&m.organisation_id),
        )?
    {
        return Err(AppError::NotFound);
    }
    diesel::delete(xapi_activity_mappings::table.find(id)).execute(conn)?;
    audit_write(
        conn,
        now,
        me,
        "deleted",
        "xapi_activity_mapping",
        id,
        &json!(m),
    )
}
