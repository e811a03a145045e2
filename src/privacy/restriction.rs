//! Restriction of processing (begränsning av behandling, GDPR Art. 18), handled by an
//! administrator of the region on the person's request.
//!
//! - **An enrolment** restricted is read-only: every change to it or its records is
//!   refused (409 `processing-restricted`), and it is left out of lists (the enrolment
//!   list and the cohort overview) for everyone but the trainee. It can still be read
//!   by its id, and its dossier pulled, by those who could before.
//! - **An account** restricted restricts every enrolment in which it is the trainee,
//!   and the person is read-only wherever they act: their profile and personal identity
//!   cannot be changed, and they cannot sign, assess, confirm or record anything in
//!   anyone's portfolio (as supervisor, assessor, director). Their sign-in, their own
//!   sign-in factors (passkeys, e-ID links: keeping the account safe is not the
//!   processing restricted) and their export (Art. 15) go on. They are left out of
//!   `GET /users`; administrators find them under `/restrictions`.
//! - **Where the refusal sits.** Every change to an enrolment's records is written to
//!   the audit log in its transaction (`audit::append`, with the enrolment's id); the
//!   log asks [`refuse_if_restricted`] first, so no feature needs its own check and a
//!   new one cannot forget it. What only reads (a dossier issued) and this module's own
//!   entries are let through.
//! - At most one restriction is in force per subject (a partial unique index): the same
//!   request twice, even at once, restricts once; the second gets 409.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, Event};
use crate::auth::principal::{org_subtrees, Principal, Role};
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{EnrolmentId, OrganisationId, UserId};
use crate::schema::{enrolments, restrictions, user_roles};

/// Audit actions that never change the enrolment's records, let through while it is
/// restricted: a dossier issued (a read), and the privacy actions themselves.
pub const ALLOWED_WHILE_RESTRICTED: [&str; 5] = [
    "issued",
    "restricted",
    "restriction_lifted",
    "retention_deleted",
    "erased",
];

/// Audit actions a restricted account may still be the actor of, besides
/// [`ALLOWED_WHILE_RESTRICTED`]: exporting their data (the right of access is not
/// restricted).
const ACTOR_ALLOWED: [&str; 1] = ["exported"];

/// Entities a restricted account may still change as the actor: its sign-in factors,
/// so that a person can keep the account safe (remove a lost passkey) while restricted.
const ACTOR_ALLOWED_ENTITIES: [&str; 2] = ["passkey", "oidc_link"];

/// What is restricted.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A person's account: every enrolment where they are the trainee.
    Account,
    /// One enrolment (a training plan and its records).
    Enrolment,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Account => "account",
            SubjectKind::Enrolment => "enrolment",
        }
    }
    pub fn from_code(s: &str) -> Option<SubjectKind> {
        Some(match s {
            "account" => SubjectKind::Account,
            "enrolment" => SubjectKind::Enrolment,
            _ => return None,
        })
    }
}

crate::text_enum_sql!(SubjectKind);

/// A subject to restrict, its id typed by its kind.
pub(super) enum Subject {
    Account(UserId),
    Enrolment(EnrolmentId),
}

impl Subject {
    fn of(kind: SubjectKind, id: &str) -> Subject {
        match kind {
            SubjectKind::Account => Subject::Account(UserId::from(id)),
            SubjectKind::Enrolment => Subject::Enrolment(EnrolmentId::from(id)),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRestriction {
    pub subject_kind: SubjectKind,
    /// The user's id (account) or the enrolment's id.
    pub subject_id: String,
    /// Why (the request's reference, say): 1 to 500 characters, seen by administrators.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Restriction {
    pub id: String,
    pub subject_kind: SubjectKind,
    pub subject_id: String,
    /// The organisation whose administrators handle it.
    pub organisation_id: String,
    pub reason: String,
    pub restricted_by: String,
    #[serde(with = "crate::clock::millis")]
    #[schema(value_type = String)]
    pub restricted_at: DateTime<Utc>,
    pub lifted_by: Option<String>,
    #[serde(with = "crate::clock::millis_opt")]
    #[schema(value_type = Option<String>)]
    pub lifted_at: Option<DateTime<Utc>>,
    /// True until lifted.
    pub in_force: bool,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = restrictions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    id: String,
    subject_kind: SubjectKind,
    subject_id: String,
    organisation_id: String,
    reason: String,
    restricted_by: String,
    restricted_at: chrono::NaiveDateTime,
    lifted_by: Option<String>,
    lifted_at: Option<chrono::NaiveDateTime>,
}

impl Row {
    fn into_restriction(self) -> Result<Restriction, AppError> {
        Ok(Restriction {
            in_force: self.lifted_at.is_none(),
            id: self.id,
            subject_kind: self.subject_kind,
            subject_id: self.subject_id,
            organisation_id: self.organisation_id,
            reason: self.reason,
            restricted_by: self.restricted_by,
            restricted_at: from_db(self.restricted_at),
            lifted_by: self.lifted_by,
            lifted_at: self.lifted_at.map(from_db),
        })
    }
}

/// The enrolments among `ids` whose processing is restricted (directly, or through the
/// trainee's account).
pub fn restricted_among(conn: &mut DbConn, ids: &[String]) -> Result<HashSet<String>, AppError> {
    let in_force = in_force(conn)?;
    restricted_among_of(conn, &in_force, ids)
}

/// The restrictions in force: what they restrict.
fn in_force(conn: &mut DbConn) -> Result<Vec<(SubjectKind, String)>, AppError> {
    Ok(restrictions::table
        .filter(restrictions::lifted_at.is_null())
        .select((restrictions::subject_kind, restrictions::subject_id))
        .load(conn)?)
}

/// As [`restricted_among`], with the restrictions in force read already.
fn restricted_among_of(
    conn: &mut DbConn,
    in_force: &[(SubjectKind, String)],
    ids: &[String],
) -> Result<HashSet<String>, AppError> {
    if in_force.is_empty() || ids.is_empty() {
        return Ok(HashSet::new());
    }
    let accounts: Vec<&String> = in_force
        .iter()
        .filter(|(k, _)| *k == SubjectKind::Account)
        .map(|(_, s)| s)
        .collect();
    let mut out: HashSet<String> = in_force
        .iter()
        .filter(|(k, s)| *k == SubjectKind::Enrolment && ids.contains(s))
        .map(|(_, s)| s.clone())
        .collect();
    if !accounts.is_empty() {
        for chunk in ids.chunks(2000) {
            let of_accounts: Vec<String> = enrolments::table
                .filter(enrolments::id.eq_any(chunk))
                .filter(enrolments::trainee_id.eq_any(&accounts))
                .select(enrolments::id)
                .load(conn)?;
            out.extend(of_accounts);
        }
    }
    Ok(out)
}

/// The audit log's guard (installed by `app`, see `audit::install_guards`): every
/// change to an enrolment's records passes the log in its transaction, so a restriction
/// of processing refuses them all there; and every act of a restricted account
/// (signing, assessing, confirming, as anyone's supervisor), and every change to its
/// account data.
pub fn audit_guard(conn: &mut DbConn, e: &Event<'_>) -> Result<(), AppError> {
    let enrolment = e
        .enrolment_id
        .filter(|_| !ALLOWED_WHILE_RESTRICTED.contains(&e.action));
    let accounts = accounts_to_check(e);
    if enrolment.is_none() && accounts.is_empty() {
        return Ok(());
    }
    // One read of the restrictions in force serves both checks: the guard runs for
    // every audited change, so a statement here is a statement on every write.
    let in_force = in_force(conn)?;
    if let Some(enrolment_id) = enrolment {
        if !restricted_among_of(conn, &in_force, &[enrolment_id.to_string()])?.is_empty() {
            return Err(enrolment_refusal());
        }
    }
    let restricted = |user: &str| {
        in_force
            .iter()
            .any(|(k, s)| *k == SubjectKind::Account && s == user)
    };
    if accounts.into_iter().any(restricted) {
        return Err(account_refusal());
    }
    Ok(())
}

fn enrolment_refusal() -> AppError {
    AppError::ProcessingRestricted(
        "processing of this training plan is restricted at the person's request: it can be \
         read but not changed until an administrator lifts the restriction"
            .into(),
    )
}

/// 409 `processing-restricted` when the enrolment may not be changed (called by the
/// audit log's guard for every change it records).
pub fn refuse_if_restricted(conn: &mut DbConn, enrolment_id: &EnrolmentId) -> Result<(), AppError> {
    let ids = [enrolment_id.to_string()];
    if restricted_among(conn, &ids)?.is_empty() {
        return Ok(());
    }
    Err(enrolment_refusal())
}

/// Whether the account's processing is restricted (a restriction of the account in
/// force).
pub fn account_restricted(conn: &mut DbConn, user_id: &UserId) -> Result<bool, AppError> {
    let n: i64 = restrictions::table
        .filter(restrictions::subject_kind.eq(SubjectKind::Account))
        .filter(restrictions::subject_id.eq(user_id))
        .filter(restrictions::lifted_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

fn account_refusal() -> AppError {
    AppError::ProcessingRestricted(
        "processing of this account is restricted at the person's request: it can be read \
         but it cannot change anything, nor be changed, until an administrator lifts the \
         restriction"
            .into(),
    )
}

/// 409 `processing-restricted` when the account is restricted.
pub fn refuse_if_account_restricted(conn: &mut DbConn, user_id: &UserId) -> Result<(), AppError> {
    if account_restricted(conn, user_id)? {
        return Err(account_refusal());
    }
    Ok(())
}

/// The accounts whose restriction refuses an audited change: its actor, and the person
/// whose account data (`user`, `personal_identity`) it changes (the guard checks them
/// for every entry it records, like the enrolment).
fn accounts_to_check<'a>(e: &Event<'a>) -> Vec<&'a str> {
    let mut out = Vec::new();
    if ALLOWED_WHILE_RESTRICTED.contains(&e.action) || ACTOR_ALLOWED.contains(&e.action) {
        return out;
    }
    if let Some(actor) = e.actor_id {
        if !ACTOR_ALLOWED_ENTITIES.contains(&e.entity) {
            out.push(actor);
        }
    }
    // These entities' ids are user ids.
    if matches!(e.entity, "user" | "personal_identity") && Some(e.entity_id) != e.actor_id {
        out.push(e.entity_id);
    }
    out
}

/// The organisation through which the caller administers the subject, or 404 (an
/// unknown subject, or one outside the caller's administration).
pub(super) fn administered_through(
    conn: &mut DbConn,
    me: &Principal,
    subject: &Subject,
) -> Result<String, AppError> {
    me.require_person()?;
    let orgs: Vec<String> = match subject {
        Subject::Enrolment(subject_id) => enrolments::table
            .find(subject_id)
            .select(enrolments::organisation_id)
            .load(conn)?,
        Subject::Account(subject_id) => {
            // Where the person holds a role, or trains.
            let mut o: Vec<String> = user_roles::table
                .filter(user_roles::user_id.eq(subject_id))
                .select(user_roles::organisation_id)
                .load(conn)?;
            let trains: Vec<String> = enrolments::table
                .filter(enrolments::trainee_id.eq(subject_id))
                .select(enrolments::organisation_id)
                .load(conn)?;
            o.extend(trains);
            o.sort();
            o.dedup();
            o
        }
    };
    for org in orgs {
        if me.has_role_over(conn, Role::Administrator, &OrganisationId::from(&org))? {
            return Ok(org);
        }
    }
    Err(AppError::NotFound)
}

fn load(conn: &mut DbConn, id: &str) -> Result<Row, AppError> {
    restrictions::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// A restriction the caller may see: one in an organisation they administer.
pub fn get(conn: &mut DbConn, me: &Principal, id: &str) -> Result<Restriction, AppError> {
    me.require_person()?;
    let row = load(conn, id)?;
    if !me.has_role_over(
        conn,
        Role::Administrator,
        &OrganisationId::from(&row.organisation_id),
    )? {
        return Err(AppError::NotFound);
    }
    row.into_restriction()
}

/// Restrictions in the organisations the caller administers, newest first by id.
pub fn list(
    conn: &mut DbConn,
    me: &Principal,
    in_force: Option<bool>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Restriction>, AppError> {
    me.require_person()?;
    let orgs = org_subtrees(conn, &me.orgs_with(&[Role::Administrator]))?;
    let mut q = restrictions::table
        .filter(restrictions::organisation_id.eq_any(orgs))
        .select(restrictions::id)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(restrictions::id.gt(a.to_string()));
    }
    match in_force {
        Some(true) => q = q.filter(restrictions::lifted_at.is_null()),
        Some(false) => q = q.filter(restrictions::lifted_at.is_not_null()),
        None => {}
    }
    let ids: Vec<String> = q.order(restrictions::id).limit(limit + 1).load(conn)?;
    let rows: Vec<Row> = restrictions::table
        .filter(restrictions::id.eq_any(&ids))
        .order(restrictions::id)
        .select(Row::as_select())
        .load(conn)?;
    rows.into_iter().map(Row::into_restriction).collect()
}

/// Restricts an account or an enrolment; audited. A subject already restricted: 409.
pub fn restrict(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: Option<&str>,
    n: NewRestriction,
) -> Result<Restriction, AppError> {
    let org = administered_through(conn, me, &Subject::of(n.subject_kind, &n.subject_id))?;
    let reason = n.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::validation("reason", "1 to 500 characters"));
    }
    let existing: i64 = restrictions::table
        .filter(restrictions::subject_kind.eq(n.subject_kind))
        .filter(restrictions::subject_id.eq(&n.subject_id))
        .filter(restrictions::lifted_at.is_null())
        .count()
        .get_result(conn)?;
    if existing > 0 {
        return Err(AppError::Conflict(
            "already restricted: lift the restriction in force first".into(),
        ));
    }
    let row = Row {
        id: uuid::Uuid::new_v4().to_string(),
        subject_kind: n.subject_kind,
        subject_id: n.subject_id.clone(),
        organisation_id: org,
        reason: reason.to_string(),
        restricted_by: me.user_id.to_string(),
        restricted_at: to_db(now),
        lifted_by: None,
        lifted_at: None,
    };
    // Two requests at once: the partial unique index lets one insert in; the other
    // fails here with 409.
    diesel::insert_into(restrictions::table)
        .values(&row)
        .execute(conn)?;
    audit_action(conn, now, me, client, "restricted", &row)?;
    load(conn, &row.id)?.into_restriction()
}

/// Lifts a restriction in force; audited. One already lifted: 409.
pub fn lift(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: Option<&str>,
    id: &str,
) -> Result<Restriction, AppError> {
    get(conn, me, id)?;
    let changed = diesel::update(
        restrictions::table
            .find(id)
            .filter(restrictions::lifted_at.is_null()),
    )
    .set((
        restrictions::lifted_at.eq(Some(to_db(now))),
        restrictions::lifted_by.eq(Some(&me.user_id)),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Err(AppError::Conflict(
            "this restriction was already lifted".into(),
        ));
    }
    let row = load(conn, id)?;
    audit_action(conn, now, me, client, "restriction_lifted", &row)?;
    row.into_restriction()
}

fn audit_action(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: Option<&str>,
    action: &str,
    row: &Row,
) -> Result<(), AppError> {
    let enrolment = (row.subject_kind == SubjectKind::Enrolment).then_some(row.subject_id.as_str());
    // The reason stays out of the log: it may name the request's circumstances.
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client,
            action,
            entity: "restriction",
            entity_id: &row.id,
            enrolment_id: enrolment,
            data: &json!({"subject_kind": row.subject_kind, "subject_id": row.subject_id}),
        },
    )
}
