//! The placement evaluation form (utvärdering av placering) and the half-years the
//! answers are reported by. The form is fixed for every region: its topics are quoted
//! with their source in `catalog/placement-evaluation.json`, which this build embeds.

use std::collections::{BTreeMap, HashSet};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AppError;

const CATALOGUE: &str = include_str!("../../catalog/placement-evaluation.json");

/// The form a trainee fills in after a placement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationForm {
    pub scale: Scale,
    /// Every question must be answered, with a whole number on the scale.
    pub questions: Vec<Question>,
    /// The optional free-text comment's length limit, in characters.
    pub comment_max_chars: usize,
    /// Answers are shown to directors only for a unit and half-year with at least this
    /// many of them.
    pub minimum_group_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Scale {
    #[schema(example = 1)]
    pub min: i32,
    #[schema(example = 5)]
    pub max: i32,
    pub min_label: String,
    pub max_label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Question {
    /// The answer's key in `answers`.
    #[schema(example = "supervision")]
    pub key: String,
    /// The question as the trainee reads it (Swedish).
    pub text: String,
    /// The topic as the source names it.
    pub topic: String,
}

/// The form as embedded in this build.
pub fn form() -> Result<EvaluationForm, AppError> {
    serde_json::from_str(CATALOGUE)
        .map_err(|e| AppError::Internal(format!("catalog/placement-evaluation.json: {e}")))
}

/// Every question answered once, on the scale, and nothing else.
pub fn check_answers(
    form: &EvaluationForm,
    answers: &BTreeMap<String, i32>,
) -> Result<(), AppError> {
    let keys: HashSet<&str> = form.questions.iter().map(|q| q.key.as_str()).collect();
    if let Some(unknown) = answers.keys().find(|k| !keys.contains(k.as_str())) {
        return Err(AppError::validation(
            &format!("answers.{unknown}"),
            "is not a question of the form (GET /placement-evaluation-form)",
        ));
    }
    for q in &form.questions {
        match answers.get(&q.key) {
            None => {
                return Err(AppError::validation(
                    &format!("answers.{}", q.key),
                    "must be answered",
                ))
            }
            Some(v) if *v < form.scale.min || *v > form.scale.max => {
                return Err(AppError::validation(
                    &format!("answers.{}", q.key),
                    &format!(
                        "must be a whole number from {} to {}",
                        form.scale.min, form.scale.max
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The half-year (termin, as calendar halves) a day falls in: `2026-H1` is January to
/// June, `2026-H2` July to December. Evaluations are counted in the half-year they were
/// submitted, so a closed half-year never changes.
pub fn half_year_of(day: NaiveDate) -> String {
    format!("{}-H{}", day.year(), if day.month() <= 6 { 1 } else { 2 })
}

/// The last day of a half-year given as `YYYY-H1` or `YYYY-H2`; `None` if malformed.
pub fn last_day_of(half_year: &str) -> Option<NaiveDate> {
    let (year, half) = half_year.split_once("-H")?;
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = year.parse().ok()?;
    match half {
        "1" => NaiveDate::from_ymd_opt(year, 6, 30),
        "2" => NaiveDate::from_ymd_opt(year, 12, 31),
        _ => None,
    }
}

#[cfg(test)]
#[path = "form_tests.rs"]
mod tests;
