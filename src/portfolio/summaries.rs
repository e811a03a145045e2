//! Summary assessment of a placement (sammantagen bedömning): written and signed by that
//! placement's supervisor, with a judgement per delmål worked on there. Signed means
//! final; a correction is a new version.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::principal::Principal;
use crate::auth::service::ClientInfo;
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::enrolment::service::enrolment_of_placement;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{EnrolmentId, PlacementId, SummaryId, UserId};
use crate::mail::Mail;
use crate::portfolio::assessments::Signature;
use crate::schema::{assignments, enrolments, summary_assessments, users};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Judgement {
    #[schema(example = "BT1")]
    pub code: String,
    /// `achieved`, `progressing` or `not_yet`.
    #[schema(example = "progressing")]
    pub judgement: String,
    #[serde(default)]
    #[schema(example = "Säker i vanliga akuta tillstånd; behöver fler sepsisfall.")]
    pub comment: String,
}

crate::text_enum! {
    /// Where a summary assessment stands: `signed` is final (a correction is a new one).
    pub enum SummaryStatus { Draft = "draft", Signed = "signed" }
}

// The API shows the status as its stored code: a plain string in the spec, as before.
impl Serialize for SummaryStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SummaryAssessment {
    pub id: String,
    pub enrolment_id: String,
    pub placement_id: String,
    pub author_id: String,
    pub judgements: Vec<Judgement>,
    #[schema(example = "En trygg och engagerad BT-läkare som ...")]
    pub overall: String,
    /// `draft` or `signed`.
    #[schema(value_type = String)]
    pub status: SummaryStatus,
    pub supersedes_id: Option<String>,
    pub superseded_by: Option<String>,
    pub signature: Option<Signature>,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl SummaryAssessment {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSummary {
    pub id: Option<uuid::Uuid>,
    pub placement_id: String,
    #[serde(default)]
    pub judgements: Vec<Judgement>,
    #[serde(default)]
    pub overall: String,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryPatch {
    pub judgements: Option<Vec<Judgement>>,
    pub overall: Option<String>,
}

/// A summary assessment as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = summary_assessments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    id: SummaryId,
    enrolment_id: EnrolmentId,
    placement_id: PlacementId,
    author_id: UserId,
    /// JSON array of judgements per delmål.
    judgements: String,
    overall: String,
    status: SummaryStatus,
    supersedes_id: Option<SummaryId>,
    superseded_by: Option<SummaryId>,
    signed_at: Option<NaiveDateTime>,
    signature_method: Option<String>,
    content_hash: Option<String>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<SummaryAssessment, AppError> {
    let r: Row = summary_assessments::table
        .find(id)
        .select(Row::as_select())
        .first(conn)?;
    from_row(r)
}

fn from_row(r: Row) -> Result<SummaryAssessment, AppError> {
    let id = r.id.to_string();
    let id = id.as_str();
    let signature = match (r.signed_at, r.signature_method, r.content_hash) {
        (Some(at), Some(method), Some(hash)) => Some(Signature {
            signed_by: Some(r.author_id.to_string()),
            signed_by_email: None,
            signed_at: from_db(at),
            method,
            content_hash: hash,
        }),
        _ => None,
    };
    // Stored data that does not read back is an error, never an empty list.
    let judgements = serde_json::from_str(&r.judgements)
        .map_err(|e| AppError::unreadable("summary assessment", id, "judgements", e))?;
    Ok(SummaryAssessment {
        id: r.id.into_inner(),
        enrolment_id: r.enrolment_id.into_inner(),
        placement_id: r.placement_id.into_inner(),
        author_id: r.author_id.into_inner(),
        judgements,
        overall: r.overall,
        status: r.status,
        supersedes_id: r.supersedes_id.map(SummaryId::into_inner),
        superseded_by: r.superseded_by.map(SummaryId::into_inner),
        signature,
        version: r.version,
        created_at: from_db(r.created_at),
        updated_at: from_db(r.updated_at),
    })
}

pub fn readable(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    today: NaiveDate,
) -> Result<SummaryAssessment, AppError> {
    let s = get(conn, id)?;
    if s.author_id != me.user_id {
        access::require(
            conn,
            me,
            &EnrolmentId::from(&s.enrolment_id),
            today,
            Access::Read,
        )?;
    }
    Ok(s)
}

/// The placement's supervisor (ever assigned to it), or the main supervisor assigned
/// today (who is also the placement supervisor of placement 1).
fn may_author(
    conn: &mut DbConn,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    placement_id: &PlacementId,
    today: NaiveDate,
) -> Result<bool, AppError> {
    let placement: i64 = assignments::table
        .filter(assignments::placement_id.eq(placement_id))
        .filter(assignments::role.eq(access::PLACEMENT_SUPERVISOR))
        .filter(assignments::user_id.eq(&me.user_id))
        .count()
        .get_result(conn)?;
    if placement > 0 {
        return Ok(true);
    }
    let roles = access::active_assignment_roles(conn, &me.user_id, enrolment_id, today)?;
    Ok(roles.iter().any(|r| r == access::MAIN_SUPERVISOR))
}

fn check(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
    judgements: &[Judgement],
    overall: &str,
) -> Result<(), AppError> {
    let codes = crate::portfolio::links::allowed(conn, enrolment_id)?;
    let mut errors = Vec::new();
    for (i, j) in judgements.iter().enumerate() {
        if !codes.contains(&j.code) {
            errors.push(FieldError::new(
                format!("judgements[{i}].code"),
                format!("unknown delmål {}", j.code),
            ));
        }
        if !["achieved", "progressing", "not_yet"].contains(&j.judgement.as_str()) {
            errors.push(FieldError::new(
                format!("judgements[{i}].judgement"),
                "achieved, progressing or not_yet",
            ));
        }
    }
    if overall.chars().count() > 20_000 {
        errors.push(FieldError::new("overall", "at most 20000 characters"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// What an audit entry keeps of a summary assessment as values; its other fields
/// (judgements, overall text, the signature's details) only as keyed digests
/// (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &[
    "id",
    "enrolment_id",
    "placement_id",
    "author_id",
    "status",
    "supersedes_id",
    "superseded_by",
    "version",
    "created_at",
    "updated_at",
];

fn log(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    action: &str,
    s: &SummaryAssessment,
) -> Result<(), AppError> {
    let enrolment = EnrolmentId::from(&s.enrolment_id);
    let data = audit::text::record_data(conn, now, &s.id, Some(&enrolment), s, AUDIT_FACTS)?;
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client: client.user_agent.as_deref(),
            action,
            entity: "summary_assessment",
            entity_id: &s.id,
            enrolment_id: Some(&s.enrolment_id),
            data: &data,
        },
    )
}

/// A new draft's fields.
struct Draft<'a> {
    id: &'a str,
    enrolment_id: &'a str,
    placement_id: &'a str,
    author: &'a str,
    judgements: &'a [Judgement],
    overall: &'a str,
    supersedes: Option<&'a str>,
}

fn insert(conn: &mut DbConn, now: DateTime<Utc>, d: Draft) -> Result<(), AppError> {
    diesel::insert_into(summary_assessments::table)
        .values((
            summary_assessments::id.eq(d.id),
            summary_assessments::enrolment_id.eq(d.enrolment_id),
            summary_assessments::placement_id.eq(d.placement_id),
            summary_assessments::author_id.eq(d.author),
            summary_assessments::judgements.eq(json!(d.judgements).to_string()),
            summary_assessments::overall.eq(d.overall),
            summary_assessments::status.eq(SummaryStatus::Draft),
            summary_assessments::supersedes_id.eq(d.supersedes),
            summary_assessments::version.eq(1),
            summary_assessments::created_at.eq(to_db(now)),
            summary_assessments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn create(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    n: NewSummary,
) -> Result<SummaryAssessment, AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    let today = crate::clock::day_of(now);
    let placement_here = enrolment_of_placement(conn, &n.placement_id.as_str().into())
        .ok()
        .as_deref()
        == Some(enrolment_id.as_str());
    // A placement's supervisor writes its summary even after the placement (and with it
    // their access to the rest of the plan) has ended.
    let placement_id = PlacementId::from(&n.placement_id);
    if !(placement_here && may_author(conn, me, enrolment_id, &placement_id, today)?) {
        access::require(conn, me, enrolment_id, today, Access::Read)?;
        if !placement_here {
            return Err(AppError::validation(
                "placement_id",
                "not a placement of this enrolment",
            ));
        }
        return Err(AppError::Forbidden(
            "the placement's supervisor writes its summary assessment".into(),
        ));
    }
    check(conn, enrolment_id, &n.judgements, &n.overall)?;
    let id =
        n.id.map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string());
    insert(
        conn,
        now,
        Draft {
            id: &id,
            enrolment_id,
            placement_id: &n.placement_id,
            author: &me.user_id,
            judgements: &n.judgements,
            overall: &n.overall,
            supersedes: None,
        },
    )?;
    let s = get(conn, &id)?;
    log(conn, now, me, client, "created", &s)?;
    Ok(s)
}

fn own_draft(s: &SummaryAssessment, me: &Principal) -> Result<(), AppError> {
    if s.author_id != me.user_id {
        return Err(AppError::Forbidden(
            "only its author edits or signs a summary assessment".into(),
        ));
    }
    if s.status == SummaryStatus::Signed {
        return Err(AppError::Conflict(
            "a signed summary assessment cannot change; create a correction".into(),
        ));
    }
    Ok(())
}

pub fn update(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    p: SummaryPatch,
) -> Result<SummaryAssessment, AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    let s = readable(conn, me, id, crate::clock::day_of(now))?;
    if_match(&s.etag())?;
    own_draft(&s, me)?;
    let judgements = p.judgements.unwrap_or(s.judgements);
    let overall = p.overall.unwrap_or(s.overall);
    check(
        conn,
        &EnrolmentId::from(&s.enrolment_id),
        &judgements,
        &overall,
    )?;
    diesel::update(summary_assessments::table.find(id))
        .set((
            summary_assessments::judgements.eq(json!(judgements).to_string()),
            summary_assessments::overall.eq(&overall),
            summary_assessments::version.eq(summary_assessments::version + 1),
            summary_assessments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let s = get(conn, id)?;
    log(conn, now, me, client, "updated", &s)?;
    Ok(s)
}

pub fn sign(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
) -> Result<(SummaryAssessment, Vec<Mail>), AppError> {
    let (cfg, now, me, client) = (&*ctx.config, ctx.now, &ctx.caller, &ctx.client);
    let s = readable(conn, me, id, crate::clock::day_of(now))?;
    own_draft(&s, me)?;
    let mut missing = Vec::new();
    if s.judgements.is_empty() {
        missing.push(FieldError::new(
            "judgements",
            "judge at least one delmål worked on in the placement",
        ));
    }
    if s.overall.trim().is_empty() {
        missing.push(FieldError::new(
            "overall",
            "an overall assessment is required",
        ));
    }
    if !missing.is_empty() {
        return Err(AppError::Validation(missing));
    }
    let hash = crate::auth::crypto::sha256_hex(
        json!({"id": s.id, "enrolment_id": s.enrolment_id, "placement_id": s.placement_id, "author_id": s.author_id,
                "judgements": s.judgements, "overall": s.overall, "supersedes_id": s.supersedes_id})
        .to_string(),
    );
    diesel::update(summary_assessments::table.find(id))
        .set((
            summary_assessments::status.eq(SummaryStatus::Signed),
            summary_assessments::signed_at.eq(to_db(now)),
            summary_assessments::signature_method.eq(&me.second_factor),
            summary_assessments::content_hash.eq(&hash),
            summary_assessments::version.eq(summary_assessments::version + 1),
            summary_assessments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    if let Some(old) = &s.supersedes_id {
        diesel::update(summary_assessments::table.find(old))
            .set(summary_assessments::superseded_by.eq(id))
            .execute(conn)?;
    }
    let s = get(conn, id)?;
    log(conn, now, me, client, "signed", &s)?;
    let trainee: String = enrolments::table
        .find(&s.enrolment_id)
        .select(enrolments::trainee_id)
        .first(conn)?;
    let to: String = users::table
        .find(&trainee)
        .select(users::email)
        .first(conn)?;
    let mail = Mail {
        to,
        subject: "Sammantagen bedömning signerad / Summary assessment signed".into(),
        body: format!(
            "{}/summary-assessments/{}\n",
            cfg.public_url.trim_end_matches('/'),
            s.id
        ),
    };
    Ok((s, vec![mail]))
}

pub fn correct(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    p: SummaryPatch,
) -> Result<SummaryAssessment, AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    let s = readable(conn, me, id, crate::clock::day_of(now))?;
    if s.author_id != me.user_id {
        return Err(AppError::Forbidden(
            "only the signer corrects a summary assessment".into(),
        ));
    }
    if s.status != SummaryStatus::Signed || s.superseded_by.is_some() {
        return Err(AppError::Conflict(
            "only the newest signed version is corrected".into(),
        ));
    }
    let judgements = p.judgements.unwrap_or(s.judgements.clone());
    let overall = p.overall.unwrap_or(s.overall.clone());
    check(
        conn,
        &EnrolmentId::from(&s.enrolment_id),
        &judgements,
        &overall,
    )?;
    let new_id = Uuid::new_v4().to_string();
    insert(
        conn,
        now,
        Draft {
            id: &new_id,
            enrolment_id: &s.enrolment_id,
            placement_id: &s.placement_id,
            author: &me.user_id,
            judgements: &judgements,
            overall: &overall,
            supersedes: Some(&s.id),
        },
    )?;
    let n = get(conn, &new_id)?;
    log(conn, now, me, client, "correction_created", &n)?;
    Ok(n)
}

pub fn list(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<SummaryAssessment>, AppError> {
    // One query for the list (one per summary assessment before).
    let rows: Vec<Row> = summary_assessments::table
        .filter(summary_assessments::enrolment_id.eq(enrolment_id))
        .order(summary_assessments::created_at)
        .select(Row::as_select())
        .load(conn)?;
    rows.into_iter().map(from_row).collect()
}
