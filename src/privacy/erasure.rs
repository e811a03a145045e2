//! Erasure (radering, GDPR Art. 17) of an enrolment's records on the person's request,
//! by an administrator of the region: what no signature depends on goes; what must stay
//! is named in the answer with the reason.
//!
//! - **Erased:** learning activities (the trainee's own entries: no one signs them)
//!   but a course its kursledare confirmed, a course's kursledare request that no one
//!   confirmed (and every course's links), assessments nobody signed (drafts, awaiting
//!   a signature or vetting, declined) with their signing links, talks nobody
//!   confirmed, unsigned summary assessments, the attachments of all these (rows and
//!   files), their delmål links and the xAPI statements that made activities.
//! - **Kept:** signed assessments, confirmed talks, signed summary assessments and
//!   confirmed courses (a supervisor, assessor or kursledare signed them: erasing would
//!   erase the signer's statement, and the certificate applications rest on them; a
//!   confirmed course keeps its activity, delmål links, attachments and source, and an
//!   imported one the provenance of its confirmation); the final assessment and the
//!   certificates; the plan (placements, leave, assignments: the frame of the signed
//!   records and of the time served); the audit log (its chain proves the record, and
//!   it records this erasure with counts). Retention deletes these in their time.
//! - **The audit log's copies** of the erased records' text: the entries naming an
//!   erased record are emptied (`audit::empty`; version-2 entries, whose hashes cover a
//!   digest of the data, so the chain still verifies), and this erasure's entry says how
//!   many (`audit_entries_emptied`). Entries written before migration 000039 keep theirs.
//! - **Once.** The enrolment row is locked first (PostgreSQL; SQLite's writes are
//!   exclusive already): the same request twice at once erases once, and the second
//!   answer shows nothing left to erase (and writes no audit entry: nothing happened).

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, Event};
use crate::auth::principal::{Principal, Role};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{EnrolmentId, OrganisationId, TransferredRecordType};
use crate::schema::{
    activities, assessments, attachments, audit_log, course_confirmation_links,
    course_confirmations, enrolments, final_assessments, record_delmal, signing_links,
    summary_assessments, talk_participants, talks, transferred_records, xapi_statements,
};

/// A kind of record an erasure keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeptKind {
    SignedAssessments,
    ConfirmedTalks,
    SignedSummaryAssessments,
    /// Courses their kursledare confirmed (the activity with its confirmation).
    ConfirmedCourses,
    FinalAssessments,
    Attachments,
    Plan,
    AuditLog,
}

/// What stays, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Kept {
    pub kind: KeptKind,
    pub count: i64,
    pub reason: String,
}

/// The answer to an erasure: what went (rows per kind) and what stays.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Erasure {
    pub enrolment_id: String,
    /// Rows erased per kind (`activities`, `assessments`, `talks`,
    /// `summary_assessments`, `attachments`, `xapi_statements`,
    /// `course_confirmations`: kursledare requests no one confirmed); all zero when
    /// nothing was left to erase.
    #[schema(value_type = Object)]
    pub erased: BTreeMap<String, i64>,
    pub kept: Vec<Kept>,
}

/// The enrolment's administrator (an administrator over its organisation), or 404.
fn require_admin(
    conn: &mut DbConn,
    me: &Principal,
    enrolment_id: &EnrolmentId,
) -> Result<(), AppError> {
    me.require_person()?;
    let org: Option<OrganisationId> = enrolments::table
        .find(enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)
        .optional()?;
    match org {
        Some(o) if me.has_role_over(conn, Role::Administrator, &o)? => Ok(()),
        _ => Err(AppError::NotFound),
    }
}

/// The records that stay: ids of signed assessments, confirmed talks, signed
/// summaries and confirmed courses (their activities).
struct Signed {
    assessments: Vec<String>,
    talks: Vec<String>,
    summaries: Vec<String>,
    courses: Vec<String>,
}

fn signed(conn: &mut DbConn, id: &str) -> Result<Signed, AppError> {
    let assessments: Vec<String> = assessments::table
        .filter(assessments::enrolment_id.eq(id))
        .filter(assessments::signed_at.is_not_null())
        .select(assessments::id)
        .load(conn)?;
    let talk_ids: Vec<String> = talks::table
        .filter(talks::enrolment_id.eq(id))
        .select(talks::id)
        .load(conn)?;
    // A talk one participant confirmed carries that person's confirmation: it stays.
    let mut talks: Vec<String> = talk_participants::table
        .filter(talk_participants::talk_id.eq_any(&talk_ids))
        .filter(talk_participants::confirmed_at.is_not_null())
        .select(talk_participants::talk_id)
        .load(conn)?;
    // And a talk all confirmed: compared with the code the talk feature stores (privacy
    // sits below portfolio; `lib_tests` checks the two agree).
    talks.extend(
        talks::table
            .filter(talks::enrolment_id.eq(id))
            .filter(talks::status.eq(CONFIRMED_TALK))
            .select(talks::id)
            .load::<String>(conn)?,
    );
    talks.sort();
    talks.dedup();
    let summaries: Vec<String> = summary_assessments::table
        .filter(summary_assessments::enrolment_id.eq(id))
        .filter(summary_assessments::signed_at.is_not_null())
        .select(summary_assessments::id)
        .load(conn)?;
    // A course its kursledare confirmed carries their statement, and its certificate
    // rests on it (`confirmed_kursledare`). Compared with the code the course feature
    // stores (privacy sits below portfolio; `lib_tests` checks the two agree).
    let courses: Vec<String> = course_confirmations::table
        .filter(course_confirmations::enrolment_id.eq(id))
        .filter(course_confirmations::status.eq(CONFIRMED_COURSE))
        .select(course_confirmations::activity_id)
        .load(conn)?;
    Ok(Signed {
        assessments,
        talks,
        summaries,
        courses,
    })
}

/// Erases what no signature depends on (see the module comment); audited when anything
/// went. Also returns the storage keys of the erased attachments' files, for the caller
/// to remove once the transaction has committed.
pub fn erase(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &EnrolmentId,
) -> Result<(Erasure, Vec<String>), AppError> {
    require_admin(conn, &ctx.caller, id)?;
    erase_records(conn, ctx, id)
}

/// The status of a talk every participant confirmed: the code
/// `portfolio::talks::TalkStatus::Confirmed` stores (checked in `lib_tests`).
pub const CONFIRMED_TALK: &str = "confirmed";

/// The status of a course confirmation the kursledare gave: the code
/// `portfolio::course_confirmation::CONFIRMED` stores (checked in `lib_tests`).
pub const CONFIRMED_COURSE: &str = "confirmed";

/// [`erase`] without the access check: also run for each enrolment of a trainee whose
/// account is erased (`account_erasure`).
pub(super) fn erase_records(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
) -> Result<(Erasure, Vec<String>), AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, ctx.client.user_agent.as_deref());
    if let DbConn::Pg(pg) = conn {
        diesel::sql_query("SELECT id FROM enrolments WHERE id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(id)
            .execute(pg)?;
    }
    let keep = signed(conn, id)?;
    let gone_assessments: Vec<String> = assessments::table
        .filter(assessments::enrolment_id.eq(id))
        .filter(assessments::id.ne_all(&keep.assessments))
        .select(assessments::id)
        .load(conn)?;
    let gone_talks: Vec<String> = talks::table
        .filter(talks::enrolment_id.eq(id))
        .filter(talks::id.ne_all(&keep.talks))
        .select(talks::id)
        .load(conn)?;
    let gone_summaries: Vec<String> = summary_assessments::table
        .filter(summary_assessments::enrolment_id.eq(id))
        .filter(summary_assessments::id.ne_all(&keep.summaries))
        .select(summary_assessments::id)
        .load(conn)?;
    let gone_activities: Vec<String> = activities::table
        .filter(activities::enrolment_id.eq(id))
        .filter(activities::id.ne_all(&keep.courses))
        .select(activities::id)
        .load(conn)?;
    let mut records: Vec<String> = Vec::new();
    for ids in [
        &gone_assessments,
        &gone_talks,
        &gone_summaries,
        &gone_activities,
    ] {
        records.extend(ids.iter().cloned());
    }
    let blobs: Vec<String> = attachments::table
        .filter(attachments::enrolment_id.eq(id))
        .filter(attachments::record_id.eq_any(&records))
        .select(attachments::storage_key)
        .load(conn)?;
    let gone_attachments: Vec<String> = attachments::table
        .filter(attachments::enrolment_id.eq(id))
        .filter(attachments::record_id.eq_any(&records))
        .select(attachments::id)
        .load(conn)?;
    let mut erased: BTreeMap<String, i64> = BTreeMap::new();
    let mut add = |k: &str, n: usize| {
        *erased.entry(k.to_string()).or_default() += n as i64;
    };
    add(
        "attachments",
        diesel::delete(
            attachments::table
                .filter(attachments::enrolment_id.eq(id))
                .filter(attachments::record_id.eq_any(&records)),
        )
        .execute(conn)?,
    );
    diesel::delete(
        record_delmal::table
            .filter(record_delmal::enrolment_id.eq(id))
            .filter(record_delmal::record_id.eq_any(&records)),
    )
    .execute(conn)?;
    // A course's kursledare request names a person: one no one confirmed goes with its
    // activity. The links go for every course: a used link proves nothing the
    // confirmation does not, and an open one must not let anyone confirm an erased
    // course.
    let all_activities: Vec<String> = activities::table
        .filter(activities::enrolment_id.eq(id))
        .select(activities::id)
        .load(conn)?;
    diesel::delete(
        course_confirmation_links::table
            .filter(course_confirmation_links::activity_id.eq_any(&all_activities)),
    )
    .execute(conn)?;
    add(
        "course_confirmations",
        diesel::delete(
            course_confirmations::table
                .filter(course_confirmations::activity_id.eq_any(&gone_activities)),
        )
        .execute(conn)?,
    );
    // And the provenance of a confirmation imported with a course that goes (issue 17;
    // it names the kursledare): the row shares the import and the original id with the
    // course's own provenance row. Imported confirmations are confirmed, so this is for
    // a course whose confirmation is no longer here.
    let imported: Vec<(String, String)> = transferred_records::table
        .filter(transferred_records::id.eq_any(&gone_activities))
        .select((
            transferred_records::import_id,
            transferred_records::original_id,
        ))
        .load(conn)?;
    for (import, original) in imported {
        diesel::delete(
            transferred_records::table
                .filter(transferred_records::enrolment_id.eq(id))
                .filter(transferred_records::import_id.eq(import))
                .filter(transferred_records::original_id.eq(original))
                .filter(
                    transferred_records::record_type.eq(TransferredRecordType::CourseConfirmation),
                ),
        )
        .execute(conn)?;
    }
    // An imported record's own provenance row holds its title and content as the sending
    // service had them: it goes with the record (signed records stay, and so do theirs).
    diesel::delete(
        transferred_records::table
            .filter(transferred_records::enrolment_id.eq(id))
            .filter(transferred_records::id.eq_any(&records)),
    )
    .execute(conn)?;
    add(
        "xapi_statements",
        diesel::delete(
            xapi_statements::table.filter(xapi_statements::activity_id.eq_any(&gone_activities)),
        )
        .execute(conn)?,
    );
    diesel::delete(
        signing_links::table.filter(signing_links::assessment_id.eq_any(&gone_assessments)),
    )
    .execute(conn)?;
    // A kept record never names an erased one: a correction that stays unlinks from it.
    diesel::update(assessments::table.filter(assessments::supersedes_id.eq_any(&gone_assessments)))
        .set(assessments::supersedes_id.eq(None::<String>))
        .execute(conn)?;
    diesel::update(assessments::table.filter(assessments::superseded_by.eq_any(&gone_assessments)))
        .set(assessments::superseded_by.eq(None::<String>))
        .execute(conn)?;
    diesel::update(
        summary_assessments::table
            .filter(summary_assessments::supersedes_id.eq_any(&gone_summaries)),
    )
    .set(summary_assessments::supersedes_id.eq(None::<String>))
    .execute(conn)?;
    diesel::update(
        summary_assessments::table
            .filter(summary_assessments::superseded_by.eq_any(&gone_summaries)),
    )
    .set(summary_assessments::superseded_by.eq(None::<String>))
    .execute(conn)?;
    add(
        "assessments",
        diesel::delete(assessments::table.filter(assessments::id.eq_any(&gone_assessments)))
            .execute(conn)?,
    );
    diesel::delete(talk_participants::table.filter(talk_participants::talk_id.eq_any(&gone_talks)))
        .execute(conn)?;
    add(
        "talks",
        diesel::delete(talks::table.filter(talks::id.eq_any(&gone_talks))).execute(conn)?,
    );
    add(
        "summary_assessments",
        diesel::delete(
            summary_assessments::table.filter(summary_assessments::id.eq_any(&gone_summaries)),
        )
        .execute(conn)?,
    );
    add(
        "activities",
        diesel::delete(activities::table.filter(activities::id.eq_any(&gone_activities)))
            .execute(conn)?,
    );
    // The audit entries about the erased records lose their copies of the text; the
    // chain still verifies (their hashes cover a digest of it, see `audit`).
    let mut named = records.clone();
    named.extend(gone_attachments);
    let emptied = if erased.values().any(|n| *n > 0) {
        audit::empty(
            conn,
            now,
            ctx.keyring_if_loaded(),
            audit::Naming::Records(&named),
        )?
    } else {
        0
    };
    let kept = kept(conn, id, &keep)?;
    if erased.values().any(|n| *n > 0) {
        audit::append(
            conn,
            now,
            Event {
                actor_id: Some(&me.user_id),
                client,
                action: "erased",
                entity: "enrolment",
                entity_id: id,
                enrolment_id: Some(id),
                data: &json!({"erased": erased, audit::EMPTIED_FIELD: emptied}),
            },
        )?;
    }
    Ok((
        Erasure {
            enrolment_id: id.to_string(),
            erased,
            kept,
        },
        blobs,
    ))
}

fn kept(conn: &mut DbConn, id: &str, keep: &Signed) -> Result<Vec<Kept>, AppError> {
    let finals: i64 = final_assessments::table
        .filter(final_assessments::enrolment_id.eq(id))
        .count()
        .get_result(conn)?;
    let files: i64 = attachments::table
        .filter(attachments::enrolment_id.eq(id))
        .count()
        .get_result(conn)?;
    let audit: i64 = audit_log::table
        .filter(audit_log::enrolment_id.eq(id))
        .count()
        .get_result(conn)?;
    let signed_reason = "signed by someone other than the trainee: erasing it would erase \
                         their statement, and certificates rest on it";
    Ok(vec![
        Kept {
            kind: KeptKind::SignedAssessments,
            count: keep.assessments.len() as i64,
            reason: signed_reason.into(),
        },
        Kept {
            kind: KeptKind::ConfirmedTalks,
            count: keep.talks.len() as i64,
            reason: "confirmed by a participant: the confirmation is their statement".into(),
        },
        Kept {
            kind: KeptKind::SignedSummaryAssessments,
            count: keep.summaries.len() as i64,
            reason: signed_reason.into(),
        },
        Kept {
            kind: KeptKind::ConfirmedCourses,
            count: keep.courses.len() as i64,
            reason: "confirmed by the kursledare: the confirmation is their statement, and \
                     the course's certificate rests on it"
                .into(),
        },
        Kept {
            kind: KeptKind::FinalAssessments,
            count: finals,
            reason: "the final assessment and the certificates are the basis of the \
                     application to Socialstyrelsen"
                .into(),
        },
        Kept {
            kind: KeptKind::Attachments,
            count: files,
            reason: "attached to a record that stays".into(),
        },
        Kept {
            kind: KeptKind::Plan,
            count: 1,
            reason: "the enrolment and its plan (placements, leave, assignments) frame the \
                     signed records and the time served; retention deletes them in time"
                .into(),
        },
        Kept {
            kind: KeptKind::AuditLog,
            count: audit,
            reason: "the audit chain proves the record and cannot lose entries without \
                     breaking; it records this erasure with counts only, and the entries \
                     about erased records lose their copies of the text"
                .into(),
        },
    ])
}
