//! Drafting an assessment: create, edit, request a signature, correct, delete; and the
//! checks every change goes through.

use super::*;
use crate::ids::{AssessmentId, EnrolmentId, UserId};

/// Checks and applies `c` over `a` (the instrument's domains and scale, delmål of the
/// template version, the placement).
pub(super) fn apply(
    conn: &mut DbConn,
    a: &mut Assessment,
    c: AssessmentContent,
) -> Result<(), AppError> {
    let org: String = enrolments::table
        .find(&a.enrolment_id)
        .select(enrolments::organisation_id)
        .first(conn)?;
    let form = instruments::form_for(conn, a.instrument, Some(&org))?;
    let mut errors = Vec::new();
    if let Some(p) = c.placement_id {
        if enrolment_of_placement(conn, &p.as_str().into())
            .ok()
            .as_deref()
            != Some(a.enrolment_id.as_str())
        {
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
pub(super) fn save(
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
    links::set(
        conn,
        &a.enrolment_id,
        links::Record::Assessment(&AssessmentId::from(&a.id)),
        &a.delmal,
    )
}

/// What an audit entry keeps of an assessment as values; its other fields (context,
/// ratings, feedback, reflection, the assessor's address, the signature's details) only
/// as keyed digests (`audit::text`, issue 17). The signer is the entry's actor.
pub const AUDIT_FACTS: &[&str] = &[
    "id",
    "enrolment_id",
    "instrument",
    "status",
    "assessor_id",
    "placement_id",
    "performed_on",
    "entrustment",
    "delmal",
    "supersedes_id",
    "superseded_by",
    "created_by",
    "version",
    "created_at",
    "updated_at",
];

/// The data of an audit entry about an assessment.
pub(super) fn audit_data(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    a: &Assessment,
) -> Result<serde_json::Value, AppError> {
    audit::text::record_data(conn, now, &a.id, Some(&a.enrolment_id), a, AUDIT_FACTS)
}

pub(super) fn log(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    action: &str,
    a: &Assessment,
) -> Result<(), AppError> {
    let data = audit_data(conn, now, a)?;
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
            data: &data,
        },
    )
}

pub(super) fn link(cfg: &Config, id: &str) -> String {
    format!("{}/assessments/{id}", cfg.public_url.trim_end_matches('/'))
}

pub(super) fn request_mail(
    conn: &mut DbConn,
    cfg: &Config,
    a: &Assessment,
) -> Result<Mail, AppError> {
    let to = email_of(
        conn,
        &UserId::from(a.assessor_id.as_deref().unwrap_or_default()),
    )?;
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
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    n: NewAssessment,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let (cfg, now, me, client) = (&*ctx.config, ctx.now, &ctx.caller, &ctx.client);
    let today = crate::clock::day_of(now);
    access::require(
        conn,
        me,
        &EnrolmentId::from(enrolment_id),
        today,
        Access::Read,
    )?;
    let trainee = trainee_of(conn, enrolment_id)?;
    let by_trainee = trainee == me.user_id;
    if !by_trainee
        && !access::is_assigned_supervisor(
            conn,
            &me.user_id,
            &EnrolmentId::from(enrolment_id),
            today,
        )?
    {
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
            Some(user) => crate::portfolio::talks::is_supervisor(conn, &user)?.then_some(user),
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
            Some(crate::portfolio::vetting::gate(
                conn,
                ctx,
                &own,
                enrolment_id,
                email,
                crate::portfolio::vetting::Named {
                    name: n.assessor_name.as_deref(),
                    workplace: n.assessor_workplace.as_deref(),
                    qualifications: n.assessor_qualifications.as_ref(),
                },
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
            if !crate::portfolio::talks::is_supervisor(conn, a)? {
                return Err(AppError::validation(
                    "assessor_id",
                    "not a user with the supervisor role",
                ));
            }
            Some(a.clone())
        }
        (None, true) => None,
        (_, false) => Some(me.user_id.to_string()),
    };
    let mut a = Assessment {
        id: n
            .id
            .map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string()),
        enrolment_id: enrolment_id.into(),
        instrument: n.instrument,
        status: if matches!(gate, Some(crate::portfolio::vetting::Gate::Pending { .. })) {
            AWAITING_VETTING
        } else if by_trainee && (assessor.is_some() || link_email.is_some()) {
            AWAITING
        } else {
            DRAFT
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
        created_by: me.user_id.to_string(),
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
    let mails = match (&a.assessor_email, a.status, &gate) {
        (Some(email), AWAITING, Some(crate::portfolio::vetting::Gate::Approved { vetted_by })) => {
            vec![create_link(conn, cfg, now, &a, email, vetted_by)?]
        }
        (None, AWAITING, _) => vec![request_mail(conn, cfg, &a)?],
        (
            Some(email),
            AWAITING_VETTING,
            Some(crate::portfolio::vetting::Gate::Pending { first: true }),
        ) => crate::portfolio::vetting::vetting_mail(conn, cfg, today, enrolment_id, email)?
            .into_iter()
            .collect(),
        _ => vec![],
    };
    Ok((a, mails))
}

pub(super) fn refuse_if_final(a: &Assessment) -> Result<(), AppError> {
    match a.status {
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
    ctx: &Ctx,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    c: AssessmentContent,
) -> Result<Assessment, AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    let mut a = readable(conn, me, id, crate::clock::day_of(now))?;
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
    ctx: &Ctx,
    id: &str,
    assessor_id: &UserId,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let (cfg, now, me, client) = (&*ctx.config, ctx.now, &ctx.caller, &ctx.client);
    let a = readable(conn, me, id, crate::clock::day_of(now))?;
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
    if me.user_id == *assessor_id {
        return Err(AppError::validation(
            "assessor_id",
            "you cannot assess yourself",
        ));
    }
    if !crate::portfolio::talks::is_supervisor(conn, assessor_id)? {
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

/// A correction of a signed assessment: a new draft that copies it, by its signer, to
/// be edited and signed. The signed original stays as it was.
pub fn correct(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    c: AssessmentContent,
) -> Result<Assessment, AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    let original = readable(conn, me, id, crate::clock::day_of(now))?;
    // Signed on another service and imported: corrected there, not here.
    crate::portfolio::transferred::refuse_if_transferred(conn, id)?;
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
        status: DRAFT,
        supersedes_id: Some(original.id.clone()),
        superseded_by: None,
        signature: None,
        decline_reason: None,
        created_by: me.user_id.to_string(),
        ..original
    };
    apply(conn, &mut a, c)?;
    save(conn, now, &a, true)?;
    let a = get_assessment(conn, &a.id)?;
    log(conn, now, me, client, "correction_created", &a)?;
    Ok(a)
}

/// Trainees delete their own unsigned drafts; nothing signed is ever deleted.
pub fn delete(conn: &mut DbConn, ctx: &Ctx, id: &str) -> Result<(), AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    let a = readable(conn, me, id, crate::clock::day_of(now))?;
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
    links::remove(conn, links::Record::Assessment(&AssessmentId::from(id)))?;
    log(conn, now, me, client, "deleted", &a)
}
