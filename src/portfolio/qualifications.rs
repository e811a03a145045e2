//! What a person without an account who assesses is qualified as (issue 14 item 8): their
//! specialist status and their training in assessment methods, kept on their vetting
//! record (`vetting`). The trainee who named the person states it; whoever approves the
//! vetting confirms it with the approval.
//!
//! Why both: the pilot's external assessor "är en legitimerad läkare med
//! specialistkompetens som är utbildad i bedömningsmetoder och inte ska ha varit
//! involverad i BT-läkarens utbildning" (seed 002, Region Stockholm's BT report, on the
//! final assessment). The regulation text at hand (HSLF-FS 2021:8 as quoted in
//! `catalog/`) does not say what an assessor of a formative assessment must be, so a
//! missing qualification is a warning the vetter sees, and a block only where the region
//! says so (`ASSESSOR_QUALIFICATIONS_REQUIRED`).

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, Event};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::schema::external_assessors;

/// Warning codes, as `qualification_warnings` lists them.
pub const SPECIALIST_NOT_STATED: &str = "specialist_status_not_stated";
pub const NOT_SPECIALIST: &str = "not_specialist";
pub const TRAINING_NOT_STATED: &str = "assessment_training_not_stated";
pub const NO_TRAINING: &str = "no_assessment_training";
pub const WARNINGS: &[&str] = &[
    SPECIALIST_NOT_STATED,
    NOT_SPECIALIST,
    TRAINING_NOT_STATED,
    NO_TRAINING,
];

/// What an audit entry keeps of stated qualifications as values; the specialty and the
/// training's description only as keyed digests (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &["specialist", "assessment_training", "confirmed_by"];

/// A person's qualifications as an assessor. Null: not stated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssessorQualifications {
    /// Whether the person is a specialist (specialistkompetent läkare); false prints as
    /// "ej specialist".
    pub specialist: Option<bool>,
    /// The specialty, for a specialist.
    #[schema(example = "Akutsjukvård")]
    pub specialty: Option<String>,
    /// Whether the person is trained in assessment methods (utbildad i
    /// bedömningsmetoder).
    pub assessment_training: Option<bool>,
    /// When and what: a date or a description of the training.
    #[schema(example = "Kurs i bedömningsmetoder, SPUR, 2023-05-10")]
    pub assessment_training_detail: Option<String>,
    /// Who confirmed these by approving the vetting; null until then.
    pub confirmed_by: Option<String>,
}

impl AssessorQualifications {
    /// From the stored columns; a flag other than 0 or 1 is unreadable, never a guess.
    pub fn from_stored(
        id: &str,
        specialist: Option<i32>,
        specialty: Option<String>,
        training: Option<i32>,
        detail: Option<String>,
        confirmed_by: Option<String>,
    ) -> Result<AssessorQualifications, AppError> {
        let flag = |what: &str, v: Option<i32>| match v {
            None => Ok(None),
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            Some(n) => Err(AppError::unreadable(
                "external_assessor",
                id,
                what,
                format!("{n} is not 0 or 1"),
            )),
        };
        Ok(AssessorQualifications {
            specialist: flag("specialist", specialist)?,
            specialty,
            assessment_training: flag("assessment_training", training)?,
            assessment_training_detail: detail,
            confirmed_by,
        })
    }

    /// What the vetter is warned about (empty: both stated and present).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        match self.specialist {
            None => w.push(SPECIALIST_NOT_STATED),
            Some(false) => w.push(NOT_SPECIALIST),
            Some(true) => {}
        }
        match self.assessment_training {
            None => w.push(TRAINING_NOT_STATED),
            Some(false) => w.push(NO_TRAINING),
            Some(true) => {}
        }
        w.into_iter().map(String::from).collect()
    }

    /// One line for the dossier and forms, in Swedish.
    pub fn line_sv(&self) -> String {
        let specialist = match (self.specialist, self.specialty.as_deref()) {
            (Some(true), Some(s)) => format!("specialist i {s}"),
            (Some(true), None) => "specialist".into(),
            (Some(false), _) => "ej specialist".into(),
            (None, _) => "specialistkompetens ej angiven".into(),
        };
        let training = match (
            self.assessment_training,
            self.assessment_training_detail.as_deref(),
        ) {
            (Some(true), Some(d)) => format!("utbildad i bedömningsmetoder ({d})"),
            (Some(true), None) => "utbildad i bedömningsmetoder".into(),
            (Some(false), _) => "ej utbildad i bedömningsmetoder".into(),
            (None, _) => "utbildning i bedömningsmetoder ej angiven".into(),
        };
        format!("{specialist}; {training}")
    }
}

/// What the trainee states about the person when naming them (and the vetter may
/// correct before approving).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualificationsInput {
    /// Specialist (true) or "ej specialist" (false).
    pub specialist: bool,
    /// Needed when `specialist` is true.
    #[schema(example = "Akutsjukvård")]
    pub specialty: Option<String>,
    pub assessment_training: bool,
    /// Needed when `assessment_training` is true: a date or a short description.
    #[schema(example = "Kurs i bedömningsmetoder, SPUR, 2023-05-10")]
    pub assessment_training_detail: Option<String>,
}

fn text(
    field: &str,
    v: Option<&str>,
    needed: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let v = v.map(str::trim).filter(|v| !v.is_empty());
    match v {
        None if needed => {
            errors.push(FieldError::new(field, "needed with true above"));
            None
        }
        None => None,
        // It reaches the vetter's list, the dossier and the forms: printable text only.
        Some(v) if crate::accounts::service::name_problem(v).is_some() => {
            errors.push(FieldError::new(
                field,
                "1 to 200 characters of printable text",
            ));
            None
        }
        Some(v) => Some(v.to_string()),
    }
}

/// Checks the input; the specialty and detail are kept only with a true flag. Field
/// names in errors start with `prefix` (the object's name in a larger body).
pub fn checked(
    input: &QualificationsInput,
    prefix: &str,
) -> Result<AssessorQualifications, AppError> {
    let mut errors = Vec::new();
    let specialty = text(
        &format!("{prefix}specialty"),
        input.specialty.as_deref(),
        input.specialist,
        &mut errors,
    );
    let detail = text(
        &format!("{prefix}assessment_training_detail"),
        input.assessment_training_detail.as_deref(),
        input.assessment_training,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok(AssessorQualifications {
        specialist: Some(input.specialist),
        specialty: specialty.filter(|_| input.specialist),
        assessment_training: Some(input.assessment_training),
        assessment_training_detail: detail.filter(|_| input.assessment_training),
        confirmed_by: None,
    })
}

/// Stores what is stated about a person still being vetted. `version` is the one the
/// caller read: of two edits at once only one applies (409 for the other).
pub fn store(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    version: i32,
    q: &AssessorQualifications,
) -> Result<(), AppError> {
    let changed = diesel::update(
        external_assessors::table
            .find(id)
            .filter(external_assessors::version.eq(version))
            .filter(external_assessors::status.eq(super::vetting::PENDING)),
    )
    .set((
        external_assessors::specialist.eq(q.specialist.map(i32::from)),
        external_assessors::specialty.eq(&q.specialty),
        external_assessors::assessment_training.eq(q.assessment_training.map(i32::from)),
        external_assessors::assessment_training_detail.eq(&q.assessment_training_detail),
        external_assessors::version.eq(version + 1),
        external_assessors::updated_at.eq(crate::clock::to_db(ctx.now)),
    ))
    .execute(conn)?;
    if changed != 1 {
        return Err(AppError::Conflict(
            "this person's vetting was decided or changed meanwhile; read it again".into(),
        ));
    }
    // The specialty and the training's description only as keyed digests under the
    // person's key (issue 17).
    let data = audit::text::record_data(conn, ctx.now, id, None, q, AUDIT_FACTS)?;
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&ctx.caller.user_id),
            client: None,
            action: "assessor_qualifications_stated",
            entity: "external_assessor",
            entity_id: id,
            enrolment_id: None,
            data: &data,
        },
    )?;
    Ok(())
}

/// On approval: refuses when the region requires both qualifications and one is
/// missing; the approval itself records who confirmed them.
pub fn approvable(required: bool, q: &AssessorQualifications) -> Result<(), AppError> {
    let warnings = q.warnings();
    if required && !warnings.is_empty() {
        return Err(AppError::Validation(vec![FieldError::new(
            "qualifications",
            format!(
                "this region approves only specialists trained in assessment methods: {}",
                warnings.join(", ")
            ),
        )]));
    }
    Ok(())
}

#[cfg(test)]
#[path = "qualifications_tests.rs"]
mod tests;
