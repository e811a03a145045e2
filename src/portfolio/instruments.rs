//! Assessment instruments and their scales, from `catalog/assessment-instruments.json`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::curriculum::templates::AssessmentType;
use crate::error::AppError;

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
        });
    }
    Ok(out)
}

pub fn form(instrument: AssessmentType) -> Result<InstrumentForm, AppError> {
    forms()?
        .into_iter()
        .find(|f| f.instrument == instrument)
        .ok_or_else(|| AppError::validation("instrument", "no form for this instrument"))
}
