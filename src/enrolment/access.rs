//! Who may see and change an enrolment. Access follows the enrolment's assignments and
//! their validity periods, plus the organisation roles of administrators and directors.

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::auth::principal::{Principal, Role};
use crate::db::DbConn;
use crate::enrolment::enums::AssignmentRole;
use crate::error::AppError;
use crate::ids::{EnrolmentId, OrganisationId, UserId};
use crate::schema::{assignments, enrolments};

/// What the caller may do with one enrolment, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    None,
    /// Read the plan (external assessor, the trainee).
    Read,
    /// Read, and work on the study plan (the trainee, assigned supervisors).
    Supervise,
    /// Change the plan (administrators and directors of studies).
    Manage,
}

/// Assignment roles on an enrolment.
pub const MAIN_SUPERVISOR: &str = "main_supervisor";
pub const PLACEMENT_SUPERVISOR: &str = "placement_supervisor";
pub const DIRECTOR: &str = "director_of_studies";
pub const EXTERNAL_ASSESSOR: &str = "external_assessor";
/// Verksamhetschef: reads the plan whose service certificate they sign.
pub const HEAD_OF_DEPARTMENT: &str = "head_of_department";

/// Roles the caller holds on the enrolment today through assignments.
pub fn active_assignment_roles(
    conn: &mut DbConn,
    user_id: &UserId,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
) -> Result<Vec<AssignmentRole>, AppError> {
    let today = today.to_string();
    let query = assignments::table
        .filter(assignments::enrolment_id.eq(enrolment_id))
        .filter(assignments::user_id.eq(user_id))
        .filter(assignments::valid_from.le(&today))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(&today)),
        )
        .select(assignments::role);
    Ok(crate::on_backend!(conn, |c| query.load(c))?)
}

/// Who holds `role` on the enrolment today (the latest assignment if several overlap).
pub fn holder(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    role: &str,
    today: NaiveDate,
) -> Result<Option<UserId>, AppError> {
    let today = today.to_string();
    Ok(assignments::table
        .filter(assignments::enrolment_id.eq(enrolment_id))
        .filter(assignments::role.eq(role))
        .filter(assignments::valid_from.le(&today))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(&today)),
        )
        .order(assignments::valid_from.desc())
        .select(assignments::user_id)
        .first(conn)
        .optional()?)
}

/// Is the user the trainee's main or placement supervisor today? Directors and
/// administrators manage the plan but do not assess or supervise through it.
pub fn is_assigned_supervisor(
    conn: &mut DbConn,
    user_id: &UserId,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
) -> Result<bool, AppError> {
    Ok(active_assignment_roles(conn, user_id, enrolment_id, today)?
        .iter()
        .any(|r| *r == AssignmentRole::MainSupervisor || *r == AssignmentRole::PlacementSupervisor))
}

pub fn access(
    conn: &mut DbConn,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
) -> Result<Access, AppError> {
    // The enrolment and the caller's assignments to it today in one statement (a left
    // join: one row per assignment, or one with no role): every request about an
    // enrolment asks this, so a statement here is a statement on all of them.
    let today_text = today.to_string();
    let query = enrolments::table
        .left_join(
            assignments::table.on(assignments::enrolment_id
                .eq(enrolments::id)
                .and(assignments::user_id.eq(&me.user_id))
                .and(assignments::valid_from.le(&today_text))
                .and(
                    assignments::valid_to
                        .is_null()
                        .or(assignments::valid_to.gt(&today_text)),
                )),
        )
        .filter(enrolments::id.eq(enrolment_id))
        .select((
            enrolments::trainee_id,
            enrolments::organisation_id,
            assignments::role.nullable(),
        ));
    let rows: Vec<(UserId, OrganisationId, Option<AssignmentRole>)> =
        crate::on_backend!(conn, |c| query.load(c))?;
    let mut found = None;
    let mut roles = Vec::new();
    for (trainee, org, role) in rows {
        found.get_or_insert((trainee, org));
        roles.extend(role);
    }
    let Some((trainee, org)) = found else {
        return Ok(Access::None);
    };
    // An API client reads the enrolments of its organisation's subtree with `progress:read`.
    if let Some(client) = &me.client {
        if !me.has_scope(crate::auth::client_tokens::SCOPE_PROGRESS_READ) {
            return Ok(Access::None);
        }
        let chain = crate::auth::principal::org_chain(conn, &org)?;
        return Ok(if chain.contains(&client.organisation_id) {
            Access::Read
        } else {
            Access::None
        });
    }
    if me.has_role_over(conn, Role::Administrator, &org)?
        || me.has_role_over(conn, Role::DirectorOfStudies, &org)?
    {
        return Ok(Access::Manage);
    }
    if roles.contains(&AssignmentRole::DirectorOfStudies) {
        return Ok(Access::Manage);
    }
    if me.user_id == trainee
        || roles.iter().any(|r| {
            *r == AssignmentRole::MainSupervisor || *r == AssignmentRole::PlacementSupervisor
        })
    {
        return Ok(Access::Supervise);
    }
    if roles
        .iter()
        .any(|r| *r == AssignmentRole::ExternalAssessor || *r == AssignmentRole::HeadOfDepartment)
    {
        return Ok(Access::Read);
    }
    Ok(Access::None)
}

/// At least `needed`, or an error: 404 when the caller may not even see the enrolment
/// (so its existence is not revealed), 403 when they see it but may not do this.
pub fn require(
    conn: &mut DbConn,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
    needed: Access,
) -> Result<Access, AppError> {
    let has = access(conn, me, enrolment_id, today)?;
    if has == Access::None {
        return Err(AppError::NotFound);
    }
    if has < needed {
        return Err(AppError::Forbidden(
            "your part in this training plan does not allow this".into(),
        ));
    }
    Ok(has)
}

/// Enrolments the caller may see: their own, those they are assigned to today, and all
/// in organisations where they administer or direct studies.
pub fn visible_enrolment_ids(
    conn: &mut DbConn,
    me: &Principal,
    today: NaiveDate,
) -> Result<Vec<EnrolmentId>, AppError> {
    if let Some(client) = &me.client {
        if !me.has_scope(crate::auth::client_tokens::SCOPE_PROGRESS_READ) {
            return Ok(Vec::new());
        }
        let orgs = crate::auth::principal::org_subtrees(
            conn,
            std::slice::from_ref(&client.organisation_id),
        )?;
        let mut ids: Vec<EnrolmentId> = enrolments::table
            .filter(enrolments::organisation_id.eq_any(&orgs))
            .select(enrolments::id)
            .load(conn)?;
        ids.sort();
        return Ok(ids);
    }
    let roots = me.orgs_with(&[Role::Administrator, Role::DirectorOfStudies]);
    let orgs = crate::auth::principal::org_subtrees(conn, &roots)?;
    let mut ids: Vec<EnrolmentId> = enrolments::table
        .filter(
            enrolments::trainee_id
                .eq(&me.user_id)
                .or(enrolments::organisation_id.eq_any(&orgs)),
        )
        .select(enrolments::id)
        .load(conn)?;
    let today = today.to_string();
    let assigned: Vec<EnrolmentId> = assignments::table
        .filter(assignments::user_id.eq(&me.user_id))
        .filter(assignments::valid_from.le(&today))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(&today)),
        )
        .select(assignments::enrolment_id)
        .load(conn)?;
    ids.extend(assigned);
    ids.sort();
    ids.dedup();
    Ok(ids)
}
