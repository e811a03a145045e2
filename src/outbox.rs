//! The durable mail outbox. Mail is inserted in the transaction of the change it
//! announces (or right after it, for portfolio notifications) and sent by a worker with
//! retries and backoff, so that:
//! - no request waits for SMTP: answers to mail requests (password reset for a known or
//!   an unknown address) take the same time, and a slow or dead mail server never slows
//!   the API;
//! - nothing is lost when the mail server is down or the service restarts: a row stays
//!   `pending` until a send succeeds, and ends `failed` (visible to administrators:
//!   `GET /mail-outbox`, in `accounts::mail_outbox`) only after many attempts.
//!
//! Several API nodes may run workers on one database: a row is claimed with a lease by
//! one conditional UPDATE, so each attempt is made by one node.

use std::sync::Arc;

use actix_web::web;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::app::AppState;
use crate::clock::to_db;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::ids::MailStatus;
use crate::mail::Mail;
use crate::schema::mail_outbox;
use crate::secrets::Keyring;

/// Attempts before a mail is given up (`failed`): with the backoff below, about a day.
pub const MAX_ATTEMPTS: i32 = 30;
/// How long a claimed row belongs to the node that claimed it (an SMTP send times out
/// after 15 s, so a lease outlives any attempt).
const LEASE_SECONDS: i64 = 120;
/// The worker looks for due mail this often even when nobody wakes it (retries, mail
/// written by another node).
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Wakes this node's worker when mail was committed, so it goes out at once.
#[derive(Clone, Default)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Outbox {
    /// Call after the transaction that enqueued mail has committed. Waking before the
    /// commit could let the worker look before the rows are visible (on PostgreSQL).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Queues mail in the caller's transaction; the worker sends it after the commit.
///
/// The body is stored sealed under the master key: until it is sent it holds a live
/// reset, undo or confirmation link (or a code) whose hash alone is kept elsewhere, and a
/// copy of the database or a backup taken meanwhile (an SMTP outage lasts hours) must not
/// give it away.
pub fn enqueue(
    conn: &mut DbConn,
    keys: &Keyring,
    now: DateTime<Utc>,
    mails: &[Mail],
) -> Result<(), AppError> {
    for mail in mails {
        let id = Uuid::new_v4().to_string();
        let body = keys.seal(&crate::secrets::outbox_body_aad(&id), &mail.body)?;
        diesel::insert_into(mail_outbox::table)
            .values((
                mail_outbox::id.eq(&id),
                mail_outbox::recipient.eq(&mail.to),
                mail_outbox::subject.eq(&mail.subject),
                mail_outbox::body.eq(&body),
                mail_outbox::status.eq(MailStatus::Pending),
                mail_outbox::attempts.eq(0),
                mail_outbox::next_attempt_at.eq(to_db(now)),
                mail_outbox::created_at.eq(to_db(now)),
                mail_outbox::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// A row this node may send now.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub lease: String,
    pub mail: Mail,
    pub attempts: i32,
}

/// Claims up to `limit` due rows, each by one conditional UPDATE (pending, lease free),
/// so two nodes never send the same attempt.
pub fn claim_due(
    conn: &mut DbConn,
    keys: &Keyring,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Claimed>, AppError> {
    let free = mail_outbox::locked_until
        .is_null()
        .or(mail_outbox::locked_until.le(to_db(now)));
    let due: Vec<String> = mail_outbox::table
        .filter(mail_outbox::status.eq(MailStatus::Pending))
        .filter(mail_outbox::next_attempt_at.le(to_db(now)))
        .filter(free)
        .order(mail_outbox::next_attempt_at)
        .select(mail_outbox::id)
        .limit(limit)
        .load(conn)?;
    let mut claimed = Vec::new();
    for id in due {
        let lease = Uuid::new_v4().to_string();
        let won = diesel::update(
            mail_outbox::table
                .find(&id)
                .filter(mail_outbox::status.eq(MailStatus::Pending))
                .filter(
                    mail_outbox::locked_until
                        .is_null()
                        .or(mail_outbox::locked_until.le(to_db(now))),
                ),
        )
        .set((
            mail_outbox::locked_until.eq(Some(to_db(now + Duration::seconds(LEASE_SECONDS)))),
            mail_outbox::lease.eq(Some(&lease)),
        ))
        .execute(conn)?;
        if won != 1 {
            continue;
        }
        let Queued {
            recipient: to,
            subject,
            body,
            attempts,
        } = mail_outbox::table
            .find(&id)
            .select(Queued::as_select())
            .first(conn)?;
        let body = match keys.open(&crate::secrets::outbox_body_aad(&id), &body) {
            Ok(body) => body,
            Err(e) => {
                // Damaged, or copied from another row: not sendable, and it must not stop
                // the rest of the queue. Administrators see it failed.
                tracing::error!(outbox_id = %id, error = %e, "a queued mail does not open");
                diesel::update(mail_outbox::table.find(&id))
                    .set((
                        mail_outbox::status.eq(MailStatus::Failed),
                        mail_outbox::updated_at.eq(to_db(now)),
                        mail_outbox::locked_until.eq(None::<chrono::NaiveDateTime>),
                        mail_outbox::lease.eq(None::<String>),
                        mail_outbox::last_error.eq(Some("the stored mail does not open")),
                    ))
                    .execute(conn)?;
                continue;
            }
        };
        claimed.push(Claimed {
            id,
            lease,
            mail: Mail { to, subject, body },
            attempts,
        });
    }
    Ok(claimed)
}

/// What a claimed mail is sent from (the body still sealed).
#[derive(Queryable, Selectable)]
#[diesel(table_name = mail_outbox, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Queued {
    recipient: String,
    subject: String,
    body: String,
    attempts: i32,
}

/// Delay after failed attempt number `attempt`: 30 s doubled each time, at most an hour.
pub fn backoff(attempt: i32) -> Duration {
    let exp = attempt.clamp(1, 12) - 1;
    Duration::seconds((30i64 << exp).min(3600))
}

/// Records an attempt, only while this node still holds the lease.
pub fn record(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    claimed: &Claimed,
    result: &Result<(), String>,
) -> Result<(), AppError> {
    let mine = mail_outbox::table
        .find(&claimed.id)
        .filter(mail_outbox::lease.eq(&claimed.lease));
    let attempts = claimed.attempts + 1;
    match result {
        // Sent mail keeps no body: it held sign-in links, which should not live on in
        // the database and its backups.
        Ok(()) => {
            diesel::update(mine)
                .set((
                    mail_outbox::status.eq(MailStatus::Sent),
                    mail_outbox::body.eq(""),
                    mail_outbox::attempts.eq(attempts),
                    mail_outbox::sent_at.eq(Some(to_db(now))),
                    mail_outbox::updated_at.eq(to_db(now)),
                    mail_outbox::locked_until.eq(None::<chrono::NaiveDateTime>),
                    mail_outbox::lease.eq(None::<String>),
                    mail_outbox::last_error.eq(None::<String>),
                ))
                .execute(conn)?;
            crate::telemetry::metrics::delivery(
                crate::telemetry::metrics::Queue::Mail,
                crate::telemetry::metrics::Delivery::Delivered,
            );
        }
        Err(e) => {
            let gave_up = attempts >= MAX_ATTEMPTS;
            let updated = diesel::update(mine)
                .set((
                    mail_outbox::status.eq(if gave_up {
                        MailStatus::Failed
                    } else {
                        MailStatus::Pending
                    }),
                    mail_outbox::attempts.eq(attempts),
                    mail_outbox::next_attempt_at.eq(to_db(now + backoff(attempts))),
                    mail_outbox::updated_at.eq(to_db(now)),
                    mail_outbox::locked_until.eq(None::<chrono::NaiveDateTime>),
                    mail_outbox::lease.eq(None::<String>),
                    mail_outbox::last_error.eq(Some(e.chars().take(500).collect::<String>())),
                ))
                .execute(conn)?;
            if updated == 1 {
                crate::telemetry::metrics::delivery(
                    crate::telemetry::metrics::Queue::Mail,
                    if gave_up {
                        crate::telemetry::metrics::Delivery::GaveUp
                    } else {
                        crate::telemetry::metrics::Delivery::Retry
                    },
                );
            }
            if gave_up && updated == 1 {
                // Given up: the links in it have expired by now; keep no copy of them.
                diesel::update(mail_outbox::table.find(&claimed.id))
                    .set(mail_outbox::body.eq(""))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

/// Sends due mail until nothing is due; returns the number of attempts made.
pub async fn deliver_due(state: &web::Data<AppState>) -> Result<usize, AppError> {
    let mut total = 0;
    loop {
        let now = state.clock.now();
        let keys = state.pool.keyring().cloned();
        let claimed = db::write(&state.pool, move |c| {
            claim_due(c, crate::secrets::required(keys.as_ref())?, now, 20)
        })
        .await?;
        if claimed.is_empty() {
            return Ok(total);
        }
        total += claimed.len();
        for c in claimed {
            let mailer = state.mailer.clone();
            let mail = c.mail.clone();
            let result = web::block(move || mailer.send(&mail).map_err(|e| e.to_string())).await?;
            if let Err(e) = &result {
                tracing::warn!(error = %e, outbox_id = %c.id, attempt = c.attempts + 1, "mail not sent; will retry");
            }
            let now = state.clock.now();
            db::write(&state.pool, move |conn| record(conn, now, &c, &result)).await?;
        }
        // Let the next round continue a very long queue.
        if total >= 500 {
            return Ok(total);
        }
    }
}

/// The mail worker: runs when woken after a commit and every second (retries, mail of
/// other nodes), off the request path.
pub fn spawn_worker(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let wake = state.outbox.wake.clone();
        loop {
            match deliver_due(&state).await {
                Ok(_) => {}
                Err(AppError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "mail delivery postponed");
                }
                Err(e) => tracing::error!(error = %e, "mail delivery failed"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = actix_web::rt::time::sleep(POLL) => {}
            }
        }
    });
}
