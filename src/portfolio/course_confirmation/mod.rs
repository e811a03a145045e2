//! The kursledare (course leader) of a course confirms it by link (issue 14 item 8): "the
//! trainee took part in the course and met its kompetenskrav". The forms name the
//! kursledare as the signer of the course variant of the training-activity certificate
//! ("kursledare eller handledare", HSLF-FS 2021:8 bilagor 8-11; "kursledare", SOSFS
//! 2015:8 bilagor 3-7: `catalog/certificates.json`), and a kursledare seldom has an
//! account here.
//!
//! The trainee names the kursledare of a course activity (name, e-mail, workplace or
//! course organiser) and asks for the confirmation. The person is vetted exactly as an
//! assessor without an account is (`vetting`: per person and organisation, approved by
//! the main supervisor or a director of studies): a request to an unvetted person waits
//! as `awaiting_vetting`, approval sends the link, declining hands the request back
//! (`returned`). The single-use link (bound to the address and the course, expiring as a
//! signing link does) records the confirmation with role kursledare, who and when, and a
//! hash of exactly what was confirmed; a confirmed course then never changes.
//!
//! `link.rs`: what the kursledare does through the link (view and confirm).
//!
//! Longer than the ~600-line target: naming, vetting and the import/export of a
//! confirmation share its row and status rules; what the kursledare does through the
//! link is in `link.rs`.

mod link;
pub use link::{confirm, link_view, CourseConfirmationLinkView};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, Event};
use crate::auth::crypto::{random_token, sha256_hex};
use crate::clock::{dur, from_db, to_db};
use crate::config::Config;
use crate::context::{Context, Ctx};
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{ActivityId, EnrolmentId, UserId};
use crate::mail::Mail;
use crate::portfolio::activities::{self, Activity, ActivityKind};
use crate::portfolio::vetting::{self, ExternalAssessor, Gate, Named};
use crate::schema::{
    course_confirmation_links, course_confirmations, enrolments, external_assessors, users,
};

crate::text_enum! {
    /// Where a course's confirmation stands.
    pub enum ConfirmationStatus {
        /// Named, but the person is not vetted yet: no link is out.
        AwaitingVetting = "awaiting_vetting",
        /// The link is out.
        Awaiting = "awaiting_confirmation",
        /// Confirmed by the kursledare: immutable.
        Confirmed = "confirmed",
        /// The vetting declined the person: the trainee names someone else.
        Returned = "returned",
    }
}

// The API shows the status as its stored code: a plain string in the spec, as before.
impl Serialize for ConfirmationStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

pub const AWAITING_VETTING: ConfirmationStatus = ConfirmationStatus::AwaitingVetting;
pub const AWAITING: ConfirmationStatus = ConfirmationStatus::Awaiting;
pub const CONFIRMED: ConfirmationStatus = ConfirmationStatus::Confirmed;
pub const RETURNED: ConfirmationStatus = ConfirmationStatus::Returned;

/// The role the confirmation is recorded with, as the forms name the signer.
pub const ROLE: &str = "kursledare";

/// What the kursledare confirms (the wording is the service's, not a form's).
fn statement(trainee: &str, a: &Activity) -> String {
    format!(
        "Jag intygar som kursledare att {trainee} har deltagit i kursen \"{}\" ({}) och \
         uppfyllt dess kompetenskrav.",
        a.title,
        period(a)
    )
}

fn period(a: &Activity) -> String {
    match a.end_date {
        Some(end) if end != a.start_date => format!("{} – {end}", a.start_date),
        _ => a.start_date.to_string(),
    }
}

/// The request for a course's confirmation and, once given, the confirmation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CourseConfirmation {
    /// The course activity (kind `course`).
    pub activity_id: String,
    pub enrolment_id: String,
    /// `kursledare`: the role the confirmation is recorded with.
    #[schema(example = "kursledare")]
    pub role: String,
    /// The kursledare as vetted (name, address, workplace or course organiser).
    #[schema(example = "Karin Kurs")]
    pub kursledare_name: String,
    #[schema(example = "karin.kurs@kursgivare.se")]
    pub kursledare_email: String,
    #[schema(example = "Kursgivare Syd AB")]
    pub kursledare_workplace: String,
    /// `awaiting_vetting`, `awaiting_confirmation`, `confirmed` or `returned`.
    #[schema(example = "awaiting_confirmation", value_type = String)]
    pub status: ConfirmationStatus,
    pub requested_by: String,
    #[serde(with = "crate::clock::millis")]
    pub requested_at: DateTime<Utc>,
    /// Who approved the kursledare (the vetting), once approved.
    pub vetted_by: Option<String>,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub confirmed_at: Option<DateTime<Utc>>,
    /// SHA-256 over exactly what the kursledare confirmed (course, trainee, statement).
    pub content_hash: Option<String>,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl CourseConfirmation {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

/// The trainee names the kursledare. For a person already vetted in the organisation the
/// vetted name and workplace are used; for a new one both are required.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CourseConfirmationRequest {
    #[schema(example = "karin.kurs@kursgivare.se")]
    pub kursledare_email: String,
    #[schema(example = "Karin Kurs")]
    pub kursledare_name: Option<String>,
    /// Workplace or course organiser (kursgivare).
    #[schema(example = "Kursgivare Syd AB")]
    pub kursledare_workplace: Option<String>,
}

/// A request as stored.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = course_confirmations, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    activity_id: ActivityId,
    enrolment_id: EnrolmentId,
    kursledare_email: String,
    kursledare_name: String,
    kursledare_workplace: String,
    status: ConfirmationStatus,
    requested_by: UserId,
    requested_at: NaiveDateTime,
    vetted_by: Option<UserId>,
    confirmed_at: Option<NaiveDateTime>,
    content_hash: Option<String>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn from_row(r: Row) -> Result<CourseConfirmation, AppError> {
    Ok(CourseConfirmation {
        activity_id: r.activity_id.into_inner(),
        enrolment_id: r.enrolment_id.into_inner(),
        role: ROLE.into(),
        kursledare_name: r.kursledare_name,
        kursledare_email: r.kursledare_email,
        kursledare_workplace: r.kursledare_workplace,
        status: r.status,
        requested_by: r.requested_by.into_inner(),
        requested_at: from_db(r.requested_at),
        vetted_by: r.vetted_by.map(UserId::into_inner),
        confirmed_at: r.confirmed_at.map(from_db),
        content_hash: r.content_hash,
        version: r.version,
        created_at: from_db(r.created_at),
        updated_at: from_db(r.updated_at),
    })
}

fn find(
    conn: &mut DbConn,
    activity_id: &ActivityId,
) -> Result<Option<CourseConfirmation>, AppError> {
    let row: Option<Row> = course_confirmations::table
        .find(activity_id)
        .select(Row::as_select())
        .first(conn)
        .optional()?;
    row.map(from_row).transpose()
}

/// What an audit entry keeps of a course confirmation as values; the kursledare's name,
/// address and workplace only as keyed digests under the course activity's key
/// (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &[
    "activity_id",
    "enrolment_id",
    "role",
    "status",
    "requested_by",
    "requested_at",
    "vetted_by",
    "confirmed_at",
    "content_hash",
    "version",
    "created_at",
    "updated_at",
];

fn audit_as(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: Option<&str>,
    client: Option<&str>,
    action: &str,
    c: &CourseConfirmation,
) -> Result<(), AppError> {
    let data = audit::text::record_data(
        conn,
        now,
        &c.activity_id,
        Some(&EnrolmentId::from(&c.enrolment_id)),
        c,
        AUDIT_FACTS,
    )?;
    audit::append(
        conn,
        now,
        Event {
            actor_id: actor,
            client,
            action,
            entity: "course_confirmation",
            entity_id: &c.activity_id,
            enrolment_id: Some(&c.enrolment_id),
            data: &data,
        },
    )
}

/// The confirmation (or the request) of a course, for anyone who may read the enrolment;
/// 404 when there is none or the caller may not see it.
pub fn get(
    conn: &mut DbConn,
    ctx: &Ctx,
    activity_id: &ActivityId,
) -> Result<CourseConfirmation, AppError> {
    let enrolment = activities::enrolment_of_activity(conn, activity_id)?;
    access::require(conn, &ctx.caller, &enrolment, ctx.today(), Access::Read)?;
    find(conn, activity_id)?.ok_or(AppError::NotFound)
}

/// The vetting's field names, for the kursledare.
fn renamed(e: AppError) -> AppError {
    match e {
        AppError::Validation(errors) => AppError::Validation(
            errors
                .into_iter()
                .map(|f| {
                    let field = f.field.replacen("assessor_", "kursledare_", 1);
                    let message = f
                        .message
                        .replace("an assessment is signed", "a course is confirmed")
                        .replace("as an assessor", "as a kursledare")
                        .replace("who the assessor is", "who the kursledare is");
                    FieldError::new(&field, &message)
                })
                .collect(),
        ),
        other => other,
    }
}

/// The trainee asks the named kursledare to confirm a course. Replaces an earlier request
/// not yet confirmed (its link stops working); a confirmed course: 409.
pub fn request(
    conn: &mut DbConn,
    ctx: &Ctx,
    activity_id: &ActivityId,
    req: CourseConfirmationRequest,
) -> Result<(CourseConfirmation, Vec<Mail>), AppError> {
    let (cfg, now, me) = (&*ctx.config, ctx.now, &ctx.caller);
    let enrolment_id = activities::enrolment_of_activity(conn, activity_id)?;
    activities::require_trainee(conn, me, &enrolment_id, ctx.today())?;
    let activity = activities::get_activity(conn, activity_id)?;
    if activity.kind != ActivityKind::Course {
        return Err(AppError::validation(
            "activity_id",
            "only a course (kind `course`) has a kursledare to confirm it",
        ));
    }
    let previous = find(conn, activity_id)?;
    if previous.as_ref().is_some_and(|p| p.status == CONFIRMED) {
        return Err(AppError::Conflict(
            "the kursledare has confirmed this course; a confirmation never changes".into(),
        ));
    }
    let email = crate::auth::service::normalize_email(&req.kursledare_email);
    if !crate::auth::service::valid_email(&email) {
        return Err(AppError::validation(
            "kursledare_email",
            "is not an e-mail address",
        ));
    }
    let own: String = users::table
        .find(&me.user_id)
        .select(users::email)
        .first(conn)?;
    let gate = vetting::gate(
        conn,
        ctx,
        &own,
        &enrolment_id,
        &email,
        Named {
            name: req.kursledare_name.as_deref(),
            workplace: req.kursledare_workplace.as_deref(),
            qualifications: None,
        },
    )
    .map_err(renamed)?;
    // The person as vetted (or being vetted) in the enrolment's organisation: what the
    // vetter approves is what the certificate prints.
    let org: String = enrolments::table
        .find(&enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)?;
    let (name, workplace): (String, String) = external_assessors::table
        .filter(external_assessors::organisation_id.eq(&org))
        .filter(external_assessors::email.eq(&email))
        .select((external_assessors::name, external_assessors::workplace))
        .first(conn)?;
    if previous.is_some() {
        diesel::delete(
            course_confirmation_links::table
                .filter(course_confirmation_links::activity_id.eq(activity_id)),
        )
        .execute(conn)?;
        diesel::delete(course_confirmations::table.find(activity_id)).execute(conn)?;
    }
    let (status, vetted_by) = match &gate {
        Gate::Approved { vetted_by } => (AWAITING, Some(UserId::from(vetted_by))),
        Gate::Pending { .. } => (AWAITING_VETTING, None),
    };
    diesel::insert_into(course_confirmations::table)
        .values(Row {
            activity_id: activity_id.clone(),
            enrolment_id: enrolment_id.clone(),
            kursledare_email: email.clone(),
            kursledare_name: name,
            kursledare_workplace: workplace,
            status,
            requested_by: me.user_id.clone(),
            requested_at: to_db(now),
            vetted_by,
            confirmed_at: None,
            content_hash: None,
            version: previous.map_or(1, |p| p.version + 1),
            created_at: to_db(now),
            updated_at: to_db(now),
        })
        .execute(conn)?;
    let c = find(conn, activity_id)?.ok_or(AppError::NotFound)?;
    audit_as(
        conn,
        now,
        Some(&me.user_id),
        ctx.client.user_agent.as_deref(),
        "requested",
        &c,
    )?;
    let mails = match gate {
        Gate::Approved { .. } => vec![create_link(conn, cfg, now, &c, &activity)?],
        Gate::Pending { first: true } => vetting_mail(conn, cfg, ctx.today(), &c)?
            .into_iter()
            .collect(),
        Gate::Pending { first: false } => Vec::new(),
    };
    Ok((c, mails))
}

/// The mail telling the trainee's main supervisor that a kursledare waits for vetting.
fn vetting_mail(
    conn: &mut DbConn,
    cfg: &Config,
    today: NaiveDate,
    c: &CourseConfirmation,
) -> Result<Option<Mail>, AppError> {
    let Some(main) = access::holder(
        conn,
        &EnrolmentId::from(c.enrolment_id.as_str()),
        access::MAIN_SUPERVISOR,
        today,
    )?
    else {
        return Ok(None);
    };
    let to: String = users::table.find(&main).select(users::email).first(conn)?;
    Ok(Some(Mail {
        to,
        subject: "Kursledare att godkänna / Course leader to approve".into(),
        body: format!(
            "En ST/BT-läkare har bett {} (utan konto) att som kursledare intyga en kurs. \
             Godkänn personen innan länken skickas.\n\
             A trainee asked {} (no account) to confirm a course as its course leader. \
             Approve the person before the link is sent.\n\n{}/external-assessors\n",
            c.kursledare_email,
            c.kursledare_email,
            cfg.public_url.trim_end_matches('/')
        ),
    }))
}

fn trainee_of(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<(String, String, String), AppError> {
    Ok(enrolments::table
        .inner_join(users::table.on(users::id.eq(enrolments::trainee_id)))
        .filter(enrolments::id.eq(enrolment_id))
        .select((users::id, users::display_name, users::email))
        .first(conn)?)
}

/// A single-use link for the kursledare, and the mail carrying it.
fn create_link(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    c: &CourseConfirmation,
    a: &Activity,
) -> Result<Mail, AppError> {
    let token = random_token();
    diesel::insert_into(course_confirmation_links::table)
        .values((
            course_confirmation_links::token_hash.eq(sha256_hex(&token)),
            course_confirmation_links::activity_id.eq(&c.activity_id),
            course_confirmation_links::email.eq(&c.kursledare_email),
            course_confirmation_links::created_at.eq(to_db(now)),
            course_confirmation_links::expires_at.eq(to_db(now + dur(cfg.signing_link_ttl))),
        ))
        .execute(conn)?;
    let (_, trainee, _) = trainee_of(conn, &EnrolmentId::from(&c.enrolment_id))?;
    let days = cfg.signing_link_ttl.as_secs() / 86_400;
    Ok(Mail {
        to: c.kursledare_email.clone(),
        subject: format!(
            "Kurs att intyga / Course to confirm: {}, {trainee}",
            a.title
        ),
        body: format!(
            "{trainee} ber dig som kursledare intyga att hen deltagit i kursen \"{}\" ({}) \
             och uppfyllt dess kompetenskrav. Du behöver inget konto.\n\
             {trainee} asks you, as the course leader, to confirm that they took part in \
             the course and met its competence requirements. No account is needed.\n\n\
             {}/confirm-course?token={token}\n\n\
             Länken gäller i {days} dagar, bara för dig och bara för denna kurs.\n\
             The link is valid for {days} days, for you and this course only.\n",
            a.title,
            period(a),
            cfg.public_url.trim_end_matches('/')
        ),
    })
}

/// The requests waiting for this person's vetting, in their organisation.
fn waiting(conn: &mut DbConn, x: &ExternalAssessor) -> Result<Vec<ActivityId>, AppError> {
    let in_org = enrolments::table
        .filter(enrolments::organisation_id.eq(x.organisation_id.clone()))
        .select(enrolments::id);
    Ok(course_confirmations::table
        .filter(course_confirmations::kursledare_email.eq(&x.email))
        .filter(course_confirmations::status.eq(AWAITING_VETTING))
        .filter(course_confirmations::enrolment_id.eq_any(in_org))
        .select(course_confirmations::activity_id)
        .load(conn)?)
}

/// The person was approved: each course waiting for them goes out with its link.
pub fn release_after_vetting(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    x: &ExternalAssessor,
    vetted_by: &str,
) -> Result<Vec<Mail>, AppError> {
    let mut mails = Vec::new();
    for id in waiting(conn, x)? {
        diesel::update(
            course_confirmations::table
                .find(&id)
                .filter(course_confirmations::status.eq(AWAITING_VETTING)),
        )
        .set((
            course_confirmations::status.eq(AWAITING),
            course_confirmations::vetted_by.eq(vetted_by),
            course_confirmations::version.eq(course_confirmations::version + 1),
            course_confirmations::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
        let c = find(conn, &id)?.ok_or(AppError::NotFound)?;
        audit_as(conn, now, Some(vetted_by), None, "vetted", &c)?;
        let a = activities::get_activity(conn, &id)?;
        mails.push(create_link(conn, cfg, now, &c, &a)?);
    }
    Ok(mails)
}

/// The person was not approved: the trainee gets each course back, to name someone else.
pub fn return_after_vetting(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    x: &ExternalAssessor,
    decided_by: &str,
) -> Result<Vec<Mail>, AppError> {
    let mut mails = Vec::new();
    for id in waiting(conn, x)? {
        diesel::update(
            course_confirmations::table
                .find(&id)
                .filter(course_confirmations::status.eq(AWAITING_VETTING)),
        )
        .set((
            course_confirmations::status.eq(RETURNED),
            course_confirmations::version.eq(course_confirmations::version + 1),
            course_confirmations::updated_at.eq(to_db(now)),
        ))
        .execute(conn)?;
        let c = find(conn, &id)?.ok_or(AppError::NotFound)?;
        audit_as(conn, now, Some(decided_by), None, "returned", &c)?;
        let (_, _, trainee_email) = trainee_of(conn, &EnrolmentId::from(&c.enrolment_id))?;
        mails.push(Mail {
            to: trainee_email,
            subject: "Kursledare inte godkänd / Course leader not approved".into(),
            body: format!(
                "Den du bad intyga en kurs godkändes inte som kursledare. Be någon annan.\n\
                 The person you asked to confirm a course was not approved. Ask someone \
                 else.\n\n{}/activities/{}\n",
                cfg.public_url.trim_end_matches('/'),
                c.activity_id
            ),
        });
    }
    Ok(mails)
}

/// For the vetting: the (organisation, address) pairs of kursledare named in these
/// enrolments, so that their main supervisors see and decide on them.
pub fn named_in(
    conn: &mut DbConn,
    enrolment_ids: &[String],
) -> Result<Vec<(String, String)>, AppError> {
    let named: Vec<(String, String)> = course_confirmations::table
        .filter(course_confirmations::enrolment_id.eq_any(enrolment_ids))
        .select((
            course_confirmations::enrolment_id,
            course_confirmations::kursledare_email,
        ))
        .load(conn)?;
    let mut out = Vec::new();
    for (enrolment, email) in named {
        let org: String = enrolments::table
            .find(&enrolment)
            .select(enrolments::organisation_id)
            .first(conn)?;
        out.push((org, email));
    }
    Ok(out)
}

/// A confirmed course never changes: its activity is not edited or deleted (409).
pub fn refuse_if_confirmed(conn: &mut DbConn, activity_id: &ActivityId) -> Result<(), AppError> {
    let confirmed: i64 = course_confirmations::table
        .filter(course_confirmations::activity_id.eq(activity_id))
        .filter(course_confirmations::status.eq(CONFIRMED))
        .count()
        .get_result(conn)?;
    if confirmed > 0 {
        return Err(AppError::Conflict(
            "the kursledare confirmed this course as it is; it cannot change".into(),
        ));
    }
    Ok(())
}

/// The kursledare who confirmed a course, for its certificate: name and workplace.
pub fn confirmed_kursledare(
    conn: &mut DbConn,
    activity_id: &ActivityId,
) -> Result<Option<(String, String)>, AppError> {
    Ok(course_confirmations::table
        .filter(course_confirmations::activity_id.eq(activity_id))
        .filter(course_confirmations::status.eq(CONFIRMED))
        .select((
            course_confirmations::kursledare_name,
            course_confirmations::kursledare_workplace,
        ))
        .first(conn)
        .optional()?)
}

/// Every course confirmation of an enrolment (requests and confirmations), by course:
/// for the personal data export, the dossier and the transfer bundle (issue 17).
pub fn of_enrolment(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<CourseConfirmation>, AppError> {
    let rows: Vec<Row> = course_confirmations::table
        .filter(course_confirmations::enrolment_id.eq(enrolment_id))
        .order((
            course_confirmations::created_at,
            course_confirmations::activity_id,
        ))
        .select(Row::as_select())
        .load(conn)?;
    rows.into_iter().map(from_row).collect()
}

/// The provenance rows of a course's confirmation imported from another service (issue
/// 17): the imported course's own provenance names the import and the course's id
/// there; the confirmation's row has the same. Empty for a course confirmed here.
pub fn transferred_confirmation(
    conn: &mut DbConn,
    activity_id: &ActivityId,
) -> Result<Vec<String>, AppError> {
    use crate::schema::transferred_records as t;
    let course: Option<(String, String)> = t::table
        .find(activity_id)
        .select((t::import_id, t::original_id))
        .first(conn)
        .optional()?;
    let Some((import_id, original_id)) = course else {
        return Ok(Vec::new());
    };
    Ok(t::table
        .filter(t::import_id.eq(import_id))
        .filter(t::original_id.eq(original_id))
        .filter(t::record_type.eq(crate::ids::TransferredRecordType::CourseConfirmation))
        .select(t::id)
        .load(conn)?)
}
