//! The training-activity forms ("Intyg om genomförd utbildningsaktivitet och
//! uppfyllda/uppfyllt kompetenskrav": HSLF-FS 2021:8 bilagor 8-11, SOSFS 2015:8 bilagor
//! 3-7), one per placement, course, observership, quality-improvement work and (2015)
//! written scientific work, and the STa3 certificate (HSLF-FS 2021:8 bilaga 12). Which
//! variant certifies which kind of record is the catalogue's `activity_variants`; the
//! kompetenskrav are shown by the signed assessments linked to the same delmål within the
//! activity's dates.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::cert_delmal::instrument_sv;
use super::certificates::{field, Basis, CertificateDraft, CertificateTable, SignatureLine};
use crate::db::DbConn;
use crate::enrolment::service::AssignmentRole;
use crate::error::AppError;
use crate::ids::{ActivityId, Day, EnrolmentId};
use crate::portfolio::activities::ActivityKind;
use crate::schema::{activities, assessments, record_delmal};

/// The key of the training-activity certificate of a placement or activity.
pub fn activity_key(record_id: &str) -> String {
    format!("utbildningsaktivitet-{record_id}")
}

/// The key of the STa3 certificate.
pub const STA3_KEY: &str = "sta3";

/// The placement supervisor of a placement: the latest assignment to it.
fn placement_supervisor(b: &Basis, placement: &str) -> Option<String> {
    b.e.assignments
        .iter()
        .filter(|a| {
            a.role == AssignmentRole::PlacementSupervisor
                && a.placement_id.as_deref() == Some(placement)
        })
        .max_by_key(|a| a.valid_from)
        .map(|a| a.user_id.clone())
}

/// The handledare of a record: the supervisor of the placement it belongs to, else the
/// main supervisor.
fn handledare(b: &Basis, placement: Option<&str>) -> Option<String> {
    placement
        .and_then(|p| placement_supervisor(b, p))
        .or_else(|| b.signers.main_supervisor().map(|p| p.user_id.clone()))
}

/// Who signs a course's certificate on the line the form names `role` ("kursledare
/// eller handledare" in 2021, "kursledare" in 2015): the kursledare who confirmed the
/// course by link (`portfolio::course_confirmation`), with their workplace or course
/// organiser as the line's tjänsteställe; else a line that admits a handledare gets the
/// handledare, and a kursledare-only line is left to sign by hand.
pub(super) fn course_signer(
    conn: &mut DbConn,
    b: &Basis,
    role: String,
    course: &str,
    placement: Option<&str>,
) -> Result<SignatureLine, AppError> {
    if role.contains("kursledare") {
        if let Some((name, workplace)) =
            crate::portfolio::course_confirmation::confirmed_kursledare(conn, &course.into())?
        {
            return Ok(SignatureLine {
                role,
                name: Some(name),
                user_id: None,
                specialty: None,
                workplace: Some(workplace),
            });
        }
    }
    let who = role
        .contains("handledare")
        .then(|| handledare(b, placement))
        .flatten();
    line(conn, role, who)
}

/// One training activity a form certifies.
struct Item {
    /// The placement's or the activity's id.
    key: String,
    /// The kind of record (`placement` or an activity kind), as `activity_variants`.
    kind: String,
    title: String,
    from: chrono::NaiveDate,
    /// Inclusive; the start for a one-day activity.
    to: chrono::NaiveDate,
    placement: Option<String>,
    /// The records whose delmål the form states.
    records: Vec<String>,
}

impl Item {
    fn period(&self) -> String {
        if self.from == self.to {
            self.from.to_string()
        } else {
            format!("{} – {}", self.from, self.to)
        }
    }
}

/// An activity as the forms read it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = activities, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ActivityRow {
    id: String,
    kind: ActivityKind,
    title: String,
    start_date: Day,
    end_date: Option<Day>,
    placement_id: Option<String>,
}

impl ActivityRow {
    fn item(self) -> Item {
        let from = self.start_date.date();
        Item {
            key: self.id.clone(),
            kind: self.kind.as_str().to_string(),
            title: self.title,
            from,
            to: self.end_date.map(|d| d.date()).unwrap_or(from),
            placement: self.placement_id,
            records: vec![self.id],
        }
    }
}

fn activities_of(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    kinds: &[String],
) -> Result<Vec<ActivityRow>, AppError> {
    Ok(activities::table
        .filter(activities::enrolment_id.eq(enrolment_id))
        .filter(activities::deleted_at.is_null())
        .filter(activities::kind.eq_any(kinds))
        .order((activities::start_date, activities::id))
        .select(ActivityRow::as_select())
        .load(conn)?)
}

fn delmal_of(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    records: &[String],
) -> Result<Vec<String>, AppError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let mut codes: Vec<String> = record_delmal::table
        .filter(record_delmal::enrolment_id.eq(enrolment_id))
        .filter(record_delmal::record_id.eq_any(records))
        .select(record_delmal::code)
        .load(conn)?;
    codes.sort();
    codes.dedup();
    Ok(codes)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = assessments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Evidence {
    id: String,
    instrument: String,
    performed_on: Day,
    placement_id: Option<String>,
    signed_by: Option<String>,
}

/// Per delmål of `codes`, the signed assessments (in force) linked to it and performed
/// within the item's dates (and placement, for a placement): what shows the
/// kompetenskrav were met. "Instrument datum (signed by)"; one signed on another service
/// (issue 17) says where and by whom. The assessments listed are added to `listed`.
fn evidence(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    codes: &[String],
    item: &Item,
    only_placement: bool,
    listed: &mut Vec<String>,
) -> Result<BTreeMap<String, Vec<String>>, AppError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if codes.is_empty() {
        return Ok(out);
    }
    // Stored as YYYY-MM-DD, so text order is date order.
    let from = item.from.to_string();
    let to = item.to.to_string();
    let signed: Vec<Evidence> = assessments::table
        .filter(assessments::enrolment_id.eq(enrolment_id))
        .filter(assessments::status.eq("signed"))
        .filter(assessments::superseded_by.is_null())
        .filter(assessments::deleted_at.is_null())
        .filter(assessments::performed_on.ge(from))
        .filter(assessments::performed_on.le(to))
        .order((assessments::performed_on, assessments::id))
        .select(Evidence::as_select())
        .load(conn)?;
    let signed: Vec<Evidence> = signed
        .into_iter()
        .filter(|a| !only_placement || a.placement_id == item.placement)
        .collect();
    if signed.is_empty() {
        return Ok(out);
    }
    let ids: Vec<String> = signed.iter().map(|a| a.id.clone()).collect();
    let links: Vec<(String, String)> = record_delmal::table
        .filter(record_delmal::enrolment_id.eq(enrolment_id))
        .filter(record_delmal::record_id.eq_any(&ids))
        .filter(record_delmal::code.eq_any(codes))
        .select((record_delmal::record_id, record_delmal::code))
        .load(conn)?;
    let imported = crate::portfolio::transferred::of_records(conn, &ids)?;
    for a in &signed {
        if !links.iter().any(|(r, _)| r == &a.id) {
            continue;
        }
        listed.push(a.id.clone());
        let by = match imported.get(&a.id) {
            Some(p) => super::certificates::provenance_text(p),
            None => a
                .signed_by
                .as_deref()
                .map(|u| super::certificates::name_of(conn, u))
                .transpose()?
                .unwrap_or_else(|| "extern bedömare".into()),
        };
        let line = format!(
            "{} {} ({by})",
            instrument_sv(&a.instrument),
            a.performed_on.date()
        );
        for (_, code) in links.iter().filter(|(r, _)| r == &a.id) {
            out.entry(code.clone()).or_default().push(line.clone());
        }
    }
    Ok(out)
}

fn delmal_table(
    b: &Basis,
    codes: &[String],
    evidence: &BTreeMap<String, Vec<String>>,
) -> CertificateTable {
    CertificateTable {
        title: "Delmål och uppfyllda kompetenskrav".into(),
        headers: vec![
            "Delmål".into(),
            "Benämning".into(),
            "Belägg (signerade bedömningar)".into(),
        ],
        rows: codes
            .iter()
            .map(|c| {
                vec![
                    c.clone(),
                    b.titles.get(c).cloned().unwrap_or_default(),
                    evidence
                        .get(c)
                        .map(|v| v.join("; "))
                        .unwrap_or_else(|| "inga signerade bedömningar".into()),
                ]
            })
            .collect(),
    }
}

fn line(conn: &mut DbConn, role: String, who: Option<String>) -> Result<SignatureLine, AppError> {
    let name = who
        .as_deref()
        .map(|u| super::certificates::name_of(conn, u))
        .transpose()?;
    Ok(SignatureLine {
        role,
        name,
        user_id: who,
        specialty: None,
        workplace: None,
    })
}

/// The training-activity forms: one per placement and per activity of a kind the
/// catalogue maps to a variant of this form.
pub(super) fn activities(
    conn: &mut DbConn,
    b: &Basis,
    appendix: &str,
) -> Result<Vec<CertificateDraft>, AppError> {
    let Some(form) = b.set.form(appendix) else {
        return Ok(Vec::new());
    };
    let e = &b.e;
    let mut items: Vec<Item> = Vec::new();
    if b.set.variant_of("placement").is_some() {
        for p in &e.placements {
            let in_placement: Vec<String> = activities::table
                .filter(activities::enrolment_id.eq(&e.id))
                .filter(activities::placement_id.eq(&p.id))
                .filter(activities::deleted_at.is_null())
                .select(activities::id)
                .load(conn)?;
            let name = b
                .template
                .placement_type(&p.placement_type)
                .map(|k| k.name.clone())
                .unwrap_or_else(|| p.placement_type.clone());
            items.push(Item {
                key: p.id.clone(),
                kind: "placement".into(),
                title: name,
                from: p.start_date,
                to: p.end_date,
                placement: Some(p.id.clone()),
                records: in_placement,
            });
        }
    }
    let kinds: Vec<String> = b
        .set
        .variants
        .iter()
        .filter(|(k, v)| *k != "placement" && v.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    items.extend(
        activities_of(conn, &EnrolmentId::from(e.id.as_str()), &kinds)?
            .into_iter()
            .map(ActivityRow::item),
    );
    let mut out = Vec::new();
    for item in items {
        let Some(variant) = b.set.variant_of(&item.kind).map(str::to_string) else {
            continue;
        };
        if !form.variants.contains(&variant) {
            continue;
        }
        let codes = delmal_of(conn, &EnrolmentId::from(e.id.as_str()), &item.records)?;
        let mut listed = item.records.clone();
        listed.push(item.key.clone());
        // A kursledare's confirmation given on another service (issue 17) is listed
        // with where it was given.
        if item.kind == "course" {
            listed.extend(
                crate::portfolio::course_confirmation::transferred_confirmation(
                    conn,
                    &ActivityId::from(&item.key),
                )?,
            );
        }
        let only_placement = item.kind == "placement";
        let seen = evidence(
            conn,
            &EnrolmentId::from(e.id.as_str()),
            &codes,
            &item,
            only_placement,
            &mut listed,
        )?;
        let mut signatures = Vec::new();
        for role in form.signers_of(&variant) {
            if item.kind == "course" {
                signatures.push(course_signer(
                    conn,
                    b,
                    role,
                    &item.key,
                    item.placement.as_deref(),
                )?);
                continue;
            }
            let who = (role == "handledare")
                .then(|| handledare(b, item.placement.as_deref()))
                .flatten();
            signatures.push(line(conn, role, who)?);
        }
        let mut fields = b.person.clone();
        fields.push(field("Utbildningsaktivitet", variant));
        fields.push(field("Beskrivning", item.title.clone()));
        fields.push(field("Period", item.period()));
        let mut draft = b.draft(
            activity_key(&item.key),
            form,
            fields,
            vec![delmal_table(b, &codes, &seen)],
            signatures,
        );
        draft.listed = listed;
        out.push(draft);
    }
    Ok(out)
}

/// "Intyg delmål STa3 Medicinsk vetenskap": the records of the catalogued kinds linked to
/// STa3, and the signed assessments of STa3 while they ran; signed by the handledare (the
/// main supervisor: the work is not tied to one placement). None without such a record.
pub(super) fn sta3(conn: &mut DbConn, b: &Basis) -> Result<Option<CertificateDraft>, AppError> {
    let Some(sta3) = b.set.sta3.clone() else {
        return Ok(None);
    };
    let Some(form) = b.set.form(&sta3.appendix) else {
        return Ok(None);
    };
    let linked: Vec<String> = record_delmal::table
        .filter(record_delmal::enrolment_id.eq(&b.e.id))
        .filter(record_delmal::code.eq(&sta3.delmal))
        .select(record_delmal::record_id)
        .load(conn)?;
    let rows: Vec<ActivityRow> = activities_of(
        conn,
        &EnrolmentId::from(b.e.id.as_str()),
        &sta3.record_kinds,
    )?
    .into_iter()
    .filter(|a| linked.contains(&a.id))
    .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let codes = vec![sta3.delmal.clone()];
    let mut work = Vec::new();
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut listed = Vec::new();
    for row in rows {
        let item = row.item();
        listed.push(item.key.clone());
        for (code, lines) in evidence(
            conn,
            &EnrolmentId::from(b.e.id.as_str()),
            &codes,
            &item,
            false,
            &mut listed,
        )? {
            let all = seen.entry(code).or_default();
            for l in lines {
                if !all.contains(&l) {
                    all.push(l);
                }
            }
        }
        work.push(vec![
            kind_sv(&item.kind).to_string(),
            item.title.clone(),
            item.period(),
        ]);
    }
    let mut fields = b.person.clone();
    fields.push(field(
        "Delmål",
        format!(
            "{} {}",
            sta3.delmal,
            b.titles.get(&sta3.delmal).cloned().unwrap_or_default()
        ),
    ));
    let mut signatures = Vec::new();
    for role in &form.signed_by {
        let who = (role == "handledare")
            .then(|| handledare(b, None))
            .flatten();
        signatures.push(line(conn, role.clone(), who)?);
    }
    let mut draft = b.draft(
        STA3_KEY.into(),
        form,
        fields,
        vec![
            CertificateTable {
                title: "Arbeten som delmålet avser".into(),
                headers: vec!["Slag".into(), "Titel".into(), "Period".into()],
                rows: work,
            },
            delmal_table(b, &codes, &seen),
        ],
        signatures,
    );
    draft.listed = listed;
    Ok(Some(draft))
}

/// The Swedish name of a kind of record on the STa3 certificate.
fn kind_sv(kind: &str) -> &'static str {
    match kind {
        "scientific_work" => "vetenskapligt arbete",
        "quality_improvement" => "kvalitets- och förbättringsarbete",
        _ => "aktivitet",
    }
}
