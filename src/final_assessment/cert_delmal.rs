//! "Intyg om delmål i bastjänstgöringen" (HSLF-FS 2021:8, bilaga 2), one per supervisor.
//! A supervisor certifies only what they saw themselves: the assessments they signed, the
//! talks they confirmed and the summary assessments they signed, each inside the dates of
//! their own assignments, and, as the activities behind each such delmål, the trainee's
//! activities in the placements they supervised (a main supervisor: also those outside
//! any placement) within those dates. Nothing comes from the rest of the enrolment.
//!
//! Records imported from another service (issue 17) were signed by someone there, not
//! by this supervisor: they are never among the supervisor's own rows. The draft lists
//! the imported signed records of its delmål in `transferred`, each with where, by whom
//! and when it was signed ("signerad i tjänsten X av Y den Z"), as the course
//! certificate does; the form's own fields stay as the catalogue has them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    signed_by: Option<String>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = talks, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ConfirmedTalk {
    id: String,
    held_on: Day,
    kind: TalkKind,
}

/// A talk with one participant who confirmed it.
#[derive(Queryable, Selectable)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ConfirmedBy {
    #[diesel(embed)]
    talk: ConfirmedTalk,
    #[diesel(select_expression = talk_participants::user_id)]
    #[diesel(select_expression_type = talk_participants::user_id)]
    user_id: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = summary_assessments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SignedSummary {
    id: String,
    judgements: String,
    signed_at: Option<chrono::NaiveDateTime>,
    author_id: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = activities, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Activity {
    id: String,
    title: String,
    start_date: Day,
    placement_id: Option<String>,
}

/// What the certificates of one enrolment draw on, loaded once for all its supervisors
/// (five queries, where each supervisor cost eight before); each supervisor's part is
/// then picked out in memory.
struct Records {
    signed: Vec<SignedAssessment>,
    confirmed: Vec<ConfirmedBy>,
    summaries: Vec<SignedSummary>,
    /// Oldest first.
    activities: Vec<Activity>,
    /// Delmål codes per record, each record's in code order.
    links: HashMap<String, Vec<String>>,
}

impl Records {
    fn load(conn: &mut DbConn, enrolment_id: &EnrolmentId) -> Result<Records, AppError> {
        let signed: Vec<SignedAssessment> = assessments::table
            .filter(assessments::enrolment_id.eq(enrolment_id))
            .filter(assessments::status.eq("signed"))
            .filter(assessments::superseded_by.is_null())
            .filter(assessments::deleted_at.is_null())
            .select(SignedAssessment::as_select())
            .load(conn)?;
        let confirmed: Vec<ConfirmedBy> = talks::table
            .inner_join(talk_participants::table.on(talk_participants::talk_id.eq(talks::id)))
            .filter(talks::enrolment_id.eq(enrolment_id))
            .filter(talks::deleted_at.is_null())
            .filter(talk_participants::confirmed_at.is_not_null())
            .select(ConfirmedBy::as_select())
            .load(conn)?;
        let summaries: Vec<SignedSummary> = summary_assessments::table
            .filter(summary_assessments::enrolment_id.eq(enrolment_id))
            .filter(summary_assessments::status.eq("signed"))
            .filter(summary_assessments::superseded_by.is_null())
            .select(SignedSummary::as_select())
            .load(conn)?;
        let activities: Vec<Activity> = activities::table
            .filter(activities::enrolment_id.eq(enrolment_id))
            .filter(activities::deleted_at.is_null())
            .order((activities::start_date, activities::id))
            .select(Activity::as_select())
            .load(conn)?;
        let mut links: HashMap<String, Vec<String>> = HashMap::new();
        let rows: Vec<Link> = record_delmal::table
            .filter(record_delmal::enrolment_id.eq(enrolment_id))
            .order((record_delmal::code, record_delmal::record_id))
            .select(Link::as_select())
            .load(conn)?;
        for l in rows {
            links.entry(l.record_id).or_default().push(l.code);
        }
        Ok(Records {
            signed,
            confirmed,
            summaries,
            activities,
            links,
        })
    }

    fn codes(&self, id: &str) -> &[String] {
        self.links.get(id).map(Vec::as_slice).unwrap_or_default()
    }
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
fn checks(r: &Records, sup: &str, part: &Part) -> Result<BTreeMap<String, Vec<String>>, AppError> {
    let mut how: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Assessments they signed, performed while they held the assignment.
    let signed: BTreeMap<&str, &str> = r
        .signed
        .iter()
        .filter(|a| a.signed_by.as_deref() == Some(sup) && part.covers(a.performed_on.date()))
        .map(|a| (a.id.as_str(), a.instrument.as_str()))
        .collect();
    for (code, instrument) in by_code(r, &signed) {
        push_once(how.entry(code).or_default(), instrument_sv(instrument));
    }
    // Talks they took part in and confirmed, held while they held the assignment.
    let confirmed: BTreeMap<&str, &str> = r
        .confirmed
        .iter()
        .filter(|t| t.user_id == sup && part.covers(t.talk.held_on.date()))
        .map(|t| (t.talk.id.as_str(), talk_sv(t.talk.kind)))
        .collect();
    for (code, kind) in by_code(r, &confirmed) {
        push_once(how.entry(code).or_default(), kind);
    }
    // Summary assessments they signed, judging the delmål achieved.
    for sum in r.summaries.iter().filter(|s| s.author_id == sup) {
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

/// The delmål links of `records` (id to a value) as (code, value), by code, then by id.
fn by_code<'a>(r: &'a Records, records: &BTreeMap<&str, &'a str>) -> Vec<(String, &'a str)> {
    let mut out: Vec<(&str, &str, &'a str)> = Vec::new();
    for (id, value) in records {
        for code in r.codes(id) {
            out.push((code.as_str(), id, value));
        }
    }
    out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    out.into_iter()
        .map(|(code, _, value)| (code.to_string(), value))
        .collect()
}

/// The activities under this supervisor, per delmål, oldest first.
fn activities_seen(r: &Records, part: &Part) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in r
        .activities
        .iter()
        .filter(|a| part.saw_activity(a.start_date.date(), a.placement_id.as_deref()))
    {
        for code in r.codes(&a.id) {
            out.entry(code.clone()).or_default().push(a.title.clone());
        }
    }
    out
}

pub(super) fn delmal_certificates(
    conn: &mut DbConn,
    b: &Basis,
    form: &Form,
) -> Result<Vec<CertificateDraft>, AppError> {
    let mut out = Vec::new();
    let parts = parts(b);
    if parts.is_empty() {
        return Ok(out);
    }
    let enrolment = EnrolmentId::from(b.e.id.as_str());
    let records = Records::load(conn, &enrolment)?;
    // Signed on the sending service by someone other than the trainee; an activity the
    // trainee logged there is no one's signature.
    let imported: Vec<_> = crate::portfolio::transferred::of_enrolment(conn, &enrolment)?
        .into_iter()
        .filter(|r| r.provenance.signed_by_another())
        .collect();
    for (sup, part) in parts {
        let how = checks(&records, &sup, &part)?;
        if how.is_empty() {
            continue;
        }
        let acts = activities_seen(&records, &part);
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
        let listed: Vec<String> = imported
            .iter()
            .filter(|r| r.delmal.iter().any(|c| how.contains_key(c)))
            .map(|r| r.id.clone())
            .collect();
        let name = name_of(conn, &sup)?;
        let mut fields = b.person.clone();
        fields.push(field("Handledare", name.clone()));
        fields.push(field("Handledd under", part.periods_text()));
        let mut draft = b.draft(
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
        );
        draft.listed = listed;
        out.push(draft);
    }
    Ok(out)
}
