//! The session cache of one application, and the record of what a write changed in the
//! tables a `Principal` is built from.
//!
//! Every authenticated request needs its session checked and its roles loaded. A live
//! session is remembered for at most [`SESSION_CACHE_TTL`], keyed by session id, in the
//! [`SessionCache`] the application state holds (two applications in one process, as in
//! the tests, have one each). Only positive answers are cached: an unknown or ended
//! session always asks the database. Other nodes sharing a PostgreSQL database notice a
//! change within the TTL.
//!
//! The functions that write sessions, role grants and the users' columns a principal
//! reads (`auth::sessions`, `auth::roles`, `auth::credentials`) take the request's
//! [`AuthChanges`] and record an [`AuthChange`] on it; they are the only writers of
//! those tables (a test of the composition root fails on any other). Recording empties
//! the cache at once, so a request reading meanwhile does not keep the old state beyond
//! the epoch; the context's write empties it again once the transaction has ended, so a
//! read between the change and its commit does not keep it either.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use crate::principal::Principal;

/// How long another node may still accept a session that was ended elsewhere.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(2);
const SESSION_CACHE_MAX: usize = 50_000;

struct Cached {
    principal: Principal,
    session_expires: NaiveDateTime,
    epoch: u64,
    at: Instant,
}

/// Live sessions' principals of one application (see the module comment).
#[derive(Default)]
pub struct SessionCache {
    /// Bumped by every change to sessions, users or roles; entries of an older epoch
    /// are not used, and a read that began before a change is not remembered.
    epoch: AtomicU64,
    entries: Mutex<HashMap<String, Cached>>,
}

impl SessionCache {
    pub fn new() -> SessionCache {
        SessionCache::default()
    }

    /// The epoch to pass to [`SessionCache::remember`]: read it before the database.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The cached principal of live session `sid` of user `sub`, if still good at `now`.
    pub fn get(&self, sid: &str, sub: &str, now: NaiveDateTime) -> Option<Principal> {
        let epoch = self.epoch();
        let cache = self.entries.lock().ok()?;
        let hit = cache.get(sid)?;
        (hit.epoch == epoch
            && hit.at.elapsed() < SESSION_CACHE_TTL
            && hit.session_expires > now
            && hit.principal.user_id == sub)
            .then(|| hit.principal.clone())
    }

    /// Remembers a live session read at `epoch`, unless something changed meanwhile.
    pub fn remember(&self, p: &Principal, session_expires: NaiveDateTime, epoch: u64) {
        let Ok(mut cache) = self.entries.lock() else {
            return;
        };
        if cache.len() >= SESSION_CACHE_MAX {
            cache.retain(|_, c| c.at.elapsed() < SESSION_CACHE_TTL);
            if cache.len() >= SESSION_CACHE_MAX {
                cache.clear();
            }
        }
        if self.epoch() == epoch {
            cache.insert(
                p.session_id.to_string(),
                Cached {
                    principal: p.clone(),
                    session_expires,
                    epoch,
                    at: Instant::now(),
                },
            );
        }
    }

    /// Sessions, users or roles changed: forget every cached principal.
    pub fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut cache) = self.entries.lock() {
            cache.clear();
        }
    }
}

/// A change to what a principal is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthChange {
    /// A session was revoked or removed (logout, revocation, password change, erasure).
    SessionsEnded,
    /// A role was granted or taken away.
    RolesChanged,
    /// A user's e-mail address (part of the principal) changed.
    EmailChanged,
    /// A user's status (only active users' sessions live) changed.
    StatusChanged,
}

/// What one context's writes changed in sessions, users and roles, and the cache to
/// empty for it (see the module comment). Obtained from the request context
/// (`ctx.auth_changes()`); the writers of those tables take it.
pub struct AuthChanges {
    cache: Arc<SessionCache>,
    recorded: Mutex<Vec<AuthChange>>,
}

impl AuthChanges {
    pub fn new(cache: Arc<SessionCache>) -> AuthChanges {
        AuthChanges {
            cache,
            recorded: Mutex::new(Vec::new()),
        }
    }

    /// Records a change made (not yet committed) and empties the cache at once.
    pub fn record(&self, change: AuthChange) {
        self.cache.forget_all();
        if let Ok(mut recorded) = self.recorded.lock() {
            recorded.push(change);
        }
    }

    /// The transaction has ended (committed or not): empties the cache again if
    /// anything was recorded, and returns what was.
    pub fn settle(&self) -> Vec<AuthChange> {
        let changes = match self.recorded.lock() {
            Ok(mut recorded) => std::mem::take(&mut *recorded),
            // A writer panicked while recording: forget everything to be safe.
            Err(_) => vec![AuthChange::SessionsEnded],
        };
        if !changes.is_empty() {
            self.cache.forget_all();
        }
        changes
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
