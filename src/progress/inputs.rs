//! Loading the inputs of the evaluation for many enrolments at once: grouped queries, so
//! a cohort of hundreds costs a handful of queries, not hundreds.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::model::EvidenceCounts;
use crate::db::DbConn;
use crate::enrolment::enums::{EnrolmentStatus, Track};
use crate::error::AppError;
use crate::final_assessment::model::FinalStatus;
use crate::ids::{Day, EnrolmentId, OrganisationId, UserId};
use crate::portfolio::assessments::AssessmentStatus;
use crate::portfolio::links;
use crate::portfolio::summaries::SummaryStatus;
use crate::portfolio::talks::TalkKind;
use crate::schema::{
    activities, assessments, credited_service, enrolments, extent_periods, final_assessments,
    leave_periods, placements, record_delmal, summary_assessments, talks,
};

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
    pub status: EnrolmentStatus,
}

#[derive(Debug, Clone)]
pub(crate) struct PlacementBasics {
    pub(crate) id: String,
    pub(crate) placement_type: String,
    pub(crate) start: NaiveDate,
    pub(crate) end: NaiveDate,
}

/// Everything the evaluation needs about one enrolment, already aggregated.
#[derive(Debug, Clone)]
pub(crate) struct Inputs {
    pub(crate) e: EnrolmentBasics,
    pub(crate) placements: Vec<PlacementBasics>,
    pub(crate) leave: Vec<(NaiveDate, NaiveDate, i32)>,
    /// Changes of employment extent, `(first day, percent)`, in order.
    pub(crate) extent: Vec<(NaiveDate, i32)>,
    pub(crate) credited_days: i32,
    /// Checklist item id -> activities recorded against it.
    pub(crate) items_done: HashMap<String, i64>,
    /// (placement, instrument) -> signed current assessments.
    pub(crate) signed: HashMap<(Option<String>, String), i64>,
    pub(crate) awaiting_signature: i64,
    /// Supervision sessions: placement, date, topics.
    pub(crate) supervision: Vec<(Option<String>, NaiveDate, Vec<String>)>,
    /// Delmål -> evidence counts (records linked to it).
    pub(crate) evidence: HashMap<String, EvidenceCounts>,
    /// Latest signed summary judgement per delmål.
    pub(crate) summary: HashMap<String, String>,
    /// Decided final assessment: decision and judgements.
    pub(crate) final_decided: Option<(String, HashMap<String, String>)>,
    /// What the latest decided final assessment said is missing (after "not yet").
    pub(crate) final_missing: String,
    /// Talks, main supervisors and summaries behind the supervision flags.
    pub(crate) supervision_steps: super::supervision_flags::SupervisionSteps,
}

/// SQLite allows some 32,000 bound parameters; stay well below on both backends.
pub(crate) const CHUNK: usize = 2_000;

/// The columns of an `enrolments` row that the evaluation needs.
#[derive(Queryable, Selectable)]
#[diesel(table_name = enrolments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct EnrolmentRow {
    id: EnrolmentId,
    trainee_id: UserId,
    organisation_id: OrganisationId,
    template_id: String,
    template_version: i32,
    track: Track,
    start_date: Day,
    planned_end: Day,
    extent_percent: i32,
    status: EnrolmentStatus,
}

pub fn basics(conn: &mut DbConn, ids: &[String]) -> Result<Vec<EnrolmentBasics>, AppError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<EnrolmentRow> = enrolments::table
            .filter(enrolments::id.eq_any(chunk))
            .select(EnrolmentRow::as_select())
            .load(conn)?;
        out.extend(rows.into_iter().map(|r| EnrolmentBasics {
            id: r.id.into_inner(),
            trainee_id: r.trainee_id.into_inner(),
            organisation_id: r.organisation_id.into_inner(),
            template_id: r.template_id,
            template_version: r.template_version,
            track: r.track.as_str().into(),
            start: r.start_date.date(),
            planned_end: r.planned_end.date(),
            extent_percent: r.extent_percent,
            status: r.status,
        }));
    }
    Ok(out)
}

pub(crate) fn bump(
    map: &mut HashMap<String, EvidenceCounts>,
    code: String,
    f: impl FnOnce(&mut EvidenceCounts),
) {
    f(map.entry(code).or_default());
}

/// Loads the inputs of many enrolments with grouped queries.
pub(crate) fn load_inputs(conn: &mut DbConn, ids: &[String]) -> Result<Vec<Inputs>, AppError> {
    let basics = basics(conn, ids)?;
    let mut by_id: HashMap<String, Inputs> = load_inputs_of(conn, basics)?
        .into_iter()
        .map(|i| (i.e.id.clone(), i))
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// Loads the rest of the inputs of enrolments whose basics are read (and filtered)
/// already, with grouped queries; in the order of `basics`.
pub(crate) fn load_inputs_of(
    conn: &mut DbConn,
    basics: Vec<EnrolmentBasics>,
) -> Result<Vec<Inputs>, AppError> {
    let ids: Vec<String> = basics.iter().map(|e| e.id.clone()).collect();
    let ids = ids.as_slice();
    let mut by_id: HashMap<String, Inputs> = HashMap::new();
    for e in basics {
        by_id.insert(
            e.id.clone(),
            Inputs {
                e,
                placements: Vec::new(),
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
            },
        );
    }
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, String, String, Day, Day)> = placements::table
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
                    start: s.date(),
                    end: t.date(),
                });
            }
        }
        let rows: Vec<(String, Day, Day, i32)> = leave_periods::table
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
                i.leave.push((s.date(), t.date(), p));
            }
        }
        let rows: Vec<(String, Day, i32)> = extent_periods::table
            .filter(extent_periods::enrolment_id.eq_any(chunk))
            .order((extent_periods::enrolment_id, extent_periods::valid_from))
            .select((
                extent_periods::enrolment_id,
                extent_periods::valid_from,
                extent_periods::extent_percent,
            ))
            .load(conn)?;
        for (e, from, p) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                i.extent.push((from.date(), p));
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
                for code in
                    serde_json::from_str::<Vec<String>>(&codes).map_err(AppError::internal)?
                {
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
        let rows: Vec<(String, Option<String>, String, AssessmentStatus, i64)> = assessments::table
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
                match status {
                    AssessmentStatus::Signed => {
                        *i.signed.entry((placement, instrument)).or_default() += n
                    }
                    AssessmentStatus::Awaiting => i.awaiting_signature += n,
                    AssessmentStatus::Draft
                    | AssessmentStatus::AwaitingVetting
                    | AssessmentStatus::Declined => {}
                }
            }
        }
        // The supervision sessions (`supervision`) are read with the supervision steps'
        // talks, in `supervision_flags::load`.
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
            .filter(assessments::status.eq(AssessmentStatus::Signed))
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
        let rows: Vec<(String, String, TalkKind)> = record_delmal::table
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
                bump(&mut i.evidence, code, |c| match kind {
                    TalkKind::Supervision => c.supervision_sessions += 1,
                    TalkKind::Handover => c.handover_talks += 1,
                    TalkKind::FinalCheckIn => c.final_check_ins += 1,
                    // Belongs to no enrolment and is never linked to a delmål (the
                    // trainee never sees it); not evidence should a link ever appear.
                    TalkKind::SupervisorCheckIn => {}
                });
            }
        }
        // Signed, current summary assessments: their judgements, and (for the
        // supervision flags) the placements they cover, in one read.
        let rows: Vec<(String, String, String)> = summary_assessments::table
            .filter(summary_assessments::enrolment_id.eq_any(chunk))
            .filter(summary_assessments::status.eq(SummaryStatus::Signed))
            .filter(summary_assessments::superseded_by.is_null())
            .order(summary_assessments::signed_at)
            .select((
                summary_assessments::enrolment_id,
                summary_assessments::placement_id,
                summary_assessments::judgements,
            ))
            .load(conn)?;
        for (e, placement, judgements) in rows {
            if let Some(i) = by_id.get_mut(&e) {
                i.supervision_steps.summarised.insert(placement);
                let js: Vec<crate::portfolio::summaries::Judgement> =
                    serde_json::from_str(&judgements).map_err(AppError::internal)?;
                for j in js {
                    bump(&mut i.evidence, j.code.clone(), |c| {
                        c.summary_assessments += 1
                    });
                    // Signed in order, so the last judgement wins.
                    i.summary.insert(j.code, j.judgement);
                }
            }
        }
        let rows: Vec<(String, Option<String>, String, String)> = final_assessments::table
            .filter(final_assessments::enrolment_id.eq_any(chunk))
            .filter(final_assessments::status.eq(FinalStatus::Decided))
            .order(final_assessments::decided_at)
            .select((
                final_assessments::enrolment_id,
                final_assessments::decision,
                final_assessments::judgements,
                final_assessments::missing,
            ))
            .load(conn)?;
        for (e, decision, judgements, missing) in rows {
            if let (Some(i), Some(decision)) = (by_id.get_mut(&e), decision) {
                let js: Vec<crate::portfolio::summaries::Judgement> =
                    serde_json::from_str(&judgements).map_err(AppError::internal)?;
                i.final_missing = missing;
                i.final_decided = Some((
                    decision,
                    js.into_iter().map(|j| (j.code, j.judgement)).collect(),
                ));
            }
        }
    }
    super::supervision_flags::load(conn, ids, &mut by_id)?;
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}
