//! Progress of a trainee: evidence per delmål, the checklist of their template version,
//! and pace against time served. The same inputs and the same evaluation serve the
//! trainee's view, the director's cohort overview and the platforms' read API, so the
//! three never disagree. Inputs are loaded for many enrolments at once with grouped
//! queries, so a cohort of hundreds costs a handful of queries, not hundreds.
//!
//! The files beside this one: `model.rs` (the response types), `inputs.rs` (loading),
//! `evaluation.rs` (delmål states, checklist, pace). This file holds the entry points.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::prelude::*;

use super::evaluation::{evaluate, Catalogue};
use super::inputs::{load_inputs, EnrolmentBasics};
// What other features and the endpoints use, so they need not know the file layout.
pub use super::model::{
    ChecklistItemProgress, ChecklistProgress, DelmalProgress, DelmalState, EvidenceCounts,
    EvidenceItem, Pace, PaceFlag, PaceReason, Progress,
};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{Day, EnrolmentId};
use crate::portfolio::assessments::AssessmentStatus;
use crate::portfolio::summaries::SummaryStatus;
use crate::portfolio::talks::TalkKind;
use crate::schema::{
    activities, assessments, credited_service, record_delmal, summary_assessments, talks,
};

/// Progress of one trainee; with `items`, the records behind each delmål too.
pub fn progress(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
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
    let transferred = crate::portfolio::transferred::of_enrolment(conn, enrolment_id)?;
    let mut p = if items {
        let mut records = evidence_items(conn, enrolment_id)?;
        evaluate(&i, &t, &delmal, today, Some(&mut records))
    } else {
        evaluate(&i, &t, &delmal, today, None)
    };
    p.transferred = transferred;
    Ok(p)
}

/// Progress of many trainees, without the record lists.
pub fn progress_many(
    conn: &mut DbConn,
    ids: &[String],
    today: NaiveDate,
) -> Result<Vec<(EnrolmentBasics, Progress, String)>, AppError> {
    let basics = super::inputs::basics(conn, ids)?;
    progress_of(conn, basics, today)
}

/// Progress of enrolments whose basics are read already (a cohort filtered by them).
pub fn progress_of(
    conn: &mut DbConn,
    basics: Vec<EnrolmentBasics>,
    today: NaiveDate,
) -> Result<Vec<(EnrolmentBasics, Progress, String)>, AppError> {
    let mut cat = Catalogue::new();
    let mut out = Vec::with_capacity(basics.len());
    for i in super::inputs::load_inputs_of(conn, basics)? {
        let t = cat.template(conn, &i.e.template_id, i.e.template_version)?;
        let delmal = cat.delmal(conn, &t)?;
        let p = evaluate(&i, &t, &delmal, today, None);
        out.push((i.e, p, t.content.name.clone()));
    }
    Ok(out)
}

/// A record id, its day and its title.
type Dated = (String, Day, String);

/// The records behind each delmål of one enrolment, oldest first.
pub fn evidence_items(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
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
                date: Some(d.date()),
                title,
            },
        );
    }
    let asm: Vec<Dated> = assessments::table
        .filter(assessments::enrolment_id.eq(enrolment_id))
        .filter(assessments::deleted_at.is_null())
        .filter(assessments::superseded_by.is_null())
        .filter(assessments::status.eq(AssessmentStatus::Signed))
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
                date: Some(d.date()),
                title: instrument,
            },
        );
    }
    // Supervisors' check-ins among themselves are never the trainee's evidence.
    let tk: Vec<(String, Day, TalkKind, String)> = talks::table
        .filter(talks::enrolment_id.eq(enrolment_id))
        .filter(talks::deleted_at.is_null())
        .filter(talks::kind.ne(TalkKind::SupervisorCheckIn))
        .select((talks::id, talks::held_on, talks::kind, talks::topics))
        .load(conn)?;
    for (id, d, kind, topics) in tk {
        let record_type = match kind {
            TalkKind::Handover => "handover_talk",
            TalkKind::FinalCheckIn => "final_check_in",
            TalkKind::Supervision => "supervision_session",
            TalkKind::SupervisorCheckIn => "supervisor_check_in",
        };
        // What the talk was about says more than its kind.
        let topics: Vec<String> = serde_json::from_str(&topics).map_err(AppError::internal)?;
        records.insert(
            id.clone(),
            EvidenceItem {
                record_type: record_type.into(),
                id,
                date: Some(d.date()),
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
        .filter(summary_assessments::status.eq(SummaryStatus::Signed))
        .filter(summary_assessments::superseded_by.is_null())
        .select((
            summary_assessments::id,
            summary_assessments::judgements,
            summary_assessments::signed_at,
        ))
        .load(conn)?;
    for (id, judgements, signed) in sums {
        let js: Vec<crate::portfolio::summaries::Judgement> =
            serde_json::from_str(&judgements).map_err(AppError::internal)?;
        for j in js {
            out.entry(j.code).or_default().push(EvidenceItem {
                record_type: "summary_assessment".into(),
                id: id.clone(),
                date: signed.map(|s| s.date()),
                title: j.judgement,
            });
        }
    }
    let credited: Vec<(String, Day, String, String)> = credited_service::table
        .filter(credited_service::enrolment_id.eq(enrolment_id))
        .select((
            credited_service::id,
            credited_service::start_date,
            credited_service::description,
            credited_service::delmal,
        ))
        .load(conn)?;
    for (id, d, description, codes) in credited {
        for code in serde_json::from_str::<Vec<String>>(&codes).map_err(AppError::internal)? {
            out.entry(code).or_default().push(EvidenceItem {
                record_type: "credited_service".into(),
                id: id.clone(),
                date: Some(d.date()),
                title: description.clone(),
            });
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.date.cmp(&b.date).then(a.id.cmp(&b.id)));
    }
    Ok(out)
}
