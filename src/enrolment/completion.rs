//! Completion: when the final assessment (slutbedömning) is decided "achieved", the
//! enrolment is `completed`, so the trainee leaves the active cohort and its pace and
//! at-risk lists. Enrolment hears the decision as a domain event
//! (`final_assessment.decided`, see `crate::events`) rather than being called by the final
//! assessment: that feature need not know who cares, and the status changes in the same
//! transaction as the decision (a decision never commits without it).
//!
//! A "not yet" decision changes nothing here: the enrolment stays `active`, and its
//! progress names what is missing (see `progress::evaluation`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::enums::EnrolmentStatus;
use super::history::{record_change, touch, Changed};
use crate::db::DbConn;
use crate::error::AppError;
use crate::events::{EventKind, StoredEvent};
use crate::ids::EnrolmentId;
use crate::schema::enrolments;

/// The final assessment's decision that completes an enrolment.
const ACHIEVED: &str = "achieved";

/// Whether the enrolment hears an event of this kind: only final decisions (no
/// statement needed to know).
pub fn listens(_: &mut DbConn, kind: EventKind) -> Result<bool, AppError> {
    Ok(kind == EventKind::FinalAssessmentDecided)
}

/// Subscriber to domain events (installed in `app`): completes the enrolment of a final
/// assessment decided "achieved".
pub fn on_event(conn: &mut DbConn, event: &StoredEvent) -> Result<(), AppError> {
    if event.kind != EventKind::FinalAssessmentDecided {
        return Ok(());
    }
    let Some(enrolment_id) = event.enrolment_id.as_deref() else {
        return Err(AppError::internal(
            "final_assessment.decided without an enrolment",
        ));
    };
    let decision = event.data.0.get("decision").and_then(|d| d.as_str());
    if decision != Some(ACHIEVED) {
        return Ok(());
    }
    let final_assessment_id = event
        .data
        .0
        .get("final_assessment_id")
        .cloned()
        .unwrap_or_default();
    complete(
        conn,
        event.created_at.0,
        &EnrolmentId::from(enrolment_id),
        final_assessment_id,
    )
}

/// Marks an active enrolment completed, in its history as a change without a person
/// (the decision's signers are in the final assessment's own audit trail). A withdrawn or
/// already completed enrolment stays as it is.
fn complete(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    enrolment_id: &EnrolmentId,
    final_assessment_id: serde_json::Value,
) -> Result<(), AppError> {
    let changed = diesel::update(
        enrolments::table
            .find(enrolment_id)
            .filter(enrolments::status.eq(EnrolmentStatus::Active)),
    )
    .set(enrolments::status.eq(EnrolmentStatus::Completed))
    .execute(conn)?;
    if changed == 0 {
        return Ok(());
    }
    touch(conn, now, enrolment_id)?;
    record_change(
        conn,
        now,
        None,
        enrolment_id,
        Changed("completed", "enrolment", enrolment_id),
        json!({"status": "completed", "final_assessment_id": final_assessment_id}),
    )
}
