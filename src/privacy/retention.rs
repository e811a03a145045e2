//! Retention (gallring): a region decides how long a completed or withdrawn enrolment's
//! records are kept after the enrolment closed; a daily job deletes what is past that.
//!
//! - **Off by default.** No policy row: nothing is ever deleted. This service invents no
//!   period: the region sets it (`PUT /organisations/{id}/retention-policy`) after its
//!   own decision (its archive rules, gallringsbeslut), and its doctors export first.
//! - **The closing date** of an enrolment is the latest of its planned end, its last
//!   change (the completion or withdrawal is one) and its final assessment's decision:
//!   a later date only keeps records longer, never shorter.
//! - **What goes.** Everything of the enrolment: the plan (placements, leave, extent,
//!   credited service, study plan, assignments), activities, assessments and their
//!   signing links, talks, summary assessments, the final assessment and its signers,
//!   course confirmations (kursledare requests and confirmations) and their links,
//!   attachments and their files, xAPI statements about it, its pending domain events,
//!   restrictions on it, and the enrolment itself.
//! - **What stays.** The audit log: deleting its entries would break the chain. The
//!   chain gets one entry per deleted enrolment with the counts, never the content (see
//!   docs/privacy.md for what older entries still hold).
//! - **Daily.** One run per region and Swedish day (`retention_runs`, unique per pair),
//!   in the same transaction as its deletions: two nodes' housekeeping cannot both run
//!   it, and the runs are the administrators' report.

use std::collections::BTreeMap;

use chrono::{DateTime, Months, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::accounts::organisations::OrgKind;
use crate::audit::{self, Event};
use crate::auth::principal::{org_subtrees, Principal, Role};
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{Day, OrganisationId};
use crate::schema::{
    activities, assessments, assignments, attachments, credited_service, domain_events, enrolments,
    extent_periods, external_assessors, final_assessment_signers, final_assessments, group_reviews,
    leave_periods, organisations, placement_evaluations, placements, record_delmal, restrictions,
    retention_policies, retention_runs, signing_links, study_plan_goals, summary_assessments,
    talk_participants, talks, transferred_records, xapi_statements,
};

/// The longest period a region may set: 100 years, far beyond any archive rule, only
/// to keep the date arithmetic finite.
pub const MAX_KEEP_MONTHS: i32 = 1200;

/// Statuses whose records the job may delete: a training that is over.
const CLOSED: [&str; 2] = ["completed", "withdrawn"];

/// A region's retention period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionPolicy {
    pub organisation_id: String,
    /// Months a completed or withdrawn enrolment's records are kept after it closed;
    /// null: retention is off (nothing is deleted), the default.
    #[schema(example = 24)]
    pub keep_months: Option<i32>,
    #[serde(with = "crate::clock::millis_opt")]
    #[schema(value_type = Option<String>)]
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicyPut {
    /// 1 to 1200 months, or null to turn retention off.
    #[schema(example = 24)]
    pub keep_months: Option<i32>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = retention_policies, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct PolicyRow {
    organisation_id: String,
    keep_months: i32,
    version: i32,
    updated_by: String,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

/// One run of the job for one region: what it deleted, counted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetentionRun {
    pub id: String,
    pub organisation_id: String,
    /// The Swedish day the run belongs to.
    #[schema(value_type = String, format = Date, example = "2028-11-25")]
    pub run_on: NaiveDate,
    #[serde(with = "crate::clock::millis")]
    #[schema(value_type = String)]
    pub ran_at: DateTime<Utc>,
    pub keep_months: i32,
    /// Enrolments deleted.
    pub enrolments: i32,
    /// Rows deleted per kind (`activities`, `assessments`, `talks`,
    /// `summary_assessments`, `attachments`, `final_assessments`, `plan`,
    /// `xapi_statements`, `course_confirmations`, ...), summed over the enrolments.
    #[schema(value_type = Object)]
    pub counts: BTreeMap<String, i64>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = retention_runs, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct RunRow {
    id: String,
    organisation_id: String,
    run_on: String,
    ran_at: chrono::NaiveDateTime,
    keep_months: i32,
    enrolments: i32,
    counts: String,
}

impl RunRow {
    fn into_run(self) -> Result<RetentionRun, AppError> {
        let run_on = Day::parse(&self.run_on).ok_or_else(|| {
            AppError::unreadable("retention_run", &self.id, "run_on", "not a day")
        })?;
        let counts = serde_json::from_str(&self.counts)
            .map_err(|e| AppError::unreadable("retention_run", &self.id, "counts", e))?;
        Ok(RetentionRun {
            id: self.id,
            organisation_id: self.organisation_id,
            run_on: run_on.date(),
            ran_at: from_db(self.ran_at),
            keep_months: self.keep_months,
            enrolments: self.enrolments,
            counts,
        })
    }
}

/// A region the caller administers, or an error: 404 for an unknown organisation or
/// one outside the caller's administration (its settings are not theirs to know), 422
/// for one that is not a region.
pub fn require_region_admin(
    conn: &mut DbConn,
    me: &Principal,
    org_id: &OrganisationId,
) -> Result<(), AppError> {
    me.require_person()?;
    let kind: Option<OrgKind> = organisations::table
        .find(org_id)
        .select(organisations::kind)
        .first(conn)
        .optional()?;
    let Some(kind) = kind else {
        return Err(AppError::NotFound);
    };
    if !me.has_role_over(conn, Role::Administrator, org_id)? {
        return Err(AppError::NotFound);
    }
    if kind != OrgKind::Region {
        return Err(AppError::Unprocessable(
            "retention is set per region; this organisation is not one".into(),
        ));
    }
    Ok(())
}

pub fn get_policy(conn: &mut DbConn, org_id: &OrganisationId) -> Result<RetentionPolicy, AppError> {
    let row: Option<PolicyRow> = retention_policies::table
        .find(org_id)
        .select(PolicyRow::as_select())
        .first(conn)
        .optional()?;
    Ok(match row {
        Some(r) => RetentionPolicy {
            organisation_id: r.organisation_id,
            keep_months: Some(r.keep_months),
            updated_at: Some(from_db(r.updated_at)),
            updated_by: Some(r.updated_by),
        },
        None => RetentionPolicy {
            organisation_id: org_id.to_string(),
            keep_months: None,
            updated_at: None,
            updated_by: None,
        },
    })
}

/// Sets (or, with null, turns off) a region's retention period; audited.
pub fn put_policy(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: Option<&str>,
    org_id: &OrganisationId,
    put: RetentionPolicyPut,
) -> Result<RetentionPolicy, AppError> {
    if let Some(m) = put.keep_months {
        if !(1..=MAX_KEEP_MONTHS).contains(&m) {
            return Err(AppError::validation(
                "keep_months",
                "1 to 1200 months, or null to turn retention off",
            ));
        }
    }
    let before = get_policy(conn, org_id)?.keep_months;
    match put.keep_months {
        None => {
            diesel::delete(retention_policies::table.find(org_id)).execute(conn)?;
        }
        Some(m) if before.is_some() => {
            diesel::update(retention_policies::table.find(org_id))
                .set((
                    retention_policies::keep_months.eq(m),
                    retention_policies::version.eq(retention_policies::version + 1),
                    retention_policies::updated_by.eq(&me.user_id),
                    retention_policies::updated_at.eq(to_db(now)),
                ))
                .execute(conn)?;
        }
        Some(m) => {
            diesel::insert_into(retention_policies::table)
                .values(PolicyRow {
                    organisation_id: org_id.to_string(),
                    keep_months: m,
                    version: 1,
                    updated_by: me.user_id.to_string(),
                    created_at: to_db(now),
                    updated_at: to_db(now),
                })
                .execute(conn)?;
        }
    }
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client,
            action: "updated",
            entity: "retention_policy",
            entity_id: org_id,
            enrolment_id: None,
            data: &json!({"keep_months": put.keep_months, "before": before}),
        },
    )?;
    get_policy(conn, org_id)
}

/// The region's runs, newest first, after the cursor (a `run_on` day).
pub fn list_runs(
    conn: &mut DbConn,
    org_id: &OrganisationId,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<RetentionRun>, AppError> {
    // Days sort as text; a cursor is always a day, and no day sorts after "9".
    let before = before.unwrap_or("9");
    let rows: Vec<RunRow> = retention_runs::table
        .filter(retention_runs::organisation_id.eq(org_id))
        .filter(retention_runs::run_on.lt(before))
        .order(retention_runs::run_on.desc())
        .limit(limit + 1)
        .select(RunRow::as_select())
        .load(conn)?;
    rows.into_iter().map(RunRow::into_run).collect()
}

/// The day an enrolment closed, for retention: the latest of its planned end, its last
/// change and its final assessments' decisions.
fn closing_date(
    conn: &mut DbConn,
    id: &str,
    planned_end: &Day,
    updated_at: chrono::NaiveDateTime,
) -> Result<NaiveDate, AppError> {
    let decided: Vec<Option<chrono::NaiveDateTime>> = final_assessments::table
        .filter(final_assessments::enrolment_id.eq(id))
        .select(final_assessments::decided_at)
        .load(conn)?;
    let mut closed = planned_end
        .date()
        .max(crate::clock::day_of(from_db(updated_at)));
    for d in decided.into_iter().flatten() {
        closed = closed.max(crate::clock::day_of(from_db(d)));
    }
    Ok(closed)
}

/// Is an enrolment closed on `closed` past a period of `keep_months` on `today`? It is
/// kept through the whole last day of the period (closed 2026-03-31, 24 months: kept
/// through 2028-03-31, deleted from 2028-04-01).
pub fn is_past(closed: NaiveDate, keep_months: i32, today: NaiveDate) -> Result<bool, AppError> {
    let until = closed
        .checked_add_months(Months::new(keep_months.unsigned_abs()))
        .ok_or_else(|| AppError::internal("retention date out of range"))?;
    Ok(today > until)
}

/// What one retention round did: the runs it recorded, and the attachment files whose
/// rows it deleted (to remove from the store once the transaction has committed).
#[derive(Debug, Default)]
pub struct Round {
    pub runs: Vec<RetentionRun>,
    pub blobs: Vec<String>,
}

/// The daily job (run by housekeeping): for every region with a policy and no run yet
/// today, deletes the enrolments past their date and records the run. Runs inside one
/// write transaction.
pub fn run_due(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    keys: Option<&crate::secrets::Keyring>,
) -> Result<Round, AppError> {
    let today = crate::clock::day_of(now);
    let policies: Vec<PolicyRow> = retention_policies::table
        .select(PolicyRow::as_select())
        .load(conn)?;
    let mut round = Round::default();
    for p in policies {
        let done: i64 = retention_runs::table
            .filter(retention_runs::organisation_id.eq(&p.organisation_id))
            .filter(retention_runs::run_on.eq(today.to_string()))
            .count()
            .get_result(conn)?;
        if done > 0 {
            continue;
        }
        let orgs = org_subtrees(conn, std::slice::from_ref(&p.organisation_id))?;
        let candidates: Vec<(String, Day, chrono::NaiveDateTime)> = enrolments::table
            .filter(enrolments::organisation_id.eq_any(&orgs))
            .filter(enrolments::status.eq_any(CLOSED))
            .select((
                enrolments::id,
                enrolments::planned_end,
                enrolments::updated_at,
            ))
            .load(conn)?;
        let mut due = Vec::new();
        for (id, planned_end, updated_at) in candidates {
            let closed = closing_date(conn, &id, &planned_end, updated_at)?;
            if is_past(closed, p.keep_months, today)? {
                due.push((id, closed));
            }
        }
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        let mut deleted = 0;
        // An ST enrolment names the BT it builds on: the BT goes only once nothing
        // names it (an ST due the same day goes first, so the BT follows in a later pass).
        loop {
            let mut progressed = false;
            for (id, closed) in &due {
                let exists: i64 = enrolments::table
                    .filter(enrolments::id.eq(id))
                    .count()
                    .get_result(conn)?;
                let named: i64 = enrolments::table
                    .filter(enrolments::bt_enrolment_id.eq(id))
                    .count()
                    .get_result(conn)?;
                if exists == 0 || named > 0 {
                    continue;
                }
                let (c, blobs) = delete_enrolment(conn, id)?;
                // Its audit entries lose their copies of the text; the chain still
                // verifies (their hashes cover a digest of it, see `audit`).
                let emptied = audit::empty(conn, now, keys, audit::Naming::Enrolment(id))?;
                audit::append(
                    conn,
                    now,
                    Event {
                        actor_id: None,
                        client: None,
                        action: "retention_deleted",
                        entity: "enrolment",
                        entity_id: id,
                        enrolment_id: Some(id),
                        data: &json!({
                            "region_id": p.organisation_id,
                            "keep_months": p.keep_months,
                            "closed_on": closed.to_string(),
                            "counts": c,
                            audit::EMPTIED_FIELD: emptied,
                        }),
                    },
                )?;
                for (k, v) in c {
                    *counts.entry(k).or_default() += v;
                }
                round.blobs.extend(blobs);
                deleted += 1;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        let row = RunRow {
            id: uuid::Uuid::new_v4().to_string(),
            organisation_id: p.organisation_id.clone(),
            run_on: today.to_string(),
            ran_at: to_db(now),
            keep_months: p.keep_months,
            enrolments: deleted,
            counts: serde_json::to_string(&counts).map_err(AppError::internal)?,
        };
        diesel::insert_into(retention_runs::table)
            .values(&row)
            .execute(conn)?;
        round.runs.push(row.into_run()?);
    }
    Ok(round)
}

/// Deletes everything of one enrolment (children first, for the foreign keys); returns
/// the rows deleted per kind and the storage keys of its attachments' files.
pub fn delete_enrolment(
    conn: &mut DbConn,
    id: &str,
) -> Result<(BTreeMap<String, i64>, Vec<String>), AppError> {
    let mut c: BTreeMap<String, i64> = BTreeMap::new();
    let mut add = |k: &str, n: usize| {
        *c.entry(k.to_string()).or_default() += n as i64;
    };
    let assessment_ids = assessments::table
        .filter(assessments::enrolment_id.eq(id))
        .select(assessments::id);
    let talk_ids = talks::table
        .filter(talks::enrolment_id.eq(id))
        .select(talks::id);
    let final_ids = final_assessments::table
        .filter(final_assessments::enrolment_id.eq(id))
        .select(final_assessments::id);
    let activity_ids: Vec<String> = activities::table
        .filter(activities::enrolment_id.eq(id))
        .select(activities::id)
        .load(conn)?;
    let blobs: Vec<String> = attachments::table
        .filter(attachments::enrolment_id.eq(id))
        .select(attachments::storage_key)
        .load(conn)?;
    // A course's kursledare request or confirmation (and its links) names a person: it
    // goes with the enrolment, counted like the other records (`course_confirmations`).
    diesel::delete(
        crate::schema::course_confirmation_links::table
            .filter(crate::schema::course_confirmation_links::activity_id.eq_any(&activity_ids)),
    )
    .execute(conn)?;
    add(
        "course_confirmations",
        diesel::delete(
            crate::schema::course_confirmations::table.filter(
                crate::schema::course_confirmations::enrolment_id
                    .eq(id)
                    .or(crate::schema::course_confirmations::activity_id.eq_any(&activity_ids)),
            ),
        )
        .execute(conn)?,
    );
    diesel::delete(
        signing_links::table.filter(signing_links::assessment_id.eq_any(assessment_ids)),
    )
    .execute(conn)?;
    diesel::delete(talk_participants::table.filter(talk_participants::talk_id.eq_any(talk_ids)))
        .execute(conn)?;
    diesel::delete(
        final_assessment_signers::table
            .filter(final_assessment_signers::final_assessment_id.eq_any(final_ids)),
    )
    .execute(conn)?;
    diesel::delete(record_delmal::table.filter(record_delmal::enrolment_id.eq(id)))
        .execute(conn)?;
    add(
        "xapi_statements",
        diesel::delete(
            xapi_statements::table.filter(
                xapi_statements::enrolment_id
                    .eq(id)
                    .or(xapi_statements::activity_id.eq_any(&activity_ids)),
            ),
        )
        .execute(conn)?,
    );
    add(
        "attachments",
        diesel::delete(attachments::table.filter(attachments::enrolment_id.eq(id)))
            .execute(conn)?,
    );
    // Corrections name what they supersede: unlink first, so no row points at one
    // deleted before it.
    diesel::update(assessments::table.filter(assessments::enrolment_id.eq(id)))
        .set((
            assessments::supersedes_id.eq(None::<String>),
            assessments::superseded_by.eq(None::<String>),
        ))
        .execute(conn)?;
    diesel::update(summary_assessments::table.filter(summary_assessments::enrolment_id.eq(id)))
        .set((
            summary_assessments::supersedes_id.eq(None::<String>),
            summary_assessments::superseded_by.eq(None::<String>),
        ))
        .execute(conn)?;
    add(
        "assessments",
        diesel::delete(assessments::table.filter(assessments::enrolment_id.eq(id)))
            .execute(conn)?,
    );
    add(
        "summary_assessments",
        diesel::delete(summary_assessments::table.filter(summary_assessments::enrolment_id.eq(id)))
            .execute(conn)?,
    );
    add(
        "talks",
        diesel::delete(talks::table.filter(talks::enrolment_id.eq(id))).execute(conn)?,
    );
    add(
        "activities",
        diesel::delete(activities::table.filter(activities::enrolment_id.eq(id))).execute(conn)?,
    );
    add(
        "final_assessments",
        diesel::delete(final_assessments::table.filter(final_assessments::enrolment_id.eq(id)))
            .execute(conn)?,
    );
    // The trainee's voice (src/feedback): evaluations name the placement, reviews the
    // enrolment.
    add(
        "placement_evaluations",
        diesel::delete(
            placement_evaluations::table.filter(placement_evaluations::enrolment_id.eq(id)),
        )
        .execute(conn)?,
    );
    // Records imported from another service (src/transfer) keep their content here.
    add(
        "transferred_records",
        diesel::delete(transferred_records::table.filter(transferred_records::enrolment_id.eq(id)))
            .execute(conn)?,
    );
    add(
        "group_reviews",
        diesel::delete(group_reviews::table.filter(group_reviews::enrolment_id.eq(id)))
            .execute(conn)?,
    );
    let plan = [
        diesel::delete(assignments::table.filter(assignments::enrolment_id.eq(id)))
            .execute(conn)?,
        diesel::delete(study_plan_goals::table.filter(study_plan_goals::enrolment_id.eq(id)))
            .execute(conn)?,
        diesel::delete(credited_service::table.filter(credited_service::enrolment_id.eq(id)))
            .execute(conn)?,
        diesel::delete(leave_periods::table.filter(leave_periods::enrolment_id.eq(id)))
            .execute(conn)?,
        diesel::delete(extent_periods::table.filter(extent_periods::enrolment_id.eq(id)))
            .execute(conn)?,
        diesel::delete(external_assessors::table.filter(external_assessors::enrolment_id.eq(id)))
            .execute(conn)?,
        diesel::delete(placements::table.filter(placements::enrolment_id.eq(id))).execute(conn)?,
    ];
    add("plan", plan.iter().sum());
    diesel::delete(domain_events::table.filter(domain_events::enrolment_id.eq(id)))
        .execute(conn)?;
    diesel::delete(
        restrictions::table
            .filter(restrictions::subject_kind.eq(super::restriction::SubjectKind::Enrolment))
            .filter(restrictions::subject_id.eq(id)),
    )
    .execute(conn)?;
    diesel::delete(enrolments::table.find(id)).execute(conn)?;
    Ok((c, blobs))
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
