//! The kursledare's side of a course confirmation: the page a link opens and the
//! confirmation itself (split from `mod.rs`, which holds the request and its vetting).

use super::*;

/// What a confirmation link opens.
#[derive(Debug, Serialize, ToSchema)]
pub struct CourseConfirmationLinkView {
    pub confirmation: CourseConfirmation,
    /// The trainee who asked.
    pub trainee_name: String,
    pub course_title: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// The delmål the trainee linked to the course.
    pub delmal: Vec<String>,
    /// What confirming states, in Swedish.
    pub statement_sv: String,
    /// The address the link is bound to.
    pub email: String,
    #[serde(with = "crate::clock::millis")]
    pub expires_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = course_confirmation_links, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Link {
    activity_id: ActivityId,
    email: String,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
}

/// The request a link is for, while it waits for this link's address. Unknown (forged,
/// another purpose's, replaced by a new request) or expired: 422. Used: 409, the course
/// is confirmed (the one answer for a replay and for the loser of two at once).
fn open_link(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
) -> Result<(CourseConfirmation, Activity, Link), AppError> {
    let link: Link = course_confirmation_links::table
        .find(sha256_hex(token))
        .select(Link::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::InvalidToken)?;
    let c = find(conn, &link.activity_id)?.ok_or(AppError::InvalidToken)?;
    if link.used_at.is_some() || c.status == CONFIRMED {
        return Err(AppError::Conflict(
            "this course is already confirmed; the link was used".into(),
        ));
    }
    if from_db(link.expires_at) <= now || c.status != AWAITING || c.kursledare_email != link.email {
        return Err(AppError::InvalidToken);
    }
    let a = activities::get_activity(conn, &c.activity_id).map_err(|_| AppError::InvalidToken)?;
    Ok((c, a, link))
}

/// The page behind a confirmation link.
pub fn link_view(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    token: &str,
) -> Result<CourseConfirmationLinkView, AppError> {
    let (c, a, link) = open_link(conn, now, token)?;
    let (_, trainee, _) = trainee_of(conn, &EnrolmentId::from(&c.enrolment_id))?;
    Ok(CourseConfirmationLinkView {
        statement_sv: statement(&trainee, &a),
        trainee_name: trainee,
        course_title: a.title,
        start_date: a.start_date,
        end_date: a.end_date,
        delmal: a.delmal,
        email: link.email,
        expires_at: from_db(link.expires_at),
        confirmation: c,
    })
}

/// The kursledare confirms through the link: role kursledare, who (the link's address),
/// when, and a hash of what was confirmed. Of two confirmations at once one succeeds, the
/// other gets 409.
pub fn confirm<C>(
    conn: &mut DbConn,
    ctx: &Context<C>,
    token: &str,
) -> Result<(CourseConfirmation, Vec<Mail>), AppError> {
    let (cfg, now) = (&*ctx.config, ctx.now);
    let (c, a, link) = open_link(conn, now, token)?;
    let (trainee_id, trainee, trainee_email) =
        trainee_of(conn, &EnrolmentId::from(&c.enrolment_id))?;
    let content = json!({
        "activity_id": a.id, "enrolment_id": a.enrolment_id, "trainee_id": trainee_id,
        "kind": a.kind, "title": a.title, "start_date": a.start_date, "end_date": a.end_date,
        "delmal": a.delmal, "role": ROLE, "kursledare_name": c.kursledare_name,
        "kursledare_email": c.kursledare_email,
        "kursledare_workplace": c.kursledare_workplace,
        "statement_sv": statement(&trainee, &a),
    });
    let hash = sha256_hex(content.to_string());
    // Claimed in one conditional statement: of two confirmations at once (PostgreSQL,
    // READ COMMITTED) the second waits on the row lock, then finds it confirmed.
    let claimed = diesel::update(
        course_confirmations::table
            .find(&c.activity_id)
            .filter(course_confirmations::status.eq(AWAITING)),
    )
    .set((
        course_confirmations::status.eq(CONFIRMED),
        course_confirmations::confirmed_at.eq(to_db(now)),
        course_confirmations::content_hash.eq(&hash),
        course_confirmations::version.eq(course_confirmations::version + 1),
        course_confirmations::updated_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    let taken = diesel::update(
        course_confirmation_links::table
            .find(sha256_hex(token))
            .filter(course_confirmation_links::used_at.is_null()),
    )
    .set(course_confirmation_links::used_at.eq(to_db(now)))
    .execute(conn)?;
    if claimed != 1 || taken != 1 {
        return Err(AppError::Conflict(
            "this course was confirmed in the meantime".into(),
        ));
    }
    let c = find(conn, &ActivityId::from(&c.activity_id))?.ok_or(AppError::NotFound)?;
    let client = format!("confirmation-link:{}", link.email);
    audit_as(conn, now, None, Some(&client), "confirmed", &c)?;
    let mail = Mail {
        to: trainee_email,
        subject: format!("Kurs intygad / Course confirmed: {}", a.title),
        body: format!(
            "{} har som kursledare intygat kursen \"{}\".\n\
             {} confirmed the course as its course leader.\n\n{}/activities/{}\n",
            c.kursledare_name,
            a.title,
            c.kursledare_name,
            cfg.public_url.trim_end_matches('/'),
            a.id
        ),
    };
    Ok((c, vec![mail]))
}
