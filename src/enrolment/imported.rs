//! Records imported from another service with a transfer bundle (issue 17,
//! docs/transfer.md) are read-only here: what the sending region signed or planned is
//! not changed by the receiving one. Their provenance rows (`transferred_records`) are
//! what marks them; `transfer` writes them and `portfolio::transferred` reads them.
//!
//! The guard lives here, below the features that use it: the plan's placements, leave
//! and extent periods (this feature) are imported too, and `portfolio` builds on
//! `enrolment`, not the other way round.

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{Day, EnrolmentId, TransferredRecordType};
use crate::schema::{extent_periods, placements, transferred_records};

fn read_only() -> AppError {
    AppError::Refused {
        status: 409,
        code: "transferred-read-only",
        title: "Imported record",
        detail: "This record was imported from another service with its signatures; \
                 it is read-only here."
            .into(),
    }
}

/// Imported records are read-only: what another service signed is not changed here
/// (409 `transferred-read-only`). Any kind of record id: `transferred_records` keys
/// placements, leave, extent periods and the portfolio's records alike.
pub fn refuse_if_transferred(
    conn: &mut DbConn,
    record_id: &(impl AsRef<str> + ?Sized),
) -> Result<(), AppError> {
    let query = transferred_records::table
        .find(record_id.as_ref().to_string())
        .select(transferred_records::id);
    let found: Option<String> = crate::on_backend!(conn, |c| query.first(c).optional())?;
    match found {
        None => Ok(()),
        Some(_) => Err(read_only()),
    }
}

/// Refuses a change of extent from `valid_from` (none: a correction of the whole
/// history) that would reach back into the time imported from another service: the
/// extent there holds up to the end of the last imported placement, or from the last
/// imported extent period on, whichever is later (409 `transferred-read-only`).
pub(crate) fn refuse_extent_change_before_import(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    valid_from: Option<NaiveDate>,
) -> Result<(), AppError> {
    use TransferredRecordType::{ExtentPeriod, Placement};
    let imported: Vec<(String, TransferredRecordType)> = transferred_records::table
        .filter(transferred_records::enrolment_id.eq(enrolment_id))
        .filter(transferred_records::record_type.eq_any([ExtentPeriod, Placement]))
        .select((transferred_records::id, transferred_records::record_type))
        .load(conn)?;
    if imported.is_empty() {
        return Ok(());
    }
    let of = |kind: TransferredRecordType| -> Vec<String> {
        imported
            .iter()
            .filter(|(_, t)| *t == kind)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let mut days: Vec<Day> = extent_periods::table
        .filter(extent_periods::id.eq_any(of(ExtentPeriod)))
        .select(extent_periods::valid_from)
        .load(conn)?;
    days.extend(
        placements::table
            .filter(placements::id.eq_any(of(Placement)))
            .select(placements::end_date)
            .load::<Day>(conn)?,
    );
    let Some(last) = days.iter().map(|d| d.date()).max() else {
        return Ok(());
    };
    match valid_from {
        Some(from) if from > last => Ok(()),
        _ => Err(AppError::Refused {
            status: 409,
            code: "transferred-read-only",
            title: "Imported extent",
            detail: format!(
                "The employment extent up to {last} was imported from another service and \
                 is read-only here; record a change from a later day."
            ),
        }),
    }
}
