//! Placements (placeringar, randningar): where and when the trainee serves, each with its
//! placement supervisor (tjänstgöringshandledare).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::assignments::{add_assignment, user_has_role, AssignmentInput};
use super::enums::AssignmentRole;
use super::history::{record_change, touch, Changed};
use super::loaders::template_of;
use crate::auth::principal::{Principal, Role};
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{Day, EnrolmentId, OrganisationId, PlacementId, UserId};
use crate::schema::{assignments, placements};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Placement {
    pub id: String,
    /// Key of a placement type of the template, e.g. `allmanmedicin`.
    #[schema(example = "allmanmedicin")]
    pub placement_type: String,
    #[schema(example = "2026-09-01")]
    pub start_date: NaiveDate,
    /// Inclusive.
    #[schema(example = "2026-12-31")]
    pub end_date: NaiveDate,
    /// Care provider or unit where it is served.
    pub unit_id: Option<String>,
    /// The placement supervisor assigned today, if any.
    pub supervisor_id: Option<String>,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

/// A `placements` row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = placements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PlacementRow {
    id: PlacementId,
    placement_type: String,
    start_date: Day,
    end_date: Day,
    unit_id: Option<OrganisationId>,
    version: i32,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

pub(crate) fn load_placements(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
) -> Result<Vec<Placement>, AppError> {
    let rows: Vec<PlacementRow> = placements::table
        .filter(placements::enrolment_id.eq(enrolment_id))
        .filter(placements::removed_at.is_null())
        .order((placements::start_date, placements::id))
        .select(PlacementRow::as_select())
        .load(conn)?;
    let today = today.to_string();
    let supervisors: Vec<(Option<PlacementId>, UserId)> = assignments::table
        .filter(assignments::enrolment_id.eq(enrolment_id))
        .filter(assignments::role.eq(AssignmentRole::PlacementSupervisor))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(&today)),
        )
        .order(assignments::valid_from)
        .select((assignments::placement_id, assignments::user_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Placement {
            supervisor_id: supervisors
                .iter()
                .find(|(p, _)| p.as_ref() == Some(&r.id))
                .map(|(_, u)| u.to_string()),
            id: r.id.into_inner(),
            placement_type: r.placement_type,
            start_date: r.start_date.date(),
            end_date: r.end_date.date(),
            unit_id: r.unit_id.map(OrganisationId::into_inner),
            version: r.version,
            created_at: from_db(r.created_at),
            updated_at: from_db(r.updated_at),
        })
        .collect())
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementInput {
    pub id: Option<uuid::Uuid>,
    #[schema(example = "akut")]
    pub placement_type: String,
    #[schema(example = "2027-01-01")]
    pub start_date: NaiveDate,
    #[schema(example = "2027-04-30")]
    pub end_date: NaiveDate,
    pub unit_id: Option<String>,
    /// The placement supervisor (tjänstgöringshandledare), assigned for the placement's dates.
    pub supervisor_id: Option<String>,
}

pub fn add_placement(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    p: PlacementInput,
) -> Result<Placement, AppError> {
    let today = crate::clock::day_of(now);
    access::require(conn, me, enrolment_id, today, Access::Manage)?;
    let template = template_of(conn, enrolment_id)?;
    let mut errors = Vec::new();
    if template.placement_type(&p.placement_type).is_none() {
        let keys: Vec<&str> = template
            .content
            .placement_types
            .iter()
            .map(|t| t.key.as_str())
            .collect();
        errors.push(FieldError::new(
            "placement_type",
            format!("one of the template's types: {}", keys.join(", ")),
        ));
    }
    if p.end_date < p.start_date {
        errors.push(FieldError::new("end_date", "must not be before start_date"));
    }
    if let Some(unit) = &p.unit_id {
        if crate::accounts::service::get_org(conn, unit).is_err() {
            errors.push(FieldError::new("unit_id", "no such organisation"));
        }
    }
    if let Some(s) = &p.supervisor_id {
        if !user_has_role(conn, &UserId::from(s), Role::Supervisor)? {
            errors.push(FieldError::new(
                "supervisor_id",
                "not a user with the supervisor role",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id =
        p.id.map(|u| PlacementId::new(u.to_string()))
            .unwrap_or_else(PlacementId::random);
    diesel::insert_into(placements::table)
        .values((
            placements::id.eq(&id),
            placements::enrolment_id.eq(enrolment_id),
            placements::placement_type.eq(&p.placement_type),
            placements::start_date.eq(p.start_date.to_string()),
            placements::end_date.eq(p.end_date.to_string()),
            placements::unit_id.eq(&p.unit_id),
            placements::version.eq(1),
            placements::created_at.eq(to_db(now)),
            placements::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "placement", &id),
        json!({
            "placement_type": p.placement_type, "start_date": p.start_date, "end_date": p.end_date, "unit_id": p.unit_id,
        }),
    )?;
    if let Some(s) = p.supervisor_id {
        add_assignment(
            conn,
            now,
            me,
            enrolment_id,
            AssignmentInput {
                id: None,
                user_id: s,
                role: AssignmentRole::PlacementSupervisor,
                placement_id: Some(id.to_string()),
                valid_from: Some(p.start_date.min(today)),
                valid_to: Some(p.end_date + Duration::days(1)),
            },
        )?;
    }
    find_placement(conn, enrolment_id, &id, today)
}

pub(crate) fn find_placement(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    id: &PlacementId,
    today: NaiveDate,
) -> Result<Placement, AppError> {
    load_placements(conn, enrolment_id, today)?
        .into_iter()
        .find(|p| *id == p.id)
        .ok_or(AppError::NotFound)
}

pub fn enrolment_of_placement(
    conn: &mut DbConn,
    placement_id: &PlacementId,
) -> Result<EnrolmentId, AppError> {
    Ok(placements::table
        .find(placement_id)
        .filter(placements::removed_at.is_null())
        .select(placements::enrolment_id)
        .first(conn)?)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementPatch {
    pub placement_type: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub unit_id: Option<String>,
}

/// Changes a placement's dates, type or unit; the earlier state stays in the history.
pub fn update_placement(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &PlacementId,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    patch: PlacementPatch,
) -> Result<Placement, AppError> {
    let today = crate::clock::day_of(now);
    let enrolment_id = enrolment_of_placement(conn, id)?;
    access::require(conn, me, &enrolment_id, today, Access::Manage)?;
    super::imported::refuse_if_transferred(conn, id)?;
    let current = find_placement(conn, &enrolment_id, id, today)?;
    if_match(&etag(current.version, current.updated_at))?;
    let template = template_of(conn, &enrolment_id)?;
    let placement_type = patch
        .placement_type
        .unwrap_or(current.placement_type.clone());
    let start = patch.start_date.unwrap_or(current.start_date);
    let end = patch.end_date.unwrap_or(current.end_date);
    let unit = patch.unit_id.or(current.unit_id.clone());
    let mut errors = Vec::new();
    if template.placement_type(&placement_type).is_none() {
        errors.push(FieldError::new(
            "placement_type",
            "not a placement type of the template",
        ));
    }
    if end < start {
        errors.push(FieldError::new("end_date", "must not be before start_date"));
    }
    if let Some(u) = &unit {
        if crate::accounts::service::get_org(conn, u).is_err() {
            errors.push(FieldError::new("unit_id", "no such organisation"));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    diesel::update(placements::table.find(id))
        .set((
            placements::placement_type.eq(&placement_type),
            placements::start_date.eq(start.to_string()),
            placements::end_date.eq(end.to_string()),
            placements::unit_id.eq(&unit),
            placements::version.eq(current.version + 1),
            placements::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    // The placement supervisor's assignment follows a moved end date.
    if end != current.end_date {
        diesel::update(
            assignments::table
                .filter(assignments::placement_id.eq(id))
                .filter(
                    assignments::valid_to.eq((current.end_date + Duration::days(1)).to_string()),
                ),
        )
        .set((
            assignments::valid_to.eq((end + Duration::days(1)).to_string()),
            assignments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    }
    touch(conn, now, &enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &enrolment_id,
        Changed("updated", "placement", id),
        json!({
            "placement_type": placement_type, "start_date": start, "end_date": end, "unit_id": unit,
            "previous": {"placement_type": current.placement_type, "start_date": current.start_date, "end_date": current.end_date, "unit_id": current.unit_id},
        }),
    )?;
    find_placement(conn, &enrolment_id, id, today)
}

pub fn remove_placement(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &PlacementId,
) -> Result<(), AppError> {
    let today = crate::clock::day_of(now);
    let enrolment_id = enrolment_of_placement(conn, id)?;
    access::require(conn, me, &enrolment_id, today, Access::Manage)?;
    super::imported::refuse_if_transferred(conn, id)?;
    let current = find_placement(conn, &enrolment_id, id, today)?;
    diesel::update(placements::table.find(id))
        .set(placements::removed_at.eq(to_db(now)))
        .execute(conn)?;
    end_placement_assignments(conn, now, me, &enrolment_id, id, today)?;
    touch(conn, now, &enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &enrolment_id,
        Changed("removed", "placement", id),
        json!({
            "placement_type": current.placement_type, "start_date": current.start_date, "end_date": current.end_date,
        }),
    )
}

/// A removed placement has no supervisor any more: open assignments end today (or never
/// start, if they had not yet).
pub(crate) fn end_placement_assignments(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    placement_id: &PlacementId,
    today: NaiveDate,
) -> Result<(), AppError> {
    let open: Vec<(String, Day)> = assignments::table
        .filter(assignments::placement_id.eq(placement_id))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(today.to_string())),
        )
        .select((assignments::id, assignments::valid_from))
        .load(conn)?;
    for (aid, from) in open {
        let end = from.date().max(today);
        diesel::update(assignments::table.find(&aid))
            .set((
                assignments::valid_to.eq(end.to_string()),
                assignments::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        record_change(
            conn,
            now,
            Some(&me.user_id),
            enrolment_id,
            Changed("ended", "assignment", &aid),
            json!({"valid_to": end}),
        )?;
    }
    Ok(())
}
