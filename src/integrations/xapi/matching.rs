//! Matching a statement to a trainee, an enrolment and a mapped activity.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::auth::principal::{org_chain, org_subtrees, Principal};
use crate::db::DbConn;
use crate::enrolment::enums::EnrolmentStatus;
use crate::error::AppError;
use crate::ids::{ClientId, Day, EnrolmentId, OrganisationId, StatementId};
use crate::portfolio::activities::{self, ActivityKind, NewActivity};
use crate::portfolio::provenance::{ActivitySource, SourceKind};
use crate::schema::api_clients;
use crate::schema::{enrolments, users, xapi_account_links, xapi_activity_mappings};

use super::*;

/// The organisation tree as one batch of statements sees it: each chain and subtree is
/// walked once per batch (a walk costs a query per level), not again for every statement.
/// The tree does not change inside the batch's transaction.
#[derive(Default)]
pub struct OrgTrees {
    chains: std::collections::HashMap<String, Vec<String>>,
    subtrees: std::collections::HashMap<String, Vec<String>>,
}

impl OrgTrees {
    fn chain(&mut self, conn: &mut DbConn, org: &str) -> Result<Vec<String>, AppError> {
        if let Some(c) = self.chains.get(org) {
            return Ok(c.clone());
        }
        let c = org_chain(conn, &OrganisationId::from(org))?;
        self.chains.insert(org.to_string(), c.clone());
        Ok(c)
    }

    fn subtree(&mut self, conn: &mut DbConn, org: &str) -> Result<Vec<String>, AppError> {
        if let Some(t) = self.subtrees.get(org) {
            return Ok(t.clone());
        }
        let t = org_subtrees(conn, &[org.to_string()])?;
        self.subtrees.insert(org.to_string(), t.clone());
        Ok(t)
    }
}

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

/// An enrolment of the learner that a statement may belong to.
#[derive(Queryable, Selectable)]
#[diesel(table_name = enrolments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Candidate {
    id: EnrolmentId,
    start_date: Day,
    planned_end: Day,
    status: EnrolmentStatus,
}

/// A mapping of the statement's xAPI activity, in some organisation of the chain.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = xapi_activity_mappings, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct MappingMatch {
    organisation_id: String,
    kind: String,
    title: String,
    delmal: String,
}

/// Finds the trainee, their enrolment and the mapping for a statement received by a
/// client of `client_org`.
pub fn try_match(
    conn: &mut DbConn,
    trees: &mut OrgTrees,
    client_org: &str,
    learner: &Learner,
    activity_iri: &str,
    date: NaiveDate,
) -> Result<Result<Matched, Unmatched>, AppError> {
    let chain = trees.chain(conn, client_org)?;
    let orgs = trees.subtree(conn, client_org)?;
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
    let candidates: Vec<Candidate> = enrolments::table
        .filter(enrolments::trainee_id.eq(&user_id))
        .filter(enrolments::organisation_id.eq_any(&orgs))
        .select(Candidate::as_select())
        .load(conn)?;
    let day = Day::from(date);
    let enrolment = candidates
        .iter()
        .filter(|c| c.status == EnrolmentStatus::Active)
        .find(|c| c.start_date <= day && day <= c.planned_end)
        .or_else(|| {
            candidates
                .iter()
                .filter(|c| c.status == EnrolmentStatus::Active)
                .max_by_key(|c| c.start_date)
        })
        .or_else(|| candidates.iter().max_by_key(|c| c.start_date))
        .map(|c| c.id.to_string());
    let Some(enrolment_id) = enrolment else {
        // An account linked by an administrator of the chain but enrolled elsewhere.
        return unknown_learner(learner);
    };
    // The mapping nearest the trainee's organisation wins (a unit's own over the region's).
    let enrolment_org: String = enrolments::table
        .find(&enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)?;
    let chain = trees.chain(conn, &enrolment_org)?;
    let mappings: Vec<MappingMatch> = xapi_activity_mappings::table
        .filter(xapi_activity_mappings::organisation_id.eq_any(&chain))
        .filter(xapi_activity_mappings::activity_iri.eq(activity_iri))
        .select(MappingMatch::as_select())
        .load(conn)?;
    let Some(MappingMatch {
        kind,
        title,
        delmal: codes,
        ..
    }) = chain
        .iter()
        .find_map(|o| mappings.iter().find(|m| &m.organisation_id == o).cloned())
    else {
        return unmatched(
            "unmapped_activity",
            format!("the xAPI activity {activity_iri} is not mapped; add an activity mapping"),
        );
    };
    // A stored kind or delmål list this build cannot read is an error, never a default.
    let kind: ActivityKind = serde_json::from_value(Value::String(kind))
        .map_err(|_| AppError::internal("an activity mapping has an unreadable kind"))?;
    let codes: Vec<String> = serde_json::from_str(&codes)
        .map_err(|_| AppError::internal("an activity mapping has an unreadable delmål list"))?;
    // Only the delmål of the trainee's regulation are linked.
    let allowed = crate::portfolio::links::allowed(conn, &EnrolmentId::from(&enrolment_id))?;
    let delmal = codes.into_iter().filter(|c| allowed.contains(c)).collect();
    Ok(Ok(Matched {
        user_id,
        enrolment_id,
        kind,
        title,
        delmal,
    }))
}

/// Creates the learning activity of a matched statement, audited as `actor` (none when
/// the service itself resolves a statement, as when its learner enrols), with the
/// statement as its `source`.
pub(super) fn create_activity(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: Option<&Principal>,
    source: ActivitySource,
    date: NaiveDate,
    m: &Matched,
) -> Result<String, AppError> {
    let statement_id = source.statement_id.clone();
    let mut a = activities::insert_activity(
        conn,
        now,
        &EnrolmentId::from(&m.enrolment_id),
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
    // Its provenance, as reads find it once the statement is stored (after this).
    a.source = Some(source);
    let activity = activities::audit_data(conn, now, &a)?;
    crate::audit::append(
        conn,
        now,
        crate::audit::Event {
            actor_id: actor.map(|a| a.user_id.as_str()),
            client: actor
                .and_then(|a| a.client.as_ref())
                .map(|c| c.name.as_str()),
            action: "created",
            entity: "activity",
            entity_id: &a.id,
            enrolment_id: Some(&a.enrolment_id),
            data: &json!({"activity": activity, "source": {"xapi_statement": statement_id}}),
        },
    )?;
    activities::announce_created(conn, now, &a)?;
    Ok(a.id)
}

/// The source of an activity made from the statement `statement_id` that the API
/// client `client_id` sent at `received_at`.
pub(super) fn statement_source(
    conn: &mut DbConn,
    client_id: &ClientId,
    statement_id: &StatementId,
    received_at: DateTime<Utc>,
) -> Result<ActivitySource, AppError> {
    let client_name: String = api_clients::table
        .find(client_id)
        .select(api_clients::name)
        .first(conn)?;
    Ok(ActivitySource {
        kind: SourceKind::Xapi,
        client_id: Some(client_id.to_string()),
        client_name: Some(client_name),
        statement_id: Some(statement_id.to_string()),
        received_at,
        transfer: None,
    })
}
