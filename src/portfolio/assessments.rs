//! Formative assessments. Either side starts one: the trainee asks a named assessor, or
//! an assessor records it directly. The assessor signs (one request) or declines with a
//! reason. A signed assessment never changes; a correction is a new version that
//! supersedes it, and both stay visible.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::principal::Principal;
use crate::auth::service::ClientInfo;
use crate::clock::{from_db, to_db};
use crate::config::Config;
use crate::curriculum::templates::AssessmentType;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::enrolment::service::enrolment_of_placement;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::mail::Mail;
use crate::portfolio::{instruments, links};
use crate::schema::{assessments, enrolments, record_delmal, signing_links, users};

/// `draft`, `awaiting_vetting`, `awaiting_signature`, `signed`, `declined`.
pub const DRAFT: &str = "draft";
/// Asked of an assessor without an account who is not vetted yet: no link is out.
pub const AWAITING_VETTING: &str = "awaiting_vetting";
pub const AWAITING: &str = "awaiting_signature";
pub const SIGNED: &str = "signed";
pub const DECLINED: &str = "declined";

/// Who signed, when, how, and a hash of exactly what was signed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Signature {
    /// The signing user; null when an assessor without an account signed by link.
    pub signed_by: Option<String>,
    /// For a signature through a signing link: the address the link was bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by_email: Option<String>,
    pub signed_at: DateTime<Utc>,
    /// The second factor of the signing session, or `signing_link`.
    #[schema(example = "totp")]
    pub method: String,
    /// SHA-256 over the signed content.
    pub content_hash: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Assessment {
    pub id: String,
    pub enrolment_id: String,
    pub instrument: AssessmentType,
    #[schema(example = "awaiting_signature")]
    pub status: String,
    pub assessor_id: Option<String>,
    /// An assessor without an account, asked through a signing link.
    pub assessor_email: Option<String>,
    pub placement_id: Option<String>,
    #[schema(example = "2026-10-14")]
    pub performed_on: NaiveDate,
    /// Context fields of the instrument, e.g. setting, complexity, procedure.
    #[schema(example = json!({"setting": "akutmottagning", "patient complexity": "medium"}))]
    pub context: BTreeMap<String, String>,
    /// Rating per domain; null means not observed.
    #[schema(example = json!({"history taking (anamnes)": 6, "communication": 7, "physical examination (status)": null}))]
    pub ratings: BTreeMap<String, Option<i32>>,
    /// Optional single entrustment rating, 1 to 5.
    pub entrustment: Option<i32>,
    /// What went well.
    #[schema(example = "Strukturerad anamnes, bra sammanfattning för patienten.")]
    pub feedback_strengths: String,
    /// Feed forward: what to do next.
    #[schema(example = "Öva riktat status vid buksmärta.")]
    pub feedback_next_steps: String,
    pub trainee_reflection: String,
    #[schema(example = json!(["BT1", "BT9"]))]
    pub delmal: Vec<String>,
    pub decline_reason: Option<String>,
    /// The signed assessment this one corrects.
    pub supersedes_id: Option<String>,
    /// The correction that replaced this one.
    pub superseded_by: Option<String>,
    pub signature: Option<Signature>,
    pub created_by: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Assessment {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }

    /// The content a signature covers, in a fixed order.
    fn signed_content(&self) -> serde_json::Value {
        json!({
            "id": self.id, "enrolment_id": self.enrolment_id, "instrument": self.instrument,
            "assessor_id": self.assessor_id, "placement_id": self.placement_id,
            "performed_on": self.performed_on, "context": self.context, "ratings": self.ratings,
            "entrustment": self.entrustment, "feedback_strengths": self.feedback_strengths,
            "feedback_next_steps": self.feedback_next_steps, "trainee_reflection": self.trainee_reflection,
            "delmal": self.delmal, "supersedes_id": self.supersedes_id,
        })
    }
}

/// The form's content: what the trainee and the assessor fill in.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssessmentContent {
    pub placement_id: Option<String>,
    pub performed_on: Option<NaiveDate>,
    pub context: Option<BTreeMap<String, String>>,
    pub ratings: Option<BTreeMap<String, Option<i32>>>,
    pub entrustment: Option<i32>,
    pub feedback_strengths: Option<String>,
    pub feedback_next_steps: Option<String>,
    pub trainee_reflection: Option<String>,
    pub delmal: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssessment {
    pub id: Option<uuid::Uuid>,
    pub instrument: AssessmentType,
    pub performed_on: NaiveDate,
    /// Trainee: whom to ask for an assessment (any supervisor, also external). The
    /// request goes out at once. Assessor recording directly: leave out.
    pub assessor_id: Option<String>,
    /// Trainee: ask someone by e-mail address instead. Without an account they get a
    /// single-use signing link (14 days) once the main supervisor or a director of
    /// studies has approved the person (once per person and organisation; until then the
    /// assessment is `awaiting_vetting`); with an account, it is the same as
    /// `assessor_id`. Never one of the trainee's own addresses.
    pub assessor_email: Option<String>,
    /// With `assessor_email` for a person not yet vetted: their name, for the approver.
    #[schema(example = "Nora Akut")]
    pub assessor_name: Option<String>,
    /// With `assessor_email` for a person not yet vetted: their workplace.
    #[schema(example = "Akutkliniken, Södersjukhuset")]
    pub assessor_workplace: Option<String>,
    #[serde(flatten)]
    pub content: AssessmentContent,
}

type Row = (
    (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        String,
        String,
        Option<i32>,
    ),
    (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
    ),
    (
        Option<chrono::NaiveDateTime>,
        Option<String>,
        Option<String>,
        Option<String>,
        i32,
        chrono::NaiveDateTime,
        chrono::NaiveDateTime,
    ),
);

macro_rules! columns {
    () => {
        (
            (
                assessments::id,
                assessments::enrolment_id,
                assessments::instrument,
                assessments::status,
                assessments::assessor_id,
                assessments::placement_id,
                assessments::performed_on,
                assessments::context,
                assessments::ratings,
                assessments::entrustment,
            ),
            (
                assessments::feedback_strengths,
                assessments::feedback_next_steps,
                assessments::trainee_reflection,
                assessments::decline_reason,
                assessments::supersedes_id,
                assessments::superseded_by,
                assessments::created_by,
                assessments::assessor_email,
                assessments::signed_by_email,
            ),
            (
                assessments::signed_at,
                assessments::signed_by,
                assessments::signature_method,
                assessments::content_hash,
                assessments::version,
                assessments::created_at,
                assessments::updated_at,
            ),
        )
    };
}

fn instrument_of(s: &str) -> AssessmentType {
    serde_json::from_value(json!(s)).unwrap_or(AssessmentType::MiniCex)
}

fn instrument_str(i: AssessmentType) -> String {
    serde_json::to_value(i)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn from_rows(conn: &mut DbConn, rows: Vec<Row>) -> Result<Vec<Assessment>, AppError> {
    let ids: Vec<String> = rows.iter().map(|r| r.0 .0.clone()).collect();
    let links = links::of(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(|(a, b, c)| {
            let signature = match (c.0, c.2, c.3) {
                (Some(at), Some(method), Some(hash)) => Some(Signature {
                    signed_by: c.1,
                    signed_by_email: b.8.clone(),
                    signed_at: from_db(at),
                    method,
                    content_hash: hash,
                }),
                _ => None,
            };
            Assessment {
                delmal: links::codes(&links, &a.0),
                id: a.0,
                enrolment_id: a.1,
                instrument: instrument_of(&a.2),
                status: a.3,
                assessor_id: a.4,
                placement_id: a.5,
                performed_on: NaiveDate::parse_from_str(&a.6, "%Y-%m-%d").unwrap_or_default(),
                context: serde_json::from_str(&a.7).unwrap_or_default(),
                ratings: serde_json::from_str(&a.8).unwrap_or_default(),
                entrustment: a.9,
                feedback_strengths: b.0,
                feedback_next_steps: b.1,
                trainee_reflection: b.2,
                decline_reason: b.3,
                supersedes_id: b.4,
                superseded_by: b.5,
                created_by: b.6,
                assessor_email: b.7,
                signature,
                version: c.4,
                created_at: from_db(c.5),
                updated_at: from_db(c.6),
            }
        })
        .collect())
}

pub fn get_assessment(conn: &mut DbConn, id: &str) -> Result<Assessment, AppError> {
    let query = assessments::table
        .find(id)
        .filter(assessments::deleted_at.is_null())
        .select(columns!());
    let row: Row = crate::on_backend!(conn, |c| query.first(c))?;
    from_rows(conn, vec![row])?.pop().ok_or(AppError::NotFound)
}

fn trainee_of(conn: &mut DbConn, enrolment_id: &str) -> Result<String, AppError> {
    Ok(enrolments::table
        .find(enrolment_id)
        .select(enrolments::trainee_id)
        .first(conn)?)
}

/// Readable by whoever may read the enrolment, and always by the named assessor: an
/// external supervisor keeps access to what they were asked to assess and signed.
pub fn readable(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    today: NaiveDate,
) -> Result<Assessment, AppError> {
    let a = get_assessment(conn, id)?;
    if a.assessor_id.as_deref() == Some(me.user_id.as_str()) {
        return Ok(a);
    }
    access::require(conn, me, &a.enrolment_id, today, Access::Read)?;
    Ok(a)
}

fn email_of(conn: &mut DbConn, user_id: &str) -> Result<String, AppError> {
    Ok(users::table
        .find(user_id)
        .select(users::email)
        .first(conn)?)
}

/// Checks and applies `c` over `a` (the instrument's domains and scale, delmål of the
/// template version, the placement).
fn apply(conn: &mut DbConn, a: &mut Assessment, c: AssessmentContent) -> Result<(), AppError> {
    let org: String = enrolments::table
        .find(&a.enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)?;
    let form = instruments::form_for(conn, a.instrument, Some(&org))?;
    let mut errors = Vec::new();
    if let Some(p) = c.placement_id {
        if enrolment_of_placement(conn, &p).ok().as_deref() != Some(a.enrolment_id.as_str()) {
            errors.push(FieldError::new(
                "placement_id",
                "not a placement of this enrolment",
            ));
        }
        a.placement_id = Some(p);
    }
    if let Some(d) = c.performed_on {
        a.performed_on = d;
    }
    if let Some(ctx) = c.context {
        if ctx.len() > 20
            || ctx
                .iter()
                .any(|(k, v)| k.len() > 100 || v.chars().count() > 1000)
        {
            errors.push(FieldError::new(
                "context",
                "at most 20 fields of at most 1000 characters",
            ));
        }
        a.context = ctx;
    }
    if let Some(r) = c.ratings {
        for (domain, value) in &r {
            if !form.domains.is_empty() && !form.domains.contains(domain) {
                errors.push(FieldError::new(
                    "ratings",
                    format!(
                        "{domain:?} is not a domain of this form: {}",
                        form.domains.join(", ")
                    ),
                ));
            }
            if value.is_some_and(|v| !(1..=form.scale_max).contains(&v)) {
                errors.push(FieldError::new(
                    "ratings",
                    format!(
                        "{domain}: ratings are 1 to {} (null: not observed)",
                        form.scale_max
                    ),
                ));
            }
        }
        a.ratings = r;
    }
    if let Some(e) = c.entrustment {
        if !(1..=form.entrustment_levels.len().max(1) as i32).contains(&e) {
            errors.push(FieldError::new(
                "entrustment",
                format!("1 to {}", form.entrustment_levels.len()),
            ));
        }
        a.entrustment = Some(e);
    }
    for (field, value, target) in [
        (
            "feedback_strengths",
            c.feedback_strengths,
            &mut a.feedback_strengths,
        ),
        (
            "feedback_next_steps",
            c.feedback_next_steps,
            &mut a.feedback_next_steps,
        ),
        (
            "trainee_reflection",
            c.trainee_reflection,
            &mut a.trainee_reflection,
        ),
    ] {
        if let Some(v) = value {
            if v.chars().count() > 10_000 {
                errors.push(FieldError::new(field, "at most 10000 characters"));
            }
            *target = v;
        }
    }
    if let Some(d) = c.delmal {
        let allowed = links::allowed(conn, &a.enrolment_id)?;
        links::check(&allowed, &d, "delmal", &mut errors);
        a.delmal = links::normalised(&d);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Writes the whole record (insert or update) and its delmål links.
fn save(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    a: &Assessment,
    insert: bool,
) -> Result<(), AppError> {
    let context = json!(a.context).to_string();
    let ratings = json!(a.ratings).to_string();
    if insert {
        diesel::insert_into(assessments::table)
            .values((
                assessments::id.eq(&a.id),
                assessments::enrolment_id.eq(&a.enrolment_id),
                assessments::instrument.eq(instrument_str(a.instrument)),
                assessments::status.eq(&a.status),
                assessments::assessor_id.eq(&a.assessor_id),
                assessments::placement_id.eq(&a.placement_id),
                assessments::performed_on.eq(a.performed_on.to_string()),
                assessments::context.eq(&context),
                assessments::ratings.eq(&ratings),
                assessments::entrustment.eq(a.entrustment),
                assessments::feedback_strengths.eq(&a.feedback_strengths),
                assessments::feedback_next_steps.eq(&a.feedback_next_steps),
                assessments::trainee_reflection.eq(&a.trainee_reflection),
                assessments::supersedes_id.eq(&a.supersedes_id),
                assessments::assessor_email.eq(&a.assessor_email),
                assessments::created_by.eq(&a.created_by),
                assessments::version.eq(1),
                assessments::created_at.eq(to_db(now)),
                assessments::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    } else {
        // Only over the version that was read: a signature, decline or edit that
        // committed in between (PostgreSQL runs them side by side) is never overwritten,
        // so a signed record cannot be turned back into a pending one.
        let written = diesel::update(
            assessments::table
                .find(&a.id)
                .filter(assessments::version.eq(a.version)),
        )
        .set((
            assessments::status.eq(&a.status),
            assessments::assessor_id.eq(&a.assessor_id),
            assessments::placement_id.eq(&a.placement_id),
            assessments::performed_on.eq(a.performed_on.to_string()),
            assessments::context.eq(&context),
            assessments::ratings.eq(&ratings),
            assessments::entrustment.eq(a.entrustment),
            assessments::feedback_strengths.eq(&a.feedback_strengths),
            assessments::feedback_next_steps.eq(&a.feedback_next_steps),
            assessments::trainee_reflection.eq(&a.trainee_reflection),
            assessments::decline_reason.eq(&a.decline_reason),
            assessments::version.eq(assessments::version + 1),
            assessments::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
        if written != 1 {
            return Err(AppError::Conflict(
                "the assessment changed in the meantime; reload it".into(),
            ));
        }
    }
    links::set(conn, links::ASSESSMENT, &a.enrolment_id, &a.id, &a.delmal)
}

fn log(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    action: &str,
    a: &Assessment,
) -> Result<(), AppError> {
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client: client.user_agent.as_deref(),
            action,
            entity: "assessment",
            entity_id: &a.id,
            enrolment_id: Some(&a.enrolment_id),
            data: &json!(a),
        },
    )
}

fn link(cfg: &Config, id: &str) -> String {
    format!("{}/assessments/{id}", cfg.public_url.trim_end_matches('/'))
}

fn request_mail(conn: &mut DbConn, cfg: &Config, a: &Assessment) -> Result<Mail, AppError> {
    let to = email_of(conn, a.assessor_id.as_deref().unwrap_or_default())?;
    let trainee = trainee_of(conn, &a.enrolment_id)?;
    let name: String = users::table
        .find(&trainee)
        .select(users::display_name)
        .first(conn)?;
    let instrument = instrument_str(a.instrument);
    Ok(Mail {
        to,
        subject: format!("Bedömning att signera / Assessment to sign: {instrument}, {name}"),
        body: format!(
            "{name} ber dig bedöma och signera en {instrument} från {}.\n\
             {name} asks you to assess and sign a {instrument} from {}.\n\n{}\n",
            a.performed_on,
            a.performed_on,
            link(cfg, &a.id)
        ),
    })
}

/// Creates an assessment. A trainee names an assessor and the request goes out; an
/// assigned supervisor recording directly is the assessor and gets a draft to sign.
pub fn create(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    enrolment_id: &str,
    n: NewAssessment,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let today = now.date_naive();
    access::require(conn, me, enrolment_id, today, Access::Read)?;
    let trainee = trainee_of(conn, enrolment_id)?;
    let by_trainee = trainee == me.user_id;
    if !by_trainee && !access::is_assigned_supervisor(conn, &me.user_id, enrolment_id, today)? {
        return Err(AppError::Forbidden(
            "only the trainee or their supervisors start assessments".into(),
        ));
    }
    let mut assessor_id = n.assessor_id.clone();
    let mut link_email = None;
    if let (None, Some(email), true) = (&assessor_id, &n.assessor_email, by_trainee) {
        let email = crate::auth::service::normalize_email(email);
        if !crate::auth::service::valid_email(&email) {
            return Err(AppError::validation(
                "assessor_email",
                "is not an e-mail address",
            ));
        }
        let existing: Option<String> = users::table
            .filter(users::email.eq(&email))
            .select(users::id)
            .first(conn)
            .optional()?;
        // Only a supervisor's account is named as the assessor in the app. Any other
        // address, with or without an account, is an assessor by link (vetted): the
        // trainee must not learn from the answer whether the address has an account.
        let supervisor = match existing {
            Some(user) => super::talks::is_supervisor(conn, &user)?.then_some(user),
            None => None,
        };
        match supervisor {
            Some(user) => assessor_id = Some(user),
            None => link_email = Some(email),
        }
    }
    // An address without an account is vetted once per person before any link goes out.
    let gate = match &link_email {
        Some(email) => {
            let own = email_of(conn, &me.user_id)?;
            Some(super::vetting::gate(
                conn,
                now,
                &me.user_id,
                &own,
                enrolment_id,
                email,
                n.assessor_name.as_deref(),
                n.assessor_workplace.as_deref(),
            )?)
        }
        None => None,
    };
    let assessor = match (&assessor_id, by_trainee) {
        (Some(a), true) => {
            if a == &me.user_id {
                return Err(AppError::validation(
                    "assessor_id",
                    "you cannot assess yourself",
                ));
            }
            if !super::talks::is_supervisor(conn, a)? {
                return Err(AppError::validation(
                    "assessor_id",
                    "not a user with the supervisor role",
                ));
            }
            Some(a.clone())
        }
        (None, true) => None,
        (_, false) => Some(me.user_id.clone()),
    };
    let mut a = Assessment {
        id: n
            .id
            .map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string()),
        enrolment_id: enrolment_id.into(),
        instrument: n.instrument,
        status: if matches!(gate, Some(super::vetting::Gate::Pending { .. })) {
            AWAITING_VETTING.into()
        } else if by_trainee && (assessor.is_some() || link_email.is_some()) {
            AWAITING.into()
        } else {
            DRAFT.into()
        },
        assessor_id: assessor,
        assessor_email: link_email.clone(),
        placement_id: None,
        performed_on: n.performed_on,
        context: BTreeMap::new(),
        ratings: BTreeMap::new(),
        entrustment: None,
        feedback_strengths: String::new(),
        feedback_next_steps: String::new(),
        trainee_reflection: String::new(),
        delmal: Vec::new(),
        decline_reason: None,
        supersedes_id: None,
        superseded_by: None,
        signature: None,
        created_by: me.user_id.clone(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    if by_trainee
        && (n.content.ratings.is_some()
            || n.content.entrustment.is_some()
            || n.content.feedback_strengths.is_some()
            || n.content.feedback_next_steps.is_some())
    {
        return Err(AppError::validation(
            "ratings",
            "the assessor rates and gives feedback, not the trainee",
        ));
    }
    apply(conn, &mut a, n.content)?;
    save(conn, now, &a, true)?;
    if a.status == AWAITING {
        diesel::update(assessments::table.find(&a.id))
            .set(assessments::requested_at.eq(to_db(now)))
            .execute(conn)?;
    }
    let a = get_assessment(conn, &a.id)?;
    log(conn, now, me, client, "created", &a)?;
    let mails = match (&a.assessor_email, a.status.as_str(), &gate) {
        (Some(email), AWAITING, Some(super::vetting::Gate::Approved { vetted_by })) => {
            vec![create_link(conn, cfg, now, &a, email, vetted_by)?]
        }
        (None, AWAITING, _) => vec![request_mail(conn, cfg, &a)?],
        (Some(email), AWAITING_VETTING, Some(super::vetting::Gate::Pending { first: true })) => {
            super::vetting::vetting_mail(conn, cfg, today, enrolment_id, email)?
                .into_iter()
                .collect()
        }
        _ => vec![],
    };
    Ok((a, mails))
}

/// The person was approved: the assessment goes out with its signing link.
pub fn release_after_vetting(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    id: &str,
    vetted_by: &str,
) -> Result<Mail, AppError> {
    let changed = diesel::update(
        assessments::table
            .find(id)
            .filter(assessments::status.eq(AWAITING_VETTING)),
    )
    .set((
        assessments::status.eq(AWAITING),
        assessments::requested_at.eq(to_db(now)),
        assessments::version.eq(assessments::version + 1),
        assessments::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    if changed != 1 {
        return Err(AppError::Conflict(
            "the assessment changed in the meantime".into(),
        ));
    }
    let a = get_assessment(conn, id)?;
    let email = a.assessor_email.clone().ok_or(AppError::NotFound)?;
    audit_as(
        conn,
        now,
        &Signer {
            user_id: Some(vetted_by),
            email: None,
            method: "",
            client: None,
        },
        "requested",
        &a,
    )?;
    create_link(conn, cfg, now, &a, &email, vetted_by)
}

/// The person was not approved: the trainee gets the assessment back as a draft.
pub fn return_after_vetting(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    id: &str,
    decided_by: &str,
) -> Result<Mail, AppError> {
    diesel::update(
        assessments::table
            .find(id)
            .filter(assessments::status.eq(AWAITING_VETTING)),
    )
    .set((
        assessments::status.eq(DRAFT),
        assessments::assessor_email.eq(None::<String>),
        assessments::version.eq(assessments::version + 1),
        assessments::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    let a = get_assessment(conn, id)?;
    audit_as(
        conn,
        now,
        &Signer {
            user_id: Some(decided_by),
            email: None,
            method: "",
            client: None,
        },
        "updated",
        &a,
    )?;
    let trainee = trainee_of(conn, &a.enrolment_id)?;
    Ok(Mail {
        to: email_of(conn, &trainee)?,
        subject: "Bedömare inte godkänd / Assessor not approved".into(),
        body: format!(
            "Den du bad om en bedömning godkändes inte som bedömare. Be någon annan.
             The person you asked for an assessment was not approved as an assessor. Ask              someone else.

{}
",
            link(cfg, &a.id)
        ),
    })
}

fn refuse_if_final(a: &Assessment) -> Result<(), AppError> {
    match a.status.as_str() {
        SIGNED => Err(AppError::Conflict(
            "a signed assessment cannot change; create a correction (POST /assessments/{id}/corrections)".into(),
        )),
        DECLINED => Err(AppError::Conflict("a declined assessment cannot change".into())),
        _ => Ok(()),
    }
}

/// Partial update of a draft or pending assessment: the trainee edits context and
/// reflection; the assessor rates and writes feedback.
pub fn update(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    c: AssessmentContent,
) -> Result<Assessment, AppError> {
    let mut a = readable(conn, me, id, now.date_naive())?;
    if_match(&a.etag())?;
    refuse_if_final(&a)?;
    let trainee = trainee_of(conn, &a.enrolment_id)?;
    let is_assessor = a.assessor_id.as_deref() == Some(me.user_id.as_str());
    if me.user_id == trainee {
        if c.ratings.is_some()
            || c.entrustment.is_some()
            || c.feedback_strengths.is_some()
            || c.feedback_next_steps.is_some()
        {
            return Err(AppError::Forbidden(
                "the assessor rates and gives feedback, not the trainee".into(),
            ));
        }
    } else if !is_assessor {
        return Err(AppError::Forbidden(
            "only the trainee and the named assessor edit an assessment".into(),
        ));
    }
    apply(conn, &mut a, c)?;
    save(conn, now, &a, false)?;
    let a = get_assessment(conn, id)?;
    log(conn, now, me, client, "updated", &a)?;
    Ok(a)
}

/// The trainee sends a draft to a named assessor.
pub fn request(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    id: &str,
    assessor_id: &str,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let a = readable(conn, me, id, now.date_naive())?;
    if trainee_of(conn, &a.enrolment_id)? != me.user_id {
        return Err(AppError::Forbidden(
            "the trainee requests the signature".into(),
        ));
    }
    if a.status != DRAFT {
        return Err(AppError::Conflict(format!(
            "the assessment is {}",
            a.status
        )));
    }
    if assessor_id == me.user_id {
        return Err(AppError::validation(
            "assessor_id",
            "you cannot assess yourself",
        ));
    }
    if !super::talks::is_supervisor(conn, assessor_id)? {
        return Err(AppError::validation(
            "assessor_id",
            "not a user with the supervisor role",
        ));
    }
    let requested = diesel::update(
        assessments::table
            .find(id)
            .filter(assessments::status.eq(DRAFT))
            .filter(assessments::deleted_at.is_null()),
    )
    .set((
        assessments::status.eq(AWAITING),
        assessments::assessor_id.eq(assessor_id),
        assessments::requested_at.eq(to_db(now)),
        assessments::version.eq(assessments::version + 1),
        assessments::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    if requested != 1 {
        return Err(AppError::Conflict(
            "the assessment changed in the meantime; reload it".into(),
        ));
    }
    let a = get_assessment(conn, id)?;
    log(conn, now, me, client, "requested", &a)?;
    let mail = request_mail(conn, cfg, &a)?;
    Ok((a, vec![mail]))
}

/// Who signs or declines: a signed-in user, or an assessor without an account holding
/// a signing link bound to their address.
pub struct Signer<'a> {
    pub user_id: Option<&'a str>,
    pub email: Option<&'a str>,
    /// The session's second factor, or `signing_link`.
    pub method: &'a str,
    pub client: Option<&'a str>,
}

fn audit_as(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    who: &Signer,
    action: &str,
    a: &Assessment,
) -> Result<(), AppError> {
    let client = match (who.client, who.email) {
        (_, Some(email)) => Some(format!("signing-link:{email}")),
        (c, None) => c.map(str::to_string),
    };
    audit::append(
        conn,
        now,
        Event {
            actor_id: who.user_id,
            client: client.as_deref(),
            action,
            entity: "assessment",
            entity_id: &a.id,
            enrolment_id: Some(&a.enrolment_id),
            data: &json!(a),
        },
    )
}

/// Applies the assessor's last edits and signs: the content hash, who, when, how.
fn seal(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    mut a: Assessment,
    c: AssessmentContent,
    who: &Signer,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    apply(conn, &mut a, c)?;
    let mut missing = Vec::new();
    if a.ratings.values().all(|r| r.is_none()) && a.entrustment.is_none() {
        missing.push(FieldError::new(
            "ratings",
            "rate at least one domain (or give an entrustment rating) before signing",
        ));
    }
    if a.feedback_next_steps.trim().is_empty() {
        missing.push(FieldError::new(
            "feedback_next_steps",
            "feed forward is what makes the assessment useful: what to do next",
        ));
    }
    if !missing.is_empty() {
        return Err(AppError::Validation(missing));
    }
    // Claim the signature first, in one conditional statement: of two signings at once
    // (PostgreSQL, READ COMMITTED), the second waits on the row lock and then finds the
    // record no longer awaiting a signature, so exactly one signs and is audited.
    claim_signature(conn, now, &a.id)?;
    a.status = SIGNED.into();
    save(conn, now, &a, false)?;
    let hash = crate::auth::crypto::sha256_hex(a.signed_content().to_string());
    diesel::update(assessments::table.find(&a.id))
        .set((
            assessments::signed_at.eq(to_db(now)),
            assessments::signed_by.eq(who.user_id),
            assessments::signed_by_email.eq(who.email),
            assessments::signature_method.eq(who.method),
            assessments::content_hash.eq(&hash),
        ))
        .execute(conn)?;
    if let Some(old) = &a.supersedes_id {
        diesel::update(assessments::table.find(old))
            .set(assessments::superseded_by.eq(&a.id))
            .execute(conn)?;
    }
    let a = get_assessment(conn, &a.id)?;
    audit_as(conn, now, who, "signed", &a)?;
    crate::events::publish(
        conn,
        now,
        crate::events::DomainEvent::AssessmentSigned {
            enrolment_id: a.enrolment_id.to_string(),
            data: json!({"assessment": a}),
        },
    )?;
    let trainee = trainee_of(conn, &a.enrolment_id)?;
    let mail = Mail {
        to: email_of(conn, &trainee)?,
        subject: format!(
            "Bedömning signerad / Assessment signed: {}",
            instrument_str(a.instrument)
        ),
        body: format!(
            "Din bedömning från {} är signerad. Nästa steg: {}\n\
             Your assessment from {} has been signed.\n\n{}\n",
            a.performed_on,
            a.feedback_next_steps,
            a.performed_on,
            link(cfg, &a.id)
        ),
    };
    Ok((a, vec![mail]))
}

/// Marks the record signed-at-`now` only while it still awaits a signature (not signed,
/// not declined, not deleted); anything else means another request got there first.
fn claim_signature(conn: &mut DbConn, now: DateTime<Utc>, id: &str) -> Result<(), AppError> {
    let claimed = diesel::update(
        assessments::table
            .find(id)
            .filter(assessments::signed_at.is_null())
            .filter(assessments::deleted_at.is_null())
            .filter(assessments::status.eq_any([DRAFT, AWAITING])),
    )
    .set(assessments::signed_at.eq(to_db(now)))
    .execute(conn)?;
    if claimed != 1 {
        return Err(AppError::Conflict(
            "the assessment was signed or declined in the meantime".into(),
        ));
    }
    Ok(())
}

fn mark_declined(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    a: &Assessment,
    reason: &str,
    who: &Signer,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    if reason.trim().is_empty() || reason.chars().count() > 2000 {
        return Err(AppError::validation(
            "reason",
            "say why, in at most 2000 characters",
        ));
    }
    // Conditional, like signing: only a record still waiting is declined, once.
    let declined = diesel::update(
        assessments::table
            .find(&a.id)
            .filter(assessments::signed_at.is_null())
            .filter(assessments::deleted_at.is_null())
            .filter(assessments::status.eq_any([DRAFT, AWAITING])),
    )
    .set((
        assessments::status.eq(DECLINED),
        assessments::decline_reason.eq(reason.trim()),
        assessments::version.eq(assessments::version + 1),
        assessments::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    if declined != 1 {
        return Err(AppError::Conflict(
            "the assessment was signed or declined in the meantime".into(),
        ));
    }
    let a = get_assessment(conn, &a.id)?;
    audit_as(conn, now, who, "declined", &a)?;
    let trainee = trainee_of(conn, &a.enrolment_id)?;
    let mail = Mail {
        to: email_of(conn, &trainee)?,
        subject: format!(
            "Bedömning avböjd / Assessment declined: {}",
            instrument_str(a.instrument)
        ),
        body: format!("Skäl / Reason: {}\n\n{}\n", reason.trim(), link(cfg, &a.id)),
    };
    Ok((a, vec![mail]))
}

/// Signs, applying the assessor's last edits in the same request. Only the named
/// assessor signs, and never the trainee.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    c: AssessmentContent,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let a = readable(conn, me, id, now.date_naive())?;
    if_match(&a.etag())?;
    refuse_if_final(&a)?;
    if me.user_id == trainee_of(conn, &a.enrolment_id)? {
        return Err(AppError::Forbidden(
            "a trainee cannot sign their own assessment".into(),
        ));
    }
    if a.assessor_id.as_deref() != Some(me.user_id.as_str()) {
        return Err(AppError::Forbidden("only the named assessor signs".into()));
    }
    let who = Signer {
        user_id: Some(&me.user_id),
        email: None,
        method: &me.second_factor,
        client: client.user_agent.as_deref(),
    };
    seal(conn, cfg, now, a, c, &who)
}

pub fn decline(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    id: &str,
    reason: &str,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let a = readable(conn, me, id, now.date_naive())?;
    refuse_if_final(&a)?;
    if a.assessor_id.as_deref() != Some(me.user_id.as_str()) {
        return Err(AppError::Forbidden(
            "only the named assessor declines".into(),
        ));
    }
    let who = Signer {
        user_id: Some(&me.user_id),
        email: None,
        method: &me.second_factor,
        client: client.user_agent.as_deref(),
    };
    mark_declined(conn, cfg, now, &a, reason, &who)
}

// ---- Co-signing on the trainee's phone ----------------------------------------------

/// Who is standing at the trainee's phone, from the trainee's session: the named
/// assessor's credentials hash (checked by the caller, off the database thread).
pub fn co_sign_start(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: &Principal,
    id: &str,
    email: &str,
) -> Result<(Assessment, Option<crate::auth::service::Credentials>), AppError> {
    let a = readable(conn, me, id, now.date_naive())?;
    refuse_if_final(&a)?;
    if trainee_of(conn, &a.enrolment_id)? != me.user_id {
        return Err(AppError::Forbidden(
            "co-signing happens on the trainee's own device".into(),
        ));
    }
    let email = crate::auth::service::normalize_email(email);
    // Counted before the password is checked, like a login (a wrong one needs no
    // second step).
    crate::auth::ratelimit::hit(
        conn,
        &crate::auth::service::login_account_key(&email),
        cfg.rate_limits.login_per_account,
        now,
    )?;
    let creds = crate::auth::service::credentials_by_email(conn, &email)?
        .filter(|c| c.status == "active" && Some(c.id.as_str()) == a.assessor_id.as_deref());
    Ok((a, creds))
}

/// The assessor proved who they are with password and second factor on the trainee's
/// phone: sign as them. The trainee's session gains nothing; no session is created.
#[allow(clippy::too_many_arguments)]
pub fn co_sign_finish(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    client: &ClientInfo,
    id: &str,
    assessor: Option<&crate::auth::service::Credentials>,
    factor: &crate::auth::service::SecondFactor,
    c: AssessmentContent,
) -> Result<Result<(Assessment, Vec<Mail>), AppError>, AppError> {
    let Some(assessor) = assessor else {
        // The attempt was counted in `co_sign_start`.
        return Ok(Err(AppError::InvalidCredentials));
    };
    let method = match crate::auth::service::check_in_person(conn, cfg, now, &assessor.id, factor)?
    {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let a = get_assessment(conn, id)?;
    refuse_if_final(&a)?;
    let who = Signer {
        user_id: Some(&assessor.id),
        email: None,
        method,
        client: client.user_agent.as_deref(),
    };
    seal(conn, cfg, now, a, c, &who).map(Ok)
}

// ---- Assessors without an account: signing links --------------------------------------

fn create_link(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    a: &Assessment,
    email: &str,
    vetted_by: &str,
) -> Result<Mail, AppError> {
    let token = crate::auth::crypto::random_token();
    let expires = now + crate::clock::dur(cfg.signing_link_ttl);
    diesel::insert_into(signing_links::table)
        .values((
            signing_links::token_hash.eq(crate::auth::crypto::sha256_hex(&token)),
            signing_links::assessment_id.eq(&a.id),
            signing_links::email.eq(email),
            signing_links::created_at.eq(to_db(now)),
            signing_links::expires_at.eq(to_db(expires)),
            signing_links::vetted_by.eq(vetted_by),
        ))
        .execute(conn)?;
    let trainee = trainee_of(conn, &a.enrolment_id)?;
    let name: String = users::table
        .find(&trainee)
        .select(users::display_name)
        .first(conn)?;
    let instrument = instrument_str(a.instrument);
    let days = cfg.signing_link_ttl.as_secs() / 86_400;
    Ok(Mail {
        to: email.into(),
        subject: format!("Bedömning att signera / Assessment to sign: {instrument}, {name}"),
        body: format!(
            "{name} ber dig bedöma och signera en {instrument} från {}. Du behöver inget konto.\n\
             {name} asks you to assess and sign a {instrument} from {}. No account is needed.\n\n\
             {}/sign?token={token}\n\n\
             Länken gäller i {days} dagar, bara för dig och bara för denna bedömning.\n\
             The link is valid for {days} days, for you and this assessment only.\n",
            a.performed_on,
            a.performed_on,
            cfg.public_url.trim_end_matches('/')
        ),
    })
}

/// What a signing link opens: the assessment it is bound to, while it is waiting.
pub fn open_link(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
) -> Result<(Assessment, String, DateTime<Utc>), AppError> {
    let found: Option<(String, String, chrono::NaiveDateTime)> = signing_links::table
        .find(crate::auth::crypto::sha256_hex(token))
        .filter(signing_links::used_at.is_null())
        .filter(signing_links::expires_at.gt(to_db(now)))
        .select((
            signing_links::assessment_id,
            signing_links::email,
            signing_links::expires_at,
        ))
        .first(conn)
        .optional()?;
    let (id, email, expires) = found.ok_or(AppError::InvalidToken)?;
    let a = get_assessment(conn, &id).map_err(|_| AppError::InvalidToken)?;
    if a.status != AWAITING || a.assessor_email.as_deref() != Some(email.as_str()) {
        return Err(AppError::InvalidToken);
    }
    Ok((a, email, from_db(expires)))
}

/// Takes the link in one conditional statement (unused and unexpired), so that of the
/// same link sent twice at once exactly one request gets it; the other sees a used link.
fn use_link(conn: &mut DbConn, now: DateTime<Utc>, token: &str) -> Result<(), AppError> {
    let taken = diesel::update(
        signing_links::table
            .find(crate::auth::crypto::sha256_hex(token))
            .filter(signing_links::used_at.is_null())
            .filter(signing_links::expires_at.gt(to_db(now))),
    )
    .set(signing_links::used_at.eq(to_db(now)))
    .execute(conn)?;
    if taken != 1 {
        return Err(AppError::InvalidToken);
    }
    Ok(())
}

pub fn sign_by_link(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    client: &ClientInfo,
    token: &str,
    c: AssessmentContent,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let (a, email, _) = open_link(conn, now, token)?;
    use_link(conn, now, token)?;
    let who = Signer {
        user_id: None,
        email: Some(&email),
        method: "signing_link",
        client: client.user_agent.as_deref(),
    };
    seal(conn, cfg, now, a, c, &who)
}

pub fn decline_by_link(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    client: &ClientInfo,
    token: &str,
    reason: &str,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let (a, email, _) = open_link(conn, now, token)?;
    use_link(conn, now, token)?;
    let who = Signer {
        user_id: None,
        email: Some(&email),
        method: "signing_link",
        client: client.user_agent.as_deref(),
    };
    mark_declined(conn, cfg, now, &a, reason, &who)
}

/// A correction of a signed assessment: a new draft that copies it, by its signer, to
/// be edited and signed. The signed original stays as it was.
pub fn correct(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    id: &str,
    c: AssessmentContent,
) -> Result<Assessment, AppError> {
    let original = readable(conn, me, id, now.date_naive())?;
    if original.status != SIGNED {
        return Err(AppError::Conflict(
            "only a signed assessment is corrected; edit the draft instead".into(),
        ));
    }
    if original.superseded_by.is_some() {
        return Err(AppError::Conflict(
            "this version was already corrected; correct the newest one".into(),
        ));
    }
    if original
        .signature
        .as_ref()
        .and_then(|s| s.signed_by.as_deref())
        != Some(me.user_id.as_str())
    {
        return Err(AppError::Forbidden(
            "only the signer corrects a signed assessment".into(),
        ));
    }
    let mut a = Assessment {
        id: Uuid::new_v4().to_string(),
        status: DRAFT.into(),
        supersedes_id: Some(original.id.clone()),
        superseded_by: None,
        signature: None,
        decline_reason: None,
        created_by: me.user_id.clone(),
        ..original
    };
    apply(conn, &mut a, c)?;
    save(conn, now, &a, true)?;
    let a = get_assessment(conn, &a.id)?;
    log(conn, now, me, client, "correction_created", &a)?;
    Ok(a)
}

/// Trainees delete their own unsigned drafts; nothing signed is ever deleted.
pub fn delete(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    id: &str,
) -> Result<(), AppError> {
    let a = readable(conn, me, id, now.date_naive())?;
    if a.status == SIGNED {
        return Err(AppError::Conflict(
            "a signed assessment is never deleted".into(),
        ));
    }
    if a.created_by != me.user_id {
        return Err(AppError::Forbidden(
            "only its author deletes a draft".into(),
        ));
    }
    diesel::update(assessments::table.find(id))
        .set(assessments::deleted_at.eq(to_db(now)))
        .execute(conn)?;
    links::remove(conn, id)?;
    log(conn, now, me, client, "deleted", &a)
}

#[derive(Debug, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub instrument: Option<AssessmentType>,
    pub delmal: Option<String>,
    pub placement_id: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

pub fn list(
    conn: &mut DbConn,
    enrolment_id: &str,
    f: &Filter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Assessment>, AppError> {
    let mut q = assessments::table
        .filter(assessments::enrolment_id.eq(enrolment_id.to_string()))
        .filter(assessments::deleted_at.is_null())
        .select(columns!())
        .into_boxed();
    if let Some(s) = &f.status {
        q = q.filter(assessments::status.eq(s.clone()));
    }
    if let Some(i) = f.instrument {
        q = q.filter(assessments::instrument.eq(instrument_str(i)));
    }
    if let Some(p) = &f.placement_id {
        q = q.filter(assessments::placement_id.eq(p.clone()));
    }
    if let Some(d) = f.from {
        q = q.filter(assessments::performed_on.ge(d.to_string()));
    }
    if let Some(d) = f.to {
        q = q.filter(assessments::performed_on.le(d.to_string()));
    }
    if let Some(code) = &f.delmal {
        let ids = record_delmal::table
            .filter(record_delmal::enrolment_id.eq(enrolment_id.to_string()))
            .filter(record_delmal::code.eq(code.clone()))
            .select(record_delmal::record_id);
        q = q.filter(assessments::id.eq_any(ids));
    }
    if let Some(a) = after {
        q = q.filter(assessments::id.gt(a.to_string()));
    }
    let rows: Vec<Row> = q.order(assessments::id).limit(limit + 1).load(conn)?;
    from_rows(conn, rows)
}

/// Everything waiting for my signature, across all my trainees, oldest request first.
pub fn signature_queue(conn: &mut DbConn, me: &Principal) -> Result<Vec<Assessment>, AppError> {
    let query = assessments::table
        .filter(assessments::assessor_id.eq(&me.user_id))
        .filter(assessments::deleted_at.is_null())
        .filter(
            assessments::status.eq(AWAITING).or(assessments::status
                .eq(DRAFT)
                .and(assessments::created_by.eq(&me.user_id))),
        )
        .order((assessments::requested_at, assessments::created_at))
        .select(columns!());
    let rows: Vec<Row> = crate::on_backend!(conn, |c| query.load(c))?;
    from_rows(conn, rows)
}
