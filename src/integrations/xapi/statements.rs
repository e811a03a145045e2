//! Stored statements: the work list of unmatched ones, resolve and dismiss.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::principal::{Principal, Role};
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{ClientId, OrganisationId, StatementId};
use crate::integrations::{audit_write, visible_orgs, JsonText};
use crate::schema::xapi_statements;

use super::*;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct XapiStatement {
    pub id: String,
    pub client_id: String,
    pub organisation_id: String,
    /// `created` (an activity was made from it), `unmatched` (in the administrators'
    /// work list), `ignored` (nothing to record) or `dismissed` (unmatched, then
    /// dismissed or voided).
    pub status: String,
    /// Why it is unmatched: `unknown_learner` (no trainee of the client's organisation),
    /// `unmapped_activity`; or ignored: `not_recorded` (a verb or object that records no
    /// learning), `voiding` (it voids another), `voided` (voided before it came).
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

crate::text_enum! {
    /// What became of a stored statement (see [`XapiStatement::status`]).
    pub enum StatementStatus {
        Created = "created",
        Unmatched = "unmatched",
        Ignored = "ignored",
        Dismissed = "dismissed",
    }
}

/// A statement as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = xapi_statements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(super) struct StatementRecord {
    id: StatementId,
    client_id: ClientId,
    organisation_id: String,
    status: StatementStatus,
    reason: Option<String>,
    detail: Option<String>,
    verb: String,
    activity_iri: String,
    learner: String,
    user_id: Option<String>,
    enrolment_id: Option<String>,
    activity_id: Option<String>,
    received_at: NaiveDateTime,
    resolved_at: Option<NaiveDateTime>,
    version: i32,
    updated_at: NaiveDateTime,
    #[diesel(deserialize_as = String)]
    statement: JsonText,
}

impl From<StatementRecord> for XapiStatement {
    fn from(r: StatementRecord) -> XapiStatement {
        XapiStatement {
            id: r.id.into_inner(),
            client_id: r.client_id.into_inner(),
            organisation_id: r.organisation_id,
            status: r.status.as_str().into(),
            reason: r.reason,
            detail: r.detail,
            verb: r.verb,
            activity_iri: r.activity_iri,
            learner: r.learner,
            user_id: r.user_id,
            enrolment_id: r.enrolment_id,
            activity_id: r.activity_id,
            received_at: from_db(r.received_at),
            resolved_at: r.resolved_at.map(from_db),
            version: r.version,
            updated_at: from_db(r.updated_at),
            statement: r.statement.0,
        }
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
        .select(StatementRecord::as_select())
        .into_boxed();
    if let Some(org) = organisation_id {
        q = q.filter(xapi_statements::organisation_id.eq(org.to_string()));
    }
    let mut mine = Vec::new();
    for r in q.load::<StatementRecord>(conn)? {
        let s = XapiStatement::from(r);
        if me.has_role_over(
            conn,
            Role::Administrator,
            &OrganisationId::from(&s.organisation_id),
        )? {
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
        .select(StatementRecord::as_select())
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
    .load::<StatementRecord>(conn)?
    .into_iter()
    .map(XapiStatement::from)
    .collect())
}

/// Tries an unmatched statement again (after adding a mapping or an account link):
/// creates the activity, or answers 422 with why it still does not match.
pub fn resolve(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    organisation_id: Option<&str>,
) -> Result<XapiStatement, AppError> {
    let s = visible_statement(conn, &ctx.caller, id, organisation_id)?;
    if s.status != StatementStatus::Unmatched.as_str() {
        return Err(AppError::Conflict(format!(
            "the statement is {}, not unmatched",
            s.status
        )));
    }
    match try_resolve(
        conn,
        &mut OrgTrees::default(),
        ctx.now,
        Some(&ctx.caller),
        &s,
    )? {
        Err(why) => Err(AppError::Unprocessable(why)),
        Ok(()) => visible_statement(conn, &ctx.caller, id, Some(&s.organisation_id)),
    }
}

/// Matches an unmatched statement again and, when it matches now, creates its activity
/// (audited as `me`, or as the service when none); `Err` says why it still does not
/// match.
pub(super) fn try_resolve(
    conn: &mut DbConn,
    trees: &mut OrgTrees,
    now: DateTime<Utc>,
    me: Option<&Principal>,
    s: &XapiStatement,
) -> Result<Result<(), String>, AppError> {
    let p = parse(&s.statement).map_err(AppError::Unprocessable)?;
    let date = p.date.unwrap_or(crate::clock::day_of(s.received_at));
    let m = match try_match(
        conn,
        trees,
        &s.organisation_id,
        &p.learner,
        &p.activity_iri,
        date,
    )? {
        Err(u) => return Ok(Err(format!("still unmatched ({}): {}", u.reason, u.detail))),
        Ok(m) => m,
    };
    let source = statement_source(
        conn,
        &ClientId::from(s.client_id.as_str()),
        &StatementId::from(s.id.as_str()),
        s.received_at,
    )?;
    let activity = create_activity(conn, now, me, source, date, &m)?;
    // Still unmatched in the same statement that resolves it: of two resolutions at
    // once, one wins and the other rolls its activity back.
    let won = diesel::update(
        xapi_statements::table
            .find((&s.organisation_id, &s.id))
            .filter(xapi_statements::status.eq(StatementStatus::Unmatched)),
    )
    .set((
        xapi_statements::status.eq(StatementStatus::Created),
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
    let data = json!({"activity_id": activity});
    match me {
        Some(me) => audit_write(conn, now, me, "resolved", "xapi_statement", &s.id, &data)?,
        None => crate::audit::append(
            conn,
            now,
            crate::audit::Event {
                actor_id: None,
                client: None,
                action: "resolved",
                entity: "xapi_statement",
                entity_id: &s.id,
                enrolment_id: Some(&m.enrolment_id),
                data: &data,
            },
        )?,
    }
    Ok(Ok(()))
}

/// After a mapping or an account link is added: the unmatched statements it may match
/// (`reason`, and the activity or learner it is about), received by clients of
/// `orgs`, become activities where they match now. Returns how many did.
pub fn retry_unmatched(
    conn: &mut DbConn,
    ctx: &Ctx,
    orgs: &[String],
    reason: &str,
    activity_iri: Option<&str>,
    learner: Option<&str>,
) -> Result<usize, AppError> {
    let mut q = xapi_statements::table
        .filter(xapi_statements::organisation_id.eq_any(orgs))
        .filter(xapi_statements::status.eq(StatementStatus::Unmatched))
        .filter(xapi_statements::reason.eq(reason))
        .select(StatementRecord::as_select())
        .into_boxed();
    if let Some(iri) = activity_iri {
        q = q.filter(xapi_statements::activity_iri.eq(iri.to_string()));
    }
    if let Some(l) = learner {
        q = q.filter(xapi_statements::learner.eq(l.to_string()));
    }
    let mut resolved = 0;
    let mut trees = OrgTrees::default();
    for r in q.load::<StatementRecord>(conn)? {
        if try_resolve(
            conn,
            &mut trees,
            ctx.now,
            Some(&ctx.caller),
            &XapiStatement::from(r),
        )?
        .is_ok()
        {
            resolved += 1;
        }
    }
    Ok(resolved)
}

/// Sets an unmatched statement aside for good (it is kept, marked `dismissed`).
pub fn dismiss(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    organisation_id: Option<&str>,
) -> Result<XapiStatement, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    let s = visible_statement(conn, me, id, organisation_id)?;
    if s.status != StatementStatus::Unmatched.as_str() {
        return Err(AppError::Conflict(format!(
            "the statement is {}, not unmatched",
            s.status
        )));
    }
    let won = diesel::update(
        xapi_statements::table
            .find((&s.organisation_id, id))
            .filter(xapi_statements::status.eq(StatementStatus::Unmatched)),
    )
    .set((
        xapi_statements::status.eq(StatementStatus::Dismissed),
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
