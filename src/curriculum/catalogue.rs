//! The regulation catalogue: regulation versions and their delmål, seeded from the data
//! files in `catalog/` and extended by administrators.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::crypto::sha256_hex;
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::ids::RegulationId;
use crate::schema::{delmal, regulations};

/// The catalogue shipped with the service (copied from the shared catalogue).
pub const SEED: &str = include_str!("../../catalog/regulations.json");

/// A version of a regulation (e.g. BT under HSLF-FS 2021:8).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Regulation {
    pub id: String,
    /// Stable across versions, e.g. `bt-2021`.
    #[schema(example = "bt-2021")]
    pub code: String,
    #[schema(example = 1)]
    pub version: i32,
    #[schema(example = "Bastjänstgöring")]
    pub name_sv: String,
    #[schema(example = "Basic medical training (BT)")]
    pub name_en: Option<String>,
    /// The statute, e.g. `HSLF-FS 2021:8`.
    #[schema(example = "HSLF-FS 2021:8")]
    pub statute: String,
    #[schema(example = "2021-07-01")]
    pub in_force: Option<String>,
    /// Structural rules (minimum months, placements) as published.
    #[schema(example = json!({"minimum_months": 6, "minimum_months_in": {"akut sjukvård": 3, "primärvård": 3}}))]
    pub rules: Value,
    /// `seed` (shipped catalogue) or `api`.
    #[schema(example = "seed")]
    pub source: String,
    /// True for the newest version of this code.
    pub latest: bool,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

/// A learning objective (delmål).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delmal {
    pub id: String,
    pub regulation_id: String,
    /// `BT7`, `STa3`, `c4`, ...
    #[schema(example = "BT7")]
    pub code: String,
    /// `STa`, `STb`, `STc`, `a`, `b`, `c`, when the regulation groups them.
    #[schema(example = "STa")]
    pub group: Option<String>,
    /// For specialty delmål (STc, c): the specialty; null for common delmål.
    #[schema(example = "allmänmedicin")]
    pub specialty: Option<String>,
    #[schema(example = "Vetenskapligt förhållningssätt")]
    pub title_sv: String,
    #[schema(example = "Scientific approach")]
    pub title_en: Option<String>,
    pub description: Option<String>,
    #[schema(example = 7)]
    pub position: i32,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

/// A delmål as written in a data file or an import.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelmalInput {
    #[schema(example = "STc1")]
    pub code: String,
    #[schema(example = "Allmänmedicinsk konsultation")]
    pub title_sv: String,
    #[serde(default)]
    #[schema(example = "The general practice consultation")]
    pub title_en: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(example = "STc")]
    pub group: Option<String>,
    #[serde(default)]
    #[schema(example = "allmänmedicin")]
    pub specialty: Option<String>,
}

/// A whole regulation version, as in `catalog/regulations.json` or `POST /regulations`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct RegulationInput {
    /// Stable code, lower-case letters, digits and dashes: `bt-2021`.
    #[serde(alias = "id")]
    #[schema(example = "bt-2021")]
    pub code: String,
    #[schema(example = "Bastjänstgöring")]
    pub name_sv: String,
    #[serde(default)]
    pub name_en: Option<String>,
    /// The statute, e.g. `HSLF-FS 2021:8`.
    #[serde(alias = "regulation")]
    #[schema(example = "HSLF-FS 2021:8")]
    pub statute: String,
    #[serde(default)]
    #[schema(example = "2021-07-01")]
    pub in_force: Option<String>,
    #[serde(default)]
    pub rules: Value,
    #[serde(default)]
    pub delmal: Vec<DelmalInput>,
}

impl RegulationInput {
    /// What identifies a version: everything but presentation order of JSON keys.
    fn content_hash(&self) -> String {
        let canonical = serde_json::json!({
            "code": self.code, "name_sv": self.name_sv, "name_en": self.name_en,
            "statute": self.statute, "in_force": self.in_force, "rules": self.rules,
            "delmal": self.delmal,
        });
        sha256_hex(canonical.to_string())
    }
}

/// A `regulations` row as stored; `rules` is a JSON object.
#[derive(Queryable, Selectable)]
#[diesel(table_name = regulations, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct RegulationRow {
    id: String,
    code: String,
    version: i32,
    name_sv: String,
    name_en: Option<String>,
    statute: String,
    in_force: Option<String>,
    rules: String,
    source: String,
    created_at: chrono::NaiveDateTime,
}

fn latest_version(conn: &mut DbConn, code: &str) -> Result<Option<i32>, AppError> {
    Ok(regulations::table
        .filter(regulations::code.eq(code))
        .select(diesel::dsl::max(regulations::version))
        .first::<Option<i32>>(conn)?)
}

fn regulation_from(conn: &mut DbConn, r: RegulationRow) -> Result<Regulation, AppError> {
    let latest = latest_version(conn, &r.code)? == Some(r.version);
    Ok(Regulation {
        id: r.id,
        code: r.code,
        version: r.version,
        name_sv: r.name_sv,
        name_en: r.name_en,
        statute: r.statute,
        in_force: r.in_force,
        rules: serde_json::from_str(&r.rules).map_err(AppError::internal)?,
        source: r.source,
        latest,
        created_at: from_db(r.created_at),
        updated_at: from_db(r.created_at),
    })
}

pub fn get_regulation(conn: &mut DbConn, id: &str) -> Result<Regulation, AppError> {
    let row: RegulationRow = regulations::table
        .find(id)
        .select(RegulationRow::as_select())
        .first(conn)?;
    regulation_from(conn, row)
}

pub fn list_regulations(
    conn: &mut DbConn,
    code: Option<&str>,
    version: Option<i32>,
    latest_only: bool,
) -> Result<Vec<Regulation>, AppError> {
    let mut q = regulations::table
        .select(RegulationRow::as_select())
        .into_boxed();
    if let Some(c) = code {
        q = q.filter(regulations::code.eq(c.to_string()));
    }
    if let Some(v) = version {
        q = q.filter(regulations::version.eq(v));
    }
    let rows: Vec<RegulationRow> = q
        .order((regulations::code, regulations::version))
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let reg = regulation_from(conn, r)?;
        if !latest_only || reg.latest {
            out.push(reg);
        }
    }
    Ok(out)
}

/// A `delmal` row as stored; an empty `specialty` is a delmål common to all.
#[derive(Queryable, Selectable)]
#[diesel(table_name = delmal, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct DelmalRow {
    id: String,
    regulation_id: String,
    code: String,
    group_code: Option<String>,
    specialty: String,
    title_sv: String,
    title_en: Option<String>,
    description: Option<String>,
    position: i32,
    created_at: chrono::NaiveDateTime,
}

impl From<DelmalRow> for Delmal {
    fn from(r: DelmalRow) -> Delmal {
        Delmal {
            id: r.id,
            regulation_id: r.regulation_id,
            code: r.code,
            group: r.group_code,
            specialty: (!r.specialty.is_empty()).then_some(r.specialty),
            title_sv: r.title_sv,
            title_en: r.title_en,
            description: r.description,
            position: r.position,
            version: 1,
            created_at: from_db(r.created_at),
            updated_at: from_db(r.created_at),
        }
    }
}

/// Delmål of a regulation version. `specialty` keeps the common delmål and adds that
/// specialty's; `q` searches code and both titles.
pub fn list_delmal(
    conn: &mut DbConn,
    regulation_id: &RegulationId,
    specialty: Option<&str>,
    group: Option<&str>,
    q: Option<&str>,
) -> Result<Vec<Delmal>, AppError> {
    get_regulation(conn, regulation_id)?;
    delmal_of(conn, regulation_id, specialty, group, q)
}

/// As [`list_delmal`], for a regulation known to exist (a template's: the foreign key
/// says so), without reading the regulation first.
pub fn delmal_of(
    conn: &mut DbConn,
    regulation_id: &RegulationId,
    specialty: Option<&str>,
    group: Option<&str>,
    q: Option<&str>,
) -> Result<Vec<Delmal>, AppError> {
    let mut query = delmal::table
        .filter(delmal::regulation_id.eq(regulation_id.to_string()))
        .select(DelmalRow::as_select())
        .into_boxed();
    if let Some(s) = specialty {
        query = query.filter(
            delmal::specialty
                .eq("")
                .or(delmal::specialty.eq(s.to_string())),
        );
    }
    if let Some(g) = group {
        query = query.filter(delmal::group_code.eq(g.to_string()));
    }
    let rows: Vec<DelmalRow> = query.order(delmal::position).load(conn)?;
    let needle = q.map(str::to_lowercase);
    Ok(rows
        .into_iter()
        .map(Delmal::from)
        .filter(|d| {
            needle.as_ref().is_none_or(|n| {
                d.code.to_lowercase().contains(n)
                    || d.title_sv.to_lowercase().contains(n)
                    || d.title_en
                        .as_ref()
                        .is_some_and(|t| t.to_lowercase().contains(n))
            })
        })
        .collect())
}

/// Codes of the delmål a template or record may refer to in a regulation version
/// (common ones, plus a specialty's).
pub fn delmal_codes(
    conn: &mut DbConn,
    regulation_id: &RegulationId,
    specialty: Option<&str>,
) -> Result<Vec<String>, AppError> {
    // Not boxed, so the statement is prepared once per connection.
    let q = delmal::table
        .filter(delmal::regulation_id.eq(regulation_id))
        .filter(
            delmal::specialty
                .eq("")
                .or(delmal::specialty.eq(specialty.unwrap_or(""))),
        )
        .select(delmal::code);
    Ok(crate::on_backend!(conn, |c| q.load(c))?)
}

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 40
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Checks delmål rows; `prefix` names them in errors (`delmal[3]` or `rows[3]`), with
/// the human row number in the message.
pub fn validate_delmal(
    rows: &[DelmalInput],
    prefix: &str,
    first_row: usize,
    errors: &mut Vec<FieldError>,
) {
    let mut seen = std::collections::HashSet::new();
    for (i, d) in rows.iter().enumerate() {
        let at = |f: &str| format!("{prefix}[{i}].{f}");
        let row = i + first_row;
        if !valid_code(d.code.trim()) {
            errors.push(FieldError::new(
                at("code"),
                format!("row {row}: a code of letters, digits, '-', '_' or '.' (at most 40) is required"),
            ));
        }
        if d.title_sv.trim().is_empty() || d.title_sv.chars().count() > 500 {
            errors.push(FieldError::new(
                at("title_sv"),
                format!("row {row}: a Swedish title (1 to 500 characters) is required"),
            ));
        }
        if d.title_en.as_ref().is_some_and(|t| t.chars().count() > 500) {
            errors.push(FieldError::new(
                at("title_en"),
                format!("row {row}: at most 500 characters"),
            ));
        }
        let key = (
            d.specialty
                .clone()
                .unwrap_or_default()
                .trim()
                .to_lowercase(),
            d.code.trim().to_string(),
        );
        if !seen.insert(key) {
            errors.push(FieldError::new(
                at("code"),
                format!("row {row}: code {} appears twice", d.code.trim()),
            ));
        }
    }
}

fn insert_delmal(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    regulation_id: &RegulationId,
    rows: &[DelmalInput],
    first_position: i32,
) -> Result<(), AppError> {
    for (i, d) in rows.iter().enumerate() {
        let specialty = d.specialty.clone().unwrap_or_default().trim().to_string();
        diesel::insert_into(delmal::table)
            .values((
                delmal::id.eq(Uuid::new_v4().to_string()),
                delmal::regulation_id.eq(regulation_id),
                delmal::code.eq(d.code.trim()),
                delmal::group_code.eq(d.group.as_deref().map(str::trim).filter(|g| !g.is_empty())),
                delmal::specialty.eq(specialty),
                delmal::title_sv.eq(d.title_sv.trim()),
                delmal::title_en.eq(d
                    .title_en
                    .as_deref()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())),
                delmal::description.eq(d
                    .description
                    .as_deref()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())),
                delmal::position.eq(first_position + i as i32),
                delmal::created_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// What to do with a regulation whose content may or may not be in the database.
pub enum Stored {
    Created(Regulation),
    /// Identical content already stored as this version.
    Unchanged(Regulation),
}

/// Stores a regulation as a new version unless an identical one exists.
pub fn store_regulation(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    input: &RegulationInput,
    source: &str,
) -> Result<Stored, AppError> {
    let mut errors = Vec::new();
    if !valid_code(&input.code) || input.code.chars().any(|c| c.is_ascii_uppercase()) {
        errors.push(FieldError::new(
            "code",
            "lower-case letters, digits and dashes, e.g. bt-2021",
        ));
    }
    if input.name_sv.trim().is_empty() {
        errors.push(FieldError::new("name_sv", "is required"));
    }
    if input.statute.trim().is_empty() {
        errors.push(FieldError::new(
            "statute",
            "is required, e.g. HSLF-FS 2021:8",
        ));
    }
    validate_delmal(&input.delmal, "delmal", 1, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let hash = input.content_hash();
    let same: Option<String> = regulations::table
        .filter(regulations::code.eq(&input.code))
        .filter(regulations::content_hash.eq(&hash))
        .select(regulations::id)
        .first(conn)
        .optional()?;
    if let Some(id) = same {
        return Ok(Stored::Unchanged(get_regulation(conn, &id)?));
    }
    let version = latest_version(conn, &input.code)?.unwrap_or(0) + 1;
    let id = RegulationId::random();
    diesel::insert_into(regulations::table)
        .values((
            regulations::id.eq(&id),
            regulations::code.eq(&input.code),
            regulations::version.eq(version),
            regulations::name_sv.eq(input.name_sv.trim()),
            regulations::name_en.eq(&input.name_en),
            regulations::statute.eq(input.statute.trim()),
            regulations::in_force.eq(&input.in_force),
            regulations::rules.eq(input.rules.to_string()),
            regulations::content_hash.eq(&hash),
            regulations::source.eq(source),
            regulations::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    insert_delmal(conn, now, &id, &input.delmal, 1)?;
    Ok(Stored::Created(get_regulation(conn, &id)?))
}

#[derive(Deserialize)]
struct SeedFile {
    regulations: Vec<RegulationInput>,
}

/// Loads the shipped catalogue. Idempotent: unchanged regulations are left alone, a
/// changed one becomes a new version; nothing existing is modified.
pub fn seed(conn: &mut DbConn, now: DateTime<Utc>) -> Result<Vec<(String, i32)>, AppError> {
    let file: SeedFile = serde_json::from_str(SEED)
        .map_err(|e| AppError::Config(format!("catalog/regulations.json: {e}")))?;
    let mut created = Vec::new();
    for r in &file.regulations {
        if let Stored::Created(reg) = store_regulation(conn, now, r, "seed")? {
            created.push((reg.code, reg.version));
        }
    }
    Ok(created)
}

/// Adds delmål (typically a specialty's c-delmål) to an existing version. Common delmål
/// cannot be added: changing those is a new version of the regulation.
pub fn add_delmal(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    regulation_id: &RegulationId,
    rows: &[DelmalInput],
    prefix: &str,
    first_row: usize,
) -> Result<Vec<Delmal>, AppError> {
    get_regulation(conn, regulation_id)?;
    let mut errors = Vec::new();
    validate_delmal(rows, prefix, first_row, &mut errors);
    let existing: Vec<(String, String)> = delmal::table
        .filter(delmal::regulation_id.eq(regulation_id))
        .select((delmal::specialty, delmal::code))
        .load(conn)?;
    for (i, d) in rows.iter().enumerate() {
        let row = i + first_row;
        let specialty = d.specialty.clone().unwrap_or_default().trim().to_string();
        if specialty.is_empty() {
            errors.push(FieldError::new(
                format!("{prefix}[{i}].specialty"),
                format!("row {row}: only specialty delmål can be added; changed common delmål are a new regulation version"),
            ));
        } else if existing
            .iter()
            .any(|(s, c)| s.eq_ignore_ascii_case(&specialty) && c == d.code.trim())
        {
            errors.push(FieldError::new(
                format!("{prefix}[{i}].code"),
                format!(
                    "row {row}: {} already exists for {specialty}",
                    d.code.trim()
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let next: Option<i32> = delmal::table
        .filter(delmal::regulation_id.eq(regulation_id))
        .select(diesel::dsl::max(delmal::position))
        .first(conn)?;
    let before: Vec<String> = delmal::table
        .filter(delmal::regulation_id.eq(regulation_id))
        .select(delmal::id)
        .load(conn)?;
    insert_delmal(conn, now, regulation_id, rows, next.unwrap_or(0) + 1)?;
    Ok(list_delmal(conn, regulation_id, None, None, None)?
        .into_iter()
        .filter(|d| !before.contains(&d.id))
        .collect())
}

/// Parses a CSV import: header `code,specialty,title_sv,title_en,description,group`
/// (any order; code and title_sv required). Row numbers count the header as row 1.
pub fn parse_csv(body: &[u8]) -> Result<Vec<DelmalInput>, AppError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| AppError::Malformed(format!("CSV header: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(code), Some(title_sv)) = (col("code"), col("title_sv")) else {
        return Err(AppError::validation(
            "header",
            "the CSV needs the columns code and title_sv",
        ));
    };
    let known = [
        "code",
        "specialty",
        "title_sv",
        "title_en",
        "description",
        "group",
    ];
    if let Some(extra) = headers
        .iter()
        .find(|h| !known.contains(&h.to_lowercase().as_str()))
    {
        return Err(AppError::validation(
            "header",
            &format!("unknown column {extra:?}; known: {}", known.join(", ")),
        ));
    }
    let (specialty, title_en, description, group) = (
        col("specialty"),
        col("title_en"),
        col("description"),
        col("group"),
    );
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| AppError::Malformed(format!("CSV row {}: {e}", i + 2)))?;
        let get = |c: Option<usize>| {
            c.and_then(|c| record.get(c))
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        rows.push(DelmalInput {
            code: get(Some(code)).unwrap_or_default(),
            title_sv: get(Some(title_sv)).unwrap_or_default(),
            title_en: get(title_en),
            description: get(description),
            group: get(group),
            specialty: get(specialty),
        });
    }
    Ok(rows)
}
