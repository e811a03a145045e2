//! "Intyg om delmål i bastjänstgöringen" (HSLF-FS 2021:8, bilaga 2), one per supervisor.
//! A supervisor certifies only what they saw themselves: the assessments they signed, the
//! talks they confirmed and the summary assessments they signed, each inside the dates of
//! their own assignments, and, as the activities behind each such delmål, the trainee's
//! activities in the placements they supervised (a main supervisor: also those outside
//! any placement) within those dates. Nothing comes from the rest of the enrolment.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use diesel::prelude::*;

use super::certificates::{
    field, name_of, Basis, CertificateDraft, CertificateTable, SignatureLine,
};
use super::forms::Form;
use crate::db::DbConn;
use crate::enrolment::service::AssignmentRole;
use crate::error::AppError;
use crate::ids::{Day, EnrolmentId};
use crate::portfolio::talks::TalkKind;
use crate::schema::{
    activities, assessments, record_delmal, summary_assessments, talk_participants, talks,
};

/// One supervisor's part in the training: the periods they held it, and the placements
/// they supervised.
#[derive(Debug, Default)]
pub(super) struct Part {
    /// `[from, to)` periods; `to` open while the assignment runs.
    periods: Vec<(NaiveDate, Option<NaiveDate>)>,
    placements: BTreeSet<String>,
    main: bool,
}

impl Part {
    pub fn covers(&self, d: NaiveDate) -> bool {
        self.periods
            .iter()
            .any(|(from, to)| *from <= d && to.is_none_or(|t| d < t))
    }

    /// Was an activity on `d` in `placement` under this supervisor?
    fn saw_activity(&self, d: NaiveDate, placement: Option<&str>) -> bool {
        self.covers(d)
            && match placement {
                Some(p) => self.placements.contains(p),
                None => self.main,
            }
    }

    fn periods_text(&self) -> String {
        self.periods
            .iter()
            .map(|(from, to)| match to {
                Some(t) => format!("{from} – {}", *t - chrono::Duration::days(1)),
                None => format!("{from} –"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Each main or placement supervisor's part, by user id.
fn parts(b: &Basis) -> BTreeMap<String, Part> {
    let mut out: BTreeMap<String, Part> = BTreeMap::new();
    for a in &b.e.assignments {
        let main = a.role == AssignmentRole::MainSupervisor;
        if !main && a.role != AssignmentRole::PlacementSupervisor {
            continue;
        }
        let part = out.entry(a.user_id.clone()).or_default();
        part.periods.push((a.valid_from, a.valid_to));
        part.main |= main;
        if let Some(p) = &a.placement_id {
            part.placements.insert(p.clone());
        }
    }
    out
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = assessments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SignedAssessment {
    id: String,
    performed_on: Day,
    instrument: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = talks, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ConfirmedTalk {
    id: String,
    held_on: Day,
    kind: TalkKind,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = summary_assessments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SignedSummary {
    id: String,
    judgements: String,
    signed_at: Option<chrono::NaiveDateTime>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = activities, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Activity {
    id: String,
    title: String,
    start_date: Day,
    placement_id: Option<String>,
}

pub(super) fn instrument_sv(code: &str) -> &'static str {
    match code {
        "mini_cex" => "Mini-CEX",
        "dops" => "DOPS",
        "cbd" => "CbD",
        "sit_in" => "medsittning",
        "msf" => "multi-source feedback",
        _ => "bedömning",
    }
}

fn talk_sv(kind: TalkKind) -> &'static str {
    match kind {
        TalkKind::Handover => "överlämningssamtal",
        TalkKind::FinalCheckIn => "slutavstämning",
        TalkKind::Supervision | TalkKind::SupervisorCheckIn => "handledarsamtal",
    }
}

/// Delmål codes linked to each of `ids`.
fn links(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    ids: &[String],
) -> Result<Vec<(String, String)>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(record_delmal::table
        .filter(record_delmal::enrolment_id.eq(enrolment_id))
        .filter(record_delmal::record_id.eq_any(ids))
        .select(Link::as_select())
        .load::<Link>(conn)?
        .into_iter()
        .map(|l| (l.record_id, l.code))
        .collect())
}

/// A record's link to one delmål.
#[derive(Queryable, Selectable)]
#[diesel(table_name = record_delmal, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Link {
    record_id: String,
    code: String,
}

fn push_once(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// Per delmål, how this supervisor checked it: instrument, talk or summary.
fn checks(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    sup: &str,
    part: &Part,
) -> Result<BTreeMap<String, Vec<String>>, AppError> {
    let mut how: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Assessments they signed, performed while they held the assignment.
    let signed: Vec<SignedAssessment> = assessments::table
        .filter(assessments::enrolment_id.eq(enrolment_id))
        .filter(assessments::signed_by.eq(sup))
        .filter(assessments::status.eq("signed"))
        .filter(assessments::superseded_by.is_null())
        .filter(assessments::deleted_at.is_null())
        .select(SignedAssessment::as_select())
        .load(conn)?;
    let signed: BTreeMap<String, String> = signed
        .into_iter()
        .filter(|a| part.covers(a.performed_on.date()))
        .map(|a| (a.id, a.instrument))
        .collect();
    let ids: Vec<String> = signed.keys().cloned().collect();
    for (id, code) in links(conn, enrolment_id, &ids)? {
        if let Some(i) = signed.get(&id) {
            push_once(how.entry(code).or_default(), instrument_sv(i));
        }
    }
    // Talks they took part in and confirmed, held while they held the assignment.
    let confirmed: Vec<ConfirmedTalk> = talks::table
        .inner_join(talk_participants::table.on(talk_participants::talk_id.eq(talks::id)))
        .filter(talks::enrolment_id.eq(enrolment_id))
        .filter(talks::deleted_at.is_null())
        .filter(talk_participants::user_id.eq(sup))
        .filter(talk_participants::confirmed_at.is_not_null())
        .select(ConfirmedTalk::as_select())
        .load(conn)?;
    let confirmed: BTreeMap<String, TalkKind> = confirmed
        .into_iter()
        .filter(|t| part.covers(t.held_on.date()))
        .map(|t| (t.id, t.kind))
        .collect();
    let ids: Vec<String> = confirmed.keys().cloned().collect();
    for (id, code) in links(conn, enrolment_id, &ids)? {
        if let Some(k) = confirmed.get(&id) {
            push_once(how.entry(code).or_default(), talk_sv(*k));
        }
    }
    // Summary assessments they signed, judging the delmål achieved.
    let sums: Vec<SignedSummary> = summary_assessments::table
        .filter(summary_assessments::enrolment_id.eq(enrolment_id))
        .filter(summary_assessments::author_id.eq(sup))
        .filter(summary_assessments::status.eq("signed"))
        .filter(summary_assessments::superseded_by.is_null())
        .select(SignedSummary::as_select())
        .load(conn)?;
    for sum in sums {
        if !sum.signed_at.is_some_and(|s| part.covers(s.date())) {
            continue;
        }
        let js: Vec<crate::portfolio::summaries::Judgement> = serde_json::from_str(&sum.judgements)
            .map_err(|e| AppError::unreadable("summary_assessment", &sum.id, "judgements", e))?;
        for j in js.into_iter().filter(|j| j.judgement == "achieved") {
            push_once(how.entry(j.code).or_default(), "sammantagen bedömning");
        }
    }
    Ok(how)
}

/// The activities under this supervisor, per delmål, oldest first.
fn activities_seen(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    part: &Part,
) -> Result<BTreeMap<String, Vec<String>>, AppError> {
    let acts: Vec<Activity> = activities::table
        .filter(activities::enrolment_id.eq(enrolment_id))
        .filter(activities::deleted_at.is_null())
        .order((activities::start_date, activities::id))
        .select(Activity::as_select())
        .load(conn)?;
    let seen: Vec<(String, String)> = acts
        .into_iter()
        .filter(|a| part.saw_activity(a.start_date.date(), a.placement_id.as_deref()))
        .map(|a| (a.id, a.title))
        .collect();
    let ids: Vec<String> = seen.iter().map(|(id, _)| id.clone()).collect();
    let linked = links(conn, enrolment_id, &ids)?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, title) in &seen {
        for (_, code) in linked.iter().filter(|(r, _)| r == id) {
            out.entry(code.clone()).or_default().push(title.clone());
        }
    }
    Ok(out)
}

pub(super) fn delmal_certificates(
    conn: &mut DbConn,
    b: &Basis,
    form: &Form,
) -> Result<Vec<CertificateDraft>, AppError> {
    let mut out = Vec::new();
    for (sup, part) in parts(b) {
        let how = checks(conn, &EnrolmentId::from(b.e.id.as_str()), &sup, &part)?;
        if how.is_empty() {
            continue;
        }
        let acts = activities_seen(conn, &EnrolmentId::from(b.e.id.as_str()), &part)?;
        let rows = how
            .iter()
            .map(|(code, checked)| {
                vec![
                    format!("{code} {}", b.titles.get(code).cloned().unwrap_or_default()),
                    acts.get(code).map(|a| a.join("; ")).unwrap_or_default(),
                    checked.join(", "),
                ]
            })
            .collect();
        let name = name_of(conn, &sup)?;
        let mut fields = b.person.clone();
        fields.push(field("Handledare", name.clone()));
        fields.push(field("Handledd under", part.periods_text()));
        out.push(
            b.draft(
                format!("delmal-{sup}"),
                form,
                fields,
                vec![CertificateTable {
                    title: "Delmål, aktiviteter och hur de kontrollerats".into(),
                    headers: vec![
                        "Delmål".into(),
                        "Aktiviteter".into(),
                        "Kontrollerat genom".into(),
                    ],
                    rows,
                }],
                form.signed_by
                    .iter()
                    .map(|role| SignatureLine {
                        role: role.clone(),
                        name: Some(name.clone()),
                        user_id: Some(sup.clone()),
                        specialty: None,
                        workplace: None,
                    })
                    .collect(),
            ),
        );
    }
    Ok(out)
}
