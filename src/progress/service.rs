//! Progress of a trainee: evidence per delmål, the checklist of their template version,
//! and pace against time served. The same inputs and the same evaluation serve the
//! trainee's view, the director's cohort overview and the platforms' read API, so the
//! three never disagree. Inputs are loaded for many enrolments at once with grouped
//! queries, so a cohort of hundreds costs a handful of queries, not hundreds.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use diesel::dsl::count_star;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::curriculum::catalogue;
use crate::curriculum::templates::{self, AssessmentType, ChecklistItem, ChecklistKind};
use crate::db::DbConn;
use crate::enrolment::time::{Plan, TimeServed};
use crate::error::AppError;
use crate::portfolio::links;
use crate::schema::{
    activities, assessments, credited_service, enrolments, final_assessments, leave_periods,
    placements, record_delmal, summary_assessments, talks,
};

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
    fn records(&self) -> i64 {
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
    /// The decided final assessment's judgement.
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
    /// Share of the placement's calendar time elapsed, 0 to 1.
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
    /// Days since the last supervision session (or the current placement's start).
    pub days_since_supervision: Option<i64>,
    /// Cadence of the current placement.
    pub supervision_every_days: Option<i32>,
    pub supervision_overdue: bool,
    pub assessments_awaiting_signature: i64,
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
    /// Final-assessment decision, once decided: `achieved` or `not_yet`.
    pub final_decision: Option<String>,
}

// ---- Inputs -------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct EnrolmentBasics {
    pub id: String,
    pub trainee_id: String,
    pub organisation_id: String,
    pub template_id: String,
    pub template_version: i32,
    pub track: String,
    pub start: NaiveDate,
    pub planned_end: NaiveDate,
    pub extent_percent: i32,
    pub status: String,
}

#[derive(Debug, Clone)]
struct PlacementBasics {
    id: String,
    placement_type: String,
    start: NaiveDate,
    end: NaiveDate,
}

/// Everything the evaluation needs about one enrolment, already aggregated.
#[derive(Debug, Clone)]
struct Inputs {
    e: EnrolmentBasics,
    placements: Vec<PlacementBasics>,
    leave: Vec<(NaiveDate, NaiveDate, i32)>,
    credited_days: i32,
    /// Checklist item id -> activities recorded against it.
    items_done: HashMap<String, i64>,
    /// (placement, instrument) -> signed current assessments.
    signed: HashMap<(Option<String>, String), i64>,
    awaiting_signature: i64,
    /// Supervision sessions: placement, date, topics.
    supervision: Vec<(Option<String>, NaiveDate, Vec<String>)>,
    /// Delmål -> evidence counts (records linked to it).
    evidence: HashMap<String, EvidenceCounts>,
    /// Latest signed summary judgement per delmål.
    summary: HashMap<String, String>,
    /// Decided final assessment: decision and judgements.
    final_decided: Option<(String, HashMap<String, String>)>,
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

/// SQLite allows some 32,000 bound parameters; stay well below on both backends.
const CHUNK: usize = 2_000;

type EnrolmentRow = (
    String,
    String,
    String,
    String,
    i32,
    String,
    String,
    String,
    i32,
    String,
);

pub fn basics(conn: &mut DbConn, ids: &[String]) -> Result<Vec<EnrolmentBasics>, AppError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<EnrolmentRow> = enrolments::table
            .filter(enrolments::id.eq_any(chunk))
            .select((
                enrolments::id,
                enrolments::trainee_id,
                enrolments::organisation_id,
                enrolments::template_id,
                enrolments::template_version,
                enrolments::track,
                enrolments::start_date,
                enrolments::planned_end,
                enrolments::extent_percent,
                enrolments::status,
            ))
            .load(conn)?;
        out.extend(rows.into_iter().map(|r| EnrolmentBasics {
            id: r.0,
            trainee_id: r.1,
            organisation_id: r.2,
            template_id: r.3,
            template_version: r.4,
            track: r.5,
            start: date(&r.6),
            planned_end: date(&r.7),
            extent_percent: r.8,
            status: r.9,
        }));
    }
    Ok(out)
}

fn bump(
    map: &mut HashMap<String, EvidenceCounts>,
    code: String,
    f: impl FnOnce(&mut EvidenceCounts),
) {
    f(map.entry(code).or_default());
}

/// Loads the inputs of many enrolments with grouped queries.
fn load_inputs(conn: &mut DbConn, ids: &[String]) -> Result<Vec<Inputs>, AppError> {
    let mut by_id: HashMap<String, Inputs> = HashMap::new();
    for e in basics(conn, ids)? {
        by_id.insert(
            e.id.clone(),
            Inputs {
                e,
                placements: Vec::new(),
                leave: Vec::new(),
                credited_days: 0,
                items_done: HashMap::new(),
                signed: HashMap::new(),
                awaiting_signature: 0,
                supervision: Vec::new(),
                evidence: HashMap::new(),
                summary: HashMap::new(),
                final_decided: None,
            },
        );
    }
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, String, String, String, String)> = placements::table
            .filter(placements::enrolment_id.eq_any(chunk))
            .filter(placements::removed_at.is_null())
            .order((placements::start_date, placements::id))
            .select((
                placements::enrolment_id,
                placements::id,
                placements::placement_type,
                placements::start_date,
                placements::end_date,
            ))
            .load(conn)?;
        for (e, id, kind, s, t) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                i.placements.push(PlacementBasics {
                    id,
                    placement_type: kind,
                    start: date(&s),
                    end: date(&t),
                });
            }
        }
        let rows: Vec<(String, String, String, i32)> = leave_periods::table
            .filter(leave_periods::enrolment_id.eq_any(chunk))
            .filter(leave_periods::removed_at.is_null())
            .select((
                leave_periods::enrolment_id,
                leave_periods::start_date,
                leave_periods::end_date,
                leave_periods::percent,
            ))
            .load(conn)?;
        for (e, s, t, p) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                i.leave.push((date(&s), date(&t), p));
            }
        }
        let rows: Vec<(String, i32, String)> = credited_service::table
            .filter(credited_service::enrolment_id.eq_any(chunk))
            .select((
                credited_service::enrolment_id,
                credited_service::credited_days,
                credited_service::delmal,
            ))
            .load(conn)?;
        for (e, days, codes) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                i.credited_days += days;
                for code in serde_json::from_str::<Vec<String>>(&codes).unwrap_or_default() {
                    bump(&mut i.evidence, code, |c| c.credited_service += 1);
                }
            }
        }
        let rows: Vec<(String, Option<String>, i64)> = activities::table
            .filter(activities::enrolment_id.eq_any(chunk))
            .filter(activities::deleted_at.is_null())
            .filter(activities::checklist_item_id.is_not_null())
            .group_by((activities::enrolment_id, activities::checklist_item_id))
            .select((
                activities::enrolment_id,
                activities::checklist_item_id,
                count_star(),
            ))
            .load(conn)?;
        for (e, item, n) in rows {
            if let (Some(i), Some(item)) = (by_id.get_mut(&e), item) {
                i.items_done.insert(item, n);
            }
        }
        let rows: Vec<(String, Option<String>, String, String, i64)> = assessments::table
            .filter(assessments::enrolment_id.eq_any(chunk))
            .filter(assessments::deleted_at.is_null())
            .filter(assessments::superseded_by.is_null())
            .group_by((
                assessments::enrolment_id,
                assessments::placement_id,
                assessments::instrument,
                assessments::status,
            ))
            .select((
                assessments::enrolment_id,
                assessments::placement_id,
                assessments::instrument,
                assessments::status,
                count_star(),
            ))
            .load(conn)?;
        for (e, placement, instrument, status, n) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                match status.as_str() {
                    "signed" => *i.signed.entry((placement, instrument)).or_default() += n,
                    "awaiting_signature" => i.awaiting_signature += n,
                    _ => {}
                }
            }
        }
        let rows: Vec<(String, Option<String>, String, String)> = talks::table
            .filter(talks::enrolment_id.eq_any(chunk))
            .filter(talks::deleted_at.is_null())
            .filter(talks::kind.eq("supervision"))
            .select((
                talks::enrolment_id,
                talks::placement_id,
                talks::held_on,
                talks::topics,
            ))
            .load(conn)?;
        for (e, placement, held, topics) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                i.supervision.push((
                    placement,
                    date(&held),
                    serde_json::from_str(&topics).unwrap_or_default(),
                ));
            }
        }
        // Evidence per delmål, from the links alone (a deleted record's links are gone),
        // on the (enrolment, record type, code) index.
        let rows: Vec<(String, String, i64)> = record_delmal::table
            .filter(record_delmal::enrolment_id.eq_any(chunk))
            .filter(record_delmal::record_type.eq(links::ACTIVITY))
            .group_by((record_delmal::enrolment_id, record_delmal::code))
            .select((
                record_delmal::enrolment_id,
                record_delmal::code,
                count_star(),
            ))
            .load(conn)?;
        for (e, code, n) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                bump(&mut i.evidence, code, |c| c.activities += n);
            }
        }
        let rows: Vec<(String, String, String)> = record_delmal::table
            .inner_join(assessments::table.on(assessments::id.eq(record_delmal::record_id)))
            .filter(record_delmal::enrolment_id.eq_any(chunk))
            .filter(record_delmal::record_type.eq(links::ASSESSMENT))
            .filter(assessments::deleted_at.is_null())
            .filter(assessments::superseded_by.is_null())
            .filter(assessments::status.eq("signed"))
            .select((
                record_delmal::enrolment_id,
                record_delmal::code,
                assessments::instrument,
            ))
            .load(conn)?;
        for (e, code, instrument) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                bump(&mut i.evidence, code, |c| {
                    *c.assessments.entry(instrument).or_default() += 1
                });
            }
        }
        let rows: Vec<(String, String, String)> = record_delmal::table
            .inner_join(talks::table.on(talks::id.eq(record_delmal::record_id)))
            .filter(record_delmal::enrolment_id.eq_any(chunk))
            .filter(record_delmal::record_type.eq(links::TALK))
            .filter(talks::deleted_at.is_null())
            .select((
                record_delmal::enrolment_id,
                record_delmal::code,
                talks::kind,
            ))
            .load(conn)?;
        for (e, code, kind) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                bump(&mut i.evidence, code, |c| match kind.as_str() {
                    "handover" => c.handover_talks += 1,
                    "final_check_in" => c.final_check_ins += 1,
                    _ => c.supervision_sessions += 1,
                });
            }
        }
        let rows: Vec<(String, String, Option<chrono::NaiveDateTime>)> = summary_assessments::table
            .filter(summary_assessments::enrolment_id.eq_any(chunk))
            .filter(summary_assessments::status.eq("signed"))
            .filter(summary_assessments::superseded_by.is_null())
            .order(summary_assessments::signed_at)
            .select((
                summary_assessments::enrolment_id,
                summary_assessments::judgements,
                summary_assessments::signed_at,
            ))
            .load(conn)?;
        for (e, judgements, _) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                let js: Vec<crate::portfolio::summaries::Judgement> =
                    serde_json::from_str(&judgements).unwrap_or_default();
                for j in js {
                    bump(&mut i.evidence, j.code.clone(), |c| {
                        c.summary_assessments += 1
                    });
                    // Signed in order, so the last judgement wins.
                    i.summary.insert(j.code, j.judgement);
                }
            }
        }
        let rows: Vec<(String, Option<String>, String)> = final_assessments::table
            .filter(final_assessments::enrolment_id.eq_any(chunk))
            .filter(final_assessments::status.eq("decided"))
            .order(final_assessments::decided_at)
            .select((
                final_assessments::enrolment_id,
                final_assessments::decision,
                final_assessments::judgements,
            ))
            .load(conn)?;
        for (e, decision, judgements) in rows {
            if let (Some(i), Some(decision)) = (by_id.get_mut(&e), decision) {
                let js: Vec<crate::portfolio::summaries::Judgement> =
                    serde_json::from_str(&judgements).unwrap_or_default();
                i.final_decided = Some((
                    decision,
                    js.into_iter().map(|j| (j.code, j.judgement)).collect(),
                ));
            }
        }
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

// ---- Evaluation ---------------------------------------------------------------------

/// The delmål of a template version, with titles, cached per regulation and specialty.
type DelmalList = Vec<(String, String, Option<String>)>;

struct Catalogue {
    templates: HashMap<(String, i32), templates::ProgrammeTemplate>,
    delmal: HashMap<(String, Option<String>), DelmalList>,
}

impl Catalogue {
    fn new() -> Catalogue {
        Catalogue {
            templates: HashMap::new(),
            delmal: HashMap::new(),
        }
    }

    fn template(
        &mut self,
        conn: &mut DbConn,
        id: &str,
        version: i32,
    ) -> Result<templates::ProgrammeTemplate, AppError> {
        let key = (id.to_string(), version);
        if let Some(t) = self.templates.get(&key) {
            return Ok(t.clone());
        }
        let t = templates::get_template(conn, id, Some(version))?;
        self.templates.insert(key, t.clone());
        Ok(t)
    }

    fn delmal(
        &mut self,
        conn: &mut DbConn,
        t: &templates::ProgrammeTemplate,
    ) -> Result<DelmalList, AppError> {
        let key = (t.regulation_id.clone(), t.content.specialty.clone());
        if let Some(d) = self.delmal.get(&key) {
            return Ok(d.clone());
        }
        let list: DelmalList = catalogue::list_delmal(
            conn,
            &t.regulation_id,
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

fn elapsed(start: NaiveDate, end: NaiveDate, today: NaiveDate) -> f64 {
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

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn instrument_key(t: AssessmentType) -> &'static str {
    match t {
        AssessmentType::MiniCex => "mini_cex",
        AssessmentType::Dops => "dops",
        AssessmentType::Cbd => "cbd",
        AssessmentType::SitIn => "sit_in",
        AssessmentType::MultiSource => "multi_source",
    }
}

fn item_progress(
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

fn evaluate(
    i: &Inputs,
    t: &templates::ProgrammeTemplate,
    delmal: &DelmalList,
    today: NaiveDate,
    with_items: Option<&mut HashMap<String, Vec<EvidenceItem>>>,
) -> Progress {
    let plan = Plan {
        start: i.e.start,
        extent_percent: i.e.extent_percent,
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
        let fraction = elapsed(p.start, p.end, today);
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

    let pace = pace(i, t, today, &time_served, &checklist, &delmal_progress);
    Progress {
        enrolment_id: i.e.id.clone(),
        trainee_id: i.e.trainee_id.clone(),
        as_of: today,
        time_served,
        pace,
        delmal: delmal_progress,
        checklist,
        final_decision: i.final_decided.as_ref().map(|(d, _)| d.clone()),
    }
}

fn pace(
    i: &Inputs,
    t: &templates::ProgrammeTemplate,
    today: NaiveDate,
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
            let days = (today.min(p.end) - p.start).num_days() + 1;
            supervision_expected += days / i64::from(every);
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
            let gap = (today - since).num_days();
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
    if i.e.status == "active" {
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
    }
}

// ---- Entry points -------------------------------------------------------------------

/// Progress of one trainee; with `items`, the records behind each delmål too.
pub fn progress(
    conn: &mut DbConn,
    enrolment_id: &str,
    today: NaiveDate,
    items: bool,
) -> Result<Progress, AppError> {
    let inputs = load_inputs(conn, &[enrolment_id.to_string()])?;
    let Some(i) = inputs.into_iter().next() else {
        return Err(AppError::NotFound);
    };
    let mut cat = Catalogue::new();
    let t = cat.template(conn, &i.e.template_id, i.e.template_version)?;
    let delmal = cat.delmal(conn, &t)?;
    if items {
        let mut records = evidence_items(conn, enrolment_id)?;
        return Ok(evaluate(&i, &t, &delmal, today, Some(&mut records)));
    }
    Ok(evaluate(&i, &t, &delmal, today, None))
}

/// Progress of many trainees, without the record lists.
pub fn progress_many(
    conn: &mut DbConn,
    ids: &[String],
    today: NaiveDate,
) -> Result<Vec<(EnrolmentBasics, Progress, String)>, AppError> {
    let mut cat = Catalogue::new();
    let mut out = Vec::with_capacity(ids.len());
    for i in load_inputs(conn, ids)? {
        let t = cat.template(conn, &i.e.template_id, i.e.template_version)?;
        let delmal = cat.delmal(conn, &t)?;
        let p = evaluate(&i, &t, &delmal, today, None);
        out.push((i.e, p, t.content.name.clone()));
    }
    Ok(out)
}

type Dated = (String, String, String);

/// The records behind each delmål of one enrolment, oldest first.
pub fn evidence_items(
    conn: &mut DbConn,
    enrolment_id: &str,
) -> Result<HashMap<String, Vec<EvidenceItem>>, AppError> {
    let mut records: HashMap<String, EvidenceItem> = HashMap::new();
    let acts: Vec<Dated> = activities::table
        .filter(activities::enrolment_id.eq(enrolment_id))
        .filter(activities::deleted_at.is_null())
        .select((activities::id, activities::start_date, activities::title))
        .load(conn)?;
    for (id, d, title) in acts {
        records.insert(
            id.clone(),
            EvidenceItem {
                record_type: "activity".into(),
                id,
                date: Some(date(&d)),
                title,
            },
        );
    }
    let asm: Vec<Dated> = assessments::table
        .filter(assessments::enrolment_id.eq(enrolment_id))
        .filter(assessments::deleted_at.is_null())
        .filter(assessments::superseded_by.is_null())
        .filter(assessments::status.eq("signed"))
        .select((
            assessments::id,
            assessments::performed_on,
            assessments::instrument,
        ))
        .load(conn)?;
    for (id, d, instrument) in asm {
        records.insert(
            id.clone(),
            EvidenceItem {
                record_type: "assessment".into(),
                id,
                date: Some(date(&d)),
                title: instrument,
            },
        );
    }
    let tk: Vec<(String, String, String, String)> = talks::table
        .filter(talks::enrolment_id.eq(enrolment_id))
        .filter(talks::deleted_at.is_null())
        .select((talks::id, talks::held_on, talks::kind, talks::topics))
        .load(conn)?;
    for (id, d, kind, topics) in tk {
        let record_type = match kind.as_str() {
            "handover" => "handover_talk",
            "final_check_in" => "final_check_in",
            _ => "supervision_session",
        };
        // What the talk was about says more than its kind.
        let topics: Vec<String> = serde_json::from_str(&topics).unwrap_or_default();
        records.insert(
            id.clone(),
            EvidenceItem {
                record_type: record_type.into(),
                id,
                date: Some(date(&d)),
                title: if topics.is_empty() {
                    record_type.replace('_', " ")
                } else {
                    topics.join("; ")
                },
            },
        );
    }
    let links: Vec<(String, String)> = record_delmal::table
        .filter(record_delmal::enrolment_id.eq(enrolment_id))
        .select((record_delmal::record_id, record_delmal::code))
        .load(conn)?;
    let mut out: HashMap<String, Vec<EvidenceItem>> = HashMap::new();
    for (record, code) in links {
        if let Some(r) = records.get(&record) {
            out.entry(code).or_default().push(r.clone());
        }
    }
    let sums: Vec<(String, String, Option<chrono::NaiveDateTime>)> = summary_assessments::table
        .filter(summary_assessments::enrolment_id.eq(enrolment_id))
        .filter(summary_assessments::status.eq("signed"))
        .filter(summary_assessments::superseded_by.is_null())
        .select((
            summary_assessments::id,
            summary_assessments::judgements,
            summary_assessments::signed_at,
        ))
        .load(conn)?;
    for (id, judgements, signed) in sums {
        let js: Vec<crate::portfolio::summaries::Judgement> =
            serde_json::from_str(&judgements).unwrap_or_default();
        for j in js {
            out.entry(j.code).or_default().push(EvidenceItem {
                record_type: "summary_assessment".into(),
                id: id.clone(),
                date: signed.map(|s| s.date()),
                title: j.judgement,
            });
        }
    }
    let credited: Vec<(String, String, String, String)> = credited_service::table
        .filter(credited_service::enrolment_id.eq(enrolment_id))
        .select((
            credited_service::id,
            credited_service::start_date,
            credited_service::description,
            credited_service::delmal,
        ))
        .load(conn)?;
    for (id, d, description, codes) in credited {
        for code in serde_json::from_str::<Vec<String>>(&codes).unwrap_or_default() {
            out.entry(code).or_default().push(EvidenceItem {
                record_type: "credited_service".into(),
                id: id.clone(),
                date: Some(date(&d)),
                title: description.clone(),
            });
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.date.cmp(&b.date).then(a.id.cmp(&b.id)));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
