//! Assessors without an account: single-use signing links bound to one address and
//! one assessment, and what vetting releases or hands back.

use super::*;

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

// ---- Assessors without an account: signing links --------------------------------------

pub(super) fn create_link(
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

/// What an assessor without an account sees through a signing link.
#[derive(serde::Serialize, ToSchema)]
pub struct SigningLinkView {
    pub assessment: Assessment,
    pub form: crate::portfolio::instruments::InstrumentForm,
    /// The trainee who asked.
    pub trainee_name: String,
    /// The address the link is bound to.
    pub email: String,
    #[serde(with = "crate::clock::millis")]
    pub expires_at: DateTime<Utc>,
}

/// A link that is unused and unexpired, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = signing_links, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct OpenLink {
    assessment_id: AssessmentId,
    email: String,
    expires_at: NaiveDateTime,
}

/// What a signing link opens: the assessment it is bound to, while it is waiting, the
/// address it is bound to and when it expires.
pub fn open_link(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
) -> Result<(Assessment, String, DateTime<Utc>), AppError> {
    let found: Option<OpenLink> = signing_links::table
        .find(crate::auth::crypto::sha256_hex(token))
        .filter(signing_links::used_at.is_null())
        .filter(signing_links::expires_at.gt(to_db(now)))
        .select(OpenLink::as_select())
        .first(conn)
        .optional()?;
    let link = found.ok_or(AppError::InvalidToken)?;
    let a = get_assessment(conn, &link.assessment_id).map_err(|_| AppError::InvalidToken)?;
    if a.status != AWAITING || a.assessor_email.as_deref() != Some(link.email.as_str()) {
        return Err(AppError::InvalidToken);
    }
    Ok((a, link.email, from_db(link.expires_at)))
}

/// The page behind a signing link: the assessment, its form and who asked.
pub fn link_view(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
) -> Result<SigningLinkView, AppError> {
    let (assessment, email, expires_at) = open_link(conn, now, token)?;
    let (trainee, org): (UserId, OrganisationId) = enrolments::table
        .find(&assessment.enrolment_id)
        .select((enrolments::trainee_id, enrolments::organisation_id))
        .first(conn)?;
    let trainee_name: String = users::table
        .find(&trainee)
        .select(users::display_name)
        .first(conn)?;
    Ok(SigningLinkView {
        form: instruments::form_for(conn, assessment.instrument, Some(&org))?,
        assessment,
        trainee_name,
        email,
        expires_at,
    })
}

/// Takes the link in one conditional statement (unused and unexpired), so that of the
/// same link sent twice at once exactly one request gets it; the other sees a used link.
pub(super) fn use_link(conn: &mut DbConn, now: DateTime<Utc>, token: &str) -> Result<(), AppError> {
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

pub fn sign_by_link<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    token: &str,
    c: AssessmentContent,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
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

pub fn decline_by_link<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    token: &str,
    reason: &str,
) -> Result<(Assessment, Vec<Mail>), AppError> {
    let (cfg, now, client) = (&*ctx.config, ctx.now, &ctx.client);
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
