//! Formative assessments. Either side starts one: the trainee asks a named assessor, or
//! an assessor records it directly. The assessor signs (one request) or declines with a
//! reason. A signed assessment never changes; a correction is a new version that
//! supersedes it, and both stay visible.
//!
//! Here: the record, reading and listing. `edit` creates, edits, requests, corrects and
//! deletes; `signing` signs and declines (also on the trainee's phone); `by_link`
//! serves assessors without an account (their links, and what vetting releases).

mod by_link;
mod edit;
mod signing;

use by_link::create_link;
pub use by_link::{
    decline_by_link, link_view, open_link, release_after_vetting, return_after_vetting,
    sign_by_link, SigningLinkView,
};
use edit::{apply, link, refuse_if_final, save};
pub use edit::{correct, create, delete, request, update, AUDIT_FACTS};
use signing::{audit_as, mark_declined, seal};
pub use signing::{co_sign_finish, co_sign_start, decline, sign, Signer};

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::principal::Principal;
use crate::auth::service::ClientInfo;
use crate::clock::{from_db, to_db};
use crate::config::Config;
use crate::context::{Context, Ctx};
use crate::curriculum::templates::AssessmentType;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::enrolment::service::enrolment_of_placement;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{AssessmentId, Day, EnrolmentId, OrganisationId, PlacementId, UserId};
use crate::mail::Mail;
use crate::portfolio::{instruments, links};
use crate::schema::{assessments, enrolments, record_delmal, signing_links, users};

crate::text_enum! {
    /// Where an assessment stands: `draft`, `awaiting_vetting` (asked of an assessor
    /// without an account who is not vetted yet: no link is out), `awaiting_signature`,
    /// `signed`, `declined`.
    pub enum AssessmentStatus {
        Draft = "draft",
        AwaitingVetting = "awaiting_vetting",
        Awaiting = "awaiting_signature",
        Signed = "signed",
        Declined = "declined",
    }
}

// The API shows the status as its stored code: a plain string in the spec, as before.
impl Serialize for AssessmentStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

pub const DRAFT: AssessmentStatus = AssessmentStatus::Draft;
pub const AWAITING_VETTING: AssessmentStatus = AssessmentStatus::AwaitingVetting;
pub const AWAITING: AssessmentStatus = AssessmentStatus::Awaiting;
pub const SIGNED: AssessmentStatus = AssessmentStatus::Signed;
pub const DECLINED: AssessmentStatus = AssessmentStatus::Declined;

/// Who signed, when, how, and a hash of exactly what was signed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Signature {
    /// The signing user; null when an assessor without an account signed by link.
    pub signed_by: Option<String>,
    /// For a signature through a signing link: the address the link was bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by_email: Option<String>,
    #[serde(with = "crate::clock::millis")]
    pub signed_at: DateTime<Utc>,
    /// The second factor of the signing session, or `signing_link`.
    #[schema(example = "totp")]
    pub method: String,
    /// SHA-256 over the signed content.
    pub content_hash: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Assessment {
    pub id: String,
    #[schema(value_type = String)]
    pub enrolment_id: EnrolmentId,
    pub instrument: AssessmentType,
    #[schema(example = "awaiting_signature", value_type = String)]
    pub status: AssessmentStatus,
    pub assessor_id: Option<String>,
    /// An assessor without an account, asked through a signing link.
    pub assessor_email: Option<String>,
    pub placement_id: Option<String>,
    #[schema(example = "2026-10-14")]
    pub performed_on: NaiveDate,
    /// Context fields of the instrument, e.g. setting, complexity, procedure.
    #[schema(example = json!({"setting": "akutmottagning", "patient complexity": "medium"}))]
    pub context: BTreeMap<String, String>,
    /// Rating per domain; null means not observed.
    #[schema(example = json!({"history taking (anamnes)": 6, "communication": 7, "physical examination (status)": null}))]
    pub ratings: BTreeMap<String, Option<i32>>,
    /// Optional single entrustment rating, 1 to 5.
    pub entrustment: Option<i32>,
    /// What went well.
    #[schema(example = "Strukturerad anamnes, bra sammanfattning för patienten.")]
    pub feedback_strengths: String,
    /// Feed forward: what to do next.
    #[schema(example = "Öva riktat status vid buksmärta.")]
    pub feedback_next_steps: String,
    pub trainee_reflection: String,
    #[schema(example = json!(["BT1", "BT9"]))]
    pub delmal: Vec<String>,
    pub decline_reason: Option<String>,
    /// The signed assessment this one corrects.
    pub supersedes_id: Option<String>,
    /// The correction that replaced this one.
    pub superseded_by: Option<String>,
    pub signature: Option<Signature>,
    pub created_by: String,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl Assessment {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }

    /// The content a signature covers, in a fixed order.
    fn signed_content(&self) -> serde_json::Value {
        json!({
            "id": self.id, "enrolment_id": self.enrolment_id, "instrument": self.instrument,
            "assessor_id": self.assessor_id, "placement_id": self.placement_id,
            "performed_on": self.performed_on, "context": self.context, "ratings": self.ratings,
            "entrustment": self.entrustment, "feedback_strengths": self.feedback_strengths,
            "feedback_next_steps": self.feedback_next_steps, "trainee_reflection": self.trainee_reflection,
            "delmal": self.delmal, "supersedes_id": self.supersedes_id,
        })
    }
}

/// The form's content: what the trainee and the assessor fill in.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssessmentContent {
    pub placement_id: Option<String>,
    pub performed_on: Option<NaiveDate>,
    pub context: Option<BTreeMap<String, String>>,
    pub ratings: Option<BTreeMap<String, Option<i32>>>,
    pub entrustment: Option<i32>,
    pub feedback_strengths: Option<String>,
    pub feedback_next_steps: Option<String>,
    pub trainee_reflection: Option<String>,
    pub delmal: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssessment {
    pub id: Option<uuid::Uuid>,
    pub instrument: AssessmentType,
    pub performed_on: NaiveDate,
    /// Trainee: whom to ask for an assessment (any supervisor, also external). The
    /// request goes out at once. Assessor recording directly: leave out.
    pub assessor_id: Option<String>,
    /// Trainee: ask someone by e-mail address instead. Without an account they get a
    /// single-use signing link (14 days) once the main supervisor or a director of
    /// studies has approved the person (once per person and organisation; until then the
    /// assessment is `awaiting_vetting`); with an account, it is the same as
    /// `assessor_id`. Never one of the trainee's own addresses.
    pub assessor_email: Option<String>,
    /// With `assessor_email` for a person not yet vetted: their name, for the approver.
    #[schema(example = "Nora Akut")]
    pub assessor_name: Option<String>,
    /// With `assessor_email` for a person not yet vetted: their workplace.
    #[schema(example = "Akutkliniken, Södersjukhuset")]
    pub assessor_workplace: Option<String>,
    /// With `assessor_email` for a person not yet vetted: their specialist status and
    /// training in assessment methods, for the approver to weigh and confirm.
    pub assessor_qualifications: Option<crate::portfolio::qualifications::QualificationsInput>,
    #[serde(flatten)]
    pub content: AssessmentContent,
}

/// An assessment as stored (its delmål are links in `record_delmal`).
#[derive(Queryable, Selectable)]
#[diesel(table_name = assessments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    id: AssessmentId,
    enrolment_id: EnrolmentId,
    /// The instrument's code (`AssessmentType` in serde form).
    instrument: String,
    status: AssessmentStatus,
    assessor_id: Option<UserId>,
    placement_id: Option<PlacementId>,
    performed_on: Day,
    /// JSON object of context fields.
    context: String,
    /// JSON object of ratings per domain.
    ratings: String,
    entrustment: Option<i32>,
    feedback_strengths: String,
    feedback_next_steps: String,
    trainee_reflection: String,
    decline_reason: Option<String>,
    supersedes_id: Option<AssessmentId>,
    superseded_by: Option<AssessmentId>,
    created_by: UserId,
    assessor_email: Option<String>,
    signed_by_email: Option<String>,
    signed_at: Option<NaiveDateTime>,
    signed_by: Option<UserId>,
    signature_method: Option<String>,
    content_hash: Option<String>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn unreadable(what: &str, id: &str, e: impl std::fmt::Display) -> AppError {
    AppError::unreadable("assessment", id, what, e)
}

/// The stored instrument code; an unknown one is an error.
fn instrument_of(id: &str, s: &str) -> Result<AssessmentType, AppError> {
    serde_json::from_value(json!(s)).map_err(|e| unreadable("instrument", id, e))
}

fn instrument_str(i: AssessmentType) -> String {
    serde_json::to_value(i)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn from_rows(conn: &mut DbConn, rows: Vec<Row>) -> Result<Vec<Assessment>, AppError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    let links = links::of(conn, &ids)?;
    rows.into_iter()
        .map(|r| {
            let signature = match (r.signed_at, r.signature_method, r.content_hash) {
                (Some(at), Some(method), Some(hash)) => Some(Signature {
                    signed_by: r.signed_by.map(UserId::into_inner),
                    signed_by_email: r.signed_by_email,
                    signed_at: from_db(at),
                    method,
                    content_hash: hash,
                }),
                _ => None,
            };
            Ok(Assessment {
                delmal: links::codes(&links, &r.id),
                instrument: instrument_of(&r.id, &r.instrument)?,
                context: serde_json::from_str(&r.context)
                    .map_err(|e| unreadable("context", &r.id, e))?,
                ratings: serde_json::from_str(&r.ratings)
                    .map_err(|e| unreadable("ratings", &r.id, e))?,
                id: r.id.into_inner(),
                enrolment_id: r.enrolment_id,
                status: r.status,
                assessor_id: r.assessor_id.map(UserId::into_inner),
                placement_id: r.placement_id.map(PlacementId::into_inner),
                performed_on: r.performed_on.date(),
                entrustment: r.entrustment,
                feedback_strengths: r.feedback_strengths,
                feedback_next_steps: r.feedback_next_steps,
                trainee_reflection: r.trainee_reflection,
                decline_reason: r.decline_reason,
                supersedes_id: r.supersedes_id.map(AssessmentId::into_inner),
                superseded_by: r.superseded_by.map(AssessmentId::into_inner),
                created_by: r.created_by.into_inner(),
                assessor_email: r.assessor_email,
                signature,
                version: r.version,
                created_at: from_db(r.created_at),
                updated_at: from_db(r.updated_at),
            })
        })
        .collect()
}

pub fn get_assessment(conn: &mut DbConn, id: &str) -> Result<Assessment, AppError> {
    let query = assessments::table
        .find(id)
        .filter(assessments::deleted_at.is_null());
    // Selected inside `on_backend!`: a selection is typed by its backend.
    let row: Row = crate::on_backend!(conn, |c| query.select(Row::as_select()).first(c))?;
    from_rows(conn, vec![row])?.pop().ok_or(AppError::NotFound)
}

fn trainee_of(conn: &mut DbConn, enrolment_id: &EnrolmentId) -> Result<UserId, AppError> {
    Ok(enrolments::table
        .find(enrolment_id)
        .select(enrolments::trainee_id)
        .first(conn)?)
}

/// Readable by whoever may read the enrolment, and always by the named assessor: an
/// external supervisor keeps access to what they were asked to assess and signed.
pub fn readable(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    today: NaiveDate,
) -> Result<Assessment, AppError> {
    let a = get_assessment(conn, id)?;
    if a.assessor_id.as_deref() == Some(me.user_id.as_str()) {
        return Ok(a);
    }
    access::require(conn, me, &a.enrolment_id, today, Access::Read)?;
    Ok(a)
}

/// The e-mail address of the enrolment's trainee, in one statement (signing and
/// declining tell the trainee; two look-ups cost the write path a statement more).
fn trainee_email(conn: &mut DbConn, enrolment_id: &EnrolmentId) -> Result<String, AppError> {
    Ok(enrolments::table
        .inner_join(users::table.on(users::id.eq(enrolments::trainee_id)))
        .filter(enrolments::id.eq(enrolment_id))
        .select(users::email)
        .first(conn)?)
}

fn email_of(conn: &mut DbConn, user_id: &UserId) -> Result<String, AppError> {
    Ok(users::table
        .find(user_id)
        .select(users::email)
        .first(conn)?)
}

#[derive(Debug, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub instrument: Option<AssessmentType>,
    pub delmal: Option<String>,
    pub placement_id: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

pub fn list(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    f: &Filter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Assessment>, AppError> {
    let mut q = assessments::table
        .filter(assessments::enrolment_id.eq(enrolment_id.clone()))
        .filter(assessments::deleted_at.is_null())
        .select(Row::as_select())
        .into_boxed();
    if let Some(s) = &f.status {
        q = q.filter(assessments::status.eq(s.clone()));
    }
    if let Some(i) = f.instrument {
        q = q.filter(assessments::instrument.eq(instrument_str(i)));
    }
    if let Some(p) = &f.placement_id {
        q = q.filter(assessments::placement_id.eq(p.clone()));
    }
    if let Some(d) = f.from {
        q = q.filter(assessments::performed_on.ge(d.to_string()));
    }
    if let Some(d) = f.to {
        q = q.filter(assessments::performed_on.le(d.to_string()));
    }
    if let Some(code) = &f.delmal {
        let ids = record_delmal::table
            .filter(record_delmal::enrolment_id.eq(enrolment_id.to_string()))
            .filter(record_delmal::code.eq(code.clone()))
            .select(record_delmal::record_id);
        q = q.filter(assessments::id.eq_any(ids));
    }
    if let Some(a) = after {
        q = q.filter(assessments::id.gt(a.to_string()));
    }
    let rows: Vec<Row> = q.order(assessments::id).limit(limit + 1).load(conn)?;
    from_rows(conn, rows)
}

diesel::define_sql_function! {
    /// SQL `COALESCE` of a nullable and a non-null timestamp.
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Timestamp>, y: diesel::sql_types::Timestamp) -> diesel::sql_types::Timestamp;
}

/// An assessment in the signature queue with the key it is sorted by.
#[derive(Queryable, Selectable)]
#[diesel(table_name = assessments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct QueueRow {
    #[diesel(embed)]
    row: Row,
    requested_at: Option<NaiveDateTime>,
}

/// The format of a queue cursor's time: exact to the stored precision, so the next page
/// starts right after the last item.
const QUEUE_CURSOR_TIME: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// A page of what waits for my signature, across all my trainees, oldest request first
/// (a draft I made myself counts from its creation), then by id. `after` is the cursor of
/// the previous page (`time|id` of its last item); at most `limit + 1` items come back,
/// each with its own cursor, in one query.
/// The part of the signature queue's filter that the index `assessments_signature_queue`
/// (migration 000041) is restricted to, in the index's words.
const QUEUE_INDEX_PREDICATE: &str = "assessments.status IN ('awaiting_signature', 'draft')";

pub fn signature_queue(
    conn: &mut DbConn,
    me: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(String, Assessment)>, AppError> {
    let after = match after {
        None => None,
        Some(c) => Some(
            c.split_once('|')
                .and_then(|(t, id)| {
                    NaiveDateTime::parse_from_str(t, QUEUE_CURSOR_TIME)
                        .ok()
                        .map(|t| (t, id.to_string()))
                })
                .ok_or_else(|| AppError::validation("cursor", "is not a cursor from this API"))?,
        ),
    };
    // Built and run on the backend's own connection: a boxed query is typed by its backend.
    let rows: Vec<QueueRow> = crate::on_backend!(conn, |c| {
        let key = coalesce(assessments::requested_at, assessments::created_at);
        let mut query = assessments::table
            .filter(assessments::assessor_id.eq(&me.user_id))
            .filter(assessments::deleted_at.is_null())
            // The index `assessments_signature_queue`'s predicate, literally: neither
            // backend uses a partial index for a bound `status IN (?, ?)`.
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                QUEUE_INDEX_PREDICATE,
            ))
            .filter(
                assessments::status.eq(AWAITING).or(assessments::status
                    .eq(DRAFT)
                    .and(assessments::created_by.eq(&me.user_id))),
            )
            .select(QueueRow::as_select())
            .into_boxed();
        if let Some((t, id)) = &after {
            query = query.filter(
                key.gt(*t)
                    .or(key.eq(*t).and(assessments::id.gt(id.clone()))),
            );
        }
        query.order((key, assessments::id)).limit(limit + 1).load(c)
    })?;
    let keys: Vec<String> = rows
        .iter()
        .map(|q| {
            let at = q.requested_at.unwrap_or(q.row.created_at);
            format!("{}|{}", at.format(QUEUE_CURSOR_TIME), q.row.id)
        })
        .collect();
    let items = from_rows(conn, rows.into_iter().map(|q| q.row).collect())?;
    Ok(keys.into_iter().zip(items).collect())
}

#[cfg(test)]
#[path = "queue_index_tests.rs"]
mod queue_index_tests;
