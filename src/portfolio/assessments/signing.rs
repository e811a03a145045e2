//! Signing and declining: by the named assessor in the app, or on the trainee's phone
//! with the assessor's own credentials (co-signing).

use super::*;
use crate::auth::credentials::UserStatus;

/// Who signs or declines: a signed-in user, or an assessor without an account holding
/// a signing link bound to their address.
pub struct Signer<'a> {
    pub user_id: Option<&'a str>,
    pub email: Option<&'a str>,
    /// The session's second factor, or `signing_link`.
    pub method: &'a str,
    pub client: Option<&'a str>,
}

pub(super) fn audit_as(
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
    let data = super::edit::audit_data(conn, now, a)?;
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
            data: &data,
        },
    )
}

/// Applies the assessor's last edits and signs: the content hash, who, when, how.
pub(super) fn seal(
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
    a.status = SIGNED;
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
    let mail = Mail {
        to: trainee_email(conn, &a.enrolment_id)?,
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
pub(super) fn claim_signature(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    id: &str,
) -> Result<(), AppError> {
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

pub(super) fn mark_declined(
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
    let mail = Mail {
        to: trainee_email(conn, &a.enrolment_id)?,
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
pub fn sign(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    c: AssessmentContent,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let (cfg, now, me, client) = (&*ctx.config, ctx.now, &ctx.caller, &ctx.client);
    let a = readable(conn, me, id, crate::clock::day_of(now))?;
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
    ctx: &Ctx,
    id: &str,
    reason: &str,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let (cfg, now, me, client) = (&*ctx.config, ctx.now, &ctx.caller, &ctx.client);
    let a = readable(conn, me, id, crate::clock::day_of(now))?;
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
    ctx: &Ctx,
    id: &str,
    email: &str,
) -> Result<(Assessment, Option<crate::auth::service::Credentials>), AppError> {
    let (cfg, now, me) = (&*ctx.config, ctx.now, &ctx.caller);
    let a = readable(conn, me, id, crate::clock::day_of(now))?;
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
    let creds = crate::auth::service::credentials_by_email(conn, &email)?.filter(|c| {
        c.status == UserStatus::Active && Some(c.id.as_str()) == a.assessor_id.as_deref()
    });
    Ok((a, creds))
}

/// The assessor proved who they are with password and second factor on the trainee's
/// phone: sign as them. The trainee's session gains nothing; no session is created.
pub fn co_sign_finish<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    id: &str,
    assessor: Option<&crate::auth::service::Credentials>,
    factor: &crate::auth::service::SecondFactor,
    c: AssessmentContent,
) -> Result<Result<(Assessment, Vec<Mail>), AppError>, AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
    let Some(assessor) = assessor else {
        // The attempt was counted in `co_sign_start`.
        return Ok(Err(AppError::InvalidCredentials));
    };
    let method = match crate::auth::service::check_in_person(conn, ctx, &assessor.id, factor)? {
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
