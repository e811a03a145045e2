//! The imported enrolment's plan: the sending enrolment's placements, leave, extent
//! periods and credited service become the receiving enrolment's own rows, read-only
//! with their provenance, so that time served, pace and the projected end here
//! (`enrolment::time`, progress) count the months served there. A BT doctor who moves
//! half-way shows the six months already served.
//!
//! Only what was served there is taken: the plan up to the day of the export (`cut`).
//! A placement running then ends that day, later placements and leave are left out
//! (they stay in the bundle), and the last extent holds on until a change here. What
//! follows is the receiving region's to plan.
//!
//! Dates and shares are checked as the plan's own endpoints check them: a bundle is
//! signed by a service this region trusts, but a value this service would refuse from a
//! person it refuses from a bundle too (422 `validation`, naming the field).

use chrono::NaiveDate;
use diesel::prelude::*;
use serde_json::{json, Value};

use super::import::{codes_of, day, malformed, text};
use super::records::{no_signer, Importer, Item};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::TransferredRecordType;
use crate::portfolio::transferred::KEPT_AS_RECORD;
use crate::schema::{credited_service, extent_periods, leave_periods, placements};

fn list<'a>(e: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    e[field].as_array().into_iter().flatten()
}

fn percent(v: &Value, key: &str, range: std::ops::RangeInclusive<i64>) -> Option<i32> {
    v[key]
        .as_i64()
        .filter(|p| range.contains(p))
        .and_then(|p| i32::try_from(p).ok())
}

impl Importer {
    /// Takes the sending enrolment's plan (`enrolment` of the bundle) up to `cut` (the
    /// day of the export) into the new one.
    pub(super) fn plan(
        &mut self,
        conn: &mut DbConn,
        e: &Value,
        cut: NaiveDate,
    ) -> Result<(), AppError> {
        let mut served = std::collections::HashMap::new();
        for p in list(e, "placements") {
            if let Some(here) = self.placement(conn, p, cut)? {
                served.insert(text(p, "id").unwrap_or("").to_string(), here);
            }
        }
        for l in list(e, "leave_periods") {
            self.leave(conn, l, cut)?;
        }
        self.extent(conn, e, cut)?;
        for c in list(e, "credited_service") {
            self.credited(conn, c)?;
        }
        self.supervisors(conn, e, cut, &served)
    }

    fn record(
        &mut self,
        conn: &mut DbConn,
        id: &str,
        item: &Item<'_>,
        delmal: (&[String], &[String]),
    ) -> Result<(), AppError> {
        // The sending service's content stays with the provenance: its unit and
        // supervisor there name organisations and people this service does not have.
        self.provenance(conn, id, item, KEPT_AS_RECORD, item.original, delmal)?;
        self.counts.plan += 1;
        Ok(())
    }

    /// The placement's (type, id) here; none for one that began after `cut`.
    fn placement(
        &mut self,
        conn: &mut DbConn,
        p: &Value,
        cut: NaiveDate,
    ) -> Result<Option<(String, String)>, AppError> {
        let start = day(p, "start_date").ok_or_else(|| malformed("enrolment.placements"))?;
        let end = day(p, "end_date")
            .filter(|end| *end >= start)
            .ok_or_else(|| malformed("enrolment.placements"))?;
        if start > cut {
            return Ok(None);
        }
        let end = end.min(cut);
        // The type's key as the sending template named it: a key the receiving template
        // lacks is a plan warning (`unknown_placement_type`), and the time still counts.
        let kind = text(p, "placement_type")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| malformed("enrolment.placements"))?;
        let id = uuid::Uuid::new_v4().to_string();
        diesel::insert_into(placements::table)
            .values((
                placements::id.eq(&id),
                placements::enrolment_id.eq(&self.enrolment_id),
                placements::placement_type.eq(kind),
                placements::start_date.eq(start.to_string()),
                placements::end_date.eq(end.to_string()),
                placements::version.eq(1),
                placements::created_at.eq(self.now),
                placements::updated_at.eq(self.now),
            ))
            .execute(conn)?;
        let item = Item {
            record_type: TransferredRecordType::Placement,
            original: p,
            title: kind,
            date: Some(start),
            signer: no_signer(),
        };
        self.record(conn, &id, &item, (&[], &[]))?;
        Ok(Some((kind.to_string(), id)))
    }

    fn leave(&mut self, conn: &mut DbConn, l: &Value, cut: NaiveDate) -> Result<(), AppError> {
        let start = day(l, "start_date").ok_or_else(|| malformed("enrolment.leave_periods"))?;
        let end = day(l, "end_date")
            .filter(|end| *end >= start)
            .ok_or_else(|| malformed("enrolment.leave_periods"))?;
        if start > cut {
            return Ok(());
        }
        let end = end.min(cut);
        let share =
            percent(l, "percent", 1..=100).ok_or_else(|| malformed("enrolment.leave_periods"))?;
        let kind = text(l, "kind")
            .map(|k| k.trim().to_lowercase())
            .filter(|k| !k.is_empty() && k.len() <= 40)
            .ok_or_else(|| malformed("enrolment.leave_periods"))?;
        let id = uuid::Uuid::new_v4().to_string();
        diesel::insert_into(leave_periods::table)
            .values((
                leave_periods::id.eq(&id),
                leave_periods::enrolment_id.eq(&self.enrolment_id),
                leave_periods::kind.eq(&kind),
                leave_periods::start_date.eq(start.to_string()),
                leave_periods::end_date.eq(end.to_string()),
                leave_periods::percent.eq(share),
                leave_periods::created_at.eq(self.now),
            ))
            .execute(conn)?;
        let item = Item {
            record_type: TransferredRecordType::LeavePeriod,
            original: l,
            title: &kind,
            date: Some(start),
            signer: no_signer(),
        };
        self.record(conn, &id, &item, (&[], &[]))
    }

    /// The extent's history replaces the one period the enrolment was created with (the
    /// extent from the start): each day here is counted at the extent it was served at
    /// there.
    fn extent(&mut self, conn: &mut DbConn, e: &Value, cut: NaiveDate) -> Result<(), AppError> {
        let mut periods = Vec::new();
        for p in list(e, "extent_periods") {
            let from = day(p, "valid_from").ok_or_else(|| malformed("enrolment.extent_periods"))?;
            let share = percent(p, "extent_percent", 10..=100)
                .ok_or_else(|| malformed("enrolment.extent_periods"))?;
            if from <= cut {
                periods.push((p, from, share));
            }
        }
        if periods.is_empty() {
            return Ok(());
        }
        diesel::delete(
            extent_periods::table.filter(extent_periods::enrolment_id.eq(&self.enrolment_id)),
        )
        .execute(conn)?;
        periods.sort_by_key(|(_, from, _)| *from);
        periods.dedup_by_key(|(_, from, _)| *from);
        for (p, from, share) in periods {
            let id = uuid::Uuid::new_v4().to_string();
            diesel::insert_into(extent_periods::table)
                .values((
                    extent_periods::id.eq(&id),
                    extent_periods::enrolment_id.eq(&self.enrolment_id),
                    extent_periods::valid_from.eq(from.to_string()),
                    extent_periods::extent_percent.eq(share),
                    extent_periods::created_at.eq(self.now),
                ))
                .execute(conn)?;
            let title = format!("{share} %");
            let item = Item {
                record_type: TransferredRecordType::ExtentPeriod,
                original: p,
                title: &title,
                date: Some(from),
                signer: no_signer(),
            };
            self.record(conn, &id, &item, (&[], &[]))?;
        }
        Ok(())
    }

    fn credited(&mut self, conn: &mut DbConn, c: &Value) -> Result<(), AppError> {
        let start = day(c, "start_date").ok_or_else(|| malformed("enrolment.credited_service"))?;
        let end = day(c, "end_date")
            .filter(|end| *end >= start)
            .ok_or_else(|| malformed("enrolment.credited_service"))?;
        let span = (end - start).num_days() + 1;
        let days = percent(c, "credited_days", 1..=span)
            .ok_or_else(|| malformed("enrolment.credited_service"))?;
        let description = text(c, "description").unwrap_or("credited service");
        let evidence = text(c, "evidence").unwrap_or("");
        let uid = uuid::Uuid::new_v4();
        let id = uid.to_string();
        let (known, unknown) = self.map(
            TransferredRecordType::CreditedService,
            uid,
            codes_of(&c["delmal"]),
        );
        diesel::insert_into(credited_service::table)
            .values((
                credited_service::id.eq(&id),
                credited_service::enrolment_id.eq(&self.enrolment_id),
                credited_service::description.eq(description),
                credited_service::start_date.eq(start.to_string()),
                credited_service::end_date.eq(end.to_string()),
                credited_service::credited_days.eq(days),
                credited_service::evidence.eq(evidence),
                credited_service::delmal.eq(json!(known).to_string()),
                credited_service::created_at.eq(self.now),
            ))
            .execute(conn)?;
        let item = Item {
            record_type: TransferredRecordType::CreditedService,
            original: c,
            title: description,
            date: Some(start),
            signer: no_signer(),
        };
        self.record(conn, &id, &item, (&known, &unknown))
    }
}
