//! What `GET /me/export` holds (GDPR Art. 15 and 20): everything the service keeps
//! about the caller, as JSON documents, and the attachments of the enrolments they are
//! the trainee of (streamed into the archive by `archive`, never read here).
//!
//! Never a secret: no password hash, TOTP secret, token or token hash, recovery code,
//! passkey credential, e-ID subject or session id. Each document is made from the rows'
//! own fields, named one by one, so a column added later stays out until it is named
//! here.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};

use crate::accounts::{personal_identity, users};
use crate::clock::from_db;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::final_assessment::service as final_assessment;
use crate::ids::UserId;
use crate::portfolio::{activities, assessments, summaries, talks};
use crate::schema::{
    attachments, audit_log, enrolments, oidc_links, passkeys, recovery_codes, remembered_devices,
    sessions, totp_credentials,
};

/// Records of one enrolment: all of them (the lists' own limit is for pages).
const ALL: i64 = 1_000_000;

/// The export's format, in its manifest: a reader checks it before reading on.
pub const FORMAT: &str = "eportfolio-personal-data-export";
pub const FORMAT_VERSION: u32 = 1;

/// Records that the caller exported their data (the request's effect).
pub fn audit(conn: &mut DbConn, ctx: &Ctx, summary: &Value) -> Result<(), AppError> {
    crate::audit::append(
        conn,
        ctx.now,
        crate::audit::Event {
            actor_id: Some(&ctx.caller.user_id),
            client: ctx.client.user_agent.as_deref(),
            action: "exported",
            entity: "user",
            entity_id: &ctx.caller.user_id,
            enrolment_id: None,
            data: summary,
        },
    )
}

/// One JSON document of the archive.
pub struct Document {
    pub path: String,
    pub description: &'static str,
    pub bytes: Vec<u8>,
}

/// One attachment to copy into the archive from the blob store.
pub struct AttachmentFile {
    pub path: String,
    pub id: String,
    pub enrolment_id: String,
    pub filename: String,
    pub content_type: String,
    pub storage_key: String,
    pub size_bytes: i64,
    pub sha256: String,
}

/// Everything to write, read in one transaction (one consistent moment).
pub struct Export {
    pub user_id: String,
    pub generated_at: DateTime<Utc>,
    pub documents: Vec<Document>,
    pub attachments: Vec<AttachmentFile>,
}

fn doc(
    path: impl Into<String>,
    description: &'static str,
    v: &impl Serialize,
) -> Result<Document, AppError> {
    Ok(Document {
        path: path.into(),
        description,
        bytes: serde_json::to_vec_pretty(v).map_err(AppError::internal)?,
    })
}

/// An audit entry, as exported (the chain's hashes are not the person's data).
#[derive(Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_log, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct AuditEntry {
    seq: i64,
    #[serde(skip)]
    at: NaiveDateTime,
    actor_id: Option<String>,
    client: Option<String>,
    action: String,
    entity: String,
    entity_id: String,
    enrolment_id: Option<String>,
    #[serde(skip)]
    data: String,
}

fn audit_json(rows: Vec<AuditEntry>) -> Result<Vec<Value>, AppError> {
    rows.into_iter()
        .map(|r| {
            let data: Value = serde_json::from_str(&r.data)
                .map_err(|e| AppError::unreadable("audit_log", &r.seq.to_string(), "data", e))?;
            let mut v = serde_json::to_value(&r).map_err(AppError::internal)?;
            v["at"] = json!(stamp(from_db(r.at)));
            v["data"] = data;
            Ok(v)
        })
        .collect()
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct SessionRow {
    second_factor: String,
    client_address: Option<String>,
    user_agent: Option<String>,
    created_at: NaiveDateTime,
    last_used_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    revoked_reason: Option<String>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = remembered_devices, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct DeviceRow {
    id: String,
    name: String,
    created_at: NaiveDateTime,
    last_used_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = passkeys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PasskeyRow {
    id: String,
    name: String,
    created_at: NaiveDateTime,
    last_used_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = oidc_links, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct OidcLinkRow {
    id: String,
    issuer: String,
    created_at: NaiveDateTime,
    last_used_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = totp_credentials, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct TotpRow {
    confirmed_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = recovery_codes, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct RecoveryCodeRow {
    used_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = attachments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct AttachmentRow {
    id: String,
    enrolment_id: String,
    filename: String,
    content_type: String,
    size_bytes: i64,
    sha256: String,
    storage_key: String,
}

/// A timestamp as the API writes them (`clock::millis`).
pub fn stamp(t: DateTime<Utc>) -> String {
    t.format(crate::clock::millis::FORMAT).to_string()
}

fn time(t: NaiveDateTime) -> Value {
    json!(stamp(from_db(t)))
}

fn time_opt(t: Option<NaiveDateTime>) -> Value {
    t.map(time).unwrap_or(Value::Null)
}

/// The account and its security settings, without any secret.
fn account(conn: &mut DbConn, ctx: &Ctx, me: &str) -> Result<Vec<Document>, AppError> {
    let user = users::get_user(conn, me)?;
    let identity = match personal_identity::get(conn, ctx, &UserId::new(me)) {
        Ok(i) => serde_json::to_value(i).map_err(AppError::internal)?,
        Err(AppError::NotFound) => Value::Null,
        Err(e) => return Err(e),
    };
    let sessions: Vec<SessionRow> = sessions::table
        .filter(sessions::user_id.eq(me))
        .order(sessions::created_at)
        .select(SessionRow::as_select())
        .load(conn)?;
    let sessions: Vec<Value> = sessions
        .into_iter()
        .map(|s| {
            json!({
                "second_factor": s.second_factor,
                "client_address": s.client_address,
                "user_agent": s.user_agent,
                "created_at": time(s.created_at),
                "last_used_at": time(s.last_used_at),
                "expires_at": time(s.expires_at),
                "revoked_at": time_opt(s.revoked_at),
                "revoked_reason": s.revoked_reason,
            })
        })
        .collect();
    let devices: Vec<DeviceRow> = remembered_devices::table
        .filter(remembered_devices::user_id.eq(me))
        .order(remembered_devices::created_at)
        .select(DeviceRow::as_select())
        .load(conn)?;
    let devices: Vec<Value> = devices
        .into_iter()
        .map(|d| {
            json!({"id": d.id, "name": d.name, "created_at": time(d.created_at),
                   "last_used_at": time(d.last_used_at), "expires_at": time(d.expires_at),
                   "revoked_at": time_opt(d.revoked_at)})
        })
        .collect();
    let keys: Vec<PasskeyRow> = passkeys::table
        .filter(passkeys::user_id.eq(me))
        .order(passkeys::created_at)
        .select(PasskeyRow::as_select())
        .load(conn)?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            json!({"id": k.id, "name": k.name, "created_at": time(k.created_at),
                   "last_used_at": time_opt(k.last_used_at), "revoked_at": time_opt(k.revoked_at)})
        })
        .collect();
    // The e-ID's subject is left out, as everywhere (docs/oidc.md).
    let links: Vec<OidcLinkRow> = oidc_links::table
        .filter(oidc_links::user_id.eq(me))
        .order(oidc_links::created_at)
        .select(OidcLinkRow::as_select())
        .load(conn)?;
    let links: Vec<Value> = links
        .into_iter()
        .map(|l| {
            json!({"id": l.id, "issuer": l.issuer, "created_at": time(l.created_at),
                   "last_used_at": time_opt(l.last_used_at)})
        })
        .collect();
    let totp: Option<TotpRow> = totp_credentials::table
        .find(me)
        .select(TotpRow::as_select())
        .first(conn)
        .optional()?;
    let codes: Vec<RecoveryCodeRow> = recovery_codes::table
        .filter(recovery_codes::user_id.eq(me))
        .order(recovery_codes::created_at)
        .select(RecoveryCodeRow::as_select())
        .load(conn)?;
    let security = json!({
        "authenticator_app": totp.map(|t| json!({
            "created_at": time(t.created_at),
            "confirmed_at": time_opt(t.confirmed_at),
        })),
        "recovery_codes": codes.iter().map(|c| json!({
            "created_at": time(c.created_at),
            "used_at": time_opt(c.used_at),
        })).collect::<Vec<_>>(),
        "passkeys": keys,
        "remembered_devices": devices,
        "e_id_links": links,
    });
    Ok(vec![
        doc("account.json", "your account: e-mail address, name, roles, second factors in use", &user)?,
        doc("personal_identity.json", "your personnummer, HSA-id and protected identity, if recorded", &identity)?,
        doc("sessions.json", "your sign-in sessions: when, from where, which second factor", &sessions)?,
        doc("security.json", "your authenticator app, recovery codes, passkeys, remembered devices and e-ID links: when made and used, never their secrets", &security)?,
    ])
}

/// The records of one enrolment of which the caller is the trainee.
fn enrolment_documents(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
) -> Result<(Vec<Document>, Vec<AttachmentFile>), AppError> {
    let today = ctx.today();
    let dir = format!("enrolments/{id}");
    let e = crate::enrolment::service::get_enrolment(conn, id, today)?;
    let acts = activities::list_activities(
        conn,
        &crate::ids::EnrolmentId::from(id),
        &activities::Filter::default(),
        None,
        ALL,
    )?;
    let asm = assessments::list(
        conn,
        &crate::ids::EnrolmentId::from(id),
        &assessments::Filter::default(),
        None,
        ALL,
    )?;
    let mut all_talks = serde_json::Map::new();
    for kind in [
        talks::TalkKind::Supervision,
        talks::TalkKind::Handover,
        talks::TalkKind::FinalCheckIn,
    ] {
        let list = talks::list(
            conn,
            &crate::ids::EnrolmentId::new(id.to_string()),
            kind,
            None,
            ALL,
        )?;
        all_talks.insert(
            kind.as_str().to_string(),
            serde_json::to_value(list).map_err(AppError::internal)?,
        );
    }
    let sums = summaries::list(conn, &crate::ids::EnrolmentId::from(id))?;
    let finals = final_assessment::list(conn, &crate::ids::EnrolmentId::new(id.to_string()))?;
    let courses = crate::portfolio::course_confirmation::of_enrolment(conn, &id.into())?;
    let evaluations = crate::feedback::evaluations::of_enrolment(conn, &id.into())?;
    let reviews = crate::feedback::group_reviews::of_enrolment(conn, &id.into())?;
    let audit: Vec<AuditEntry> = audit_log::table
        .filter(audit_log::enrolment_id.eq(id))
        .order(audit_log::seq)
        .select(AuditEntry::as_select())
        .load(conn)?;
    let rows: Vec<AttachmentRow> = attachments::table
        .filter(attachments::enrolment_id.eq(id))
        .filter(attachments::deleted_at.is_null())
        .order(attachments::created_at)
        .select(AttachmentRow::as_select())
        .load(conn)?;
    let files = rows
        .into_iter()
        .map(|a| AttachmentFile {
            path: format!("{dir}/attachments/{}/{}", a.id, archive_name(&a.filename)),
            id: a.id,
            enrolment_id: a.enrolment_id,
            filename: a.filename,
            content_type: a.content_type,
            storage_key: a.storage_key,
            size_bytes: a.size_bytes,
            sha256: a.sha256,
        })
        .collect();
    let docs = vec![
        doc(
            format!("{dir}/enrolment.json"),
            "the enrolment: programme, placements, supervisors, leave",
            &e,
        )?,
        doc(
            format!("{dir}/activities.json"),
            "learning activities, with their reflections and attachments' metadata",
            &acts,
        )?,
        doc(
            format!("{dir}/assessments.json"),
            "assessments, with their signatures and comments",
            &asm,
        )?,
        doc(
            format!("{dir}/talks.json"),
            "supervision sessions, handover talks and final check-ins",
            &all_talks,
        )?,
        doc(
            format!("{dir}/summary_assessments.json"),
            "summary assessments",
            &sums,
        )?,
        doc(
            format!("{dir}/final_assessments.json"),
            "final assessments and their signers",
            &finals,
        )?,
        doc(
            format!("{dir}/course_confirmations.json"),
            "the kursledare you named for your courses (name, e-mail address, workplace), who vetted them, and when they confirmed, with the digest of what they confirmed",
            &courses,
        )?,
        doc(
            format!("{dir}/placement_evaluations.json"),
            "your evaluations of your placements",
            &evaluations,
        )?,
        doc(
            format!("{dir}/group_reviews.json"),
            "group reviews (kollegium) of your training and their outcome",
            &reviews,
        )?,
        doc(
            format!("{dir}/audit.json"),
            "the audit log of the enrolment: who did what, when",
            &audit_json(audit)?,
        )?,
    ];
    Ok((docs, files))
}

/// A stored file name as a path component of the archive: never `.`, `..` or empty
/// (a stored name has no slashes; see `portfolio::attachments::clean_filename`).
fn archive_name(stored: &str) -> String {
    let name: String = stored
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    match name.trim() {
        "" | "." | ".." => "attachment".into(),
        n => n.to_string(),
    }
}

/// Reads everything; runs in one read transaction.
pub fn gather(conn: &mut DbConn, ctx: &Ctx) -> Result<Export, AppError> {
    let me = ctx.caller.user_id.clone();
    let mut documents = account(conn, ctx, &me)?;
    let mut files = Vec::new();
    let mine: Vec<String> = enrolments::table
        .filter(enrolments::trainee_id.eq(&me))
        .order(enrolments::created_at)
        .select(enrolments::id)
        .load(conn)?;
    for id in &mine {
        let (docs, f) = enrolment_documents(conn, ctx, id)?;
        documents.extend(docs);
        files.extend(f);
    }
    // What others' records say the caller did (signatures, comments, confirmations) and
    // what was done to their account: entries by them or about them, outside their own
    // enrolments (those are in each enrolment's audit.json).
    let about: Vec<AuditEntry> = audit_log::table
        .filter(audit_log::actor_id.eq(&me).or(audit_log::entity_id.eq(&me)))
        .filter(
            audit_log::enrolment_id
                .is_null()
                .or(audit_log::enrolment_id.ne_all(&mine)),
        )
        .order(audit_log::seq)
        .select(AuditEntry::as_select())
        .load(conn)?;
    documents.push(doc(
        "audit.json",
        "audit entries by you or about your account outside your own enrolments: signatures and comments you gave, roles granted to you",
        &audit_json(about)?,
    )?);
    Ok(Export {
        user_id: me.into_inner(),
        generated_at: ctx.now,
        documents,
        attachments: files,
    })
}

#[cfg(test)]
#[path = "gather_tests.rs"]
mod tests;
