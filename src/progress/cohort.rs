//! The cohort overview for directors of studies and the BT unit: every trainee of their
//! programmes in one call, with the figures that tell who needs attention.

use chrono::NaiveDate;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::service::{self, DelmalState, PaceFlag};
use crate::auth::principal::{org_subtrees, Principal, Role};
use crate::db::DbConn;
use crate::enrolment::access::DIRECTOR;
use crate::error::AppError;
use crate::schema::{assignments, enrolments, users};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CohortRow {
    pub enrolment_id: String,
    pub trainee_id: String,
    #[schema(example = "Åsa Öberg")]
    pub trainee_name: String,
    pub trainee_email: String,
    pub organisation_id: String,
    #[schema(example = "BT Region Stockholm")]
    pub programme: String,
    pub track: String,
    pub start_date: NaiveDate,
    pub planned_end: NaiveDate,
    pub status: String,
    #[schema(example = 5.5)]
    pub served_months: f64,
    #[schema(example = 0.46)]
    pub fraction_done: f64,
    pub pace: PaceFlag,
    /// Codes of the pace reasons, e.g. `supervision_overdue`.
    pub pace_reasons: Vec<String>,
    pub supervision_overdue: bool,
    /// Codes of the missing supervision steps (`mid_placement_talk_missing`,
    /// `handover_missing`, `summary_assessment_missing`), one per placement concerned.
    pub supervision_flags: Vec<String>,
    pub days_since_supervision: Option<i64>,
    pub assessments_awaiting_signature: i64,
    pub assessments_signed: i64,
    pub delmal_without_evidence: Vec<String>,
    pub delmal_ready: i64,
    pub delmal_achieved: i64,
    pub delmal_total: i64,
    /// `achieved` or `not_yet` once the final assessment is decided.
    pub final_decision: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CohortSort {
    Name,
    Pace,
    ServedMonths,
    DelmalWithoutEvidence,
    AssessmentsAwaitingSignature,
    DaysSinceSupervision,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CohortFilter {
    /// Only this organisation and its units.
    pub organisation_id: Option<String>,
    /// Only trainees following this programme template (any version).
    pub template_id: Option<String>,
    /// `active` (default), `completed`, `withdrawn` or `all`.
    pub status: Option<String>,
    /// `on_pace`, `behind` or `at_risk`.
    pub pace: Option<String>,
    /// Only those whose supervision is overdue (or not).
    pub supervision_overdue: Option<bool>,
    /// Only those with a missing supervision step (or none).
    pub supervision_flags: Option<bool>,
    /// Only those with assessments waiting for a signature.
    pub awaiting_signature: Option<bool>,
    /// Only those with at least one delmål without evidence.
    pub delmal_without_evidence: Option<bool>,
    /// Name or e-mail contains.
    pub q: Option<String>,
    /// Sort key; default `name`.
    #[param(inline)]
    pub sort: Option<CohortSort>,
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
    /// Rows per page of the JSON answer (the CSV has every row).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Enrolments a director or administrator follows: in the organisations they direct or
/// administer, and those they are assigned to as director.
fn followed(conn: &mut DbConn, me: &Principal, today: NaiveDate) -> Result<Vec<String>, AppError> {
    // A learning platform's client follows its organisation's trainees, as a director.
    if let Some(client) = &me.client {
        let orgs = org_subtrees(conn, std::slice::from_ref(&client.organisation_id))?;
        return Ok(enrolments::table
            .filter(enrolments::organisation_id.eq_any(&orgs))
            .order(enrolments::id)
            .select(enrolments::id)
            .load(conn)?);
    }
    let roots = me.orgs_with(&[Role::Administrator, Role::DirectorOfStudies]);
    let orgs = org_subtrees(conn, &roots)?;
    let mut ids: Vec<String> = enrolments::table
        .filter(enrolments::organisation_id.eq_any(&orgs))
        .select(enrolments::id)
        .load(conn)?;
    let t = today.to_string();
    let assigned: Vec<String> = assignments::table
        .filter(assignments::user_id.eq(&me.user_id))
        .filter(assignments::role.eq(DIRECTOR))
        .filter(assignments::valid_from.le(&t))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(&t)),
        )
        .select(assignments::enrolment_id)
        .load(conn)?;
    if roots.is_empty() && assigned.is_empty() {
        return Err(AppError::Forbidden(
            "the cohort overview is for directors of studies and administrators".into(),
        ));
    }
    ids.extend(assigned);
    ids.sort();
    ids.dedup();
    Ok(ids)
}

pub fn overview(
    conn: &mut DbConn,
    me: &Principal,
    today: NaiveDate,
    f: &CohortFilter,
) -> Result<Vec<CohortRow>, AppError> {
    let status = f.status.clone().unwrap_or_else(|| "active".into());
    if !["active", "completed", "withdrawn", "all"].contains(&status.as_str()) {
        return Err(AppError::validation(
            "status",
            "one of active, completed, withdrawn, all",
        ));
    }
    let pace = match &f.pace {
        Some(p) => Some(
            PaceFlag::parse(p)
                .ok_or_else(|| AppError::validation("pace", "one of on_pace, behind, at_risk"))?,
        ),
        None => None,
    };
    let descending = match f.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(AppError::validation("order", "asc or desc")),
    };
    let mut ids = followed(conn, me, today)?;
    if let Some(org) = &f.organisation_id {
        let within = org_subtrees(conn, std::slice::from_ref(org))?;
        let keep: Vec<String> = enrolments::table
            .filter(enrolments::organisation_id.eq_any(&within))
            .select(enrolments::id)
            .load(conn)?;
        let keep: std::collections::HashSet<String> = keep.into_iter().collect();
        ids.retain(|id| keep.contains(id));
    }
    // Restricted processing (GDPR Art. 18): out of the overview.
    let restricted = crate::privacy::restriction::restricted_among(conn, &ids)?;
    ids.retain(|id| !restricted.contains(id));
    // Status, template and the name search need no progress: the enrolments they drop are
    // never evaluated, nor their records loaded.
    let basics: Vec<_> = super::inputs::basics(conn, &ids)?
        .into_iter()
        .filter(|e| status == "all" || e.status.as_str() == status)
        .filter(|e| f.template_id.as_ref().is_none_or(|t| &e.template_id == t))
        .collect();
    let mut people: std::collections::HashMap<String, (String, String)> = Default::default();
    let trainee_ids: Vec<&String> = basics.iter().map(|e| &e.trainee_id).collect();
    for chunk in trainee_ids.chunks(2000) {
        let rows: Vec<(String, String, String)> = users::table
            .filter(users::id.eq_any(chunk))
            .select((users::id, users::display_name, users::email))
            .load(conn)?;
        for (id, name, email) in rows {
            people.insert(id, (name, email));
        }
    }
    let needle = f.q.as_ref().map(|q| q.to_lowercase());
    let basics: Vec<_> = basics
        .into_iter()
        .filter(|e| {
            needle.as_ref().is_none_or(|n| {
                people.get(&e.trainee_id).is_some_and(|(name, email)| {
                    name.to_lowercase().contains(n) || email.to_lowercase().contains(n)
                })
            })
        })
        .collect();
    let evaluated = service::progress_of(conn, basics, today)?;
    let mut rows: Vec<CohortRow> = evaluated
        .into_iter()
        .map(|(e, p, programme)| {
            let (name, email) = people.get(&e.trainee_id).cloned().unwrap_or_default();
            CohortRow {
                enrolment_id: e.id,
                trainee_id: e.trainee_id,
                trainee_name: name,
                trainee_email: email,
                organisation_id: e.organisation_id,
                programme,
                track: e.track,
                start_date: e.start,
                planned_end: e.planned_end,
                status: e.status.as_str().into(),
                served_months: p.time_served.total_months,
                fraction_done: p.time_served.fraction_done,
                pace: p.pace.flag,
                pace_reasons: p.pace.reasons.iter().map(|r| r.code.clone()).collect(),
                supervision_overdue: p.pace.supervision_overdue,
                supervision_flags: p
                    .pace
                    .supervision_flags
                    .iter()
                    .map(|f| f.code.clone())
                    .collect(),
                days_since_supervision: p.pace.days_since_supervision,
                assessments_awaiting_signature: p.pace.assessments_awaiting_signature,
                assessments_signed: p.pace.assessments_signed,
                delmal_without_evidence: p
                    .delmal
                    .iter()
                    .filter(|d| d.state == DelmalState::NotStarted)
                    .map(|d| d.code.clone())
                    .collect(),
                delmal_ready: p
                    .delmal
                    .iter()
                    .filter(|d| d.state == DelmalState::ReadyForFinalAssessment)
                    .count() as i64,
                delmal_achieved: p
                    .delmal
                    .iter()
                    .filter(|d| d.state == DelmalState::Achieved)
                    .count() as i64,
                delmal_total: p.delmal.len() as i64,
                final_decision: p.final_decision,
            }
        })
        .filter(|r| pace.is_none_or(|p| r.pace == p))
        .filter(|r| {
            f.supervision_overdue
                .is_none_or(|o| r.supervision_overdue == o)
        })
        .filter(|r| {
            f.supervision_flags
                .is_none_or(|a| r.supervision_flags.is_empty() != a)
        })
        .filter(|r| {
            f.awaiting_signature
                .is_none_or(|a| (r.assessments_awaiting_signature > 0) == a)
        })
        .filter(|r| {
            f.delmal_without_evidence
                .is_none_or(|a| r.delmal_without_evidence.is_empty() != a)
        })
        .collect();
    let by_name = |a: &CohortRow, b: &CohortRow| {
        a.trainee_name
            .to_lowercase()
            .cmp(&b.trainee_name.to_lowercase())
            .then(a.enrolment_id.cmp(&b.enrolment_id))
    };
    match f.sort.unwrap_or(CohortSort::Name) {
        CohortSort::Name => rows.sort_by(by_name),
        CohortSort::Pace => rows.sort_by(|a, b| a.pace.cmp(&b.pace).then(by_name(a, b))),
        CohortSort::ServedMonths => rows.sort_by(|a, b| {
            a.served_months
                .total_cmp(&b.served_months)
                .then(by_name(a, b))
        }),
        CohortSort::DelmalWithoutEvidence => rows.sort_by(|a, b| {
            a.delmal_without_evidence
                .len()
                .cmp(&b.delmal_without_evidence.len())
                .then(by_name(a, b))
        }),
        CohortSort::AssessmentsAwaitingSignature => rows.sort_by(|a, b| {
            a.assessments_awaiting_signature
                .cmp(&b.assessments_awaiting_signature)
                .then(by_name(a, b))
        }),
        CohortSort::DaysSinceSupervision => rows.sort_by(|a, b| {
            a.days_since_supervision
                .cmp(&b.days_since_supervision)
                .then(by_name(a, b))
        }),
    }
    if descending {
        rows.reverse();
    }
    Ok(rows)
}

/// A spreadsheet evaluates a cell starting with `=`, `+`, `-` or `@` as a formula; a
/// trainee's name must never run as one (CSV injection), so such text gets a quote.
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    }
}

/// The overview as CSV for a spreadsheet: one row per trainee.
pub fn to_csv(rows: &[CohortRow]) -> Result<Vec<u8>, AppError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "enrolment_id",
        "trainee_name",
        "trainee_email",
        "programme",
        "track",
        "start_date",
        "planned_end",
        "status",
        "served_months",
        "fraction_done",
        "pace",
        "pace_reasons",
        "supervision_overdue",
        "supervision_flags",
        "days_since_supervision",
        "assessments_awaiting_signature",
        "assessments_signed",
        "delmal_without_evidence",
        "delmal_ready",
        "delmal_achieved",
        "delmal_total",
        "final_decision",
    ];
    let fail = |e: csv::Error| AppError::Internal(format!("csv: {e}"));
    w.write_record(header).map_err(fail)?;
    for r in rows {
        w.write_record([
            r.enrolment_id.clone(),
            cell(&r.trainee_name),
            cell(&r.trainee_email),
            cell(&r.programme),
            r.track.clone(),
            r.start_date.to_string(),
            r.planned_end.to_string(),
            r.status.clone(),
            format!("{:.1}", r.served_months),
            format!("{:.2}", r.fraction_done),
            r.pace.as_str().to_string(),
            r.pace_reasons.join(" "),
            r.supervision_overdue.to_string(),
            r.supervision_flags.join(" "),
            r.days_since_supervision
                .map(|d| d.to_string())
                .unwrap_or_default(),
            r.assessments_awaiting_signature.to_string(),
            r.assessments_signed.to_string(),
            r.delmal_without_evidence.join(" "),
            r.delmal_ready.to_string(),
            r.delmal_achieved.to_string(),
            r.delmal_total.to_string(),
            r.final_decision.clone().unwrap_or_default(),
        ])
        .map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| AppError::Internal(format!("csv: {e}")))
}
