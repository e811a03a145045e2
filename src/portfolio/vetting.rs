//! Vetting of assessors without an account. A signing link proves only that someone
//! reads a mailbox, and a trainee can name a mailbox of their own; so before the first
//! link goes to an address, the trainee's main supervisor or a director of studies
//! approves the named person (name, e-mail, workplace) with one action.
//!
//! Vetting is per person and organisation (the organisation of the trainee's
//! enrolment), not per assessment or per enrolment: supervisors find the process heavy
//! enough already, and an external surgeon who assesses several trainees of the same
//! care provider is the same person to all of them. An assessment asked of a person
//! still being vetted waits as `awaiting_vetting`; approval sends the links of every
//! such assessment, declining hands them back to their trainees as drafts. A course's
//! kursledare is vetted the same way (`course_confirmation`).
//!
//! Longer than the ~600-line target: the gate, the decision and the mails are one state
//! machine (pending, approved, declined); split, one status's transitions would be
//! spread over files.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::principal::{org_subtrees, Principal, Role};
use crate::auth::service::normalize_email;
use crate::clock::{from_db, to_db};
use crate::config::Config;
use crate::context::Ctx;
use crate::db::DbConn;
use crate::enrolment::access;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::ids::{EnrolmentId, OrganisationId, UserId};
use crate::mail::Mail;
use crate::schema::{assessments, assignments, enrolments, external_assessors, users};

use super::qualifications::{self, AssessorQualifications, QualificationsInput};

crate::text_enum! {
    /// Where the vetting of a person without an account stands.
    pub enum VettingStatus { Pending = "pending", Approved = "approved", Declined = "declined" }
}

// The API shows the status as its stored code: a plain string in the spec, as before.
impl Serialize for VettingStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

pub const PENDING: VettingStatus = VettingStatus::Pending;
pub const APPROVED: VettingStatus = VettingStatus::Approved;
pub const DECLINED: VettingStatus = VettingStatus::Declined;

/// What an audit entry keeps of an external assessor as values; the name, address,
/// workplace and stated qualifications only as keyed digests (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &[
    "id",
    "organisation_id",
    "status",
    "requested_by",
    "enrolment_id",
    "decided_by",
    "decided_at",
    "qualification_warnings",
    "version",
    "created_at",
    "updated_at",
];

/// A person without an account named as assessor, and what became of the vetting.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExternalAssessor {
    pub id: String,
    /// The organisation of the enrolment the person was first named for; the vetting
    /// holds for every trainee enrolled there.
    pub organisation_id: String,
    #[schema(example = "narakut.lakare@hotmail.com")]
    pub email: String,
    #[schema(example = "Nora Akut")]
    pub name: String,
    #[schema(example = "Akutkliniken, Södersjukhuset")]
    pub workplace: String,
    /// `pending`, `approved` or `declined`.
    #[schema(example = "pending", value_type = String)]
    pub status: VettingStatus,
    /// The trainee who named the person first.
    pub requested_by: String,
    pub requested_by_name: String,
    /// The enrolment of that first request.
    pub enrolment_id: String,
    pub decided_by: Option<String>,
    #[serde(default, with = "crate::clock::millis_opt")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Specialist status and training in assessment methods, as the trainee stated them
    /// (`confirmed_by` once approved).
    pub qualifications: AssessorQualifications,
    /// What the vetter should weigh: `specialist_status_not_stated`, `not_specialist`,
    /// `assessment_training_not_stated`, `no_assessment_training`. A warning, not a
    /// block, unless the service requires both (`ASSESSOR_QUALIFICATIONS_REQUIRED`).
    pub qualification_warnings: Vec<String>,
    pub version: i32,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::clock::millis")]
    pub updated_at: DateTime<Utc>,
}

impl ExternalAssessor {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
}

/// A person named as an assessor, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = external_assessors, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    id: String,
    organisation_id: OrganisationId,
    email: String,
    name: String,
    workplace: String,
    status: VettingStatus,
    requested_by: UserId,
    enrolment_id: EnrolmentId,
    decided_by: Option<UserId>,
    decided_at: Option<NaiveDateTime>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    specialist: Option<i32>,
    specialty: Option<String>,
    assessment_training: Option<i32>,
    assessment_training_detail: Option<String>,
    qualifications_confirmed_by: Option<UserId>,
}

fn from_row(conn: &mut DbConn, r: Row) -> Result<ExternalAssessor, AppError> {
    let requested_by_name: String = users::table
        .find(&r.requested_by)
        .select(users::display_name)
        .first(conn)?;
    let qualifications = AssessorQualifications::from_stored(
        &r.id,
        r.specialist,
        r.specialty,
        r.assessment_training,
        r.assessment_training_detail,
        r.qualifications_confirmed_by.map(UserId::into_inner),
    )?;
    Ok(ExternalAssessor {
        qualification_warnings: qualifications.warnings(),
        qualifications,
        id: r.id,
        organisation_id: r.organisation_id.into_inner(),
        email: r.email,
        name: r.name,
        workplace: r.workplace,
        status: r.status,
        requested_by: r.requested_by.into_inner(),
        requested_by_name,
        enrolment_id: r.enrolment_id.into_inner(),
        decided_by: r.decided_by.map(UserId::into_inner),
        decided_at: r.decided_at.map(from_db),
        version: r.version,
        created_at: from_db(r.created_at),
        updated_at: from_db(r.updated_at),
    })
}

fn get(conn: &mut DbConn, id: &str) -> Result<ExternalAssessor, AppError> {
    let row: Row = external_assessors::table
        .find(id)
        .select(Row::as_select())
        .first(conn)?;
    from_row(conn, row)
}

/// One address in the form that matters for "is this the same mailbox": lower case,
/// without a `+tag`, and for Gmail without dots (Gmail ignores them).
pub fn canonical_address(email: &str) -> String {
    let email = normalize_email(email);
    let Some((local, domain)) = email.rsplit_once('@') else {
        return email;
    };
    let domain = domain.trim_end_matches('.');
    let domain = if domain == "googlemail.com" {
        "gmail.com"
    } else {
        domain
    };
    let local = local.split('+').next().unwrap_or(local);
    let local = if domain == "gmail.com" {
        local.replace('.', "")
    } else {
        local.to_string()
    };
    format!("{local}@{domain}")
}

/// What a request to an assessor without an account may do now.
pub enum Gate {
    /// Vetted: send the link; the id is who approved the person.
    Approved { vetted_by: String },
    /// Waiting for vetting: store the request, send nothing yet. `first` when this
    /// request asked for the vetting (and the main supervisor is to be told).
    Pending { first: bool },
}

fn checked_text(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> String {
    let v = value.map(str::trim).unwrap_or_default();
    // As any display name: it reaches the supervisor's mail and the dossier, so no
    // control or text-direction characters that could forge lines there.
    if crate::accounts::service::name_problem(v).is_some() {
        errors.push(FieldError::new(
            field,
            "say who the assessor is (1 to 200 characters): they are vetted before the first link goes out",
        ));
    }
    v.to_string()
}

/// What the trainee says about a person without an account when naming them; used only
/// when the person is new to the organisation.
pub struct Named<'a> {
    pub name: Option<&'a str>,
    pub workplace: Option<&'a str>,
    pub qualifications: Option<&'a QualificationsInput>,
}

/// Decides whether a link may go to `email` for a request on `enrolment_id` by its
/// trainee (the caller), recording a new vetting request when the person is unknown
/// there.
pub fn gate(
    conn: &mut DbConn,
    ctx: &Ctx,
    trainee_email: &str,
    enrolment_id: &EnrolmentId,
    email: &str,
    named: Named,
) -> Result<Gate, AppError> {
    let Named {
        name,
        workplace,
        qualifications: stated,
    } = named;
    if canonical_address(email) == canonical_address(trainee_email) {
        return Err(AppError::validation(
            "assessor_email",
            "that is your own address: an assessment is signed by someone else",
        ));
    }
    let org: String = enrolments::table
        .find(enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)?;
    let known: Option<(VettingStatus, Option<String>)> = external_assessors::table
        .filter(external_assessors::organisation_id.eq(&org))
        .filter(external_assessors::email.eq(email))
        .select((external_assessors::status, external_assessors::decided_by))
        .first(conn)
        .optional()?;
    match known {
        Some((status, Some(by))) if status == APPROVED => Ok(Gate::Approved { vetted_by: by }),
        Some((status, _)) if status == DECLINED => Err(AppError::validation(
            "assessor_email",
            "this person was not approved as an assessor here; ask someone else",
        )),
        Some(_) => Ok(Gate::Pending { first: false }),
        None => {
            let mut errors = Vec::new();
            let name = checked_text("assessor_name", name, &mut errors);
            let workplace = checked_text("assessor_workplace", workplace, &mut errors);
            // What the trainee states about the person's qualifications, for the vetter
            // to weigh (and confirm by approving).
            let q = match stated.map(|s| qualifications::checked(s, "assessor_qualifications.")) {
                None => AssessorQualifications::default(),
                Some(Ok(q)) => q,
                Some(Err(AppError::Validation(more))) => {
                    errors.extend(more);
                    AssessorQualifications::default()
                }
                Some(Err(e)) => return Err(e),
            };
            if !errors.is_empty() {
                return Err(AppError::Validation(errors));
            }
            diesel::insert_into(external_assessors::table)
                .values((
                    external_assessors::id.eq(Uuid::new_v4().to_string()),
                    external_assessors::organisation_id.eq(&org),
                    external_assessors::email.eq(email),
                    external_assessors::name.eq(&name),
                    external_assessors::workplace.eq(&workplace),
                    external_assessors::specialist.eq(q.specialist.map(i32::from)),
                    external_assessors::specialty.eq(&q.specialty),
                    external_assessors::assessment_training
                        .eq(q.assessment_training.map(i32::from)),
                    external_assessors::assessment_training_detail
                        .eq(&q.assessment_training_detail),
                    external_assessors::status.eq(PENDING),
                    external_assessors::requested_by.eq(&ctx.caller.user_id),
                    external_assessors::enrolment_id.eq(enrolment_id),
                    external_assessors::version.eq(1),
                    external_assessors::created_at.eq(to_db(ctx.now)),
                    external_assessors::updated_at.eq(to_db(ctx.now)),
                ))
                .execute(conn)?;
            Ok(Gate::Pending { first: true })
        }
    }
}

/// The mail telling the trainee's main supervisor that someone waits for vetting.
pub fn vetting_mail(
    conn: &mut DbConn,
    cfg: &Config,
    today: NaiveDate,
    enrolment_id: &EnrolmentId,
    email: &str,
) -> Result<Option<Mail>, AppError> {
    let Some(main) = access::holder(conn, enrolment_id, access::MAIN_SUPERVISOR, today)? else {
        return Ok(None);
    };
    let to: String = users::table.find(&main).select(users::email).first(conn)?;
    Ok(Some(Mail {
        to,
        subject: "Bedömare att godkänna / Assessor to approve".into(),
        body: format!(
            "En ST/BT-läkare har bett {email} (utan konto) om en bedömning. Godkänn personen \
             innan signeringslänken skickas.\n\
             A trainee asked {email} (no account) for an assessment. Approve the person \
             before the signing link is sent.\n\n{}/external-assessors\n",
            cfg.public_url.trim_end_matches('/')
        ),
    }))
}

/// Enrolments whose main supervisor `me` is today.
fn main_supervised(
    conn: &mut DbConn,
    me: &Principal,
    today: NaiveDate,
) -> Result<Vec<String>, AppError> {
    let today = today.to_string();
    Ok(assignments::table
        .filter(assignments::user_id.eq(&me.user_id))
        .filter(assignments::role.eq(access::MAIN_SUPERVISOR))
        .filter(assignments::valid_from.le(&today))
        .filter(
            assignments::valid_to
                .is_null()
                .or(assignments::valid_to.gt(&today)),
        )
        .select(assignments::enrolment_id)
        .load(conn)?)
}

/// Who decides on a person: a director of studies over the organisation, or the main
/// supervisor of a trainee (of that organisation) who named them.
fn may_decide(
    conn: &mut DbConn,
    me: &Principal,
    x: &ExternalAssessor,
    today: NaiveDate,
) -> Result<bool, AppError> {
    if me.has_role_over(
        conn,
        Role::DirectorOfStudies,
        &OrganisationId::from(&x.organisation_id),
    )? {
        return Ok(true);
    }
    let mine = main_supervised(conn, me, today)?;
    if mine.contains(&x.enrolment_id) {
        return Ok(true);
    }
    let asking: i64 = assessments::table
        .inner_join(enrolments::table.on(enrolments::id.eq(assessments::enrolment_id)))
        .filter(assessments::enrolment_id.eq_any(&mine))
        .filter(enrolments::organisation_id.eq(&x.organisation_id))
        .filter(assessments::assessor_email.eq(&x.email))
        .filter(assessments::deleted_at.is_null())
        .count()
        .get_result(conn)?;
    // A kursledare named for a course is vetted the same way (`course_confirmation`).
    let naming = super::course_confirmation::named_in(conn, &mine)?;
    Ok(asking > 0
        || naming
            .iter()
            .any(|(o, e)| o == &x.organisation_id && e == &x.email))
}

/// The people I may vet, by status (default: pending), oldest id first.
pub fn list(
    conn: &mut DbConn,
    me: &Principal,
    today: NaiveDate,
    status: VettingStatus,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ExternalAssessor>, AppError> {
    me.require_person()?;
    let orgs = org_subtrees(conn, &me.orgs_with(&[Role::DirectorOfStudies]))?;
    let mine = main_supervised(conn, me, today)?;
    // People named by my main-supervised trainees, in their enrolments' organisations.
    let named: Vec<(String, String)> = assessments::table
        .inner_join(enrolments::table.on(enrolments::id.eq(assessments::enrolment_id)))
        .filter(assessments::enrolment_id.eq_any(&mine))
        .filter(assessments::assessor_email.is_not_null())
        .filter(assessments::deleted_at.is_null())
        .select((
            enrolments::organisation_id,
            assessments::assessor_email.assume_not_null(),
        ))
        .load(conn)?;
    // And the kursledare they named for their courses.
    let named = [named, super::course_confirmation::named_in(conn, &mine)?].concat();
    let mut q = external_assessors::table
        .filter(external_assessors::status.eq(status))
        .select(Row::as_select())
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(external_assessors::id.gt(a.to_string()));
    }
    let rows: Vec<Row> = q.order(external_assessors::id).load(conn)?;
    let mut out = Vec::new();
    for row in rows {
        let (org, email, enrolment) = (
            row.organisation_id.as_str(),
            row.email.as_str(),
            row.enrolment_id.as_str(),
        );
        let visible = orgs.iter().any(|o| o == org)
            || mine.iter().any(|e| e == enrolment)
            || named.iter().any(|(o, e)| o == org && e == email);
        if visible {
            out.push(from_row(conn, row)?);
            if out.len() as i64 > limit {
                break;
            }
        }
    }
    Ok(out)
}

fn decide(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    to: VettingStatus,
) -> Result<ExternalAssessor, AppError> {
    let (now, me) = (ctx.now, &ctx.caller);
    me.require_person()?;
    let x = get(conn, id)?;
    if !may_decide(conn, me, &x, ctx.today())? {
        return Err(AppError::NotFound);
    }
    if to == APPROVED && x.status == PENDING {
        qualifications::approvable(
            ctx.config.assessor_qualifications_required,
            &x.qualifications,
        )?;
    }
    // Approving confirms what the trainee stated about the person.
    let confirmed_by = (to == APPROVED).then_some(me.user_id.as_str());
    // One conditional statement: of two decisions at once only one applies.
    let changed = diesel::update(
        external_assessors::table
            .find(id)
            .filter(external_assessors::status.eq(PENDING)),
    )
    .set((
        external_assessors::status.eq(to),
        external_assessors::decided_by.eq(&me.user_id),
        external_assessors::decided_at.eq(to_db(now)),
        external_assessors::qualifications_confirmed_by.eq(confirmed_by),
        external_assessors::version.eq(external_assessors::version + 1),
        external_assessors::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    if changed != 1 {
        return Err(AppError::Conflict(format!(
            "this person was already {}",
            x.status
        )));
    }
    let x = get(conn, id)?;
    // The person's name, address and workplace only as keyed digests (issue 17); the
    // person is the organisation's, so the key follows no enrolment.
    let data = audit::text::record_data(conn, now, &x.id, None, &x, AUDIT_FACTS)?;
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client: None,
            action: if to == APPROVED {
                "assessor_approved"
            } else {
                "assessor_declined"
            },
            entity: "external_assessor",
            entity_id: &x.id,
            // Not in the enrolment's changes feed: the person is the organisation's, and
            // each assessment's own entries record what happened to it.
            enrolment_id: None,
            data: &data,
        },
    )?;
    Ok(x)
}

/// Corrects a person's qualifications while they are being vetted, by someone who may
/// decide on them (the trainee states them when naming the person, and neither sees
/// nor decides on the vetting). Anyone else: 404. Once decided: 409 (the approval
/// confirmed what was stated).
pub fn state_qualifications(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    input: &QualificationsInput,
) -> Result<ExternalAssessor, AppError> {
    let me = &ctx.caller;
    me.require_person()?;
    let x = get(conn, id)?;
    if !may_decide(conn, me, &x, ctx.today())? {
        return Err(AppError::NotFound);
    }
    if x.status != PENDING {
        return Err(AppError::Conflict(format!(
            "this person was already {}",
            x.status
        )));
    }
    let q = qualifications::checked(input, "")?;
    qualifications::store(conn, ctx, id, x.version, &q)?;
    get(conn, id)
}

/// For the dossier: what was stated (and confirmed) about the people who signed these
/// link-signed assessments, by assessment id.
pub fn qualifications_of(
    conn: &mut DbConn,
    assessment_ids: &[String],
) -> Result<Vec<(String, AssessorQualifications)>, AppError> {
    let pairs: Vec<(String, String, String)> = assessments::table
        .inner_join(enrolments::table.on(enrolments::id.eq(assessments::enrolment_id)))
        .filter(assessments::id.eq_any(assessment_ids))
        .filter(assessments::assessor_email.is_not_null())
        .select((
            assessments::id,
            enrolments::organisation_id,
            assessments::assessor_email.assume_not_null(),
        ))
        .load(conn)?;
    let mut out = Vec::new();
    for (assessment, org, email) in pairs {
        let row: Option<Row> = external_assessors::table
            .filter(external_assessors::organisation_id.eq(&org))
            .filter(external_assessors::email.eq(&email))
            .select(Row::as_select())
            .first(conn)
            .optional()?;
        if let Some(r) = row {
            out.push((assessment, from_row(conn, r)?.qualifications));
        }
    }
    Ok(out)
}

/// The assessments waiting for this person's vetting, in their organisation.
fn waiting(conn: &mut DbConn, x: &ExternalAssessor) -> Result<Vec<String>, AppError> {
    Ok(assessments::table
        .inner_join(enrolments::table.on(enrolments::id.eq(assessments::enrolment_id)))
        .filter(enrolments::organisation_id.eq(&x.organisation_id))
        .filter(assessments::assessor_email.eq(&x.email))
        .filter(assessments::status.eq(super::assessments::AWAITING_VETTING))
        .filter(assessments::deleted_at.is_null())
        .select(assessments::id)
        .load(conn)?)
}

/// Approves the person: every assessment waiting for them is sent (a link each).
pub fn approve(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
) -> Result<(ExternalAssessor, Vec<Mail>), AppError> {
    let (cfg, now, me) = (&*ctx.config, ctx.now, &ctx.caller);
    let x = decide(conn, ctx, id, APPROVED)?;
    let mut mails = Vec::new();
    for a in waiting(conn, &x)? {
        mails.push(super::assessments::release_after_vetting(
            conn,
            cfg,
            now,
            &a,
            &me.user_id,
        )?);
    }
    mails.extend(super::course_confirmation::release_after_vetting(
        conn,
        cfg,
        now,
        &x,
        &me.user_id,
    )?);
    Ok((x, mails))
}

/// Declines the person: the assessments waiting for them go back to their trainees as
/// drafts without an assessor, to be asked of someone else.
pub fn decline(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
) -> Result<(ExternalAssessor, Vec<Mail>), AppError> {
    let (cfg, now, me) = (&*ctx.config, ctx.now, &ctx.caller);
    let x = decide(conn, ctx, id, DECLINED)?;
    let mut mails = Vec::new();
    for a in waiting(conn, &x)? {
        mails.push(super::assessments::return_after_vetting(
            conn,
            cfg,
            now,
            &a,
            &me.user_id,
        )?);
    }
    mails.extend(super::course_confirmation::return_after_vetting(
        conn,
        cfg,
        now,
        &x,
        &me.user_id,
    )?);
    Ok((x, mails))
}

/// For the dossier: who vetted the assessor of each of these link-signed assessments.
pub fn vetted_by(
    conn: &mut DbConn,
    assessment_ids: &[String],
) -> Result<Vec<(String, String)>, AppError> {
    use crate::schema::signing_links;
    Ok(signing_links::table
        .filter(signing_links::assessment_id.eq_any(assessment_ids))
        .filter(signing_links::used_at.is_not_null())
        .filter(signing_links::vetted_by.is_not_null())
        .select((
            signing_links::assessment_id,
            signing_links::vetted_by.assume_not_null(),
        ))
        .load(conn)?)
}
