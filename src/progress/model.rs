//! What progress looks like: the response types of the progress endpoints and the
//! dossier (states, evidence, checklist, pace).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use crate::curriculum::templates::ChecklistKind;
use crate::enrolment::time::TimeServed;

/// Where a delmål stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DelmalState {
    /// No evidence yet.
    NotStarted,
    /// Some evidence.
    InProgress,
    /// A signed summary assessment judges it achieved and other evidence backs it: ready
    /// for the final assessment.
    ReadyForFinalAssessment,
    /// The final assessment judged it achieved.
    Achieved,
}

/// How a trainee keeps pace with their time served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaceFlag {
    OnPace,
    Behind,
    AtRisk,
}

impl PaceFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            PaceFlag::OnPace => "on_pace",
            PaceFlag::Behind => "behind",
            PaceFlag::AtRisk => "at_risk",
        }
    }
    pub fn parse(s: &str) -> Option<PaceFlag> {
        match s {
            "on_pace" => Some(PaceFlag::OnPace),
            "behind" => Some(PaceFlag::Behind),
            "at_risk" => Some(PaceFlag::AtRisk),
            _ => None,
        }
    }
}

/// Evidence behind a delmål, counted by kind of record.
#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
pub struct EvidenceCounts {
    pub activities: i64,
    /// Signed formative assessments, current versions only, by instrument.
    pub assessments: BTreeMap<String, i64>,
    pub supervision_sessions: i64,
    pub handover_talks: i64,
    pub final_check_ins: i64,
    /// Signed summary assessments that judge the delmål.
    pub summary_assessments: i64,
    /// Credited service before licence that supports it.
    pub credited_service: i64,
}

impl EvidenceCounts {
    pub(crate) fn records(&self) -> i64 {
        self.activities
            + self.assessments.values().sum::<i64>()
            + self.supervision_sessions
            + self.handover_talks
            + self.final_check_ins
            + self.credited_service
    }
    pub fn total(&self) -> i64 {
        self.records() + self.summary_assessments
    }
}

/// One record behind a delmål.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EvidenceItem {
    /// `activity`, `assessment`, `supervision_session`, `handover_talk`,
    /// `final_check_in`, `summary_assessment`, `credited_service`.
    #[schema(example = "assessment")]
    pub record_type: String,
    pub id: String,
    #[schema(example = "2026-10-14")]
    pub date: Option<NaiveDate>,
    /// The activity's title, the instrument of an assessment, a talk's topics, or a
    /// summary assessment's judgement of this delmål.
    #[schema(example = "Bemötande i svåra samtal")]
    pub title: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DelmalProgress {
    #[schema(example = "BT7")]
    pub code: String,
    pub title_sv: String,
    pub title_en: Option<String>,
    pub state: DelmalState,
    pub evidence: EvidenceCounts,
    /// The latest judgement of a signed summary assessment (`achieved`, `progressing`,
    /// `not_yet`).
    pub summary_judgement: Option<String>,
    /// The decided final assessment's judgement (`achieved`, `progressing`, `not_yet`).
    pub final_judgement: Option<String>,
    /// The records, oldest first (with `items=true`, and in the dossier).
    pub items: Vec<EvidenceItem>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChecklistItemProgress {
    pub item_id: Option<String>,
    pub kind: ChecklistKind,
    pub title: String,
    pub delmal: Vec<String>,
    #[schema(example = 2)]
    pub required: i64,
    #[schema(example = 1)]
    pub done: i64,
    pub complete: bool,
    /// How many should be done by today, pro rata of the placement's elapsed time.
    #[schema(example = 1.5)]
    pub expected_by_now: f64,
}

/// The checklist of one placement, or of the whole programme (`placement_id` null).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChecklistProgress {
    pub placement_id: Option<String>,
    #[schema(example = "allmanmedicin")]
    pub placement_type: Option<String>,
    pub name: String,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// Share of the placement's time served so far (each day at its extent, less leave),
    /// 0 to 1; for the programme's own items, the share of the nominal length done.
    pub elapsed: f64,
    pub items: Vec<ChecklistItemProgress>,
    pub complete_items: usize,
    pub total_items: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaceReason {
    /// `checklist_behind`, `assessments_behind`, `supervision_overdue`,
    /// `supervision_sessions_behind`, `delmal_without_evidence`.
    #[schema(example = "supervision_overdue")]
    pub code: String,
    #[schema(example = "Last supervision session 23 days ago; due every 14 days")]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Pace {
    pub flag: PaceFlag,
    pub reasons: Vec<PaceReason>,
    /// Checklist items (activities, courses, teaching, topics) expected by today and done.
    pub checklist_expected: f64,
    pub checklist_done: f64,
    /// Signed assessments the checklists expect by today, and signed so far.
    pub assessments_expected: f64,
    pub assessments_signed: i64,
    /// Supervision sessions due by today at the placements' cadence, and held.
    pub supervision_expected: i64,
    pub supervision_held: i64,
    pub last_supervision_on: Option<NaiveDate>,
    /// Days since the last supervision session (or the current placement's start), days
    /// on leave not counted (half for half-time leave).
    pub days_since_supervision: Option<i64>,
    /// Cadence of the current placement.
    pub supervision_every_days: Option<i32>,
    pub supervision_overdue: bool,
    pub assessments_awaiting_signature: i64,
    /// Supervision steps of the plan that are missing: the mid-placement talk with the
    /// main supervisor, a handover talk, a summary assessment (see `docs/supervision.md`).
    /// Shown beside the pace; they do not change its flag.
    pub supervision_flags: Vec<super::supervision_flags::SupervisionFlag>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Progress {
    pub enrolment_id: String,
    pub trainee_id: String,
    pub as_of: NaiveDate,
    pub time_served: TimeServed,
    pub pace: Pace,
    pub delmal: Vec<DelmalProgress>,
    pub checklist: Vec<ChecklistProgress>,
    /// Steps the template lets the trainee take only after some checklist items (e.g.
    /// `AT-tentamen` after a sit-in in each main placement), with what is missing.
    pub prerequisites: Vec<super::prerequisites::Prerequisite>,
    /// Final-assessment decision, once decided: `achieved` or `not_yet`.
    pub final_decision: Option<String>,
    /// Records imported from another service (issue 17), each with its provenance
    /// ("signed on service X by Y on date Z"); empty when nothing was imported. Filled
    /// for one enrolment's progress, not in the cohort overview.
    pub transferred: Vec<crate::portfolio::transferred::TransferredRecord>,
}
