//! Group reviews (kollegium): supervisors and the director of studies review one
//! trainee's progress together (a BT/AT-kollegium at about three and nine months, an
//! ST-kollegium) and record the outcome. The trainee reads them; they are not edited
//! afterwards (a correction is a new review).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, Event};
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::ids::{Day, EnrolmentId, GroupReviewId, UserId};
use crate::schema::{enrolments, group_reviews};

const SUMMARY_MAX_CHARS: usize = 4000;

/// What the group concluded.
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
pub enum GroupReviewOutcome {
    /// The training goes as planned.
    OnTrack,
    /// The group asks for support or changes (named in the summary).
    NeedsSupport,
}

impl GroupReviewOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupReviewOutcome::OnTrack => "on_track",
            GroupReviewOutcome::NeedsSupport => "needs_support",
        }
    }
    pub fn from_code(s: &str) -> Option<GroupReviewOutcome> {
        Some(match s {
            "on_track" => GroupReviewOutcome::OnTrack,
            "needs_support" => GroupReviewOutcome::NeedsSupport,
            _ => return None,
        })
    }
}

crate::text_enum_sql!(GroupReviewOutcome);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupReview {
    pub id: String,
    pub enrolment_id: String,
    #[schema(example = "2026-12-03")]
    pub held_on: NaiveDate,
    pub outcome: GroupReviewOutcome,
    /// What the group found and agreed.
    pub summary: String,
    pub recorded_by: String,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroupReview {
    #[schema(example = "2026-12-03")]
    pub held_on: NaiveDate,
    pub outcome: GroupReviewOutcome,
    #[schema(example = "Följer planen. Fler akuta bedömningar under våren.")]
    pub summary: String,
}

#[derive(Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = group_reviews, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct GroupReviewRow {
    id: GroupReviewId,
    enrolment_id: EnrolmentId,
    #[diesel(serialize_as = String)]
    held_on: Day,
    outcome: GroupReviewOutcome,
    summary: String,
    recorded_by: UserId,
    created_at: NaiveDateTime,
}

impl GroupReviewRow {
    fn into_api(self) -> GroupReview {
        GroupReview {
            id: self.id.into_inner(),
            enrolment_id: self.enrolment_id.into_inner(),
            held_on: self.held_on.date(),
            outcome: self.outcome,
            summary: self.summary,
            recorded_by: self.recorded_by.into_inner(),
            created_at: from_db(self.created_at),
        }
    }
}

/// Records a group review: the trainee's supervisors and those who manage the plan
/// (directors of studies, administrators), never the trainee.
pub fn record(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    body: NewGroupReview,
) -> Result<GroupReview, AppError> {
    let today = ctx.today();
    access::require(conn, &ctx.caller, enrolment_id, today, Access::Supervise)?;
    let trainee: UserId = enrolments::table
        .find(enrolment_id.as_str())
        .select(enrolments::trainee_id)
        .first(conn)?;
    if ctx.caller.user_id == trainee {
        return Err(AppError::Forbidden(
            "a group review is recorded by the trainee's supervisors or director of studies".into(),
        ));
    }
    if body.held_on > today {
        return Err(AppError::validation("held_on", "must not be in the future"));
    }
    let summary = body.summary.trim().to_string();
    if summary.is_empty() {
        return Err(AppError::validation("summary", "must not be empty"));
    }
    if summary.chars().count() > SUMMARY_MAX_CHARS {
        return Err(AppError::validation(
            "summary",
            &format!("must be at most {SUMMARY_MAX_CHARS} characters"),
        ));
    }
    let row = GroupReviewRow {
        id: GroupReviewId::random(),
        enrolment_id: enrolment_id.clone(),
        held_on: Day(body.held_on),
        outcome: body.outcome,
        summary,
        recorded_by: ctx.caller.user_id.clone(),
        created_at: to_db(ctx.now),
    };
    diesel::insert_into(group_reviews::table)
        .values(row.clone())
        .execute(conn)?;
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&ctx.caller.user_id),
            client: ctx.client.user_agent.as_deref(),
            action: "created",
            entity: "group_review",
            entity_id: row.id.as_str(),
            enrolment_id: Some(enrolment_id.as_str()),
            data: &json!({"held_on": row.held_on.to_text(), "outcome": row.outcome.as_str()}),
        },
    )?;
    Ok(row.into_api())
}

/// The enrolment's group reviews, oldest first: for everyone who may read the plan.
pub fn list(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<GroupReview>, AppError> {
    access::require(conn, &ctx.caller, enrolment_id, ctx.today(), Access::Read)?;
    let rows: Vec<GroupReviewRow> = group_reviews::table
        .filter(group_reviews::enrolment_id.eq(enrolment_id.as_str()))
        .order((group_reviews::held_on, group_reviews::id))
        .select(GroupReviewRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(GroupReviewRow::into_api).collect())
}

/// One group review, for everyone who may read its enrolment's plan.
pub fn get(conn: &mut DbConn, ctx: &Ctx, id: &GroupReviewId) -> Result<GroupReview, AppError> {
    let row: Option<GroupReviewRow> = group_reviews::table
        .find(id.as_str())
        .select(GroupReviewRow::as_select())
        .first(conn)
        .optional()?;
    let row = row.ok_or(AppError::NotFound)?;
    access::require(
        conn,
        &ctx.caller,
        &row.enrolment_id,
        ctx.today(),
        Access::Read,
    )?;
    Ok(row.into_api())
}

/// Every group review of an enrolment, for the trainee's own export (the caller has been
/// checked to be the enrolment's trainee).
pub fn of_enrolment(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<GroupReview>, AppError> {
    let rows: Vec<GroupReviewRow> = group_reviews::table
        .filter(group_reviews::enrolment_id.eq(enrolment_id))
        .order((group_reviews::held_on, group_reviews::id))
        .select(GroupReviewRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(GroupReviewRow::into_api).collect())
}
