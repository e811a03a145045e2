//! Ingestion: each statement of a request gets its own outcome.

use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::clock::to_db;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::events::DomainEvent;
use crate::integrations::audit_write;
use crate::schema::xapi_statements;

use super::*;

/// The outcome of one statement of a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatementOutcome {
    /// Position in the batch, from 0.
    pub index: usize,
    /// The statement id, when it had a readable one.
    pub id: Option<String>,
    /// `created`, `duplicate`, `unmatched`, `conflict`, `ignored` or `rejected`.
    #[schema(example = "created")]
    pub outcome: String,
    /// For `unmatched`: `unknown_learner` (no trainee of the client's organisation),
    /// `unmapped_activity`;
    /// for `rejected`: what is wrong.
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// The learning activity created from the statement.
    pub activity_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IngestReport {
    pub results: Vec<StatementOutcome>,
    pub created: usize,
    pub duplicate: usize,
    pub unmatched: usize,
    pub conflict: usize,
    pub ignored: usize,
    pub rejected: usize,
}

fn outcome(index: usize, id: Option<String>, outcome: &str) -> StatementOutcome {
    StatementOutcome {
        index,
        id,
        outcome: outcome.into(),
        reason: None,
        detail: None,
        activity_id: None,
    }
}

/// What was received before under a statement id.
#[derive(Queryable, Selectable)]
#[diesel(table_name = xapi_statements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Received {
    content_hash: String,
    status: String,
    activity_id: Option<String>,
}

/// Ingests a batch for an API client (scope `activities:write`), in one transaction.
pub fn ingest(
    conn: &mut DbConn,
    ctx: &Ctx,
    statements: &[Value],
) -> Result<IngestReport, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    me.require_scope(crate::integrations::clients::SCOPE_ACTIVITIES_WRITE)?;
    let client = me.client.clone().ok_or_else(|| {
        AppError::Forbidden("statements are sent by API clients (client-credentials tokens)".into())
    })?;
    let mut results = Vec::new();
    for (index, st) in statements.iter().enumerate() {
        let p = match parse(st) {
            Ok(p) => p,
            Err(reason) => {
                let id = st
                    .get("id")
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(100).collect());
                results.push(StatementOutcome {
                    reason: Some(reason),
                    ..outcome(index, id, "rejected")
                });
                continue;
            }
        };
        // Patient data is never stored: rejected like a statement that does not parse.
        if let Some(detail) =
            crate::privacy::guard::statement_finding(st, crate::clock::day_of(now))
        {
            results.push(StatementOutcome {
                reason: Some("patient_data".into()),
                detail: Some(detail),
                ..outcome(index, Some(p.id), "rejected")
            });
            continue;
        }
        // Statement ids are the client's organisation's: another organisation's statement
        // with the same id is neither a duplicate nor a conflict here.
        let existing: Option<Received> = xapi_statements::table
            .find((&client.organisation_id, &p.id))
            .select(Received::as_select())
            .first(conn)
            .optional()?;
        // (The same id twice within one batch: the second finds the first's row.)
        if let Some(Received {
            content_hash,
            status,
            activity_id,
        }) = existing
        {
            if content_hash == p.hash {
                results.push(StatementOutcome {
                    detail: Some(format!("already received; {status}")),
                    activity_id,
                    ..outcome(index, Some(p.id), "duplicate")
                });
            } else {
                results.push(StatementOutcome {
                    reason: Some("id_reused".into()),
                    detail: Some(
                        "a statement with this id and different content was received before".into(),
                    ),
                    ..outcome(index, Some(p.id), "conflict")
                });
            }
            continue;
        }
        if !RECORDING_VERBS.contains(&p.verb.as_str()) {
            results.push(StatementOutcome {
                reason: Some("verb_not_recorded".into()),
                detail: Some(format!(
                    "the verb {} does not record a learning activity (completed, passed, attended do)",
                    p.verb
                )),
                ..outcome(index, Some(p.id), "ignored")
            });
            continue;
        }
        let date = p.date.unwrap_or(crate::clock::day_of(now));
        let m = try_match(
            conn,
            &client.organisation_id,
            &p.learner,
            &p.activity_iri,
            date,
        )?;
        let (status, reason, detail, user, enrolment, activity) = match m {
            Ok(m) => {
                let activity = create_activity(conn, now, me, &p.id, date, &m)?;
                (
                    "created",
                    None,
                    None,
                    Some(m.user_id),
                    Some(m.enrolment_id),
                    Some(activity),
                )
            }
            Err(u) => (
                "unmatched",
                Some(u.reason),
                Some(u.detail),
                None,
                None,
                None,
            ),
        };
        diesel::insert_into(xapi_statements::table)
            .values((
                xapi_statements::id.eq(&p.id),
                xapi_statements::client_id.eq(&client.client_id),
                xapi_statements::organisation_id.eq(&client.organisation_id),
                xapi_statements::content_hash.eq(&p.hash),
                xapi_statements::statement.eq(&p.canonical),
                xapi_statements::status.eq(status),
                xapi_statements::reason.eq(reason),
                xapi_statements::detail.eq(&detail),
                xapi_statements::verb.eq(&p.verb),
                xapi_statements::activity_iri.eq(&p.activity_iri),
                xapi_statements::learner.eq(p.learner.describe()),
                xapi_statements::user_id.eq(&user),
                xapi_statements::enrolment_id.eq(&enrolment),
                xapi_statements::activity_id.eq(&activity),
                xapi_statements::received_at.eq(to_db(now)),
                xapi_statements::resolved_at.eq(activity.as_ref().map(|_| to_db(now))),
                xapi_statements::version.eq(1),
                xapi_statements::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        audit_write(
            conn,
            now,
            me,
            "received",
            "xapi_statement",
            &p.id,
            &json!({"status": status, "reason": reason, "activity_id": activity, "verb": p.verb, "object": p.activity_iri}),
        )?;
        if status == "unmatched" {
            crate::events::publish(
                conn,
                now,
                DomainEvent::XapiStatementUnmatched {
                    organisation_id: client.organisation_id.clone(),
                    data: json!({"statement_id": p.id, "reason": reason, "detail": detail}),
                },
            )?;
        }
        results.push(StatementOutcome {
            reason: reason.map(str::to_string),
            detail,
            activity_id: activity,
            ..outcome(index, Some(p.id), status)
        });
    }
    let count = |o: &str| results.iter().filter(|r| r.outcome == o).count();
    Ok(IngestReport {
        created: count("created"),
        duplicate: count("duplicate"),
        unmatched: count("unmatched"),
        conflict: count("conflict"),
        ignored: count("ignored"),
        rejected: count("rejected"),
        results,
    })
}
