//! Storing statements (xAPI 1.0.3 Communication 2.1.1 and 2.1.2): a batch is stored
//! whole or not at all, and every statement stored is kept, whatever became of it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::clock::to_db;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::events::DomainEvent;
use crate::ids::{ActivityId, StatementId};
use crate::integrations::audit_write;
use crate::portfolio::provenance::{ActivitySource, SourceKind};
use crate::schema::{activities, xapi_statements};

use super::*;

/// What was received before under a statement id.
#[derive(Queryable, Selectable)]
#[diesel(table_name = xapi_statements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Received {
    content_hash: String,
    status: StatementStatus,
    verb: String,
    activity_id: Option<ActivityId>,
    voided_by: Option<String>,
}

/// Stores a batch for an API client (scope `activities:write`) in the caller's
/// transaction and answers the statements' ids, in order (assigned where missing).
///
/// The whole batch is refused when one statement is: 400 when one is malformed, when
/// two share an id, or when a voiding statement targets a voiding statement; 409 when an
/// id was received before with other content (the same content again changes nothing).
pub fn ingest(
    conn: &mut DbConn,
    ctx: &Ctx,
    statements: Vec<Value>,
) -> Result<Vec<String>, AppError> {
    let me = &ctx.caller;
    me.require_scope(crate::integrations::clients::SCOPE_ACTIVITIES_WRITE)?;
    let client = me.client.clone().ok_or_else(|| {
        AppError::Forbidden("statements are sent by API clients (client-credentials tokens)".into())
    })?;
    let mut parsed = Vec::with_capacity(statements.len());
    for (index, mut st) in statements.into_iter().enumerate() {
        // Statements without an id get one (Data 2.4.1: the LRS assigns it).
        if let Some(obj) = st.as_object_mut() {
            if !obj.contains_key("id") {
                obj.insert("id".into(), Value::String(Uuid::new_v4().to_string()));
            }
        }
        let p = parse(&st).map_err(|reason| {
            AppError::Malformed(format!("statement {index} is not valid xAPI: {reason}"))
        })?;
        // Patient data is never stored: the batch is refused like one holding a malformed
        // statement, naming the field and position but never the number.
        if let Some(detail) = crate::privacy::guard::statement_finding(&st, ctx.today()) {
            return Err(AppError::Malformed(format!(
                "statement {index} is refused (patient_data): {detail}"
            )));
        }
        if parsed.iter().any(|q: &Parsed| q.id == p.id) {
            return Err(AppError::Malformed(format!(
                "statement {index}: the id {} is used twice in the batch",
                p.id
            )));
        }
        parsed.push(p);
    }
    let mut ids = Vec::with_capacity(parsed.len());
    let mut trees = OrgTrees::default();
    for p in parsed {
        store(conn, ctx, &mut trees, &client, &p)?;
        ids.push(p.id.into_inner());
    }
    Ok(ids)
}

/// One statement of a checked batch.
fn store(
    conn: &mut DbConn,
    ctx: &Ctx,
    trees: &mut OrgTrees,
    client: &crate::auth::principal::ClientPrincipal,
    p: &Parsed,
) -> Result<(), AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let org = &client.organisation_id;
    // Statement ids are the client's organisation's: another organisation's statement
    // with the same id is neither a duplicate nor a conflict here.
    if let Some(r) = received(conn, org, &p.id)? {
        if r.content_hash == p.hash {
            // Communication 2.1.1: the same statement again changes nothing.
            return Ok(());
        }
        return Err(AppError::Conflict(format!(
            "a statement with the id {} and different content was received before",
            p.id
        )));
    }
    // A statement whose voiding statement came first arrives voided.
    let voided_by: Option<String> = xapi_statements::table
        .filter(xapi_statements::organisation_id.eq(org))
        .filter(xapi_statements::verb.eq(VOIDED))
        .filter(xapi_statements::activity_iri.eq(&p.id))
        .select(xapi_statements::id)
        .first(conn)
        .optional()?;
    let date = p.date.unwrap_or(crate::clock::day_of(now));
    let (status, reason, detail, user, enrolment, activity) = if let Some(target) = &p.voids {
        void_target(conn, now, me, org, target, &p.id)?;
        ("ignored", Some("voiding"), None, None, None, None)
    } else if voided_by.is_some() {
        ("ignored", Some("voided"), None, None, None, None)
    } else if !RECORDING_VERBS.contains(&p.verb.as_str()) || !p.is_activity {
        let why = format!(
            "the verb {} about {} records no learning activity (completed, passed, attended \
             an Activity do)",
            p.verb, p.activity_iri
        );
        ("ignored", Some("not_recorded"), Some(why), None, None, None)
    } else {
        match try_match(conn, trees, org, &p.learner, &p.activity_iri, date)? {
            Ok(m) => {
                let activity = create_activity(
                    conn,
                    now,
                    Some(me),
                    ActivitySource {
                        kind: SourceKind::Xapi,
                        client_id: Some(client.client_id.clone()),
                        client_name: Some(client.name.clone()),
                        statement_id: Some(p.id.to_string()),
                        received_at: now,
                        transfer: None,
                    },
                    date,
                    &m,
                )?;
                let (u, e) = (m.user_id, m.enrolment_id);
                ("created", None, None, Some(u), Some(e), Some(activity))
            }
            Err(u) => (
                "unmatched",
                Some(u.reason),
                Some(u.detail),
                None,
                None,
                None,
            ),
        }
    };
    diesel::insert_into(xapi_statements::table)
        .values((
            xapi_statements::id.eq(&p.id),
            xapi_statements::client_id.eq(&client.client_id),
            xapi_statements::organisation_id.eq(org),
            xapi_statements::content_hash.eq(&p.hash),
            xapi_statements::statement.eq(&p.canonical),
            xapi_statements::status.eq(status),
            xapi_statements::reason.eq(reason),
            xapi_statements::detail.eq(&detail),
            xapi_statements::verb.eq(&p.verb),
            xapi_statements::activity_iri.eq(&p.activity_iri),
            xapi_statements::learner.eq(p.learner.describe()),
            xapi_statements::registration.eq(&p.registration),
            xapi_statements::user_id.eq(&user),
            xapi_statements::enrolment_id.eq(&enrolment),
            xapi_statements::activity_id.eq(&activity),
            xapi_statements::received_at.eq(to_db(now)),
            xapi_statements::resolved_at.eq(activity.as_ref().map(|_| to_db(now))),
            xapi_statements::version.eq(1),
            xapi_statements::updated_at.eq(to_db(now)),
            xapi_statements::voided_by.eq(&voided_by),
            xapi_statements::voided_at.eq(voided_by.as_ref().map(|_| to_db(now))),
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
                organisation_id: org.clone(),
                data: json!({"statement_id": p.id, "reason": reason, "detail": detail}),
            },
        )?;
    }
    Ok(())
}

fn received(conn: &mut DbConn, org: &str, id: &str) -> Result<Option<Received>, AppError> {
    Ok(xapi_statements::table
        .find((org, id))
        .select(Received::as_select())
        .first(conn)
        .optional()?)
}

/// Voids the statement `target` of the organisation (Data 2.3.2): it is kept and marked,
/// and the activity made from it is voided: it leaves the portfolio and progress (its
/// delmål links go), and the audit log keeps both the activity and the voiding. An
/// unknown target is no error (the spec's LRS accepts it; the target, arriving later,
/// arrives voided); a voiding statement cannot be voided.
fn void_target(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    org: &str,
    target: &StatementId,
    voiding_id: &StatementId,
) -> Result<(), AppError> {
    let Some(t) = received(conn, org, target)? else {
        return Ok(());
    };
    if t.verb == VOIDED {
        return Err(AppError::Malformed(format!(
            "statement {voiding_id} voids {target}, a voiding statement: those cannot be voided"
        )));
    }
    if t.voided_by.is_some() {
        return Ok(());
    }
    // An unmatched statement that was voided leaves the administrators' work list.
    let status = if t.status == "unmatched" {
        "dismissed"
    } else {
        t.status.as_str()
    };
    diesel::update(xapi_statements::table.find((org, target)))
        .set((
            xapi_statements::voided_by.eq(voiding_id),
            xapi_statements::voided_at.eq(to_db(now)),
            xapi_statements::status.eq(status),
            xapi_statements::version.eq(xapi_statements::version + 1),
            xapi_statements::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    if let Some(activity) = &t.activity_id {
        void_activity(conn, now, me, activity, target, voiding_id)?;
    }
    Ok(())
}

/// Takes an activity made from a statement out of the portfolio, as deleting it would.
fn void_activity(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    activity_id: &ActivityId,
    statement_id: &StatementId,
    voiding_id: &StatementId,
) -> Result<(), AppError> {
    let enrolment: Option<String> = activities::table
        .find(activity_id)
        .filter(activities::deleted_at.is_null())
        .select(activities::enrolment_id)
        .first(conn)
        .optional()?;
    // Already deleted by the trainee: nothing left to void.
    let Some(enrolment) = enrolment else {
        return Ok(());
    };
    diesel::update(activities::table.find(activity_id))
        .set((
            activities::deleted_at.eq(to_db(now)),
            activities::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    crate::portfolio::links::remove(conn, crate::portfolio::links::Record::Activity(activity_id))?;
    crate::audit::append(
        conn,
        now,
        crate::audit::Event {
            actor_id: Some(&me.user_id),
            client: me.client.as_ref().map(|c| c.name.as_str()),
            action: "voided",
            entity: "activity",
            entity_id: activity_id,
            enrolment_id: Some(&enrolment),
            data: &json!({"source": {"xapi_statement": statement_id, "voided_by": voiding_id}}),
        },
    )?;
    Ok(())
}
