//! `GET /mail-outbox`: mail not delivered yet, as administrators see it (the outbox
//! itself is plumbing in `crate::outbox`; who may see which recipients is accounts').

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::email_codes::mask_email;
use crate::auth::principal::{org_subtrees, Principal, Role};
use crate::clock::from_db;
use crate::context::Ctx;
use crate::error::AppError;
use crate::ids::MailStatus;
use crate::schema::{external_assessors, invitations, mail_outbox, user_roles, users};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// `pending` (not sent yet, perhaps retrying) or `failed` (given up); both when absent.
    pub status: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A mail that has not gone out (yet). The body is never shown: it may hold a link.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxEntry {
    pub id: String,
    /// The recipient, masked (`a***@example.org`).
    pub recipient: String,
    pub subject: String,
    /// `pending` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// The last error from the mail server, if an attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due (pending mail).
    #[serde(default, with = "crate::clock::millis_opt")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
}

/// What the list reads of an outbox row (never the body).
#[derive(Queryable, Selectable)]
#[diesel(table_name = mail_outbox, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Undelivered {
    id: String,
    recipient: String,
    subject: String,
    status: MailStatus,
    attempts: i32,
    last_error: Option<String>,
    next_attempt_at: chrono::NaiveDateTime,
    created_at: chrono::NaiveDateTime,
}

/// Mail not delivered yet
///
/// For administrators: mail to the people of their organisations (roles, invitations,
/// assessors named there) that is waiting for a retry (`pending`) or was given up
/// (`failed`), oldest first, so that a broken mail server is noticed. Recipients are
/// masked and bodies never shown (they carry sign-in links).
#[utoipa::path(
    tag = "integrations",
    params(OutboxQuery),
    responses((status = 200, description = "Undelivered mail", body = crate::http::Page<OutboxEntry>)),
    security(("bearer" = []))
)]
#[get("/mail-outbox")]
pub async fn list_mail_outbox(
    ctx: Ctx,
    query: web::Query<OutboxQuery>,
) -> Result<HttpResponse, AppError> {
    let me = &ctx.caller;
    me.require_person()?;
    Principal::require(me.has_role(Role::Administrator))?;
    let query = query.into_inner();
    let statuses: Vec<MailStatus> = match query.status.as_deref() {
        None => vec![MailStatus::Pending, MailStatus::Failed],
        Some("pending") => vec![MailStatus::Pending],
        Some("failed") => vec![MailStatus::Failed],
        Some(_) => return Err(AppError::validation("status", "must be pending or failed")),
    };
    let page = crate::http::PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    let limit = page.limit()?;
    // The cursor is the last row's `created_at|id`.
    let after = match page.after()? {
        None => None,
        Some(c) => {
            let (t, id) = c
                .split_once('|')
                .ok_or_else(|| AppError::validation("cursor", "is not a cursor from this API"))?;
            let t = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                .map_err(|_| AppError::validation("cursor", "is not a cursor from this API"))?;
            Some((t, id.to_string()))
        }
    };
    let rows: Vec<Undelivered> = ctx
        .read(move |c, ctx| {
            // Only mail to people of the caller's organisations: subjects name trainees and
            // assessments, and who gets mail is personal data. A recipient is theirs when the
            // address holds a role, an invitation or an assessor vetting in their subtrees.
            let orgs = org_subtrees(c, &ctx.caller.orgs_with(&[Role::Administrator]))?;
            let with_role = users::table
                .filter(
                    users::id.eq_any(
                        user_roles::table
                            .filter(user_roles::organisation_id.eq_any(orgs.clone()))
                            .select(user_roles::user_id),
                    ),
                )
                .select(users::email);
            let invited = invitations::table
                .filter(invitations::organisation_id.eq_any(orgs.clone()))
                .select(invitations::email);
            let assessors = external_assessors::table
                .filter(external_assessors::organisation_id.eq_any(orgs))
                .select(external_assessors::email);
            // Without a cursor, from 1970 on (one query shape, so no boxing).
            let (t, id) = after.unwrap_or((DateTime::UNIX_EPOCH.naive_utc(), String::new()));
            let q = mail_outbox::table
                .filter(mail_outbox::status.eq_any(statuses))
                .filter(
                    mail_outbox::recipient
                        .eq_any(with_role)
                        .or(mail_outbox::recipient.eq_any(invited))
                        .or(mail_outbox::recipient.eq_any(assessors)),
                )
                .filter(
                    mail_outbox::created_at
                        .gt(t)
                        .or(mail_outbox::created_at.eq(t).and(mail_outbox::id.gt(id))),
                );
            Ok(q.order((mail_outbox::created_at, mail_outbox::id))
                .limit(limit + 1)
                .select(Undelivered::as_select())
                .load(c)?)
        })
        .await?;
    let items: Vec<(OutboxEntry, String)> = rows
        .into_iter()
        .map(|r| {
            let key = format!("{}|{}", r.created_at.format("%Y-%m-%dT%H:%M:%S%.f"), r.id);
            let pending = r.status == MailStatus::Pending;
            (
                OutboxEntry {
                    id: r.id,
                    recipient: mask_email(&r.recipient),
                    subject: r.subject,
                    status: r.status.as_str().into(),
                    attempts: r.attempts,
                    last_error: r.last_error,
                    next_attempt_at: pending.then(|| from_db(r.next_attempt_at)),
                    created_at: from_db(r.created_at),
                },
                key,
            )
        })
        .collect();
    let more = items.len() as i64 > limit;
    let mut items = items;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|(_, key)| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
        })
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(crate::http::Page {
        items: items.into_iter().map(|(e, _)| e).collect(),
        next_cursor,
    }))
}
