use std::collections::HashMap;

use chrono::NaiveDate;

use super::*;
use crate::progress::inputs::{EnrolmentBasics, PlacementBasics};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("date")
}

fn placement(id: &str, start: NaiveDate, end: NaiveDate) -> PlacementBasics {
    PlacementBasics {
        id: id.into(),
        placement_type: "akut".into(),
        start,
        end,
    }
}

/// A BT year: placement 1 January to April, placement 2 May to August (midpoint 1 July),
/// with "hhl" main supervisor all year.
fn bt() -> Inputs {
    Inputs {
        e: EnrolmentBasics {
            id: "enr".into(),
            trainee_id: "trainee".into(),
            organisation_id: "org".into(),
            template_id: "tpl".into(),
            template_version: 1,
            track: "bt_standalone".into(),
            start: d(2026, 1, 1),
            planned_end: d(2026, 12, 31),
            extent_percent: 100,
            status: crate::enrolment::enums::EnrolmentStatus::Active,
        },
        placements: vec![
            placement("p1", d(2026, 1, 1), d(2026, 4, 30)),
            placement("p2", d(2026, 5, 1), d(2026, 8, 31)),
        ],
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
        supervision_steps: SupervisionSteps {
            main_supervisors: vec![("hhl".into(), d(2026, 1, 1), None)],
            ..Default::default()
        },
    }
}

fn codes(i: &Inputs, today: NaiveDate) -> Vec<(String, String)> {
    flags(i, today)
        .into_iter()
        .map(|f| (f.code, f.placement_id))
        .collect()
}

fn has(i: &Inputs, today: NaiveDate, code: &str, placement: &str) -> bool {
    codes(i, today).contains(&(code.to_string(), placement.to_string()))
}

#[test]
fn the_midpoint_is_the_middle_day_rounded_down() {
    assert_eq!(midpoint(d(2026, 5, 1), d(2026, 8, 31)), d(2026, 7, 1));
    assert_eq!(midpoint(d(2026, 5, 1), d(2026, 5, 2)), d(2026, 5, 1));
    assert_eq!(midpoint(d(2026, 5, 1), d(2026, 5, 1)), d(2026, 5, 1));
}

#[test]
fn the_mid_placement_talk_is_missing_from_the_day_after_the_midpoint() {
    let mut i = bt();
    i.supervision_steps
        .handovers
        .push((Some("p1".into()), Some("p2".into()), d(2026, 4, 28)));
    assert!(!has(&i, d(2026, 7, 1), "mid_placement_talk_missing", "p2"));
    assert!(has(&i, d(2026, 7, 2), "mid_placement_talk_missing", "p2"));
    let f = flags(&i, d(2026, 7, 2));
    let mid = f.iter().find(|f| f.code == MID_PLACEMENT_TALK_MISSING);
    assert_eq!(mid.map(|f| f.since), Some(d(2026, 7, 2)), "{f:?}");
    // Placement 1 has none: there the main supervisor is the placement supervisor.
    assert!(!has(&i, d(2026, 3, 15), "mid_placement_talk_missing", "p1"));
}

#[test]
fn only_a_session_with_the_main_supervisor_in_the_placement_counts() {
    let mut i = bt();
    // With the placement supervisor alone: not the talk.
    i.supervision_steps.sessions.push((
        Some("p2".into()),
        d(2026, 6, 10),
        vec!["trainee".into(), "tjghl".into()],
    ));
    // With the main supervisor, but in placement 1: not this placement's.
    i.supervision_steps.sessions.push((
        Some("p1".into()),
        d(2026, 4, 10),
        vec!["trainee".into(), "hhl".into()],
    ));
    assert!(has(&i, d(2026, 7, 2), "mid_placement_talk_missing", "p2"));
    i.supervision_steps.sessions.push((
        Some("p2".into()),
        d(2026, 6, 30),
        vec!["trainee".into(), "hhl".into()],
    ));
    assert!(!has(&i, d(2026, 7, 2), "mid_placement_talk_missing", "p2"));
}

#[test]
fn a_former_main_supervisor_does_not_count_after_their_assignment_ended() {
    let mut i = bt();
    i.supervision_steps.main_supervisors = vec![("old".into(), d(2026, 1, 1), Some(d(2026, 6, 1)))];
    i.supervision_steps.sessions.push((
        Some("p2".into()),
        d(2026, 6, 15),
        vec!["trainee".into(), "old".into()],
    ));
    assert!(has(&i, d(2026, 7, 2), "mid_placement_talk_missing", "p2"));
}

#[test]
fn other_tracks_have_no_mid_placement_talk() {
    let mut i = bt();
    i.e.track = "st_2021".into();
    assert!(!has(&i, d(2026, 7, 2), "mid_placement_talk_missing", "p2"));
}

#[test]
fn a_handover_is_missing_once_the_next_placement_has_begun_without_one() {
    let mut i = bt();
    assert!(!has(&i, d(2026, 4, 30), "handover_missing", "p2"));
    assert!(has(&i, d(2026, 5, 1), "handover_missing", "p2"));
    // A handover planned for later does not count as held.
    i.supervision_steps
        .handovers
        .push((Some("p1".into()), Some("p2".into()), d(2026, 5, 5)));
    assert!(has(&i, d(2026, 5, 1), "handover_missing", "p2"));
    assert!(!has(&i, d(2026, 5, 5), "handover_missing", "p2"));
}

#[test]
fn a_summary_assessment_is_missing_after_the_placement_ends() {
    let mut i = bt();
    assert!(!has(&i, d(2026, 4, 30), "summary_assessment_missing", "p1"));
    assert!(has(&i, d(2026, 5, 1), "summary_assessment_missing", "p1"));
    i.supervision_steps.summarised.insert("p1".into());
    assert!(!has(&i, d(2026, 5, 1), "summary_assessment_missing", "p1"));
}

#[test]
fn a_finished_enrolment_has_no_flags() {
    let mut i = bt();
    i.e.status = crate::enrolment::enums::EnrolmentStatus::Completed;
    assert!(flags(&i, d(2026, 12, 1)).is_empty());
    assert!(unplanned_handovers(&i, d(2026, 4, 20), 14).is_empty());
}

#[test]
fn a_placement_change_within_fourteen_days_without_a_handover_is_reminded() {
    let mut i = bt();
    assert!(unplanned_handovers(&i, d(2026, 4, 16), 14).is_empty());
    assert_eq!(
        unplanned_handovers(&i, d(2026, 4, 17), 14),
        vec![d(2026, 5, 1)]
    );
    assert_eq!(
        unplanned_handovers(&i, d(2026, 4, 30), 14),
        vec![d(2026, 5, 1)]
    );
    // On the day it begins it is no longer ahead: the flag takes over.
    assert!(unplanned_handovers(&i, d(2026, 5, 1), 14).is_empty());
    // Planned (held later): no reminder.
    i.supervision_steps
        .handovers
        .push((Some("p1".into()), Some("p2".into()), d(2026, 4, 29)));
    assert!(unplanned_handovers(&i, d(2026, 4, 20), 14).is_empty());
}

#[test]
fn the_main_supervisor_today_is_the_latest_valid_assignment() {
    let mut i = bt();
    i.supervision_steps
        .main_supervisors
        .push(("new".into(), d(2026, 6, 1), None));
    assert_eq!(main_supervisor(&i, d(2026, 5, 31)).as_deref(), Some("hhl"));
    assert_eq!(main_supervisor(&i, d(2026, 6, 1)).as_deref(), Some("new"));
}
