//! Reading an enrolment: the whole plan with its placements, leave, assignments, credited
//! service, time served and warnings; the enrolments a caller may see.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::assignments::{load_assignments, Assignment};
use super::credited::{load_credited, CreditedService};
use super::enums::{EnrolmentStatus, Track};
use super::extent::{self, ExtentPeriod};
use super::leave::{load_leave, LeavePeriod};
use super::placements::{load_placements, Placement};
use super::warnings::{plan_of, warnings, PlanWarning};
use crate::auth::principal::Principal;
use crate::clock::from_db;
use crate::curriculum::{catalogue, templates};
use crate::db::DbConn;
use crate::enrolment::access::{self};
use crate::enrolment::time::{Plan, TimeServed};
use crate::error::AppError;
use crate::http::etag;
use crate::ids::{Day, EnrolmentId, OrganisationId, RegulationId, TemplateId, UserId};
use crate::schema::enrolments;

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
    /// Employment extent today, in per cent of full time (from `extent_periods`).
    #[schema(example = 75)]
    pub extent_percent: i32,
    /// The extent as a history: each period from its `valid_from` until the next. Time
    /// served counts each day at its own period's extent.
    pub extent_periods: Vec<ExtentPeriod>,
    /// `active`, `completed` or `withdrawn`.
    #[schema(example = "active")]
    pub status: String,
    /// On an ST 2021 enrolment: the BT enrolment it builds on (integrated BT, or a
    /// standalone BT before it). Its time counts towards the ST minimum length.
    pub bt_enrolment_id: Option<String>,
    /// The day the trainee applied to Socialstyrelsen for the certificate the enrolment
    /// leads to (BT: "Ansökan om intyg om godkänd bastjänstgöring", HSLF-FS 2021:8 bilaga 1).
    #[schema(example = "2026-08-15")]
    pub applied_on: Option<NaiveDate>,
    pub placements: Vec<Placement>,
    pub leave_periods: Vec<LeavePeriod>,
    /// Current and past assignments.
    pub assignments: Vec<Assignment>,
    pub credited_service: Vec<CreditedService>,
    /// As of today.
    pub time_served: TimeServed,
    pub warnings: Vec<PlanWarning>,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
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

/// An `enrolments` row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = enrolments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct EnrolmentRow {
    id: EnrolmentId,
    trainee_id: UserId,
    organisation_id: OrganisationId,
    template_id: TemplateId,
    template_version: i32,
    track: Track,
    start_date: Day,
    planned_end: Day,
    extent_percent: i32,
    status: EnrolmentStatus,
    version: i32,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
    bt_enrolment_id: Option<EnrolmentId>,
    applied_on: Option<Day>,
}

pub fn get_enrolment(conn: &mut DbConn, id: &str, today: NaiveDate) -> Result<Enrolment, AppError> {
    Ok(load_enrolment(conn, id, today)?.0)
}

/// The enrolment with the template version it follows.
pub(crate) fn load_enrolment(
    conn: &mut DbConn,
    id: &str,
    today: NaiveDate,
) -> Result<(Enrolment, templates::ProgrammeTemplate), AppError> {
    let r: EnrolmentRow = enrolments::table
        .find(id)
        .select(EnrolmentRow::as_select())
        .first(conn)?;
    let template = templates::get_template(conn, &r.template_id, Some(r.template_version))?;
    let mut e = Enrolment {
        placements: load_placements(conn, &r.id, today)?,
        leave_periods: load_leave(conn, &r.id)?,
        assignments: load_assignments(conn, &r.id, today)?,
        credited_service: load_credited(conn, &r.id)?,
        extent_periods: extent::load_periods(conn, &r.id)?,
        time_served: Plan {
            start: today,
            extent_percent: 0,
            extent_changes: vec![],
            placements: vec![],
            leave: vec![],
            credited_days: 0,
            nominal_months: 0,
        }
        .time_served(today),
        warnings: Vec::new(),
        id: r.id.into_inner(),
        trainee_id: r.trainee_id.into_inner(),
        organisation_id: r.organisation_id.into_inner(),
        template_id: r.template_id.into_inner(),
        template_version: r.template_version,
        track: r.track,
        start_date: r.start_date.date(),
        planned_end: r.planned_end.date(),
        extent_percent: r.extent_percent,
        status: r.status.as_str().into(),
        bt_enrolment_id: r.bt_enrolment_id.map(EnrolmentId::into_inner),
        applied_on: r.applied_on.map(Day::date),
        version: r.version,
        created_at: from_db(r.created_at),
        updated_at: from_db(r.updated_at),
    };
    if let Some(p) = extent::percent_on(&extent::changes_of(&e.extent_periods), today) {
        e.extent_percent = p;
    }
    e.time_served = plan_of(&e, template.content.duration_months).time_served(today);
    e.warnings = warnings(conn, &e, &template, today)?;
    Ok((e, template))
}

/// The template version an enrolment follows.
pub(crate) fn template_of(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<templates::ProgrammeTemplate, AppError> {
    let (template_id, version): (TemplateId, i32) = enrolments::table
        .find(enrolment_id)
        .select((enrolments::template_id, enrolments::template_version))
        .first(conn)?;
    templates::get_template(conn, &template_id, Some(version))
}

/// Delmål codes the trainee's records may link to: the template version's regulation,
/// with its specialty's delmål.
pub fn delmal_codes_of(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<String>, AppError> {
    let template = template_of(conn, enrolment_id)?;
    catalogue::delmal_codes(
        conn,
        &RegulationId::from(template.regulation_id.as_str()),
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

/// Enrolments the caller may see, newest first by id for stable paging.
pub fn list_enrolments(
    conn: &mut DbConn,
    me: &Principal,
    today: NaiveDate,
    trainee_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Enrolment>, AppError> {
    let mut ids: Vec<String> = access::visible_enrolment_ids(conn, me, today)?
        .into_iter()
        .map(EnrolmentId::into_inner)
        .collect();
    // Restricted processing (GDPR Art. 18) leaves the lists of everyone but the trainee.
    let restricted = crate::privacy::restriction::restricted_among(conn, &ids)?;
    if !restricted.is_empty() {
        let own: Vec<String> = enrolments::table
            .filter(enrolments::trainee_id.eq(&me.user_id))
            .select(enrolments::id)
            .load(conn)?;
        ids.retain(|i| !restricted.contains(i) || own.contains(i));
    }
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
