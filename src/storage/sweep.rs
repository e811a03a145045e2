//! Housekeeping of the attachment store: what failed uploads left behind. An upload is
//! written under a temporary name, committed under its key, and then named by a
//! database row; a process that stopped in between leaves an unfinished part, or a
//! committed blob that no row names. Both are removed once they are old enough that no
//! upload can still be on its way.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use diesel::prelude::*;

use super::BlobStore;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::attachments;

/// How old a leftover must be: far beyond any upload's time between its first byte and
/// its row's commit.
pub const GRACE: Duration = Duration::from_secs(60 * 60);

/// What a sweep removed.
#[derive(Debug, Default, PartialEq)]
pub struct Swept {
    pub parts: usize,
    pub orphans: usize,
}

/// Removes unfinished parts and blobs no attachment row names, last written before
/// `now - GRACE` (file times are the system's: `now` is the wall clock). Rows name blobs
/// by content hash, so one blob may be named by several rows (the same file uploaded
/// twice): it stays while any row, removed ones too, names it.
pub fn sweep(conn: &mut DbConn, blobs: &dyn BlobStore, now: SystemTime) -> Result<Swept, AppError> {
    let before = now.checked_sub(GRACE).unwrap_or(SystemTime::UNIX_EPOCH);
    let parts = blobs.remove_parts(before)?;
    let keys = blobs.committed_before(before)?;
    let orphans = remove_unnamed(conn, blobs, &keys, before)?;
    Ok(Swept { parts, orphans })
}

/// Removes those of `keys` that no attachment row names and that were last written
/// before `before`; returns how many went. The check and the removal are not one
/// transaction: an upload of the same content in between publishes the blob anew (a
/// time after `before`), and the store keeps it.
pub fn remove_unnamed(
    conn: &mut DbConn,
    blobs: &dyn BlobStore,
    keys: &[String],
    before: SystemTime,
) -> Result<usize, AppError> {
    let mut removed = 0;
    for chunk in keys.chunks(500) {
        let named: HashSet<String> = attachments::table
            .filter(attachments::storage_key.eq_any(chunk))
            .select(attachments::storage_key)
            .load::<String>(conn)?
            .into_iter()
            .collect();
        let unnamed: BTreeSet<&String> = chunk.iter().filter(|k| !named.contains(*k)).collect();
        for key in unnamed {
            if blobs.remove(key, before)? {
                tracing::info!(key, "attachment blob no row names removed");
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Removes the blobs of attachment rows a committed transaction deleted (an erasure, a
/// retention round), unless another row still names the same content. A blob that
/// cannot be removed now is left to the sweep. Blocks: call it on the blocking pool.
pub fn remove_released(conn: &mut DbConn, blobs: &dyn BlobStore, keys: &[String]) {
    // A second of slack: S3 keeps times to the second, and an upload of the same
    // content racing this must not look older than the check.
    let before = SystemTime::now()
        .checked_sub(Duration::from_secs(2))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if let Err(e) = remove_unnamed(conn, blobs, keys, before) {
        tracing::warn!(error = %e, "attachment files not removed; the sweep will");
    }
}
