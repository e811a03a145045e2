//! Creating an enrolment (with its first placements, leave and main supervisor), changing
//! its planned end, extent or status, and moving it to another template version.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::assignments::{add_assignment, user_has_role, AssignmentInput};
use super::enums::{AssignmentRole, EnrolmentStatus, Track};
use super::history::{record_change, touch, Changed};
use super::leave::{add_leave, LeaveInput};
use super::loaders::{get_enrolment, Enrolment};
use super::placements::{add_placement, PlacementInput};
use crate::auth::principal::{Principal, Role};
use crate::clock::to_db;
use crate::curriculum::templates;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::{AppError, FieldError};
use crate::ids::{EnrolmentId, OrganisationId, TemplateId, UserId};
use crate::schema::enrolments;

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
    /// ST 2021: the same trainee's BT enrolment this one builds on (integrated BT, or a
    /// standalone BT before it). Its time counts towards the ST minimum length.
    pub bt_enrolment_id: Option<String>,
}

pub(crate) fn check_extent(extent: i32, errors: &mut Vec<FieldError>) {
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
    let today = crate::clock::day_of(now);
    let template = templates::get_template(
        conn,
        &TemplateId::from(input.template_id.as_str()),
        input.template_version,
    )
    .map_err(|_| AppError::validation("template_id", "no such template (version)"))?;
    Principal::require(templates::may_edit(
        conn,
        me,
        &OrganisationId::from(&template.organisation_id),
    )?)?;
    let mut errors = Vec::new();
    if !user_has_role(conn, &UserId::from(&input.trainee_id), Role::Trainee)? {
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
    if let Some(bt) = &input.bt_enrolment_id {
        super::st_rules::check_bt_link(
            conn,
            me,
            today,
            None,
            &UserId::from(&input.trainee_id),
            &template,
            &EnrolmentId::from(bt),
        )?;
    }
    let id = input
        .id
        .map(|u| EnrolmentId::new(u.to_string()))
        .unwrap_or_else(EnrolmentId::random);
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
            enrolments::status.eq(EnrolmentStatus::Active),
            enrolments::bt_enrolment_id.eq(&input.bt_enrolment_id),
            enrolments::version.eq(1),
            enrolments::created_at.eq(to_db(now)),
            enrolments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    // The extent's history begins with the extent from the start.
    super::extent::insert_period(
        conn,
        now,
        Some(&me.user_id),
        &id,
        &Uuid::new_v4().to_string(),
        input.start_date,
        extent,
    )?;
    record_change(
        conn,
        now,
        Some(&me.user_id),
        &id,
        Changed("created", "enrolment", &id),
        json!({
            "trainee_id": input.trainee_id, "template_id": template.id, "template_version": template.version,
            "track": input.track, "start_date": input.start_date, "planned_end": input.planned_end, "extent_percent": extent,
            "bt_enrolment_id": input.bt_enrolment_id,
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
    let created = get_enrolment(conn, &id, today)?;
    // Subscribers (webhooks; learning records kept until their learner enrolled) hear of
    // it in this transaction.
    crate::events::publish(
        conn,
        now,
        crate::events::DomainEvent::EnrolmentCreated {
            enrolment_id: id.into_inner(),
            data: json!({"enrolment": created}),
        },
    )?;
    Ok(created)
}

pub(crate) fn prefix_fields(e: AppError, prefix: &str) -> AppError {
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

pub(crate) fn rename_field(e: AppError, field: &str) -> AppError {
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
    /// Corrects the extent for the whole enrolment, while it has never changed (409
    /// after a change from a date: record another change from a date instead).
    pub extent_percent: Option<i32>,
    /// `active`, `completed` or `withdrawn`.
    pub status: Option<String>,
    /// Links (or with `null` unlinks) the BT enrolment this ST enrolment builds on.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub bt_enrolment_id: Option<Option<String>>,
    /// The day the trainee applied for the certificate the enrolment leads to (not in the
    /// future, not before the start); `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Date, nullable, example = "2026-08-15")]
    pub applied_on: Option<Option<NaiveDate>>,
}

/// A field that may be sent as a value, sent as `null` (clear it) or left out.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub fn update_enrolment(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: &EnrolmentId,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    patch: EnrolmentPatch,
) -> Result<Enrolment, AppError> {
    let today = crate::clock::day_of(now);
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
    let status = EnrolmentStatus::from_code(patch.status.as_deref().unwrap_or(&current.status));
    if status.is_none() {
        errors.push(FieldError::new("status", "active, completed or withdrawn"));
    }
    let applied_on = patch.applied_on.unwrap_or(current.applied_on);
    if let Some(d) = applied_on {
        if d > today {
            errors.push(FieldError::new("applied_on", "cannot be in the future"));
        } else if d < current.start_date {
            errors.push(FieldError::new(
                "applied_on",
                "cannot be before the start date",
            ));
        }
    }
    // An unknown status is among the errors.
    let (Some(status), true) = (status, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let bt_enrolment_id = patch
        .bt_enrolment_id
        .unwrap_or(current.bt_enrolment_id.clone());
    if let Some(bt) = bt_enrolment_id
        .as_ref()
        .filter(|b| current.bt_enrolment_id.as_ref() != Some(*b))
    {
        let template = super::loaders::template_of(conn, id)?;
        super::st_rules::check_bt_link(
            conn,
            me,
            today,
            Some(id),
            &UserId::from(&current.trainee_id),
            &template,
            &EnrolmentId::from(bt),
        )?;
    }
    if extent != current.extent_percent {
        // A correction of the extent for the whole enrolment; a change from a date is
        // recorded with `extent::record_extent_change`.
        super::extent::correct_whole(conn, id, extent)?;
    }
    diesel::update(enrolments::table.find(id))
        .set((
            enrolments::planned_end.eq(planned_end.to_string()),
            enrolments::extent_percent.eq(extent),
            enrolments::status.eq(status),
            enrolments::bt_enrolment_id.eq(&bt_enrolment_id),
            enrolments::applied_on.eq(applied_on.map(|d| d.to_string())),
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
            "planned_end": planned_end, "extent_percent": extent, "status": status.as_str(),
            "bt_enrolment_id": bt_enrolment_id, "applied_on": applied_on,
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
    id: &EnrolmentId,
    version: i32,
) -> Result<Enrolment, AppError> {
    let today = crate::clock::day_of(now);
    access::require(conn, me, id, today, Access::Read)?;
    let current = get_enrolment(conn, id, today)?;
    Principal::require(me.has_role_over(
        conn,
        Role::Administrator,
        &OrganisationId::from(&current.organisation_id),
    )?)?;
    let target = templates::get_template(
        conn,
        &TemplateId::from(current.template_id.as_str()),
        Some(version),
    )
    .map_err(|_| AppError::validation("template_version", "no such version of this template"))?;
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
