//! Unit tests of the progress evaluation without a database: a placement's elapsed
//! share, the checklist expected by today, delmål states, and pace with its reasons
//! (checklist, assessments, supervision cadence, delmål without evidence).

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;

use super::{elapsed, evaluate, DelmalList};
use crate::curriculum::templates::{ProgrammeTemplate, TemplateContent};
use crate::progress::inputs::{EnrolmentBasics, Inputs, PlacementBasics};
use crate::progress::model::{DelmalState, EvidenceCounts, PaceFlag, Progress};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("a valid test date")
}

const START: (i32, u32, u32) = (2026, 1, 1);

fn start() -> NaiveDate {
    d(START.0, START.1, START.2)
}

/// The `n`th day of the enrolment, the start being day 1.
fn day(n: i64) -> NaiveDate {
    start() + Duration::days(n - 1)
}

/// A template with one placement type whose checklist is `checklist` (JSON items) and
/// whose supervision cadence is `every` days; `months` long at full time.
fn template(months: i32, every: i32, checklist: serde_json::Value) -> ProgrammeTemplate {
    let content: TemplateContent = serde_json::from_value(json!({
        "name": "BT test",
        "duration_months": months,
        "supervision_every_days": 14,
        "placement_types": [{
            "key": "allmanmedicin",
            "name": "Allmänmedicin",
            "months": months,
            "supervision_every_days": every,
            "checklist": checklist,
        }],
    }))
    .expect("a valid template");
    let at = DateTime::<Utc>::from_timestamp(0, 0).expect("the epoch");
    ProgrammeTemplate {
        id: "tpl".into(),
        version: 1,
        organisation_id: "org".into(),
        regulation_id: "bt-2021".into(),
        content,
        latest: true,
        created_by: None,
        created_at: at,
        updated_at: at,
    }
}

/// One full-time enrolment with one placement of 100 days from the start.
fn inputs() -> Inputs {
    Inputs {
        e: EnrolmentBasics {
            id: "enr".into(),
            trainee_id: "trainee".into(),
            organisation_id: "org".into(),
            template_id: "tpl".into(),
            template_version: 1,
            track: "bt".into(),
            start: start(),
            planned_end: day(365),
            extent_percent: 100,
            status: crate::enrolment::enums::EnrolmentStatus::Active,
        },
        placements: vec![PlacementBasics {
            id: "p1".into(),
            placement_type: "allmanmedicin".into(),
            start: start(),
            end: day(100),
        }],
        leave: Vec::new(),
        extent: Vec::new(),
        credited_days: 0,
        items_done: HashMap::new(),
        signed: HashMap::new(),
        awaiting_signature: 0,
        supervision: Vec::new(),
        evidence: HashMap::new(),
        summary: HashMap::new(),
        final_decided: None,
        final_missing: String::new(),
        supervision_steps: Default::default(),
    }
}

fn no_delmal() -> DelmalList {
    Vec::new()
}

fn run(i: &Inputs, t: &ProgrammeTemplate, delmal: &DelmalList, today: NaiveDate) -> Progress {
    evaluate(i, t, delmal, today, None)
}

fn codes(p: &Progress) -> Vec<&str> {
    p.pace.reasons.iter().map(|r| r.code.as_str()).collect()
}

/// Supervision that never falls due inside the tests below, so that one cause is
/// judged at a time.
const RARELY: i32 = 365;

// ---- Elapsed share of a placement -----------------------------------------------------

#[test]
fn the_elapsed_share_counts_whole_days_inclusively() {
    let (s, e) = (d(2026, 1, 1), d(2026, 1, 10));
    assert_eq!(elapsed(s, e, d(2025, 12, 31)), 0.0);
    assert_eq!(elapsed(s, e, s), 0.1);
    assert_eq!(elapsed(s, e, d(2026, 1, 5)), 0.5);
    assert_eq!(elapsed(s, e, e), 1.0);
    assert_eq!(elapsed(s, e, d(2026, 6, 1)), 1.0);
}

#[test]
fn a_placement_ending_before_it_starts_is_wholly_elapsed_once_begun() {
    assert_eq!(elapsed(d(2026, 1, 10), d(2026, 1, 1), d(2026, 1, 10)), 1.0);
    assert_eq!(elapsed(d(2026, 1, 10), d(2026, 1, 1), d(2026, 1, 9)), 0.0);
}

#[test]
fn the_elapsed_share_crosses_a_leap_day() {
    // 2028-02-01 to 2028-03-01 is 30 days; 2028-02-29 is the 29th.
    let share = elapsed(d(2028, 2, 1), d(2028, 3, 1), d(2028, 2, 29));
    assert!((share - 29.0 / 30.0).abs() < 1e-12);
}

// ---- Checklist ------------------------------------------------------------------------

fn ten_activities() -> serde_json::Value {
    json!([{"id": "item-1", "kind": "learning_activity", "title": "Akutbesök", "count": 10}])
}

#[test]
fn checklist_items_are_expected_pro_rata_of_the_placements_elapsed_time() {
    let t = template(12, RARELY, ten_activities());
    let mut i = inputs();
    i.items_done.insert("item-1".into(), 3);
    let p = run(&i, &t, &no_delmal(), day(50));
    let c = &p.checklist[0];
    assert_eq!(c.placement_id.as_deref(), Some("p1"));
    assert_eq!(c.name, "Allmänmedicin");
    assert_eq!(c.elapsed, 0.5);
    assert_eq!(c.items[0].required, 10);
    assert_eq!(c.items[0].done, 3);
    assert_eq!(c.items[0].expected_by_now, 5.0);
    assert!(!c.items[0].complete);
    assert_eq!(c.complete_items, 0);
    assert_eq!(c.total_items, 1);
}

#[test]
fn doing_four_fifths_of_what_is_expected_is_on_pace() {
    let t = template(12, RARELY, ten_activities());
    let mut i = inputs();
    i.items_done.insert("item-1".into(), 4);
    let p = run(&i, &t, &no_delmal(), day(50));
    assert_eq!(p.pace.checklist_expected, 5.0);
    assert_eq!(p.pace.checklist_done, 4.0);
    assert_eq!(p.pace.flag, PaceFlag::OnPace);
    assert!(p.pace.reasons.is_empty());
}

#[test]
fn below_four_fifths_is_behind_and_below_half_is_at_risk() {
    let t = template(12, RARELY, ten_activities());
    let mut i = inputs();
    i.items_done.insert("item-1".into(), 3);
    let p = run(&i, &t, &no_delmal(), day(50));
    assert_eq!(p.pace.flag, PaceFlag::Behind);
    assert_eq!(codes(&p), ["checklist_behind"]);
    assert_eq!(
        p.pace.reasons[0].message,
        "3 of 5 checklist items expected by now are done"
    );

    i.items_done.insert("item-1".into(), 2);
    let p = run(&i, &t, &no_delmal(), day(50));
    assert_eq!(p.pace.flag, PaceFlag::AtRisk);
    assert_eq!(codes(&p), ["checklist_behind"]);
}

#[test]
fn a_shortfall_under_one_item_is_ignored() {
    // Day 10 of 100: one item expected, none done.
    let t = template(12, RARELY, ten_activities());
    let p = run(&inputs(), &t, &no_delmal(), day(10));
    assert_eq!(p.pace.checklist_expected, 1.0);
    assert_eq!(p.pace.checklist_done, 0.0);
    assert_eq!(p.pace.flag, PaceFlag::AtRisk, "one whole item short counts");
    let p = run(&inputs(), &t, &no_delmal(), day(9));
    assert_eq!(p.pace.checklist_expected, 0.9);
    assert_eq!(p.pace.flag, PaceFlag::OnPace);
}

#[test]
fn items_done_ahead_of_time_do_not_make_up_for_others_behind() {
    // Done is counted at most up to what is expected of each item (rounded up).
    let checklist = json!([
        {"id": "a", "kind": "learning_activity", "title": "A", "count": 10},
        {"id": "b", "kind": "course", "title": "B", "count": 10},
    ]);
    let t = template(12, RARELY, checklist);
    let mut i = inputs();
    i.items_done.insert("a".into(), 10);
    let p = run(&i, &t, &no_delmal(), day(50));
    assert_eq!(p.pace.checklist_expected, 10.0);
    assert_eq!(p.pace.checklist_done, 5.0);
    assert_eq!(p.pace.flag, PaceFlag::Behind);
}

#[test]
fn signed_assessments_are_judged_against_the_checklists_assessments() {
    let checklist = json!([
        {"kind": "assessment", "title": "Mini-CEX", "assessment_type": "mini_cex", "count": 4}
    ]);
    let t = template(12, RARELY, checklist);
    let mut i = inputs();
    let p = run(&i, &t, &no_delmal(), day(50));
    assert_eq!(p.pace.assessments_expected, 2.0);
    assert_eq!(p.pace.assessments_signed, 0);
    assert_eq!(p.pace.flag, PaceFlag::AtRisk);
    assert_eq!(codes(&p), ["assessments_behind"]);
    assert_eq!(
        p.pace.reasons[0].message,
        "0 signed assessments; 2 expected by now"
    );
    // Assessments are not checklist items of the other kind.
    assert_eq!(p.pace.checklist_expected, 0.0);

    i.signed.insert((Some("p1".into()), "mini_cex".into()), 2);
    let p = run(&i, &t, &no_delmal(), day(50));
    assert_eq!(p.checklist[0].items[0].done, 2);
    assert_eq!(p.pace.flag, PaceFlag::OnPace);
}

// ---- Supervision ----------------------------------------------------------------------

#[test]
fn supervision_is_overdue_only_after_more_days_than_the_cadence() {
    let t = template(12, 7, json!([]));
    let mut i = inputs();
    i.supervision.push((Some("p1".into()), start(), Vec::new()));

    // Seven days after the last session: due today, not overdue.
    let p = run(&i, &t, &no_delmal(), start() + Duration::days(7));
    assert_eq!(p.pace.days_since_supervision, Some(7));
    assert_eq!(p.pace.supervision_every_days, Some(7));
    assert!(!p.pace.supervision_overdue);
    assert_eq!(p.pace.flag, PaceFlag::OnPace);

    // Eight days: overdue, behind.
    let p = run(&i, &t, &no_delmal(), start() + Duration::days(8));
    assert!(p.pace.supervision_overdue);
    assert_eq!(p.pace.flag, PaceFlag::Behind);
    assert_eq!(codes(&p), ["supervision_overdue"]);
    assert_eq!(
        p.pace.reasons[0].message,
        "no supervision session for 8 days; due every 7 days"
    );
}

#[test]
fn more_than_twice_the_cadence_without_supervision_is_at_risk() {
    let t = template(12, 7, json!([]));
    let mut i = inputs();
    i.supervision.push((Some("p1".into()), start(), Vec::new()));
    let p = run(&i, &t, &no_delmal(), start() + Duration::days(14));
    assert_eq!(p.pace.flag, PaceFlag::Behind);
    let p = run(&i, &t, &no_delmal(), start() + Duration::days(15));
    assert_eq!(p.pace.flag, PaceFlag::AtRisk);
    // Sixteen days at a weekly cadence: two sessions due, one held.
    assert_eq!(p.pace.supervision_expected, 2);
    assert_eq!(p.pace.supervision_held, 1);
    assert_eq!(
        codes(&p),
        ["supervision_overdue", "supervision_sessions_behind"]
    );
}

#[test]
fn without_any_session_the_gap_runs_from_the_placements_start() {
    let t = template(12, 14, json!([]));
    let p = run(&inputs(), &t, &no_delmal(), day(10));
    assert_eq!(p.pace.last_supervision_on, None);
    assert_eq!(p.pace.days_since_supervision, Some(9));
    assert_eq!(p.pace.flag, PaceFlag::OnPace);
}

#[test]
fn a_session_dated_after_today_is_not_held_yet() {
    let t = template(12, 7, json!([]));
    let mut i = inputs();
    i.supervision.push((Some("p1".into()), day(30), Vec::new()));
    let p = run(&i, &t, &no_delmal(), day(9));
    assert_eq!(p.pace.supervision_held, 0);
    assert_eq!(p.pace.last_supervision_on, None);
    assert!(p.pace.supervision_overdue);
}

#[test]
fn a_placement_type_without_a_cadence_uses_the_templates() {
    // 0 in the placement type: the template's 14 days apply.
    let t = template(12, 0, json!([]));
    let p = run(&inputs(), &t, &no_delmal(), day(10));
    assert_eq!(p.pace.supervision_every_days, Some(14));
}

#[test]
fn outside_every_placement_there_is_no_current_cadence() {
    let t = template(12, 7, json!([]));
    let p = run(&inputs(), &t, &no_delmal(), day(101));
    assert_eq!(p.pace.supervision_every_days, None);
    assert_eq!(p.pace.days_since_supervision, None);
    assert!(!p.pace.supervision_overdue);
}

// ---- Delmål ---------------------------------------------------------------------------

fn one_delmal() -> DelmalList {
    vec![("BT1".into(), "Akut omhändertagande".into(), None)]
}

#[test]
fn delmal_states_follow_evidence_summary_and_final_judgement() {
    let t = template(12, RARELY, json!([]));
    let mut i = inputs();
    let state = |i: &Inputs| run(i, &t, &one_delmal(), day(10)).delmal[0].state;
    assert_eq!(state(&i), DelmalState::NotStarted);

    // A summary assessment alone is progress, not readiness.
    i.summary.insert("BT1".into(), "achieved".into());
    i.evidence.insert(
        "BT1".into(),
        EvidenceCounts {
            summary_assessments: 1,
            ..EvidenceCounts::default()
        },
    );
    assert_eq!(state(&i), DelmalState::InProgress);

    // Another record backs it: ready for the final assessment.
    i.evidence.insert(
        "BT1".into(),
        EvidenceCounts {
            summary_assessments: 1,
            activities: 1,
            ..EvidenceCounts::default()
        },
    );
    assert_eq!(state(&i), DelmalState::ReadyForFinalAssessment);

    let judged = HashMap::from([("BT1".to_string(), "achieved".to_string())]);
    i.final_decided = Some(("achieved".into(), judged));
    let p = run(&i, &t, &one_delmal(), day(10));
    assert_eq!(p.delmal[0].state, DelmalState::Achieved);
    assert_eq!(p.final_decision.as_deref(), Some("achieved"));
}

#[test]
fn delmal_without_evidence_count_from_half_of_the_time_and_are_at_risk_from_three_quarters() {
    // Two months (60.875 days) at full time.
    let t = template(2, RARELY, json!([]));
    let i = inputs();
    let p = run(&i, &t, &one_delmal(), day(30));
    assert_eq!(p.time_served.fraction_done, 0.49);
    assert_eq!(p.pace.flag, PaceFlag::OnPace);

    let p = run(&i, &t, &one_delmal(), day(31));
    assert_eq!(p.time_served.fraction_done, 0.51);
    assert_eq!(p.pace.flag, PaceFlag::Behind);
    assert_eq!(codes(&p), ["delmal_without_evidence"]);
    assert_eq!(
        p.pace.reasons[0].message,
        "1 delmål without evidence at 51% of the time"
    );

    let p = run(&i, &t, &one_delmal(), day(46));
    assert_eq!(p.time_served.fraction_done, 0.76);
    assert_eq!(p.pace.flag, PaceFlag::AtRisk);
}

#[test]
fn a_delmal_with_evidence_raises_nothing() {
    let t = template(2, RARELY, json!([]));
    let mut i = inputs();
    i.evidence.insert(
        "BT1".into(),
        EvidenceCounts {
            activities: 1,
            ..EvidenceCounts::default()
        },
    );
    let p = run(&i, &t, &one_delmal(), day(46));
    assert_eq!(p.delmal[0].state, DelmalState::InProgress);
    assert_eq!(p.pace.flag, PaceFlag::OnPace);
}

#[test]
fn leave_slows_the_time_served_that_delmal_are_judged_against() {
    // Ten days of full leave: on day 40, 30 days served of 60.875 (0.49).
    let t = template(2, RARELY, json!([]));
    let mut i = inputs();
    i.leave.push((day(1), day(10), 100));
    let p = run(&i, &t, &one_delmal(), day(40));
    assert_eq!(p.time_served.served_days, 30.0);
    assert_eq!(p.pace.flag, PaceFlag::OnPace);
}

#[test]
fn only_an_active_enrolment_is_judged() {
    let t = template(2, 7, ten_activities());
    let mut i = inputs();
    i.e.status = crate::enrolment::enums::EnrolmentStatus::Completed;
    let p = run(&i, &t, &one_delmal(), day(46));
    assert_eq!(p.pace.flag, PaceFlag::OnPace);
    assert!(p.pace.reasons.is_empty());
    // The figures are still reported.
    assert!(p.pace.supervision_overdue);
    assert_eq!(p.pace.checklist_expected, 4.6);
}

#[test]
fn pace_flags_read_and_write_their_api_names() {
    for (flag, name) in [
        (PaceFlag::OnPace, "on_pace"),
        (PaceFlag::Behind, "behind"),
        (PaceFlag::AtRisk, "at_risk"),
    ] {
        assert_eq!(flag.as_str(), name);
        assert_eq!(PaceFlag::parse(name), Some(flag));
        assert_eq!(serde_json::to_value(flag).ok(), Some(json!(name)));
    }
    assert_eq!(PaceFlag::parse("ahead"), None);
    assert!(PaceFlag::OnPace < PaceFlag::Behind && PaceFlag::Behind < PaceFlag::AtRisk);
}

#[test]
fn after_not_yet_the_pace_names_the_missing_delmal_and_the_assessors_words() {
    let t = template(12, RARELY, json!([]));
    let mut i = inputs();
    let judged = HashMap::from([
        ("BT10".to_string(), "not_yet".to_string()),
        ("BT2".to_string(), "not_yet".to_string()),
        ("BT1".to_string(), "achieved".to_string()),
    ]);
    i.final_decided = Some(("not_yet".into(), judged));
    i.final_missing = "Fler observerade bedömningar.".into();
    let p = run(&i, &t, &no_delmal(), day(10));
    assert_eq!(p.pace.flag, PaceFlag::Behind);
    assert_eq!(codes(&p), ["final_assessment_not_yet"]);
    assert_eq!(
        p.pace.reasons[0].message,
        "the final assessment decided not yet; not yet achieved: BT2, BT10; \
         missing: Fler observerade bedömningar."
    );
}

#[test]
fn a_completed_enrolment_raises_nothing() {
    let t = template(2, RARELY, json!([]));
    let mut i = inputs();
    i.e.status = crate::enrolment::enums::EnrolmentStatus::Completed;
    let p = run(&i, &t, &one_delmal(), day(60));
    assert_eq!(p.pace.flag, PaceFlag::OnPace);
    assert!(p.pace.reasons.is_empty());
}
