//! Enrolment: a trainee's training plan on a template version, with placements, leave,
//! assignments, credited service, an individual study plan and a history of changes.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::principal::{load_roles, Principal, Role};
use crate::clock::{from_db, to_db};
use crate::curriculum::{catalogue, templates};
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::enrolment::time::{self, Plan, TimeServed};
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::schema::{
    assignments, audit_log, credited_service, enrolments, leave_periods, placements,
    study_plan_goals, users,
};

/// The kind of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    /// Standalone BT (bastjänstgöring), HSLF-FS 2021:8.
    BtStandalone,
    /// ST with integrated BT, HSLF-FS 2021:8.
    StIntegratedBt,
    /// ST 2021 after a completed BT.
    St2021,
    /// ST under SOSFS 2015:8.
    St2015,
    /// AT (allmäntjänstgöring).
    At,
}

impl Track {
    fn as_str(self) -> &'static str {
        match self {
            Track::BtStandalone => "bt_standalone",
            Track::StIntegratedBt => "st_integrated_bt",
            Track::St2021 => "st_2021",
            Track::St2015 => "st_2015",
            Track::At => "at",
        }
    }
    fn parse(s: &str) -> Track {
        match s {
            "st_integrated_bt" => Track::StIntegratedBt,
            "st_2021" => Track::St2021,
            "st_2015" => Track::St2015,
            "at" => Track::At,
            _ => Track::BtStandalone,
        }
    }
}

/// A role someone holds on one trainee's training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentRole {
    /// Huvudhandledare: for the whole programme.
    MainSupervisor,
    /// Tjänstgöringshandledare: for one placement.
    PlacementSupervisor,
    /// Studierektor following this trainee.
    DirectorOfStudies,
    /// Extern bedömare for the final assessment.
    ExternalAssessor,
}

impl AssignmentRole {
    fn as_str(self) -> &'static str {
        match self {
            AssignmentRole::MainSupervisor => access::MAIN_SUPERVISOR,
            AssignmentRole::PlacementSupervisor => access::PLACEMENT_SUPERVISOR,
            AssignmentRole::DirectorOfStudies => access::DIRECTOR,
            AssignmentRole::ExternalAssessor => access::EXTERNAL_ASSESSOR,
        }
    }
    fn parse(s: &str) -> AssignmentRole {
        match s {
            access::PLACEMENT_SUPERVISOR => AssignmentRole::PlacementSupervisor,
            access::DIRECTOR => AssignmentRole::DirectorOfStudies,
            access::EXTERNAL_ASSESSOR => AssignmentRole::ExternalAssessor,
            _ => AssignmentRole::MainSupervisor,
        }
    }
    /// The account role the assignee must hold.
    fn account_role(self) -> Role {
        match self {
            AssignmentRole::MainSupervisor | AssignmentRole::PlacementSupervisor => {
                Role::Supervisor
            }
            AssignmentRole::DirectorOfStudies => Role::DirectorOfStudies,
            AssignmentRole::ExternalAssessor => Role::ExternalAssessor,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Placement {
    pub id: String,
    /// Key of a placement type of the template, e.g. `allmanmedicin`.
    #[schema(example = "allmanmedicin")]
    pub placement_type: String,
    #[schema(example = "2026-09-01")]
    pub start_date: NaiveDate,
    /// Inclusive.
    #[schema(example = "2026-12-31")]
    pub end_date: NaiveDate,
    /// Care provider or unit where it is served.
    pub unit_id: Option<String>,
    /// The placement supervisor assigned today, if any.
    pub supervisor_id: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeavePeriod {
    pub id: String,
    /// e.g. `parental`, `sick`, `other`.
    #[schema(example = "parental")]
    pub kind: String,
    #[schema(example = "2027-02-01")]
    pub start_date: NaiveDate,
    /// Inclusive.
    #[schema(example = "2027-02-28")]
    pub end_date: NaiveDate,
    /// Share of time on leave: 100 for full leave, 50 for half.
    #[schema(example = 100)]
    pub percent: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Assignment {
    pub id: String,
    pub user_id: String,
    pub role: AssignmentRole,
    pub placement_id: Option<String>,
    #[schema(example = "2026-09-01")]
    pub valid_from: NaiveDate,
    /// Exclusive: the first day the assignment no longer holds. Null while open.
    #[schema(example = "2027-09-01")]
    pub valid_to: Option<NaiveDate>,
    /// Holds today.
    pub active: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Clinical service before licence credited towards the programme.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreditedService {
    pub id: String,
    #[schema(example = "AT, medicinkliniken, Danderyds sjukhus")]
    pub description: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    #[schema(example = 90)]
    pub credited_days: i32,
    /// What proves it, e.g. the certificate from the AT placement.
    #[schema(example = "Tjänstgöringsintyg 2024-12-02")]
    pub evidence: String,
    /// Delmål this service supports.
    #[schema(example = json!(["BT1", "BT15"]))]
    pub delmal: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A deviation of the plan from the regulation's structural rules or from itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanWarning {
    /// e.g. `minimum_months_in`, `minimum_months`, `overlapping_placements`,
    /// `placement_outside_enrolment`, `unknown_placement_type`.
    #[schema(example = "minimum_months_in")]
    pub code: String,
    #[schema(
        example = "HSLF-FS 2021:8 requires at least 3 months in primärvård; the plan has 3.0"
    )]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Enrolment {
    pub id: String,
    pub trainee_id: String,
    pub organisation_id: String,
    pub template_id: String,
    #[schema(example = 1)]
    pub template_version: i32,
    pub track: Track,
    #[schema(example = "2026-09-01")]
    pub start_date: NaiveDate,
    #[schema(example = "2027-08-31")]
    pub planned_end: NaiveDate,
    /// Employment extent in per cent of full time.
    #[schema(example = 75)]
    pub extent_percent: i32,
    /// `active`, `completed` or `withdrawn`.
    #[schema(example = "active")]
    pub status: String,
    pub placements: Vec<Placement>,
    pub leave_periods: Vec<LeavePeriod>,
    /// Current and past assignments.
    pub assignments: Vec<Assignment>,
    pub credited_service: Vec<CreditedService>,
    /// As of today.
    pub time_served: TimeServed,
    pub warnings: Vec<PlanWarning>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Enrolment {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

pub fn parse_date(field: &str, s: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| AppError::validation(field, "a date YYYY-MM-DD"))
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

/// Appends to the enrolment's history.
/// What changed: action (`created`, `updated`, ...), entity kind and entity id.
pub struct Changed<'a>(pub &'a str, pub &'a str, pub &'a str);

/// Records a change to the plan in the audit log, which is also the enrolment's history
/// and the changes feed phones sync from.
pub fn record_change(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: Option<&str>,
    enrolment_id: &str,
    Changed(action, entity, entity_id): Changed,
    data: serde_json::Value,
) -> Result<(), AppError> {
    crate::audit::append(
        conn,
        now,
        crate::audit::Event {
            actor_id: actor,
            client: None,
            action,
            entity,
            entity_id,
            enrolment_id: Some(enrolment_id),
            data: &data,
        },
    )
}

/// One entry of an enrolment's history: a change to the plan or to any record of the
/// trainee (activities, assessments, talks, summaries), deletions included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Change {
    #[schema(example = 4)]
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    /// `created`, `updated`, `removed`, `ended`, `migrated`, `deleted`, `signed`,
    /// `declined`, `requested`, `confirmed`, `correction_created`.
    #[schema(example = "updated")]
    pub action: String,
    /// `enrolment`, `placement`, `leave_period`, `assignment`, `credited_service`,
    /// `study_plan_goal`, `activity`, `attachment`, `assessment`, `supervision_session`,
    /// `handover_talk`, `summary_assessment`.
    #[schema(example = "placement")]
    pub entity: String,
    pub entity_id: String,
    /// The entity as it was after the change (before it, for removals).
    #[schema(example = json!({"end_date": "2026-09-30", "previous": {"end_date": "2026-09-04"}}))]
    pub data: serde_json::Value,
}

pub fn changes(
    conn: &mut DbConn,
    enrolment_id: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Change>, AppError> {
    type Row = (
        i64,
        chrono::NaiveDateTime,
        Option<String>,
        String,
        String,
        String,
        String,
    );
    let rows: Vec<Row> = audit_log::table
        .filter(audit_log::enrolment_id.eq(enrolment_id))
        .filter(audit_log::seq.gt(after.unwrap_or(0)))
        .order(audit_log::seq)
        .limit(limit + 1)
        .select((
            audit_log::seq,
            audit_log::at,
            audit_log::actor_id,
            audit_log::action,
            audit_log::entity,
            audit_log::entity_id,
            audit_log::data,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Change {
            seq: r.0,
            at: from_db(r.1),
            actor_id: r.2,
            action: r.3,
            entity: r.4,
            entity_id: r.5,
            data: serde_json::from_str(&r.6).unwrap_or(serde_json::Value::Null),
        })
        .collect())
}

// ---- Reading ------------------------------------------------------------------------

type EnrolmentRow = (
    String,
    String,
    String,
    String,
    i32,
    String,
    String,
    String,
    i32,
    String,
    i32,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
);

fn load_placements(
    conn: &mut DbConn,
    enrolment_id: &str,
    today: NaiveDate,
) -> Result<Vec<Placement>, AppError> {
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        i32,
        chrono::NaiveDateTime,
        chrono::NaiveDateTime,
    );
    let rows: Vec<Row> = placements::table
        .filter(placements::enrolment_id.eq(enrolment_id))
        .filter(placements::removed_at.is_null())
        .order((placements::start_date, placements::id))
        .select((
            placements::id,
            placements::placement_type,
            placements::start_date,
            placements::end_date,
            placements::unit_id,
            placements::version,
            placements::created_at,
            placements::updated_at,
        ))
        .load(conn)?;
    let today = today.to_string();
    let supervisors: Vec<(Option<String>, String)> = assignments::table
        .filter(assignments::enrolment_id.eq(enrolment_id))
        .filter(assignments::role.eq(access::PLACEMENT_SUPERVISOR))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(&today)),
        )
        .order(assignments::valid_from)
        .select((assignments::placement_id, assignments::user_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Placement {
            supervisor_id: supervisors
                .iter()
                .find(|(p, _)| p.as_deref() == Some(r.0.as_str()))
                .map(|(_, u)| u.clone()),
            id: r.0,
            placement_type: r.1,
            start_date: date(&r.2),
            end_date: date(&r.3),
            unit_id: r.4,
            version: r.5,
            created_at: from_db(r.6),
            updated_at: from_db(r.7),
        })
        .collect())
}

fn load_leave(conn: &mut DbConn, enrolment_id: &str) -> Result<Vec<LeavePeriod>, AppError> {
    type Row = (String, String, String, String, i32, chrono::NaiveDateTime);
    let rows: Vec<Row> = leave_periods::table
        .filter(leave_periods::enrolment_id.eq(enrolment_id))
        .filter(leave_periods::removed_at.is_null())
        .order(leave_periods::start_date)
        .select((
            leave_periods::id,
            leave_periods::kind,
            leave_periods::start_date,
            leave_periods::end_date,
            leave_periods::percent,
            leave_periods::created_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| LeavePeriod {
            id: r.0,
            kind: r.1,
            start_date: date(&r.2),
            end_date: date(&r.3),
            percent: r.4,
            created_at: from_db(r.5),
        })
        .collect())
}

type AssignmentRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
);

fn assignment_from(r: AssignmentRow, today: NaiveDate) -> Assignment {
    let valid_from = date(&r.4);
    let valid_to = r.5.as_deref().map(date);
    let changed = r.7 != r.6;
    Assignment {
        active: valid_from <= today && valid_to.is_none_or(|t| t > today),
        id: r.0,
        user_id: r.1,
        role: AssignmentRole::parse(&r.2),
        placement_id: r.3,
        valid_from,
        valid_to,
        version: if changed { 2 } else { 1 },
        created_at: from_db(r.6),
        updated_at: from_db(r.7),
    }
}

const ASSIGNMENT_COLUMNS: (
    assignments::id,
    assignments::user_id,
    assignments::role,
    assignments::placement_id,
    assignments::valid_from,
    assignments::valid_to,
    assignments::created_at,
    assignments::updated_at,
) = (
    assignments::id,
    assignments::user_id,
    assignments::role,
    assignments::placement_id,
    assignments::valid_from,
    assignments::valid_to,
    assignments::created_at,
    assignments::updated_at,
);

fn load_assignments(
    conn: &mut DbConn,
    enrolment_id: &str,
    today: NaiveDate,
) -> Result<Vec<Assignment>, AppError> {
    let rows: Vec<AssignmentRow> = assignments::table
        .filter(assignments::enrolment_id.eq(enrolment_id))
        .order((assignments::valid_from, assignments::created_at))
        .select(ASSIGNMENT_COLUMNS)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| assignment_from(r, today))
        .collect())
}

fn load_credited(conn: &mut DbConn, enrolment_id: &str) -> Result<Vec<CreditedService>, AppError> {
    type Row = (
        String,
        String,
        String,
        String,
        i32,
        String,
        String,
        chrono::NaiveDateTime,
    );
    let rows: Vec<Row> = credited_service::table
        .filter(credited_service::enrolment_id.eq(enrolment_id))
        .order(credited_service::start_date)
        .select((
            credited_service::id,
            credited_service::description,
            credited_service::start_date,
            credited_service::end_date,
            credited_service::credited_days,
            credited_service::evidence,
            credited_service::delmal,
            credited_service::created_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| CreditedService {
            id: r.0,
            description: r.1,
            start_date: date(&r.2),
            end_date: date(&r.3),
            credited_days: r.4,
            evidence: r.5,
            delmal: serde_json::from_str(&r.6).unwrap_or_default(),
            created_at: from_db(r.7),
        })
        .collect())
}

fn plan_of(e: &Enrolment, nominal_months: i32) -> Plan {
    Plan {
        start: e.start_date,
        extent_percent: e.extent_percent,
        placements: e
            .placements
            .iter()
            .map(|p| (p.start_date, p.end_date))
            .collect(),
        leave: e
            .leave_periods
            .iter()
            .map(|l| (l.start_date, l.end_date, l.percent))
            .collect(),
        credited_days: e.credited_service.iter().map(|c| c.credited_days).sum(),
        nominal_months,
    }
}

/// Checks the plan against the template and the regulation's structural rules.
fn warnings(
    conn: &mut DbConn,
    e: &Enrolment,
    template: &templates::ProgrammeTemplate,
) -> Result<Vec<PlanWarning>, AppError> {
    let mut out = Vec::new();
    let warn = |out: &mut Vec<PlanWarning>, code: &str, message: String| {
        out.push(PlanWarning {
            code: code.into(),
            message,
        })
    };
    for p in &e.placements {
        if template.placement_type(&p.placement_type).is_none() {
            warn(
                &mut out,
                "unknown_placement_type",
                format!(
                    "placement {} has type {:?}, which template version {} does not have",
                    p.id, p.placement_type, template.version
                ),
            );
        }
        if p.start_date < e.start_date || p.end_date > e.planned_end {
            warn(
                &mut out,
                "placement_outside_enrolment",
                format!(
                    "placement {} ({} to {}) lies outside the enrolment ({} to {})",
                    p.id, p.start_date, p.end_date, e.start_date, e.planned_end
                ),
            );
        }
    }
    for (i, a) in e.placements.iter().enumerate() {
        for b in &e.placements[i + 1..] {
            if a.start_date <= b.end_date && b.start_date <= a.end_date {
                warn(
                    &mut out,
                    "overlapping_placements",
                    format!("placements {} and {} overlap", a.id, b.id),
                );
            }
        }
    }
    let regulation = catalogue::get_regulation(conn, &template.regulation_id)?;
    let credited_months = e
        .credited_service
        .iter()
        .map(|c| c.credited_days)
        .sum::<i32>() as f64
        / time::DAYS_PER_MONTH;
    // Both spellings of per-category minimums in the catalogue (BT and AT).
    for key in ["minimum_months_in", "placements_minimum_months"] {
        if let Some(rules) = regulation.rules.get(key).and_then(|v| v.as_object()) {
            for (category, min) in rules {
                let Some(min) = min.as_f64() else { continue };
                let periods: Vec<(NaiveDate, NaiveDate)> = e
                    .placements
                    .iter()
                    .filter(|p| {
                        template.placement_type(&p.placement_type).is_some_and(|t| {
                            t.counts_as.iter().any(|c| c.eq_ignore_ascii_case(category))
                        })
                    })
                    .map(|p| (p.start_date, p.end_date))
                    .collect();
                let planned = time::planned_months(&periods, e.extent_percent);
                if planned + 1e-9 < min {
                    warn(&mut out, "minimum_months_in", format!("{} requires at least {min} months in {category}; the plan has {planned:.1}", regulation.statute));
                }
            }
        }
    }
    if let Some(min) = regulation
        .rules
        .get("minimum_months")
        .and_then(|v| v.as_f64())
    {
        let all: Vec<(NaiveDate, NaiveDate)> = e
            .placements
            .iter()
            .map(|p| (p.start_date, p.end_date))
            .collect();
        let planned = time::planned_months(&all, e.extent_percent) + credited_months;
        if planned + 1e-9 < min {
            warn(
                &mut out,
                "minimum_months",
                format!(
                    "{} requires at least {min} months in all; the plan has {:.1}",
                    regulation.statute, planned
                ),
            );
        }
    }
    Ok(out)
}

pub fn get_enrolment(conn: &mut DbConn, id: &str, today: NaiveDate) -> Result<Enrolment, AppError> {
    Ok(load_enrolment(conn, id, today)?.0)
}

/// The enrolment with the template version it follows.
fn load_enrolment(
    conn: &mut DbConn,
    id: &str,
    today: NaiveDate,
) -> Result<(Enrolment, templates::ProgrammeTemplate), AppError> {
    let r: EnrolmentRow = enrolments::table
        .find(id)
        .select((
            enrolments::id,
            enrolments::trainee_id,
            enrolments::organisation_id,
            enrolments::template_id,
            enrolments::template_version,
            enrolments::track,
            enrolments::start_date,
            enrolments::planned_end,
            enrolments::extent_percent,
            enrolments::status,
            enrolments::version,
            enrolments::created_at,
            enrolments::updated_at,
        ))
        .first(conn)?;
    let template = templates::get_template(conn, &r.3, Some(r.4))?;
    let mut e = Enrolment {
        placements: load_placements(conn, &r.0, today)?,
        leave_periods: load_leave(conn, &r.0)?,
        assignments: load_assignments(conn, &r.0, today)?,
        credited_service: load_credited(conn, &r.0)?,
        time_served: Plan {
            start: today,
            extent_percent: 0,
            placements: vec![],
            leave: vec![],
            credited_days: 0,
            nominal_months: 0,
        }
        .time_served(today),
        warnings: Vec::new(),
        id: r.0,
        trainee_id: r.1,
        organisation_id: r.2,
        template_id: r.3,
        template_version: r.4,
        track: Track::parse(&r.5),
        start_date: date(&r.6),
        planned_end: date(&r.7),
        extent_percent: r.8,
        status: r.9,
        version: r.10,
        created_at: from_db(r.11),
        updated_at: from_db(r.12),
    };
    e.time_served = plan_of(&e, template.content.duration_months).time_served(today);
    e.warnings = warnings(conn, &e, &template)?;
    Ok((e, template))
}

/// The template version an enrolment follows.
fn template_of(
    conn: &mut DbConn,
    enrolment_id: &str,
) -> Result<templates::ProgrammeTemplate, AppError> {
    let (template_id, version): (String, i32) = enrolments::table
        .find(enrolment_id)
        .select((enrolments::template_id, enrolments::template_version))
        .first(conn)?;
    templates::get_template(conn, &template_id, Some(version))
}

/// Delmål codes the trainee's records may link to: the template version's regulation,
/// with its specialty's delmål.
pub fn delmal_codes_of(conn: &mut DbConn, enrolment_id: &str) -> Result<Vec<String>, AppError> {
    let template = template_of(conn, enrolment_id)?;
    catalogue::delmal_codes(
        conn,
        &template.regulation_id,
        template.content.specialty.as_deref(),
    )
}

pub fn time_served(
    conn: &mut DbConn,
    id: &str,
    today: NaiveDate,
    as_of: NaiveDate,
) -> Result<TimeServed, AppError> {
    let (e, template) = load_enrolment(conn, id, today)?;
    Ok(plan_of(&e, template.content.duration_months).time_served(as_of))
}

// ---- Changing -----------------------------------------------------------------------

/// Bumps the enrolment's version: any change to the plan changes its ETag.
fn touch(conn: &mut DbConn, now: DateTime<Utc>, id: &str) -> Result<(), AppError> {
    diesel::update(enrolments::table.find(id))
        .set((
            enrolments::version.eq(enrolments::version + 1),
            enrolments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

fn user_has_role(conn: &mut DbConn, user_id: &str, role: Role) -> Result<bool, AppError> {
    let exists: i64 = users::table.find(user_id).count().get_result(conn)?;
    if exists == 0 {
        return Ok(false);
    }
    Ok(load_roles(conn, user_id)?.iter().any(|g| g.role == role))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementInput {
    pub id: Option<uuid::Uuid>,
    #[schema(example = "akut")]
    pub placement_type: String,
    #[schema(example = "2027-01-01")]
    pub start_date: NaiveDate,
    #[schema(example = "2027-04-30")]
    pub end_date: NaiveDate,
    pub unit_id: Option<String>,
    /// The placement supervisor (tjänstgöringshandledare), assigned for the placement's dates.
    pub supervisor_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveInput {
    pub id: Option<uuid::Uuid>,
    /// e.g. `parental`, `sick`, `other`.
    #[schema(example = "sick")]
    pub kind: String,
    #[schema(example = "2027-03-01")]
    pub start_date: NaiveDate,
    #[schema(example = "2027-03-14")]
    pub end_date: NaiveDate,
    /// Share of time on leave, 1 to 100 (default 100).
    #[schema(example = 50)]
    pub percent: Option<i32>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrolment {
    pub id: Option<uuid::Uuid>,
    pub trainee_id: String,
    pub template_id: String,
    /// Default: the template's latest version.
    pub template_version: Option<i32>,
    pub track: Track,
    pub start_date: NaiveDate,
    pub planned_end: NaiveDate,
    /// Employment extent in per cent, 10 to 100 (default 100).
    pub extent_percent: Option<i32>,
    pub main_supervisor_id: Option<String>,
    #[serde(default)]
    pub placements: Vec<PlacementInput>,
    #[serde(default)]
    pub leave_periods: Vec<LeaveInput>,
}

fn check_extent(extent: i32, errors: &mut Vec<FieldError>) {
    if !(10..=100).contains(&extent) {
        errors.push(FieldError::new("extent_percent", "between 10 and 100"));
    }
}

pub fn create_enrolment(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    input: NewEnrolment,
) -> Result<Enrolment, AppError> {
    let today = now.date_naive();
    let template = templates::get_template(conn, &input.template_id, input.template_version)
        .map_err(|_| AppError::validation("template_id", "no such template (version)"))?;
    Principal::require(templates::may_edit(conn, me, &template.organisation_id)?)?;
    let mut errors = Vec::new();
    if !user_has_role(conn, &input.trainee_id, Role::Trainee)? {
        errors.push(FieldError::new(
            "trainee_id",
            "not a user with the trainee role",
        ));
    }
    let extent = input.extent_percent.unwrap_or(100);
    check_extent(extent, &mut errors);
    if input.planned_end <= input.start_date {
        errors.push(FieldError::new("planned_end", "must be after start_date"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id = input
        .id
        .map(|u| u.to_string())
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(enrolments::table)
        .values((
            enrolments::id.eq(&id),
            enrolments::trainee_id.eq(&input.trainee_id),
            enrolments::organisation_id.eq(&template.organisation_id),
            enrolments::template_id.eq(&template.id),
            enrolments::template_version.eq(template.version),
            enrolments::track.eq(input.track.as_str()),
            enrolments::start_date.eq(input.start_date.to_string()),
            enrolments::planned_end.eq(input.planned_end.to_string()),
            enrolments::extent_percent.eq(extent),
            enrolments::status.eq("active"),
            enrolments::version.eq(1),
            enrolments::created_at.eq(to_db(now)),
            enrolments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &id,
        Changed("created", "enrolment", &id),
        json!({
            "trainee_id": input.trainee_id, "template_id": template.id, "template_version": template.version,
            "track": input.track, "start_date": input.start_date, "planned_end": input.planned_end, "extent_percent": extent,
        }),
    )?;
    if let Some(main) = &input.main_supervisor_id {
        add_assignment(
            conn,
            now,
            me,
            &id,
            AssignmentInput {
                id: None,
                user_id: main.clone(),
                role: AssignmentRole::MainSupervisor,
                placement_id: None,
                valid_from: Some(input.start_date.min(today)),
                valid_to: None,
            },
        )
        .map_err(|e| rename_field(e, "main_supervisor_id"))?;
    }
    for (i, p) in input.placements.into_iter().enumerate() {
        add_placement(conn, now, me, &id, p)
            .map_err(|e| prefix_fields(e, &format!("placements[{i}]")))?;
    }
    for (i, l) in input.leave_periods.into_iter().enumerate() {
        add_leave(conn, now, me, &id, l)
            .map_err(|e| prefix_fields(e, &format!("leave_periods[{i}]")))?;
    }
    // The nested creations bumped the version; a new enrolment starts at 1.
    diesel::update(enrolments::table.find(&id))
        .set((
            enrolments::version.eq(1),
            enrolments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    get_enrolment(conn, &id, today)
}

fn prefix_fields(e: AppError, prefix: &str) -> AppError {
    match e {
        AppError::Validation(errors) => AppError::Validation(
            errors
                .into_iter()
                .map(|f| FieldError::new(format!("{prefix}.{}", f.field), f.message))
                .collect(),
        ),
        other => other,
    }
}

fn rename_field(e: AppError, field: &str) -> AppError {
    match e {
        AppError::Validation(errors) => AppError::Validation(
            errors
                .into_iter()
                .map(|f| FieldError::new(field, f.message))
                .collect(),
        ),
        other => other,
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentPatch {
    pub planned_end: Option<NaiveDate>,
    pub extent_percent: Option<i32>,
    /// `active`, `completed` or `withdrawn`.
    pub status: Option<String>,
}

pub fn update_enrolment(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    patch: EnrolmentPatch,
) -> Result<Enrolment, AppError> {
    let today = now.date_naive();
    access::require(conn, me, id, today, Access::Manage)?;
    let current = get_enrolment(conn, id, today)?;
    if_match(&current.etag())?;
    let mut errors = Vec::new();
    let extent = patch.extent_percent.unwrap_or(current.extent_percent);
    check_extent(extent, &mut errors);
    let planned_end = patch.planned_end.unwrap_or(current.planned_end);
    if planned_end <= current.start_date {
        errors.push(FieldError::new(
            "planned_end",
            "must be after the start date",
        ));
    }
    let status = patch.status.unwrap_or(current.status.clone());
    if !["active", "completed", "withdrawn"].contains(&status.as_str()) {
        errors.push(FieldError::new("status", "active, completed or withdrawn"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    diesel::update(enrolments::table.find(id))
        .set((
            enrolments::planned_end.eq(planned_end.to_string()),
            enrolments::extent_percent.eq(extent),
            enrolments::status.eq(&status),
        ))
        .execute(conn)?;
    touch(conn, now, id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        id,
        Changed("updated", "enrolment", id),
        json!({
            "planned_end": planned_end, "extent_percent": extent, "status": status,
        }),
    )?;
    get_enrolment(conn, id, today)
}

/// Moves a trainee to another version of their template. Administrators only: the
/// trainee's records keep the version they were made under.
pub fn migrate_template(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    version: i32,
) -> Result<Enrolment, AppError> {
    let today = now.date_naive();
    access::require(conn, me, id, today, Access::Read)?;
    let current = get_enrolment(conn, id, today)?;
    Principal::require(me.has_role_over(conn, Role::Administrator, &current.organisation_id)?)?;
    let target =
        templates::get_template(conn, &current.template_id, Some(version)).map_err(|_| {
            AppError::validation("template_version", "no such version of this template")
        })?;
    diesel::update(enrolments::table.find(id))
        .set(enrolments::template_version.eq(target.version))
        .execute(conn)?;
    touch(conn, now, id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        id,
        Changed("migrated", "enrolment", id),
        json!({
            "from_version": current.template_version, "to_version": target.version,
        }),
    )?;
    get_enrolment(conn, id, today)
}

pub fn add_placement(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &str,
    p: PlacementInput,
) -> Result<Placement, AppError> {
    let today = now.date_naive();
    access::require(conn, me, enrolment_id, today, Access::Manage)?;
    let template = template_of(conn, enrolment_id)?;
    let mut errors = Vec::new();
    if template.placement_type(&p.placement_type).is_none() {
        let keys: Vec<&str> = template
            .content
            .placement_types
            .iter()
            .map(|t| t.key.as_str())
            .collect();
        errors.push(FieldError::new(
            "placement_type",
            format!("one of the template's types: {}", keys.join(", ")),
        ));
    }
    if p.end_date < p.start_date {
        errors.push(FieldError::new("end_date", "must not be before start_date"));
    }
    if let Some(unit) = &p.unit_id {
        if crate::accounts::service::get_org(conn, unit).is_err() {
            errors.push(FieldError::new("unit_id", "no such organisation"));
        }
    }
    if let Some(s) = &p.supervisor_id {
        if !user_has_role(conn, s, Role::Supervisor)? {
            errors.push(FieldError::new(
                "supervisor_id",
                "not a user with the supervisor role",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id =
        p.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(placements::table)
        .values((
            placements::id.eq(&id),
            placements::enrolment_id.eq(enrolment_id),
            placements::placement_type.eq(&p.placement_type),
            placements::start_date.eq(p.start_date.to_string()),
            placements::end_date.eq(p.end_date.to_string()),
            placements::unit_id.eq(&p.unit_id),
            placements::version.eq(1),
            placements::created_at.eq(to_db(now)),
            placements::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "placement", &id),
        json!({
            "placement_type": p.placement_type, "start_date": p.start_date, "end_date": p.end_date, "unit_id": p.unit_id,
        }),
    )?;
    if let Some(s) = p.supervisor_id {
        add_assignment(
            conn,
            now,
            me,
            enrolment_id,
            AssignmentInput {
                id: None,
                user_id: s,
                role: AssignmentRole::PlacementSupervisor,
                placement_id: Some(id.clone()),
                valid_from: Some(p.start_date.min(today)),
                valid_to: Some(p.end_date + Duration::days(1)),
            },
        )?;
    }
    find_placement(conn, enrolment_id, &id, today)
}

fn find_placement(
    conn: &mut DbConn,
    enrolment_id: &str,
    id: &str,
    today: NaiveDate,
) -> Result<Placement, AppError> {
    load_placements(conn, enrolment_id, today)?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or(AppError::NotFound)
}

pub fn enrolment_of_placement(conn: &mut DbConn, placement_id: &str) -> Result<String, AppError> {
    Ok(placements::table
        .find(placement_id)
        .filter(placements::removed_at.is_null())
        .select(placements::enrolment_id)
        .first(conn)?)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementPatch {
    pub placement_type: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub unit_id: Option<String>,
}

/// Changes a placement's dates, type or unit; the earlier state stays in the history.
pub fn update_placement(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    patch: PlacementPatch,
) -> Result<Placement, AppError> {
    let today = now.date_naive();
    let enrolment_id = enrolment_of_placement(conn, id)?;
    access::require(conn, me, &enrolment_id, today, Access::Manage)?;
    let current = find_placement(conn, &enrolment_id, id, today)?;
    if_match(&etag(current.version, current.updated_at))?;
    let template = template_of(conn, &enrolment_id)?;
    let placement_type = patch
        .placement_type
        .unwrap_or(current.placement_type.clone());
    let start = patch.start_date.unwrap_or(current.start_date);
    let end = patch.end_date.unwrap_or(current.end_date);
    let unit = patch.unit_id.or(current.unit_id.clone());
    let mut errors = Vec::new();
    if template.placement_type(&placement_type).is_none() {
        errors.push(FieldError::new(
            "placement_type",
            "not a placement type of the template",
        ));
    }
    if end < start {
        errors.push(FieldError::new("end_date", "must not be before start_date"));
    }
    if let Some(u) = &unit {
        if crate::accounts::service::get_org(conn, u).is_err() {
            errors.push(FieldError::new("unit_id", "no such organisation"));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    diesel::update(placements::table.find(id))
        .set((
            placements::placement_type.eq(&placement_type),
            placements::start_date.eq(start.to_string()),
            placements::end_date.eq(end.to_string()),
            placements::unit_id.eq(&unit),
            placements::version.eq(current.version + 1),
            placements::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    // The placement supervisor's assignment follows a moved end date.
    if end != current.end_date {
        diesel::update(
            assignments::table
                .filter(assignments::placement_id.eq(id))
                .filter(
                    assignments::valid_to.eq((current.end_date + Duration::days(1)).to_string()),
                ),
        )
        .set((
            assignments::valid_to.eq((end + Duration::days(1)).to_string()),
            assignments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    }
    touch(conn, now, &enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &enrolment_id,
        Changed("updated", "placement", id),
        json!({
            "placement_type": placement_type, "start_date": start, "end_date": end, "unit_id": unit,
            "previous": {"placement_type": current.placement_type, "start_date": current.start_date, "end_date": current.end_date, "unit_id": current.unit_id},
        }),
    )?;
    find_placement(conn, &enrolment_id, id, today)
}

pub fn remove_placement(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
) -> Result<(), AppError> {
    let today = now.date_naive();
    let enrolment_id = enrolment_of_placement(conn, id)?;
    access::require(conn, me, &enrolment_id, today, Access::Manage)?;
    let current = find_placement(conn, &enrolment_id, id, today)?;
    diesel::update(placements::table.find(id))
        .set(placements::removed_at.eq(to_db(now)))
        .execute(conn)?;
    end_placement_assignments(conn, now, me, &enrolment_id, id, today)?;
    touch(conn, now, &enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &enrolment_id,
        Changed("removed", "placement", id),
        json!({
            "placement_type": current.placement_type, "start_date": current.start_date, "end_date": current.end_date,
        }),
    )
}

/// A removed placement has no supervisor any more: open assignments end today (or never
/// start, if they had not yet).
fn end_placement_assignments(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &str,
    placement_id: &str,
    today: NaiveDate,
) -> Result<(), AppError> {
    let open: Vec<(String, String)> = assignments::table
        .filter(assignments::placement_id.eq(placement_id))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(today.to_string())),
        )
        .select((assignments::id, assignments::valid_from))
        .load(conn)?;
    for (aid, from) in open {
        let end = date(&from).max(today);
        diesel::update(assignments::table.find(&aid))
            .set((
                assignments::valid_to.eq(end.to_string()),
                assignments::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        record_change(
            conn,
            now,
            Some(&me.user_id),
            enrolment_id,
            Changed("ended", "assignment", &aid),
            json!({"valid_to": end}),
        )?;
    }
    Ok(())
}

pub fn add_leave(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &str,
    l: LeaveInput,
) -> Result<LeavePeriod, AppError> {
    access::require(conn, me, enrolment_id, now.date_naive(), Access::Manage)?;
    let mut errors = Vec::new();
    let percent = l.percent.unwrap_or(100);
    if !(1..=100).contains(&percent) {
        errors.push(FieldError::new("percent", "between 1 and 100"));
    }
    if l.end_date < l.start_date {
        errors.push(FieldError::new("end_date", "must not be before start_date"));
    }
    let kind = l.kind.trim().to_lowercase();
    if kind.is_empty() || kind.len() > 40 {
        errors.push(FieldError::new("kind", "e.g. parental, sick, other"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id =
        l.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(leave_periods::table)
        .values((
            leave_periods::id.eq(&id),
            leave_periods::enrolment_id.eq(enrolment_id),
            leave_periods::kind.eq(&kind),
            leave_periods::start_date.eq(l.start_date.to_string()),
            leave_periods::end_date.eq(l.end_date.to_string()),
            leave_periods::percent.eq(percent),
            leave_periods::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "leave_period", &id),
        json!({
            "kind": kind, "start_date": l.start_date, "end_date": l.end_date, "percent": percent,
        }),
    )?;
    load_leave(conn, enrolment_id)?
        .into_iter()
        .find(|x| x.id == id)
        .ok_or(AppError::NotFound)
}

pub fn remove_leave(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
) -> Result<(), AppError> {
    let enrolment_id: String = leave_periods::table
        .find(id)
        .filter(leave_periods::removed_at.is_null())
        .select(leave_periods::enrolment_id)
        .first(conn)?;
    access::require(conn, me, &enrolment_id, now.date_naive(), Access::Manage)?;
    diesel::update(leave_periods::table.find(id))
        .set(leave_periods::removed_at.eq(to_db(now)))
        .execute(conn)?;
    touch(conn, now, &enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &enrolment_id,
        Changed("removed", "leave_period", id),
        json!({}),
    )
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentInput {
    pub id: Option<uuid::Uuid>,
    pub user_id: String,
    pub role: AssignmentRole,
    /// For placement supervisors: the placement.
    pub placement_id: Option<String>,
    /// Default: today.
    pub valid_from: Option<NaiveDate>,
    /// Exclusive end; default open.
    pub valid_to: Option<NaiveDate>,
}

/// Assigns someone to the trainee. A new main supervisor (or placement supervisor of the
/// same placement) ends the previous one's assignment the day the new one starts.
pub fn add_assignment(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &str,
    a: AssignmentInput,
) -> Result<Assignment, AppError> {
    let today = now.date_naive();
    access::require(conn, me, enrolment_id, today, Access::Manage)?;
    let from = a.valid_from.unwrap_or(today);
    let mut errors = Vec::new();
    if !user_has_role(conn, &a.user_id, a.role.account_role())? {
        errors.push(FieldError::new(
            "user_id",
            format!(
                "not a user with the {} role",
                a.role.account_role().as_str()
            ),
        ));
    }
    if a.valid_to.is_some_and(|t| t <= from) {
        errors.push(FieldError::new("valid_to", "must be after valid_from"));
    }
    match (a.role, &a.placement_id) {
        (AssignmentRole::PlacementSupervisor, None) => errors.push(FieldError::new(
            "placement_id",
            "a placement supervisor is assigned to a placement",
        )),
        (AssignmentRole::PlacementSupervisor, Some(p))
            if enrolment_of_placement(conn, p).ok().as_deref() != Some(enrolment_id) =>
        {
            errors.push(FieldError::new(
                "placement_id",
                "not a placement of this enrolment",
            ));
        }
        (AssignmentRole::PlacementSupervisor, Some(_)) => {}
        (_, Some(_)) => errors.push(FieldError::new(
            "placement_id",
            "only placement supervisors belong to a placement",
        )),
        _ => {}
    }
    if a.role != AssignmentRole::ExternalAssessor
        && is_external_assessor(conn, enrolment_id, &a.user_id, today)?
    {
        errors.push(FieldError::new(
            "user_id",
            "this person is the trainee's external assessor and can take no other part in the training",
        ));
    }
    if a.role == AssignmentRole::ExternalAssessor {
        let trainee: String = enrolments::table
            .find(enrolment_id)
            .select(enrolments::trainee_id)
            .first(conn)?;
        if a.user_id == trainee || was_involved(conn, enrolment_id, &a.user_id)? {
            errors.push(FieldError::new(
                "user_id",
                "an external assessor must never have been involved in this trainee's training",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    // One main supervisor at a time, one placement supervisor per placement.
    if matches!(
        a.role,
        AssignmentRole::MainSupervisor | AssignmentRole::PlacementSupervisor
    ) {
        let mut open = assignments::table
            .filter(assignments::enrolment_id.eq(enrolment_id))
            .filter(assignments::role.eq(a.role.as_str()))
            .filter(
                assignments::valid_to
                    .is_null()
                    .or(assignments::valid_to.gt(from.to_string())),
            )
            .into_boxed();
        if let Some(p) = &a.placement_id {
            open = open.filter(assignments::placement_id.eq(p.clone()));
        }
        let previous: Vec<(String, String)> = open
            .select((assignments::id, assignments::valid_from))
            .load(conn)?;
        for (pid, pfrom) in previous {
            // An assignment that had not started yet simply never holds.
            let end = if date(&pfrom) >= from {
                date(&pfrom)
            } else {
                from
            };
            diesel::update(assignments::table.find(&pid))
                .set((
                    assignments::valid_to.eq(end.to_string()),
                    assignments::updated_at.eq(to_db(now)),
                ))
                .execute(conn)?;
            record_change(
                conn,
                now,
                Some(&me.user_id),
                enrolment_id,
                Changed("ended", "assignment", &pid),
                json!({"valid_to": end}),
            )?;
        }
    }
    let id =
        a.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(assignments::table)
        .values((
            assignments::id.eq(&id),
            assignments::enrolment_id.eq(enrolment_id),
            assignments::user_id.eq(&a.user_id),
            assignments::role.eq(a.role.as_str()),
            assignments::placement_id.eq(&a.placement_id),
            assignments::valid_from.eq(from.to_string()),
            assignments::valid_to.eq(a.valid_to.map(|t| t.to_string())),
            assignments::created_by.eq(&me.user_id),
            assignments::created_at.eq(to_db(now)),
            assignments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "assignment", &id),
        json!({
            "user_id": a.user_id, "role": a.role, "placement_id": a.placement_id, "valid_from": from, "valid_to": a.valid_to,
        }),
    )?;
    get_assignment(conn, &id, today)
}

/// Has the user ever been assigned to this trainee's training (any enrolment)?
fn was_involved(conn: &mut DbConn, enrolment_id: &str, user_id: &str) -> Result<bool, AppError> {
    let (trainee, org): (String, String) = enrolments::table
        .find(enrolment_id)
        .select((enrolments::trainee_id, enrolments::organisation_id))
        .first(conn)?;
    // Directors and administrators of the programme's organisation follow its trainees.
    let chain = crate::auth::principal::org_chain(conn, &org)?;
    let manages = load_roles(conn, user_id)?.iter().any(|g| {
        matches!(g.role, Role::DirectorOfStudies | Role::Administrator)
            && chain.contains(&g.organisation_id)
    });
    let n: i64 = assignments::table
        .filter(assignments::enrolment_id.eq_any(trainee_enrolments(conn, &trainee)?))
        .filter(assignments::user_id.eq(user_id))
        .filter(assignments::role.ne(access::EXTERNAL_ASSESSOR))
        .count()
        .get_result(conn)?;
    if manages || n > 0 {
        return Ok(true);
    }
    // Anyone who assessed, signed, supervised or confirmed a record of the trainee took
    // part in the training, with or without an assignment.
    let enrolments = trainee_enrolments(conn, &trainee)?;
    let assessed: i64 = crate::schema::assessments::table
        .filter(crate::schema::assessments::enrolment_id.eq_any(&enrolments))
        .filter(
            crate::schema::assessments::assessor_id
                .eq(user_id)
                .or(crate::schema::assessments::signed_by.eq(user_id)),
        )
        .count()
        .get_result(conn)?;
    let talked: i64 = crate::schema::talk_participants::table
        .inner_join(
            crate::schema::talks::table
                .on(crate::schema::talks::id.eq(crate::schema::talk_participants::talk_id)),
        )
        .filter(crate::schema::talks::enrolment_id.eq_any(&enrolments))
        .filter(crate::schema::talk_participants::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    let summarised: i64 = crate::schema::summary_assessments::table
        .filter(crate::schema::summary_assessments::enrolment_id.eq_any(&enrolments))
        .filter(crate::schema::summary_assessments::author_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(assessed + talked + summarised > 0)
}

fn trainee_enrolments(conn: &mut DbConn, trainee: &str) -> Result<Vec<String>, AppError> {
    Ok(enrolments::table
        .filter(enrolments::trainee_id.eq(trainee))
        .select(enrolments::id)
        .load(conn)?)
}

/// Is the user this trainee's external assessor (now or later)? Then they may take no
/// other part in the training, or they would no longer be external.
fn is_external_assessor(
    conn: &mut DbConn,
    enrolment_id: &str,
    user_id: &str,
    today: NaiveDate,
) -> Result<bool, AppError> {
    let trainee: String = enrolments::table
        .find(enrolment_id)
        .select(enrolments::trainee_id)
        .first(conn)?;
    let n: i64 = assignments::table
        .filter(assignments::enrolment_id.eq_any(trainee_enrolments(conn, &trainee)?))
        .filter(assignments::user_id.eq(user_id))
        .filter(assignments::role.eq(access::EXTERNAL_ASSESSOR))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(today.to_string())),
        )
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn get_assignment(
    conn: &mut DbConn,
    id: &str,
    today: NaiveDate,
) -> Result<Assignment, AppError> {
    let row: AssignmentRow = assignments::table
        .find(id)
        .select(ASSIGNMENT_COLUMNS)
        .first(conn)?;
    Ok(assignment_from(row, today))
}

/// Ends an assignment on `valid_to` (exclusive; default today). Its history stays.
pub fn end_assignment(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    valid_to: Option<NaiveDate>,
) -> Result<Assignment, AppError> {
    let today = now.date_naive();
    let enrolment_id: String = assignments::table
        .find(id)
        .select(assignments::enrolment_id)
        .first(conn)?;
    access::require(conn, me, &enrolment_id, today, Access::Manage)?;
    let current = get_assignment(conn, id, today)?;
    let to = valid_to.unwrap_or(today);
    if to < current.valid_from {
        return Err(AppError::validation(
            "valid_to",
            "must not be before valid_from",
        ));
    }
    if current.valid_to.is_some_and(|t| t <= today) {
        return Err(AppError::Conflict(
            "the assignment has already ended".into(),
        ));
    }
    diesel::update(assignments::table.find(id))
        .set((
            assignments::valid_to.eq(to.to_string()),
            assignments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, &enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &enrolment_id,
        Changed("ended", "assignment", id),
        json!({"valid_to": to}),
    )?;
    get_assignment(conn, id, today)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditedServiceInput {
    pub id: Option<uuid::Uuid>,
    /// e.g. `AT, medicinkliniken, Danderyds sjukhus`.
    #[schema(example = "AT, kirurgkliniken, Södersjukhuset")]
    pub description: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    /// Days credited (full-time equivalent); at most six months in all.
    #[schema(example = 60)]
    pub credited_days: i32,
    /// What proves the service (certificate reference).
    #[schema(example = "Tjänstgöringsintyg 2025-02-01")]
    pub evidence: String,
    /// Delmål the service supports.
    #[serde(default)]
    pub delmal: Vec<String>,
}

/// Six months, the most clinical service before licence that may be credited.
pub const MAX_CREDITED_DAYS: i32 = 183;

pub fn add_credited_service(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &str,
    c: CreditedServiceInput,
) -> Result<CreditedService, AppError> {
    let today = now.date_naive();
    access::require(conn, me, enrolment_id, today, Access::Manage)?;
    let e = get_enrolment(conn, enrolment_id, today)?;
    let codes = delmal_codes_of(conn, enrolment_id)?;
    let mut errors = Vec::new();
    if c.description.trim().is_empty() {
        errors.push(FieldError::new("description", "is required"));
    }
    if c.evidence.trim().is_empty() {
        errors.push(FieldError::new(
            "evidence",
            "credited service needs evidence, e.g. the certificate",
        ));
    }
    if c.end_date < c.start_date {
        errors.push(FieldError::new("end_date", "must not be before start_date"));
    }
    let span = (c.end_date - c.start_date).num_days() + 1;
    let already: i32 = e.credited_service.iter().map(|x| x.credited_days).sum();
    if c.credited_days < 1 || c.credited_days as i64 > span.max(1) {
        errors.push(FieldError::new(
            "credited_days",
            "between 1 and the length of the period",
        ));
    } else if already + c.credited_days > MAX_CREDITED_DAYS {
        errors.push(FieldError::new(
            "credited_days",
            format!("at most six months ({MAX_CREDITED_DAYS} days) may be credited; {already} already are"),
        ));
    }
    for code in &c.delmal {
        if !codes.contains(code) {
            errors.push(FieldError::new("delmal", format!("unknown delmål {code}")));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id =
        c.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(credited_service::table)
        .values((
            credited_service::id.eq(&id),
            credited_service::enrolment_id.eq(enrolment_id),
            credited_service::description.eq(c.description.trim()),
            credited_service::start_date.eq(c.start_date.to_string()),
            credited_service::end_date.eq(c.end_date.to_string()),
            credited_service::credited_days.eq(c.credited_days),
            credited_service::evidence.eq(c.evidence.trim()),
            credited_service::delmal.eq(json!(c.delmal).to_string()),
            credited_service::created_by.eq(&me.user_id),
            credited_service::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    touch(conn, now, enrolment_id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "credited_service", &id),
        json!({
            "description": c.description, "credited_days": c.credited_days, "delmal": c.delmal,
        }),
    )?;
    load_credited(conn, enrolment_id)?
        .into_iter()
        .find(|x| x.id == id)
        .ok_or(AppError::NotFound)
}

// ---- Individual study plan ------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StudyPlanGoal {
    pub id: String,
    pub enrolment_id: String,
    /// The placement the goal belongs to; null for the whole programme.
    pub placement_id: Option<String>,
    #[schema(example = "Leda ett familjesamtal")]
    pub goal: String,
    #[schema(example = json!(["BT9", "BT10"]))]
    pub delmal: Vec<String>,
    /// `planned`, `in_progress` or `done`.
    #[schema(example = "in_progress")]
    pub status: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
}

impl StudyPlanGoal {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudyPlanGoalInput {
    pub id: Option<uuid::Uuid>,
    pub placement_id: Option<String>,
    pub goal: String,
    #[serde(default)]
    pub delmal: Vec<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudyPlanGoalPatch {
    pub goal: Option<String>,
    pub delmal: Option<Vec<String>>,
    pub status: Option<String>,
}

type GoalRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i32,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    Option<String>,
);

fn goal_from(r: GoalRow) -> StudyPlanGoal {
    StudyPlanGoal {
        id: r.0,
        enrolment_id: r.1,
        placement_id: r.2,
        goal: r.3,
        delmal: serde_json::from_str(&r.4).unwrap_or_default(),
        status: r.5,
        version: r.6,
        created_at: from_db(r.7),
        updated_at: from_db(r.8),
        updated_by: r.9,
    }
}

const GOAL_COLUMNS: (
    study_plan_goals::id,
    study_plan_goals::enrolment_id,
    study_plan_goals::placement_id,
    study_plan_goals::goal,
    study_plan_goals::delmal,
    study_plan_goals::status,
    study_plan_goals::version,
    study_plan_goals::created_at,
    study_plan_goals::updated_at,
    study_plan_goals::updated_by,
) = (
    study_plan_goals::id,
    study_plan_goals::enrolment_id,
    study_plan_goals::placement_id,
    study_plan_goals::goal,
    study_plan_goals::delmal,
    study_plan_goals::status,
    study_plan_goals::version,
    study_plan_goals::created_at,
    study_plan_goals::updated_at,
    study_plan_goals::updated_by,
);

pub fn list_goals(conn: &mut DbConn, enrolment_id: &str) -> Result<Vec<StudyPlanGoal>, AppError> {
    let rows: Vec<GoalRow> = study_plan_goals::table
        .filter(study_plan_goals::enrolment_id.eq(enrolment_id))
        .order(study_plan_goals::created_at)
        .select(GOAL_COLUMNS)
        .load(conn)?;
    Ok(rows.into_iter().map(goal_from).collect())
}

fn get_goal(conn: &mut DbConn, id: &str) -> Result<StudyPlanGoal, AppError> {
    let row: GoalRow = study_plan_goals::table
        .find(id)
        .select(GOAL_COLUMNS)
        .first(conn)?;
    Ok(goal_from(row))
}

fn check_goal(
    conn: &mut DbConn,
    enrolment_id: &str,
    goal: &str,
    delmal: &[String],
    status: &str,
    errors: &mut Vec<FieldError>,
) -> Result<(), AppError> {
    if goal.trim().is_empty() || goal.chars().count() > 4000 {
        errors.push(FieldError::new("goal", "1 to 4000 characters"));
    }
    if !["planned", "in_progress", "done"].contains(&status) {
        errors.push(FieldError::new("status", "planned, in_progress or done"));
    }
    let codes = delmal_codes_of(conn, enrolment_id)?;
    for code in delmal {
        if !codes.contains(code) {
            errors.push(FieldError::new("delmal", format!("unknown delmål {code}")));
        }
    }
    Ok(())
}

/// The trainee and their supervisors agree on goals; all of them may write.
pub fn add_goal(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    enrolment_id: &str,
    g: StudyPlanGoalInput,
) -> Result<StudyPlanGoal, AppError> {
    access::require(conn, me, enrolment_id, now.date_naive(), Access::Supervise)?;
    let status = g.status.unwrap_or_else(|| "planned".into());
    let mut errors = Vec::new();
    check_goal(conn, enrolment_id, &g.goal, &g.delmal, &status, &mut errors)?;
    if let Some(p) = &g.placement_id {
        if enrolment_of_placement(conn, p).ok().as_deref() != Some(enrolment_id) {
            errors.push(FieldError::new(
                "placement_id",
                "not a placement of this enrolment",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id =
        g.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    diesel::insert_into(study_plan_goals::table)
        .values((
            study_plan_goals::id.eq(&id),
            study_plan_goals::enrolment_id.eq(enrolment_id),
            study_plan_goals::placement_id.eq(&g.placement_id),
            study_plan_goals::goal.eq(g.goal.trim()),
            study_plan_goals::delmal.eq(json!(g.delmal).to_string()),
            study_plan_goals::status.eq(&status),
            study_plan_goals::version.eq(1),
            study_plan_goals::created_at.eq(to_db(now)),
            study_plan_goals::updated_at.eq(to_db(now)),
            study_plan_goals::updated_by.eq(&me.user_id),
        ))
        .execute(conn)?;
    let goal = get_goal(conn, &id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        enrolment_id,
        Changed("created", "study_plan_goal", &id),
        json!(goal),
    )?;
    Ok(goal)
}

pub fn update_goal(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    patch: StudyPlanGoalPatch,
) -> Result<StudyPlanGoal, AppError> {
    let current = get_goal(conn, id)?;
    access::require(
        conn,
        me,
        &current.enrolment_id,
        now.date_naive(),
        Access::Supervise,
    )?;
    if_match(&current.etag())?;
    let goal = patch.goal.unwrap_or(current.goal.clone());
    let delmal = patch.delmal.unwrap_or(current.delmal.clone());
    let status = patch.status.unwrap_or(current.status.clone());
    let mut errors = Vec::new();
    check_goal(
        conn,
        &current.enrolment_id,
        &goal,
        &delmal,
        &status,
        &mut errors,
    )?;
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    diesel::update(study_plan_goals::table.find(id))
        .set((
            study_plan_goals::goal.eq(goal.trim()),
            study_plan_goals::delmal.eq(json!(delmal).to_string()),
            study_plan_goals::status.eq(&status),
            study_plan_goals::version.eq(current.version + 1),
            study_plan_goals::updated_at.eq(to_db(now)),
            study_plan_goals::updated_by.eq(&me.user_id),
        ))
        .execute(conn)?;
    let updated = get_goal(conn, id)?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &current.enrolment_id,
        Changed("updated", "study_plan_goal", id),
        json!(updated),
    )?;
    Ok(updated)
}

pub fn enrolment_of_goal(conn: &mut DbConn, id: &str) -> Result<String, AppError> {
    Ok(study_plan_goals::table
        .find(id)
        .select(study_plan_goals::enrolment_id)
        .first(conn)?)
}

/// Enrolments the caller may see, newest first by id for stable paging.
pub fn list_enrolments(
    conn: &mut DbConn,
    me: &Principal,
    today: NaiveDate,
    trainee_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Enrolment>, AppError> {
    let mut ids = access::visible_enrolment_ids(conn, me, today)?;
    if let Some(t) = trainee_id {
        let of_trainee: Vec<String> = enrolments::table
            .filter(enrolments::trainee_id.eq(t))
            .select(enrolments::id)
            .load(conn)?;
        ids.retain(|i| of_trainee.contains(i));
    }
    if let Some(a) = after {
        ids.retain(|i| i.as_str() > a);
    }
    ids.truncate(limit as usize + 1);
    ids.iter()
        .map(|id| get_enrolment(conn, id, today))
        .collect()
}
