//! Assignments: who supervises, directs or assesses the trainee, from when to when; the
//! rules that keep one main supervisor at a time and an external assessor external.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::enums::AssignmentRole;
use super::history::{record_change, touch, Changed};
use super::placements::enrolment_of_placement;
use crate::auth::principal::{load_roles, Principal, Role};
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::{AppError, FieldError};
use crate::ids::{AssignmentId, Day, EnrolmentId, PlacementId, UserId};
use crate::schema::{assignments, enrolments, users};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Assignment {
    pub id: String,
    pub user_id: String,
    pub role: AssignmentRole,
    pub placement_id: Option<String>,
    #[schema(example = "2026-09-01")]
    pub valid_from: NaiveDate,
    /// Exclusive: the first day the assignment no longer holds. Null while open.
    #[schema(example = "2027-09-01")]
    pub valid_to: Option<NaiveDate>,
    /// Holds today.
    pub active: bool,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
    /// Only in the answer to assigning an external assessor: the independence check
    /// (involvement found: none, or the assignment is refused; qualifications recorded,
    /// with warnings for what is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub independence: Option<super::independence::Independence>,
}

/// An `assignments` row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = assignments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct AssignmentRow {
    id: AssignmentId,
    user_id: UserId,
    role: AssignmentRole,
    placement_id: Option<PlacementId>,
    valid_from: Day,
    valid_to: Option<Day>,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

impl AssignmentRow {
    fn into_assignment(self, today: NaiveDate) -> Assignment {
        let valid_from = self.valid_from.date();
        let valid_to = self.valid_to.map(Day::date);
        // Assignments are not edited, only ended: a changed one is at its second version.
        let changed = self.updated_at != self.created_at;
        Assignment {
            active: valid_from <= today && valid_to.is_none_or(|t| t > today),
            id: self.id.into_inner(),
            user_id: self.user_id.into_inner(),
            role: self.role,
            placement_id: self.placement_id.map(PlacementId::into_inner),
            valid_from,
            valid_to,
            version: if changed { 2 } else { 1 },
            created_at: from_db(self.created_at),
            updated_at: from_db(self.updated_at),
            independence: None,
        }
    }
}

pub(crate) fn load_assignments(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
) -> Result<Vec<Assignment>, AppError> {
    let rows: Vec<AssignmentRow> = assignments::table
        .filter(assignments::enrolment_id.eq(enrolment_id))
        .order((assignments::valid_from, assignments::created_at))
        .select(AssignmentRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(|r| r.into_assignment(today)).collect())
}

pub(crate) fn user_has_role(
    conn: &mut DbConn,
    user_id: &UserId,
    role: Role,
) -> Result<bool, AppError> {
    let exists: i64 = users::table.find(user_id).count().get_result(conn)?;
    if exists == 0 {
        return Ok(false);
    }
    Ok(load_roles(conn, user_id)?.iter().any(|g| g.role == role))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentInput {
    pub id: Option<uuid::Uuid>,
    pub user_id: String,
    pub role: AssignmentRole,
    /// For placement supervisors: the placement.
    pub placement_id: Option<String>,
    /// Default: today.
    pub valid_from: Option<NaiveDate>,
    /// Exclusive end; default open.
    pub valid_to: Option<NaiveDate>,
}

/// Assigns someone to the trainee. A new main supervisor (or placement supervisor of the
/// same placement) ends the previous one's assignment the day the new one starts.
pub fn add_assignment(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    a: AssignmentInput,
) -> Result<Assignment, AppError> {
    let today = crate::clock::day_of(now);
    access::require(conn, me, enrolment_id, today, Access::Manage)?;
    let from = a.valid_from.unwrap_or(today);
    let user_id = UserId::from(&a.user_id);
    let mut errors = Vec::new();
    if !user_has_role(conn, &user_id, a.role.account_role())? {
        errors.push(FieldError::new(
            "user_id",
            format!(
                "not a user with the {} role",
                a.role.account_role().as_str()
            ),
        ));
    }
    if a.valid_to.is_some_and(|t| t <= from) {
        errors.push(FieldError::new("valid_to", "must be after valid_from"));
    }
    match (a.role, &a.placement_id) {
        (AssignmentRole::PlacementSupervisor, None) => errors.push(FieldError::new(
            "placement_id",
            "a placement supervisor is assigned to a placement",
        )),
        (AssignmentRole::PlacementSupervisor, Some(p))
            if enrolment_of_placement(conn, &PlacementId::from(p))
                .ok()
                .as_ref()
                != Some(enrolment_id) =>
        {
            errors.push(FieldError::new(
                "placement_id",
                "not a placement of this enrolment",
            ));
        }
        (AssignmentRole::PlacementSupervisor, Some(_)) => {}
        (_, Some(_)) => errors.push(FieldError::new(
            "placement_id",
            "only placement supervisors belong to a placement",
        )),
        _ => {}
    }
    if a.role != AssignmentRole::ExternalAssessor
        && is_external_assessor(conn, enrolment_id, &user_id, today)?
    {
        errors.push(FieldError::new(
            "user_id",
            "this person is the trainee's external assessor and can take no other part in the training",
        ));
    }
    if a.role == AssignmentRole::ExternalAssessor {
        let trainee: UserId = enrolments::table
            .find(enrolment_id)
            .select(enrolments::trainee_id)
            .first(conn)?;
        if user_id == trainee || was_involved(conn, enrolment_id, &user_id)? {
            errors.push(FieldError::new(
                "user_id",
                "an external assessor must never have been involved in this trainee's training",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    // One main supervisor at a time, one placement supervisor per placement.
    if matches!(
        a.role,
        AssignmentRole::MainSupervisor | AssignmentRole::PlacementSupervisor
    ) {
        let mut open = assignments::table
            .filter(assignments::enrolment_id.eq(enrolment_id))
            .filter(assignments::role.eq(a.role))
            .filter(
                assignments::valid_to
                    .is_null()
                    .or(assignments::valid_to.gt(from.to_string())),
            )
            .into_boxed();
        if let Some(p) = &a.placement_id {
            open = open.filter(assignments::placement_id.eq(p.clone()));
        }
        let previous: Vec<(AssignmentId, Day)> = open
            .select((assignments::id, assignments::valid_from))
            .load(conn)?;
        for (pid, pfrom) in previous {
            // An assignment that had not started yet simply never holds.
            let end = pfrom.date().max(from);
            diesel::update(assignments::table.find(&pid))
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
                Changed("ended", "assignment", &pid),
                json!({"valid_to": end}),
            )?;
        }
    }
    let id =
        a.id.map(|u| AssignmentId::new(u.to_string()))
            .unwrap_or_else(AssignmentId::random);
    diesel::insert_into(assignments::table)
        .values((
            assignments::id.eq(&id),
            assignments::enrolment_id.eq(enrolment_id),
            assignments::user_id.eq(&user_id),
            assignments::role.eq(a.role),
            assignments::placement_id.eq(&a.placement_id),
            assignments::valid_from.eq(from.to_string()),
            assignments::valid_to.eq(a.valid_to.map(|t| t.to_string())),
            assignments::created_by.eq(&me.user_id),
            assignments::created_at.eq(to_db(now)),
            assignments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "assignment", &id),
        json!({
            "user_id": a.user_id, "role": a.role, "placement_id": a.placement_id, "valid_from": from, "valid_to": a.valid_to,
        }),
    )?;
    get_assignment(conn, &id, today)
}

/// Did the user ever take part in this trainee's training (any enrolment)? The facts
/// are `independence::involvement`.
pub(crate) fn was_involved(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    user_id: &UserId,
) -> Result<bool, AppError> {
    Ok(!super::independence::involvement(conn, enrolment_id, user_id)?.is_empty())
}

pub(crate) fn trainee_enrolments(
    conn: &mut DbConn,
    trainee: &UserId,
) -> Result<Vec<EnrolmentId>, AppError> {
    Ok(enrolments::table
        .filter(enrolments::trainee_id.eq(trainee))
        .select(enrolments::id)
        .load(conn)?)
}

/// Is the user this trainee's external assessor (now or later)? Then they may take no
/// other part in the training, or they would no longer be external.
pub(crate) fn is_external_assessor(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    user_id: &UserId,
    today: NaiveDate,
) -> Result<bool, AppError> {
    let trainee: UserId = enrolments::table
        .find(enrolment_id)
        .select(enrolments::trainee_id)
        .first(conn)?;
    let n: i64 = assignments::table
        .filter(assignments::enrolment_id.eq_any(trainee_enrolments(conn, &trainee)?))
        .filter(assignments::user_id.eq(user_id))
        .filter(assignments::role.eq(AssignmentRole::ExternalAssessor))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(today.to_string())),
        )
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn get_assignment(
    conn: &mut DbConn,
    id: &AssignmentId,
    today: NaiveDate,
) -> Result<Assignment, AppError> {
    let row: AssignmentRow = assignments::table
        .find(id)
        .select(AssignmentRow::as_select())
        .first(conn)?;
    Ok(row.into_assignment(today))
}

/// Ends an assignment on `valid_to` (exclusive; default today). Its history stays.
pub fn end_assignment(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &AssignmentId,
    valid_to: Option<NaiveDate>,
) -> Result<Assignment, AppError> {
    let today = crate::clock::day_of(now);
    let enrolment_id: EnrolmentId = assignments::table
        .find(id)
        .select(assignments::enrolment_id)
        .first(conn)?;
    access::require(conn, me, &enrolment_id, today, Access::Manage)?;
    let current = get_assignment(conn, id, today)?;
    let to = valid_to.unwrap_or(today);
    if to < current.valid_from {
        return Err(AppError::validation(
            "valid_to",
            "must not be before valid_from",
        ));
    }
    if current.valid_to.is_some_and(|t| t <= today) {
        return Err(AppError::Conflict(
            "the assignment has already ended".into(),
        ));
    }
    diesel::update(assignments::table.find(id))
        .set((
            assignments::valid_to.eq(to.to_string()),
            assignments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, &enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &enrolment_id,
        Changed("ended", "assignment", id),
        json!({"valid_to": to}),
    )?;
    get_assignment(conn, id, today)
}
