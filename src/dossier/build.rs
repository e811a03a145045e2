//! The dossier of one trainee: everything the final assessment rests on, as one JSON
//! document (its PDF form is in `pdf`). Only this enrolment's rows are read,
//! and nothing is cached, so memory follows the one dossier being built.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::curriculum::{catalogue, templates};
use crate::db::DbConn;
use crate::enrolment::service as enrolment;
use crate::error::AppError;
use crate::final_assessment::service as final_assessment;
use crate::ids::{ActivityId, EnrolmentId};
use crate::portfolio::{activities, assessments, summaries, talks};
use crate::progress::service as progress;
use crate::schema::{audit_log, users};

pub use super::pdf::{pdf, stamp};

/// Audit actions that are facts about signatures and confirmations.
const SIGNATURE_ACTIONS: [&str; 7] = [
    "signed",
    "confirmed",
    "decided",
    "declined",
    "requested",
    "correction_created",
    "created",
];

const MANY: i64 = 1_000_000;

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(AppError::internal)
}

/// Builds the dossier's content (unsigned).
pub fn build(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    now: DateTime<Utc>,
) -> Result<Value, AppError> {
    let today = crate::clock::day_of(now);
    let e = enrolment::get_enrolment(conn, enrolment_id, today)?;
    let template = templates::get_template(
        conn,
        &crate::ids::TemplateId::from(e.template_id.as_str()),
        Some(e.template_version),
    )?;
    let regulation = catalogue::get_regulation(conn, &template.regulation_id)?;
    let progress = progress::progress(conn, enrolment_id, today, true)?;
    let acts = activities::list_activities(
        conn,
        enrolment_id,
        &activities::Filter::default(),
        None,
        MANY,
    )?;
    let all_assessments = assessments::list(
        conn,
        enrolment_id,
        &assessments::Filter::default(),
        None,
        MANY,
    )?;
    // The dossier holds what was signed: current signed versions, and the versions they
    // corrected, so a correction's history is there too.
    let signed: Vec<_> = all_assessments
        .into_iter()
        .filter(|a| a.status == assessments::AssessmentStatus::Signed)
        .collect();
    // Who vetted each assessor who signed by link (the trainee cannot vouch for them).
    let link_signed: Vec<String> = signed
        .iter()
        .filter(|a| a.signature.as_ref().is_some_and(|s| s.signed_by.is_none()))
        .map(|a| a.id.clone())
        .collect();
    let vetted: HashMap<String, String> = crate::portfolio::vetting::vetted_by(conn, &link_signed)?
        .into_iter()
        .collect();
    // And what was stated about them: specialist status, training in assessment methods.
    let qualified: HashMap<String, _> =
        crate::portfolio::vetting::qualifications_of(conn, &link_signed)?
            .into_iter()
            .collect();
    let sums: Vec<_> = summaries::list(conn, enrolment_id)?
        .into_iter()
        .filter(|s| s.status == summaries::SummaryStatus::Signed)
        .collect();
    let mut talks_by_kind = HashMap::new();
    for kind in [
        talks::TalkKind::Supervision,
        talks::TalkKind::Handover,
        talks::TalkKind::FinalCheckIn,
    ] {
        talks_by_kind.insert(kind, talks::list(conn, enrolment_id, kind, None, MANY)?);
    }
    let finals = final_assessment::list(conn, enrolment_id)?;
    // The courses a kursledare confirmed (issue 14 item 8): who, where, when, and the
    // digest of what they confirmed; requests still open are work in progress.
    let courses: Vec<_> = crate::portfolio::course_confirmation::of_enrolment(conn, enrolment_id)?
        .into_iter()
        .filter(|c| c.status == crate::portfolio::course_confirmation::CONFIRMED)
        .collect();

    // Everyone named anywhere, once.
    let mut ids: Vec<String> = vec![e.trainee_id.clone()];
    ids.extend(e.assignments.iter().map(|a| a.user_id.clone()));
    ids.extend(signed.iter().filter_map(|a| a.assessor_id.clone()));
    ids.extend(vetted.values().cloned());
    ids.extend(sums.iter().map(|s| s.author_id.clone()));
    for list in talks_by_kind.values() {
        for t in list {
            ids.extend(t.participants.iter().map(|p| p.user_id.clone()));
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
    // Issue 15: no contact details of a person with protected identity (the dossier
    // goes to supervisors and outside verifiers).
    let protected = crate::accounts::personal_identity::protected_among(conn, &ids)?;
    // What the forms print beside a signer's name (issue 14 item 8): specialty,
    // tjänsteställe, handledarutbildning; null where the person stated nothing.
    let profiles: HashMap<String, _> = crate::accounts::signer_profiles::of_users(conn, &ids)?
        .into_iter()
        .map(|p| (p.user_id.clone(), p))
        .collect();
    let people: Vec<Value> = people
        .into_iter()
        .map(|(id, name, email)| {
            let email = if protected.contains(&id) {
                None
            } else {
                Some(email)
            };
            let p = profiles.get(&id);
            json!({"id": id, "name": name, "email": email,
                   "specialty": p.and_then(|p| p.specialty.clone()),
                   "workplace": p.and_then(|p| p.workplace.clone()),
                   "supervisor_training_on": p.and_then(|p| p.supervisor_training_on.clone())})
        })
        .collect();
    let trainee = people
        .iter()
        .find(|p| p["id"] == json!(e.trainee_id))
        .cloned()
        .unwrap_or(Value::Null);

    /// An audit fact about a signature or confirmation, as the dossier lists it.
    #[derive(Queryable, Selectable)]
    #[diesel(table_name = audit_log, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
    struct AuditFact {
        seq: i64,
        at: chrono::NaiveDateTime,
        actor_id: Option<String>,
        client: Option<String>,
        action: String,
        entity: String,
        entity_id: String,
        hash: String,
    }
    let audit: Vec<AuditFact> = audit_log::table
        .filter(audit_log::enrolment_id.eq(enrolment_id))
        .filter(audit_log::action.eq_any(SIGNATURE_ACTIONS))
        .order(audit_log::seq)
        .select(AuditFact::as_select())
        .load(conn)?;
    let audit: Vec<Value> = audit
        .into_iter()
        .map(|r| {
            json!({"seq": r.seq, "at": crate::clock::from_db(r.at), "actor_id": r.actor_id,
                   "client": r.client, "action": r.action, "entity": r.entity,
                   "entity_id": r.entity_id, "hash": r.hash})
        })
        .collect();

    let mut records = Vec::new();
    records.extend(
        acts.iter()
            .map(|a| json!({"type": "activity", "id": a.id, "version": a.version})),
    );
    records.extend(
        signed
            .iter()
            .map(|a| json!({"type": "assessment", "id": a.id, "version": a.version})),
    );
    records.extend(
        sums.iter()
            .map(|s| json!({"type": "summary_assessment", "id": s.id, "version": s.version})),
    );
    for (kind, name) in [
        (talks::TalkKind::Supervision, "supervision_session"),
        (talks::TalkKind::Handover, "handover_talk"),
        (talks::TalkKind::FinalCheckIn, "final_check_in"),
    ] {
        if let Some(list) = talks_by_kind.get(&kind) {
            records.extend(
                list.iter()
                    .map(|t| json!({"type": name, "id": t.id, "version": t.version})),
            );
        }
    }
    records.extend(
        finals
            .iter()
            .map(|f| json!({"type": "final_assessment", "id": f.id, "version": f.version})),
    );

    let mut signed_json = to_value(&signed)?;
    for a in signed_json.as_array_mut().into_iter().flatten() {
        let id = a["id"].as_str().unwrap_or_default().to_string();
        if link_signed.contains(&id) {
            // Null for a link sent before vetting existed: the dossier says so.
            a["assessor_vetted_by"] = json!(vetted.get(&id));
            a["assessor_qualifications"] = json!(qualified.get(&id));
        }
    }

    // Each confirmation with where it was given when it came with a transfer (issue 17).
    let mut courses_json = Vec::new();
    for c in &courses {
        let mut v = to_value(c)?;
        let ids = crate::portfolio::course_confirmation::transferred_confirmation(
            conn,
            &ActivityId::from(&c.activity_id),
        )?;
        v["transferred"] = json!(crate::portfolio::transferred::of_records(conn, &ids)?
            .into_values()
            .next());
        courses_json.push(v);
    }

    let content_marker = crate::auth::crypto::sha256_hex(format!(
        "{}|{}|{}",
        enrolment_id,
        now.timestamp_micros(),
        records.len()
    ));
    Ok(json!({
        "format": "eportfolio-dossier/1",
        "dossier_id": format!("{}-{}", &content_marker[..12], now.format("%Y%m%dT%H%M%SZ")),
        "generated_at": now,
        "trainee": trainee,
        "enrolment": to_value(&e)?,
        "programme": {
            "template_id": template.id, "template_version": template.version,
            "name": template.content.name, "duration_months": template.content.duration_months,
            "placement_types": template.content.placement_types.iter()
                .map(|p| json!({"key": p.key, "name": p.name, "counts_as": p.counts_as})).collect::<Vec<_>>(),
        },
        "regulation": {"id": regulation.id, "code": regulation.code, "version": regulation.version,
                       "name": regulation.name_sv, "statute": regulation.statute},
        "people": people,
        "progress": to_value(&progress)?,
        "activities": to_value(&acts)?,
        "assessments": signed_json,
        "summary_assessments": to_value(&sums)?,
        "supervision_sessions": to_value(&talks_by_kind.get(&talks::TalkKind::Supervision))?,
        "handover_talks": to_value(&talks_by_kind.get(&talks::TalkKind::Handover))?,
        "final_check_ins": to_value(&talks_by_kind.get(&talks::TalkKind::FinalCheckIn))?,
        "final_assessments": to_value(&finals)?,
        "course_confirmations": courses_json,
        "audit": audit,
        "records": records,
    }))
}
