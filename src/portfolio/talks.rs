//! Supervision sessions (handledarsamtal), created ad hoc by the trainee or a supervisor,
//! and handover talks (överlämningssamtal) at a placement change, led by the trainee with
//! the main supervisor and the outgoing and incoming placement supervisors. Every
//! participant confirms; an edit before everyone has confirmed asks the others again.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::principal::{load_roles, Principal, Role};
use crate::auth::service::ClientInfo;
use crate::clock::{from_db, to_db};
use crate::config::Config;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::enrolment::service::enrolment_of_placement;
use crate::error::{AppError, FieldError};
use crate::http::etag;
use crate::mail::Mail;
use crate::portfolio::links;
use crate::schema::{enrolments, talk_participants, talks, users};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TalkKind {
    /// Handledarsamtal.
    Supervision,
    /// Överlämningssamtal.
    Handover,
    /// Slutavstämning: the trainee and the main supervisor before the final assessment.
    FinalCheckIn,
}

impl TalkKind {
    fn as_str(self) -> &'static str {
        match self {
            TalkKind::Supervision => "supervision",
            TalkKind::Handover => "handover",
            TalkKind::FinalCheckIn => "final_check_in",
        }
    }
    fn path(self) -> &'static str {
        match self {
            TalkKind::Supervision => "supervision-sessions",
            TalkKind::Handover => "handover-talks",
            TalkKind::FinalCheckIn => "final-check-ins",
        }
    }
}

/// Progress on one delmål, as the handover talk records it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelmalStatus {
    #[schema(example = "BT1")]
    pub code: String,
    /// `not_started`, `in_progress` or `achieved`.
    #[schema(example = "in_progress")]
    pub status: String,
    #[serde(default)]
    pub comment: String,
}

/// The structured part of a handover talk.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverContent {
    #[serde(default)]
    pub delmal_status: Vec<DelmalStatus>,
    #[serde(default)]
    #[schema(example = "Trygg i akuta bedömningar.")]
    pub strengths: String,
    #[serde(default)]
    #[schema(example = "Prioritering när det är många patienter.")]
    pub areas_to_develop: String,
    #[serde(default)]
    #[schema(example = "Två DOPS och en CbD under första månaden på akuten.")]
    pub plan_next_placement: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Participant {
    pub user_id: String,
    /// `trainee`, `supervisor`, or for handovers `main_supervisor`,
    /// `outgoing_supervisor`, `incoming_supervisor` (comma-separated when one person has
    /// two parts, as the main supervisor often does in placement 1).
    pub role: String,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmation_method: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Talk {
    pub id: String,
    pub enrolment_id: String,
    pub kind: TalkKind,
    #[schema(example = "2026-10-20")]
    pub held_on: NaiveDate,
    pub placement_id: Option<String>,
    /// Handover: the placement that follows.
    pub next_placement_id: Option<String>,
    #[schema(example = json!(["Bemötande i svåra samtal"]))]
    pub topics: Vec<String>,
    pub notes: String,
    pub agreed_actions: String,
    pub delmal: Vec<String>,
    pub handover: Option<HandoverContent>,
    pub participants: Vec<Participant>,
    /// `awaiting_confirmation` or `confirmed` (by every participant; then it is final).
    pub status: String,
    pub created_by: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Talk {
    pub fn etag(&self) -> String {
        etag(self.version, self.updated_at)
    }
    fn content(&self) -> serde_json::Value {
        json!({"id": self.id, "kind": self.kind, "held_on": self.held_on, "placement_id": self.placement_id,
               "next_placement_id": self.next_placement_id, "topics": self.topics, "notes": self.notes,
               "agreed_actions": self.agreed_actions, "delmal": self.delmal, "handover": self.handover})
    }
}

/// What a talk says; all fields optional in updates.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TalkContent {
    pub held_on: Option<NaiveDate>,
    pub placement_id: Option<String>,
    pub next_placement_id: Option<String>,
    pub topics: Option<Vec<String>>,
    pub notes: Option<String>,
    pub agreed_actions: Option<String>,
    pub delmal: Option<Vec<String>>,
    pub handover: Option<HandoverContent>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSupervisionSession {
    pub id: Option<uuid::Uuid>,
    pub held_on: NaiveDate,
    /// Supervisors who took part (besides the creator and the trainee).
    #[serde(default)]
    pub participant_ids: Vec<String>,
    #[serde(flatten)]
    pub content: TalkContent,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFinalCheckIn {
    pub id: Option<uuid::Uuid>,
    pub held_on: NaiveDate,
    #[serde(flatten)]
    pub content: TalkContent,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHandoverTalk {
    pub id: Option<uuid::Uuid>,
    pub held_on: NaiveDate,
    /// Default: the main supervisor assigned today.
    pub main_supervisor_id: Option<String>,
    pub outgoing_supervisor_id: String,
    pub incoming_supervisor_id: String,
    #[serde(flatten)]
    pub content: TalkContent,
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
    ),
    (
        String,
        String,
        String,
        String,
        i32,
        chrono::NaiveDateTime,
        chrono::NaiveDateTime,
    ),
);

macro_rules! columns {
    () => {
        (
            (
                talks::id,
                talks::enrolment_id,
                talks::kind,
                talks::held_on,
                talks::placement_id,
                talks::next_placement_id,
                talks::topics,
                talks::notes,
            ),
            (
                talks::agreed_actions,
                talks::content,
                talks::status,
                talks::created_by,
                talks::version,
                talks::created_at,
                talks::updated_at,
            ),
        )
    };
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Talk, AppError> {
    let (a, b): Row = talks::table
        .find(id)
        .filter(talks::deleted_at.is_null())
        .select(columns!())
        .first(conn)?;
    let parts: Vec<(
        String,
        String,
        Option<chrono::NaiveDateTime>,
        Option<String>,
    )> = talk_participants::table
        .filter(talk_participants::talk_id.eq(id))
        .order(talk_participants::role)
        .select((
            talk_participants::user_id,
            talk_participants::role,
            talk_participants::confirmed_at,
            talk_participants::confirmation_method,
        ))
        .load(conn)?;
    let delmal = links::codes(&links::of(conn, &[id.to_string()])?, id);
    let kind = match a.2.as_str() {
        "handover" => TalkKind::Handover,
        "final_check_in" => TalkKind::FinalCheckIn,
        _ => TalkKind::Supervision,
    };
    Ok(Talk {
        id: a.0,
        enrolment_id: a.1,
        kind,
        held_on: NaiveDate::parse_from_str(&a.3, "%Y-%m-%d").unwrap_or_default(),
        placement_id: a.4,
        next_placement_id: a.5,
        topics: serde_json::from_str(&a.6).unwrap_or_default(),
        notes: a.7,
        agreed_actions: b.0,
        delmal,
        handover: (kind == TalkKind::Handover)
            .then(|| serde_json::from_str(&b.1).unwrap_or_default()),
        participants: parts
            .into_iter()
            .map(|p| Participant {
                user_id: p.0,
                role: p.1,
                confirmed_at: p.2.map(from_db),
                confirmation_method: p.3,
            })
            .collect(),
        status: b.2,
        created_by: b.3,
        version: b.4,
        created_at: from_db(b.5),
        updated_at: from_db(b.6),
    })
}

fn is_participant(t: &Talk, user: &str) -> bool {
    t.participants.iter().any(|p| p.user_id == user)
}

/// Participants always read their talk; otherwise the enrolment's rules apply.
pub fn readable(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    kind: TalkKind,
    today: NaiveDate,
) -> Result<Talk, AppError> {
    let t = get(conn, id)?;
    if t.kind != kind {
        return Err(AppError::NotFound);
    }
    if !is_participant(&t, &me.user_id) {
        access::require(conn, me, &t.enrolment_id, today, Access::Read)?;
    }
    Ok(t)
}

/// Does `user` hold the supervisor role anywhere (talks' participants, assessors named
/// in the app)?
pub(super) fn is_supervisor(conn: &mut DbConn, user: &str) -> Result<bool, AppError> {
    Ok(load_roles(conn, user)?
        .iter()
        .any(|g| g.role == Role::Supervisor))
}

fn apply(conn: &mut DbConn, t: &mut Talk, c: TalkContent) -> Result<(), AppError> {
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
            if enrolment_of_placement(conn, &p).ok().as_deref() != Some(t.enrolment_id.as_str()) {
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

fn save(conn: &mut DbConn, now: DateTime<Utc>, t: &Talk, insert: bool) -> Result<(), AppError> {
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
                talks::status.eq(&t.status),
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
                talks::status.eq(&t.status),
                talks::version.eq(talks::version + 1),
                talks::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    links::set(conn, links::TALK, &t.enrolment_id, &t.id, &t.delmal)
}

fn log(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    action: &str,
    t: &Talk,
) -> Result<(), AppError> {
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
            },
            entity_id: &t.id,
            enrolment_id: Some(&t.enrolment_id),
            data: &json!(t),
        },
    )
}

fn confirm_row(
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

fn mails_to_others(
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

fn add_participant(conn: &mut DbConn, talk: &str, user: &str, role: &str) -> Result<(), AppError> {
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

fn blank(
    id: Option<uuid::Uuid>,
    enrolment_id: &str,
    kind: TalkKind,
    held_on: NaiveDate,
    me: &Principal,
    now: DateTime<Utc>,
) -> Talk {
    Talk {
        id: id
            .map(|u| u.to_string())
            .unwrap_or_else(|| Uuid::new_v4().to_string()),
        enrolment_id: enrolment_id.into(),
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
        status: "awaiting_confirmation".into(),
        created_by: me.user_id.clone(),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn trainee_of(conn: &mut DbConn, enrolment_id: &str) -> Result<String, AppError> {
    Ok(enrolments::table
        .find(enrolment_id)
        .select(enrolments::trainee_id)
        .first(conn)?)
}

/// An ad hoc supervision session, by the trainee or a supervisor of theirs. The creator
/// has confirmed what they wrote.
#[allow(clippy::too_many_arguments)]
pub fn create_session(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    enrolment_id: &str,
    n: NewSupervisionSession,
) -> Result<(Talk, Vec<Mail>), AppError> {
    let today = now.date_naive();
    access::require(conn, me, enrolment_id, today, Access::Read)?;
    let trainee = trainee_of(conn, enrolment_id)?;
    if me.user_id != trainee
        && !access::is_assigned_supervisor(conn, &me.user_id, enrolment_id, today)?
    {
        return Err(AppError::Forbidden(
            "the trainee or one of their supervisors records a supervision session".into(),
        ));
    }
    let mut people: Vec<(String, &str)> = vec![(trainee.clone(), "trainee")];
    if me.user_id != trainee {
        people.push((me.user_id.clone(), "supervisor"));
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
#[allow(clippy::too_many_arguments)]
pub fn create_final_check_in(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    enrolment_id: &str,
    n: NewFinalCheckIn,
) -> Result<(Talk, Vec<Mail>), AppError> {
    let today = now.date_naive();
    access::require(conn, me, enrolment_id, today, Access::Read)?;
    let trainee = trainee_of(conn, enrolment_id)?;
    let Some(main) = access::holder(conn, enrolment_id, access::MAIN_SUPERVISOR, today)? else {
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

/// Is there a final check-in both the trainee and the main supervisor confirmed?
pub fn has_confirmed_final_check_in(
    conn: &mut DbConn,
    enrolment_id: &str,
) -> Result<bool, AppError> {
    let n: i64 = talks::table
        .filter(talks::enrolment_id.eq(enrolment_id))
        .filter(talks::kind.eq("final_check_in"))
        .filter(talks::status.eq("confirmed"))
        .filter(talks::deleted_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// A handover talk, led (and so created) by the trainee.
#[allow(clippy::too_many_arguments)]
pub fn create_handover(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    enrolment_id: &str,
    n: NewHandoverTalk,
) -> Result<(Talk, Vec<Mail>), AppError> {
    let today = now.date_naive();
    access::require(conn, me, enrolment_id, today, Access::Read)?;
    let trainee = trainee_of(conn, enrolment_id)?;
    if trainee != me.user_id {
        return Err(AppError::Forbidden(
            "the trainee leads and records the handover talk".into(),
        ));
    }
    let mut errors = Vec::new();
    let main = match n.main_supervisor_id.clone() {
        Some(m) => Some(m),
        None => access::holder(conn, enrolment_id, access::MAIN_SUPERVISOR, today)?,
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
#[allow(clippy::too_many_arguments)]
pub fn update(
    conn: &mut DbConn,
    cfg: &Config,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    id: &str,
    kind: TalkKind,
    if_match: impl FnOnce(&str) -> Result<(), AppError>,
    c: TalkContent,
) -> Result<(Talk, Vec<Mail>), AppError> {
    let mut t = readable(conn, me, id, kind, now.date_naive())?;
    if_match(&t.etag())?;
    if t.status == "confirmed" {
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
pub fn confirm(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    client: &ClientInfo,
    id: &str,
    kind: TalkKind,
) -> Result<Talk, AppError> {
    let t = readable(conn, me, id, kind, now.date_naive())?;
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
                talks::status.eq("confirmed"),
                talks::updated_at.eq(to_db(now)),
            ))
            .execute(conn)?;
    }
    let t = get(conn, id)?;
    log(conn, now, me, client, "confirmed", &t)?;
    Ok(t)
}

pub fn list(
    conn: &mut DbConn,
    enrolment_id: &str,
    kind: TalkKind,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Talk>, AppError> {
    let mut q = talks::table
        .filter(talks::enrolment_id.eq(enrolment_id.to_string()))
        .filter(talks::kind.eq(kind.as_str()))
        .filter(talks::deleted_at.is_null())
        .select(talks::id)
        .into_boxed();
    if let Some(a) = after {
        q = q.filter(talks::id.gt(a.to_string()));
    }
    let ids: Vec<String> = q.order(talks::id).limit(limit + 1).load(conn)?;
    ids.iter().map(|id| get(conn, id)).collect()
}
