//! Leave (ledighet): periods that do not count as time served, in full or in part.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::history::{record_change, touch, Changed};
use crate::auth::principal::Principal;
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::{AppError, FieldError};
use crate::ids::{Day, EnrolmentId, LeaveId};
use crate::schema::leave_periods;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeavePeriod {
    pub id: String,
    /// e.g. `parental`, `sick`, `other`.
    #[schema(example = "parental")]
    pub kind: String,
    #[schema(example = "2027-02-01")]
    pub start_date: NaiveDate,
    /// Inclusive.
    #[schema(example = "2027-02-28")]
    pub end_date: NaiveDate,
    /// Share of time on leave: 100 for full leave, 50 for half.
    #[schema(example = 100)]
    pub percent: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
}

/// A `leave_periods` row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = leave_periods, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LeaveRow {
    id: LeaveId,
    kind: String,
    start_date: Day,
    end_date: Day,
    percent: i32,
    created_at: chrono::NaiveDateTime,
}

pub(crate) fn load_leave(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<LeavePeriod>, AppError> {
    let rows: Vec<LeaveRow> = leave_periods::table
        .filter(leave_periods::enrolment_id.eq(enrolment_id))
        .filter(leave_periods::removed_at.is_null())
        .order(leave_periods::start_date)
        .select(LeaveRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| LeavePeriod {
            id: r.id.into_inner(),
            kind: r.kind,
            start_date: r.start_date.date(),
            end_date: r.end_date.date(),
            percent: r.percent,
            created_at: from_db(r.created_at),
        })
        .collect())
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveInput {
    pub id: Option<uuid::Uuid>,
    /// e.g. `parental`, `sick`, `other`.
    #[schema(example = "sick")]
    pub kind: String,
    #[schema(example = "2027-03-01")]
    pub start_date: NaiveDate,
    #[schema(example = "2027-03-14")]
    pub end_date: NaiveDate,
    /// Share of time on leave, 1 to 100 (default 100).
    #[schema(example = 50)]
    pub percent: Option<i32>,
}

pub fn add_leave(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    l: LeaveInput,
) -> Result<LeavePeriod, AppError> {
    access::require(
        conn,
        me,
        enrolment_id,
        crate::clock::day_of(now),
        Access::Manage,
    )?;
    let mut errors = Vec::new();
    let percent = l.percent.unwrap_or(100);
    if !(1..=100).contains(&percent) {
        errors.push(FieldError::new("percent", "between 1 and 100"));
    }
    if l.end_date < l.start_date {
        errors.push(FieldError::new("end_date", "must not be before start_date"));
    }
    let kind = l.kind.trim().to_lowercase();
    if kind.is_empty() || kind.len() > 40 {
        errors.push(FieldError::new("kind", "e.g. parental, sick, other"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id =
        l.id.map(|u| LeaveId::new(u.to_string()))
            .unwrap_or_else(LeaveId::random);
    diesel::insert_into(leave_periods::table)
        .values((
            leave_periods::id.eq(&id),
            leave_periods::enrolment_id.eq(enrolment_id),
            leave_periods::kind.eq(&kind),
            leave_periods::start_date.eq(l.start_date.to_string()),
            leave_periods::end_date.eq(l.end_date.to_string()),
            leave_periods::percent.eq(percent),
            leave_periods::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "leave_period", &id),
        json!({
            "kind": kind, "start_date": l.start_date, "end_date": l.end_date, "percent": percent,
        }),
    )?;
    load_leave(conn, enrolment_id)?
        .into_iter()
        .find(|x| id == x.id)
        .ok_or(AppError::NotFound)
}

pub fn remove_leave(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &LeaveId,
) -> Result<(), AppError> {
    let enrolment_id: EnrolmentId = leave_periods::table
        .find(id)
        .filter(leave_periods::removed_at.is_null())
        .select(leave_periods::enrolment_id)
        .first(conn)?;
    access::require(
        conn,
        me,
        &enrolment_id,
        crate::clock::day_of(now),
        Access::Manage,
    )?;
    super::imported::refuse_if_transferred(conn, id)?;
    diesel::update(leave_periods::table.find(id))
        .set(leave_periods::removed_at.eq(to_db(now)))
        .execute(conn)?;
    touch(conn, now, &enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &enrolment_id,
        Changed("removed", "leave_period", id),
        json!({}),
    )
}
