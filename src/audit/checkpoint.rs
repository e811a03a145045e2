//! Signed checkpoints of the audit chain: "entry `seq` had hash `hash`", signed with the
//! service's Ed25519 signing key (the dossier key; the message is prefixed so that a
//! checkpoint signature can never pass for a dossier signature, or the other way round).
//!
//! Why: the chain proves that no entry inside it was changed, but someone with write
//! access to the database can cut off the newest entries, or rewrite an entry and rehash
//! every entry after it, and the result verifies like the original. A checkpoint kept
//! outside the database (the operator's log store, a monitoring job that runs
//! `eportfolio audit checkpoint`, a backup manifest) is a witness: the chain must still
//! hold the entry it names, with the same hash. This is the witness model of
//! transparency logs, on the scale of one service.
//!
//! The server logs a checkpoint at every housekeeping round in which the chain grew
//! (`target: "audit_checkpoint"`), and `eportfolio audit verify --checkpoint FILE` checks a
//! file of checkpoints (one JSON object per line, or JSON log lines carrying one).

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::prelude::*;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::SigningKeyId;
use crate::schema::audit_log;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The `type` of a checkpoint document, and the first line of the signed message.
pub const TYPE: &str = "eportfolio-audit-checkpoint";

/// How a printed checkpoint begins (`type` is its first field).
const MARKER: &str = "{\"type\":\"eportfolio-audit-checkpoint\"";

/// One signed checkpoint, as printed and as read back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    #[serde(rename = "type")]
    pub kind: String,
    /// The entry the checkpoint vouches for (the chain's head when it was made).
    pub seq: i64,
    /// That entry's hash (hex SHA-256).
    pub hash: String,
    /// When the checkpoint was made, RFC 3339 in UTC, whole seconds.
    pub at: String,
    /// The signing key's id, as listed by `GET /api/v1/dossier-keys`.
    pub key_id: String,
    /// Ed25519 over [`message`], base64.
    pub signature: String,
}

/// The exact bytes that are signed: a fixed first line, then one `name=value` line per
/// field, each ending in `\n`. Documented so that anyone can verify a checkpoint with
/// the public key alone.
pub fn message(seq: i64, hash: &str, at: &str) -> String {
    format!("{TYPE}/v1\nseq={seq}\nhash={hash}\nat={at}\n")
}

/// The newest entry of the chain: its number and hash.
pub fn head(conn: &mut DbConn) -> Result<Option<(i64, String)>, AppError> {
    Ok(audit_log::table
        .order(audit_log::seq.desc())
        .select((audit_log::seq, audit_log::hash))
        .first(conn)
        .optional()?)
}

/// A checkpoint of the chain's head as of `now`; `None` while the chain is empty.
pub fn make(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    key_id: &SigningKeyId,
    key: &SigningKey,
) -> Result<Option<Checkpoint>, AppError> {
    Ok(head(conn)?.map(|(seq, hash)| sign(seq, hash, now, key_id, key)))
}

/// Signs "entry `seq` has hash `hash`" as of `now`.
pub fn sign(
    seq: i64,
    hash: String,
    now: DateTime<Utc>,
    key_id: &SigningKeyId,
    key: &SigningKey,
) -> Checkpoint {
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let signature = key.sign(message(seq, &hash, &at).as_bytes());
    Checkpoint {
        kind: TYPE.to_string(),
        seq,
        hash,
        at,
        key_id: key_id.to_string(),
        signature: B64.encode(signature.to_bytes()),
    }
}

/// Reads the checkpoints in `text`: one per line, either a checkpoint object, a JSON
/// log line whose `fields.checkpoint` (the server's JSON log) or `checkpoint` holds one
/// as a string, or a plain-text log line with the object after `checkpoint=`. Lines that do not mention a checkpoint are skipped, so an extract of the
/// server's log can be given as it is; a line that mentions one but does not read is an
/// error, as is a text with none at all (a wrong file would otherwise check nothing).
pub fn parse_lines(text: &str) -> Result<Vec<Checkpoint>, AppError> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if !line.contains(TYPE) {
            continue;
        }
        let unreadable =
            || AppError::Unprocessable(format!("line {}: not a readable checkpoint", i + 1));
        let checkpoint: Checkpoint = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(value) => {
                let nested = value
                    .pointer("/fields/checkpoint")
                    .or_else(|| value.get("checkpoint"))
                    .and_then(|v| v.as_str());
                match nested {
                    Some(inner) => serde_json::from_str(inner).map_err(|_| unreadable())?,
                    None => serde_json::from_value(value).map_err(|_| unreadable())?,
                }
            }
            // A line of the plain-text log: the object follows `checkpoint=`.
            Err(_) => {
                let start = line.find(MARKER).ok_or_else(unreadable)?;
                serde_json::Deserializer::from_str(&line[start..])
                    .into_iter::<Checkpoint>()
                    .next()
                    .and_then(Result::ok)
                    .ok_or_else(unreadable)?
            }
        };
        if checkpoint.kind != TYPE {
            return Err(unreadable());
        }
        found.push(checkpoint);
    }
    if found.is_empty() {
        return Err(AppError::Unprocessable(
            "no audit checkpoint found in the file".into(),
        ));
    }
    Ok(found)
}

/// What the chain says about one checkpoint.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub seq: i64,
    pub at: String,
    /// Signed by one of this service's keys, and the chain still holds the entry.
    pub holds: bool,
    pub reason: Option<String>,
}

/// Checks each checkpoint: is it signed by one of `keys`, and does the chain still hold
/// entry `seq` with the checkpoint's hash? Run it with [`super::verify`]: the chain's
/// own links then carry the guarantee from that entry back to the first.
pub fn check(
    conn: &mut DbConn,
    checkpoints: &[Checkpoint],
    keys: &[(String, VerifyingKey)],
) -> Result<Vec<Finding>, AppError> {
    let last = head(conn)?.map(|(seq, _)| seq).unwrap_or(0);
    let mut findings = Vec::with_capacity(checkpoints.len());
    for cp in checkpoints {
        let reason = match signature_problem(cp, keys) {
            Some(problem) => Some(problem),
            None => {
                let stored: Option<String> = audit_log::table
                    .filter(audit_log::seq.eq(cp.seq))
                    .select(audit_log::hash)
                    .first(conn)
                    .optional()?;
                match stored {
                    None => Some(format!(
                        "the chain has no entry {} (it ends at entry {last}): entries were cut off",
                        cp.seq
                    )),
                    Some(hash) if hash != cp.hash => Some(format!(
                        "entry {} is not the entry the checkpoint vouches for: the chain was \
                         rewritten, or cut off and written again",
                        cp.seq
                    )),
                    Some(_) => None,
                }
            }
        };
        findings.push(Finding {
            seq: cp.seq,
            at: cp.at.clone(),
            holds: reason.is_none(),
            reason,
        });
    }
    Ok(findings)
}

/// Why the checkpoint's signature does not count, if it does not.
fn signature_problem(cp: &Checkpoint, keys: &[(String, VerifyingKey)]) -> Option<String> {
    let Some((_, key)) = keys.iter().find(|(id, _)| *id == cp.key_id) else {
        return Some(format!(
            "signed with key {}, which is not one of this service's keys",
            cp.key_id
        ));
    };
    let signature = B64
        .decode(&cp.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b));
    match signature {
        Some(s)
            if key
                .verify(message(cp.seq, &cp.hash, &cp.at).as_bytes(), &s)
                .is_ok() =>
        {
            None
        }
        _ => Some("the signature does not match: the checkpoint is not authentic".into()),
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
