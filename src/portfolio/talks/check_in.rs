//! Supervisors' check-ins: "Avstämning tjg-HL + HHL vid behov" in the pilot's plan of
//! the BT year (seed 002, figur 3). The placement supervisor and the main supervisor
//! talk about the trainee without them; the record is theirs. The trainee never reads
//! it (404, as if it did not exist), it links to no delmål (so it is nobody's evidence
//! and appears in no progress view, certificate or dossier), and its audit entries stay
//! out of the enrolment's changes feed, which the trainee reads.

use super::record::{add_participant, apply, blank, confirm_row, log, mails_to_others, save};
use super::*;
use crate::ids::EnrolmentId;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSupervisorCheckIn {
    pub id: Option<uuid::Uuid>,
    pub held_on: NaiveDate,
    /// The other supervisor: the placement supervisor when the main supervisor records
    /// it, the main supervisor when a placement supervisor does (default: the main
    /// supervisor assigned today).
    pub with_supervisor_id: Option<String>,
    #[serde(flatten)]
    pub content: TalkContent,
}

/// The caller's assignment roles today on the enrolment, if they are an assigned main
/// or placement supervisor.
fn supervisor_roles(
    conn: &mut DbConn,
    user: &str,
    enrolment_id: &EnrolmentId,
    today: NaiveDate,
) -> Result<Vec<String>, AppError> {
    Ok(access::active_assignment_roles(
        conn,
        &UserId::from(user),
        &EnrolmentId::from(enrolment_id),
        today,
    )?
    .into_iter()
    .filter(|r| r == access::MAIN_SUPERVISOR || r == access::PLACEMENT_SUPERVISOR)
    .map(|r| r.as_str().to_string())
    .collect())
}

/// Participants read their check-in; otherwise the enrolment's supervisors and those who
/// manage it. Never the trainee, whatever else they are: not found.
pub(super) fn require_readable(
    conn: &mut DbConn,
    me: &Principal,
    t: &Talk,
    today: NaiveDate,
) -> Result<(), AppError> {
    if trainee_of(conn, &t.enrolment_id)? == me.user_id {
        return Err(AppError::NotFound);
    }
    if is_participant(t, &me.user_id) {
        return Ok(());
    }
    match access::access(conn, me, &EnrolmentId::from(&t.enrolment_id), today)? {
        Access::Supervise | Access::Manage => Ok(()),
        _ => Err(AppError::NotFound),
    }
}

/// The talks of one kind the caller may list: for supervisors' check-ins, the trainee
/// and those who only read the plan (external assessor, head of department) are refused.
pub fn list_readable(
    conn: &mut DbConn,
    me: &Principal,
    enrolment_id: &EnrolmentId,
    kind: TalkKind,
    today: NaiveDate,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Talk>, AppError> {
    let has = access::require(
        conn,
        me,
        &EnrolmentId::from(enrolment_id),
        today,
        Access::Read,
    )?;
    if kind == TalkKind::SupervisorCheckIn
        && (has < Access::Supervise || trainee_of(conn, enrolment_id)? == me.user_id)
    {
        return Err(AppError::Forbidden(
            "supervisors' check-ins are for the trainee's supervisors and directors".into(),
        ));
    }
    list(conn, enrolment_id, kind, after, limit)
}

/// A check-in between the main supervisor and a placement supervisor, recorded by either;
/// the other is asked to confirm.
pub fn create_supervisor_check_in(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    n: NewSupervisorCheckIn,
) -> Result<(Talk, Vec<Mail>), AppError> {
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
    let mine = supervisor_roles(conn, &me.user_id, enrolment_id, today)?;
    if me.user_id == trainee || mine.is_empty() {
        return Err(AppError::Forbidden(
            "the trainee's main or placement supervisor records a supervisors' check-in".into(),
        ));
    }
    let other = match n.with_supervisor_id.clone() {
        Some(o) => o,
        None => access::holder(
            conn,
            &EnrolmentId::from(enrolment_id),
            access::MAIN_SUPERVISOR,
            today,
        )?
        .map(UserId::into_inner)
        .ok_or_else(|| {
            AppError::validation(
                "with_supervisor_id",
                "the trainee has no main supervisor today; name the other supervisor",
            )
        })?,
    };
    let theirs = supervisor_roles(conn, &other, enrolment_id, today)?;
    let main_here = |roles: &[String]| roles.iter().any(|r| r == access::MAIN_SUPERVISOR);
    if other == me.user_id || other == trainee || theirs.is_empty() {
        return Err(AppError::validation(
            "with_supervisor_id",
            "another of the trainee's supervisors assigned today",
        ));
    }
    if !main_here(&mine) && !main_here(&theirs) {
        return Err(AppError::validation(
            "with_supervisor_id",
            "a supervisors' check-in is held with the main supervisor",
        ));
    }
    let mut errors = Vec::new();
    if n.content.delmal.as_ref().is_some_and(|d| !d.is_empty()) {
        // Evidence is the trainee's to see; this talk is not.
        errors.push(FieldError::new(
            "delmal",
            "a supervisors' check-in is no evidence of a delmål",
        ));
    }
    if n.content.next_placement_id.is_some() {
        errors.push(FieldError::new(
            "next_placement_id",
            "only handover talks name the next placement",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let mut t = blank(
        n.id,
        enrolment_id,
        TalkKind::SupervisorCheckIn,
        n.held_on,
        me,
        now,
    );
    apply(conn, &mut t, n.content)?;
    save(conn, now, &t, true)?;
    let other = UserId::new(other.clone());
    for (user, roles) in [(&me.user_id, &mine), (&other, &theirs)] {
        let role = if main_here(roles) {
            access::MAIN_SUPERVISOR
        } else {
            access::PLACEMENT_SUPERVISOR
        };
        add_participant(conn, &t.id, user, role)?;
    }
    let t = get(conn, &t.id)?;
    confirm_row(conn, now, me, &t)?;
    let t = get(conn, &t.id)?;
    log(conn, now, me, client, "created", &t)?;
    let mails = mails_to_others(conn, cfg, me, &t)?;
    Ok((t, mails))
}
