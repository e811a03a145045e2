//! Plan warnings (the plan checked against its template and the regulation's structural
//! rules) and the plan that time served is computed from.

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use super::loaders::Enrolment;
use crate::curriculum::{catalogue, templates};
use crate::db::DbConn;
use crate::enrolment::st_rules;
use crate::enrolment::time::{self, Plan};
use crate::error::AppError;

/// Months are averaged (30.4375 days), so a plan of whole calendar months (five years
/// with one leap day: 1826 days, 59.99 months) can fall short by less than a day: that
/// is not a deviation.
const DAY_SLACK: f64 = 1.0 / time::DAYS_PER_MONTH;

/// A deviation of the plan from the regulation's structural rules or from itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanWarning {
    /// e.g. `minimum_months_in`, `minimum_months`, `overlapping_placements`,
    /// `placement_outside_enrolment`, `unknown_placement_type`,
    /// `bt_application_deadline` (integrated BT's certificate not applied for in time).
    #[schema(example = "minimum_months_in")]
    pub code: String,
    #[schema(
        example = "HSLF-FS 2021:8 requires at least 3 months in primärvård; the plan has 3.0"
    )]
    pub message: String,
}

pub(crate) fn plan_of(e: &Enrolment, nominal_months: i32) -> Plan {
    Plan {
        start: e.start_date,
        // The first period begins on the start date; before it (never, in practice) and
        // without a history, the enrolment's own value.
        extent_percent: e
            .extent_periods
            .first()
            .map_or(e.extent_percent, |p| p.extent_percent),
        extent_changes: super::extent::changes_of(&e.extent_periods),
        placements: e
            .placements
            .iter()
            .map(|p| (p.start_date, p.end_date))
            .collect(),
        leave: e
            .leave_periods
            .iter()
            .map(|l| (l.start_date, l.end_date, l.percent))
            .collect(),
        credited_days: e.credited_service.iter().map(|c| c.credited_days).sum(),
        nominal_months,
    }
}

/// Checks the plan against the template and the regulation's structural rules.
pub(crate) fn warnings(
    conn: &mut DbConn,
    e: &Enrolment,
    template: &templates::ProgrammeTemplate,
    today: NaiveDate,
) -> Result<Vec<PlanWarning>, AppError> {
    let mut out = Vec::new();
    let warn = |out: &mut Vec<PlanWarning>, code: &str, message: String| {
        out.push(PlanWarning {
            code: code.into(),
            message,
        })
    };
    for p in &e.placements {
        if template.placement_type(&p.placement_type).is_none() {
            warn(
                &mut out,
                "unknown_placement_type",
                format!(
                    "placement {} has type {:?}, which template version {} does not have",
                    p.id, p.placement_type, template.version
                ),
            );
        }
        if p.start_date < e.start_date || p.end_date > e.planned_end {
            warn(
                &mut out,
                "placement_outside_enrolment",
                format!(
                    "placement {} ({} to {}) lies outside the enrolment ({} to {})",
                    p.id, p.start_date, p.end_date, e.start_date, e.planned_end
                ),
            );
        }
    }
    for (i, a) in e.placements.iter().enumerate() {
        for b in &e.placements[i + 1..] {
            if a.start_date <= b.end_date && b.start_date <= a.end_date {
                warn(
                    &mut out,
                    "overlapping_placements",
                    format!("placements {} and {} overlap", a.id, b.id),
                );
            }
        }
    }
    let regulation = catalogue::get_regulation(conn, &template.regulation_id)?;
    // The planned months at each day's extent (a move to 75 % counts from its day on).
    let plan = plan_of(e, template.content.duration_months);
    let credited_months = e
        .credited_service
        .iter()
        .map(|c| c.credited_days)
        .sum::<i32>() as f64
        / time::DAYS_PER_MONTH;
    // Both spellings of per-category minimums in the catalogue (BT and AT).
    for key in ["minimum_months_in", "placements_minimum_months"] {
        if let Some(rules) = regulation.rules.get(key).and_then(|v| v.as_object()) {
            for (category, min) in rules {
                let Some(min) = min.as_f64() else { continue };
                let periods: Vec<(NaiveDate, NaiveDate)> = e
                    .placements
                    .iter()
                    .filter(|p| {
                        template.placement_type(&p.placement_type).is_some_and(|t| {
                            t.counts_as.iter().any(|c| c.eq_ignore_ascii_case(category))
                        })
                    })
                    .map(|p| (p.start_date, p.end_date))
                    .collect();
                let planned = plan.planned_months(&periods);
                if planned + DAY_SLACK < min {
                    warn(&mut out, "minimum_months_in", format!("{} requires at least {min} months in {category}; the plan has {planned:.1}", regulation.statute));
                }
            }
        }
    }
    // Minimums over several categories together (AT: invärtesmedicinska and opererande
    // specialiteter at least 9 months in all); a placement counting as two of them counts
    // once.
    if let Some(rules) = regulation
        .rules
        .get("placements_minimum_months_combined")
        .and_then(|v| v.as_array())
    {
        for rule in rules {
            let (Some(categories), Some(min)) = (
                rule.get("categories").and_then(|v| v.as_array()),
                rule.get("months").and_then(|v| v.as_f64()),
            ) else {
                continue;
            };
            let names: Vec<&str> = categories.iter().filter_map(|c| c.as_str()).collect();
            let periods: Vec<(NaiveDate, NaiveDate)> = e
                .placements
                .iter()
                .filter(|p| {
                    template.placement_type(&p.placement_type).is_some_and(|t| {
                        t.counts_as
                            .iter()
                            .any(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
                    })
                })
                .map(|p| (p.start_date, p.end_date))
                .collect();
            let planned = plan.planned_months(&periods);
            if planned + DAY_SLACK < min {
                warn(
                    &mut out,
                    "minimum_months_in",
                    format!(
                        "{} requires at least {min} months in {} together; the plan has {planned:.1}",
                        regulation.statute,
                        names.join(" and ")
                    ),
                );
            }
        }
    }
    if let Some(min) = regulation
        .rules
        .get("minimum_months")
        .and_then(|v| v.as_f64())
    {
        let all: Vec<(NaiveDate, NaiveDate)> = e
            .placements
            .iter()
            .map(|p| (p.start_date, p.end_date))
            .collect();
        // ST 2021 counts the BT it builds on ("including BT"), when the plan links it.
        let bt = if regulation.rules.get(st_rules::INCLUDES).is_some() {
            st_rules::linked_bt_months(conn, e, today)?
        } else {
            None
        };
        let planned = plan.planned_months(&all) + credited_months + bt.unwrap_or(0.0);
        if planned + DAY_SLACK < min {
            let including = match bt {
                Some(b) => format!(" ({b:.1} of them in the linked BT)"),
                None if regulation.rules.get(st_rules::INCLUDES).is_some() => {
                    " (no BT enrolment is linked: link it to count its time)".to_string()
                }
                None => String::new(),
            };
            warn(
                &mut out,
                "minimum_months",
                format!(
                    "{} requires at least {min} months in all; the plan has {:.1}{including}",
                    regulation.statute, planned
                ),
            );
        }
    }
    out.extend(st_rules::deadline_warning(conn, e, today)?);
    Ok(out)
}
