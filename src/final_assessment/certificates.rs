//! Certificates (intyg) the regulation asks for after a positive final assessment, filled
//! in from the portfolio as drafts to sign. Which forms, and who signs them, follows the
//! enrolment's regulation through `forms.rs` and `catalog/certificates.json`
//! (HSLF-FS 2021:8 for BT and ST 2021, SOSFS 2015:8 for ST 2015). The delmål certificate
//! per supervisor is `cert_delmal.rs`; the service certificate and the training-activity
//! forms are `cert_service.rs`; who fills each signature line is `cert_signers.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::cert_signers::Signers;
use super::forms::{self, Form, FormSet, Kind};
use super::service::{Decision, FinalAssessment};
use crate::curriculum::{catalogue, templates};
use crate::db::DbConn;
use crate::enrolment::service as enrolment;
use crate::error::AppError;
use crate::ids::EnrolmentId;
use crate::render::pdf::Document;
use crate::schema::users;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificateField {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificateTable {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A signature line: who signs, and the name filled in when the portfolio knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignatureLine {
    /// The signer as the form names them.
    #[schema(example = "huvudansvarig handledare")]
    pub role: String,
    pub name: Option<String>,
    pub user_id: Option<String>,
    /// The signer's specialty (specialitet), from their signer profile
    /// (`PUT /users/{id}/signer-profile`); null when not stated or no one is named.
    #[schema(example = "Allmänmedicin")]
    pub specialty: Option<String>,
    /// The signer's tjänsteställe, from their signer profile; null when not stated.
    #[schema(example = "Vårdcentral Solna, Region Stockholm")]
    pub workplace: Option<String>,
}

/// Fills each named signer's specialty and tjänsteställe from their signer profile, so
/// the forms print what the person stated (one query for all the drafts' signers).
pub(super) fn with_profiles(
    conn: &mut DbConn,
    drafts: &mut [CertificateDraft],
) -> Result<(), AppError> {
    let mut ids: Vec<String> = drafts
        .iter()
        .flat_map(|d| d.signatures.iter().filter_map(|l| l.user_id.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let profiles = crate::accounts::signer_profiles::of_users(conn, &ids)?;
    for line in drafts.iter_mut().flat_map(|d| d.signatures.iter_mut()) {
        if let Some(p) = profiles
            .iter()
            .find(|p| line.user_id.as_deref() == Some(p.user_id.as_str()))
        {
            line.specialty.clone_from(&p.specialty);
            line.workplace.clone_from(&p.workplace);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificateDraft {
    /// `baskompetens`, `fullgjord-bt`, `delmal-<supervisor id>`, `specialistkompetens`,
    /// `fullgjord-st`, `utbildningsaktivitet-<record id>`.
    pub key: String,
    /// The form's appendix (bilaga) number in the statute.
    #[schema(example = "4")]
    pub appendix: String,
    #[schema(example = "Intyg om uppnådd baskompetens")]
    pub title_sv: String,
    #[schema(example = "HSLF-FS 2021:8")]
    pub statute: String,
    /// The trainee's personnummer when the form prints it and the service holds it;
    /// null until then (the line is left to fill in by hand).
    pub personnummer: Option<String>,
    pub fields: Vec<CertificateField>,
    pub tables: Vec<CertificateTable>,
    pub signatures: Vec<SignatureLine>,
    /// Records the form lists that were imported from another service (issue 17), each
    /// with where, by whom and when it was signed there; empty when none.
    pub transferred: Vec<TransferredLine>,
    /// The ids of the records the form lists, to find the imported ones among them.
    #[serde(skip)]
    pub(super) listed: Vec<String>,
}

/// A record on a certificate that was imported from another service.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferredLine {
    /// The record's id here.
    pub record_id: String,
    /// The kind of record as progress names it, e.g. `assessment`, `activity`, `placement`.
    #[schema(value_type = String, example = "assessment")]
    pub record_type: crate::ids::TransferredRecordType,
    #[schema(example = "mini_cex")]
    pub title: String,
    pub date: Option<NaiveDate>,
    /// As printed: "signerad i tjänsten X av Y (roll) den Z", or "överförd från
    /// tjänsten X den Z" for what nobody signed there (a placement).
    #[schema(
        example = "signerad i tjänsten Region Uppsala av Nora Handledare (assessor) den 2026-04-14"
    )]
    pub text: String,
    pub provenance: crate::portfolio::transferred::TransferProvenance,
}

/// "signed on service X by Y on date Z", in the forms' language.
pub(super) fn provenance_text(p: &crate::portfolio::transferred::TransferProvenance) -> String {
    match (&p.signed_by, p.signed_at) {
        (Some(by), Some(at)) => format!(
            "signerad i tjänsten {} av {by}{} den {}",
            p.service_name,
            p.signed_role
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            crate::clock::day_of(at)
        ),
        _ => format!(
            "överförd från tjänsten {} den {}",
            p.service_name,
            crate::clock::day_of(p.imported_at)
        ),
    }
}

/// Fills each draft's `transferred` with the imported records among those it lists.
fn with_transferred(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    drafts: &mut [CertificateDraft],
) -> Result<(), AppError> {
    let imported = crate::portfolio::transferred::of_enrolment(conn, enrolment_id)?;
    if imported.is_empty() {
        return Ok(());
    }
    for d in drafts.iter_mut() {
        d.transferred = imported
            .iter()
            .filter(|r| d.listed.contains(&r.id))
            .map(|r| TransferredLine {
                record_id: r.id.clone(),
                record_type: r.record_type,
                title: r.title.clone(),
                date: r.date,
                text: provenance_text(&r.provenance),
                provenance: r.provenance.clone(),
            })
            .collect();
    }
    Ok(())
}

pub(super) fn field(label: &str, value: impl Into<String>) -> CertificateField {
    CertificateField {
        label: label.into(),
        value: value.into(),
    }
}

pub(super) fn name_of(conn: &mut DbConn, id: &str) -> Result<String, AppError> {
    crate::accounts::service::display_name(conn, id)
}

/// What every form of one enrolment shares.
pub(super) struct Basis {
    pub e: enrolment::Enrolment,
    pub template: templates::ProgrammeTemplate,
    pub set: FormSet,
    pub titles: BTreeMap<String, String>,
    /// The trainee's lines (name, e-mail, personnummer, programme, statute).
    pub person: Vec<CertificateField>,
    pub personnummer: Option<String>,
    pub signers: Signers,
}

impl Basis {
    pub fn draft(
        &self,
        key: String,
        form: &Form,
        fields: Vec<CertificateField>,
        tables: Vec<CertificateTable>,
        signatures: Vec<SignatureLine>,
    ) -> CertificateDraft {
        CertificateDraft {
            key,
            appendix: form.appendix.clone(),
            title_sv: form.title_sv.clone(),
            statute: self.set.statute.clone(),
            personnummer: self.personnummer.clone(),
            fields,
            tables,
            signatures,
            transferred: Vec::new(),
            listed: Vec::new(),
        }
    }
}

/// The enrolment, its regulation's forms and the trainee's lines; `f`, the decided final
/// assessment when there is one, fills the lines of those who decided.
pub(super) fn basis(
    conn: &mut DbConn,
    keys: &crate::secrets::Keyring,
    enrolment_id: &EnrolmentId,
    f: Option<&FinalAssessment>,
    today: NaiveDate,
) -> Result<Basis, AppError> {
    let e = enrolment::get_enrolment(conn, enrolment_id, today)?;
    let template = templates::get_template(
        conn,
        &crate::ids::TemplateId::from(e.template_id.as_str()),
        Some(e.template_version),
    )?;
    let regulation = catalogue::get_regulation(conn, &template.regulation_id)?;
    // The enrolment's regulation decides the forms: its catalogue code and statute,
    // checked against its track.
    let set = forms::form_set(&regulation.code, &regulation.statute, e.track)?;
    let titles: BTreeMap<String, String> = catalogue::list_delmal(
        conn,
        &crate::ids::RegulationId::from(template.regulation_id.as_str()),
        template.content.specialty.as_deref(),
        None,
        None,
    )?
    .into_iter()
    .map(|d| (d.code, d.title_sv))
    .collect();
    let trainee = name_of(conn, &e.trainee_id)?;
    let trainee_email: String = users::table
        .find(&e.trainee_id)
        .select(users::email)
        .first(conn)?;
    // Issue 15: the recorded personnummer; with protected identity only what the form
    // needs (name and number), not the e-mail address the service adds.
    let personnummer = crate::accounts::personal_identity::for_certificate(
        conn,
        keys,
        &crate::ids::UserId::from(e.trainee_id.as_str()),
    )?;
    let protected = crate::accounts::personal_identity::is_protected(
        conn,
        &crate::ids::UserId::from(e.trainee_id.as_str()),
    )?;
    let mut person = vec![field("Namn", trainee)];
    if !protected {
        person.push(field("E-post", trainee_email));
    }
    person.extend([
        field(
            "Personnummer",
            personnummer
                .clone()
                .unwrap_or_else(|| "______________ (fylls i vid signering)".into()),
        ),
        field(
            "Program",
            format!("{} (version {})", template.content.name, template.version),
        ),
        field(
            "Föreskrift",
            format!("{} {}", regulation.statute, regulation.name_sv),
        ),
    ]);
    let signers = Signers::load(conn, f, &e, &set)?;
    Ok(Basis {
        e,
        template,
        set,
        titles,
        person,
        personnummer,
        signers,
    })
}

/// The drafts for a decided, positive final assessment.
pub fn drafts(
    conn: &mut DbConn,
    keys: &crate::secrets::Keyring,
    f: &FinalAssessment,
    today: NaiveDate,
) -> Result<Vec<CertificateDraft>, AppError> {
    if f.status != "decided" || f.decision != Some(Decision::Achieved) {
        return Err(AppError::Conflict(
            "certificates follow a final assessment decided as achieved".into(),
        ));
    }
    let basis = basis(conn, keys, &f.enrolment_id, Some(f), today)?;
    let mut out = Vec::new();
    match basis.set.kind {
        Kind::Bt2021 => out.extend(competence(&basis, f, "4", "baskompetens")?),
        Kind::St2021 => out.extend(competence(&basis, f, "7", "specialistkompetens")?),
        Kind::St2015 => out.extend(competence(&basis, f, "2", "specialistkompetens")?),
    }
    with_profiles(conn, &mut out)?;
    out.extend(along_the_way(conn, &basis)?);
    Ok(out)
}

/// The certificates that do not rest on the final decision: the service certificate,
/// the delmål certificates per supervisor (BT), the training-activity forms and STa3
/// (ST). They can be drafted, and signed, as the training goes.
pub(super) fn along_the_way(
    conn: &mut DbConn,
    basis: &Basis,
) -> Result<Vec<CertificateDraft>, AppError> {
    let mut out = Vec::new();
    match basis.set.kind {
        Kind::Bt2021 => {
            out.extend(super::cert_service::service_completed(
                conn,
                basis,
                "3",
                "fullgjord-bt",
            )?);
            if let Some(form) = basis.set.form("2") {
                out.extend(super::cert_delmal::delmal_certificates(conn, basis, form)?);
            }
        }
        Kind::St2021 => {
            out.extend(super::cert_service::service_completed(
                conn,
                basis,
                "6",
                "fullgjord-st",
            )?);
            out.extend(super::cert_activities::activities(conn, basis, "8-11")?);
            out.extend(super::cert_activities::sta3(conn, basis)?);
        }
        Kind::St2015 => {
            out.extend(super::cert_activities::activities(conn, basis, "3-7")?);
        }
    }
    with_profiles(conn, &mut out)?;
    with_transferred(conn, &EnrolmentId::from(&basis.e.id), &mut out)?;
    Ok(out)
}

/// Competence achieved (baskompetens, specialistkompetens): the decision per delmål,
/// signed as the form says, and the committee when one decided.
fn competence(
    b: &Basis,
    f: &FinalAssessment,
    appendix: &str,
    key: &str,
) -> Result<Option<CertificateDraft>, AppError> {
    let Some(form) = b.set.form(appendix) else {
        return Ok(None);
    };
    let mut fields = b.person.clone();
    fields.push(field(
        "Beslut",
        format!(
            "Slutbedömning {}: {} uppnådd",
            f.decided_at
                .map(|d| crate::clock::day_of(d).to_string())
                .unwrap_or_default(),
            key
        ),
    ));
    if let Some(committee) = b.signers.committee_line() {
        fields.push(field("Kompetenskommitté", committee));
    }
    let rows = f
        .judgements
        .iter()
        .map(|j| {
            vec![
                j.code.clone(),
                b.titles.get(&j.code).cloned().unwrap_or_default(),
                if j.judgement == "achieved" {
                    "uppnått".into()
                } else {
                    "ej uppnått".into()
                },
            ]
        })
        .collect();
    let signatures = form.signed_by.iter().map(|r| b.signers.line(r)).collect();
    Ok(Some(b.draft(
        key.into(),
        form,
        fields,
        vec![CertificateTable {
            title: "Bedömning per delmål".into(),
            headers: vec!["Delmål".into(), "Benämning".into(), "Bedömning".into()],
            rows,
        }],
        signatures,
    )))
}

/// The draft as a printable PDF.
pub fn render(d: &CertificateDraft, now: DateTime<Utc>) -> Result<Vec<u8>, AppError> {
    let mut doc = Document::new(&d.title_sv, "eportfolio", now);
    doc.heading(&d.title_sv, 1);
    doc.small(&format!(
        "Bilaga {} till {} · utkast ifyllt från portföljen {}; kontrollera och signera",
        d.appendix,
        d.statute,
        crate::clock::day_of(now)
    ));
    doc.spacer(6.0);
    let kv: Vec<(&str, &str)> = d
        .fields
        .iter()
        .map(|f| (f.label.as_str(), f.value.as_str()))
        .collect();
    doc.key_values(&kv);
    for t in &d.tables {
        doc.heading(&t.title, 2);
        let headers: Vec<&str> = t.headers.iter().map(String::as_str).collect();
        let n = headers.len().max(1) as f32;
        let widths: Vec<f32> = match headers.len() {
            3 => vec![0.34, 0.40, 0.26],
            4 => vec![0.30, 0.30, 0.14, 0.26],
            5 => vec![0.22, 0.22, 0.22, 0.12, 0.22],
            _ => vec![1.0 / n; headers.len()],
        };
        doc.table(&headers, &widths, &t.rows);
    }
    if !d.transferred.is_empty() {
        // Where each imported record was signed: the signer here vouches for the form,
        // not for a signature made on another service.
        doc.heading("Överförda poster (från annan tjänst)", 2);
        let rows: Vec<Vec<String>> = d
            .transferred
            .iter()
            .map(|t| {
                vec![
                    format!("{} ({})", t.title, t.record_type.as_str().replace('_', " ")),
                    t.date.map(|x| x.to_string()).unwrap_or_default(),
                    t.text.clone(),
                ]
            })
            .collect();
        doc.table(&["Post", "Datum", "Ursprung"], &[0.34, 0.16, 0.50], &rows);
    }
    doc.heading("Underskrifter", 2);
    for s in &d.signatures {
        doc.spacer(14.0);
        doc.paragraph(&format!(
            "{}: {}",
            s.role,
            s.name
                .clone()
                .unwrap_or_else(|| "______________________".into())
        ));
        // What the signer stated in their profile, where the form has room for it.
        let about: Vec<String> = [
            ("Specialitet", &s.specialty),
            ("Tjänsteställe", &s.workplace),
        ]
        .into_iter()
        .filter_map(|(label, v)| v.as_ref().map(|v| format!("{label}: {v}")))
        .collect();
        if !about.is_empty() {
            doc.paragraph(&about.join("   "));
        }
        doc.paragraph("Underskrift ______________________________   Datum ____________");
    }
    doc.finish()
}
