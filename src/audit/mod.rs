//! The append-only audit log. Every create, change, signature and deletion of a record
//! is written here with who, when and from which client; each entry carries the hash of
//! the previous one, so changing or removing a row is detected by `verify`.
//!
//! The chain alone cannot show that its newest entries were cut off, or that the whole
//! chain was rewritten and rehashed: a shorter or recomputed chain verifies as well as
//! the original. Signed checkpoints (`checkpoint.rs`) held outside the database close
//! that gap.

pub mod checkpoint;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

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

/// Characters of the client kept (and hashed) per entry.
const CLIENT_CHARS: usize = 200;

/// One row of the chain, as stored.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Entry {
    seq: i64,
    at: chrono::NaiveDateTime,
    actor_id: Option<String>,
    client: Option<String>,
    action: String,
    entity: String,
    entity_id: String,
    enrolment_id: Option<String>,
    data: String,
    prev_hash: String,
    hash: String,
}

impl Entry {
    /// The hash of the entry's content and its link (`prev_hash`); `hash` is not read.
    fn content_hash(&self) -> String {
        // Length-prefixed fields, so no two different entries serialise alike.
        let mut text = String::new();
        for field in [
            self.prev_hash.as_str(),
            &self.seq.to_string(),
            &self.at.and_utc().timestamp_micros().to_string(),
            self.actor_id.as_deref().unwrap_or(""),
            self.client.as_deref().unwrap_or(""),
            &self.action,
            &self.entity,
            &self.entity_id,
            self.enrolment_id.as_deref().unwrap_or(""),
            &self.data,
        ] {
            text.push_str(&format!("{}:{field}|", field.len()));
        }
        // Hashed here rather than by `auth::crypto`: the log sits below the features.
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

/// Appends an entry. Runs inside the caller's write transaction, so the entry exists
/// exactly when the change it describes does.
pub fn append(conn: &mut DbConn, now: DateTime<Utc>, e: Event) -> Result<(), AppError> {
    // Every change to an enrolment's records passes here in its transaction: the one
    // place where a restriction of processing (GDPR Art. 18) refuses them all.
    if let Some(enrolment_id) = e.enrolment_id {
        if !crate::privacy::restriction::ALLOWED_WHILE_RESTRICTED.contains(&e.action) {
            crate::privacy::restriction::refuse_if_restricted(conn, enrolment_id)?;
        }
    }
    // And every act of a restricted account (signing, assessing, confirming, as anyone's
    // supervisor), and every change to its account data.
    crate::privacy::restriction::refuse_if_actor_restricted(
        conn,
        e.actor_id,
        e.action,
        e.entity,
        e.entity_id,
    )?;
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
    let mut entry = Entry {
        seq,
        at,
        actor_id: e.actor_id.map(str::to_string),
        // The column keeps the first 200 characters, and the hash must cover what is
        // stored: hashing the whole string made every entry of a longer user agent fail
        // verification, so anyone could break the chain's proof by sending one.
        client: e.client.map(|c| c.chars().take(CLIENT_CHARS).collect()),
        action: e.action.to_string(),
        entity: e.entity.to_string(),
        entity_id: e.entity_id.to_string(),
        enrolment_id: e.enrolment_id.map(str::to_string),
        data: e.data.to_string(),
        prev_hash: prev,
        hash: String::new(),
    };
    entry.hash = entry.content_hash();
    let insert = diesel::insert_into(audit_log::table).values(&entry);
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

/// Walks the whole chain in order, in batches, recomputing every hash.
pub fn verify(conn: &mut DbConn) -> Result<Verification, AppError> {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    loop {
        let batch: Vec<Entry> = audit_log::table
            .filter(audit_log::seq.ge(expected_seq))
            .order(audit_log::seq)
            .limit(1000)
            .select(Entry::as_select())
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
            if r.seq != expected_seq {
                return Ok(broken("an entry is missing"));
            }
            if r.prev_hash != prev {
                return Ok(broken("the link to the previous entry does not match"));
            }
            if r.content_hash() != r.hash {
                return Ok(broken("the entry's content does not match its hash"));
            }
            prev = r.hash;
            expected_seq += 1;
        }
    }
}
