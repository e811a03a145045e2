//! The transfer bundle: one JSON document `{"bundle": {...}, "signature": {...}}`, the
//! same shape and canonical form as a JSON dossier, signed with this service's dossier
//! key (`dossier::signing`). Attachments travel inside, base64 with their SHA-256, so
//! the one signature covers every byte. See docs/transfer.md for why JSON and not a
//! tar archive.

use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::crypto::sha256_hex;
use crate::auth::principal::{Principal, Role};
use crate::context::Ctx;
use crate::curriculum::{catalogue, templates};
use crate::db::DbConn;
use crate::dossier::signing::{self, DossierSignature};
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::ids::EnrolmentId;
use crate::portfolio::{activities, assessments, summaries, talks};
use crate::schema::{attachments, audit_log, users};

/// The format named in every bundle; an importer refuses any other.
pub const FORMAT: &str = "eportfolio-transfer/1";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// All records of one enrolment (the lists' own limit is for pages).
const ALL: i64 = 1_000_000;

/// Audit actions that are facts about records and their signatures.
const FACTS: [&str; 7] = [
    "created",
    "signed",
    "confirmed",
    "decided",
    "declined",
    "requested",
    "correction_created",
];

/// A transfer bundle as issued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignedBundle {
    /// The content (format `eportfolio-transfer/1`, see docs/transfer.md).
    #[schema(value_type = Object)]
    pub bundle: Value,
    pub signature: DossierSignature,
}

/// Who is exporting: the trainee or a director of studies of the enrolment's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exporter {
    Trainee,
    DirectorOfStudies,
}

impl Exporter {
    pub fn as_str(self) -> &'static str {
        match self {
            Exporter::Trainee => "trainee",
            Exporter::DirectorOfStudies => "director_of_studies",
        }
    }
}

/// May `me` export the enrolment? The trainee, and directors of studies of its region.
/// Anyone else who may see it: 403; who may not: 404.
pub fn may_export(
    conn: &mut DbConn,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    today: chrono::NaiveDate,
) -> Result<Exporter, AppError> {
    let enrolment_id = enrolment_id.as_str();
    me.require_person()?;
    let e = crate::enrolment::service::get_enrolment(conn, enrolment_id, today)
        .map_err(|_| AppError::NotFound)?;
    if e.trainee_id == me.user_id.as_str() {
        return Ok(Exporter::Trainee);
    }
    if me.has_role_over(
        conn,
        Role::DirectorOfStudies,
        &crate::ids::OrganisationId::from(&e.organisation_id),
    )? {
        return Ok(Exporter::DirectorOfStudies);
    }
    access::require(
        conn,
        me,
        &EnrolmentId::from(enrolment_id),
        today,
        Access::Read,
    )?;
    Err(AppError::Forbidden(
        "only the trainee or a director of studies of the region exports a portfolio".into(),
    ))
}

/// An attachment to read from the blob store into the bundle.
pub struct AttachmentRef {
    pub id: String,
    pub record_id: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub storage_key: String,
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(AppError::internal)
}

/// The bundle's content without the attachments' bytes (read in one transaction), and
/// the attachments to add.
pub fn gather(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    exporter: Exporter,
) -> Result<(Value, Vec<AttachmentRef>), AppError> {
    let enrolment_id = enrolment_id.as_str();
    let today = ctx.today();
    let e = crate::enrolment::service::get_enrolment(conn, enrolment_id, today)?;
    let template = templates::get_template(
        conn,
        &crate::ids::TemplateId::from(e.template_id.as_str()),
        Some(e.template_version),
    )?;
    let regulation = catalogue::get_regulation(conn, &template.regulation_id)?;
    let acts = activities::list_activities(
        conn,
        &enrolment_id.into(),
        &activities::Filter::default(),
        None,
        ALL,
    )?;
    // What was signed: the current signed assessments and summaries (drafts and
    // requests are work in progress on the sending side, not evidence).
    let signed: Vec<_> = assessments::list(
        conn,
        &enrolment_id.into(),
        &assessments::Filter::default(),
        None,
        ALL,
    )?
    .into_iter()
    .filter(|a| a.status == assessments::SIGNED && a.superseded_by.is_none())
    .collect();
    let sums: Vec<_> = summaries::list(conn, &enrolment_id.into())?
        .into_iter()
        .filter(|s| s.status == "signed" && s.superseded_by.is_none())
        .collect();
    let mut all_talks = serde_json::Map::new();
    for kind in [
        talks::TalkKind::Supervision,
        talks::TalkKind::Handover,
        talks::TalkKind::FinalCheckIn,
    ] {
        let list = talks::list(
            conn,
            &crate::ids::EnrolmentId::new(enrolment_id.to_string()),
            kind,
            None,
            ALL,
        )?;
        all_talks.insert(kind.as_str().to_string(), to_value(&list)?);
    }
    let finals = crate::final_assessment::service::list(
        conn,
        &crate::ids::EnrolmentId::new(enrolment_id.to_string()),
    )?;

    // What a kursledare confirmed (requests still open are work in progress there).
    let courses: Vec<_> =
        crate::portfolio::course_confirmation::of_enrolment(conn, &enrolment_id.into())?
            .into_iter()
            .filter(|c| c.status == crate::portfolio::course_confirmation::CONFIRMED)
            .collect();

    // Everyone the records name, so the receiving side can say who signed.
    let mut ids: Vec<String> = vec![e.trainee_id.clone()];
    ids.extend(e.assignments.iter().map(|a| a.user_id.clone()));
    ids.extend(signed.iter().filter_map(|a| a.assessor_id.clone()));
    ids.extend(
        signed
            .iter()
            .filter_map(|a| a.signature.as_ref().and_then(|s| s.signed_by.clone())),
    );
    ids.extend(sums.iter().map(|s| s.author_id.clone()));
    for list in all_talks.values() {
        for t in list.as_array().into_iter().flatten() {
            for p in t["participants"].as_array().into_iter().flatten() {
                if let Some(u) = p["user_id"].as_str() {
                    ids.push(u.to_string());
                }
            }
        }
    }
    for f in &finals {
        ids.extend(f.signers.iter().map(|s| s.user_id.to_string()));
    }
    ids.extend(courses.iter().filter_map(|c| c.vetted_by.clone()));
    ids.sort();
    ids.dedup();
    let people: Vec<(String, String, String)> = users::table
        .filter(users::id.eq_any(&ids))
        .order(users::id)
        .select((users::id, users::display_name, users::email))
        .load(conn)?;
    // No contact details of a person with protected identity (as in the dossier).
    let protected = crate::accounts::personal_identity::protected_among(conn, &ids)?;
    let people: Vec<Value> = people
        .into_iter()
        .map(|(id, name, email)| {
            let email = (!protected.contains(&id)).then_some(email);
            json!({"id": id, "name": name, "email": email})
        })
        .collect();
    let trainee = people
        .iter()
        .find(|p| p["id"] == json!(e.trainee_id))
        .cloned()
        .unwrap_or(Value::Null);

    #[derive(Queryable, Selectable)]
    #[diesel(table_name = audit_log, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
    struct Fact {
        seq: i64,
        at: chrono::NaiveDateTime,
        actor_id: Option<String>,
        action: String,
        entity: String,
        entity_id: String,
        hash: String,
    }
    let audit: Vec<Fact> = audit_log::table
        .filter(audit_log::enrolment_id.eq(enrolment_id))
        .filter(audit_log::action.eq_any(FACTS))
        .order(audit_log::seq)
        .select(Fact::as_select())
        .load(conn)?;
    let audit: Vec<Value> = audit
        .into_iter()
        .map(|r| {
            json!({"seq": r.seq, "at": crate::clock::from_db(r.at), "actor_id": r.actor_id,
                   "action": r.action, "entity": r.entity, "entity_id": r.entity_id,
                   "hash": r.hash})
        })
        .collect();

    // Attachments of the records that travel (activities and signed assessments).
    let mut record_ids: Vec<String> = acts.iter().map(|a| a.id.clone()).collect();
    record_ids.extend(signed.iter().map(|a| a.id.clone()));
    #[derive(Queryable, Selectable)]
    #[diesel(table_name = attachments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
    struct FileRow {
        id: String,
        record_id: String,
        filename: String,
        content_type: String,
        size_bytes: i64,
        sha256: String,
        storage_key: String,
    }
    let files: Vec<FileRow> = attachments::table
        .filter(attachments::enrolment_id.eq(enrolment_id))
        .filter(attachments::deleted_at.is_null())
        .filter(attachments::record_id.eq_any(&record_ids))
        .order((attachments::created_at, attachments::id))
        .select(FileRow::as_select())
        .load(conn)?;
    let files = files
        .into_iter()
        .map(|f| AttachmentRef {
            id: f.id,
            record_id: f.record_id,
            filename: f.filename,
            content_type: f.content_type,
            size_bytes: f.size_bytes,
            sha256: f.sha256,
            storage_key: f.storage_key,
        })
        .collect();

    let (key_id, _) = signing::current_key(conn, ctx.keyring()?)?;
    let config = &ctx.config;
    let bundle = json!({
        "format": FORMAT,
        "bundle_id": uuid::Uuid::new_v4().to_string(),
        "created_at": ctx.now,
        "service": {
            "id": config.service_id,
            "name": config.service_name,
            "base_url": config.public_url,
            "key_id": key_id,
        },
        "exported_by": {"id": ctx.caller.user_id, "role": exporter.as_str()},
        "trainee": trainee,
        "regulation": {"code": regulation.code, "version": regulation.version, "name": regulation.name_sv},
        "programme": {"template_id": template.id, "template_version": template.version,
                      "name": template.content.name},
        "enrolment": to_value(&e)?,
        "people": people,
        "activities": to_value(&acts)?,
        "assessments": to_value(&signed)?,
        "talks": all_talks,
        "summary_assessments": to_value(&sums)?,
        "final_assessments": to_value(&finals)?,
        "course_confirmations": to_value(&courses)?,
        "audit": audit,
    });
    Ok((bundle, files))
}

/// Adds the attachments' bytes (read and checked against their SHA-256) to the bundle.
pub fn add_attachments(
    bundle: &mut Value,
    files: Vec<AttachmentRef>,
    blobs: &dyn crate::storage::BlobStore,
) -> Result<(), AppError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let (mut reader, _) = blobs.open(&f.storage_key)?;
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| AppError::internal(format!("attachment {}: {e}", f.id)))?;
        // A damaged file is never passed on as if it were what was uploaded.
        if sha256_hex(&bytes) != f.sha256 {
            return Err(AppError::AttachmentDamaged(format!("attachment {}", f.id)));
        }
        out.push(json!({
            "id": f.id, "record_id": f.record_id, "filename": f.filename,
            "content_type": f.content_type, "size_bytes": f.size_bytes, "sha256": f.sha256,
            "data": B64.encode(&bytes),
        }));
    }
    bundle["attachments"] = Value::Array(out);
    Ok(())
}

fn tampered(detail: &str) -> AppError {
    AppError::Refused {
        status: 422,
        code: "transfer-tampered",
        title: "Bundle changed or damaged",
        detail: detail.into(),
    }
}

fn untrusted() -> AppError {
    AppError::Refused {
        status: 403,
        code: "transfer-untrusted",
        title: "Untrusted sender",
        detail: "The bundle is signed with a key that no service trusted by the receiving \
                 region holds. An administrator adds the sending service and its key under \
                 /trusted-services."
            .into(),
    }
}

/// A bundle whose signature checked out: its content, the digest that identifies it
/// (`sha256:` of the canonical content) and the key that signed it.
pub struct Verified {
    pub bundle: Value,
    pub digest: String,
    pub key_id: String,
}

/// Checks a bundle document against the keys trusted for the receiving region. An
/// unknown key is 403 `transfer-untrusted`; anything changed after signing (content,
/// hash, signature, an attachment's bytes) is 422 `transfer-tampered`.
pub fn verify(doc: &Value, trusted: &[(String, VerifyingKey)]) -> Result<Verified, AppError> {
    let (Some(bundle), Some(sig)) = (doc.get("bundle"), doc.get("signature")) else {
        return Err(AppError::validation(
            "bundle",
            "not a transfer bundle: bundle and signature expected",
        ));
    };
    let sig: DossierSignature = serde_json::from_value(sig.clone())
        .map_err(|_| AppError::validation("signature", "malformed signature block"))?;
    if bundle.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(AppError::validation(
            "bundle.format",
            "not an eportfolio-transfer/1 bundle",
        ));
    }
    if sig.algorithm != signing::ALGORITHM {
        return Err(tampered("unknown signature algorithm"));
    }
    let key = trusted
        .iter()
        .find(|(id, _)| id == &sig.key_id)
        .map(|(_, k)| k)
        .ok_or_else(untrusted)?;
    let canonical = signing::canonical(bundle);
    let digest = format!("sha256:{}", sha256_hex(canonical.as_bytes()));
    if digest != sig.content_hash {
        return Err(tampered("the content was changed after signing"));
    }
    let signature = B64
        .decode(&sig.value)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
        .ok_or_else(|| tampered("the signature is malformed"))?;
    key.verify(canonical.as_bytes(), &signature)
        .map_err(|_| tampered("the signature does not match the content"))?;
    Ok(Verified {
        bundle: bundle.clone(),
        digest,
        key_id: sig.key_id,
    })
}

/// An attachment's bytes from a verified bundle, checked against its SHA-256.
pub fn attachment_bytes(a: &Value) -> Result<Vec<u8>, AppError> {
    let bytes = a["data"]
        .as_str()
        .and_then(|d| B64.decode(d).ok())
        .ok_or_else(|| tampered("an attachment's data is not base64"))?;
    if Some(sha256_hex(&bytes).as_str()) != a["sha256"].as_str() {
        return Err(tampered("an attachment does not match its SHA-256"));
    }
    Ok(bytes)
}

/// When the bundle was made (for the audit entry).
pub fn created_at(bundle: &Value) -> Option<DateTime<Utc>> {
    bundle["created_at"].as_str().and_then(|s| s.parse().ok())
}
