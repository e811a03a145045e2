//! The append-only audit log. Every create, change, signature and deletion of a record
//! is written here with who, when and from which client; each entry carries the hash of
//! the previous one, so changing or removing a row is detected by `verify`.
//!
//! The chain alone cannot show that its newest entries were cut off, or that the whole
//! chain was rewritten and rehashed: a shorter or recomputed chain verifies as well as
//! the original. Signed checkpoints (`checkpoint.rs`) held outside the database close
//! that gap.
//!
//! ## How an entry is hashed (for independent verifiers)
//!
//! Entry n's `hash` is the SHA-256 (lower-case hex) of its fields, each written
//! `<byte length>:<value>|` (UTF-8, the length in bytes, an absent value as empty), in
//! this order: `prev_hash`, `seq`, `at` (microseconds since the Unix epoch, UTC),
//! `actor_id`, `client`, `action`, `entity`, `entity_id`, `enrolment_id`, then
//!
//! - **version 1** (`hash_version = 1`, every entry written before migration 000039):
//!   `data` (the stored JSON text);
//! - **version 2** (`hash_version = 2`, every entry since): the text `v2`, then
//!   `data_digest`, the SHA-256 (lower-case hex) of the stored `data` text.
//!
//! The first entry links to 64 zeros (`prev_hash`) and `seq` runs 1, 2, 3, ... without
//! gaps. A version-2 entry's `data` must hash to its `data_digest`, unless its data was
//! emptied on purpose: an erasure or retention run that removes a record also empties
//! the entries naming it (`data` becomes the JSON `null`, `data_erased_at` is set), and
//! records how many it emptied (`audit_entries_emptied` in its own entry's data). The
//! link and the digest of an emptied entry still verify; its content is gone.
//! `data_erased_at` is not hashed (it is set after the entry), so `verify` also checks
//! that no more entries are emptied than the erasures and retention runs recorded.

pub mod checkpoint;
pub mod redaction;
pub mod text;

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::audit_log;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashing of the entries written now (see the module docs).
const HASH_VERSION: i32 = 2;

/// What an emptied entry's `data` holds: the JSON `null`.
pub const EMPTIED: &str = "null";

/// The entries that record an erasure or a retention run: counts only, never emptied
/// (they are what accounts for the emptied entries).
pub const EMPTYING_ACTIONS: [&str; 2] = ["erased", "retention_deleted"];

/// The field of an erasure's or retention run's data that says how many entries it
/// emptied.
pub const EMPTIED_FIELD: &str = "audit_entries_emptied";

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
    hash_version: i32,
    data_digest: Option<String>,
    data_erased_at: Option<chrono::NaiveDateTime>,
}

/// SHA-256 of `text`, lower-case hex.
fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Entry {
    /// The hash of the entry's content and its link (`prev_hash`); `hash` is not read.
    /// Version 1 hashes the data itself; version 2 its digest, so that the data can be
    /// emptied later without breaking the entry (see the module docs).
    fn content_hash(&self) -> String {
        let seq = self.seq.to_string();
        let at = self.at.and_utc().timestamp_micros().to_string();
        let mut fields = vec![
            self.prev_hash.as_str(),
            &seq,
            &at,
            self.actor_id.as_deref().unwrap_or(""),
            self.client.as_deref().unwrap_or(""),
            &self.action,
            &self.entity,
            &self.entity_id,
            self.enrolment_id.as_deref().unwrap_or(""),
        ];
        if self.hash_version == 1 {
            fields.push(&self.data);
        } else {
            fields.push("v2");
            fields.push(self.data_digest.as_deref().unwrap_or(""));
        }
        // Length-prefixed fields, so no two different entries serialise alike.
        let mut text = String::new();
        for field in fields {
            text.push_str(&format!("{}:{field}|", field.len()));
        }
        // Hashed here rather than by `auth::crypto`: the log sits below the features.
        sha256_hex(&text)
    }
}

/// A check every entry passes before it is written: an error refuses the entry, and
/// with it (in the same transaction) the change it describes.
pub type Guard = fn(&mut DbConn, &Event<'_>) -> Result<(), AppError>;

static GUARDS: OnceLock<&'static [Guard]> = OnceLock::new();

/// Installs the guards of this process (once: `AppState::new` does it, as it installs
/// the domain events' subscribers; later calls keep the first list, the same static
/// list). Every change to an enrolment's records, and every act of an account, passes
/// [`append`] in its transaction: the one place where a restriction of processing
/// (GDPR Art. 18, `privacy::restriction::audit_guard`) refuses them all. The guard is
/// installed from above rather than called from here, so the log, below the features,
/// imports none of them.
pub fn install_guards(guards: &'static [Guard]) {
    let _ = GUARDS.get_or_init(|| guards);
}

/// Appends an entry. Runs inside the caller's write transaction, so the entry exists
/// exactly when the change it describes does. Without installed guards it refuses: a
/// change that skipped the restriction check is a wiring error, never allowed quietly.
pub fn append(conn: &mut DbConn, now: DateTime<Utc>, e: Event) -> Result<(), AppError> {
    let guards = GUARDS
        .get()
        .ok_or_else(|| AppError::internal("audit: no guards installed"))?;
    for guard in guards.iter() {
        guard(conn, &e)?;
    }
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
        hash_version: HASH_VERSION,
        data_digest: None,
        data_erased_at: None,
    };
    entry.data_digest = Some(sha256_hex(&entry.data));
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
    /// Entries whose data an erasure or retention run emptied: their links and digests
    /// verify, their content is gone. Counted apart, never as intact content.
    pub data_erased: i64,
    /// Version-1 entries whose content was removed (`redaction.rs`): their links verify
    /// and a later `redacted` entry names each with its hash; their content is gone.
    pub content_removed: i64,
}

/// Why a version-2 entry's data does not stand, if it does not.
fn data_problem(r: &Entry) -> Option<&'static str> {
    if r.hash_version != 2 {
        return None;
    }
    match (&r.data_erased_at, &r.data_digest) {
        (Some(_), _) if r.data != EMPTIED => Some("an emptied entry still holds data"),
        (Some(_), _) => None,
        (None, None) => Some("the entry has no digest of its data"),
        (None, Some(digest)) if sha256_hex(&r.data) != *digest => {
            Some("the entry's data does not match its digest")
        }
        (None, Some(_)) => None,
    }
}

/// How many entries an erasure's or retention run's entry says it emptied.
fn emptied_by(r: &Entry) -> i64 {
    if r.data_erased_at.is_some() || !EMPTYING_ACTIONS.contains(&r.action.as_str()) {
        return 0;
    }
    serde_json::from_str::<serde_json::Value>(&r.data)
        .ok()
        .and_then(|d| d.get(EMPTIED_FIELD).and_then(|n| n.as_i64()))
        .unwrap_or(0)
}

/// Walks the whole chain in order, in batches, recomputing every hash.
pub fn verify(conn: &mut DbConn) -> Result<Verification, AppError> {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    let mut emptied = 0;
    let mut last_emptied = None;
    let mut accounted = 0;
    let mut removed = 0;
    let redactions = redaction::named(conn)?;
    loop {
        let batch: Vec<Entry> = audit_log::table
            .filter(audit_log::seq.ge(expected_seq))
            .order(audit_log::seq)
            .limit(1000)
            .select(Entry::as_select())
            .load(conn)?;
        if batch.is_empty() {
            let entries = expected_seq - 1;
            // `data_erased_at` is outside the hash: someone with access to the database
            // could empty an entry and set it. The erasures and retention runs say how
            // many they emptied; more than that were emptied by someone else.
            if emptied > accounted {
                return Ok(Verification {
                    entries,
                    intact: false,
                    first_broken: last_emptied,
                    reason: Some(format!(
                        "{emptied} entries are emptied, but erasures and retention runs \
                         account for {accounted}"
                    )),
                    data_erased: emptied,
                    content_removed: removed,
                });
            }
            return Ok(Verification {
                entries,
                intact: true,
                first_broken: None,
                reason: None,
                data_erased: emptied,
                content_removed: removed,
            });
        }
        for r in batch {
            let broken = move |reason: &str| Verification {
                entries: expected_seq - 1,
                intact: false,
                first_broken: Some(expected_seq),
                reason: Some(reason.into()),
                data_erased: emptied,
                content_removed: removed,
            };
            if r.seq != expected_seq {
                return Ok(broken("an entry is missing"));
            }
            if r.prev_hash != prev {
                return Ok(broken("the link to the previous entry does not match"));
            }
            if !(1..=HASH_VERSION).contains(&r.hash_version) {
                return Ok(broken("the entry's hash version is unknown"));
            }
            if r.hash_version == 1 && r.data_erased_at.is_some() {
                // Redacted (`redaction.rs`): the content is gone, so its hash cannot be
                // recomputed; a later `redacted` entry must name it with its hash.
                if r.data != EMPTIED {
                    return Ok(broken("an emptied entry still holds data"));
                }
                let named = redactions
                    .iter()
                    .any(|(seq, hash, by)| *seq == r.seq && *hash == r.hash && *by > r.seq);
                if !named {
                    return Ok(broken(
                        "a version-1 entry was emptied, but no redaction names it",
                    ));
                }
                removed += 1;
            } else if r.content_hash() != r.hash {
                return Ok(broken("the entry's content does not match its hash"));
            }
            if let Some(problem) = data_problem(&r) {
                return Ok(broken(problem));
            }
            if r.data_erased_at.is_some() && r.hash_version == 2 {
                emptied += 1;
                last_emptied = Some(r.seq);
            }
            accounted += emptied_by(&r);
            prev = r.hash;
            expected_seq += 1;
        }
    }
}

/// The columns [`empty`] reads of the entries it empties.
const SEQ_VERSION_HASH_DATA: (
    audit_log::seq,
    audit_log::hash_version,
    audit_log::hash,
    audit_log::data,
) = (
    audit_log::seq,
    audit_log::hash_version,
    audit_log::hash,
    audit_log::data,
);

/// Which entries [`empty`] empties.
pub enum Naming<'a> {
    /// Entries about any of these records (`entity_id`).
    Records(&'a [String]),
    /// Entries of this enrolment, or about it.
    Enrolment(&'a str),
}

/// Empties the data of the version-2 entries naming erased or deleted records (`data`
/// becomes the JSON `null`, `data_erased_at` is set); returns how many. Version-1
/// entries hash their data: they are redacted instead (`redaction.rs`, docs/privacy.md
/// step 4; counted by their `redacted` entries, not here), and the erasures' and
/// retention runs' own entries (counts only) stay. The caller records the count in
/// its own entry's data under [`EMPTIED_FIELD`], in the same transaction. The records'
/// text keys (`text.rs`) are deleted too.
pub fn empty(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    keys: Option<&crate::secrets::Keyring>,
    naming: Naming,
) -> Result<i64, AppError> {
    // The records' digest keys go with them: digests left anywhere (a version-1 entry,
    // a backup) can no longer be tested against guessed texts.
    text::forget(conn, &naming)?;
    // The erasures' and retention runs' entries and the redactions' stay (counts and
    // hashes only: they account for what was emptied).
    let kept = [
        EMPTYING_ACTIONS[0],
        EMPTYING_ACTIONS[1],
        redaction::REDACTED,
    ];
    let emptiable = audit_log::data_erased_at
        .is_null()
        .and(audit_log::action.ne_all(kept));
    let found: Vec<(i64, i32, String, String)> = match naming {
        Naming::Records(ids) => {
            let mut seqs = Vec::new();
            // Bounded lists: SQLite limits a statement's parameters.
            for chunk in ids.chunks(500) {
                seqs.extend(
                    audit_log::table
                        .filter(emptiable.clone())
                        .filter(audit_log::entity_id.eq_any(chunk))
                        .select(SEQ_VERSION_HASH_DATA)
                        .load::<(i64, i32, String, String)>(conn)?,
                );
            }
            seqs
        }
        Naming::Enrolment(id) => audit_log::table
            .filter(emptiable)
            .filter(
                audit_log::enrolment_id
                    .eq(id)
                    .or(audit_log::entity_id.eq(id)),
            )
            .select(SEQ_VERSION_HASH_DATA)
            .load::<(i64, i32, String, String)>(conn)?,
    };
    // Version 1 hashes its data: redacted, with a checkpoint first (`redaction.rs`).
    let (v1, v2): (Vec<_>, Vec<_>) = found.into_iter().partition(|f| f.1 == 1);
    redaction::redact(
        conn,
        now,
        keys,
        v1.into_iter()
            .map(|(seq, _, hash, data)| (seq, hash, data))
            .collect(),
    )?;
    let targets: Vec<i64> = v2.into_iter().map(|f| f.0).collect();
    let mut n = 0;
    for chunk in targets.chunks(500) {
        n += diesel::update(audit_log::table.filter(audit_log::seq.eq_any(chunk)))
            .set((
                audit_log::data.eq(EMPTIED),
                audit_log::data_erased_at.eq(Some(to_db(now))),
            ))
            .execute(conn)?;
    }
    Ok(n as i64)
}
