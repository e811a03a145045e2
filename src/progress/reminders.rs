//! The reminders of the daily digest (issue 14, item 11): supervision overdue, a
//! signature request waiting more than 7 days, and a placement change within 14 days
//! with no handover talk planned. Worked out once a Swedish day for the active
//! enrolments, from the same evaluation as the progress views, so a reminder never says
//! what the trainee's progress page does not. Only users who chose the daily digest
//! get them (the others see the same flags in the progress and cohort views).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;

use super::evaluation::{evaluate, Catalogue};
use super::inputs::{load_inputs, CHUNK};
use super::supervision_flags::{main_supervisor, unplanned_handovers};
use uuid::Uuid;

use crate::clock::to_db;
use crate::db::DbConn;
use crate::enrolment::enums::EnrolmentStatus;
use crate::error::AppError;
use crate::portfolio::assessments::AssessmentStatus;
use crate::schema::{assessments, enrolments, notification_queue, reminder_days, users};

/// Days a signature request may wait before the signer is reminded.
pub const SIGNATURE_WAIT_DAYS: i64 = 7;
/// How far ahead a placement change without a planned handover is reminded of.
pub const HANDOVER_AHEAD_DAYS: i64 = 14;

/// Queues the day's reminders into the digest queue, once a Swedish day from the digest
/// hour (run by housekeeping just before `notifications::send_due_digests`, in the same
/// transaction, so they go out in that round's digests). The day is claimed by one
/// insert into `reminder_days`: two nodes reaching the hour together queue them once (on
/// PostgreSQL the second waits for the first's uncommitted row, then finds the day
/// taken). Returns how many reminders were queued.
pub fn queue_due(conn: &mut DbConn, now: DateTime<Utc>) -> Result<usize, AppError> {
    if crate::clock::local_hour(now) < crate::notifications::DIGEST_HOUR {
        return Ok(0);
    }
    let today = crate::clock::day_of(now);
    let claim = diesel::insert_into(reminder_days::table)
        .values((
            reminder_days::day.eq(today.to_string()),
            reminder_days::created_at.eq(to_db(now)),
        ))
        .on_conflict_do_nothing();
    if crate::on_backend!(conn, |c| claim.execute(c))? != 1 {
        return Ok(0);
    }
    let due = due(conn, now, today)?;
    for r in &due {
        diesel::insert_into(notification_queue::table)
            .values((
                notification_queue::id.eq(Uuid::new_v4().to_string()),
                notification_queue::user_id.eq(&r.user_id),
                notification_queue::subject.eq(&r.subject),
                notification_queue::body.eq(&r.body),
                notification_queue::created_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    Ok(due.len())
}

/// One reminder for one user's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminder {
    pub user_id: String,
    pub subject: String,
    pub body: String,
}

/// The reminders due on `today` (the Swedish day of `now`), for digest users only.
pub fn due(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Result<Vec<Reminder>, AppError> {
    let mut out = Vec::new();
    let active: Vec<String> = enrolments::table
        .filter(enrolments::status.eq(EnrolmentStatus::Active))
        .order(enrolments::id)
        .select(enrolments::id)
        .load(conn)?;
    let mut cat = Catalogue::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for chunk in active.chunks(CHUNK) {
        for i in load_inputs(conn, chunk)? {
            let t = cat.template(conn, &i.e.template_id, i.e.template_version)?;
            let delmal = cat.delmal(conn, &t)?;
            let p = evaluate(&i, &t, &delmal, today, None);
            let main = main_supervisor(&i, today);
            let to_both = |subject: String, body: String, out: &mut Vec<Reminder>| {
                for user in std::iter::once(i.e.trainee_id.clone()).chain(main.clone()) {
                    out.push(Reminder {
                        user_id: user,
                        subject: subject.clone(),
                        body: body.clone(),
                    });
                }
            };
            let trainee = name_of(conn, &mut names, &i.e.trainee_id)?;
            if p.pace.supervision_overdue {
                let days = p.pace.days_since_supervision.unwrap_or_default();
                to_both(
                    format!("Handledning försenad / Supervision overdue: {trainee}"),
                    format!(
                        "Inget handledarsamtal på {days} dagar för {trainee}.\n\
                         No supervision session for {days} days for {trainee}."
                    ),
                    &mut out,
                );
            }
            for start in unplanned_handovers(&i, today, HANDOVER_AHEAD_DAYS) {
                to_both(
                    format!("Överlämningssamtal saknas / No handover planned: {trainee}"),
                    format!(
                        "{trainee} byter tjänstgöring {start}; inget överlämningssamtal är inlagt.\n\
                         {trainee} changes placement on {start}; no handover talk is planned."
                    ),
                    &mut out,
                );
            }
        }
    }
    // Signature requests: formative assessments asked of a named signer.
    let before = to_db(now - Duration::days(SIGNATURE_WAIT_DAYS));
    let waiting: Vec<(String, String)> = assessments::table
        .inner_join(enrolments::table.on(enrolments::id.eq(assessments::enrolment_id)))
        .filter(assessments::status.eq(AssessmentStatus::Awaiting))
        .filter(assessments::deleted_at.is_null())
        .filter(assessments::superseded_by.is_null())
        .filter(assessments::requested_at.le(before))
        .filter(assessments::assessor_id.is_not_null())
        .select((
            assessments::assessor_id.assume_not_null(),
            enrolments::trainee_id,
        ))
        .load(conn)?;
    let mut per_signer: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (signer, trainee) in waiting {
        *per_signer.entry((signer, trainee)).or_default() += 1;
    }
    for ((signer, trainee), n) in per_signer {
        let trainee = name_of(conn, &mut names, &trainee)?;
        out.push(Reminder {
            user_id: signer,
            subject: format!("Signering väntar / Signature waiting: {trainee}"),
            body: format!(
                "{n} bedömning(ar) av {trainee} har väntat på din signatur i mer än {SIGNATURE_WAIT_DAYS} dagar.\n\
                 {n} assessment(s) of {trainee} have waited for your signature for more than {SIGNATURE_WAIT_DAYS} days."
            ),
        });
    }
    // Only digest users: the others are not sent a daily mail at all.
    let mut users_: Vec<String> = out.iter().map(|r| r.user_id.clone()).collect();
    users_.sort();
    users_.dedup();
    let mut digest = std::collections::HashSet::new();
    for chunk in users_.chunks(CHUNK) {
        let rows: Vec<String> = users::table
            .filter(users::id.eq_any(chunk))
            .filter(users::notification_mode.eq("daily_digest"))
            .select(users::id)
            .load(conn)?;
        digest.extend(rows);
    }
    out.retain(|r| digest.contains(&r.user_id));
    Ok(out)
}

fn name_of(
    conn: &mut DbConn,
    cache: &mut HashMap<String, String>,
    user: &str,
) -> Result<String, AppError> {
    if let Some(n) = cache.get(user) {
        return Ok(n.clone());
    }
    let n: String = users::table
        .find(user)
        .select(users::display_name)
        .first(conn)
        .optional()?
        .unwrap_or_default();
    cache.insert(user.to_string(), n.clone());
    Ok(n)
}
