//! Housekeeping of the attachment store: what failed uploads left behind. An upload is
//! written under a temporary name, committed under its key, and then named by a
//! database row; a process that stopped in between leaves an unfinished part, or a
//! committed blob that no row names. Both are removed once they are old enough that no
//! upload can still be on its way.

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
/// `now - GRACE` (file times are the system's: `now` is the wall clock).
pub fn sweep(conn: &mut DbConn, blobs: &dyn BlobStore, now: SystemTime) -> Result<Swept, AppError> {
    let before = now.checked_sub(GRACE).unwrap_or(SystemTime::UNIX_EPOCH);
    let parts = blobs.remove_parts(before)?;
    let mut orphans = 0;
    for chunk in blobs.committed_before(before)?.chunks(500) {
        let named: Vec<String> = attachments::table
            .filter(attachments::storage_key.eq_any(chunk))
            .select(attachments::storage_key)
            .load(conn)?;
        for key in chunk.iter().filter(|k| !named.contains(k)) {
            blobs.remove(key)?;
            tracing::info!(key, "orphaned attachment blob removed");
            orphans += 1;
        }
    }
    Ok(Swept { parts, orphans })
}
