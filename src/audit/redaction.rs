//! Version-1 entries whose record is erased (docs/privacy.md, "Audit entries without
//! record text", step 4). A version-1 entry's hash covers its data, so emptying it breaks
//! its own content check however it is done. What is done instead:
//!
//! 1. Before the first of them is emptied, a signed checkpoint of the chain's head is
//!    taken and logged (`target: "audit_checkpoint"`, like housekeeping's): the history
//!    up to it, untouched, stays provable against it.
//! 2. The entry keeps its stored `hash` and `prev_hash` (every later link still
//!    verifies); its data becomes the JSON `null`, `data_erased_at` is set.
//! 3. A version-2 entry `redacted` (entity `audit_entry`, entity id the entry's seq)
//!    names the entry's seq, its hash and the SHA-256 of its data as it was, and carries
//!    the checkpoint.
//!
//! `verify` accepts an emptied version-1 entry only when a later `redacted` entry names
//! it with the same hash, and counts it apart (`content_removed`: "content removed, link
//! verified"), never as intact content.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::{sha256_hex, Event, EMPTIED};
use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::audit_log;
use crate::secrets::Keyring;

/// The action of the entry that records a redaction.
pub const REDACTED: &str = "redacted";

/// The entity of a `redacted` entry: the audit entry it redacted.
pub const ENTITY: &str = "audit_entry";

/// Redacts these version-1 entries (seq, hash, data) as the module docs say; returns how
/// many. The checkpoint is signed with the service key (`service_key`), which needs the
/// master keyring: without one this fails (and the caller's transaction with it) rather
/// than empty an entry without the checkpoint that keeps the history before it provable.
pub(super) fn redact(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    keys: Option<&Keyring>,
    entries: Vec<(i64, String, String)>,
) -> Result<i64, AppError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let keys = keys.ok_or_else(|| {
        AppError::internal("version-1 audit entries need a signed checkpoint: no master key")
    })?;
    let (key_id, key) = crate::service_key::current_key(conn, keys)?;
    let checkpoint = super::checkpoint::make(conn, now, &key_id, &key)?;
    let checkpoint = serde_json::to_value(&checkpoint).map_err(AppError::internal)?;
    tracing::info!(
        target: "audit_checkpoint",
        checkpoint = %checkpoint,
        "audit checkpoint before a redaction"
    );
    let mut n = 0;
    for (seq, hash, data) in entries {
        n += diesel::update(audit_log::table.filter(audit_log::seq.eq(seq)))
            .set((
                audit_log::data.eq(EMPTIED),
                audit_log::data_erased_at.eq(Some(to_db(now))),
            ))
            .execute(conn)?;
        let seq_text = seq.to_string();
        super::append(
            conn,
            now,
            Event {
                actor_id: None,
                client: None,
                action: REDACTED,
                entity: ENTITY,
                entity_id: &seq_text,
                enrolment_id: None,
                data: &json!({"seq": seq, "hash": hash, "data_sha256": sha256_hex(&data),
                              "checkpoint": checkpoint}),
            },
        )?;
    }
    Ok(n as i64)
}

/// The version-1 entries the chain's `redacted` entries name: (seq redacted, its hash,
/// seq of the redaction).
pub(super) fn named(conn: &mut DbConn) -> Result<Vec<(i64, String, i64)>, AppError> {
    let rows: Vec<(i64, String)> = audit_log::table
        .filter(audit_log::action.eq(REDACTED))
        .filter(audit_log::hash_version.eq(2))
        .order(audit_log::seq)
        .select((audit_log::seq, audit_log::data))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(by, data)| {
            let d: serde_json::Value = serde_json::from_str(&data).ok()?;
            Some((
                d.get("seq")?.as_i64()?,
                d.get("hash")?.as_str()?.to_string(),
                by,
            ))
        })
        .collect())
}
