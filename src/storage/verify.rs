//! Do the stored attachments still hold what was uploaded? Every attachment's bytes are
//! re-read and hashed against the SHA-256 recorded at upload (`eportfolio attachments
//! verify`, the end of a restore); a download checks its one file before serving it.

use std::io::Read;

use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::BlobStore;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::attachments;

/// An attachment whose stored bytes do not match.
#[derive(Debug, Serialize)]
pub struct Finding {
    pub id: String,
    pub storage_key: String,
    /// `missing`, `size differs` or `hash differs`.
    pub problem: String,
}

/// An attachment as the check needs it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = attachments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Stored {
    id: String,
    storage_key: String,
    sha256: String,
    size_bytes: i64,
}

/// Hashes a blob; `None` when it cannot be read.
fn hash_blob(blobs: &dyn BlobStore, key: &str) -> Result<Option<(String, u64)>, AppError> {
    let (mut reader, _) = match blobs.open(key) {
        Ok(opened) => opened,
        Err(AppError::AttachmentDamaged(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            // An object store that fails mid-read is away, not the object damaged: 503.
            Err(e) if e.get_ref().is_some_and(|e| e.is::<object_store::Error>()) => {
                return Err(AppError::StoreUnavailable(format!(
                    "attachment store, reading: {e}"
                )))
            }
            Err(_) => return Ok(None),
        };
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Some((hex::encode(hash.finalize()), size)))
}

/// What is wrong with one blob (`None`: it is intact).
fn problem(
    blobs: &dyn BlobStore,
    key: &str,
    sha256: &str,
    size_bytes: i64,
) -> Result<Option<&'static str>, AppError> {
    Ok(match hash_blob(blobs, key)? {
        None => Some("missing"),
        Some((_, size)) if size != size_bytes.max(0) as u64 => Some("size differs"),
        Some((hash, _)) if hash != sha256 => Some("hash differs"),
        Some(_) => None,
    })
}

/// Checks one attachment before it is served: damaged bytes are never sent.
pub fn check_blob(
    blobs: &dyn BlobStore,
    key: &str,
    sha256: &str,
    size_bytes: i64,
) -> Result<(), AppError> {
    match problem(blobs, key, sha256, size_bytes)? {
        None => Ok(()),
        Some(p) => Err(AppError::AttachmentDamaged(format!("blob {key}: {p}"))),
    }
}

/// Re-reads every attachment (removed ones too: the audit log still names them) and
/// returns those that do not match, in id order.
pub fn verify_attachments(
    conn: &mut DbConn,
    blobs: &dyn BlobStore,
) -> Result<Vec<Finding>, AppError> {
    let mut findings = Vec::new();
    let mut after = String::new();
    loop {
        let batch: Vec<Stored> = attachments::table
            .filter(attachments::id.gt(&after))
            .order(attachments::id)
            .limit(500)
            .select(Stored::as_select())
            .load(conn)?;
        let Some(last) = batch.last() else {
            return Ok(findings);
        };
        after = last.id.clone();
        for a in batch {
            if let Some(p) = problem(blobs, &a.storage_key, &a.sha256, a.size_bytes)? {
                findings.push(Finding {
                    id: a.id,
                    storage_key: a.storage_key,
                    problem: p.into(),
                });
            }
        }
    }
}
