//! The enrolment's text-coded enums: the kind of training and the roles someone holds on
//! one trainee's training.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::principal::Role;
use crate::enrolment::access;

/// The kind of training.
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
pub enum Track {
    /// Standalone BT (bastjänstgöring), HSLF-FS 2021:8.
    BtStandalone,
    /// ST with integrated BT, HSLF-FS 2021:8.
    StIntegratedBt,
    /// ST 2021 after a completed BT. Named as stored (snake case alone would give
    /// `st2021`, which the API accepted before and still does).
    #[serde(rename = "st_2021", alias = "st2021")]
    St2021,
    /// ST under SOSFS 2015:8.
    #[serde(rename = "st_2015", alias = "st2015")]
    St2015,
    /// AT (allmäntjänstgöring).
    At,
}

impl Track {
    pub fn as_str(self) -> &'static str {
        match self {
            Track::BtStandalone => "bt_standalone",
            Track::StIntegratedBt => "st_integrated_bt",
            Track::St2021 => "st_2021",
            Track::St2015 => "st_2015",
            Track::At => "at",
        }
    }
    /// The track stored as `s`; `None` for a code this build does not know.
    pub fn from_code(s: &str) -> Option<Track> {
        Some(match s {
            "bt_standalone" => Track::BtStandalone,
            "st_integrated_bt" => Track::StIntegratedBt,
            "st_2021" => Track::St2021,
            "st_2015" => Track::St2015,
            "at" => Track::At,
            _ => return None,
        })
    }
}

/// A role someone holds on one trainee's training.
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
pub enum AssignmentRole {
    /// Huvudhandledare: for the whole programme.
    MainSupervisor,
    /// Tjänstgöringshandledare: for one placement.
    PlacementSupervisor,
    /// Studierektor following this trainee.
    DirectorOfStudies,
    /// Extern bedömare for the final assessment.
    ExternalAssessor,
    /// Verksamhetschef: signs the service certificates ("Intyg om fullgjord
    /// bastjänstgöring", HSLF-FS 2021:8 bilaga 3, and the ST equivalents). Reads the plan.
    HeadOfDepartment,
}

impl AssignmentRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentRole::MainSupervisor => access::MAIN_SUPERVISOR,
            AssignmentRole::PlacementSupervisor => access::PLACEMENT_SUPERVISOR,
            AssignmentRole::DirectorOfStudies => access::DIRECTOR,
            AssignmentRole::ExternalAssessor => access::EXTERNAL_ASSESSOR,
            AssignmentRole::HeadOfDepartment => access::HEAD_OF_DEPARTMENT,
        }
    }
    /// The role stored as `s`; `None` for a code this build does not know.
    pub fn from_code(s: &str) -> Option<AssignmentRole> {
        Some(match s {
            access::MAIN_SUPERVISOR => AssignmentRole::MainSupervisor,
            access::PLACEMENT_SUPERVISOR => AssignmentRole::PlacementSupervisor,
            access::DIRECTOR => AssignmentRole::DirectorOfStudies,
            access::EXTERNAL_ASSESSOR => AssignmentRole::ExternalAssessor,
            access::HEAD_OF_DEPARTMENT => AssignmentRole::HeadOfDepartment,
            _ => return None,
        })
    }
    /// The account role the assignee must hold. A verksamhetschef has no account role of
    /// their own yet: they are invited as a supervisor, which grants nothing by itself.
    pub(crate) fn account_role(self) -> Role {
        match self {
            AssignmentRole::MainSupervisor
            | AssignmentRole::PlacementSupervisor
            | AssignmentRole::HeadOfDepartment => Role::Supervisor,
            AssignmentRole::DirectorOfStudies => Role::DirectorOfStudies,
            AssignmentRole::ExternalAssessor => Role::ExternalAssessor,
        }
    }
}

/// So code that still compares a role with its stored code keeps working.
impl PartialEq<str> for AssignmentRole {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

crate::text_enum_sql!(Track);
crate::text_enum_sql!(AssignmentRole);

crate::text_enum! {
    /// Where an enrolment stands: running, completed (after the final assessment), or
    /// withdrawn.
    pub enum EnrolmentStatus { Active = "active", Completed = "completed", Withdrawn = "withdrawn" }
}

crate::text_enum! {
    /// Where a goal of the study plan (utbildningsplan) stands.
    pub enum GoalStatus { Planned = "planned", InProgress = "in_progress", Done = "done" }
}
