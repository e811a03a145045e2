//! Placement evaluations: the trainee's answers about a placement they served, and what
//! directors see of them. The answers are the trainee's own: nobody else reads one
//! evaluation (not their supervisors, not the director), and directors see a unit's
//! answers only as averages per closed half-year with at least three of them, so that
//! no single answer can be told apart: no totals across units (a total minus the shown
//! units would give the hidden ones), and no half-year that is still running (watching
//! the averages change would give each new answer).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::form::{self, check_answers, half_year_of};
use crate::audit::{self, Event};
use crate::auth::principal::{org_subtrees, Role};
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::enrolment::access;
use crate::error::AppError;
use crate::ids::{Day, EnrolmentId, OrganisationId, PlacementId, UserId};
use crate::schema::{enrolments, organisations, placement_evaluations, placements};

/// A trainee's evaluation of one placement, as its author reads it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacementEvaluation {
    pub placement_id: String,
    /// The unit evaluated: the placement's unit, else the enrolment's organisation.
    pub unit_id: String,
    /// Question key to answer (see `GET /placement-evaluation-form`).
    #[schema(example = json!({"supervision": 4, "workload": 3, "on_call": 4, "work_environment": 5, "educational_quality": 4}))]
    pub answers: BTreeMap<String, i32>,
    pub comment: Option<String>,
    /// The half-year it counts in (`2026-H2`).
    #[schema(example = "2026-H2")]
    pub half_year: String,
    #[serde(with = "crate::clock::millis")]
    pub submitted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlacementEvaluation {
    /// Every question of the form, answered on its scale.
    #[schema(example = json!({"supervision": 4, "workload": 3, "on_call": 4, "work_environment": 5, "educational_quality": 4}))]
    pub answers: BTreeMap<String, i32>,
    /// Free text for the unit; shown to directors only among at least three answers.
    pub comment: Option<String>,
}

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = placement_evaluations, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct EvaluationRow {
    placement_id: PlacementId,
    enrolment_id: EnrolmentId,
    unit_id: OrganisationId,
    term: String,
    answers: String,
    comment: Option<String>,
    submitted_at: NaiveDateTime,
}

impl EvaluationRow {
    fn into_api(self) -> Result<PlacementEvaluation, AppError> {
        let answers = serde_json::from_str(&self.answers).map_err(|e| {
            AppError::unreadable("placement evaluation", &self.placement_id, "answers", e)
        })?;
        Ok(PlacementEvaluation {
            placement_id: self.placement_id.into_inner(),
            unit_id: self.unit_id.into_inner(),
            answers,
            comment: self.comment,
            half_year: self.term,
            submitted_at: from_db(self.submitted_at),
        })
    }
}

/// The placement, its enrolment's trainee and the unit it evaluates; 404 for a removed
/// or unknown placement and for a caller who may not see its enrolment, 403 for anyone
/// but the trainee who may see it.
struct Evaluated {
    enrolment_id: EnrolmentId,
    unit_id: OrganisationId,
    end_date: NaiveDate,
}

fn evaluated_by_caller(
    conn: &mut DbConn,
    ctx: &Ctx,
    placement_id: &PlacementId,
) -> Result<Evaluated, AppError> {
    let found: Option<(EnrolmentId, Day, Option<OrganisationId>)> = placements::table
        .find(placement_id.as_str())
        .filter(placements::removed_at.is_null())
        .select((
            placements::enrolment_id,
            placements::end_date,
            placements::unit_id,
        ))
        .first(conn)
        .optional()?;
    let Some((enrolment_id, end_date, unit_id)) = found else {
        return Err(AppError::NotFound);
    };
    let (trainee, organisation): (UserId, OrganisationId) = enrolments::table
        .find(enrolment_id.as_str())
        .select((enrolments::trainee_id, enrolments::organisation_id))
        .first(conn)?;
    if ctx.caller.client.is_some() || ctx.caller.user_id != trainee.as_str() {
        // Whether the caller may know the placement decides between 404 and 403.
        let seen = access::access(conn, &ctx.caller, &enrolment_id, ctx.today())?;
        return Err(if seen == access::Access::None {
            AppError::NotFound
        } else {
            AppError::Forbidden("only the trainee reads and gives their own evaluation".into())
        });
    }
    Ok(Evaluated {
        enrolment_id,
        unit_id: unit_id.unwrap_or(organisation),
        end_date: end_date.date(),
    })
}

/// The trainee evaluates a placement that has ended; once (a second evaluation, also
/// one sent at the same moment, is a conflict).
pub fn submit(
    conn: &mut DbConn,
    ctx: &Ctx,
    placement_id: &PlacementId,
    body: NewPlacementEvaluation,
) -> Result<PlacementEvaluation, AppError> {
    let target = evaluated_by_caller(conn, ctx, placement_id)?;
    let today = ctx.today();
    if today < target.end_date {
        return Err(AppError::Conflict(format!(
            "the placement ends on {}: it is evaluated after it has ended",
            target.end_date
        )));
    }
    let form = form::form()?;
    check_answers(&form, &body.answers)?;
    let comment = body
        .comment
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if let Some(c) = &comment {
        if c.chars().count() > form.comment_max_chars {
            return Err(AppError::validation(
                "comment",
                &format!("must be at most {} characters", form.comment_max_chars),
            ));
        }
    }
    let answers = serde_json::to_string(&body.answers)
        .map_err(|e| AppError::Internal(format!("answers: {e}")))?;
    let row = EvaluationRow {
        placement_id: placement_id.clone(),
        enrolment_id: target.enrolment_id.clone(),
        unit_id: target.unit_id,
        term: half_year_of(today),
        answers,
        comment,
        submitted_at: to_db(ctx.now),
    };
    diesel::insert_into(placement_evaluations::table)
        .values(&row)
        .execute(conn)?;
    // That the trainee evaluated, never what they answered: the audit log is read by
    // administrators.
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&ctx.caller.user_id),
            client: ctx.client.user_agent.as_deref(),
            action: "evaluated",
            entity: "placement",
            entity_id: placement_id.as_str(),
            enrolment_id: Some(target.enrolment_id.as_str()),
            data: &json!({}),
        },
    )?;
    row.into_api()
}

/// The trainee's own evaluation of the placement.
pub fn get_own(
    conn: &mut DbConn,
    ctx: &Ctx,
    placement_id: &PlacementId,
) -> Result<PlacementEvaluation, AppError> {
    evaluated_by_caller(conn, ctx, placement_id)?;
    let row: Option<EvaluationRow> = placement_evaluations::table
        .find(placement_id.as_str())
        .select(EvaluationRow::as_select())
        .first(conn)
        .optional()?;
    row.ok_or(AppError::NotFound)?.into_api()
}

/// What directors see of one unit in one half-year.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnitEvaluationSummary {
    pub unit_id: String,
    pub unit_name: String,
    /// True when the unit has answers in the half-year but fewer than the form's
    /// minimum group size: nothing else about them is shown.
    pub suppressed: bool,
    /// How many evaluations; null when suppressed.
    pub responses: Option<usize>,
    /// Question key to the mean answer (two decimals); empty when suppressed.
    pub means: BTreeMap<String, f64>,
    /// The comments, in alphabetical order (not in the order given); empty when
    /// suppressed.
    pub comments: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EvaluationSummary {
    pub organisation_id: String,
    #[schema(example = "2026-H2")]
    pub half_year: String,
    pub minimum_group_size: usize,
    /// Units of the organisation's subtree with answers in the half-year, by name.
    pub units: Vec<UnitEvaluationSummary>,
}

/// The evaluations of the units under an organisation in a closed half-year, for its
/// administrators and directors of studies.
pub fn summary(
    conn: &mut DbConn,
    ctx: &Ctx,
    organisation_id: &OrganisationId,
    half_year: &str,
) -> Result<EvaluationSummary, AppError> {
    let exists: Option<String> = organisations::table
        .find(organisation_id.as_str())
        .select(organisations::id)
        .first(conn)
        .optional()?;
    if exists.is_none() {
        return Err(AppError::NotFound);
    }
    let may = ctx.caller.client.is_none()
        && (ctx
            .caller
            .has_role_over(conn, Role::Administrator, organisation_id)?
            || ctx
                .caller
                .has_role_over(conn, Role::DirectorOfStudies, organisation_id)?);
    if !may {
        return Err(AppError::Forbidden(
            "placement evaluations are read by the organisation's administrators and directors of studies".into(),
        ));
    }
    let Some(last_day) = form::last_day_of(half_year) else {
        return Err(AppError::validation(
            "half_year",
            "must be a half-year such as 2026-H1 (January to June) or 2026-H2",
        ));
    };
    if ctx.today() <= last_day {
        return Err(AppError::Conflict(format!(
            "{half_year} has not ended: its evaluations are shown from {}",
            last_day + chrono::Duration::days(1)
        )));
    }
    let form = form::form()?;
    let units = org_subtrees(conn, &[organisation_id.to_string()])?;
    let rows: Vec<EvaluationRow> = placement_evaluations::table
        .filter(placement_evaluations::unit_id.eq_any(&units))
        .filter(placement_evaluations::term.eq(half_year))
        .select(EvaluationRow::as_select())
        .load(conn)?;
    let mut by_unit: BTreeMap<String, Vec<PlacementEvaluation>> = BTreeMap::new();
    for row in rows {
        let e = row.into_api()?;
        by_unit.entry(e.unit_id.clone()).or_default().push(e);
    }
    let ids: Vec<&String> = by_unit.keys().collect();
    let names: HashMap<String, String> = organisations::table
        .filter(organisations::id.eq_any(ids))
        .select((organisations::id, organisations::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let mut summaries: Vec<UnitEvaluationSummary> = by_unit
        .into_iter()
        .map(|(unit_id, answers)| {
            let unit_name = names.get(&unit_id).cloned().unwrap_or_default();
            aggregate(&form, unit_id, unit_name, &answers)
        })
        .collect();
    summaries.sort_by(|a, b| (&a.unit_name, &a.unit_id).cmp(&(&b.unit_name, &b.unit_id)));
    Ok(EvaluationSummary {
        organisation_id: organisation_id.to_string(),
        half_year: half_year.to_string(),
        minimum_group_size: form.minimum_group_size,
        units: summaries,
    })
}

/// One unit's answers made into what a director may see.
pub fn aggregate(
    form: &form::EvaluationForm,
    unit_id: String,
    unit_name: String,
    answers: &[PlacementEvaluation],
) -> UnitEvaluationSummary {
    if answers.len() < form.minimum_group_size {
        return UnitEvaluationSummary {
            unit_id,
            unit_name,
            suppressed: true,
            responses: None,
            means: BTreeMap::new(),
            comments: Vec::new(),
        };
    }
    let means = form
        .questions
        .iter()
        .filter_map(|q| {
            // Over the answers that have the question: every one has today, since the
            // form is checked on submission; a question added later starts empty.
            let given: Vec<f64> = answers
                .iter()
                .filter_map(|a| a.answers.get(&q.key).map(|v| f64::from(*v)))
                .collect();
            if given.is_empty() {
                return None;
            }
            let mean = given.iter().sum::<f64>() / given.len() as f64;
            Some((q.key.clone(), (mean * 100.0).round() / 100.0))
        })
        .collect();
    let mut comments: Vec<String> = answers.iter().filter_map(|a| a.comment.clone()).collect();
    comments.sort();
    UnitEvaluationSummary {
        unit_id,
        unit_name,
        suppressed: false,
        responses: Some(answers.len()),
        means,
        comments,
    }
}

/// Every evaluation of an enrolment's placements, for the trainee's own export (the
/// caller has been checked to be the enrolment's trainee).
pub fn of_enrolment(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<PlacementEvaluation>, AppError> {
    let rows: Vec<EvaluationRow> = placement_evaluations::table
        .filter(placement_evaluations::enrolment_id.eq(enrolment_id))
        .order(placement_evaluations::submitted_at)
        .select(EvaluationRow::as_select())
        .load(conn)?;
    rows.into_iter().map(EvaluationRow::into_api).collect()
}
