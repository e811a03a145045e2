//! Assessment instruments and their forms. The national default comes from
//! `catalog/assessment-instruments.json`; a region (or any organisation) can store its
//! own version, which applies to its trainees and those of the organisations below it.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::principal::{org_chain, Principal, Role};
use crate::clock::to_db;
use crate::context::Ctx;
use crate::curriculum::templates::AssessmentType;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::ids::OrganisationId;
use crate::schema::assessment_forms;

pub const CATALOG: &str = include_str!("../../catalog/assessment-instruments.json");

/// What an assessor fills in for an instrument.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstrumentForm {
    pub instrument: AssessmentType,
    pub name: String,
    /// What it is for.
    pub what: String,
    /// Context fields (setting, complexity, procedure, ...), free text each.
    pub context_fields: Vec<String>,
    /// Domains rated; empty means free-form ratings (multi-source feedback).
    pub domains: Vec<String>,
    /// Ratings are 1..=scale_max; null means not observed.
    pub scale_max: i32,
    /// Labels of the scale points, when the scale is ordinal.
    pub scale_labels: Vec<String>,
    /// Optional single entrustment rating (O-SCORE), 1..=5.
    pub entrustment_levels: Vec<String>,
    /// Whose form this is: null for the national default.
    pub organisation_id: Option<String>,
    /// Version of the organisation's form (0 for the default).
    pub version: i32,
}

/// An organisation's version of a form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormInput {
    pub organisation_id: String,
    #[schema(example = "Mini-CEX (Region Stockholm)")]
    pub name: String,
    #[serde(default)]
    pub what: String,
    #[serde(default)]
    pub context_fields: Vec<String>,
    #[schema(example = json!(["anamnes", "status", "kommunikation", "klinisk bedömning", "helhet"]))]
    pub domains: Vec<String>,
    #[schema(example = 5)]
    pub scale_max: i32,
    #[serde(default)]
    #[schema(example = json!(["behöver full handledning", "behöver mycket stöd", "behöver visst stöd", "klarar med stöd vid behov", "självständig"]))]
    pub scale_labels: Vec<String>,
    #[serde(default)]
    pub entrustment_levels: Vec<String>,
}

#[derive(Deserialize)]
struct File {
    instruments: Vec<Raw>,
}

#[derive(Deserialize)]
struct Raw {
    id: String,
    name: String,
    #[serde(default)]
    what: String,
    #[serde(default)]
    context_fields: Vec<String>,
    #[serde(default)]
    domains: serde_json::Value,
    #[serde(default)]
    scale: serde_json::Value,
}

fn scale_of(scale: &serde_json::Value) -> (i32, Vec<String>) {
    if let Some(max) = scale.get("max").and_then(|m| m.as_i64()) {
        return (max as i32, Vec::new());
    }
    match scale.get("levels") {
        Some(serde_json::Value::Array(levels)) => (
            levels.len() as i32,
            levels
                .iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect(),
        ),
        Some(serde_json::Value::Number(n)) => (n.as_i64().unwrap_or(5) as i32, Vec::new()),
        _ => (9, Vec::new()),
    }
}

/// All instruments, in the catalogue's terms mapped to the API's enumeration.
pub fn forms() -> Result<Vec<InstrumentForm>, AppError> {
    let file: File = serde_json::from_str(CATALOG)
        .map_err(|e| AppError::Config(format!("catalog/assessment-instruments.json: {e}")))?;
    let entrustment = file
        .instruments
        .iter()
        .find(|r| r.id == "o-score")
        .map(|r| scale_of(&r.scale).1)
        .unwrap_or_default();
    let mini_cex = file.instruments.iter().find(|r| r.id == "mini-cex");
    let mut out = Vec::new();
    for r in &file.instruments {
        let instrument = match r.id.as_str() {
            "mini-cex" => AssessmentType::MiniCex,
            "dops" => AssessmentType::Dops,
            "cbd" => AssessmentType::Cbd,
            "sit-in" => AssessmentType::SitIn,
            "msf" => AssessmentType::MultiSource,
            _ => continue,
        };
        // A sit-in is rated like a Mini-CEX unless a region defines its own form.
        let source = if instrument == AssessmentType::SitIn {
            mini_cex.unwrap_or(r)
        } else {
            r
        };
        let domains: Vec<String> = source
            .domains
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let (scale_max, scale_labels) = scale_of(&source.scale);
        out.push(InstrumentForm {
            instrument,
            name: r.name.clone(),
            what: r.what.clone(),
            context_fields: source.context_fields.clone(),
            domains,
            scale_max,
            scale_labels,
            entrustment_levels: entrustment.clone(),
            organisation_id: None,
            version: 0,
        });
    }
    Ok(out)
}

fn instrument_key(i: AssessmentType) -> String {
    serde_json::to_value(i)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The newest version an organisation stored for an instrument, if any.
fn stored(
    conn: &mut DbConn,
    instrument: AssessmentType,
    org: &str,
) -> Result<Option<InstrumentForm>, AppError> {
    let row: Option<(String, i32)> = assessment_forms::table
        .filter(assessment_forms::instrument.eq(instrument_key(instrument)))
        .filter(assessment_forms::organisation_id.eq(org))
        .order(assessment_forms::version.desc())
        .select((assessment_forms::definition, assessment_forms::version))
        .first(conn)
        .optional()?;
    Ok(match row {
        None => None,
        Some((definition, version)) => {
            let f: FormInput = serde_json::from_str(&definition).map_err(AppError::internal)?;
            Some(InstrumentForm {
                instrument,
                name: f.name,
                what: f.what,
                context_fields: f.context_fields,
                domains: f.domains,
                scale_max: f.scale_max,
                scale_labels: f.scale_labels,
                entrustment_levels: f.entrustment_levels,
                organisation_id: Some(f.organisation_id),
                version,
            })
        }
    })
}

/// The form that applies in an organisation: its own, or the nearest above it, or the
/// national default.
pub fn form_for(
    conn: &mut DbConn,
    instrument: AssessmentType,
    org: Option<&str>,
) -> Result<InstrumentForm, AppError> {
    if let Some(org) = org {
        for o in org_chain(conn, &OrganisationId::from(org))? {
            if let Some(f) = stored(conn, instrument, &o)? {
                return Ok(f);
            }
        }
    }
    forms()?
        .into_iter()
        .find(|f| f.instrument == instrument)
        .ok_or_else(|| AppError::validation("instrument", "no form for this instrument"))
}

/// Every instrument's form as it applies in `org` (national defaults without one).
pub fn forms_for(conn: &mut DbConn, org: Option<&str>) -> Result<Vec<InstrumentForm>, AppError> {
    let defaults = forms()?;
    defaults
        .into_iter()
        .map(|f| form_for(conn, f.instrument, org))
        .collect()
}

/// Stores a new version of an organisation's form. Administrators of the organisation.
/// Assessments already signed keep the ratings they were given.
pub fn store(
    conn: &mut DbConn,
    ctx: &Ctx,
    instrument: AssessmentType,
    f: FormInput,
) -> Result<InstrumentForm, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    if crate::accounts::service::get_org(conn, &f.organisation_id).is_err() {
        return Err(AppError::validation(
            "organisation_id",
            "no such organisation",
        ));
    }
    Principal::require(me.has_role_over(
        conn,
        Role::Administrator,
        &OrganisationId::from(&f.organisation_id),
    )?)?;
    let mut errors = Vec::new();
    if f.name.trim().is_empty() {
        errors.push(FieldError::new("name", "is required"));
    }
    if !(2..=20).contains(&f.scale_max) {
        errors.push(FieldError::new("scale_max", "between 2 and 20"));
    }
    if !f.scale_labels.is_empty() && f.scale_labels.len() as i32 != f.scale_max {
        errors.push(FieldError::new(
            "scale_labels",
            "one label per scale point, or none",
        ));
    }
    if f.domains.len() > 30 || f.domains.iter().any(|d| d.trim().is_empty()) {
        errors.push(FieldError::new("domains", "at most 30 named domains"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let version = stored(conn, instrument, &f.organisation_id)?
        .map(|s| s.version)
        .unwrap_or(0)
        + 1;
    diesel::insert_into(assessment_forms::table)
        .values((
            assessment_forms::id.eq(Uuid::new_v4().to_string()),
            assessment_forms::instrument.eq(instrument_key(instrument)),
            assessment_forms::organisation_id.eq(&f.organisation_id),
            assessment_forms::definition.eq(serde_json::to_string(&f).map_err(AppError::internal)?),
            assessment_forms::version.eq(version),
            assessment_forms::created_by.eq(&me.user_id),
            assessment_forms::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    stored(conn, instrument, &f.organisation_id)?
        .ok_or_else(|| AppError::internal("form not stored"))
}
