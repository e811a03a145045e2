//! The evaluation: from one enrolment's inputs to its progress per delmål, its checklist
//! and its pace. Pure but for the cached catalogue reads.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::inputs::{Inputs, PlacementBasics};
use super::model::{
    ChecklistItemProgress, ChecklistProgress, DelmalProgress, DelmalState, EvidenceItem, Pace,
    PaceFlag, PaceReason, Progress,
};
use crate::curriculum::catalogue;
use crate::curriculum::templates::{self, AssessmentType, ChecklistItem, ChecklistKind};
use crate::db::DbConn;
use crate::enrolment::enums::EnrolmentStatus;
use crate::enrolment::time::{Plan, TimeServed};
use crate::error::AppError;

/// The delmål of a template version, with titles, cached per regulation and specialty.
pub(crate) type DelmalList = Vec<(String, String, Option<String>)>;

pub(crate) struct Catalogue {
    pub(crate) templates: HashMap<(String, i32), templates::ProgrammeTemplate>,
    pub(crate) delmal: HashMap<(String, Option<String>), DelmalList>,
}

impl Catalogue {
    pub(crate) fn new() -> Catalogue {
        Catalogue {
            templates: HashMap::new(),
            delmal: HashMap::new(),
        }
    }

    pub(crate) fn template(
        &mut self,
        conn: &mut DbConn,
        id: &str,
        version: i32,
    ) -> Result<templates::ProgrammeTemplate, AppError> {
        let key = (id.to_string(), version);
        if let Some(t) = self.templates.get(&key) {
            return Ok(t.clone());
        }
        let t = templates::get_template(conn, &crate::ids::TemplateId::from(id), Some(version))?;
        self.templates.insert(key, t.clone());
        Ok(t)
    }

    pub(crate) fn delmal(
        &mut self,
        conn: &mut DbConn,
        t: &templates::ProgrammeTemplate,
    ) -> Result<DelmalList, AppError> {
        let key = (t.regulation_id.clone(), t.content.specialty.clone());
        if let Some(d) = self.delmal.get(&key) {
            return Ok(d.clone());
        }
        let list: DelmalList = catalogue::delmal_of(
            conn,
            &crate::ids::RegulationId::from(t.regulation_id.as_str()),
            t.content.specialty.as_deref(),
            None,
            None,
        )?
        .into_iter()
        .filter(|d| d.specialty.is_none() || d.specialty == t.content.specialty)
        .map(|d| (d.code, d.title_sv, d.title_en))
        .collect();
        self.delmal.insert(key, list.clone());
        Ok(list)
    }
}

pub(crate) fn elapsed(start: NaiveDate, end: NaiveDate, today: NaiveDate) -> f64 {
    if today < start {
        return 0.0;
    }
    let total = (end - start).num_days() + 1;
    if total <= 0 {
        return 1.0;
    }
    let done = (today.min(end) - start).num_days() + 1;
    (done as f64 / total as f64).clamp(0.0, 1.0)
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn instrument_key(t: AssessmentType) -> &'static str {
    match t {
        AssessmentType::MiniCex => "mini_cex",
        AssessmentType::Dops => "dops",
        AssessmentType::Cbd => "cbd",
        AssessmentType::SitIn => "sit_in",
        AssessmentType::MultiSource => "multi_source",
    }
}

pub(crate) fn item_progress(
    i: &Inputs,
    item: &ChecklistItem,
    placement: Option<&str>,
    fraction: f64,
) -> ChecklistItemProgress {
    let required = i64::from(item.count.unwrap_or(1).max(1));
    let by_item = item
        .id
        .as_ref()
        .and_then(|id| i.items_done.get(id))
        .copied()
        .unwrap_or(0);
    let done = match item.kind {
        ChecklistKind::Assessment => {
            let instrument = item.assessment_type.map(instrument_key);
            i.signed
                .iter()
                .filter(|((p, ins), _)| {
                    Some(ins.as_str()) == instrument
                        && (placement.is_none() || p.as_deref() == placement)
                })
                .map(|(_, n)| *n)
                .sum::<i64>()
        }
        ChecklistKind::SupervisionTopic => {
            let title = item.title.trim().to_lowercase();
            let talked = i
                .supervision
                .iter()
                .filter(|(p, _, topics)| {
                    (placement.is_none() || p.as_deref() == placement)
                        && topics.iter().any(|t| t.trim().to_lowercase() == title)
                })
                .count() as i64;
            talked + by_item
        }
        _ => by_item,
    };
    ChecklistItemProgress {
        item_id: item.id.clone(),
        kind: item.kind,
        title: item.title.clone(),
        delmal: item.delmal.clone(),
        required,
        done,
        complete: done >= required,
        expected_by_now: round2(required as f64 * fraction),
    }
}

pub(crate) fn evaluate(
    i: &Inputs,
    t: &templates::ProgrammeTemplate,
    delmal: &DelmalList,
    today: NaiveDate,
    with_items: Option<&mut HashMap<String, Vec<EvidenceItem>>>,
) -> Progress {
    let plan = Plan {
        start: i.e.start,
        extent_percent: i.extent.first().map_or(i.e.extent_percent, |(_, p)| *p),
        extent_changes: i.extent.clone(),
        placements: i.placements.iter().map(|p| (p.start, p.end)).collect(),
        leave: i.leave.clone(),
        credited_days: i.credited_days,
        nominal_months: t.content.duration_months,
    };
    let time_served = plan.time_served(today);

    // Checklists: each placement's items pro rata of its elapsed time, programme items
    // pro rata of the time served.
    let mut checklist = Vec::new();
    for p in &i.placements {
        let kind = t.placement_type(&p.placement_type);
        // Pro rata of the placement's time served (extent and leave), not its calendar.
        let fraction = if p.end < p.start {
            elapsed(p.start, p.end, today)
        } else {
            plan.served_share(p.start, p.end, today)
        };
        let items: Vec<ChecklistItemProgress> = kind
            .map(|k| {
                k.checklist
                    .iter()
                    .map(|item| item_progress(i, item, Some(&p.id), fraction))
                    .collect()
            })
            .unwrap_or_default();
        checklist.push(ChecklistProgress {
            placement_id: Some(p.id.clone()),
            placement_type: Some(p.placement_type.clone()),
            name: kind
                .map(|k| k.name.clone())
                .unwrap_or_else(|| p.placement_type.clone()),
            start_date: Some(p.start),
            end_date: Some(p.end),
            elapsed: round2(fraction),
            complete_items: items.iter().filter(|x| x.complete).count(),
            total_items: items.len(),
            items,
        });
    }
    if !t.content.programme_items.is_empty() {
        let fraction = time_served.fraction_done;
        let items: Vec<ChecklistItemProgress> = t
            .content
            .programme_items
            .iter()
            .map(|item| item_progress(i, item, None, fraction))
            .collect();
        checklist.push(ChecklistProgress {
            placement_id: None,
            placement_type: None,
            name: t.content.name.clone(),
            start_date: None,
            end_date: None,
            elapsed: round2(fraction),
            complete_items: items.iter().filter(|x| x.complete).count(),
            total_items: items.len(),
            items,
        });
    }

    // Delmål.
    let final_map = i.final_decided.as_ref().map(|(_, m)| m);
    let mut items_map = with_items;
    let delmal_progress: Vec<DelmalProgress> = delmal
        .iter()
        .map(|(code, sv, en)| {
            let evidence = i.evidence.get(code).cloned().unwrap_or_default();
            let summary = i.summary.get(code).cloned();
            let final_judgement = final_map.and_then(|m| m.get(code).cloned());
            let state = if final_judgement.as_deref() == Some("achieved") {
                DelmalState::Achieved
            } else if summary.as_deref() == Some("achieved") && evidence.records() > 0 {
                DelmalState::ReadyForFinalAssessment
            } else if evidence.total() > 0 {
                DelmalState::InProgress
            } else {
                DelmalState::NotStarted
            };
            let items = items_map
                .as_mut()
                .and_then(|m| m.remove(code))
                .unwrap_or_default();
            DelmalProgress {
                code: code.clone(),
                title_sv: sv.clone(),
                title_en: en.clone(),
                state,
                evidence,
                summary_judgement: summary,
                final_judgement,
                items,
            }
        })
        .collect();

    let pace = pace(
        i,
        t,
        today,
        &plan,
        &time_served,
        &checklist,
        &delmal_progress,
    );
    let prerequisites = super::prerequisites::prerequisites(&t.content, &checklist);
    Progress {
        enrolment_id: i.e.id.clone(),
        trainee_id: i.e.trainee_id.clone(),
        as_of: today,
        time_served,
        pace,
        delmal: delmal_progress,
        checklist,
        prerequisites,
        final_decision: i.final_decided.as_ref().map(|(d, _)| d.clone()),
        // Read by `service::progress` for one enrolment (not part of the evaluation).
        transferred: Vec::new(),
    }
}

/// After a final assessment decided "not yet" the trainee goes on, and is told what is
/// missing: the delmål not judged achieved, and the assessors' own words.
fn final_not_yet(i: &Inputs) -> Option<String> {
    let (decision, judgements) = i.final_decided.as_ref()?;
    if decision != "not_yet" {
        return None;
    }
    let mut open: Vec<&str> = judgements
        .iter()
        .filter(|(_, j)| j.as_str() != "achieved")
        .map(|(code, _)| code.as_str())
        .collect();
    open.sort_by_key(|c| code_order(c));
    let mut message = String::from("the final assessment decided not yet");
    if !open.is_empty() {
        message.push_str(&format!("; not yet achieved: {}", open.join(", ")));
    }
    let missing = i.final_missing.trim();
    if !missing.is_empty() {
        message.push_str(&format!("; missing: {missing}"));
    }
    Some(message)
}

/// Delmål codes in their natural order (BT2 before BT10).
fn code_order(code: &str) -> (String, u32) {
    let digits = code.trim_start_matches(|c: char| !c.is_ascii_digit());
    let prefix = &code[..code.len() - digits.len()];
    (prefix.to_string(), digits.parse().unwrap_or(u32::MAX))
}

pub(crate) fn pace(
    i: &Inputs,
    t: &templates::ProgrammeTemplate,
    today: NaiveDate,
    plan: &Plan,
    served: &TimeServed,
    checklist: &[ChecklistProgress],
    delmal: &[DelmalProgress],
) -> Pace {
    let mut checklist_expected = 0.0;
    let mut checklist_done = 0.0;
    let mut assessments_expected = 0.0;
    for c in checklist {
        for item in &c.items {
            if item.kind == ChecklistKind::Assessment {
                assessments_expected += item.expected_by_now;
            } else {
                checklist_expected += item.expected_by_now;
                checklist_done +=
                    (item.done.min(item.required) as f64).min(item.expected_by_now.ceil());
            }
        }
    }
    let assessments_signed: i64 = i.signed.values().sum();

    // Supervision: sessions due at each placement's cadence over its elapsed days; the
    // gap in the current placement since the last session (or its start).
    let mut supervision_expected = 0;
    let mut current: Option<(&PlacementBasics, i32)> = None;
    for p in &i.placements {
        let every = t
            .placement_type(&p.placement_type)
            .map(|k| k.supervision_every_days)
            .filter(|d| *d > 0)
            .unwrap_or(t.content.supervision_every_days.max(1));
        if today >= p.start {
            // Days on leave bring no supervision due.
            let days = plan.days_present(p.start, today.min(p.end));
            supervision_expected += (days / f64::from(every)).floor() as i64;
        }
        if p.start <= today && today <= p.end {
            current = Some((p, every));
        }
    }
    // Sessions entered ahead of their date are not held yet.
    let supervision_held = i.supervision.iter().filter(|(_, d, _)| *d <= today).count() as i64;
    let last_supervision_on = i
        .supervision
        .iter()
        .map(|(_, d, _)| *d)
        .filter(|d| *d <= today)
        .max();
    let (days_since, every, overdue) = match current {
        Some((p, every)) => {
            let since = last_supervision_on
                .filter(|d| *d >= p.start)
                .unwrap_or(p.start);
            // Days since the last session, leave not counted.
            let gap = match since.succ_opt() {
                Some(next) => plan.days_present(next, today).floor() as i64,
                None => 0,
            };
            (Some(gap), Some(every), gap > i64::from(every))
        }
        None => (None, None, false),
    };

    let mut reasons = Vec::new();
    let mut flag = PaceFlag::OnPace;
    let mut raise = |f: PaceFlag, code: &str, message: String, reasons: &mut Vec<PaceReason>| {
        flag = flag.max(f);
        reasons.push(PaceReason {
            code: code.into(),
            message,
        });
    };
    let judge = |expected: f64, done: f64| -> Option<PaceFlag> {
        let short = expected - done;
        if expected < 1.0 || short < 1.0 {
            None
        } else if done < expected * 0.5 {
            Some(PaceFlag::AtRisk)
        } else if done < expected * 0.8 {
            Some(PaceFlag::Behind)
        } else {
            None
        }
    };
    if i.e.status == EnrolmentStatus::Active {
        if let Some(reason) = final_not_yet(i) {
            raise(
                PaceFlag::Behind,
                "final_assessment_not_yet",
                reason,
                &mut reasons,
            );
        }
        if let Some(f) = judge(checklist_expected, checklist_done) {
            raise(
                f,
                "checklist_behind",
                format!(
                    "{checklist_done:.0} of {:.0} checklist items expected by now are done",
                    checklist_expected.ceil()
                ),
                &mut reasons,
            );
        }
        if let Some(f) = judge(assessments_expected, assessments_signed as f64) {
            raise(
                f,
                "assessments_behind",
                format!(
                    "{assessments_signed} signed assessments; {:.0} expected by now",
                    assessments_expected.ceil()
                ),
                &mut reasons,
            );
        }
        if let (Some(gap), Some(every)) = (days_since, every) {
            if gap > i64::from(every) * 2 {
                raise(
                    PaceFlag::AtRisk,
                    "supervision_overdue",
                    format!("no supervision session for {gap} days; due every {every} days"),
                    &mut reasons,
                );
            } else if gap > i64::from(every) {
                raise(
                    PaceFlag::Behind,
                    "supervision_overdue",
                    format!("no supervision session for {gap} days; due every {every} days"),
                    &mut reasons,
                );
            }
        }
        if let Some(f) = judge(supervision_expected as f64, supervision_held as f64) {
            raise(
                f,
                "supervision_sessions_behind",
                format!("{supervision_held} supervision sessions held; {supervision_expected} due by now"),
                &mut reasons,
            );
        }
        let without = delmal
            .iter()
            .filter(|d| d.state == DelmalState::NotStarted)
            .count();
        if without > 0 && served.fraction_done >= 0.5 {
            let f = if served.fraction_done >= 0.75 {
                PaceFlag::AtRisk
            } else {
                PaceFlag::Behind
            };
            raise(
                f,
                "delmal_without_evidence",
                format!(
                    "{without} delmål without evidence at {:.0}% of the time",
                    served.fraction_done * 100.0
                ),
                &mut reasons,
            );
        }
    }
    Pace {
        flag,
        reasons,
        checklist_expected: round2(checklist_expected),
        checklist_done: round2(checklist_done),
        assessments_expected: round2(assessments_expected),
        assessments_signed,
        supervision_expected,
        supervision_held,
        last_supervision_on,
        days_since_supervision: days_since,
        supervision_every_days: every,
        supervision_overdue: overdue,
        assessments_awaiting_signature: i.awaiting_signature,
        supervision_flags: super::supervision_flags::flags(i, today),
    }
}

#[cfg(test)]
#[path = "evaluation_tests.rs"]
mod tests;
