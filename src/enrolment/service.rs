//! What other features use of enrolment, in one place: the enrolment read model and the
//! functions they call. The code lives in the files of one concern each beside this one
//! (see `mod.rs`); this module only re-exports it, so callers need not know that layout.

pub use super::assignments::{
    add_assignment, end_assignment, get_assignment, Assignment, AssignmentInput,
};
pub use super::credited::{
    add_credited_service, CreditedService, CreditedServiceInput, MAX_CREDITED_DAYS,
};
pub use super::enrolments::{
    create_enrolment, migrate_template, update_enrolment, EnrolmentPatch, NewEnrolment,
};
pub use super::enums::{AssignmentRole, Track};
pub use super::goals::{
    add_goal, enrolment_of_goal, list_goals, update_goal, StudyPlanGoal, StudyPlanGoalInput,
    StudyPlanGoalPatch,
};
pub use super::history::{changes, record_change, Change, Changed};
pub use super::leave::{add_leave, remove_leave, LeaveInput, LeavePeriod};
pub use super::loaders::{
    delmal_codes_of, get_enrolment, list_enrolments, parse_date, time_served, Enrolment,
};
pub use super::placements::{
    add_placement, enrolment_of_placement, remove_placement, update_placement, Placement,
    PlacementInput, PlacementPatch,
};
pub use super::warnings::PlanWarning;
