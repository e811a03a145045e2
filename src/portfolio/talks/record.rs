//! Recording talks: create (each kind its own rules for who takes part), edit,
//! confirm; the mails that ask the other participants to confirm.

use super::*;
use crate::ids::{EnrolmentId, TalkId, UserId};

pub(super) fn apply(conn: &mut DbConn, t: &mut Talk, c: TalkContent) -> Result<(), AppError> {
    let mut errors = Vec::new();
    if let Some(d) = c.held_on {
        t.held_on = d;
    }
    for (field, value, target) in [
        ("placement_id", c.placement_id, &mut t.placement_id),
        (
            "next_placement_id",
            c.next_placement_id,
            &mut t.next_placement_id,
        ),
    ] {
        if let Some(p) = value {
            if enrolment_of_placement(conn, &p.as_str().into())
                .ok()
                .as_deref()
                != Some(t.enrolment_id.as_str())
            {
                errors.push(FieldError::new(field, "not a placement of this enrolment"));
            }
            *target = Some(p);
        }
    }
    if let Some(topics) = c.topics {
        if topics.len() > 30
            || topics
                .iter()
                .any(|x| x.trim().is_empty() || x.chars().count() > 300)
        {
            errors.push(FieldError::new(
                "topics",
                "at most 30 topics of 1 to 300 characters",
            ));
        }
        t.topics = topics;
    }
    for (field, value, target) in [
        ("notes", c.notes, &mut t.notes),
        ("agreed_actions", c.agreed_actions, &mut t.agreed_actions),
    ] {
        if let Some(v) = value {
            if v.chars().count() > 20_000 {
                errors.push(FieldError::new(field, "at most 20000 characters"));
            }
            *target = v;
        }
    }
    let codes = links::allowed(conn, &t.enrolment_id)?;
    if let Some(d) = c.delmal {
        links::check(&codes, &d, "delmal", &mut errors);
        t.delmal = links::normalised(&d);
    }
    if let Some(h) = c.handover {
        if t.kind != TalkKind::Handover {
            errors.push(FieldError::new(
                "handover",
                "only handover talks have this part",
            ));
        }
        for (i, s) in h.delmal_status.iter().enumerate() {
            if !codes.contains(&s.code) {
                errors.push(FieldError::new(
                    format!("handover.delmal_status[{i}].code"),
                    format!("unknown delmål {}", s.code),
                ));
            }
            if !["not_started", "in_progress", "achieved"].contains(&s.status.as_str()) {
                errors.push(FieldError::new(
                    format!("handover.delmal_status[{i}].status"),
                    "not_started, in_progress or achieved",
                ));
            }
        }
        t.handover = Some(h);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

pub(super) fn save(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    t: &Talk,
    insert: bool,
) -> Result<(), AppError> {
    let topics = json!(t.topics).to_string();
    let content = json!(t.handover).to_string();
    if insert {
        diesel::insert_into(talks::table)
            .values((
                talks::id.eq(&t.id),
                talks::enrolment_id.eq(&t.enrolment_id),
                talks::kind.eq(t.kind.as_str()),
                talks::held_on.eq(t.held_on.to_string()),
                talks::placement_id.eq(&t.placement_id),
                talks::next_placement_id.eq(&t.next_placement_id),
                talks::topics.eq(&topics),
                talks::notes.eq(&t.notes),
                talks::agreed_actions.eq(&t.agreed_actions),
                talks::content.eq(&content),
                talks::status.eq(t.status),
                talks::created_by.eq(&t.created_by),
                talks::version.eq(1),
                talks::created_at.eq(to_db(now)),
                talks::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    } else {
        diesel::update(talks::table.find(&t.id))
            .set((
                talks::held_on.eq(t.held_on.to_string()),
                talks::placement_id.eq(&t.placement_id),
                talks::next_placement_id.eq(&t.next_placement_id),
                talks::topics.eq(&topics),
                talks::notes.eq(&t.notes),
                talks::agreed_actions.eq(&t.agreed_actions),
                talks::content.eq(&content),
                talks::status.eq(t.status),
                talks::version.eq(talks::version + 1),
                talks::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    links::set(
        conn,
        &t.enrolment_id,
        links::Record::Talk(&TalkId::from(&t.id)),
        &t.delmal,
    )
}

/// What an audit entry keeps of a talk as values; its other fields (topics, notes,
/// agreed actions, handover content, participants) only as keyed digests
/// (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &[
    "id",
    "enrolment_id",
    "kind",
    "held_on",
    "placement_id",
    "next_placement_id",
    "delmal",
    "status",
    "created_by",
    "version",
    "created_at",
    "updated_at",
];

pub(super) fn log(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    action: &str,
    t: &Talk,
) -> Result<(), AppError> {
    let data = audit::text::record_data(conn, now, &t.id, Some(&t.enrolment_id), t, AUDIT_FACTS)?;
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client: client.user_agent.as_deref(),
            action,
            entity: match t.kind {
                TalkKind::Handover => "handover_talk",
                TalkKind::FinalCheckIn => "final_check_in",
                TalkKind::Supervision => "supervision_session",
                TalkKind::SupervisorCheckIn => "supervisor_check_in",
            },
            entity_id: &t.id,
            // The enrolment's changes feed is the trainee's to read: a supervisors'
            // check-in is logged without it (its data still names the enrolment).
            enrolment_id: (t.kind != TalkKind::SupervisorCheckIn)
                .then_some(t.enrolment_id.as_str()),
            data: &data,
        },
    )
}

pub(super) fn confirm_row(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    t: &Talk,
) -> Result<(), AppError> {
    let hash = crate::auth::crypto::sha256_hex(t.content().to_string());
    diesel::update(talk_participants::table.find((&t.id, &me.user_id)))
        .set((
            talk_participants::confirmed_at.eq(to_db(now)),
            talk_participants::confirmed_hash.eq(hash),
            talk_participants::confirmation_method.eq(&me.second_factor),
        ))
        .execute(conn)?;
    Ok(())
}

pub(super) fn mails_to_others(
    conn: &mut DbConn,
    cfg: &Config,
    me: &Principal,
    t: &Talk,
) -> Result<Vec<Mail>, AppError> {
    let (sv, en) = match t.kind {
        TalkKind::Supervision => (
            "Handledarsamtal att bekräfta",
            "Supervision session to confirm",
        ),
        TalkKind::Handover => (
            "Överlämningssamtal att bekräfta",
            "Handover talk to confirm",
        ),
        TalkKind::FinalCheckIn => ("Slutavstämning att bekräfta", "Final check-in to confirm"),
        TalkKind::SupervisorCheckIn => (
            "Avstämning mellan handledare att bekräfta",
            "Supervisors' check-in to confirm",
        ),
    };
    let mut out = Vec::new();
    for p in t
        .participants
        .iter()
        .filter(|p| p.user_id != me.user_id && p.confirmed_at.is_none())
    {
        let to: String = users::table
            .find(&p.user_id)
            .select(users::email)
            .first(conn)?;
        out.push(Mail {
            to,
            subject: format!("{sv} / {en} ({})", t.held_on),
            body: format!(
                "{sv}: {}.\n{en}: {}.\n\n{}/{}/{}\n",
                t.held_on,
                t.held_on,
                cfg.public_url.trim_end_matches('/'),
                t.kind.path(),
                t.id
            ),
        });
    }
    Ok(out)
}

pub(super) fn add_participant(
    conn: &mut DbConn,
    talk: &str,
    user: &str,
    role: &str,
) -> Result<(), AppError> {
    let existing: Option<String> = talk_participants::table
        .find((talk, user))
        .select(talk_participants::role)
        .first(conn)
        .optional()?;
    match existing {
        Some(r) => {
            diesel::update(talk_participants::table.find((talk, user)))
                .set(talk_participants::role.eq(format!("{r},{role}")))
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(talk_participants::table)
                .values((
                    talk_participants::talk_id.eq(talk),
                    talk_participants::user_id.eq(user),
                    talk_participants::role.eq(role),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}

pub(super) fn blank(
    id: Option<uuid::Uuid>,
    enrolment_id: &EnrolmentId,
    kind: TalkKind,
    held_on: NaiveDate,
    me: &Principal,
    now: DateTime<Utc>,
) -> Talk {
    Talk {
        id: id
            .map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string()),
        enrolment_id: enrolment_id.clone(),
        kind,
        held_on,
        placement_id: None,
        next_placement_id: None,
        topics: Vec::new(),
        notes: String::new(),
        agreed_actions: String::new(),
        delmal: Vec::new(),
        handover: (kind == TalkKind::Handover).then(HandoverContent::default),
        participants: Vec::new(),
        status: TalkStatus::AwaitingConfirmation,
        created_by: me.user_id.to_string(),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

/// An ad hoc supervision session, by the trainee or a supervisor of theirs. The creator
/// has confirmed what they wrote.
pub fn create_session(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    n: NewSupervisionSession,
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
    if me.user_id != trainee
        && !access::is_assigned_supervisor(
            conn,
            &me.user_id,
            &EnrolmentId::from(enrolment_id),
            today,
        )?
    {
        return Err(AppError::Forbidden(
            "the trainee or one of their supervisors records a supervision session".into(),
        ));
    }
    let mut people: Vec<(String, &str)> = vec![(trainee.to_string(), "trainee")];
    if me.user_id != trainee {
        people.push((me.user_id.to_string(), "supervisor"));
    }
    let mut errors = Vec::new();
    for p in &n.participant_ids {
        if p == &trainee || people.iter().any(|(u, _)| u == p) {
            continue;
        }
        if !is_supervisor(conn, p)? {
            errors.push(FieldError::new(
                "participant_ids",
                format!("{p} is not a supervisor"),
            ));
        }
        people.push((p.clone(), "supervisor"));
    }
    if people.len() < 2 {
        errors.push(FieldError::new(
            "participant_ids",
            "a supervision session has at least one supervisor",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let mut t = blank(
        n.id,
        enrolment_id,
        TalkKind::Supervision,
        n.held_on,
        me,
        now,
    );
    apply(conn, &mut t, n.content)?;
    save(conn, now, &t, true)?;
    for (u, role) in &people {
        add_participant(conn, &t.id, u, role)?;
    }
    let t = get(conn, &t.id)?;
    confirm_row(conn, now, me, &t)?;
    let t = get(conn, &t.id)?;
    log(conn, now, me, client, "created", &t)?;
    let mails = mails_to_others(conn, cfg, me, &t)?;
    Ok((t, mails))
}

/// The final check-in (slutavstämning) between the trainee and the main supervisor,
/// recorded like a supervision session; either of them records it.
pub fn create_final_check_in(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    n: NewFinalCheckIn,
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
    let Some(main) = access::holder(
        conn,
        &EnrolmentId::from(enrolment_id),
        access::MAIN_SUPERVISOR,
        today,
    )?
    else {
        return Err(AppError::Unprocessable(
            "the trainee has no main supervisor today; a director assigns one first".into(),
        ));
    };
    if me.user_id != trainee && me.user_id != main {
        return Err(AppError::Forbidden(
            "the trainee or their main supervisor records the final check-in".into(),
        ));
    }
    let mut t = blank(
        n.id,
        enrolment_id,
        TalkKind::FinalCheckIn,
        n.held_on,
        me,
        now,
    );
    apply(conn, &mut t, n.content)?;
    save(conn, now, &t, true)?;
    add_participant(conn, &t.id, &trainee, "trainee")?;
    add_participant(conn, &t.id, &main, "main_supervisor")?;
    let t = get(conn, &t.id)?;
    confirm_row(conn, now, me, &t)?;
    let t = get(conn, &t.id)?;
    log(conn, now, me, client, "created", &t)?;
    let mails = mails_to_others(conn, cfg, me, &t)?;
    Ok((t, mails))
}

/// A handover talk, led (and so created) by the trainee.
pub fn create_handover(
    conn: &mut DbConn,
    ctx: &Ctx,
    enrolment_id: &EnrolmentId,
    n: NewHandoverTalk,
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
    if trainee != me.user_id {
        return Err(AppError::Forbidden(
            "the trainee leads and records the handover talk".into(),
        ));
    }
    let mut errors = Vec::new();
    let main = match n.main_supervisor_id.clone() {
        Some(m) => Some(m),
        None => access::holder(
            conn,
            &EnrolmentId::from(enrolment_id),
            access::MAIN_SUPERVISOR,
            today,
        )?
        .map(UserId::into_inner),
    };
    let Some(main) = main else {
        return Err(AppError::validation(
            "main_supervisor_id",
            "the trainee has no main supervisor; name one",
        ));
    };
    for (field, user) in [
        ("main_supervisor_id", &main),
        ("outgoing_supervisor_id", &n.outgoing_supervisor_id),
        ("incoming_supervisor_id", &n.incoming_supervisor_id),
    ] {
        if !is_supervisor(conn, user)? {
            errors.push(FieldError::new(
                field,
                "not a user with the supervisor role",
            ));
        }
    }
    if n.content.placement_id.is_none() || n.content.next_placement_id.is_none() {
        errors.push(FieldError::new(
            "next_placement_id",
            "a handover names the placement ending (placement_id) and the next one",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let mut t = blank(n.id, enrolment_id, TalkKind::Handover, n.held_on, me, now);
    apply(conn, &mut t, n.content)?;
    save(conn, now, &t, true)?;
    add_participant(conn, &t.id, &trainee, "trainee")?;
    add_participant(conn, &t.id, &main, "main_supervisor")?;
    add_participant(
        conn,
        &t.id,
        &n.outgoing_supervisor_id,
        "outgoing_supervisor",
    )?;
    add_participant(
        conn,
        &t.id,
        &n.incoming_supervisor_id,
        "incoming_supervisor",
    )?;
    let t = get(conn, &t.id)?;
    confirm_row(conn, now, me, &t)?;
    let t = get(conn, &t.id)?;
    log(conn, now, me, client, "created", &t)?;
    let mails = mails_to_others(conn, cfg, me, &t)?;
    Ok((t, mails))
}

/// Edits a talk that not everyone has confirmed yet. The editor's confirmation stands;
/// everyone else is asked again, since the text they confirmed changed.
pub fn update(
    conn: &mut DbConn,
    ctx: &Ctx,
    id: &str,
    kind: TalkKind,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    c: TalkContent,
) -> Result<(Talk, Vec<Mail>), AppError> {
    let (cfg, now, me, client) = (&*ctx.config, ctx.now, &ctx.caller, &ctx.client);
    let mut t = readable(conn, me, id, kind, crate::clock::day_of(now))?;
    if_match(&t.etag())?;
    if t.status == TalkStatus::Confirmed {
        return Err(AppError::Conflict(
            "every participant has confirmed this talk; it no longer changes".into(),
        ));
    }
    if !is_participant(&t, &me.user_id) {
        return Err(AppError::Forbidden("only participants edit a talk".into()));
    }
    apply(conn, &mut t, c)?;
    save(conn, now, &t, false)?;
    diesel::update(talk_participants::table.filter(talk_participants::talk_id.eq(id)))
        .set((
            talk_participants::confirmed_at.eq(None::<chrono::NaiveDateTime>),
            talk_participants::confirmed_hash.eq(None::<String>),
            talk_participants::confirmation_method.eq(None::<String>),
        ))
        .execute(conn)?;
    let t = get(conn, id)?;
    confirm_row(conn, now, me, &t)?;
    let t = get(conn, id)?;
    log(conn, now, me, client, "updated", &t)?;
    let mails = mails_to_others(conn, cfg, me, &t)?;
    Ok((t, mails))
}

/// A participant confirms the talk as it stands; when the last one does, it is final.
pub fn confirm(conn: &mut DbConn, ctx: &Ctx, id: &str, kind: TalkKind) -> Result<Talk, AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    let t = readable(conn, me, id, kind, crate::clock::day_of(now))?;
    let Some(mine) = t.participants.iter().find(|p| p.user_id == me.user_id) else {
        return Err(AppError::Forbidden(
            "only participants confirm a talk".into(),
        ));
    };
    if mine.confirmed_at.is_some() {
        return Err(AppError::Conflict(
            "you have already confirmed this talk".into(),
        ));
    }
    confirm_row(conn, now, me, &t)?;
    let t = get(conn, id)?;
    if t.participants.iter().all(|p| p.confirmed_at.is_some()) {
        diesel::update(talks::table.find(id))
            .set((
                talks::status.eq(TalkStatus::Confirmed),
                talks::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    let t = get(conn, id)?;
    log(conn, now, me, client, "confirmed", &t)?;
    Ok(t)
}
