//! Importing a verified transfer bundle: the enrolment on the receiving template, its
//! activities and signed assessments as records of their own (read-only, with
//! provenance), everything else as evidence with the sending service's content, and the
//! attachments through the blob store. Delmål are mapped by code; codes the receiving
//! template does not know are named in the answer and kept as unmapped evidence.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::bundle::Verified;
use super::records::{no_signer, Importer, Item, Signer};
use super::trust;
use crate::audit::{self, Event};
use crate::auth::principal::{org_subtrees, Principal, Role};
use crate::clock::to_db;
use crate::context::Ctx;
use crate::curriculum::templates::{self, ProgrammeTemplate};
use crate::db::DbConn;
use crate::enrolment::enums::Track;
use crate::error::AppError;
use crate::ids::{TemplateId, TransferredRecordType, TrustedServiceId};
use crate::schema::{attachments, programme_templates, regulations, transfer_imports, users};

/// What the receiving director sends besides the bundle.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// The bundle exactly as `POST /enrolments/{id}/transfer-export` issued it.
    #[schema(value_type = Object)]
    pub bundle: Value,
    /// The receiving template. Default: the one template of the same regulation code
    /// in the caller's region (422 `transfer-template-needed` when there is none or
    /// more than one).
    pub template_id: Option<String>,
    /// The trainee's account here, by e-mail address (it must exist, with the trainee
    /// role: invite them first).
    #[schema(example = "anna@regionuppsala.se")]
    pub trainee_email: String,
}

/// A delmål code the receiving template does not know.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnmappedDelmal {
    #[schema(example = "BT14")]
    pub code: String,
    #[schema(value_type = String, example = "activity")]
    pub record_type: TransferredRecordType,
    /// The record's id here (its provenance keeps the code).
    pub record_id: String,
}

/// Counts of what was imported.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ImportCounts {
    pub activities: usize,
    pub assessments: usize,
    /// Records kept as the sending service's content (talks, summary and final
    /// assessments).
    pub evidence: usize,
    /// Placements, leave periods, extent periods and credited service taken into the
    /// enrolment's plan here (read-only), so time served counts them.
    pub plan: usize,
    pub attachments: usize,
    /// Courses a kursledare confirmed there, confirmed here with their provenance.
    pub course_confirmations: usize,
    /// Who supervised there (main and placement supervisors, with their periods), kept
    /// as provenance facts: people of the other service, not accounts here.
    pub supervisor_assignments: usize,
}

/// The answer to an import.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferImport {
    pub id: String,
    /// The new enrolment here.
    pub enrolment_id: String,
    pub template_id: String,
    /// The trusted service's name as the administrator recorded it.
    pub service_name: String,
    pub sending_service_id: String,
    pub sending_base_url: String,
    pub key_id: String,
    /// `sha256:` of the bundle's canonical content; a bundle is imported once.
    pub digest: String,
    pub counts: ImportCounts,
    /// Delmål the receiving template does not know, kept as unmapped evidence.
    pub unmapped_delmal: Vec<UnmappedDelmal>,
    #[serde(with = "crate::clock::millis")]
    pub imported_at: DateTime<Utc>,
}

fn template_needed(detail: String) -> AppError {
    AppError::Refused {
        status: 422,
        code: "transfer-template-needed",
        title: "Choose the receiving template",
        detail,
    }
}

/// The receiving template: the one asked for (the caller must be a director of studies
/// over its organisation), or the one template of the bundle's regulation code in the
/// caller's regions.
pub fn choose_template(
    conn: &mut DbConn,
    me: &Principal,
    requested: Option<&str>,
    regulation_code: &str,
) -> Result<ProgrammeTemplate, AppError> {
    me.require_person()?;
    let roots = me.orgs_with(&[Role::DirectorOfStudies]);
    if roots.is_empty() {
        return Err(AppError::Forbidden(
            "only a director of studies of the receiving region imports a portfolio".into(),
        ));
    }
    if let Some(id) = requested {
        let t = templates::get_template(conn, &crate::ids::TemplateId::from(id), None)
            .map_err(|_| AppError::validation("template_id", "no such template"))?;
        if !me.has_role_over(
            conn,
            Role::DirectorOfStudies,
            &crate::ids::OrganisationId::from(&t.organisation_id),
        )? {
            return Err(AppError::validation(
                "template_id",
                "not a template of a region where you are director of studies",
            ));
        }
        return Ok(t);
    }
    let orgs = org_subtrees(conn, &roots)?;
    let regulation_ids: Vec<String> = regulations::table
        .filter(regulations::code.eq(regulation_code))
        .select(regulations::id)
        .load(conn)?;
    let mut ids: Vec<String> = programme_templates::table
        .filter(programme_templates::organisation_id.eq_any(&orgs))
        .filter(programme_templates::regulation_id.eq_any(&regulation_ids))
        .select(programme_templates::template_id)
        .load(conn)?;
    ids.sort();
    ids.dedup();
    match ids.as_slice() {
        [one] => templates::get_template(conn, &crate::ids::TemplateId::from(one.as_str()), None),
        [] => Err(template_needed(format!(
            "Your region has no template of the regulation {regulation_code}; send \
             template_id to choose one."
        ))),
        many => Err(template_needed(format!(
            "Your region has several templates of the regulation {regulation_code} ({}); \
             send template_id to choose one.",
            many.join(", ")
        ))),
    }
}

/// The trusted keys for the template's region, as the verifier wants them.
pub fn trusted_keys(
    conn: &mut DbConn,
    template: &ProgrammeTemplate,
) -> Result<Vec<trust::Trusted>, AppError> {
    trust::keys_for(
        conn,
        &crate::ids::OrganisationId::from(template.organisation_id.as_str()),
    )
}

/// An attachment written to the blob store before the transaction.
pub struct StoredFile {
    pub id: String,
    pub original_record_id: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
}

pub(super) fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub(super) fn day(v: &Value, key: &str) -> Option<NaiveDate> {
    text(v, key).and_then(|s| s.parse().ok())
}

pub(super) fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| s.parse().ok())
}

pub(super) fn malformed(field: &str) -> AppError {
    AppError::Validation(vec![crate::error::FieldError::new(
        format!("bundle.{field}"),
        "missing or malformed",
    )])
}

/// The record type of the talks a bundle lists under `kind` (a key of its `talks`).
/// Format `eportfolio-transfer/1` exports three kinds; any other key (a kind this build
/// does not export, such as the supervisors' check-in the trainee never sees, or one it
/// does not know) is refused as malformed (422), never taken for a supervision session.
fn talk_record_type(kind: &str) -> Result<TransferredRecordType, AppError> {
    use crate::portfolio::talks::TalkKind;
    match TalkKind::from_code(kind) {
        Some(TalkKind::Supervision) => Ok(TransferredRecordType::SupervisionSession),
        Some(TalkKind::Handover) => Ok(TransferredRecordType::HandoverTalk),
        Some(TalkKind::FinalCheckIn) => Ok(TransferredRecordType::FinalCheckIn),
        Some(TalkKind::SupervisorCheckIn) | None => {
            Err(AppError::Validation(vec![crate::error::FieldError::new(
                format!("bundle.talks.{kind}"),
                "not a kind of talk a transfer bundle holds (supervision, handover, \
                 final_check_in)",
            )]))
        }
    }
}

pub(super) fn codes_of(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

#[derive(Insertable)]
#[diesel(table_name = transfer_imports)]
struct ImportRow<'a> {
    id: &'a str,
    digest: &'a str,
    bundle_id: &'a str,
    trusted_service_id: &'a TrustedServiceId,
    service_name: &'a str,
    sending_service_id: &'a str,
    sending_base_url: &'a str,
    key_id: &'a str,
    source_enrolment_id: &'a str,
    enrolment_id: &'a str,
    imported_by: &'a str,
    imported_at: NaiveDateTime,
    unmapped_delmal: String,
}

fn already_imported() -> AppError {
    AppError::Refused {
        status: 409,
        code: "transfer-already-imported",
        title: "Bundle already imported",
        detail: "This bundle was imported before (the same content, by its SHA-256). \
                 Ask the sending service for a new export if the portfolio changed."
            .into(),
    }
}

/// Where a verified bundle goes, and the trusted service that vouched for it.
pub struct Destination<'a> {
    pub template_id: &'a TemplateId,
    /// The trusted service whose key verified the bundle.
    pub trusted_service_id: &'a TrustedServiceId,
    /// Its name as the administrator recorded it (what the provenance shows).
    pub service_name: &'a str,
    /// The trainee's account here.
    pub trainee_email: &'a str,
}

/// Writes the import (one transaction): refuses a bundle imported before, creates the
/// enrolment and its records, and records the import in the audit log.
pub fn import(
    conn: &mut DbConn,
    ctx: &Ctx,
    verified: &Verified,
    to: Destination<'_>,
    files: &[StoredFile],
) -> Result<TransferImport, AppError> {
    let Destination {
        template_id,
        trusted_service_id,
        service_name,
        trainee_email,
    } = to;
    let b = &verified.bundle;
    let me = &ctx.caller;
    // The index decides (two imports at once: one waits for the other, then fails on
    // it); this look-up gives the usual case its clear answer first.
    let seen: Option<String> = transfer_imports::table
        .filter(transfer_imports::digest.eq(&verified.digest))
        .select(transfer_imports::id)
        .first(conn)
        .optional()?;
    if seen.is_some() {
        return Err(already_imported());
    }
    let import_id = uuid::Uuid::new_v4().to_string();
    let enrolment_id = uuid::Uuid::new_v4();
    let now = to_db(ctx.now);
    let e = &b["enrolment"];
    let service = &b["service"];
    diesel::insert_into(transfer_imports::table)
        .values(ImportRow {
            id: &import_id,
            digest: &verified.digest,
            bundle_id: text(b, "bundle_id").unwrap_or(""),
            trusted_service_id,
            service_name,
            sending_service_id: text(service, "id").unwrap_or(""),
            sending_base_url: text(service, "base_url").unwrap_or(""),
            key_id: &verified.key_id,
            source_enrolment_id: text(e, "id").unwrap_or(""),
            enrolment_id: &enrolment_id.to_string(),
            imported_by: me.user_id.as_str(),
            imported_at: now,
            unmapped_delmal: "[]".into(),
        })
        .execute(conn)
        .map_err(|err| match err {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => already_imported(),
            other => other.into(),
        })?;

    let email = crate::auth::validate::normalize_email(trainee_email);
    let trainee_id: Option<String> = users::table
        .filter(users::email.eq(&email))
        .select(users::id)
        .first(conn)
        .optional()?;
    let trainee_id = trainee_id.ok_or_else(|| {
        AppError::validation(
            "trainee_email",
            "no account with this address here; invite the trainee first",
        )
    })?;
    let track: Track =
        serde_json::from_value(e["track"].clone()).map_err(|_| malformed("enrolment.track"))?;
    let created = crate::enrolment::service::create_enrolment(
        conn,
        ctx.now,
        me,
        crate::enrolment::enrolments::NewEnrolment {
            id: Some(enrolment_id),
            trainee_id: trainee_id.clone(),
            template_id: template_id.as_str().to_string(),
            template_version: None,
            track,
            start_date: day(e, "start_date").ok_or_else(|| malformed("enrolment.start_date"))?,
            planned_end: day(e, "planned_end").ok_or_else(|| malformed("enrolment.planned_end"))?,
            extent_percent: e["extent_percent"]
                .as_i64()
                .and_then(|x| i32::try_from(x).ok()),
            main_supervisor_id: None,
            placements: Vec::new(),
            leave_periods: Vec::new(),
            bt_enrolment_id: None,
        },
    )?;
    let template = templates::get_template(
        conn,
        &crate::ids::TemplateId::from(created.template_id.as_str()),
        Some(created.template_version),
    )?;
    let known: HashSet<String> = crate::curriculum::catalogue::delmal_codes(
        conn,
        &crate::ids::RegulationId::from(template.regulation_id.as_str()),
        template.content.specialty.as_deref(),
    )?
    .into_iter()
    .collect();
    let people = b["people"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                text(p, "id")?.to_string(),
                (
                    text(p, "name").unwrap_or("").to_string(),
                    text(p, "email").map(str::to_string),
                ),
            ))
        })
        .collect();
    let mut im = Importer {
        import_id: import_id.clone(),
        enrolment_id: created.id.clone(),
        trainee_id: trainee_id.clone(),
        known,
        people,
        now,
        unmapped: Vec::new(),
        counts: ImportCounts::default(),
    };

    let mut local: HashMap<String, String> = HashMap::new();
    for a in b["activities"].as_array().into_iter().flatten() {
        let id = im.activity(conn, a, created.template_version)?;
        local.insert(text(a, "id").unwrap_or("").to_string(), id);
    }
    for a in b["assessments"].as_array().into_iter().flatten() {
        let id = im.assessment(conn, a)?;
        local.insert(text(a, "id").unwrap_or("").to_string(), id);
    }
    for c in b["course_confirmations"].as_array().into_iter().flatten() {
        im.course_confirmation(conn, c, &local)?;
    }
    for (kind, list) in b["talks"].as_object().into_iter().flatten() {
        let record_type = talk_record_type(kind)?;
        for t in list.as_array().into_iter().flatten() {
            let topics = codes_of(&t["topics"]).join("; ");
            let title = if topics.is_empty() {
                record_type.as_str().replace('_', " ")
            } else {
                topics
            };
            // The first participant other than the trainee who confirmed it.
            let confirmed = t["participants"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| {
                    !p["confirmed_at"].is_null() && text(p, "user_id") != text(e, "trainee_id")
                });
            let signer = match confirmed {
                Some(p) => Signer {
                    name: im.name_of(text(p, "user_id")),
                    role: text(p, "role").map(str::to_string),
                    at: time(&p["confirmed_at"]),
                },
                None => no_signer(),
            };
            let item = Item {
                record_type,
                original: t,
                title: &title,
                date: day(t, "held_on"),
                signer,
            };
            im.evidence(conn, item, codes_of(&t["delmal"]))?;
        }
    }
    for s in b["summary_assessments"].as_array().into_iter().flatten() {
        let codes = s["judgements"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| text(j, "code").map(str::to_string))
            .collect();
        let at = time(&s["signature"]["signed_at"]);
        let signer = Signer {
            name: im.name_of(text(s, "author_id")),
            role: Some("supervisor".into()),
            at,
        };
        let item = Item {
            record_type: TransferredRecordType::SummaryAssessment,
            original: s,
            title: "summary assessment",
            date: at.map(|t| t.date_naive()),
            signer,
        };
        im.evidence(conn, item, codes)?;
    }
    for f in b["final_assessments"].as_array().into_iter().flatten() {
        let signed = f["signers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| !s["signed_at"].is_null());
        let signer = match signed {
            Some(s) => Signer {
                name: text(s, "name").map(str::to_string),
                role: text(s, "role").map(str::to_string),
                at: time(&s["signed_at"]),
            },
            None => no_signer(),
        };
        let at = time(&f["decided_at"]);
        let item = Item {
            record_type: TransferredRecordType::FinalAssessment,
            original: f,
            title: "final assessment",
            date: at.map(|t| t.date_naive()),
            signer,
        };
        im.evidence(conn, item, Vec::new())?;
    }
    // The plan (placements, leave, extent, credited service) becomes this enrolment's
    // own, so time served here counts the time served there.
    let exported = time(&b["created_at"]).ok_or_else(|| malformed("created_at"))?;
    im.plan(conn, e, exported.date_naive())?;

    // The attachments, already in the blob store, on their records here.
    for f in files {
        let Some(record) = local.get(&f.original_record_id) else {
            return Err(AppError::validation(
                "bundle.attachments",
                "an attachment names no record of the bundle",
            ));
        };
        diesel::insert_into(attachments::table)
            .values((
                attachments::id.eq(&f.id),
                attachments::enrolment_id.eq(&created.id),
                attachments::record_id.eq(record),
                attachments::filename.eq(&f.filename),
                attachments::content_type.eq(&f.content_type),
                attachments::size_bytes.eq(f.size_bytes),
                attachments::sha256.eq(&f.sha256),
                attachments::storage_key.eq(crate::storage::content_key(&f.sha256)?),
                attachments::uploaded_by.eq(&trainee_id),
                attachments::created_at.eq(now),
            ))
            .execute(conn)?;
        im.counts.attachments += 1;
    }

    let unmapped = std::mem::take(&mut im.unmapped);
    diesel::update(transfer_imports::table.find(&import_id))
        .set(
            transfer_imports::unmapped_delmal
                .eq(serde_json::to_string(&unmapped).map_err(AppError::internal)?),
        )
        .execute(conn)?;
    let answer = TransferImport {
        id: import_id.clone(),
        enrolment_id: created.id.clone(),
        template_id: created.template_id.clone(),
        service_name: service_name.to_string(),
        sending_service_id: text(service, "id").unwrap_or("").to_string(),
        sending_base_url: text(service, "base_url").unwrap_or("").to_string(),
        key_id: verified.key_id.clone(),
        digest: verified.digest.clone(),
        counts: im.counts,
        unmapped_delmal: unmapped,
        imported_at: ctx.now,
    };
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&me.user_id),
            client: ctx.client.user_agent.as_deref(),
            action: "imported",
            entity: "enrolment",
            entity_id: &created.id,
            enrolment_id: Some(&created.id),
            data: &json!({"import_id": import_id, "digest": verified.digest,
                          "service_name": service_name, "key_id": verified.key_id,
                          "bundle_id": text(b, "bundle_id"), "counts": answer.counts,
                          "unmapped_delmal": answer.unmapped_delmal.len()}),
        },
    )?;
    Ok(answer)
}
