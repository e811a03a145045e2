//! Supervision sessions (handledarsamtal), created ad hoc by the trainee or a supervisor,
//! and handover talks (överlämningssamtal) at a placement change, led by the trainee with
//! the main supervisor and the outgoing and incoming placement supervisors. Every
//! participant confirms; an edit before everyone has confirmed asks the others again.
//!
//! Supervisors' check-ins (avstämning tjg-HL + HHL) are talks between the placement
//! supervisor and the main supervisor without the trainee, and are never shown to the
//! trainee (see `readable` and `check_in`).
//!
//! Here: the record, reading and listing; `record` creates, edits and confirms.

mod check_in;
mod record;

pub use check_in::{create_supervisor_check_in, list_readable, NewSupervisorCheckIn};
pub use record::{
    confirm, create_final_check_in, create_handover, create_session, update, AUDIT_FACTS,
};

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::principal::{load_roles, Principal, Role};
use crate::auth::service::ClientInfo;
use crate::clock::{from_db, to_db};
use crate::config::Config;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::enrolment::service::enrolment_of_placement;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{Day, EnrolmentId, PlacementId, TalkId, UserId};
use crate::mail::Mail;
use crate::portfolio::links;
use crate::schema::{enrolments, talk_participants, talks, users};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum TalkKind {
    /// Handledarsamtal.
    Supervision,
    /// Överlämningssamtal.
    Handover,
    /// Slutavstämning: the trainee and the main supervisor before the final assessment.
    FinalCheckIn,
    /// Avstämning tjg-HL + HHL: the placement supervisor and the main supervisor, without
    /// the trainee, who never sees it.
    SupervisorCheckIn,
}

impl TalkKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TalkKind::Supervision => "supervision",
            TalkKind::Handover => "handover",
            TalkKind::FinalCheckIn => "final_check_in",
            TalkKind::SupervisorCheckIn => "supervisor_check_in",
        }
    }

    /// The kind a stored code names; `None` for a code this build does not know.
    pub fn from_code(code: &str) -> Option<TalkKind> {
        Some(match code {
            "supervision" => TalkKind::Supervision,
            "handover" => TalkKind::Handover,
            "final_check_in" => TalkKind::FinalCheckIn,
            "supervisor_check_in" => TalkKind::SupervisorCheckIn,
            _ => return None,
        })
    }

    fn path(&self) -> &'static str {
        match self {
            TalkKind::Supervision => "supervision-sessions",
            TalkKind::Handover => "handover-talks",
            TalkKind::FinalCheckIn => "final-check-ins",
            TalkKind::SupervisorCheckIn => "supervisor-check-ins",
        }
    }
}

crate::text_enum_sql!(TalkKind);

crate::text_enum! {
    /// Where a talk stands: `confirmed` once every participant has (then it is final).
    pub enum TalkStatus { AwaitingConfirmation = "awaiting_confirmation", Confirmed = "confirmed" }
}

// The API shows the status as its stored code: a plain string in the spec, as before.
impl Serialize for TalkStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Progress on one delmål, as the handover talk records it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelmalStatus {
    #[schema(example = "BT1")]
    pub code: String,
    /// `not_started`, `in_progress` or `achieved`.
    #[schema(example = "in_progress")]
    pub status: String,
    #[serde(default)]
    pub comment: String,
}

/// The structured part of a handover talk.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverContent {
    #[serde(default)]
    pub delmal_status: Vec<DelmalStatus>,
    #[serde(default)]
    #[schema(example = "Trygg i akuta bedömningar.")]
    pub strengths: String,
    #[serde(default)]
    #[schema(example = "Prioritering när det är många patienter.")]
    pub areas_to_develop: String,
    #[serde(default)]
    #[schema(example = "Två DOPS och en CbD under första månaden på akuten.")]
    pub plan_next_placement: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Participant {
    pub user_id: String,
    /// `trainee`, `supervisor`, or for handovers `main_supervisor`,
    /// `outgoing_supervisor`, `incoming_supervisor` (comma-separated when one person has
    /// two parts, as the main supervisor often does in placement 1).
    pub role: String,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmation_method: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Talk {
    pub id: String,
    #[schema(value_type = String)]
    pub enrolment_id: EnrolmentId,
    pub kind: TalkKind,
    #[schema(example = "2026-10-20")]
    pub held_on: NaiveDate,
    pub placement_id: Option<String>,
    /// Handover: the placement that follows.
    pub next_placement_id: Option<String>,
    #[schema(example = json!(["Bemötande i svåra samtal"]))]
    pub topics: Vec<String>,
    pub notes: String,
    pub agreed_actions: String,
    pub delmal: Vec<String>,
    pub handover: Option<HandoverContent>,
    pub participants: Vec<Participant>,
    /// `awaiting_confirmation` or `confirmed` (by every participant; then it is final).
    #[schema(value_type = String)]
    pub status: TalkStatus,
    pub created_by: String,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl Talk {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
    fn content(&self) -> serde_json::Value {
        json!({"id": self.id, "kind": self.kind, "held_on": self.held_on, "placement_id": self.placement_id,
               "next_placement_id": self.next_placement_id, "topics": self.topics, "notes": self.notes,
               "agreed_actions": self.agreed_actions, "delmal": self.delmal, "handover": self.handover})
    }
}

/// What a talk says; all fields optional in updates.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TalkContent {
    pub held_on: Option<NaiveDate>,
    pub placement_id: Option<String>,
    pub next_placement_id: Option<String>,
    pub topics: Option<Vec<String>>,
    pub notes: Option<String>,
    pub agreed_actions: Option<String>,
    pub delmal: Option<Vec<String>>,
    pub handover: Option<HandoverContent>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSupervisionSession {
    pub id: Option<uuid::Uuid>,
    pub held_on: NaiveDate,
    /// Supervisors who took part (besides the creator and the trainee).
    #[serde(default)]
    pub participant_ids: Vec<String>,
    #[serde(flatten)]
    pub content: TalkContent,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFinalCheckIn {
    pub id: Option<uuid::Uuid>,
    pub held_on: NaiveDate,
    #[serde(flatten)]
    pub content: TalkContent,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHandoverTalk {
    pub id: Option<uuid::Uuid>,
    pub held_on: NaiveDate,
    /// Default: the main supervisor assigned today.
    pub main_supervisor_id: Option<String>,
    pub outgoing_supervisor_id: String,
    pub incoming_supervisor_id: String,
    #[serde(flatten)]
    pub content: TalkContent,
}

/// A talk as stored (participants and delmål are in their own tables).
#[derive(Queryable, Selectable)]
#[diesel(table_name = talks, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    id: TalkId,
    enrolment_id: EnrolmentId,
    kind: TalkKind,
    held_on: Day,
    placement_id: Option<PlacementId>,
    next_placement_id: Option<PlacementId>,
    /// JSON array of topics.
    topics: String,
    notes: String,
    agreed_actions: String,
    /// JSON of the handover content (handover talks).
    content: String,
    status: TalkStatus,
    created_by: UserId,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A participant as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = talk_participants, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ParticipantRow {
    talk_id: TalkId,
    user_id: UserId,
    role: String,
    confirmed_at: Option<NaiveDateTime>,
    confirmation_method: Option<String>,
}

fn unreadable(what: &str, id: &str, e: impl std::fmt::Display) -> AppError {
    AppError::unreadable("talk", id, what, e)
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Talk, AppError> {
    let r: Row = talks::table
        .find(id)
        .filter(talks::deleted_at.is_null())
        .select(Row::as_select())
        .first(conn)?;
    assemble(conn, vec![r])?.pop().ok_or(AppError::NotFound)
}

/// Talks from their rows, in their order, with the participants and delmål links of all
/// of them read in one query each (a list of N talks cost 3N queries before).
fn assemble(conn: &mut DbConn, rows: Vec<Row>) -> Result<Vec<Talk>, AppError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    let mut parts: HashMap<String, Vec<ParticipantRow>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        let rows: Vec<ParticipantRow> = talk_participants::table
            .filter(talk_participants::talk_id.eq_any(chunk))
            .order((
                talk_participants::talk_id,
                talk_participants::role,
                talk_participants::user_id,
            ))
            .select(ParticipantRow::as_select())
            .load(conn)?;
        for p in rows {
            parts.entry(p.talk_id.to_string()).or_default().push(p);
        }
    }
    let mut links = Vec::new();
    for chunk in ids.chunks(1000) {
        links.extend(links::of(conn, chunk)?);
    }
    // `codes` searches by record id.
    links.sort();
    rows.into_iter()
        .map(|r| {
            let id = r.id.to_string();
            let delmal = links::codes(&links, &id);
            // A handover talk stores its content as JSON, `null` while it has none.
            let handover = match r.kind {
                TalkKind::Handover => serde_json::from_str::<Option<HandoverContent>>(&r.content)
                    .map_err(|e| unreadable("content", &id, e))?,
                _ => None,
            };
            Ok(Talk {
                topics: serde_json::from_str(&r.topics)
                    .map_err(|e| unreadable("topics", &id, e))?,
                participants: parts
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| Participant {
                        user_id: p.user_id.into_inner(),
                        role: p.role,
                        confirmed_at: p.confirmed_at.map(from_db),
                        confirmation_method: p.confirmation_method,
                    })
                    .collect(),
                id: r.id.into_inner(),
                enrolment_id: r.enrolment_id,
                kind: r.kind,
                held_on: r.held_on.date(),
                placement_id: r.placement_id.map(PlacementId::into_inner),
                next_placement_id: r.next_placement_id.map(PlacementId::into_inner),
                notes: r.notes,
                agreed_actions: r.agreed_actions,
                delmal,
                handover,
                status: r.status,
                created_by: r.created_by.into_inner(),
                version: r.version,
                created_at: from_db(r.created_at),
                updated_at: from_db(r.updated_at),
            })
        })
        .collect()
}

fn is_participant(t: &Talk, user: &str) -> bool {
    t.participants.iter().any(|p| p.user_id == user)
}

/// Participants always read their talk; otherwise the enrolment's rules apply.
pub fn readable(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    kind: TalkKind,
    today: NaiveDate,
) -> Result<Talk, AppError> {
    let t = get(conn, id)?;
    if t.kind != kind {
        return Err(AppError::NotFound);
    }
    if kind == TalkKind::SupervisorCheckIn {
        check_in::require_readable(conn, me, &t, today)?;
    } else if !is_participant(&t, &me.user_id) {
        access::require(
            conn,
            me,
            &EnrolmentId::from(&t.enrolment_id),
            today,
            Access::Read,
        )?;
    }
    Ok(t)
}

/// Does `user` hold the supervisor role anywhere (talks' participants, assessors named
/// in the app)?
pub(super) fn is_supervisor(conn: &mut DbConn, user: &str) -> Result<bool, AppError> {
    Ok(load_roles(conn, &crate::ids::UserId::from(user))?
        .iter()
        .any(|g| g.role == Role::Supervisor))
}

fn trainee_of(conn: &mut DbConn, enrolment_id: &EnrolmentId) -> Result<UserId, AppError> {
    Ok(enrolments::table
        .find(enrolment_id)
        .select(enrolments::trainee_id)
        .first(conn)?)
}

/// Is there a final check-in both the trainee and the main supervisor confirmed?
pub fn has_confirmed_final_check_in(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<bool, AppError> {
    let n: i64 = talks::table
        .filter(talks::enrolment_id.eq(enrolment_id))
        .filter(talks::kind.eq(TalkKind::FinalCheckIn))
        .filter(talks::status.eq(TalkStatus::Confirmed))
        .filter(talks::deleted_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn list(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    kind: TalkKind,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Talk>, AppError> {
    let mut q = talks::table
        .filter(talks::enrolment_id.eq(enrolment_id.clone()))
        .filter(talks::kind.eq(kind))
        .filter(talks::deleted_at.is_null())
        .select(Row::as_select())
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(talks::id.gt(a.to_string()));
    }
    let rows: Vec<Row> = q.order(talks::id).limit(limit + 1).load(conn)?;
    assemble(conn, rows)
}
