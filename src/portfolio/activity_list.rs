//! Listing a trainee's learning activities: filters, keyset paging, and the phone's
//! fixed first page for one delmål. Split from `activities` (the record itself) so
//! each file holds one concern; `activities` re-exports what callers name.

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::EnrolmentId;
use crate::portfolio::activities::{from_rows, Activity, ActivityKind, Row};
use crate::schema::{activities, record_delmal};

/// Filters of a list of activities.
#[derive(Debug, Default)]
pub struct Filter {
    pub delmal: Option<String>,
    pub placement_id: Option<String>,
    pub kind: Option<ActivityKind>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// Newest first; the cursor is `start_date|id` of the last item.
pub fn list_activities(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    f: &Filter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Activity>, AppError> {
    let cursor = match after {
        Some(cursor) => Some(
            cursor
                .split_once('|')
                .ok_or_else(|| AppError::validation("cursor", "is not a cursor from this API"))?,
        ),
        None => None,
    };
    let only_delmal = f.placement_id.is_none()
        && f.kind.is_none()
        && f.from.is_none()
        && f.to.is_none()
        && cursor.is_none();
    if let (true, Some(code)) = (only_delmal, &f.delmal) {
        // The phone's first page for a delmål: a fixed query, prepared once per
        // connection (the general one below is built per request).
        let ids = record_delmal::table
            .filter(record_delmal::enrolment_id.eq(enrolment_id))
            .filter(record_delmal::code.eq(code))
            .select(record_delmal::record_id);
        let q = activities::table
            .filter(activities::deleted_at.is_null())
            .filter(activities::id.eq_any(ids))
            .order((activities::start_date.desc(), activities::id.desc()))
            .limit(limit + 1);
        // Selected inside `on_backend!`: a selection is typed by its backend.
        let mut rows: Vec<Row> = crate::on_backend!(conn, |c| q.select(Row::as_select()).load(c))?;
        rows.retain(|r| &r.enrolment_id == enrolment_id);
        return from_rows(conn, rows);
    }
    // Built and run on the backend's own connection (see `on_backend!`).
    let mut rows: Vec<Row> = crate::on_backend!(conn, |c| {
        let mut q = activities::table
            .filter(activities::deleted_at.is_null())
            .select(Row::as_select())
            .into_boxed();
        if let Some(code) = &f.delmal {
            // Only the activities linked to the delmål, found through the link index,
            // not every activity of the enrolment. A link carries its record's
            // enrolment, so the enrolment filter is the links'; rows are checked below.
            let ids = record_delmal::table
                .filter(record_delmal::enrolment_id.eq(enrolment_id.clone()))
                .filter(record_delmal::code.eq(code.clone()))
                .select(record_delmal::record_id);
            q = q.filter(activities::id.eq_any(ids));
        } else {
            q = q.filter(activities::enrolment_id.eq(enrolment_id.clone()));
        }
        if let Some(p) = &f.placement_id {
            q = q.filter(activities::placement_id.eq(p.clone()));
        }
        if let Some(k) = f.kind {
            q = q.filter(activities::kind.eq(k));
        }
        if let Some(d) = f.from {
            q = q.filter(activities::start_date.ge(d.to_string()));
        }
        if let Some(d) = f.to {
            q = q.filter(activities::start_date.le(d.to_string()));
        }
        if let Some((d, id)) = cursor {
            q = q.filter(
                activities::start_date
                    .lt(d.to_string())
                    .or(activities::start_date
                        .eq(d.to_string())
                        .and(activities::id.lt(id.to_string()))),
            );
        }
        q.order((activities::start_date.desc(), activities::id.desc()))
            .limit(limit + 1)
            .load(c)
    })?;
    rows.retain(|r| &r.enrolment_id == enrolment_id);
    from_rows(conn, rows)
}
