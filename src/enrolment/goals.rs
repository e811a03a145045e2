//! The individual study plan (individuell utbildningsplan): goals the trainee and their
//! supervisors agree on, per placement or for the whole programme.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::history::{record_change, Changed};
use super::loaders::delmal_codes_of;
use super::placements::enrolment_of_placement;
use crate::auth::principal::Principal;
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::enrolment::enums::GoalStatus;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{EnrolmentId, PlacementId, UserId};
use crate::schema::study_plan_goals;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StudyPlanGoal {
    pub id: String,
    pub enrolment_id: String,
    /// The placement the goal belongs to; null for the whole programme.
    pub placement_id: Option<String>,
    #[schema(example = "Leda ett familjesamtal")]
    pub goal: String,
    #[schema(example = json!(["BT9", "BT10"]))]
    pub delmal: Vec<String>,
    /// `planned`, `in_progress` or `done`.
    #[schema(example = "in_progress")]
    pub status: String,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
}

impl StudyPlanGoal {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudyPlanGoalInput {
    pub id: Option<uuid::Uuid>,
    pub placement_id: Option<String>,
    pub goal: String,
    #[serde(default)]
    pub delmal: Vec<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudyPlanGoalPatch {
    pub goal: Option<String>,
    pub delmal: Option<Vec<String>>,
    pub status: Option<String>,
}

/// A `study_plan_goals` row as stored; `delmal` is a JSON array of codes.
#[derive(Queryable, Selectable)]
#[diesel(table_name = study_plan_goals, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct GoalRow {
    id: String,
    enrolment_id: EnrolmentId,
    placement_id: Option<PlacementId>,
    goal: String,
    delmal: String,
    status: GoalStatus,
    version: i32,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    updated_by: Option<UserId>,
}

impl GoalRow {
    fn into_goal(self) -> Result<StudyPlanGoal, AppError> {
        Ok(StudyPlanGoal {
            id: self.id,
            enrolment_id: self.enrolment_id.into_inner(),
            placement_id: self.placement_id.map(PlacementId::into_inner),
            goal: self.goal,
            delmal: serde_json::from_str(&self.delmal).map_err(AppError::internal)?,
            status: self.status.as_str().into(),
            version: self.version,
            created_at: from_db(self.created_at),
            updated_at: from_db(self.updated_at),
            updated_by: self.updated_by.map(UserId::into_inner),
        })
    }
}

pub fn list_goals(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<StudyPlanGoal>, AppError> {
    let rows: Vec<GoalRow> = study_plan_goals::table
        .filter(study_plan_goals::enrolment_id.eq(enrolment_id))
        .order(study_plan_goals::created_at)
        .select(GoalRow::as_select())
        .load(conn)?;
    rows.into_iter().map(GoalRow::into_goal).collect()
}

pub(crate) fn get_goal(conn: &mut DbConn, id: &str) -> Result<StudyPlanGoal, AppError> {
    let row: GoalRow = study_plan_goals::table
        .find(id)
        .select(GoalRow::as_select())
        .first(conn)?;
    row.into_goal()
}

pub(crate) fn check_goal(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    goal: &str,
    delmal: &[String],
    status: Option<GoalStatus>,
    errors: &mut Vec<FieldError>,
) -> Result<(), AppError> {
    if goal.trim().is_empty() || goal.chars().count() > 4000 {
        errors.push(FieldError::new("goal", "1 to 4000 characters"));
    }
    if status.is_none() {
        errors.push(FieldError::new("status", "planned, in_progress or done"));
    }
    let codes = delmal_codes_of(conn, enrolment_id)?;
    for code in delmal {
        if !codes.contains(code) {
            errors.push(FieldError::new("delmal", format!("unknown delmål {code}")));
        }
    }
    Ok(())
}

/// The trainee and their supervisors agree on goals; all of them may write.
pub fn add_goal(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    g: StudyPlanGoalInput,
) -> Result<StudyPlanGoal, AppError> {
    access::require(
        conn,
        me,
        enrolment_id,
        crate::clock::day_of(now),
        Access::Supervise,
    )?;
    let status = g
        .status
        .as_deref()
        .map_or(Some(GoalStatus::Planned), GoalStatus::from_code);
    let mut errors = Vec::new();
    check_goal(conn, enrolment_id, &g.goal, &g.delmal, status, &mut errors)?;
    if let Some(p) = &g.placement_id {
        if enrolment_of_placement(conn, &PlacementId::from(p))
            .ok()
            .as_ref()
            != Some(enrolment_id)
        {
            errors.push(FieldError::new(
                "placement_id",
                "not a placement of this enrolment",
            ));
        }
    }
    // An unknown status is among the errors.
    let (Some(status), true) = (status, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let id =
        g.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(study_plan_goals::table)
        .values((
            study_plan_goals::id.eq(&id),
            study_plan_goals::enrolment_id.eq(enrolment_id),
            study_plan_goals::placement_id.eq(&g.placement_id),
            study_plan_goals::goal.eq(g.goal.trim()),
            study_plan_goals::delmal.eq(json!(g.delmal).to_string()),
            study_plan_goals::status.eq(status),
            study_plan_goals::version.eq(1),
            study_plan_goals::created_at.eq(to_db(now)),
            study_plan_goals::updated_at.eq(to_db(now)),
            study_plan_goals::updated_by.eq(&me.user_id),
        ))
        .execute(conn)?;
    let goal = get_goal(conn, &id)?;
    let data = audit_data(conn, now, &goal)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "study_plan_goal", &id),
        data,
    )?;
    Ok(goal)
}

pub fn update_goal(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    patch: StudyPlanGoalPatch,
) -> Result<StudyPlanGoal, AppError> {
    let current = get_goal(conn, id)?;
    let enrolment_id = EnrolmentId::from(&current.enrolment_id);
    access::require(
        conn,
        me,
        &enrolment_id,
        crate::clock::day_of(now),
        Access::Supervise,
    )?;
    if_match(&current.etag())?;
    let goal = patch.goal.unwrap_or(current.goal.clone());
    let delmal = patch.delmal.unwrap_or(current.delmal.clone());
    let status = GoalStatus::from_code(patch.status.as_deref().unwrap_or(&current.status));
    let mut errors = Vec::new();
    check_goal(conn, &enrolment_id, &goal, &delmal, status, &mut errors)?;
    // An unknown status is among the errors.
    let (Some(status), true) = (status, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    diesel::update(study_plan_goals::table.find(id))
        .set((
            study_plan_goals::goal.eq(goal.trim()),
            study_plan_goals::delmal.eq(json!(delmal).to_string()),
            study_plan_goals::status.eq(status),
            study_plan_goals::version.eq(current.version + 1),
            study_plan_goals::updated_at.eq(to_db(now)),
            study_plan_goals::updated_by.eq(&me.user_id),
        ))
        .execute(conn)?;
    let updated = get_goal(conn, id)?;
    let data = audit_data(conn, now, &updated)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &enrolment_id,
        Changed("updated", "study_plan_goal", id),
        data,
    )?;
    Ok(updated)
}

/// What an audit entry keeps of a study-plan goal as values; the goal's text only as a
/// keyed digest (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &[
    "id",
    "enrolment_id",
    "placement_id",
    "delmal",
    "status",
    "version",
    "created_at",
    "updated_at",
    "updated_by",
];

fn audit_data(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    g: &StudyPlanGoal,
) -> Result<serde_json::Value, AppError> {
    crate::audit::text::record_data(
        conn,
        now,
        &g.id,
        Some(&EnrolmentId::from(&g.enrolment_id)),
        g,
        AUDIT_FACTS,
    )
}

pub fn enrolment_of_goal(conn: &mut DbConn, id: &str) -> Result<EnrolmentId, AppError> {
    Ok(study_plan_goals::table
        .find(id)
        .select(study_plan_goals::enrolment_id)
        .first(conn)?)
}
