//! ST rules (issue 14, item 10): an ST 2021 enrolment linked to the BT enrolment it builds
//! on (integrated BT, or a standalone BT before it), the BT time counted in the ST
//! minimum length, and the plan warning when the BT certificate is not applied for in time.
//!
//! The numbers are catalogue data (`catalog/regulations.json`, `rules` of `st-2021`):
//! `minimum_months_includes` names the regulation codes whose linked enrolment's time
//! counts towards `minimum_months`, and `integrated_bt_application_within_months` the
//! period within which integrated BT's certificate should be applied for. Where the
//! catalogue has no such rule, nothing is checked.

use chrono::{Months, NaiveDate};
use diesel::prelude::*;

use super::enums::Track;
use super::loaders::{load_enrolment, Enrolment};
use super::warnings::{plan_of, PlanWarning};
use crate::auth::principal::Principal;
use crate::curriculum::{catalogue, templates};
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::{AppError, FieldError};
use crate::ids::{Day, EnrolmentId, TemplateId, UserId};
use crate::schema::enrolments;

/// Catalogue key: regulation codes whose linked enrolment's time counts towards
/// `minimum_months` (ST 2021: `["bt-2021"]`, "five years six months including BT").
pub const INCLUDES: &str = "minimum_months_includes";
/// Catalogue key: months from the start of ST within which integrated BT's certificate
/// should be applied for.
pub const APPLY_WITHIN: &str = "integrated_bt_application_within_months";

/// The regulation codes an enrolment under `regulation_rules` may link to.
fn linkable_codes(rules: &serde_json::Value) -> Vec<String> {
    rules
        .get(INCLUDES)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that the ST enrolment of `trainee_id` following `st_template` may link to
/// `bt_id`: the caller manages both, it is the same trainee's, it follows a regulation the
/// ST regulation counts (BT), and it is not the ST enrolment itself. Every refusal is the
/// same 422, so that the answer does not tell whether another organisation's enrolment
/// exists.
pub(crate) fn check_bt_link(
    conn: &mut DbConn,
    me: &Principal,
    today: NaiveDate,
    st_id: Option<&EnrolmentId>,
    trainee_id: &UserId,
    st_template: &templates::ProgrammeTemplate,
    bt_id: &EnrolmentId,
) -> Result<(), AppError> {
    const FIELD: &str = "bt_enrolment_id";
    let refuse = |m: &str| AppError::Validation(vec![FieldError::new(FIELD, m)]);
    let st_regulation = catalogue::get_regulation(conn, &st_template.regulation_id)?;
    let codes = linkable_codes(&st_regulation.rules);
    if codes.is_empty() {
        return Err(refuse(&format!(
            "{} ({}) does not count the time of another enrolment",
            st_regulation.name_sv, st_regulation.statute
        )));
    }
    if st_id == Some(bt_id) {
        return Err(refuse("an enrolment cannot build on itself"));
    }
    let not_found = "no BT enrolment of this trainee that you manage";
    match access::require(conn, me, bt_id, today, Access::Manage) {
        Ok(_) => {}
        Err(AppError::NotFound | AppError::Forbidden(_)) => return Err(refuse(not_found)),
        Err(e) => return Err(e),
    }
    let (bt_trainee, template_id, version): (UserId, TemplateId, i32) = enrolments::table
        .find(bt_id)
        .select((
            enrolments::trainee_id,
            enrolments::template_id,
            enrolments::template_version,
        ))
        .first(conn)?;
    if bt_trainee != *trainee_id {
        return Err(refuse(not_found));
    }
    // One level only: a BT that builds on something, or an ST that another enrolment
    // builds on, would make a chain (and, with crafted regulations, a loop).
    let bt_links: Option<String> = enrolments::table
        .find(bt_id)
        .select(enrolments::bt_enrolment_id)
        .first(conn)?;
    let st_is_linked = match st_id {
        Some(st) => {
            enrolments::table
                .filter(enrolments::bt_enrolment_id.eq(st))
                .count()
                .get_result::<i64>(conn)?
                > 0
        }
        None => false,
    };
    let bt_taken = enrolments::table
        .filter(enrolments::bt_enrolment_id.eq(bt_id))
        .filter(enrolments::id.ne(st_id.map_or("", EnrolmentId::as_str)))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if bt_taken {
        return Err(refuse("another ST enrolment already builds on that BT"));
    }
    if bt_links.is_some() || st_is_linked {
        return Err(refuse(
            "that enrolment builds on another one, or another builds on this one",
        ));
    }
    let bt_template = templates::get_template(conn, &template_id, Some(version))?;
    let bt_regulation = catalogue::get_regulation(conn, &bt_template.regulation_id)?;
    if !codes.contains(&bt_regulation.code) {
        return Err(refuse(&format!(
            "that enrolment follows {} ({}); {} counts only {}",
            bt_regulation.code,
            bt_regulation.statute,
            st_regulation.code,
            codes.join(", ")
        )));
    }
    Ok(())
}

/// Planned full-time months of the linked BT enrolment (placements at their extent, and
/// credited service), for the ST minimum length. `None` without a (readable) link.
pub(crate) fn linked_bt_months(
    conn: &mut DbConn,
    e: &Enrolment,
    today: NaiveDate,
) -> Result<Option<f64>, AppError> {
    let Some(bt_id) = &e.bt_enrolment_id else {
        return Ok(None);
    };
    let (bt, template) = match load_enrolment(conn, bt_id, today) {
        Ok(x) => x,
        // Erased together with the trainee's other records (see the migration).
        Err(AppError::NotFound) => return Ok(None),
        Err(other) => return Err(other),
    };
    let periods: Vec<(NaiveDate, NaiveDate)> = bt
        .placements
        .iter()
        .map(|p| (p.start_date, p.end_date))
        .collect();
    let credited = bt
        .credited_service
        .iter()
        .map(|c| c.credited_days)
        .sum::<i32>() as f64
        / super::time::DAYS_PER_MONTH;
    Ok(Some(
        plan_of(&bt, template.content.duration_months).planned_months(&periods) + credited,
    ))
}

/// The integrated BT of an ST enrolment, as the deadline check needs it.
pub(crate) struct IntegratedBt {
    pub st_start: NaiveDate,
    pub bt_start: NaiveDate,
    pub bt_planned_end: NaiveDate,
    pub bt_applied_on: Option<NaiveDate>,
    pub within_months: u32,
}

/// The last day on which integrated BT's certificate is applied for in time: within
/// `within_months` of the start of ST, which began with the BT (the earlier start).
pub(crate) fn application_due(b: &IntegratedBt) -> Option<NaiveDate> {
    b.st_start
        .min(b.bt_start)
        .checked_add_months(Months::new(b.within_months))
        .and_then(|d| d.pred_opt())
}

/// The warning (code `bt_application_deadline`) when the BT certificate was applied for
/// late, is overdue, or the BT is planned to end after the last day.
pub(crate) fn application_warning(
    b: &IntegratedBt,
    today: NaiveDate,
    statute: &str,
) -> Option<PlanWarning> {
    let due = application_due(b)?;
    let message = match b.bt_applied_on {
        Some(applied) if applied <= due => return None,
        Some(applied) => format!(
            "the BT certificate was applied for on {applied}, after {due} ({} months from the start of ST, {statute})",
            b.within_months
        ),
        None if today > due => format!(
            "the BT certificate has not been applied for; it was due by {due} ({} months from the start of ST, {statute})",
            b.within_months
        ),
        None if b.bt_planned_end > due => format!(
            "the BT is planned to end on {}, after {due}, the last day to apply for the BT certificate ({} months from the start of ST, {statute})",
            b.bt_planned_end, b.within_months
        ),
        None => return None,
    };
    Some(PlanWarning {
        code: "bt_application_deadline".into(),
        message,
    })
}

#[derive(Queryable)]
struct StSide {
    id: EnrolmentId,
    track: Track,
    start_date: Day,
    template_id: TemplateId,
    template_version: i32,
}

/// The deadline warning for either side of the link: on the ST enrolment (of track
/// `st_integrated_bt`) about its BT, and on a BT enrolment about the ST enrolment that
/// links to it.
pub(crate) fn deadline_warning(
    conn: &mut DbConn,
    e: &Enrolment,
    today: NaiveDate,
) -> Result<Option<PlanWarning>, AppError> {
    // The ST side: this enrolment, or the one linking to it.
    let st: Option<StSide> = if e.bt_enrolment_id.is_some() {
        Some(StSide {
            id: EnrolmentId::from(e.id.clone()),
            track: e.track,
            start_date: Day(e.start_date),
            template_id: TemplateId::from(e.template_id.as_str()),
            template_version: e.template_version,
        })
    } else {
        enrolments::table
            .filter(enrolments::bt_enrolment_id.eq(&e.id))
            .select((
                enrolments::id,
                enrolments::track,
                enrolments::start_date,
                enrolments::template_id,
                enrolments::template_version,
            ))
            .first(conn)
            .optional()?
    };
    let Some(st) = st else { return Ok(None) };
    if st.track != Track::StIntegratedBt {
        return Ok(None);
    }
    let template = templates::get_template(conn, &st.template_id, Some(st.template_version))?;
    let regulation = catalogue::get_regulation(conn, &template.regulation_id)?;
    let Some(within) = regulation.rules.get(APPLY_WITHIN).and_then(|v| v.as_u64()) else {
        return Ok(None);
    };
    let bt_id = if st.id.as_str() == e.id {
        match &e.bt_enrolment_id {
            Some(b) => b.clone(),
            None => return Ok(None),
        }
    } else {
        e.id.clone()
    };
    let bt: Option<(Day, Day, Option<Day>)> = enrolments::table
        .find(&bt_id)
        .select((
            enrolments::start_date,
            enrolments::planned_end,
            enrolments::applied_on,
        ))
        .first(conn)
        .optional()?;
    let Some((bt_start, bt_end, applied)) = bt else {
        return Ok(None);
    };
    Ok(application_warning(
        &IntegratedBt {
            st_start: st.start_date.date(),
            bt_start: bt_start.date(),
            bt_planned_end: bt_end.date(),
            bt_applied_on: applied.map(Day::date),
            within_months: u32::try_from(within).unwrap_or(u32::MAX),
        },
        today,
        &regulation.statute,
    ))
}

#[cfg(test)]
#[path = "st_rules_tests.rs"]
mod tests;
