//! The enrolment's history: every change to the plan goes to the audit log (which is also
//! the changes feed phones sync from) and bumps the enrolment's version.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{EnrolmentId, UserId};
use crate::schema::{audit_log, enrolments};

/// Appends to the enrolment's history.
/// What changed: action (`created`, `updated`, ...), entity kind and entity id.
pub struct Changed<'a>(pub &'a str, pub &'a str, pub &'a str);

/// Records a change to the plan in the audit log, which is also the enrolment's history
/// and the changes feed phones sync from.
pub fn record_change(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: Option<&str>,
    enrolment_id: &EnrolmentId,
    Changed(action, entity, entity_id): Changed,
    data: serde_json::Value,
) -> Result<(), AppError> {
    crate::audit::append(
        conn,
        now,
        crate::audit::Event {
            actor_id: actor,
            client: None,
            action,
            entity,
            entity_id,
            enrolment_id: Some(enrolment_id.as_str()),
            data: &data,
        },
    )
}

/// One entry of an enrolment's history: a change to the plan or to any record of the
/// trainee (activities, assessments, talks, summaries), deletions included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Change {
    #[schema(example = 4)]
    pub seq: i64,
    #[serde(with = "crate::clock::millis")]
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    /// e.g. `created`, `updated`, `removed`, `ended`, `completed`, `deleted`, `signed`,
    /// `issued`: the feed carries whatever the audit log records, and that set grows.
    #[schema(example = "updated")]
    pub action: String,
    /// e.g. `enrolment`, `placement`, `leave_period`, `assignment`, `activity`,
    /// `attachment`, `assessment`, `final_assessment`, `dossier` (a set that grows).
    #[schema(example = "placement")]
    pub entity: String,
    pub entity_id: String,
    /// The entity as it was after the change (before it, for removals).
    #[schema(example = json!({"end_date": "2026-09-30", "previous": {"end_date": "2026-09-04"}}))]
    pub data: serde_json::Value,
}

/// The columns of an `audit_log` row that make a [`Change`].
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ChangeRow {
    seq: i64,
    at: chrono::NaiveDateTime,
    actor_id: Option<UserId>,
    action: String,
    entity: String,
    entity_id: String,
    data: String,
}

pub fn changes(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Change>, AppError> {
    let rows: Vec<ChangeRow> = audit_log::table
        .filter(audit_log::enrolment_id.eq(enrolment_id))
        .filter(audit_log::seq.gt(after.unwrap_or(0)))
        .order(audit_log::seq)
        .limit(limit + 1)
        .select(ChangeRow::as_select())
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            Ok(Change {
                seq: r.seq,
                at: from_db(r.at),
                actor_id: r.actor_id.map(UserId::into_inner),
                action: r.action,
                entity: r.entity,
                entity_id: r.entity_id,
                data: serde_json::from_str(&r.data).map_err(AppError::internal)?,
            })
        })
        .collect()
}

/// Bumps the enrolment's version: any change to the plan changes its ETag.
pub(crate) fn touch(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    id: &EnrolmentId,
) -> Result<(), AppError> {
    diesel::update(enrolments::table.find(id))
        .set((
            enrolments::version.eq(enrolments::version + 1),
            enrolments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}
