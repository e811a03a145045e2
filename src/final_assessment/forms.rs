//! Which certificate forms (intyg) an enrolment gets. The enrolment knows its regulation
//! through its template version (the regulation's catalogue code and statute) and its
//! track; `catalog/certificates.json` says, per regulation code, which statute it must
//! have, which tracks may follow it and which forms of that statute it leads to. Nothing
//! is guessed from delmål codes: a regulation the catalogue does not list, or a track
//! that does not follow it, is an error that names it.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::enrolment::service::Track;
use crate::error::AppError;

/// One form of a statute, as the catalogue lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Form {
    /// The form's appendix (bilaga) in the statute: `4`, or a range such as `8-11`.
    #[serde(deserialize_with = "appendix")]
    pub appendix: String,
    pub title_sv: String,
    /// Who signs, as the form names them.
    #[serde(default)]
    pub signed_by: Vec<String>,
    /// Kinds of training activity one form covers (auskultation, kurs, ...).
    #[serde(default)]
    pub variants: Vec<String>,
    /// Who signs each variant: a variant's own entry, else `other`.
    #[serde(default)]
    pub variant_signed_by: BTreeMap<String, Vec<String>>,
}

impl Form {
    /// Who signs the form for `variant`.
    pub fn signers_of(&self, variant: &str) -> Vec<String> {
        self.variant_signed_by
            .get(variant)
            .or_else(|| self.variant_signed_by.get("other"))
            .cloned()
            .unwrap_or_else(|| self.signed_by.clone())
    }
}

fn appendix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::String(s) => Ok(s),
        other => Err(serde::de::Error::custom(format!(
            "appendix: a number or a range, not {other}"
        ))),
    }
}

#[derive(Debug, Clone, Deserialize)]
struct SetEntry {
    statute_key: String,
    statute: String,
    tracks: Vec<String>,
    forms: Vec<String>,
    /// The application form whose enclosures the application summary lists.
    #[serde(default)]
    application: Option<String>,
}

/// The STa3 certificate (HSLF-FS 2021:8 bilaga 12) as the catalogue describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Sta3 {
    pub appendix: String,
    /// The delmål code the records must be linked to.
    pub delmal: String,
    /// The activity kinds whose records the certificate lists.
    pub record_kinds: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Committee {
    replaces: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Catalogue {
    sets: BTreeMap<String, serde_json::Value>,
    committee: Committee,
    activity_variants: BTreeMap<String, serde_json::Value>,
    sta3: Sta3,
    #[serde(flatten)]
    statutes: BTreeMap<String, serde_json::Value>,
}

/// The kind of training a form set certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bastjänstgöring, HSLF-FS 2021:8.
    Bt2021,
    /// Specialiseringstjänstgöring, HSLF-FS 2021:8.
    St2021,
    /// Specialiseringstjänstgöring, SOSFS 2015:8.
    St2015,
}

/// The forms one enrolment gets, in the catalogue's order.
#[derive(Debug, Clone)]
pub struct FormSet {
    pub kind: Kind,
    pub statute: String,
    pub forms: Vec<Form>,
    /// Signature lines a clinical competence committee fills instead (see the catalogue).
    pub committee_replaces: Vec<String>,
    /// The application form (ansökan) whose enclosures the summary lists, if catalogued.
    pub application: Option<Form>,
    /// Which training-activity variant certifies a kind of record (`placement` or an
    /// activity kind); a kind mapped to `None` gets no training-activity form.
    pub variants: BTreeMap<String, Option<String>>,
    /// The STa3 certificate, when the set has its form.
    pub sta3: Option<Sta3>,
}

impl FormSet {
    /// The form with this appendix, if the set has it.
    pub fn form(&self, appendix: &str) -> Option<&Form> {
        self.forms.iter().find(|f| f.appendix == appendix)
    }

    /// The training-activity variant for a kind of record, if it gets a form.
    pub fn variant_of(&self, kind: &str) -> Option<&str> {
        self.variants.get(kind).and_then(|v| v.as_deref())
    }
}

const CATALOGUE: &str = include_str!("../../catalog/certificates.json");

/// The form set for a regulation (catalogue `code` and stored `statute`) and a track.
pub fn form_set(code: &str, statute: &str, track: Track) -> Result<FormSet, AppError> {
    form_set_from(CATALOGUE, code, statute, track)
}

pub(crate) fn form_set_from(
    catalogue: &str,
    code: &str,
    statute: &str,
    track: Track,
) -> Result<FormSet, AppError> {
    let all: Catalogue = serde_json::from_str(catalogue).map_err(AppError::internal)?;
    let Some(entry) = all.sets.get(code) else {
        return Err(AppError::Conflict(format!(
            "no certificate forms are catalogued for the regulation {code} ({statute})"
        )));
    };
    let entry: SetEntry = serde_json::from_value(entry.clone()).map_err(AppError::internal)?;
    if entry.statute != statute {
        return Err(AppError::Conflict(format!(
            "the regulation {code} is stored with the statute {statute}, but its forms are \
             those of {}",
            entry.statute
        )));
    }
    if !entry.tracks.iter().any(|t| t == track.as_str()) {
        return Err(AppError::Conflict(format!(
            "the track {} does not follow the regulation {code} ({statute})",
            track.as_str()
        )));
    }
    let kind = match code {
        "bt-2021" => Kind::Bt2021,
        "st-2021" => Kind::St2021,
        "st-2015" => Kind::St2015,
        other => {
            return Err(AppError::Conflict(format!(
                "certificates for the regulation {other} are catalogued but not built"
            )))
        }
    };
    let forms: Vec<Form> = all
        .statutes
        .get(&entry.statute_key)
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(AppError::internal)?
        .unwrap_or_default();
    let find = |a: &String| {
        forms
            .iter()
            .find(|f| &f.appendix == a)
            .cloned()
            .ok_or_else(|| {
                AppError::internal(format!("bilaga {a} of {} not catalogued", entry.statute))
            })
    };
    let application = entry.application.as_ref().map(find).transpose()?;
    let forms = entry
        .forms
        .iter()
        .map(find)
        .collect::<Result<Vec<_>, _>>()?;
    let variants: BTreeMap<String, Option<String>> = all
        .activity_variants
        .get(&entry.statute_key)
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(AppError::internal)?
        .unwrap_or_default();
    let sta3 = forms
        .iter()
        .any(|f| f.appendix == all.sta3.appendix)
        .then_some(all.sta3);
    Ok(FormSet {
        kind,
        statute: entry.statute,
        forms,
        committee_replaces: all.committee.replaces,
        application,
        variants,
        sta3,
    })
}

#[cfg(test)]
#[path = "forms_tests.rs"]
mod tests;
