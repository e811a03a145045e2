//! Employment extent (tjänstgöringsgrad) as a history of periods: a move from 100 % to
//! 75 % in March changes March on, and January stays as it was served. Each period holds
//! from its `valid_from` until the next one begins; the first begins on the enrolment's
//! start date. Time served, pace and the projected end read the extent of each day from
//! here (see `time::Plan`), and so do the certificates ([`extent_on`], [`periods_between`]).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::history::{record_change, touch, Changed};
use crate::auth::principal::Principal;
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::{AppError, FieldError};
use crate::ids::Day;
use crate::ids::EnrolmentId;
use crate::schema::{enrolments, extent_periods};

/// The extent of employment from a day on.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ExtentPeriod {
    pub id: String,
    /// The first day at this extent; it lasts until the next period's `valid_from`.
    #[schema(example = "2027-03-01")]
    pub valid_from: NaiveDate,
    /// The last day at this extent (the day before the next period), or none for the
    /// period that lasts.
    #[schema(example = "2027-05-31")]
    pub valid_to: Option<NaiveDate>,
    /// Per cent of full time, 10 to 100.
    #[schema(example = 75)]
    pub extent_percent: i32,
    /// Who recorded it (none for the extent the enrolment was created with before the
    /// history was kept).
    pub created_by: Option<String>,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
}

/// An `extent_periods` row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = extent_periods, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ExtentRow {
    id: String,
    valid_from: Day,
    extent_percent: i32,
    created_by: Option<String>,
    created_at: chrono::NaiveDateTime,
}

/// The enrolment's extent periods, in order.
pub fn load_periods(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<ExtentPeriod>, AppError> {
    let rows: Vec<ExtentRow> = extent_periods::table
        .filter(extent_periods::enrolment_id.eq(enrolment_id))
        .order(extent_periods::valid_from)
        .select(ExtentRow::as_select())
        .load(conn)?;
    let starts: Vec<NaiveDate> = rows.iter().map(|r| r.valid_from.date()).collect();
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| ExtentPeriod {
            id: r.id,
            valid_from: r.valid_from.date(),
            valid_to: starts.get(i + 1).and_then(|next| next.pred_opt()),
            extent_percent: r.extent_percent,
            created_by: r.created_by,
            created_at: from_db(r.created_at),
        })
        .collect())
}

/// The history as `(from, percent)` changes, for `time::Plan`.
pub fn changes_of(periods: &[ExtentPeriod]) -> Vec<(NaiveDate, i32)> {
    periods
        .iter()
        .map(|p| (p.valid_from, p.extent_percent))
        .collect()
}

/// The extent on `day`: the period that holds then; before the first period, the first
/// (the enrolment's extent from its start). `None` for an unknown enrolment.
pub fn extent_on(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    day: NaiveDate,
) -> Result<Option<i32>, AppError> {
    Ok(percent_on(
        &changes_of(&load_periods(conn, enrolment_id)?),
        day,
    ))
}

/// The extent on `day` from `(from, percent)` changes in order of `from`.
pub fn percent_on(changes: &[(NaiveDate, i32)], day: NaiveDate) -> Option<i32> {
    changes
        .iter()
        .take_while(|(from, _)| *from <= day)
        .last()
        .or(changes.first())
        .map(|(_, p)| *p)
}

/// The periods that overlap `from..=to`, cut to it (for a certificate's period of
/// service: "omfattning" per period).
pub fn periods_between(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ExtentPeriod>, AppError> {
    Ok(cut(load_periods(conn, enrolment_id)?, from, to))
}

pub(crate) fn cut(periods: Vec<ExtentPeriod>, from: NaiveDate, to: NaiveDate) -> Vec<ExtentPeriod> {
    periods
        .into_iter()
        .enumerate()
        .filter_map(|(i, mut p)| {
            // The first period also covers the days before it (see `percent_on`).
            let start = if i == 0 { from } else { p.valid_from.max(from) };
            let end = p.valid_to.map_or(to, |e| e.min(to));
            if start > end {
                return None;
            }
            p.valid_from = start;
            p.valid_to = Some(end);
            Some(p)
        })
        .collect()
}

/// A change of extent from a day on.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtentChange {
    pub id: Option<uuid::Uuid>,
    /// The first day at the new extent: on or after the enrolment's start. A change
    /// already recorded for that day is replaced (a correction).
    #[schema(example = "2027-03-01")]
    pub valid_from: NaiveDate,
    /// Per cent of full time, 10 to 100.
    #[schema(example = 75)]
    pub extent_percent: i32,
}

/// Records a change of extent from `valid_from` on (who may: those who manage the plan).
/// The days before keep the extent they were served at.
pub fn record_extent_change(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    change: ExtentChange,
) -> Result<ExtentPeriod, AppError> {
    let today = crate::clock::day_of(now);
    access::require(conn, me, enrolment_id, today, Access::Manage)?;
    super::imported::refuse_extent_change_before_import(
        conn,
        enrolment_id,
        Some(change.valid_from),
    )?;
    let (start, current): (Day, i32) = enrolments::table
        .find(enrolment_id)
        .select((enrolments::start_date, enrolments::extent_percent))
        .first(conn)?;
    let mut errors = Vec::new();
    super::enrolments::check_extent(change.extent_percent, &mut errors);
    if change.valid_from < start.date() {
        errors.push(FieldError::new(
            "valid_from",
            "on or after the enrolment's start date",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    // An enrolment written without its history (a bulk seed straight into the table)
    // gets its extent from the start first, so the days before the change keep it.
    if load_periods(conn, enrolment_id)?.is_empty() {
        let first = Uuid::new_v4().to_string();
        insert_period(conn, now, None, enrolment_id, &first, start.date(), current)?;
    }
    let existing: Option<String> = extent_periods::table
        .filter(extent_periods::enrolment_id.eq(enrolment_id))
        .filter(extent_periods::valid_from.eq(change.valid_from.to_string()))
        .select(extent_periods::id)
        .first(conn)
        .optional()?;
    let id = match existing {
        Some(id) => {
            diesel::update(extent_periods::table.find(&id))
                .set((
                    extent_periods::extent_percent.eq(change.extent_percent),
                    extent_periods::created_by.eq(Some(&me.user_id)),
                    extent_periods::created_at.eq(to_db(now)),
                ))
                .execute(conn)?;
            id
        }
        None => {
            let id = change
                .id
                .map(|u| u.to_string())
                .unwrap_or_else(|| Uuid::new_v4().to_string());
            insert_period(
                conn,
                now,
                Some(&me.user_id),
                enrolment_id,
                &id,
                change.valid_from,
                change.extent_percent,
            )?;
            id
        }
    };
    sync_current(conn, enrolment_id, today)?;
    touch(conn, now, enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "extent_period", &id),
        json!({"valid_from": change.valid_from, "extent_percent": change.extent_percent}),
    )?;
    load_periods(conn, enrolment_id)?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or(AppError::NotFound)
}

pub(crate) fn insert_period(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    by: Option<&str>,
    enrolment_id: &EnrolmentId,
    id: &str,
    valid_from: NaiveDate,
    percent: i32,
) -> Result<(), AppError> {
    diesel::insert_into(extent_periods::table)
        .values((
            extent_periods::id.eq(id),
            extent_periods::enrolment_id.eq(enrolment_id),
            extent_periods::valid_from.eq(valid_from.to_string()),
            extent_periods::extent_percent.eq(percent),
            extent_periods::created_by.eq(by),
            extent_periods::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Corrects the extent of the whole enrolment (`PATCH /enrolments/{id}` with
/// `extent_percent`): allowed while the extent has never changed, since then there is one
/// period to correct; after a change, a correction must say from when (a change from a
/// date), or it would rewrite months already served.
pub(crate) fn correct_whole(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    percent: i32,
) -> Result<(), AppError> {
    super::imported::refuse_extent_change_before_import(conn, enrolment_id, None)?;
    let periods = load_periods(conn, enrolment_id)?;
    if periods.len() > 1 {
        if periods.iter().all(|p| p.extent_percent == percent) {
            return Ok(());
        }
        return Err(AppError::Conflict(
            "the extent has changed during the enrolment: record a change from a date \
             (extent-changes) instead"
                .into(),
        ));
    }
    diesel::update(extent_periods::table.filter(extent_periods::enrolment_id.eq(enrolment_id)))
        .set(extent_periods::extent_percent.eq(percent))
        .execute(conn)?;
    Ok(())
}

/// Keeps `enrolments.extent_percent` at today's extent, for readers of the column.
fn sync_current(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
) -> Result<(), AppError> {
    if let Some(p) = extent_on(conn, enrolment_id, today)? {
        diesel::update(enrolments::table.find(enrolment_id))
            .set(enrolments::extent_percent.eq(p))
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "extent_tests.rs"]
mod tests;
