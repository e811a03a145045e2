//! The external assessor's independence (issue 14 item 8): was this person involved in
//! the trainee's training, and what is recorded of their qualifications?
//!
//! Why: the pilot's external assessor (extern bedömare) "är en legitimerad läkare med
//! specialistkompetens som är utbildad i bedömningsmetoder och inte ska ha varit
//! involverad i BT-läkarens utbildning" (seed 002, Region Stockholm's BT report, on the
//! final assessment). The regulation text at hand (HSLF-FS 2021:8 as quoted in
//! `catalog/`) does not define the external assessor or "involved" further; the facts
//! below are this service's reading, and each is shown so that a person can judge.
//!
//! Why here, in `enrolment`: assigning the assessor (`assignments.rs`) refuses an involved
//! person, and the final assessment (`final_assessment`, which builds on `enrolment`)
//! checks again when it is opened and signed. One list of facts serves both; `enrolment`
//! cannot import `final_assessment` (that would be a cycle between features).
//!
//! Involvement may arise after the assignment (the assessor also holds the supervisor role
//! and a trainee asks them for a Mini-CEX, a talk lists them): the final assessment shows
//! it as a warning, or refuses with 409 where `EXTERNAL_ASSESSOR_INDEPENDENCE_REQUIRED`.

use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::enums::AssignmentRole;
use crate::auth::principal::{load_roles, org_chain, Role};
use crate::config::Config;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{EnrolmentId, OrganisationId, UserId};
use crate::schema::{
    activities, assessments, assignments, enrolments, external_assessors, group_reviews,
    signer_profiles, summary_assessments, talk_participants, talks, users,
};

/// Warning code: the person took part in the trainee's training.
pub const INVOLVED: &str = "involved_in_training";
/// Warning codes for the qualifications, as for assessors without an account
/// (`portfolio::qualifications`).
pub const SPECIALIST_NOT_STATED: &str = "specialist_status_not_stated";
pub const NOT_SPECIALIST: &str = "not_specialist";
pub const TRAINING_NOT_STATED: &str = "assessment_training_not_stated";
pub const NO_TRAINING: &str = "no_assessment_training";

/// One way the person took part in the trainee's training.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvolvementFact {
    /// One of: trainee (the person is the trainee), directs_programme (director of
    /// studies or administrator of the programme's organisation), assignment (held another
    /// assignment to the trainee), assessment (asked for, assessed or signed a formative
    /// assessment), talk (took part in or confirmed a supervision or handover talk),
    /// summary_assessment (wrote a placement's summary assessment), activity (recorded a
    /// learning activity) or group_review (recorded a group review). An open list: more
    /// kinds may come.
    #[schema(example = "assessment")]
    pub kind: String,
    /// The record (assignment, assessment, talk, ...) or, for `directs_programme`, the
    /// organisation.
    pub record_id: Option<String>,
    /// The role, instrument or talk kind, as stored.
    #[schema(example = "mini_cex")]
    pub detail: Option<String>,
}

/// What is recorded of the person's qualifications. Null: not stated anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordedQualifications {
    /// Specialist (specialistkompetens): true when the signer profile names a specialty
    /// or an approved vetting of the person's address says so.
    pub specialist: Option<bool>,
    #[schema(example = "Akutsjukvård")]
    pub specialty: Option<String>,
    /// Trained in assessment methods (utbildad i bedömningsmetoder), from an approved
    /// vetting of the person's address; an account's signer profile does not hold it.
    pub assessment_training: Option<bool>,
    pub assessment_training_detail: Option<String>,
}

/// The independence check of one person for one trainee.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Independence {
    pub user_id: String,
    /// Whether any fact below was found.
    pub involved: bool,
    pub facts: Vec<InvolvementFact>,
    pub qualifications: RecordedQualifications,
    /// Codes: involved_in_training, specialist_status_not_stated, not_specialist,
    /// assessment_training_not_stated, no_assessment_training.
    pub warnings: Vec<String>,
    /// `EXTERNAL_ASSESSOR_INDEPENDENCE_REQUIRED`: when true, the final assessment is not
    /// opened or signed with an involved external assessor (409).
    pub independence_required: bool,
}

fn fact(kind: &str, record_id: Option<String>, detail: Option<String>) -> InvolvementFact {
    InvolvementFact {
        kind: kind.into(),
        record_id,
        detail,
    }
}

/// Every way `user_id` took part in the training of the trainee of `enrolment_id`, on
/// any of the trainee's enrolments (a BT and its ST are one training). Being their
/// external assessor is not involvement.
pub fn involvement(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    user_id: &UserId,
) -> Result<Vec<InvolvementFact>, AppError> {
    let (trainee, org): (UserId, OrganisationId) = enrolments::table
        .find(enrolment_id)
        .select((enrolments::trainee_id, enrolments::organisation_id))
        .first(conn)?;
    let mut facts = Vec::new();
    if trainee == *user_id {
        facts.push(fact("trainee", None, None));
    }
    // Directors and administrators of the programme's organisation follow its trainees.
    let chain = org_chain(conn, &org)?;
    for g in load_roles(conn, user_id)? {
        if matches!(g.role, Role::DirectorOfStudies | Role::Administrator)
            && chain.iter().any(|o| *o == g.organisation_id)
        {
            facts.push(fact(
                "directs_programme",
                Some(g.organisation_id.to_string()),
                Some(g.role.as_str().to_string()),
            ));
        }
    }
    let mine = super::assignments::trainee_enrolments(conn, &trainee)?;
    let held: Vec<(String, AssignmentRole)> = assignments::table
        .filter(assignments::enrolment_id.eq_any(&mine))
        .filter(assignments::user_id.eq(user_id))
        .filter(assignments::role.ne(AssignmentRole::ExternalAssessor))
        .order(assignments::valid_from)
        .select((assignments::id, assignments::role))
        .load(conn)?;
    facts.extend(
        held.into_iter()
            .map(|(id, role)| fact("assignment", Some(id), Some(role.as_str().into()))),
    );
    // Asked by link counts too: the address is the person's.
    let email: Option<String> = users::table
        .find(user_id)
        .select(users::email)
        .first(conn)
        .optional()?;
    let email = email.unwrap_or_default();
    let assessed: Vec<(String, String)> = assessments::table
        .filter(assessments::enrolment_id.eq_any(&mine))
        .filter(
            assessments::assessor_id
                .eq(user_id)
                .or(assessments::signed_by.eq(user_id))
                .or(assessments::assessor_email.eq(&email))
                .or(assessments::signed_by_email.eq(&email)),
        )
        .order(assessments::performed_on)
        .select((assessments::id, assessments::instrument))
        .load(conn)?;
    facts.extend(
        assessed
            .into_iter()
            .map(|(id, instrument)| fact("assessment", Some(id), Some(instrument))),
    );
    let talked: Vec<(String, String)> = talk_participants::table
        .inner_join(talks::table.on(talks::id.eq(talk_participants::talk_id)))
        .filter(talks::enrolment_id.eq_any(&mine))
        .filter(talk_participants::user_id.eq(user_id))
        .order(talks::held_on)
        .select((talks::id, talks::kind))
        .load(conn)?;
    facts.extend(
        talked
            .into_iter()
            .map(|(id, kind)| fact("talk", Some(id), Some(kind))),
    );
    let summarised: Vec<String> = summary_assessments::table
        .filter(summary_assessments::enrolment_id.eq_any(&mine))
        .filter(summary_assessments::author_id.eq(user_id))
        .select(summary_assessments::id)
        .load(conn)?;
    facts.extend(
        summarised
            .into_iter()
            .map(|id| fact("summary_assessment", Some(id), None)),
    );
    let recorded: Vec<(String, String)> = activities::table
        .filter(activities::enrolment_id.eq_any(&mine))
        .filter(activities::created_by.eq(user_id))
        .filter(activities::created_by.ne(&trainee))
        .order(activities::start_date)
        .select((activities::id, activities::kind))
        .load(conn)?;
    facts.extend(
        recorded
            .into_iter()
            .map(|(id, kind)| fact("activity", Some(id), Some(kind))),
    );
    let reviewed: Vec<String> = group_reviews::table
        .filter(group_reviews::enrolment_id.eq_any(&mine))
        .filter(group_reviews::recorded_by.eq(user_id))
        .select(group_reviews::id)
        .load(conn)?;
    facts.extend(
        reviewed
            .into_iter()
            .map(|id| fact("group_review", Some(id), None)),
    );
    Ok(facts)
}

/// A stored 0/1 flag; anything else is unreadable, never a guess.
fn flag(id: &str, what: &str, v: Option<i32>) -> Result<Option<bool>, AppError> {
    match v {
        None => Ok(None),
        Some(0) => Ok(Some(false)),
        Some(1) => Ok(Some(true)),
        Some(n) => Err(AppError::unreadable(
            "external_assessor",
            id,
            what,
            format!("{n} is not 0 or 1"),
        )),
    }
}

type VettedRow = (
    String,
    Option<i32>,
    Option<String>,
    Option<i32>,
    Option<String>,
);

/// What is recorded: the signer profile's specialty, and the latest approved vetting of
/// the person's address (when they once assessed by link).
pub fn qualifications(
    conn: &mut DbConn,
    user_id: &UserId,
) -> Result<RecordedQualifications, AppError> {
    let mut q = RecordedQualifications::default();
    let email: Option<String> = users::table
        .find(user_id)
        .select(users::email)
        .first(conn)
        .optional()?;
    if let Some(email) = email {
        let vetted: Option<VettedRow> = external_assessors::table
            .filter(external_assessors::email.eq(&email))
            .filter(external_assessors::status.eq("approved"))
            .order(external_assessors::decided_at.desc())
            .select((
                external_assessors::id,
                external_assessors::specialist,
                external_assessors::specialty,
                external_assessors::assessment_training,
                external_assessors::assessment_training_detail,
            ))
            .first(conn)
            .optional()?;
        if let Some((id, specialist, specialty, training, detail)) = vetted {
            q.specialist = flag(&id, "specialist", specialist)?;
            q.specialty = specialty;
            q.assessment_training = flag(&id, "assessment_training", training)?;
            q.assessment_training_detail = detail;
        }
    }
    let specialty: Option<Option<String>> = signer_profiles::table
        .find(user_id)
        .select(signer_profiles::specialty)
        .first(conn)
        .optional()?;
    // The person's own, current profile wins over what a trainee once stated.
    if let Some(s) = specialty.flatten() {
        q.specialist = Some(true);
        q.specialty = Some(s);
    }
    Ok(q)
}

/// The whole check: facts, qualifications, warnings.
pub fn check(
    conn: &mut DbConn,
    cfg: &Config,
    enrolment_id: &EnrolmentId,
    user_id: &UserId,
) -> Result<Independence, AppError> {
    let facts = involvement(conn, enrolment_id, user_id)?;
    let qualifications = qualifications(conn, user_id)?;
    let mut warnings = Vec::new();
    if !facts.is_empty() {
        warnings.push(INVOLVED);
    }
    match qualifications.specialist {
        None => warnings.push(SPECIALIST_NOT_STATED),
        Some(false) => warnings.push(NOT_SPECIALIST),
        Some(true) => {}
    }
    match qualifications.assessment_training {
        None => warnings.push(TRAINING_NOT_STATED),
        Some(false) => warnings.push(NO_TRAINING),
        Some(true) => {}
    }
    Ok(Independence {
        user_id: user_id.to_string(),
        involved: !facts.is_empty(),
        facts,
        qualifications,
        warnings: warnings.into_iter().map(String::from).collect(),
        independence_required: cfg.external_assessor_independence_required,
    })
}

impl Independence {
    /// Where the region requires independence, an involved assessor blocks (409) with
    /// the facts named; elsewhere the facts are a warning in the response.
    pub fn enforce(&self) -> Result<(), AppError> {
        if self.independence_required && self.involved {
            let kinds: Vec<&str> = self.facts.iter().map(|f| f.kind.as_str()).collect();
            return Err(AppError::Conflict(format!(
                "the external assessor was involved in this trainee's training ({}); \
                 a director of studies assigns another",
                kinds.join(", ")
            )));
        }
        Ok(())
    }
}
