//! The append-only audit log. Every create, change, signature and deletion of a record
//! is written here with who, when and from which client; each entry carries the hash of
//! the previous one, so changing or removing a row is detected by `verify`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::auth::crypto::sha256_hex;
use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::audit_log;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, to what.
pub struct Event<'a> {
    pub actor_id: Option<&'a str>,
    /// The client: a user agent, or later an API client id.
    pub client: Option<&'a str>,
    /// `created`, `updated`, `deleted`, `signed`, ...
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: &'a str,
    pub enrolment_id: Option<&'a str>,
    pub data: &'a serde_json::Value,
}

#[allow(clippy::too_many_arguments)]
fn entry_hash(
    prev: &str,
    seq: i64,
    at: chrono::NaiveDateTime,
    actor: Option<&str>,
    client: Option<&str>,
    action: &str,
    entity: &str,
    entity_id: &str,
    enrolment: Option<&str>,
    data: &str,
) -> String {
    // Length-prefixed fields, so no two different entries serialise alike.
    let mut text = String::new();
    for field in [
        prev,
        &seq.to_string(),
        &at.and_utc().timestamp_micros().to_string(),
        actor.unwrap_or(""),
        client.unwrap_or(""),
        action,
        entity,
        entity_id,
        enrolment.unwrap_or(""),
        data,
    ] {
        text.push_str(&format!("{}:{field}|", field.len()));
    }
    sha256_hex(&text)
}

/// Appends an entry. Runs inside the caller's write transaction, so the entry exists
/// exactly when the change it describes does.
pub fn append(conn: &mut DbConn, now: DateTime<Utc>, e: Event) -> Result<(), AppError> {
    // Writers must take turns at the end of the chain. SQLite's write transactions are
    // already exclusive; PostgreSQL needs a lock held to the end of the transaction.
    if let DbConn::Pg(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(744747)").execute(pg)?;
    }
    let query = audit_log::table
        .order(audit_log::seq.desc())
        .select((audit_log::seq, audit_log::hash));
    let last: Option<(i64, String)> = crate::on_backend!(conn, |c| query.first(c).optional())?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    // Microsecond precision survives both backends' timestamp types unchanged.
    let at = to_db(now);
    let at = chrono::DateTime::from_timestamp_micros(at.and_utc().timestamp_micros())
        .map(|t| t.naive_utc())
        .unwrap_or(at);
    let data = e.data.to_string();
    let hash = entry_hash(
        &prev,
        seq,
        at,
        e.actor_id,
        e.client,
        e.action,
        e.entity,
        e.entity_id,
        e.enrolment_id,
        &data,
    );
    let insert = diesel::insert_into(audit_log::table).values((
        audit_log::seq.eq(seq),
        audit_log::at.eq(at),
        audit_log::actor_id.eq(e.actor_id),
        audit_log::client.eq(e.client.map(|c| c.chars().take(200).collect::<String>())),
        audit_log::action.eq(e.action),
        audit_log::entity.eq(e.entity),
        audit_log::entity_id.eq(e.entity_id),
        audit_log::enrolment_id.eq(e.enrolment_id),
        audit_log::data.eq(&data),
        audit_log::prev_hash.eq(&prev),
        audit_log::hash.eq(&hash),
    ));
    crate::on_backend!(conn, |c| insert.execute(c))?;
    Ok(())
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Verification {
    pub entries: i64,
    pub intact: bool,
    /// The first entry that does not verify, and why.
    pub first_broken: Option<i64>,
    pub reason: Option<String>,
}

type Row = (
    i64,
    chrono::NaiveDateTime,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
);

/// Walks the whole chain in order, in batches, recomputing every hash.
pub fn verify(conn: &mut DbConn) -> Result<Verification, AppError> {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    loop {
        let batch: Vec<Row> = audit_log::table
            .filter(audit_log::seq.ge(expected_seq))
            .order(audit_log::seq)
            .limit(1000)
            .select((
                audit_log::seq,
                audit_log::at,
                audit_log::actor_id,
                audit_log::client,
                audit_log::action,
                audit_log::entity,
                audit_log::entity_id,
                audit_log::enrolment_id,
                audit_log::data,
                audit_log::prev_hash,
                audit_log::hash,
            ))
            .load(conn)?;
        if batch.is_empty() {
            return Ok(Verification {
                entries: expected_seq - 1,
                intact: true,
                first_broken: None,
                reason: None,
            });
        }
        for r in batch {
            let broken = |reason: &str| Verification {
                entries: expected_seq - 1,
                intact: false,
                first_broken: Some(expected_seq),
                reason: Some(reason.into()),
            };
            if r.0 != expected_seq {
                return Ok(broken("an entry is missing"));
            }
            if r.9 != prev {
                return Ok(broken("the link to the previous entry does not match"));
            }
            let hash = entry_hash(
                &r.9,
                r.0,
                r.1,
                r.2.as_deref(),
                r.3.as_deref(),
                &r.4,
                &r.5,
                &r.6,
                r.7.as_deref(),
                &r.8,
            );
            if hash != r.10 {
                return Ok(broken("the entry's content does not match its hash"));
            }
            prev = r.10;
            expected_seq += 1;
        }
    }
}
