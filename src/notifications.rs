//! Portfolio notifications: sent at once, or gathered into one daily digest for users
//! who prefer that (supervisors who would rather not get a mail per signature).
//! "At once" means through the durable outbox (`crate::outbox`), never SMTP inside a
//! request. Sign-in codes and links never wait for a digest: they go to the outbox
//! directly (`outbox::enqueue` in the transaction, or `notifications::send`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::clock::to_db;
use crate::context::Context;
use crate::db::DbConn;
use crate::error::AppError;
use crate::mail::Mail;
use crate::outbox::Outbox;
use crate::schema::{notification_queue, users};
use crate::secrets::Keyring;

/// Digests go out once a Swedish day, from this hour (Swedish time, Europe/Stockholm) on.
pub const DIGEST_HOUR: u32 = 6;

/// Queues the mails of digest users; returns those to send now.
pub fn sort(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    mails: Vec<Mail>,
) -> Result<Vec<Mail>, AppError> {
    let mut now_list = Vec::new();
    for mail in mails {
        let digest: Option<String> = users::table
            .filter(users::email.eq(&mail.to))
            .filter(users::notification_mode.eq("daily_digest"))
            .select(users::id)
            .first(conn)
            .optional()?;
        match digest {
            Some(user_id) => {
                diesel::insert_into(notification_queue::table)
                    .values((
                        notification_queue::id.eq(Uuid::new_v4().to_string()),
                        notification_queue::user_id.eq(user_id),
                        notification_queue::subject.eq(&mail.subject),
                        notification_queue::body.eq(&mail.body),
                        notification_queue::created_at.eq(to_db(now)),
                    ))
                    .execute(conn)?;
            }
            None => now_list.push(mail),
        }
    }
    Ok(now_list)
}

/// Queues notifications in the caller's transaction: digest users' into the digest
/// queue, everyone else's into the outbox. Wake the outbox after the commit.
pub fn queue(
    conn: &mut DbConn,
    keys: &Keyring,
    now: DateTime<Utc>,
    mails: Vec<Mail>,
) -> Result<(), AppError> {
    let immediate = sort(conn, now, mails)?;
    crate::outbox::enqueue(conn, keys, now, &immediate)
}

/// Runs the request's write (`ctx.write`, which reserves its Idempotency-Key in the
/// same transaction), queueing the notifications it returns in that transaction too, so
/// the change and its mail commit together (nothing lost if the process dies after the
/// commit); `outbox` (`state.outbox`) is woken after the commit.
pub async fn deliver<C, T, F>(ctx: &Context<C>, outbox: &Outbox, f: F) -> Result<T, AppError>
where
    C: Send + Sync + 'static,
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &Context<C>) -> Result<(T, Vec<Mail>), AppError> + Send + 'static,
{
    let value = ctx
        .write(move |c, ctx| {
            let (value, mails) = f(c, ctx)?;
            queue(c, ctx.keyring()?, ctx.now, mails)?;
            Ok(value)
        })
        .await?;
    outbox.wake();
    Ok(value)
}

/// [`deliver`] for writes whose failure is committed too (the inner error: a wrong code
/// that must count against a limit); mail is queued only on success.
pub async fn deliver_checked<C, T, F>(
    ctx: &Context<C>,
    outbox: &Outbox,
    f: F,
) -> Result<T, AppError>
where
    C: Send + Sync + 'static,
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &Context<C>) -> Result<Result<(T, Vec<Mail>), AppError>, AppError>
        + Send
        + 'static,
{
    let value = ctx
        .write(move |c, ctx| match f(c, ctx)? {
            Ok((value, mails)) => {
                queue(c, ctx.keyring()?, ctx.now, mails)?;
                Ok(Ok(value))
            }
            Err(e) => Ok(Err(e)),
        })
        .await??;
    outbox.wake();
    Ok(value)
}

/// [`deliver`] for sign-in mail (invitations, links): queued in the outbox, never held
/// for a digest.
pub async fn send<C, T, F>(ctx: &Context<C>, outbox: &Outbox, f: F) -> Result<T, AppError>
where
    C: Send + Sync + 'static,
    T: Send + 'static,
    F: FnOnce(&mut DbConn, &Context<C>) -> Result<(T, Vec<Mail>), AppError> + Send + 'static,
{
    let value = ctx
        .write(move |c, ctx| {
            let (value, mails) = f(c, ctx)?;
            crate::outbox::enqueue(c, ctx.keyring()?, ctx.now, &mails)?;
            Ok(value)
        })
        .await?;
    outbox.wake();
    Ok(value)
}

/// A notification waiting for its user's digest.
#[derive(Queryable, Selectable)]
#[diesel(table_name = notification_queue, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Waiting {
    id: String,
    subject: String,
    body: String,
}

/// Queues one digest per user whose notifications are waiting and who has not had one
/// today (from 06:00 Swedish time; "today" is the Swedish calendar day, so the digest
/// of a day is one digest whether summer time begins or ends that day). Returns how many
/// digests were queued.
pub fn send_due_digests(
    conn: &mut DbConn,
    keys: &Keyring,
    now: DateTime<Utc>,
) -> Result<usize, AppError> {
    if crate::clock::local_hour(now) < DIGEST_HOUR {
        return Ok(0);
    }
    let start_of_day = to_db(crate::clock::start_of_day(crate::clock::day_of(now)));
    let waiting: Vec<String> = notification_queue::table
        .filter(notification_queue::sent_at.is_null())
        .select(notification_queue::user_id)
        .distinct()
        .load(conn)?;
    let mut sent = 0;
    for user_id in waiting {
        // The day's digest is claimed by one conditional statement: two nodes running
        // housekeeping at once on PostgreSQL must not both send it (the second waits for
        // the first's row lock, then finds the digest taken).
        let claimed = diesel::update(
            users::table.find(&user_id).filter(
                users::last_digest_at
                    .is_null()
                    .or(users::last_digest_at.lt(start_of_day)),
            ),
        )
        .set(users::last_digest_at.eq(to_db(now)))
        .execute(conn)?;
        if claimed != 1 {
            continue;
        }
        let email: String = users::table
            .find(&user_id)
            .select(users::email)
            .first(conn)?;
        let items: Vec<Waiting> = notification_queue::table
            .filter(notification_queue::user_id.eq(&user_id))
            .filter(notification_queue::sent_at.is_null())
            .order(notification_queue::created_at)
            .select(Waiting::as_select())
            .load(conn)?;
        if items.is_empty() {
            continue;
        }
        let body = items
            .iter()
            .map(|w| format!("* {}\n{}", w.subject, w.body))
            .collect::<Vec<_>>()
            .join("\n");
        let mail = Mail {
            to: email,
            subject: format!(
                "eportfolio: {} händelser / {} notifications",
                items.len(),
                items.len()
            ),
            body: format!("Sammanfattning för dagen / Today's summary\n\n{body}"),
        };
        let ids: Vec<&String> = items.iter().map(|w| &w.id).collect();
        diesel::update(
            notification_queue::table
                .filter(notification_queue::id.eq_any(ids))
                .filter(notification_queue::sent_at.is_null()),
        )
        .set(notification_queue::sent_at.eq(to_db(now)))
        .execute(conn)?;
        // Queued with the claim, in the same transaction: sent by the outbox worker,
        // with its retries, and never lost if SMTP is down at 06:00.
        crate::outbox::enqueue(conn, keys, now, &[mail])?;
        sent += 1;
    }
    Ok(sent)
}
