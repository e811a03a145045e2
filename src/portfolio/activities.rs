//! Learning activities (lärandeaktiviteter): what the trainee did, linked to delmål,
//! a placement and optionally a checklist item of their template version.
//!
//! Longer than the ~600-line target: the record's types, rows, checks and writes are
//! one concern, and the create/update checks (delmål, placement, checklist item) are
//! shared by every write path (the API, xAPI, bulk import), so they stay beside them.
//! Listing with filters and paging is `activity_list`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, Event};
use crate::auth::principal::Principal;
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::curriculum::templates;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::enrolment::service::enrolment_of_placement;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{ActivityId, Day, EnrolmentId, PlacementId, UserId};
use crate::portfolio::attachments::{self, Attachment};
use crate::portfolio::links;
use crate::schema::{activities, enrolments, programme_templates};

// Listing with filters and paging: its own file (`activity_list`), re-exported here.
pub use crate::portfolio::activity_list::{list_activities, Filter};

/// Kind of learning activity.
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
pub enum ActivityKind {
    ClinicalWork,
    Course,
    Seminar,
    RegionalTeaching,
    LocalTeaching,
    ELearning,
    SelfStudy,
    /// Auskultation.
    Observership,
    /// Kvalitets- och förbättringsarbete: certified on the training-activity form
    /// (see `catalog/certificates.json`, `activity_variants`).
    QualityImprovement,
    /// Vetenskapligt arbete: certified on the training-activity form (SOSFS 2015:8) or
    /// through delmål STa3 (HSLF-FS 2021:8 bilaga 12).
    ScientificWork,
    Other,
}

impl ActivityKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ActivityKind::ClinicalWork => "clinical_work",
            ActivityKind::Course => "course",
            ActivityKind::Seminar => "seminar",
            ActivityKind::RegionalTeaching => "regional_teaching",
            ActivityKind::LocalTeaching => "local_teaching",
            ActivityKind::ELearning => "e_learning",
            ActivityKind::SelfStudy => "self_study",
            ActivityKind::Observership => "observership",
            ActivityKind::QualityImprovement => "quality_improvement",
            ActivityKind::ScientificWork => "scientific_work",
            ActivityKind::Other => "other",
        }
    }

    /// The kind a stored code names; `None` for a code this build does not know.
    pub fn from_code(s: &str) -> Option<ActivityKind> {
        Some(match s {
            "clinical_work" => ActivityKind::ClinicalWork,
            "course" => ActivityKind::Course,
            "seminar" => ActivityKind::Seminar,
            "regional_teaching" => ActivityKind::RegionalTeaching,
            "local_teaching" => ActivityKind::LocalTeaching,
            "e_learning" => ActivityKind::ELearning,
            "self_study" => ActivityKind::SelfStudy,
            "observership" => ActivityKind::Observership,
            "quality_improvement" => ActivityKind::QualityImprovement,
            "scientific_work" => ActivityKind::ScientificWork,
            "other" => ActivityKind::Other,
            _ => return None,
        })
    }
}

crate::text_enum_sql!(ActivityKind);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activity {
    pub id: String,
    pub enrolment_id: String,
    pub kind: ActivityKind,
    #[schema(example = "Kurs i försäkringsmedicin")]
    pub title: String,
    #[schema(example = "2026-10-06")]
    pub start_date: NaiveDate,
    /// For activities over a period.
    pub end_date: Option<NaiveDate>,
    pub placement_id: Option<String>,
    /// The checklist item of the template this fulfils.
    pub checklist_item_id: Option<String>,
    /// Template version the activity was logged under (its checklist ids refer to it).
    pub template_version: i32,
    #[schema(example = "Jag lärde mig skriva läkarintyg för sjukpenning ...")]
    pub reflection: String,
    #[schema(example = json!(["BT16"]))]
    pub delmal: Vec<String>,
    pub attachments: Vec<Attachment>,
    /// Where a system made it from (a learning platform's xAPI statement); null when a
    /// person logged it.
    pub source: Option<crate::portfolio::provenance::ActivitySource>,
    pub version: i32,
    pub created_by: String,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl Activity {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActivity {
    /// Client-chosen id (offline phones).
    pub id: Option<uuid::Uuid>,
    pub kind: ActivityKind,
    pub title: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub placement_id: Option<String>,
    pub checklist_item_id: Option<String>,
    #[serde(default)]
    pub reflection: String,
    #[serde(default)]
    pub delmal: Vec<String>,
}

/// A partial update: fields left out stay as they are (drafts are saved as typed).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityPatch {
    pub kind: Option<ActivityKind>,
    pub title: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub placement_id: Option<String>,
    pub checklist_item_id: Option<String>,
    pub reflection: Option<String>,
    pub delmal: Option<Vec<String>>,
}

/// An activity as stored (its delmål and attachments are in other tables).
#[derive(Queryable, Selectable)]
#[diesel(table_name = activities, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(super) struct Row {
    id: ActivityId,
    pub(super) enrolment_id: EnrolmentId,
    kind: ActivityKind,
    title: String,
    start_date: Day,
    end_date: Option<Day>,
    placement_id: Option<PlacementId>,
    checklist_item_id: Option<String>,
    template_version: i32,
    reflection: String,
    version: i32,
    created_by: UserId,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A new activity's row.
#[derive(Insertable)]
#[diesel(table_name = activities)]
struct NewRow<'a> {
    id: &'a ActivityId,
    enrolment_id: &'a EnrolmentId,
    kind: ActivityKind,
    title: &'a str,
    #[diesel(serialize_as = String)]
    start_date: Day,
    /// A `Day`'s text (`serialize_as` has no form for an optional one).
    end_date: Option<String>,
    placement_id: Option<&'a str>,
    checklist_item_id: Option<&'a str>,
    template_version: i32,
    reflection: &'a str,
    version: i32,
    created_by: &'a str,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// What an edit writes (every editable field, as the edit left it).
#[derive(AsChangeset)]
#[diesel(table_name = activities, treat_none_as_null = true)]
struct Edit<'a> {
    kind: ActivityKind,
    title: &'a str,
    #[diesel(serialize_as = String)]
    start_date: Day,
    /// A `Day`'s text (`serialize_as` has no form for an optional one).
    end_date: Option<String>,
    placement_id: Option<&'a str>,
    checklist_item_id: Option<&'a str>,
    reflection: &'a str,
    version: i32,
    updated_at: NaiveDateTime,
}

pub(super) fn from_rows(conn: &mut DbConn, rows: Vec<Row>) -> Result<Vec<Activity>, AppError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    // One query each for the links and the attachments of all rows.
    let links = links::of(conn, &ids)?;
    let mut sources = crate::portfolio::provenance::of(conn, &ids)?;
    let enrolment = rows.first().map(|r| r.enrolment_id.as_str());
    let mut files = if rows
        .iter()
        .all(|r| Some(r.enrolment_id.as_str()) == enrolment)
    {
        attachments::of_records_in(conn, enrolment, &ids)?
    } else {
        attachments::of_records(conn, &ids)?
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let delmal = links::codes(&links, &r.id);
            let files = files.remove(r.id.as_str()).unwrap_or_default();
            let source = sources.remove(r.id.as_str());
            from_row(r, delmal, files, source)
        })
        .collect())
}

fn from_row(
    r: Row,
    delmal: Vec<String>,
    attachments: Vec<Attachment>,
    source: Option<crate::portfolio::provenance::ActivitySource>,
) -> Activity {
    Activity {
        delmal,
        attachments,
        source,
        id: r.id.into_inner(),
        enrolment_id: r.enrolment_id.into_inner(),
        kind: r.kind,
        title: r.title,
        start_date: r.start_date.date(),
        end_date: r.end_date.map(Day::date),
        placement_id: r.placement_id.map(PlacementId::into_inner),
        checklist_item_id: r.checklist_item_id,
        template_version: r.template_version,
        reflection: r.reflection,
        version: r.version,
        created_by: r.created_by.into_inner(),
        created_at: from_db(r.created_at),
        updated_at: from_db(r.updated_at),
    }
}

pub fn get_activity(conn: &mut DbConn, id: &str) -> Result<Activity, AppError> {
    let row: Row = activities::table
        .find(id)
        .filter(activities::deleted_at.is_null())
        .select(Row::as_select())
        .first(conn)?;
    from_rows(conn, vec![row])?.pop().ok_or(AppError::NotFound)
}

pub fn enrolment_of_activity(conn: &mut DbConn, id: &str) -> Result<EnrolmentId, AppError> {
    Ok(activities::table
        .find(id)
        .filter(activities::deleted_at.is_null())
        .select(activities::enrolment_id)
        .first(conn)?)
}

/// Only the trainee writes their own activities.
pub fn require_trainee(
    conn: &mut DbConn,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
) -> Result<(), AppError> {
    let query = enrolments::table
        .find(enrolment_id)
        .select(enrolments::trainee_id);
    let trainee: Option<String> = crate::on_backend!(conn, |c| query.first(c).optional())?;
    require_trainee_is(conn, me, enrolment_id, today, trainee.as_deref())
}

/// As [`require_trainee`], with the enrolment's trainee read already (`None`: no such
/// enrolment).
fn require_trainee_is(
    conn: &mut DbConn,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
    trainee: Option<&str>,
) -> Result<(), AppError> {
    // The trainee may always read their own enrolment; anyone else gets the answer
    // `access` gives (404 when they may not see it).
    if trainee == Some(me.user_id.as_str()) {
        return Ok(());
    }
    access::require(conn, me, enrolment_id, today, Access::Read)?;
    Err(AppError::Forbidden(
        "only the trainee logs their learning activities".into(),
    ))
}

/// What a new activity is checked against: its enrolment's trainee and template
/// version, with that version's stored content (parsed only once the caller may
/// write).
struct Target {
    trainee_id: UserId,
    template_id: crate::ids::TemplateId,
    template_version: i32,
    regulation_id: crate::ids::RegulationId,
    content: String,
}

/// The enrolment and its template version in one statement (they were three reads:
/// the trainee, the template version, the template); `None` for an unknown enrolment.
fn target(conn: &mut DbConn, enrolment_id: &EnrolmentId) -> Result<Option<Target>, AppError> {
    let query = enrolments::table
        .inner_join(
            programme_templates::table.on(programme_templates::template_id
                .eq(enrolments::template_id)
                .and(programme_templates::version.eq(enrolments::template_version))),
        )
        .filter(enrolments::id.eq(enrolment_id))
        .select((
            enrolments::trainee_id,
            enrolments::template_id,
            enrolments::template_version,
            programme_templates::regulation_id,
            programme_templates::content,
        ));
    let row: Option<(
        UserId,
        crate::ids::TemplateId,
        i32,
        crate::ids::RegulationId,
        String,
    )> = crate::on_backend!(conn, |c| query.first(c).optional())?;
    Ok(row.map(
        |(trainee_id, template_id, template_version, regulation_id, content)| Target {
            trainee_id,
            template_id,
            template_version,
            regulation_id,
            content,
        },
    ))
}

struct Checked {
    template_version: i32,
}

/// Checks an activity's fields against its enrolment (template version, delmål of the
/// regulation, placements); `n.id` and `n.kind` need no check.
fn check(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    target: &Target,
    n: &NewActivity,
) -> Result<Checked, AppError> {
    let template_version = target.template_version;
    // The template version and the delmål of its regulation (as `links::allowed`).
    let content = templates::parse_content(&target.template_id, template_version, &target.content)?;
    let codes = crate::curriculum::catalogue::delmal_codes(
        conn,
        &target.regulation_id,
        content.specialty.as_deref(),
    )?;
    let mut errors = Vec::new();
    if n.title.trim().is_empty() || n.title.chars().count() > 300 {
        errors.push(FieldError::new("title", "1 to 300 characters"));
    }
    if n.end_date.is_some_and(|e| e < n.start_date) {
        errors.push(FieldError::new("end_date", "must not be before start_date"));
    }
    if n.reflection.chars().count() > 20_000 {
        errors.push(FieldError::new("reflection", "at most 20000 characters"));
    }
    if let Some(p) = n.placement_id.as_deref() {
        if enrolment_of_placement(conn, &p.into()).ok().as_ref() != Some(enrolment_id) {
            errors.push(FieldError::new(
                "placement_id",
                "not a placement of this enrolment",
            ));
        }
    }
    if let Some(item) = n.checklist_item_id.as_deref() {
        let known = content
            .placement_types
            .iter()
            .flat_map(|p| p.checklist.iter())
            .chain(content.programme_items.iter())
            .any(|i| i.id.as_deref() == Some(item));
        if !known {
            errors.push(FieldError::new(
                "checklist_item_id",
                "not an item of the trainee's template version",
            ));
        }
    }
    links::check(&codes, &n.delmal, "delmal", &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    Ok(Checked { template_version })
}

/// What an audit entry keeps of an activity as values; its other fields (title,
/// reflection, attachments, source) only as keyed digests (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &[
    "id",
    "enrolment_id",
    "kind",
    "start_date",
    "end_date",
    "placement_id",
    "checklist_item_id",
    "template_version",
    "delmal",
    "version",
    "created_by",
    "created_at",
    "updated_at",
];

/// The data of an audit entry about an activity.
pub fn audit_data(
    conn: &mut DbConn,
    ctx_now: chrono::DateTime<chrono::Utc>,
    a: &Activity,
) -> Result<serde_json::Value, AppError> {
    let enrolment = EnrolmentId::from(&a.enrolment_id);
    audit::text::record_data(conn, ctx_now, &a.id, Some(&enrolment), a, AUDIT_FACTS)
}

fn audit_activity(
    conn: &mut DbConn,
    ctx: &Ctx,
    action: &str,
    a: &Activity,
) -> Result<(), AppError> {
    let data = audit_data(conn, ctx.now, a)?;
    audit::append(
        conn,
        ctx.now,
        Event {
            actor_id: Some(&ctx.caller.user_id),
            client: ctx.client.user_agent.as_deref(),
            action,
            entity: "activity",
            entity_id: &a.id,
            enrolment_id: Some(&a.enrolment_id),
            data: &data,
        },
    )
}

pub fn create_activity(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    n: NewActivity,
) -> Result<Activity, AppError> {
    // One read of the enrolment serves the authorisation and the checks.
    let target = target(conn, enrolment_id)?;
    let trainee = target.as_ref().map(|t| t.trainee_id.as_str());
    require_trainee_is(conn, &ctx.caller, enrolment_id, ctx.today(), trainee)?;
    let target = target.ok_or(AppError::NotFound)?;
    let a = insert_checked(conn, ctx.now, enrolment_id, &target, &ctx.caller.user_id, n)?;
    audit_activity(conn, ctx, "created", &a)?;
    announce_created(conn, ctx.now, &a)?;
    Ok(a)
}

/// Tells webhook subscribers (`activity.created`), in the creating transaction.
pub fn announce_created(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    a: &Activity,
) -> Result<(), AppError> {
    crate::events::publish(
        conn,
        now,
        crate::events::DomainEvent::ActivityCreated {
            enrolment_id: a.enrolment_id.to_string(),
            data: json!({"activity": a}),
        },
    )
}

/// Checks and stores a new activity of an enrolment, with its delmål links; the caller
/// authorises and audits. Integrations (xAPI) create activities on the trainee's behalf
/// through this.
pub fn insert_activity(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    enrolment_id: &EnrolmentId,
    created_by: &str,
    n: NewActivity,
) -> Result<Activity, AppError> {
    let target = target(conn, enrolment_id)?.ok_or(AppError::NotFound)?;
    insert_checked(conn, now, enrolment_id, &target, created_by, n)
}

/// As [`insert_activity`], with the enrolment read already.
fn insert_checked(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    enrolment_id: &EnrolmentId,
    target: &Target,
    created_by: &str,
    n: NewActivity,
) -> Result<Activity, AppError> {
    let checked = check(conn, enrolment_id, target, &n)?;
    let client_chosen = n.id.is_some();
    let id =
        n.id.map_or_else(ActivityId::random, |u| ActivityId::new(u.to_string()));
    // An id the phone chose may be another record's (an assessment's, whose delmål links
    // the new activity would then share): refused like a repeated activity id.
    if client_chosen && links::id_in_use(conn, &id)? {
        return Err(AppError::Conflict(crate::error::UNIQUE_CONFLICT.into()));
    }
    let (created_at, template_version) = (to_db(now), checked.template_version);
    let insert = diesel::insert_into(activities::table).values(NewRow {
        id: &id,
        enrolment_id,
        kind: n.kind,
        title: n.title.trim(),
        start_date: n.start_date.into(),
        end_date: n.end_date.map(|d| Day(d).to_text()),
        placement_id: n.placement_id.as_deref(),
        checklist_item_id: n.checklist_item_id.as_deref(),
        template_version,
        reflection: &n.reflection,
        version: 1,
        created_by,
        created_at,
        updated_at: created_at,
    });
    crate::on_backend!(conn, |c| insert.execute(c))?;
    // The id is new to every record table (random, or checked above), and a deleted
    // record's links go with it: there are no links to replace.
    links::add(conn, enrolment_id, links::Record::Activity(&id), &n.delmal)?;
    // The activity as stored, from what was written rather than read back (a statement
    // less): `now` is in whole milliseconds (`clock`), which both backends keep as is.
    // Its delmål are the ones just set, and it has no attachments yet (they attach to
    // an existing activity; the insert shows the id was new). A system that makes an
    // activity sets its source itself (the statement that made it is stored after it).
    Ok(Activity {
        id: id.to_string(),
        enrolment_id: enrolment_id.to_string(),
        kind: n.kind,
        title: n.title.trim().to_string(),
        start_date: n.start_date,
        end_date: n.end_date,
        placement_id: n.placement_id.clone(),
        checklist_item_id: n.checklist_item_id.clone(),
        template_version,
        reflection: n.reflection.clone(),
        delmal: links::normalised(&n.delmal),
        attachments: Vec::new(),
        source: None,
        version: 1,
        created_by: created_by.to_string(),
        created_at: from_db(created_at),
        updated_at: from_db(created_at),
    })
}

pub fn update_activity(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    p: ActivityPatch,
) -> Result<Activity, AppError> {
    let enrolment_id = enrolment_of_activity(conn, id)?;
    let target = target(conn, &enrolment_id)?;
    let trainee = target.as_ref().map(|t| t.trainee_id.as_str());
    require_trainee_is(conn, &ctx.caller, &enrolment_id, ctx.today(), trainee)?;
    let target = target.ok_or(AppError::NotFound)?;
    let current = get_activity(conn, id)?;
    // Imported from another service with its provenance: read-only here.
    crate::portfolio::transferred::refuse_if_transferred(conn, id)?;
    // Confirmed by its kursledare as it is: read-only.
    crate::portfolio::course_confirmation::refuse_if_confirmed(conn, &ActivityId::from(id))?;
    if_match(&current.etag())?;
    let n = NewActivity {
        id: None,
        kind: p.kind.unwrap_or(current.kind),
        title: p.title.unwrap_or(current.title),
        start_date: p.start_date.unwrap_or(current.start_date),
        end_date: p.end_date.or(current.end_date),
        placement_id: p.placement_id.or(current.placement_id),
        checklist_item_id: p.checklist_item_id.or(current.checklist_item_id),
        reflection: p.reflection.unwrap_or(current.reflection),
        delmal: p.delmal.unwrap_or(current.delmal),
    };
    check(conn, &enrolment_id, &target, &n)?;
    diesel::update(activities::table.find(id))
        .set(Edit {
            kind: n.kind,
            title: n.title.trim(),
            start_date: n.start_date.into(),
            end_date: n.end_date.map(|d| Day(d).to_text()),
            placement_id: n.placement_id.as_deref(),
            checklist_item_id: n.checklist_item_id.as_deref(),
            reflection: &n.reflection,
            version: current.version + 1,
            updated_at: to_db(ctx.now),
        })
        .execute(conn)?;
    links::set(
        conn,
        &enrolment_id,
        links::Record::Activity(&ActivityId::from(id)),
        &n.delmal,
    )?;
    let a = get_activity(conn, id)?;
    audit_activity(conn, ctx, "updated", &a)?;
    Ok(a)
}

pub fn delete_activity(conn: &mut DbConn, ctx: &Ctx, id: &str) -> Result<(), AppError> {
    let enrolment_id = enrolment_of_activity(conn, id)?;
    require_trainee(conn, &ctx.caller, &enrolment_id, ctx.today())?;
    let current = get_activity(conn, id)?;
    // Imported from another service with its provenance: read-only here.
    crate::portfolio::transferred::refuse_if_transferred(conn, id)?;
    crate::portfolio::course_confirmation::refuse_if_confirmed(conn, &ActivityId::from(id))?;
    diesel::update(activities::table.find(id))
        .set((
            activities::deleted_at.eq(to_db(ctx.now)),
            activities::updated_at.eq(to_db(ctx.now)),
        ))
        .execute(conn)?;
    links::remove(conn, links::Record::Activity(&ActivityId::from(id)))?;
    audit_activity(conn, ctx, "deleted", &current)
}
