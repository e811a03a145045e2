//! The application summary: the certificates an application encloses (HSLF-FS 2021:8
//! bilaga 1, "Ansökan om intyg om godkänd bastjänstgöring", for BT; bilaga 5, "Ansökan
//! om bevis om specialistkompetens", for ST), which of them the portfolio can draft,
//! which are signed and which are missing, so that the trainee sends a complete package.
//! The application forms' own enclosure lists were not at hand (see the catalogue): the
//! summary lists the certificates of the enrolment's form set as the catalogue states
//! them, one per supervisor, placement or activity where the form is one per record.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::cert_activities::STA3_KEY;
use super::certificates::{self, CertificateDraft, SignatureLine};
use super::forms::{Form, Kind};
use super::service::{Decision, FinalAssessment};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::EnrolmentId;
use crate::render::pdf::Document;

/// Where a certificate of the application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnclosureStatus {
    /// The service holds its signatures: the competence certificate of a final
    /// assessment decided as achieved, which its signers signed in the service.
    Signed,
    /// Drafted from the portfolio; signed on the printed form (or in the region's
    /// signing service), which the service does not see.
    Drafted,
    /// Cannot be drafted yet: `missing_reason` says what is lacking.
    Missing,
}

/// The application form whose enclosures the summary lists.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApplicationForm {
    #[schema(example = "5")]
    pub appendix: String,
    #[schema(example = "Ansökan om bevis om specialistkompetens")]
    pub title_sv: String,
}

/// One certificate the application encloses.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnclosedCertificate {
    /// The draft's key (`GET /final-assessments/{id}/certificates/{key}` after the
    /// decision); null when it is missing.
    pub key: Option<String>,
    #[schema(example = "8-11")]
    pub appendix: String,
    #[schema(example = "Intyg om genomförd utbildningsaktivitet och uppfyllda kompetenskrav")]
    pub title_sv: String,
    /// The training-activity variant (kurs, auskultation, ...), for those forms.
    #[schema(example = "kurs")]
    pub variant: Option<String>,
    /// What the certificate is about: the activity or placement, or the supervisor.
    #[schema(example = "Kurs i medicinsk vetenskap")]
    pub subject: Option<String>,
    pub status: EnclosureStatus,
    pub missing_reason: Option<String>,
    pub signatures: Vec<SignatureLine>,
}

/// The certificates an application encloses.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApplicationSummary {
    pub enrolment_id: String,
    /// The trainee's name as the certificates print it.
    #[schema(example = "Åsa Ström")]
    pub trainee_name: String,
    #[schema(example = "HSLF-FS 2021:8")]
    pub statute: String,
    /// Null where the catalogue names no application form (SOSFS 2015:8).
    pub application: Option<ApplicationForm>,
    /// No certificate is missing (each is drafted or signed).
    pub complete: bool,
    pub certificates: Vec<EnclosedCertificate>,
    /// What the list rests on.
    pub note: String,
}

const NOTE: &str = "Listan följer intygen i föreskriftens blankettuppsättning enligt \
katalogen (catalog/certificates.json); ansökningsblankettens egen bilageförteckning fanns \
inte tillgänglig. Signerade: intyg vars underskrifter tjänsten har (slutbedömningen); \
övriga signeras på papper.";

fn value_of(d: &CertificateDraft, label: &str) -> Option<String> {
    d.fields
        .iter()
        .find(|f| f.label == label)
        .map(|f| f.value.clone())
}

fn enclosed(d: CertificateDraft, status: EnclosureStatus) -> EnclosedCertificate {
    EnclosedCertificate {
        variant: value_of(&d, "Utbildningsaktivitet"),
        subject: value_of(&d, "Beskrivning").or_else(|| value_of(&d, "Handledare")),
        key: Some(d.key),
        appendix: d.appendix,
        title_sv: d.title_sv,
        status,
        missing_reason: None,
        signatures: d.signatures,
    }
}

fn missing(form: &Form, subject: Option<String>, reason: &str) -> EnclosedCertificate {
    EnclosedCertificate {
        key: None,
        appendix: form.appendix.clone(),
        title_sv: form.title_sv.clone(),
        variant: None,
        subject,
        status: EnclosureStatus::Missing,
        missing_reason: Some(reason.into()),
        signatures: Vec::new(),
    }
}

/// The enrolment's application summary. `decided`: its final assessments, the latest
/// decided as achieved filling the competence certificate.
pub fn summary(
    conn: &mut DbConn,
    keys: &crate::secrets::Keyring,
    enrolment_id: &EnrolmentId,
    finals: &[FinalAssessment],
    today: NaiveDate,
) -> Result<ApplicationSummary, AppError> {
    let decided = finals
        .iter()
        .rev()
        .find(|f| f.status == "decided" && f.decision == Some(Decision::Achieved));
    let b = certificates::basis(conn, keys, enrolment_id, decided, today)?;
    let (competence, service, per_record): (&str, Option<&str>, &str) = match b.set.kind {
        Kind::Bt2021 => ("4", Some("3"), "2"),
        Kind::St2021 => ("7", Some("6"), "8-11"),
        Kind::St2015 => ("2", None, "3-7"),
    };
    let mut out = Vec::new();
    if let Some(form) = b.set.form(competence) {
        match decided {
            Some(f) => {
                let drafts = certificates::drafts(conn, keys, f, today)?;
                if let Some(d) = drafts.into_iter().find(|d| d.appendix == competence) {
                    out.push(enclosed(d, EnclosureStatus::Signed));
                }
            }
            None => out.push(missing(
                form,
                None,
                "ingen slutbedömning beslutad som uppnådd",
            )),
        }
    }
    let along = certificates::along_the_way(conn, &b)?;
    if let Some(form) = service.and_then(|a| b.set.form(a)) {
        if b.e.placements.is_empty() {
            out.push(missing(form, None, "inga placeringar i planen"));
        }
    }
    let mut covered: Vec<String> = Vec::new();
    for d in along {
        if service == Some(d.appendix.as_str()) && b.e.placements.is_empty() {
            continue;
        }
        if d.appendix == per_record && b.set.kind == Kind::Bt2021 {
            // The delmål a supervisor's certificate covers head its rows ("BT1 ...").
            for t in &d.tables {
                for r in &t.rows {
                    if let Some(code) = r.first().and_then(|c| c.split(' ').next()) {
                        covered.push(code.to_string());
                    }
                }
            }
        }
        out.push(enclosed(d, EnclosureStatus::Drafted));
    }
    if b.set.kind == Kind::Bt2021 {
        if let Some(form) = b.set.form(per_record) {
            for code in crate::enrolment::service::delmal_codes_of(conn, enrolment_id)? {
                if !covered.contains(&code) {
                    out.push(missing(
                        form,
                        Some(code),
                        "delmålet finns inte på någon handledares intyg: ingen signerad \
                         bedömning, bekräftat samtal eller sammantagen bedömning av det",
                    ));
                }
            }
        }
    }
    if let Some(sta3) = &b.set.sta3 {
        if let Some(form) = b.set.form(&sta3.appendix) {
            if !out.iter().any(|c| c.key.as_deref() == Some(STA3_KEY)) {
                out.push(missing(
                    form,
                    Some(sta3.delmal.clone()),
                    "inget vetenskapligt arbete eller kvalitets- och förbättringsarbete \
                     kopplat till delmålet",
                ));
            }
        }
    }
    Ok(ApplicationSummary {
        enrolment_id: enrolment_id.to_string(),
        trainee_name: certificates::name_of(conn, &b.e.trainee_id)?,
        statute: b.set.statute.clone(),
        application: b.set.application.as_ref().map(|f| ApplicationForm {
            appendix: f.appendix.clone(),
            title_sv: f.title_sv.clone(),
        }),
        complete: out.iter().all(|c| c.status != EnclosureStatus::Missing),
        certificates: out,
        note: NOTE.into(),
    })
}

fn status_sv(s: EnclosureStatus) -> &'static str {
    match s {
        EnclosureStatus::Signed => "signerat",
        EnclosureStatus::Drafted => "utkast, signeras",
        EnclosureStatus::Missing => "saknas",
    }
}

/// The summary as a printable PDF.
pub fn render(s: &ApplicationSummary, now: DateTime<Utc>) -> Result<Vec<u8>, AppError> {
    let title = match &s.application {
        Some(a) => format!(
            "Intyg till {} (bilaga {}, {})",
            a.title_sv, a.appendix, s.statute
        ),
        None => format!("Intyg till ansökan ({})", s.statute),
    };
    let mut doc = Document::new(&title, "eportfolio", now);
    doc.heading(&title, 1);
    doc.small(&format!(
        "Sammanställt från portföljen {}",
        crate::clock::day_of(now)
    ));
    doc.spacer(6.0);
    let missing = s
        .certificates
        .iter()
        .filter(|c| c.status == EnclosureStatus::Missing)
        .count();
    let state = if s.complete {
        "komplett".to_string()
    } else {
        format!("{missing} intyg saknas")
    };
    doc.key_values(&[
        ("Namn", &s.trainee_name),
        ("Föreskrift", &s.statute),
        ("Status", &state),
    ]);
    let rows: Vec<Vec<String>> = s
        .certificates
        .iter()
        .map(|c| {
            let what = match (&c.variant, &c.subject) {
                (Some(v), Some(x)) => format!("{v}: {x}"),
                (None, Some(x)) => x.clone(),
                (Some(v), None) => v.clone(),
                (None, None) => String::new(),
            };
            let who = c
                .signatures
                .iter()
                .map(|l| match &l.name {
                    Some(n) => format!("{} ({n})", l.role),
                    None => l.role.clone(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let status = match &c.missing_reason {
                Some(r) => format!("{}: {r}", status_sv(c.status)),
                None => status_sv(c.status).to_string(),
            };
            vec![format!("{} {}", c.appendix, c.title_sv), what, status, who]
        })
        .collect();
    doc.heading("Intyg", 2);
    doc.table(
        &["Bilaga och intyg", "Avser", "Status", "Signeras av"],
        &[0.34, 0.22, 0.2, 0.24],
        &rows,
    );
    doc.small(&s.note);
    doc.finish()
}
