//! xAPI 1.0.3 ingestion: learning record stores (or platforms) forward statements; a
//! statement whose verb records learning (completed, passed, attended, ...) about a
//! mapped xAPI activity becomes a learning activity of the matching trainee.
//!
//! - Learner: `actor.mbox` (`mailto:` e-mail of an account) or `actor.account`
//!   (`homePage` + `name`) linked to a user by an administrator.
//! - The trainee must have an enrolment in the client's organisation subtree; accounts
//!   are looked up only there, so that a platform learns nothing about accounts of other
//!   organisations (no account and an account elsewhere are the same `unknown_learner`).
//! - The xAPI activity id (`object.id`) must be mapped by an administrator of the
//!   client's organisation (or an ancestor) to an activity kind, title and delmål.
//!
//! Statement ids (unique per organisation: one organisation's platform can neither block
//! nor probe another's ids) make ingestion idempotent: the same id and content again is a
//! `duplicate`; the same id with other content is a `conflict`. Statements that cannot be
//! matched are kept as `unmatched` with the reason, listed for administrators and resolved
//! later. Malformed ones are `rejected` with a reason and not kept.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::crypto::sha256_hex;
use crate::auth::principal::{org_chain, org_subtrees, Principal, Role};
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::integrations::{audit_write, require_admin_over, visible_orgs};
use crate::portfolio::activities::{self, ActivityKind, NewActivity};
use crate::schema::{
    delmal, enrolments, users, xapi_account_links, xapi_activity_mappings, xapi_statements,
};

/// Verbs that record a learning activity (ADL and common community IRIs).
pub const RECORDING_VERBS: [&str; 6] = [
    "http://adlnet.gov/expapi/verbs/completed",
    "http://adlnet.gov/expapi/verbs/passed",
    "http://adlnet.gov/expapi/verbs/attended",
    "https://w3id.org/xapi/adl/verbs/completed",
    "https://w3id.org/xapi/adl/verbs/passed",
    "https://w3id.org/xapi/adl/verbs/attended",
];

/// At most this many statements per request.
pub const MAX_BATCH: usize = 500;

// ---- Parsing ----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum Learner {
    Mbox(String),
    Account {
        home_page: String,
        name: String,
    },
    /// Identified in a way that cannot be matched (mbox_sha1sum, openid).
    Other(String),
}

impl Learner {
    fn describe(&self) -> String {
        match self {
            Learner::Mbox(e) => format!("mailto:{e}"),
            Learner::Account { home_page, name } => format!("account {name} at {home_page}"),
            Learner::Other(d) => d.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Parsed {
    pub id: String,
    pub verb: String,
    pub activity_iri: String,
    pub learner: Learner,
    pub date: Option<NaiveDate>,
    pub hash: String,
    pub canonical: String,
}

fn is_iri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && !rest.is_empty()
        && !s.chars().any(char::is_whitespace)
}

/// Checks the parts of a statement this service relies on; `Err` is the reason it is
/// rejected.
pub fn parse(statement: &Value) -> Result<Parsed, String> {
    let obj = statement
        .as_object()
        .ok_or("a statement must be a JSON object")?;
    let id =
        match obj.get("id") {
            Some(Value::String(s)) => Uuid::parse_str(s)
                .map_err(|_| "id: not a UUID".to_string())?
                .to_string(),
            Some(_) => return Err("id: not a UUID".into()),
            None => return Err(
                "id: required here (statement ids make forwarding idempotent; send the LRS's id)"
                    .into(),
            ),
        };
    let actor = obj
        .get("actor")
        .and_then(Value::as_object)
        .ok_or("actor: required, an Agent object")?;
    if actor.get("objectType").and_then(Value::as_str) == Some("Group") {
        return Err("actor: Groups are not supported; send one statement per learner".into());
    }
    let ifis = ["mbox", "mbox_sha1sum", "openid", "account"]
        .iter()
        .filter(|k| actor.contains_key(**k))
        .count();
    if ifis != 1 {
        return Err(
            "actor: exactly one of mbox, mbox_sha1sum, openid, account (inverse functional identifier)"
                .into(),
        );
    }
    let learner = if let Some(m) = actor.get("mbox") {
        let m = m.as_str().ok_or("actor.mbox: a mailto: IRI")?;
        let email = m
            .strip_prefix("mailto:")
            .filter(|e| e.contains('@') && !e.contains(char::is_whitespace))
            .ok_or("actor.mbox: a mailto: IRI")?;
        Learner::Mbox(email.trim().to_lowercase())
    } else if let Some(a) = actor.get("account") {
        let home = a.get("homePage").and_then(Value::as_str);
        let name = a.get("name").and_then(Value::as_str);
        match (home, name) {
            (Some(h), Some(n)) if is_iri(h) && !n.is_empty() => Learner::Account {
                home_page: h.to_string(),
                name: n.to_string(),
            },
            _ => return Err("actor.account: homePage (an IRL) and name are required".into()),
        }
    } else if let Some(s) = actor.get("mbox_sha1sum").and_then(Value::as_str) {
        Learner::Other(format!("mbox_sha1sum {s}"))
    } else {
        Learner::Other(format!(
            "openid {}",
            actor.get("openid").and_then(Value::as_str).unwrap_or("")
        ))
    };
    let verb = obj
        .get("verb")
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .filter(|v| is_iri(v))
        .ok_or("verb.id: required, an IRI")?
        .to_string();
    let object = obj
        .get("object")
        .and_then(Value::as_object)
        .ok_or("object: required")?;
    match object.get("objectType").and_then(Value::as_str) {
        None | Some("Activity") => {}
        Some(other) => return Err(format!("object: only Activities are recorded, not {other}")),
    }
    let activity_iri = object
        .get("id")
        .and_then(Value::as_str)
        .filter(|v| is_iri(v))
        .ok_or("object.id: required, an IRI")?
        .to_string();
    let date = match obj.get("timestamp") {
        None => None,
        Some(Value::String(t)) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| "timestamp: not an ISO 8601 / RFC 3339 time".to_string())?
                .with_timezone(&Utc)
                .date_naive(),
        ),
        Some(_) => return Err("timestamp: not an ISO 8601 / RFC 3339 time".into()),
    };
    if let Some(v) = obj.get("version").and_then(Value::as_str) {
        if !v.starts_with("1.0") {
            return Err(format!("version: {v} is not supported (1.0.x)"));
        }
    }
    // Fields a forwarding LRS sets itself do not make the statement different.
    let mut canonical = obj.clone();
    for k in ["stored", "authority", "version"] {
        canonical.remove(k);
    }
    let canonical = Value::Object(canonical).to_string();
    Ok(Parsed {
        id,
        verb,
        activity_iri,
        learner,
        date,
        hash: sha256_hex(&canonical),
        canonical,
    })
}

// ---- Matching -----------------------------------------------------------------------------

pub struct Matched {
    pub user_id: String,
    pub enrolment_id: String,
    pub kind: ActivityKind,
    pub title: String,
    pub delmal: Vec<String>,
}

pub struct Unmatched {
    /// `unknown_learner` or `unmapped_activity`.
    pub reason: &'static str,
    pub detail: String,
}

fn unmatched(reason: &'static str, detail: String) -> Result<Result<Matched, Unmatched>, AppError> {
    Ok(Err(Unmatched { reason, detail }))
}

/// The one answer for a learner who is no trainee of the client's organisation, whether
/// the account does not exist or belongs elsewhere: the same reason and text, so that a
/// platform cannot probe which addresses have accounts in the service.
fn unknown_learner(learner: &Learner) -> Result<Result<Matched, Unmatched>, AppError> {
    unmatched(
        "unknown_learner",
        format!(
            "no trainee enrolled in the platform's organisation is {}; link the xAPI account \
             to a user, or use the account's e-mail as mbox",
            learner.describe()
        ),
    )
}

/// Finds the trainee, their enrolment and the mapping for a statement received by a
/// client of `client_org`.
pub fn try_match(
    conn: &mut DbConn,
    client_org: &str,
    learner: &Learner,
    activity_iri: &str,
    date: NaiveDate,
) -> Result<Result<Matched, Unmatched>, AppError> {
    let chain = org_chain(conn, client_org)?;
    let orgs = org_subtrees(conn, &[client_org.to_string()])?;
    // Learners are looked up among the trainees enrolled in the client's subtree only.
    let enrolled_here = enrolments::table
        .filter(enrolments::organisation_id.eq_any(orgs.clone()))
        .select(enrolments::trainee_id);
    let user: Option<String> = match learner {
        Learner::Mbox(email) => users::table
            .filter(users::email.eq(email))
            .filter(users::id.eq_any(enrolled_here))
            .select(users::id)
            .first(conn)
            .optional()?,
        Learner::Account { home_page, name } => {
            let links: Vec<(String, String)> = xapi_account_links::table
                .filter(xapi_account_links::organisation_id.eq_any(&chain))
                .filter(xapi_account_links::home_page.eq(home_page))
                .filter(xapi_account_links::name.eq(name))
                .select((
                    xapi_account_links::organisation_id,
                    xapi_account_links::user_id,
                ))
                .load(conn)?;
            // The link nearest the client's organisation wins (links are the chain's own;
            // a linked user without an enrolment here is unknown below).
            chain
                .iter()
                .find_map(|o| links.iter().find(|(lo, _)| lo == o).map(|(_, u)| u.clone()))
        }
        Learner::Other(_) => None,
    };
    let Some(user_id) = user else {
        return unknown_learner(learner);
    };
    let candidates: Vec<(String, String, String, String)> = enrolments::table
        .filter(enrolments::trainee_id.eq(&user_id))
        .filter(enrolments::organisation_id.eq_any(&orgs))
        .select((
            enrolments::id,
            enrolments::start_date,
            enrolments::planned_end,
            enrolments::status,
        ))
        .load(conn)?;
    let day = date.to_string();
    let enrolment = candidates
        .iter()
        .filter(|c| c.3 == "active")
        .find(|c| c.1 <= day && day <= c.2)
        .or_else(|| {
            candidates
                .iter()
                .filter(|c| c.3 == "active")
                .max_by(|a, b| a.1.cmp(&b.1))
        })
        .or_else(|| candidates.iter().max_by(|a, b| a.1.cmp(&b.1)))
        .map(|c| c.0.clone());
    let Some(enrolment_id) = enrolment else {
        // An account linked by an administrator of the chain but enrolled elsewhere.
        return unknown_learner(learner);
    };
    // The mapping nearest the trainee's organisation wins (a unit's own over the region's).
    let enrolment_org: String = enrolments::table
        .find(&enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)?;
    let chain = org_chain(conn, &enrolment_org)?;
    let mappings: Vec<(String, String, String, String)> = xapi_activity_mappings::table
        .filter(xapi_activity_mappings::organisation_id.eq_any(&chain))
        .filter(xapi_activity_mappings::activity_iri.eq(activity_iri))
        .select((
            xapi_activity_mappings::organisation_id,
            xapi_activity_mappings::kind,
            xapi_activity_mappings::title,
            xapi_activity_mappings::delmal,
        ))
        .load(conn)?;
    let Some((_, kind, title, codes)) = chain
        .iter()
        .find_map(|o| mappings.iter().find(|m| &m.0 == o).cloned())
    else {
        return unmatched(
            "unmapped_activity",
            format!("the xAPI activity {activity_iri} is not mapped; add an activity mapping"),
        );
    };
    let kind: ActivityKind =
        serde_json::from_value(Value::String(kind)).unwrap_or(ActivityKind::Other);
    let codes: Vec<String> = serde_json::from_str(&codes).unwrap_or_default();
    // Only the delmål of the trainee's regulation are linked.
    let allowed = crate::portfolio::links::allowed(conn, &enrolment_id)?;
    let delmal = codes.into_iter().filter(|c| allowed.contains(c)).collect();
    Ok(Ok(Matched {
        user_id,
        enrolment_id,
        kind,
        title,
        delmal,
    }))
}

/// Creates the learning activity of a matched statement, audited as `actor`.
fn create_activity(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Principal,
    statement_id: &str,
    date: NaiveDate,
    m: &Matched,
) -> Result<String, AppError> {
    let a = activities::insert_activity(
        conn,
        now,
        &m.enrolment_id,
        &m.user_id,
        NewActivity {
            id: None,
            kind: m.kind,
            title: m.title.clone(),
            start_date: date,
            end_date: None,
            placement_id: None,
            checklist_item_id: None,
            reflection: String::new(),
            delmal: m.delmal.clone(),
        },
    )?;
    crate::audit::append(
        conn,
        now,
        crate::audit::Event {
            actor_id: Some(&actor.user_id),
            client: actor.client.as_ref().map(|c| c.name.as_str()),
            action: "created",
            entity: "activity",
            entity_id: &a.id,
            enrolment_id: Some(&a.enrolment_id),
            data: &json!({"activity": a, "source": {"xapi_statement": statement_id}}),
        },
    )?;
    activities::announce_created(conn, now, &a)?;
    Ok(a.id)
}

// ---- Ingestion ---------------------------------------------------------------------------

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

/// Ingests a batch for an API client (scope `activities:write`), in one transaction.
pub fn ingest(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    statements: &[Value],
) -> Result<IngestReport, AppError> {
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
        // Statement ids are the client's organisation's: another organisation's statement
        // with the same id is neither a duplicate nor a conflict here.
        let existing: Option<(String, String, Option<String>)> = xapi_statements::table
            .find((&client.organisation_id, &p.id))
            .select((
                xapi_statements::content_hash,
                xapi_statements::status,
                xapi_statements::activity_id,
            ))
            .first(conn)
            .optional()?;
        // (The same id twice within one batch: the second finds the first's row.)
        if let Some((hash, status, activity_id)) = existing {
            if hash == p.hash {
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
        let date = p.date.unwrap_or(now.date_naive());
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
            crate::integrations::webhooks::enqueue(
                conn,
                &client.organisation_id,
                "xapi.statement_unmatched",
                &json!({"statement_id": p.id, "reason": reason, "detail": detail}),
                now,
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

// ---- Stored statements ---------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct XapiStatement {
    pub id: String,
    pub client_id: String,
    pub organisation_id: String,
    /// `created`, `unmatched` or `dismissed`.
    pub status: String,
    /// Why it is unmatched: `unknown_learner` (no trainee of the client's organisation),
    /// `unmapped_activity`.
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub verb: String,
    /// The xAPI activity id (`object.id`).
    pub activity_iri: String,
    /// How the statement names the learner.
    pub learner: String,
    pub user_id: Option<String>,
    pub enrolment_id: Option<String>,
    /// The learning activity created from it.
    pub activity_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
    /// The statement as received (without `stored`, `authority`, `version`).
    pub statement: Value,
}

type StRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    chrono::NaiveDateTime,
    Option<chrono::NaiveDateTime>,
    i32,
    chrono::NaiveDateTime,
    String,
);

#[allow(clippy::type_complexity)]
const ST_COLUMNS: (
    xapi_statements::id,
    xapi_statements::client_id,
    xapi_statements::organisation_id,
    xapi_statements::status,
    xapi_statements::reason,
    xapi_statements::detail,
    xapi_statements::verb,
    xapi_statements::activity_iri,
    xapi_statements::learner,
    xapi_statements::user_id,
    xapi_statements::enrolment_id,
    xapi_statements::activity_id,
    xapi_statements::received_at,
    xapi_statements::resolved_at,
    xapi_statements::version,
    xapi_statements::updated_at,
    xapi_statements::statement,
) = (
    xapi_statements::id,
    xapi_statements::client_id,
    xapi_statements::organisation_id,
    xapi_statements::status,
    xapi_statements::reason,
    xapi_statements::detail,
    xapi_statements::verb,
    xapi_statements::activity_iri,
    xapi_statements::learner,
    xapi_statements::user_id,
    xapi_statements::enrolment_id,
    xapi_statements::activity_id,
    xapi_statements::received_at,
    xapi_statements::resolved_at,
    xapi_statements::version,
    xapi_statements::updated_at,
    xapi_statements::statement,
);

fn st_from(r: StRow) -> XapiStatement {
    XapiStatement {
        id: r.0,
        client_id: r.1,
        organisation_id: r.2,
        status: r.3,
        reason: r.4,
        detail: r.5,
        verb: r.6,
        activity_iri: r.7,
        learner: r.8,
        user_id: r.9,
        enrolment_id: r.10,
        activity_id: r.11,
        received_at: from_db(r.12),
        resolved_at: r.13.map(from_db),
        version: r.14,
        updated_at: from_db(r.15),
        statement: serde_json::from_str(&r.16).unwrap_or(Value::Null),
    }
}

/// A stored statement of an organisation the caller administers (404 otherwise).
/// Statement ids are unique per organisation: when the clients of several organisations
/// the caller administers sent the same id, `organisation_id` names the one meant (409
/// without it).
pub fn visible_statement(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    organisation_id: Option<&str>,
) -> Result<XapiStatement, AppError> {
    if me.is_client() {
        return Err(AppError::NotFound);
    }
    let mut q = xapi_statements::table
        .filter(xapi_statements::id.eq(id.to_string()))
        .select(ST_COLUMNS)
        .into_boxed();
    if let Some(org) = organisation_id {
        q = q.filter(xapi_statements::organisation_id.eq(org.to_string()));
    }
    let mut mine = Vec::new();
    for r in q.load::<StRow>(conn)? {
        let s = st_from(r);
        if me.has_role_over(conn, Role::Administrator, &s.organisation_id)? {
            mine.push(s);
        }
    }
    match (mine.pop(), mine.is_empty()) {
        (None, _) => Err(AppError::NotFound),
        (Some(s), true) => Ok(s),
        (Some(_), false) => Err(AppError::Conflict(
            "clients of several of your organisations sent a statement with this id; \
             name the one meant with ?organisation_id="
                .into(),
        )),
    }
}

/// Stored statements of the caller's organisations, newest first (cursor `received_at|id`).
pub fn list_statements(
    conn: &mut DbConn,
    me: &Principal,
    status: Option<&str>,
    client_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<XapiStatement>, AppError> {
    let orgs = visible_orgs(conn, me)?;
    let mut q = xapi_statements::table
        .filter(xapi_statements::organisation_id.eq_any(orgs))
        .select(ST_COLUMNS)
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(xapi_statements::status.eq(s.to_string()));
    }
    if let Some(c) = client_id {
        q = q.filter(xapi_statements::client_id.eq(c.to_string()));
    }
    if let Some(a) = after {
        let (t, id) = crate::integrations::parse_time_cursor(a)?;
        q = q.filter(
            xapi_statements::received_at
                .lt(to_db(t))
                .or(xapi_statements::received_at
                    .eq(to_db(t))
                    .and(xapi_statements::id.lt(id))),
        );
    }
    Ok(q.order((
        xapi_statements::received_at.desc(),
        xapi_statements::id.desc(),
    ))
    .limit(limit + 1)
    .load::<StRow>(conn)?
    .into_iter()
    .map(st_from)
    .collect())
}

/// Tries an unmatched statement again (after adding a mapping or an account link):
/// creates the activity, or answers 422 with why it still does not match.
pub fn resolve(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    organisation_id: Option<&str>,
) -> Result<XapiStatement, AppError> {
    let s = visible_statement(conn, me, id, organisation_id)?;
    if s.status != "unmatched" {
        return Err(AppError::Conflict(format!(
            "the statement is {}, not unmatched",
            s.status
        )));
    }
    let p = parse(&s.statement).map_err(AppError::Unprocessable)?;
    let date = p.date.unwrap_or(s.received_at.date_naive());
    match try_match(conn, &s.organisation_id, &p.learner, &p.activity_iri, date)? {
        Err(u) => Err(AppError::Unprocessable(format!(
            "still unmatched ({}): {}",
            u.reason, u.detail
        ))),
        Ok(m) => {
            let activity = create_activity(conn, now, me, &s.id, date, &m)?;
            // Still unmatched in the same statement that resolves it: of two resolutions
            // at once, one wins and the other rolls its activity back.
            let won = diesel::update(
                xapi_statements::table
                    .find((&s.organisation_id, id))
                    .filter(xapi_statements::status.eq("unmatched")),
            )
            .set((
                xapi_statements::status.eq("created"),
                xapi_statements::reason.eq(None::<String>),
                xapi_statements::detail.eq(None::<String>),
                xapi_statements::user_id.eq(&m.user_id),
                xapi_statements::enrolment_id.eq(&m.enrolment_id),
                xapi_statements::activity_id.eq(&activity),
                xapi_statements::resolved_at.eq(to_db(now)),
                xapi_statements::version.eq(s.version + 1),
                xapi_statements::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
            if won != 1 {
                return Err(AppError::Conflict(
                    "the statement is no longer unmatched".into(),
                ));
            }
            audit_write(
                conn,
                now,
                me,
                "resolved",
                "xapi_statement",
                id,
                &json!({"activity_id": activity}),
            )?;
            visible_statement(conn, me, id, Some(&s.organisation_id))
        }
    }
}

/// Sets an unmatched statement aside for good (it is kept, marked `dismissed`).
pub fn dismiss(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    organisation_id: Option<&str>,
) -> Result<XapiStatement, AppError> {
    let s = visible_statement(conn, me, id, organisation_id)?;
    if s.status != "unmatched" {
        return Err(AppError::Conflict(format!(
            "the statement is {}, not unmatched",
            s.status
        )));
    }
    let won = diesel::update(
        xapi_statements::table
            .find((&s.organisation_id, id))
            .filter(xapi_statements::status.eq("unmatched")),
    )
    .set((
        xapi_statements::status.eq("dismissed"),
        xapi_statements::resolved_at.eq(to_db(now)),
        xapi_statements::version.eq(s.version + 1),
        xapi_statements::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    if won != 1 {
        return Err(AppError::Conflict(
            "the statement is no longer unmatched".into(),
        ));
    }
    audit_write(conn, now, me, "dismissed", "xapi_statement", id, &json!({}))?;
    visible_statement(conn, me, id, Some(&s.organisation_id))
}

// ---- Activity mappings ---------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityMapping {
    pub id: String,
    pub organisation_id: String,
    /// The xAPI activity id (`object.id` of statements).
    #[schema(example = "https://lms.regionstockholm.se/courses/forsakringsmedicin")]
    pub xapi_activity_id: String,
    pub kind: ActivityKind,
    #[schema(example = "Försäkringsmedicinsk dag")]
    pub title: String,
    #[schema(example = json!(["BT16"]))]
    pub delmal: Vec<String>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActivityMapping {
    pub id: Option<Uuid>,
    /// Statements about trainees enrolled at this organisation or below use the mapping.
    pub organisation_id: String,
    #[schema(example = "https://lms.regionstockholm.se/courses/forsakringsmedicin")]
    pub xapi_activity_id: String,
    pub kind: ActivityKind,
    #[schema(example = "Försäkringsmedicinsk dag")]
    pub title: String,
    /// Delmål codes; only those of each trainee's regulation are linked.
    #[serde(default)]
    #[schema(example = json!(["BT16"]))]
    pub delmal: Vec<String>,
}

type MapRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    i32,
);

fn map_from(r: MapRow) -> ActivityMapping {
    ActivityMapping {
        id: r.0,
        organisation_id: r.1,
        xapi_activity_id: r.2,
        kind: serde_json::from_value(Value::String(r.3)).unwrap_or(ActivityKind::Other),
        title: r.4,
        delmal: serde_json::from_str(&r.5).unwrap_or_default(),
        created_by: r.6,
        created_at: from_db(r.7),
        updated_at: from_db(r.8),
        version: r.9,
    }
}

#[allow(clippy::type_complexity)]
const MAP_COLUMNS: (
    xapi_activity_mappings::id,
    xapi_activity_mappings::organisation_id,
    xapi_activity_mappings::activity_iri,
    xapi_activity_mappings::kind,
    xapi_activity_mappings::title,
    xapi_activity_mappings::delmal,
    xapi_activity_mappings::created_by,
    xapi_activity_mappings::created_at,
    xapi_activity_mappings::updated_at,
    xapi_activity_mappings::version,
) = (
    xapi_activity_mappings::id,
    xapi_activity_mappings::organisation_id,
    xapi_activity_mappings::activity_iri,
    xapi_activity_mappings::kind,
    xapi_activity_mappings::title,
    xapi_activity_mappings::delmal,
    xapi_activity_mappings::created_by,
    xapi_activity_mappings::created_at,
    xapi_activity_mappings::updated_at,
    xapi_activity_mappings::version,
);

pub fn create_mapping(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    n: NewActivityMapping,
) -> Result<ActivityMapping, AppError> {
    let mut errors = Vec::new();
    if !is_iri(&n.xapi_activity_id) || n.xapi_activity_id.len() > 2000 {
        errors.push(FieldError::new("xapi_activity_id", "an IRI"));
    }
    let title = n.title.trim().to_string();
    if title.is_empty() || title.chars().count() > 300 {
        errors.push(FieldError::new("title", "1 to 300 characters"));
    }
    let mut codes = n.delmal.clone();
    codes.sort();
    codes.dedup();
    let known: Vec<String> = delmal::table
        .filter(delmal::code.eq_any(&codes))
        .select(delmal::code)
        .distinct()
        .load(conn)?;
    for (i, c) in n.delmal.iter().enumerate() {
        if !known.contains(c) {
            errors.push(FieldError::new(
                format!("delmal[{i}]"),
                format!("{c} is no delmål of any regulation"),
            ));
        }
    }
    if crate::accounts::service::get_org(conn, &n.organisation_id).is_err() {
        errors.push(FieldError::new("organisation_id", "no such organisation"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    require_admin_over(conn, me, &n.organisation_id)?;
    let exists: i64 = xapi_activity_mappings::table
        .filter(xapi_activity_mappings::organisation_id.eq(&n.organisation_id))
        .filter(xapi_activity_mappings::activity_iri.eq(&n.xapi_activity_id))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(AppError::Conflict(
            "this xAPI activity is already mapped for the organisation; delete that mapping first"
                .into(),
        ));
    }
    let id =
        n.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    let kind = serde_json::to_value(n.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "other".into());
    diesel::insert_into(xapi_activity_mappings::table)
        .values((
            xapi_activity_mappings::id.eq(&id),
            xapi_activity_mappings::organisation_id.eq(&n.organisation_id),
            xapi_activity_mappings::activity_iri.eq(&n.xapi_activity_id),
            xapi_activity_mappings::kind.eq(kind),
            xapi_activity_mappings::title.eq(&title),
            xapi_activity_mappings::delmal.eq(json!(n.delmal).to_string()),
            xapi_activity_mappings::created_by.eq(&me.user_id),
            xapi_activity_mappings::version.eq(1),
            xapi_activity_mappings::created_at.eq(to_db(now)),
            xapi_activity_mappings::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let m = get_mapping(conn, &id)?;
    audit_write(
        conn,
        now,
        me,
        "created",
        "xapi_activity_mapping",
        &id,
        &json!(m),
    )?;
    Ok(m)
}

fn get_mapping(conn: &mut DbConn, id: &str) -> Result<ActivityMapping, AppError> {
    let r: MapRow = xapi_activity_mappings::table
        .find(id)
        .select(MAP_COLUMNS)
        .first(conn)?;
    Ok(map_from(r))
}

pub fn list_mappings(
    conn: &mut DbConn,
    me: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ActivityMapping>, AppError> {
    let orgs = visible_orgs(conn, me)?;
    let mut q = xapi_activity_mappings::table
        .filter(xapi_activity_mappings::organisation_id.eq_any(orgs))
        .select(MAP_COLUMNS)
        .order(xapi_activity_mappings::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(xapi_activity_mappings::id.gt(a.to_string()));
    }
    Ok(q.load::<MapRow>(conn)?.into_iter().map(map_from).collect())
}

pub fn delete_mapping(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
) -> Result<(), AppError> {
    let m = get_mapping(conn, id)?;
    if me.is_client() || !me.has_role_over(conn, Role::Administrator, &m.organisation_id)? {
        return Err(AppError::NotFound);
    }
    diesel::delete(xapi_activity_mappings::table.find(id)).execute(conn)?;
    audit_write(
        conn,
        now,
        me,
        "deleted",
        "xapi_activity_mapping",
        id,
        &json!(m),
    )
}

// ---- Account links -------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountLink {
    pub id: String,
    pub organisation_id: String,
    /// `actor.account.homePage` of statements.
    #[schema(example = "https://lms.regionstockholm.se")]
    pub home_page: String,
    /// `actor.account.name` of statements.
    #[schema(example = "u12345")]
    pub name: String,
    pub user_id: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountLink {
    pub id: Option<Uuid>,
    pub organisation_id: String,
    #[schema(example = "https://lms.regionstockholm.se")]
    pub home_page: String,
    #[schema(example = "u12345")]
    pub name: String,
    /// The user, by id or by e-mail (one of the two).
    pub user_id: Option<String>,
    pub email: Option<String>,
}

type LinkRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    chrono::NaiveDateTime,
);

fn link_from(r: LinkRow) -> AccountLink {
    AccountLink {
        id: r.0,
        organisation_id: r.1,
        home_page: r.2,
        name: r.3,
        user_id: r.4,
        created_by: r.5,
        created_at: from_db(r.6),
    }
}

const LINK_COLUMNS: (
    xapi_account_links::id,
    xapi_account_links::organisation_id,
    xapi_account_links::home_page,
    xapi_account_links::name,
    xapi_account_links::user_id,
    xapi_account_links::created_by,
    xapi_account_links::created_at,
) = (
    xapi_account_links::id,
    xapi_account_links::organisation_id,
    xapi_account_links::home_page,
    xapi_account_links::name,
    xapi_account_links::user_id,
    xapi_account_links::created_by,
    xapi_account_links::created_at,
);

pub fn create_link(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    n: NewAccountLink,
) -> Result<AccountLink, AppError> {
    let mut errors = Vec::new();
    if !is_iri(&n.home_page) {
        errors.push(FieldError::new(
            "home_page",
            "an IRL, e.g. https://lms.example.org",
        ));
    }
    if n.name.is_empty() || n.name.chars().count() > 300 {
        errors.push(FieldError::new("name", "1 to 300 characters"));
    }
    let user = match (&n.user_id, &n.email) {
        (Some(u), None) => Some(u.clone()),
        (None, Some(e)) => users::table
            .filter(users::email.eq(e.trim().to_lowercase()))
            .select(users::id)
            .first(conn)
            .optional()?,
        _ => {
            errors.push(FieldError::new("user_id", "give user_id or email (one)"));
            None
        }
    };
    let user = match user {
        Some(u) if crate::accounts::service::visible_user(conn, me, &u).is_ok() => Some(u),
        Some(_) | None => {
            if errors.iter().all(|e| e.field != "user_id") {
                errors.push(FieldError::new("user_id", "no such user among your people"));
            }
            None
        }
    };
    if crate::accounts::service::get_org(conn, &n.organisation_id).is_err() {
        errors.push(FieldError::new("organisation_id", "no such organisation"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    require_admin_over(conn, me, &n.organisation_id)?;
    let user = user.ok_or(AppError::NotFound)?;
    let exists: i64 = xapi_account_links::table
        .filter(xapi_account_links::organisation_id.eq(&n.organisation_id))
        .filter(xapi_account_links::home_page.eq(&n.home_page))
        .filter(xapi_account_links::name.eq(&n.name))
        .count()
        .get_result(conn)?;
    if exists > 0 {
        return Err(AppError::Conflict(
            "this account is already linked in the organisation".into(),
        ));
    }
    let id =
        n.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(xapi_account_links::table)
        .values((
            xapi_account_links::id.eq(&id),
            xapi_account_links::organisation_id.eq(&n.organisation_id),
            xapi_account_links::home_page.eq(&n.home_page),
            xapi_account_links::name.eq(&n.name),
            xapi_account_links::user_id.eq(&user),
            xapi_account_links::created_by.eq(&me.user_id),
            xapi_account_links::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let r: LinkRow = xapi_account_links::table
        .find(&id)
        .select(LINK_COLUMNS)
        .first(conn)?;
    let l = link_from(r);
    audit_write(
        conn,
        now,
        me,
        "created",
        "xapi_account_link",
        &id,
        &json!(l),
    )?;
    Ok(l)
}

pub fn list_links(
    conn: &mut DbConn,
    me: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AccountLink>, AppError> {
    let orgs = visible_orgs(conn, me)?;
    let mut q = xapi_account_links::table
        .filter(xapi_account_links::organisation_id.eq_any(orgs))
        .select(LINK_COLUMNS)
        .order(xapi_account_links::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(xapi_account_links::id.gt(a.to_string()));
    }
    Ok(q.load::<LinkRow>(conn)?
        .into_iter()
        .map(link_from)
        .collect())
}

pub fn delete_link(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
) -> Result<(), AppError> {
    let r: LinkRow = xapi_account_links::table
        .find(id)
        .select(LINK_COLUMNS)
        .first(conn)?;
    let l = link_from(r);
    if me.is_client() || !me.has_role_over(conn, Role::Administrator, &l.organisation_id)? {
        return Err(AppError::NotFound);
    }
    diesel::delete(xapi_account_links::table.find(id)).execute(conn)?;
    audit_write(conn, now, me, "deleted", "xapi_account_link", id, &json!(l))
}
