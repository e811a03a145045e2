//! Programme templates: a region's way of running BT or ST, versioned because content
//! changes during the year (the pilot changed twice). Versions are immutable; trainees
//! stay on the version they were enrolled on.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::principal::{Principal, Role};
use crate::clock::{from_db, to_db};
use crate::curriculum::catalogue;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};
use crate::ids::{OrganisationId, RegulationId, TemplateId, UserId};
use crate::schema::programme_templates;

/// Formative assessment instruments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssessmentType {
    /// Mini-CEX: observed patient encounter.
    MiniCex,
    /// DOPS: observed procedure.
    Dops,
    /// CbD: case-based discussion.
    Cbd,
    /// Sit-in (medsittning).
    SitIn,
    /// Multi-source feedback.
    MultiSource,
}

/// What a checklist item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChecklistKind {
    /// A learning activity to do (lärandeaktivitet).
    LearningActivity,
    /// Formative assessments of a type, with a count.
    Assessment,
    /// A topic for supervision talks.
    SupervisionTopic,
    /// An area for deeper study (fördjupning).
    DeeperStudy,
    /// Teaching: regional or local programme days.
    Teaching,
    /// A course (e.g. the insurance-medicine day).
    Course,
}

/// A required item of a placement's checklist or of the whole programme.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    /// Stable across versions when the client keeps it; generated if absent. Records
    /// refer to it, so an item keeps its meaning in later versions.
    #[serde(default)]
    pub id: Option<String>,
    pub kind: ChecklistKind,
    #[schema(example = "Mini-CEX på vårdcentralen")]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// For `assessment`: the instrument.
    #[serde(default)]
    pub assessment_type: Option<AssessmentType>,
    /// How many are required (assessments, teaching days); default 1.
    #[serde(default)]
    #[schema(example = 2)]
    pub count: Option<i32>,
    /// Delmål codes the item serves.
    #[serde(default)]
    #[schema(example = json!(["BT1", "BT9"]))]
    pub delmal: Vec<String>,
    /// The step this item must be done before (a regional rule, not a regulation's), e.g.
    /// `AT-tentamen`: Region Jönköping lets an AT doctor sit the AT exam only after four
    /// approved sit-ins, one in each main placement. Progress lists each such step with
    /// what is still missing (`prerequisites`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "AT-tentamen")]
    pub prerequisite_for: Option<String>,
}

/// A kind of placement (tjänstgöringsavsnitt) with its nominal length and checklist.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementType {
    /// Short key used by enrolments, e.g. `allmanmedicin`.
    #[schema(example = "allmanmedicin")]
    pub key: String,
    /// Display name, e.g. `Allmänmedicin`.
    #[schema(example = "Allmänmedicin")]
    pub name: String,
    /// Nominal length in months (full time).
    #[schema(example = 4)]
    pub months: i32,
    /// Supervision cadence: a talk at least every N days (7 in allmänmedicin, else 14).
    #[schema(example = 7)]
    pub supervision_every_days: i32,
    /// Categories of the regulation's structural rules this placement counts towards,
    /// e.g. `["primärvård"]` or `["akut sjukvård"]`.
    #[serde(default)]
    #[schema(example = json!(["primärvård"]))]
    pub counts_as: Vec<String>,
    #[serde(default)]
    pub checklist: Vec<ChecklistItem>,
}

/// The content of a template version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateContent {
    #[schema(example = "BT Region Stockholm")]
    pub name: String,
    /// For ST: the specialty whose c-delmål apply.
    #[serde(default)]
    pub specialty: Option<String>,
    /// Nominal length of the programme at full time.
    #[schema(example = 12)]
    pub duration_months: i32,
    /// Cadence where a placement type sets none (days).
    #[schema(example = 14)]
    pub supervision_every_days: i32,
    pub placement_types: Vec<PlacementType>,
    /// Items for the whole programme (regional teaching, insurance-medicine day, courses).
    #[serde(default)]
    pub programme_items: Vec<ChecklistItem>,
}

/// A version of a programme template.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgrammeTemplate {
    /// The template (same for every version).
    pub id: String,
    #[schema(example = 2)]
    pub version: i32,
    pub organisation_id: String,
    pub regulation_id: String,
    #[serde(flatten)]
    pub content: TemplateContent,
    pub latest: bool,
    pub created_by: Option<String>,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl ProgrammeTemplate {
    pub fn etag(&self) -> String {
        crate::http::etag(self.version, self.updated_at)
    }

    pub fn placement_type(&self, key: &str) -> Option<&PlacementType> {
        self.content.placement_types.iter().find(|p| p.key == key)
    }
}

/// A `programme_templates` row as stored; `content` is the template as JSON.
#[derive(Queryable, Selectable)]
#[diesel(table_name = programme_templates, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct TemplateRow {
    template_id: TemplateId,
    version: i32,
    organisation_id: OrganisationId,
    regulation_id: RegulationId,
    content: String,
    created_by: Option<UserId>,
    created_at: chrono::NaiveDateTime,
}

fn template_from(conn: &mut DbConn, r: TemplateRow) -> Result<ProgrammeTemplate, AppError> {
    let latest = latest_version(conn, &r.template_id)? == Some(r.version);
    template_with(r, latest)
}

fn template_with(r: TemplateRow, latest: bool) -> Result<ProgrammeTemplate, AppError> {
    let content: TemplateContent = serde_json::from_str(&r.content).map_err(|e| {
        AppError::internal(format!(
            "stored template {} v{}: {e}",
            r.template_id, r.version
        ))
    })?;
    Ok(ProgrammeTemplate {
        id: r.template_id.into_inner(),
        version: r.version,
        organisation_id: r.organisation_id.into_inner(),
        regulation_id: r.regulation_id.into_inner(),
        content,
        latest,
        created_by: r.created_by.map(UserId::into_inner),
        created_at: from_db(r.created_at),
        updated_at: from_db(r.created_at),
    })
}

fn latest_version(conn: &mut DbConn, template_id: &TemplateId) -> Result<Option<i32>, AppError> {
    Ok(programme_templates::table
        .filter(programme_templates::template_id.eq(template_id))
        .select(diesel::dsl::max(programme_templates::version))
        .first(conn)?)
}

/// The regulation and content of one template version: what validating a record needs,
/// without the rest of `get_template` (whether it is the latest version).
pub fn content_of(
    conn: &mut DbConn,
    template_id: &TemplateId,
    version: i32,
) -> Result<(RegulationId, TemplateContent), AppError> {
    let query = programme_templates::table
        .filter(programme_templates::template_id.eq(template_id))
        .filter(programme_templates::version.eq(version))
        .select((
            programme_templates::regulation_id,
            programme_templates::content,
        ));
    let (regulation_id, content): (RegulationId, String) =
        crate::on_backend!(conn, |c| query.first(c))?;
    Ok((
        regulation_id,
        parse_content(template_id, version, &content)?,
    ))
}

/// A version's stored content (`programme_templates.content`), for a caller that read
/// it with other columns in one statement.
pub fn parse_content(
    template_id: &TemplateId,
    version: i32,
    content: &str,
) -> Result<TemplateContent, AppError> {
    serde_json::from_str(content)
        .map_err(|e| AppError::internal(format!("stored template {template_id} v{version}: {e}")))
}

/// A version of a template, or the latest when `version` is None.
pub fn get_template(
    conn: &mut DbConn,
    template_id: &TemplateId,
    version: Option<i32>,
) -> Result<ProgrammeTemplate, AppError> {
    let Some(version) = version else {
        let version = latest_version(conn, template_id)?.ok_or(AppError::NotFound)?;
        let row: TemplateRow = programme_templates::table
            .filter(programme_templates::template_id.eq(template_id))
            .filter(programme_templates::version.eq(version))
            .select(TemplateRow::as_select())
            .first(conn)?;
        return template_with(row, true);
    };
    // Whether it is the latest version, in the same statement (a subquery): progress
    // reads a template on every request.
    diesel::alias!(programme_templates as later: LaterTemplates);
    let newest = later
        .filter(
            later
                .field(programme_templates::template_id)
                .eq(programme_templates::template_id),
        )
        .select(diesel::dsl::max(later.field(programme_templates::version)))
        .single_value();
    let (row, newest): (TemplateRow, Option<i32>) = programme_templates::table
        .filter(programme_templates::template_id.eq(template_id))
        .filter(programme_templates::version.eq(version))
        .select((TemplateRow::as_select(), newest))
        .first(conn)?;
    let latest = newest == Some(row.version);
    template_with(row, latest)
}

pub fn list_versions(
    conn: &mut DbConn,
    template_id: &TemplateId,
) -> Result<Vec<ProgrammeTemplate>, AppError> {
    let rows: Vec<TemplateRow> = programme_templates::table
        .filter(programme_templates::template_id.eq(template_id))
        .order(programme_templates::version)
        .select(TemplateRow::as_select())
        .load(conn)?;
    if rows.is_empty() {
        return Err(AppError::NotFound);
    }
    rows.into_iter().map(|r| template_from(conn, r)).collect()
}

/// Latest version of every template, optionally of one organisation.
pub fn list_templates(
    conn: &mut DbConn,
    organisation_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ProgrammeTemplate>, AppError> {
    let mut q = programme_templates::table
        .filter(programme_templates::version.eq(1))
        .select(programme_templates::template_id)
        .into_boxed();
    if let Some(o) = organisation_id {
        q = q.filter(programme_templates::organisation_id.eq(o.to_string()));
    }
    if let Some(a) = after {
        q = q.filter(programme_templates::template_id.gt(a.to_string()));
    }
    let ids: Vec<TemplateId> = q
        .order(programme_templates::template_id)
        .limit(limit + 1)
        .load(conn)?;
    ids.iter().map(|id| get_template(conn, id, None)).collect()
}

fn check_items(
    items: &[ChecklistItem],
    at: &str,
    codes: &HashSet<String>,
    errors: &mut Vec<FieldError>,
) {
    for (i, item) in items.iter().enumerate() {
        let f = |name: &str| format!("{at}[{i}].{name}");
        if item.title.trim().is_empty() || item.title.chars().count() > 300 {
            errors.push(FieldError::new(f("title"), "1 to 300 characters"));
        }
        if item.kind == ChecklistKind::Assessment && item.assessment_type.is_none() {
            errors.push(FieldError::new(
                f("assessment_type"),
                "an assessment item names its instrument",
            ));
        }
        if item.count.is_some_and(|c| !(1..=100).contains(&c)) {
            errors.push(FieldError::new(f("count"), "between 1 and 100"));
        }
        for code in &item.delmal {
            if !codes.contains(code) {
                errors.push(FieldError::new(
                    f("delmal"),
                    format!("unknown delmål {code} in this regulation version"),
                ));
            }
        }
    }
}

fn validate(
    conn: &mut DbConn,
    regulation_id: &RegulationId,
    content: &mut TemplateContent,
) -> Result<(), AppError> {
    let mut errors = Vec::new();
    let codes: HashSet<String> = match catalogue::get_regulation(conn, regulation_id) {
        Ok(_) => catalogue::delmal_codes(conn, regulation_id, content.specialty.as_deref())?
            .into_iter()
            .collect(),
        Err(_) => {
            errors.push(FieldError::new(
                "regulation_id",
                "no such regulation version",
            ));
            HashSet::new()
        }
    };
    if content.name.trim().is_empty() || content.name.chars().count() > 200 {
        errors.push(FieldError::new("name", "1 to 200 characters"));
    }
    if !(1..=120).contains(&content.duration_months) {
        errors.push(FieldError::new("duration_months", "between 1 and 120"));
    }
    if !(1..=90).contains(&content.supervision_every_days) {
        errors.push(FieldError::new(
            "supervision_every_days",
            "between 1 and 90 days",
        ));
    }
    if content.placement_types.is_empty() {
        errors.push(FieldError::new(
            "placement_types",
            "at least one placement type",
        ));
    }
    let mut keys = HashSet::new();
    for (i, p) in content.placement_types.iter().enumerate() {
        let f = |name: &str| format!("placement_types[{i}].{name}");
        let key_ok = !p.key.is_empty()
            && p.key.len() <= 60
            && p.key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !key_ok {
            errors.push(FieldError::new(
                f("key"),
                "lower-case letters, digits, '_' or '-'",
            ));
        } else if !keys.insert(p.key.clone()) {
            errors.push(FieldError::new(f("key"), "appears twice"));
        }
        if p.name.trim().is_empty() {
            errors.push(FieldError::new(f("name"), "is required"));
        }
        if !(1..=60).contains(&p.months) {
            errors.push(FieldError::new(f("months"), "between 1 and 60"));
        }
        if !(1..=90).contains(&p.supervision_every_days) {
            errors.push(FieldError::new(
                f("supervision_every_days"),
                "between 1 and 90 days",
            ));
        }
        check_items(&p.checklist, &f("checklist"), &codes, &mut errors);
    }
    check_items(
        &content.programme_items,
        "programme_items",
        &codes,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    // Items without an id get one now, so records can point at them for good.
    let mut ids = HashSet::new();
    for item in content
        .placement_types
        .iter_mut()
        .flat_map(|p| p.checklist.iter_mut())
        .chain(content.programme_items.iter_mut())
    {
        let id = item
            .id
            .clone()
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        if !ids.insert(id.clone()) {
            return Err(AppError::validation(
                "checklist",
                &format!("item id {id} appears twice"),
            ));
        }
        item.id = Some(id);
    }
    Ok(())
}

/// May `me` edit templates of `org`? Administrators and directors of studies over it.
pub fn may_edit(conn: &mut DbConn, me: &Principal, org: &OrganisationId) -> Result<bool, AppError> {
    Ok(me.has_role_over(conn, Role::Administrator, org)?
        || me.has_role_over(conn, Role::DirectorOfStudies, org)?)
}

/// Creates version 1 of a new template.
pub fn create_template(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    id: Option<String>,
    organisation_id: &OrganisationId,
    regulation_id: &RegulationId,
    mut content: TemplateContent,
) -> Result<ProgrammeTemplate, AppError> {
    if crate::accounts::service::get_org(conn, organisation_id).is_err() {
        return Err(AppError::validation(
            "organisation_id",
            "no such organisation",
        ));
    }
    Principal::require(may_edit(conn, me, organisation_id)?)?;
    validate(conn, regulation_id, &mut content)?;
    let template_id = TemplateId::new(id.unwrap_or_else(|| Uuid::new_v4().to_string()));
    NewVersionRow {
        id: Uuid::new_v4().to_string(),
        template_id: &template_id,
        version: 1,
        organisation_id,
        regulation_id,
        name: content.name.trim(),
        content: serde_json::to_string(&content).map_err(AppError::internal)?,
        created_by: Some(&me.user_id),
        created_at: to_db(now),
    }
    .insert(conn)?;
    get_template(conn, &template_id, Some(1))
}

/// One stored version of a template (versions never change once written).
#[derive(Insertable)]
#[diesel(table_name = programme_templates)]
struct NewVersionRow<'a> {
    id: String,
    template_id: &'a str,
    version: i32,
    organisation_id: &'a str,
    regulation_id: &'a str,
    name: &'a str,
    content: String,
    created_by: Option<&'a str>,
    created_at: chrono::NaiveDateTime,
}

impl<'a> NewVersionRow<'a> {
    fn insert(self, conn: &mut DbConn) -> Result<(), AppError> {
        diesel::insert_into(programme_templates::table)
            .values(self)
            .execute(conn)?;
        Ok(())
    }
}

/// Editing a template: a new version with the full new content. The regulation version
/// may change too (e.g. to a new version of the regulation).
pub fn new_version(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    template_id: &TemplateId,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    regulation_id: Option<&str>,
    mut content: TemplateContent,
) -> Result<ProgrammeTemplate, AppError> {
    let current = get_template(conn, template_id, None)?;
    Principal::require(may_edit(
        conn,
        me,
        &OrganisationId::from(&current.organisation_id),
    )?)?;
    if_match(&current.etag())?;
    let regulation_id = RegulationId::new(regulation_id.unwrap_or(&current.regulation_id));
    validate(conn, &regulation_id, &mut content)?;
    let version = current.version + 1;
    NewVersionRow {
        id: Uuid::new_v4().to_string(),
        template_id,
        version,
        organisation_id: &current.organisation_id,
        regulation_id: &regulation_id,
        name: content.name.trim(),
        content: serde_json::to_string(&content).map_err(AppError::internal)?,
        created_by: Some(&me.user_id),
        created_at: to_db(now),
    }
    .insert(conn)?;
    get_template(conn, template_id, Some(version))
}
