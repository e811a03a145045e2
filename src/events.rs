//! Domain events: what happened in a portfolio that others may want to hear about (an
//! activity logged, an assessment signed, a final assessment decided), told without
//! knowing who listens. A feature calls [`publish`] inside the write transaction of the
//! change; the event is stored in `domain_events` and handed to the subscribers in that
//! same transaction. Portfolio code therefore knows nothing about webhooks: the
//! integrations module subscribes at startup (`app` installs the subscriber list).
//!
//! **Why the subscribers run in the publishing transaction** (and not, say, in the
//! webhook worker reading new events with a cursor): the event, the subscribers' work
//! (pending webhook deliveries) and the change itself commit or roll back together, so a
//! delivery exists exactly when its change does, with no cursor to keep, no window in
//! which a committed event has not yet been fanned out, and no ordering question between
//! several nodes' workers. Which subscriptions hear an event is decided as of the
//! change (a paused subscription keeps nothing), as the API documents.
//!
//! **What an event costs.** Each subscriber first says whether it listens at all
//! ([`Subscriber::listens`]: for webhooks, one cached statement on a small table, read
//! in the same transaction, so every node sees the same answer and nothing is cached in
//! process). Only when one listens is the event stored and handed over. Most writes of
//! a service without webhook subscriptions therefore cost that one statement and no
//! insert, as before events had a table (issue 13's budget: signing an assessment and
//! logging an activity must not get slower). Nothing reads the stored events back but
//! [`prune`]: deliveries keep their own copy of the body and the event id.
//!
//! **Retention.** The stored events are the record of what was handed to a listening
//! subscriber, not the subscribers' work queue (deliveries keep their own copy of the
//! body), so they are kept for [`RETENTION_HOURS`] (at least the webhook retry window)
//! and then deleted by the server's housekeeping ([`prune`]).
//!
//! This module sits below the features: it imports none of them, and none of them need
//! to import a subscriber.

use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::domain_events;

/// How long stored events are kept: at least as long as a webhook delivery is retried.
pub const RETENTION_HOURS: i64 = 24;

/// What kind of event: its stable name (the webhook `type`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum EventKind {
    ActivityCreated,
    AssessmentSigned,
    FinalAssessmentDecided,
    XapiStatementUnmatched,
    EnrolmentCreated,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::ActivityCreated,
        EventKind::AssessmentSigned,
        EventKind::FinalAssessmentDecided,
        EventKind::XapiStatementUnmatched,
        EventKind::EnrolmentCreated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ActivityCreated => "activity.created",
            EventKind::AssessmentSigned => "assessment.signed",
            EventKind::FinalAssessmentDecided => "final_assessment.decided",
            EventKind::XapiStatementUnmatched => "xapi.statement_unmatched",
            EventKind::EnrolmentCreated => "enrolment.created",
        }
    }

    pub fn from_code(code: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == code)
    }
}

crate::text_enum_sql!(EventKind);

/// An event as a feature publishes it. `data` is the event's payload as subscribers
/// (and webhook receivers) see it.
#[derive(Debug, Clone)]
pub enum DomainEvent {
    /// A learning activity was logged: `{"activity": ...}`.
    ActivityCreated { enrolment_id: String, data: Value },
    /// An assessment was signed: `{"assessment": ...}`.
    AssessmentSigned { enrolment_id: String, data: Value },
    /// A final assessment (slutbedömning) was decided: the decision and its hash.
    FinalAssessmentDecided { enrolment_id: String, data: Value },
    /// A trainee was enrolled: `{"enrolment": ...}`.
    EnrolmentCreated { enrolment_id: String, data: Value },
    /// An xAPI statement was kept for an administrator: the statement and the reason.
    XapiStatementUnmatched {
        organisation_id: String,
        data: Value,
    },
}

impl DomainEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            DomainEvent::ActivityCreated { .. } => EventKind::ActivityCreated,
            DomainEvent::AssessmentSigned { .. } => EventKind::AssessmentSigned,
            DomainEvent::FinalAssessmentDecided { .. } => EventKind::FinalAssessmentDecided,
            DomainEvent::XapiStatementUnmatched { .. } => EventKind::XapiStatementUnmatched,
            DomainEvent::EnrolmentCreated { .. } => EventKind::EnrolmentCreated,
        }
    }
}

/// A published event, as subscribers get it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = domain_events, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct StoredEvent {
    /// Also the webhook event id (`Eportfolio-Event-Id`).
    pub id: String,
    pub kind: EventKind,
    /// The organisation the event belongs to, when the publisher named it.
    pub organisation_id: Option<String>,
    /// The enrolment the event is about, for events about a trainee's portfolio.
    pub enrolment_id: Option<String>,
    #[diesel(serialize_as = String, deserialize_as = String)]
    pub data: EventData,
    #[diesel(serialize_as = chrono::NaiveDateTime, deserialize_as = chrono::NaiveDateTime)]
    pub created_at: EventTime,
}

/// The payload, stored as JSON text; unreadable stored JSON is an error.
#[derive(Debug, Clone)]
pub struct EventData(pub Value);

impl From<EventData> for String {
    fn from(d: EventData) -> String {
        d.0.to_string()
    }
}

impl TryFrom<String> for EventData {
    type Error = serde_json::Error;
    fn try_from(s: String) -> Result<EventData, serde_json::Error> {
        serde_json::from_str(&s).map(EventData)
    }
}

/// The instant of the change that published the event.
#[derive(Debug, Clone, Copy)]
pub struct EventTime(pub DateTime<Utc>);

impl From<EventTime> for chrono::NaiveDateTime {
    fn from(t: EventTime) -> chrono::NaiveDateTime {
        to_db(t.0)
    }
}

impl From<chrono::NaiveDateTime> for EventTime {
    fn from(t: chrono::NaiveDateTime) -> EventTime {
        EventTime(crate::clock::from_db(t))
    }
}

/// A subscriber to domain events. Both functions run inside the publishing transaction;
/// an error rolls the change back (a delivery that cannot be queued must not be lost
/// silently).
#[derive(Clone, Copy)]
pub struct Subscriber {
    /// Whether the subscriber would act on an event of this kind at all. Asked for every
    /// event, so it must be cheap (one cached statement at most) and must read the
    /// database rather than a per-process cache: another node may have just changed the
    /// answer.
    pub listens: fn(&mut DbConn, EventKind) -> Result<bool, AppError>,
    /// Acts on a stored event (only called when `listens` said yes).
    pub on_event: fn(&mut DbConn, &StoredEvent) -> Result<(), AppError>,
}

static SUBSCRIBERS: OnceLock<&'static [Subscriber]> = OnceLock::new();

/// Installs the subscribers of this process (once: `AppState::new` does it; later
/// calls keep the first list, which is the same static list).
pub fn install(subscribers: &'static [Subscriber]) {
    let _ = SUBSCRIBERS.get_or_init(|| subscribers);
}

/// Hands `event` to every subscriber that listens, in the caller's transaction, and
/// stores it when at least one does. Without installed subscribers it refuses (an event
/// nobody would ever deliver is a wiring error, not something to drop quietly).
pub fn publish(conn: &mut DbConn, now: DateTime<Utc>, event: DomainEvent) -> Result<(), AppError> {
    let subscribers = SUBSCRIBERS
        .get()
        .ok_or_else(|| AppError::internal("domain events: no subscribers installed"))?;
    let kind = event.kind();
    // No allocation while nobody listens (the common case).
    let mut listening: Vec<&Subscriber> = Vec::new();
    for subscriber in subscribers.iter() {
        if (subscriber.listens)(conn, kind)? {
            listening.push(subscriber);
        }
    }
    if listening.is_empty() {
        return Ok(());
    }
    let (organisation_id, enrolment_id, data) = match event {
        DomainEvent::ActivityCreated { enrolment_id, data }
        | DomainEvent::AssessmentSigned { enrolment_id, data }
        | DomainEvent::FinalAssessmentDecided { enrolment_id, data }
        | DomainEvent::EnrolmentCreated { enrolment_id, data } => (None, Some(enrolment_id), data),
        DomainEvent::XapiStatementUnmatched {
            organisation_id,
            data,
        } => (Some(organisation_id), None, data),
    };
    let stored = StoredEvent {
        id: Uuid::new_v4().to_string(),
        kind,
        organisation_id,
        enrolment_id,
        data: EventData(data),
        created_at: EventTime(now),
    };
    diesel::insert_into(domain_events::table)
        .values(stored.clone())
        .execute(conn)?;
    for subscriber in listening {
        (subscriber.on_event)(conn, &stored)?;
    }
    Ok(())
}

/// Deletes events older than [`RETENTION_HOURS`] (run by the server's housekeeping).
/// Returns how many went.
pub fn prune(conn: &mut DbConn, now: DateTime<Utc>) -> Result<usize, AppError> {
    let cutoff = to_db(now - Duration::hours(RETENTION_HOURS));
    Ok(
        diesel::delete(domain_events::table.filter(domain_events::created_at.lt(cutoff)))
            .execute(conn)?,
    )
}
