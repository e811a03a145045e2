//! Certificates (intyg) the regulation asks for after a positive final assessment, filled
//! in from the portfolio as drafts to sign. Which certificates, and who signs them, comes
//! from `catalog/certificates.json` (Socialstyrelsen's forms for HSLF-FS 2021:8).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::service::{Decision, FinalAssessment};
use crate::curriculum::{catalogue, templates};
use crate::db::DbConn;
use crate::enrolment::service as enrolment;
use crate::error::AppError;
use crate::render::pdf::Document;
use crate::schema::{activities, assessments, record_delmal, summary_assessments, users};

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
    #[schema(example = "huvudansvarig handledare")]
    pub role: String,
    pub name: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificateDraft {
    /// `baskompetens`, `fullgjord-bt`, or `delmal-<supervisor id>`.
    pub key: String,
    /// The form's appendix number in the regulation.
    #[schema(example = "4")]
    pub appendix: String,
    #[schema(example = "Intyg om uppnådd baskompetens")]
    pub title_sv: String,
    #[schema(example = "HSLF-FS 2021:8")]
    pub statute: String,
    pub fields: Vec<CertificateField>,
    pub tables: Vec<CertificateTable>,
    pub signatures: Vec<SignatureLine>,
}

fn field(label: &str, value: impl Into<String>) -> CertificateField {
    CertificateField {
        label: label.into(),
        value: value.into(),
    }
}

fn catalogue_title(statute_key: &str, appendix: u32) -> Option<(String, Vec<String>)> {
    let all: serde_json::Value =
        serde_json::from_str(include_str!("../../catalog/certificates.json")).ok()?;
    all.get(statute_key)?
        .as_array()?
        .iter()
        .find(|c| c.get("appendix").and_then(|a| a.as_u64()) == Some(u64::from(appendix)))
        .map(|c| {
            (
                c["title_sv"].as_str().unwrap_or("").to_string(),
                c["signed_by"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
}

fn name_of(conn: &mut DbConn, id: &str) -> Result<String, AppError> {
    crate::accounts::service::display_name(conn, id)
}

/// The drafts for a decided, positive final assessment.
pub fn drafts(
    conn: &mut DbConn,
    f: &FinalAssessment,
    today: NaiveDate,
) -> Result<Vec<CertificateDraft>, AppError> {
    if f.status != "decided" || f.decision != Some(Decision::Achieved) {
        return Err(AppError::Conflict(
            "certificates follow a final assessment decided as achieved".into(),
        ));
    }
    let e = enrolment::get_enrolment(conn, &f.enrolment_id, today)?;
    let template = templates::get_template(conn, &e.template_id, Some(e.template_version))?;
    let regulation = catalogue::get_regulation(conn, &template.regulation_id)?;
    let titles: BTreeMap<String, String> = catalogue::list_delmal(
        conn,
        &template.regulation_id,
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
    let statute_key = "hslf-fs-2021-8";
    let is_bt = titles.keys().any(|c| c.starts_with("BT"));
    // Issue 15: the recorded personnummer; with protected identity only what the form
    // needs (name and number), not the e-mail address the service adds.
    let number = crate::accounts::personal_identity::for_certificate(conn, &e.trainee_id)?;
    let protected = crate::accounts::personal_identity::is_protected(conn, &e.trainee_id)?;
    let person: Vec<CertificateField> = [
        Some(field("Namn", trainee.clone())),
        (!protected).then(|| field("E-post", trainee_email)),
        Some(field(
            "Personnummer",
            number.unwrap_or_else(|| "______________ (fylls i vid signering)".into()),
        )),
        Some(field(
            "Program",
            format!("{} (version {})", template.content.name, template.version),
        )),
        Some(field(
            "Föreskrift",
            format!("{} {}", regulation.statute, regulation.name_sv),
        )),
    ]
    .into_iter()
    .flatten()
    .collect();
    let signer = |role: &str| f.signers.iter().find(|s| s.role == role);
    let mut out = Vec::new();

    // Competence achieved: the decision, signed by the main supervisor and the assessor.
    let (appendix, kind) = if is_bt {
        (4, "baskompetens")
    } else {
        (7, "specialistkompetens")
    };
    if let Some((title, signed_by)) = catalogue_title(statute_key, appendix) {
        let mut fields = person.clone();
        fields.push(field(
            "Beslut",
            format!(
                "Slutbedömning {}: {} uppnådd",
                f.decided_at
                    .map(|d| d.date_naive().to_string())
                    .unwrap_or_default(),
                kind
            ),
        ));
        let rows = f
            .judgements
            .iter()
            .map(|j| {
                vec![
                    j.code.clone(),
                    titles.get(&j.code).cloned().unwrap_or_default(),
                    if j.judgement == "achieved" {
                        "uppnått".into()
                    } else {
                        "ej uppnått".into()
                    },
                ]
            })
            .collect();
        let mut signatures = Vec::new();
        for role in signed_by {
            let who = if role.contains("handledare") {
                signer("main_supervisor")
            } else if role.contains("bedömare") {
                signer("external_assessor")
            } else {
                None
            };
            signatures.push(SignatureLine {
                role,
                name: who.map(|s| s.name.clone()),
                user_id: who.map(|s| s.user_id.clone()),
            });
        }
        out.push(CertificateDraft {
            key: kind.into(),
            appendix: appendix.to_string(),
            title_sv: title,
            statute: regulation.statute.clone(),
            fields,
            tables: vec![CertificateTable {
                title: "Bedömning per delmål".into(),
                headers: vec!["Delmål".into(), "Benämning".into(), "Bedömning".into()],
                rows,
            }],
            signatures,
        });
    }

    // Service completed: the placements, which count as primary and emergency care.
    let (appendix, key) = if is_bt {
        (3, "fullgjord-bt")
    } else {
        (6, "fullgjord-st")
    };
    if let Some((title, signed_by)) = catalogue_title(statute_key, appendix) {
        let rows = e
            .placements
            .iter()
            .map(|p| {
                let kind = template.placement_type(&p.placement_type);
                vec![
                    kind.map(|k| k.name.clone())
                        .unwrap_or_else(|| p.placement_type.clone()),
                    format!("{} – {}", p.start_date, p.end_date),
                    format!("{} %", e.extent_percent),
                    kind.map(|k| k.counts_as.join(", ")).unwrap_or_default(),
                ]
            })
            .collect();
        let mut fields = person.clone();
        fields.push(field(
            "Tjänstgjord tid",
            format!(
                "{} månader (varav tillgodoräknat {} dagar)",
                e.time_served.total_months, e.time_served.credited_days
            ),
        ));
        let leave: Vec<String> = e
            .leave_periods
            .iter()
            .map(|l| {
                format!(
                    "{} {} – {} ({} %)",
                    l.kind, l.start_date, l.end_date, l.percent
                )
            })
            .collect();
        fields.push(field(
            "Ledighet",
            if leave.is_empty() {
                "ingen".into()
            } else {
                leave.join("; ")
            },
        ));
        out.push(CertificateDraft {
            key: key.into(),
            appendix: appendix.to_string(),
            title_sv: title,
            statute: regulation.statute.clone(),
            fields,
            tables: vec![CertificateTable {
                title: "Tjänstgöring".into(),
                headers: vec![
                    "Placering".into(),
                    "Period".into(),
                    "Omfattning".into(),
                    "Räknas som".into(),
                ],
                rows,
            }],
            signatures: signed_by
                .into_iter()
                .map(|role| SignatureLine {
                    role,
                    name: None,
                    user_id: None,
                })
                .collect(),
        });
    }

    // Delmål per supervisor (BT): what each supervisor saw, through which activities,
    // and how it was checked (the assessments they signed, their summary assessment).
    if is_bt {
        if let Some((title, _)) = catalogue_title(statute_key, 2) {
            out.extend(delmal_certificates(
                conn,
                &e,
                &person,
                &titles,
                &title,
                &regulation.statute,
            )?);
        }
    }
    Ok(out)
}

fn delmal_certificates(
    conn: &mut DbConn,
    e: &enrolment::Enrolment,
    person: &[CertificateField],
    titles: &BTreeMap<String, String>,
    title: &str,
    statute: &str,
) -> Result<Vec<CertificateDraft>, AppError> {
    let mut supervisors: Vec<String> = e
        .assignments
        .iter()
        .filter(|a| {
            matches!(
                a.role,
                enrolment::AssignmentRole::MainSupervisor
                    | enrolment::AssignmentRole::PlacementSupervisor
            )
        })
        .map(|a| a.user_id.clone())
        .collect();
    supervisors.sort();
    supervisors.dedup();
    let mut out = Vec::new();
    for sup in supervisors {
        // Delmål this supervisor judged achieved in a signed summary assessment, or
        // assessed in a signed formative assessment.
        let mut how: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let sums: Vec<String> = summary_assessments::table
            .filter(summary_assessments::enrolment_id.eq(&e.id))
            .filter(summary_assessments::author_id.eq(&sup))
            .filter(summary_assessments::status.eq("signed"))
            .filter(summary_assessments::superseded_by.is_null())
            .select(summary_assessments::judgements)
            .load(conn)?;
        for js in sums {
            let js: Vec<crate::portfolio::summaries::Judgement> =
                serde_json::from_str(&js).map_err(AppError::internal)?;
            for j in js.into_iter().filter(|j| j.judgement == "achieved") {
                how.entry(j.code)
                    .or_default()
                    .push("sammantagen bedömning".into());
            }
        }
        let signed: Vec<(String, String)> = record_delmal::table
            .inner_join(assessments::table.on(assessments::id.eq(record_delmal::record_id)))
            .filter(assessments::enrolment_id.eq(&e.id))
            .filter(assessments::signed_by.eq(&sup))
            .filter(assessments::status.eq("signed"))
            .filter(assessments::superseded_by.is_null())
            .select((record_delmal::code, assessments::instrument))
            .load(conn)?;
        for (code, instrument) in signed {
            let label = match instrument.as_str() {
                "mini_cex" => "Mini-CEX",
                "dops" => "DOPS",
                "cbd" => "CbD",
                "sit_in" => "medsittning",
                _ => "multi-source feedback",
            };
            let v = how.entry(code).or_default();
            if !v.iter().any(|x| x == label) {
                v.push(label.into());
            }
        }
        if how.is_empty() {
            continue;
        }
        let mut rows = Vec::new();
        for (code, checks) in &how {
            let acts: Vec<String> = record_delmal::table
                .inner_join(activities::table.on(activities::id.eq(record_delmal::record_id)))
                .filter(record_delmal::enrolment_id.eq(&e.id))
                .filter(record_delmal::code.eq(code))
                .filter(activities::deleted_at.is_null())
                .order(activities::start_date)
                .select(activities::title)
                .limit(8)
                .load(conn)?;
            rows.push(vec![
                format!("{code} {}", titles.get(code).cloned().unwrap_or_default()),
                acts.join("; "),
                checks.join(", "),
            ]);
        }
        let name = name_of(conn, &sup)?;
        out.push(CertificateDraft {
            key: format!("delmal-{sup}"),
            appendix: "2".into(),
            title_sv: title.to_string(),
            statute: statute.to_string(),
            fields: person.to_vec(),
            tables: vec![CertificateTable {
                title: "Delmål, aktiviteter och hur de kontrollerats".into(),
                headers: vec![
                    "Delmål".into(),
                    "Aktiviteter".into(),
                    "Kontrollerat genom".into(),
                ],
                rows,
            }],
            signatures: vec![SignatureLine {
                role: "handledare".into(),
                name: Some(name),
                user_id: Some(sup),
            }],
        });
    }
    Ok(out)
}

/// The draft as a printable PDF.
pub fn render(d: &CertificateDraft, now: DateTime<Utc>) -> Result<Vec<u8>, AppError> {
    let mut doc = Document::new(&d.title_sv, "eportfolio", now);
    doc.heading(&d.title_sv, 1);
    doc.small(&format!(
        "Bilaga {} till {} · utkast ifyllt från portföljen {}; kontrollera och signera",
        d.appendix,
        d.statute,
        now.date_naive()
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
            _ => vec![1.0 / n; headers.len()],
        };
        doc.table(&headers, &widths, &t.rows);
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
        doc.paragraph("Underskrift ______________________________   Datum ____________");
    }
    doc.finish()
}
