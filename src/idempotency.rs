//! `Idempotency-Key` on POST: the first response is stored with a hash of the request
//! body for 24 hours; the same key and body replays it, the same key with another body
//! is a 409. Keys are scoped per user, so two users never collide.
//!
//! Phones on bad networks retry; without this a retry after a lost response would log
//! the same activity twice.
//!
//! The key is reserved in the same transaction as the request's first write: the
//! middleware leaves the reservation pending for the request (a [`RequestKey`] in the
//! request's extensions, carried by its [`crate::context::Context`]), and the context's
//! `write` takes it, so a logged activity, its audit entry and its key commit
//! together, the key marked `committed`. If the key turns out to be known, the write does
//! not run and the middleware answers with the stored response (or the conflict). A
//! request that never writes has its key checked, and its answer stored, in one
//! transaction after the handler, before anything is answered. The response of a write
//! is stored in a later transaction; on SQLite it is queued on the writer before the
//! response leaves, so any retry is checked after it.
//!
//! A key marked `committed` is never taken over: its effect is in the database, whatever
//! became of the server. If the server died before storing the answer, a retry gets
//! `idempotency-answer-lost` (409) instead of a second effect. Only a reservation that
//! committed nothing (see [`settle`]) may be taken over once stale.
//!
//! Reserving is one conditional statement (`INSERT ... ON CONFLICT DO NOTHING`, or a
//! takeover by an `UPDATE` whose `WHERE` says the old row may be taken over), so two
//! requests with the same key at once on PostgreSQL (READ COMMITTED) cannot both win:
//! the second waits for the first's transaction and then finds its row.
//!
//! Answers that carry a secret (recovery codes, client secrets, TOTP secrets, tokens)
//! are marked by the handler ([`secret`]) and never stored: the key is remembered as
//! done, and a retry gets `idempotency-secret-not-replayed` (409) saying how to get a
//! new secret. The database (and every backup) never holds them.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use chrono::Duration;
use diesel::prelude::*;
use futures_util::StreamExt;

use crate::app::AppState;
use crate::clock::{from_db, to_db};
use crate::db;
use crate::error::AppError;
use crate::schema::idempotency_keys;

pub const HEADER: &str = "idempotency-key";
/// What the request hash's key is derived for (see [`crate::secrets::Keyring::mac`]).
const REQUEST_HASH_PURPOSE: &str = "idempotency_keys.request_hash";
const RETENTION_HOURS: i64 = 24;
/// A key still without an answer after this long belongs to a request that died with
/// its server: a retry may take it over if nothing was committed with it, and is told
/// the answer was lost if its write was.
const STALE_PENDING_SECONDS: i64 = 60;

/// A request's key, waiting for the request's first write.
pub struct Pending {
    scope: String,
    key: String,
    hash: String,
    now: chrono::DateTime<chrono::Utc>,
    state: Mutex<Taken>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// No write has taken the reservation yet.
    Waiting,
    /// A write is reserving it.
    Reserving,
    /// Reserved by [`settle`], with nothing committed: the next write marks it
    /// committed; store the response.
    Settled,
    /// Reserved with the write: store the response.
    Fresh,
    /// The key was known: answer with `replay` (or the conflict the handler returns).
    Known,
}

/// Marks a response that carries a secret: the idempotency store never keeps it.
#[derive(Clone, Copy)]
struct CarriesSecret;

/// For handlers whose answer carries a secret (recovery codes, a client secret, a TOTP
/// secret, tokens): such an answer is never stored for replay. The mark is a response
/// extension, so it never leaves the server.
pub fn secret(mut res: HttpResponse) -> HttpResponse {
    res.extensions_mut().insert(CarriesSecret);
    res
}

/// What a write does with the request's key.
#[derive(Clone, Copy)]
enum Mode {
    /// Reserve it; `effect`: the transaction commits the request's effect.
    Reserve { effect: bool },
    /// Reserved already (by [`settle`]): mark it committed with this write.
    MarkCommitted,
}

/// The request's key, waiting for its first write: a request extension set by the
/// middleware, which [`crate::context::Context`] carries to the request's writes.
#[derive(Clone)]
pub struct RequestKey {
    pending: Arc<Pending>,
    replay: Arc<Mutex<Option<Slot>>>,
}

impl RequestKey {
    /// The pending reservation, for a write that commits the request's effect (`effect`)
    /// or for [`settle`]; `None` once a write has taken it.
    pub(crate) fn take(&self, effect: bool) -> Option<Reservation> {
        let mut state = self.pending.state.lock().ok()?;
        let mode = match *state {
            Taken::Waiting => Mode::Reserve { effect },
            Taken::Settled if effect => Mode::MarkCommitted,
            _ => return None,
        };
        *state = Taken::Reserving;
        Some(Reservation {
            pending: self.pending.clone(),
            replay: self.replay.clone(),
            mode,
        })
    }
}

/// A reservation to make at the start of a write transaction.
pub(crate) struct Reservation {
    pending: Arc<Pending>,
    replay: Arc<Mutex<Option<Slot>>>,
    mode: Mode,
}

impl Reservation {
    /// Reserves the key; an error when the write must not run (the key is known).
    pub(crate) fn reserve(&self, conn: &mut db::DbConn) -> Result<(), AppError> {
        let p = &self.pending;
        let effect = match self.mode {
            Mode::Reserve { effect } => effect,
            Mode::MarkCommitted => {
                let marked = diesel::update(idempotency_keys::table.find((&p.scope, &p.key)))
                    .set(idempotency_keys::outcome.eq(COMMITTED))
                    .execute(conn);
                let state = if marked.is_ok() {
                    Taken::Fresh
                } else {
                    Taken::Settled
                };
                if let Ok(mut s) = p.state.lock() {
                    *s = state;
                }
                marked?;
                return Ok(());
            }
        };
        let slot = reserve(conn, p.now, &p.scope, &p.key, &p.hash, effect);
        let taken = match &slot {
            Ok(Slot::Fresh) if effect => Taken::Fresh,
            Ok(Slot::Fresh) => Taken::Settled,
            _ => Taken::Known,
        };
        if let Ok(mut state) = p.state.lock() {
            *state = taken;
        }
        match slot {
            Ok(Slot::Fresh) => Ok(()),
            Ok(replay) => {
                if let Ok(mut r) = self.replay.lock() {
                    *r = Some(replay);
                }
                // The handler returns this; the middleware answers with the replay.
                Err(AppError::IdempotencyInProgress)
            }
            Err(e) => Err(e),
        }
    }
}

/// For handlers with effects before their first write (a stored upload): settle the
/// key first, as a write of its own. An error means: do nothing, return it.
///
/// The key is then reserved without being marked committed (nothing is, yet), so if the
/// server dies before the write, a retry takes it over once stale; the write marks it.
pub async fn settle(pool: &db::DbPool, key: Option<&RequestKey>) -> Result<(), AppError> {
    let Some(reservation) = key.and_then(|k| k.take(false)) else {
        return Ok(());
    };
    db::write(pool, move |conn| reservation.reserve(conn)).await
}

/// `outcome` of a key whose request's write committed.
const COMMITTED: &str = "committed";
/// `outcome` of a key whose answer carried a secret (not stored).
const SECRET: &str = "secret";

enum Slot {
    /// First use of the key: run the request and store its response.
    Fresh,
    Replay {
        status: u16,
        content_type: Option<String>,
        etag: Option<String>,
        body: String,
    },
}

/// Who owns keys: the caller, authenticated before routing. `auth` fills it (for
/// `Principal`); the composition root (`app`) names the type when it wraps the routes
/// in [`middleware`], so this layer, below the features, imports none of them.
pub trait KeyOwner: Clone + Sized + 'static {
    /// The caller of `req`, or an error when there is none (no live session or token).
    fn authenticate(req: &HttpRequest) -> Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;
    /// The keys' owner: a user, or an API client (`user:<id>`, `client:<id>`).
    fn key_scope(&self) -> String;
}

pub async fn middleware<P: KeyOwner>(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() != Method::POST {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    }
    let Some(key) = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    };
    if key.is_empty() || key.len() > 255 {
        let err = AppError::validation("Idempotency-Key", "must be 1 to 255 characters");
        return Ok(req.error_response(err).map_into_boxed_body());
    }
    // Only a live session owns keys: a request that fails authentication goes on to the
    // handler, which refuses it, and nothing is stored or replayed.
    // Before routing: who the caller is, not yet whether they may call the route (the
    // handler's extractor decides that from the matched route).
    let principal = P::authenticate(req.request()).await;
    let Ok(principal) = principal else {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    };
    // Keys are per user, or per API client.
    let scope = principal.key_scope();
    req.extensions_mut().insert(principal);

    // Read the body to hash it, then hand it on to the handler.
    let limit = state.config.max_json_body;
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            let err = AppError::PayloadTooLarge(format!("the body exceeds {limit} bytes"));
            return Ok(req.error_response(err).map_into_boxed_body());
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    // Keyed (HMAC under the master key), not a plain SHA-256: a step-up request carries
    // the current password, and a plain hash of a known shape would let anyone with a
    // copy of the database test password guesses at SHA-256 speed.
    let request = format!(
        "{} {}\n{}",
        req.method(),
        req.path(),
        String::from_utf8_lossy(&body)
    );
    let request_hash = match state.pool.keyring() {
        Some(keyring) => keyring.mac(REQUEST_HASH_PURPOSE, request.as_bytes()),
        None => Err(AppError::internal("no master key for idempotency keys")),
    };
    let request_hash = match request_hash {
        Ok(h) => h,
        Err(e) => return Ok(req.error_response(e).map_into_boxed_body()),
    };
    let (_, mut replay) = actix_http::h1::Payload::create(true);
    replay.unread_data(body);
    req.set_payload(replay.into());

    let now = state.clock.now();
    let pending = Arc::new(Pending {
        scope: scope.clone(),
        key: key.clone(),
        hash: request_hash.clone(),
        now,
        state: Mutex::new(Taken::Waiting),
    });
    let replay_slot = Arc::new(Mutex::new(None));
    let request_key = RequestKey {
        pending: pending.clone(),
        replay: replay_slot.clone(),
    };
    req.extensions_mut().insert(request_key);
    let res = next.call(req).await?;
    let taken = pending.state.lock().map(|s| *s).unwrap_or(Taken::Known);
    let (http_req, res) = res.into_parts();
    let carries_secret = res.extensions().get::<CarriesSecret>().is_some();
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let etag = res
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (head, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|_| actix_web::error::ErrorInternalServerError("body"))?;
    // Answers that a retry may change are not remembered: server errors, an
    // expired token (the client refreshes and retries), rate limits.
    let store = !(status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS);
    let stored = Stored {
        carries_secret,
        status: status.as_u16() as i32,
        content_type,
        etag,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let replay = match taken {
        Taken::Known => replay_slot.lock().ok().and_then(|mut r| r.take()),
        Taken::Fresh | Taken::Settled => {
            // Queued before the response leaves: a retry is checked after it.
            let result = db::write_statement_detached(&state.pool, move |conn| {
                store_response(conn, now, &scope, &key, &request_hash, store, stored)
            })
            .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "could not store idempotent response");
            }
            None
        }
        Taken::Waiting | Taken::Reserving => {
            // The handler never wrote: check the key now, and remember its answer.
            let slot = db::write(&state.pool, move |conn| {
                let slot = reserve(conn, now, &scope, &key, &request_hash, false)?;
                if let Slot::Fresh = slot {
                    store_response(conn, now, &scope, &key, &request_hash, store, stored)?;
                }
                Ok(slot)
            })
            .await;
            match slot {
                Ok(Slot::Fresh) => None,
                Ok(replay) => Some(replay),
                Err(e) => {
                    let req = ServiceRequest::from_request(http_req);
                    return Ok(req.error_response(e).map_into_boxed_body());
                }
            }
        }
    };
    let req = ServiceRequest::from_request(http_req);
    match replay {
        Some(Slot::Replay {
            status,
            content_type,
            etag,
            body,
        }) => {
            let mut res =
                HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
            if let Some(ct) = content_type {
                res.insert_header((header::CONTENT_TYPE, ct));
            }
            if let Some(tag) = etag {
                res.insert_header((header::ETAG, tag));
            }
            res.insert_header(("idempotent-replayed", "true"));
            Ok(req.into_response(res.body(body)))
        }
        _ => {
            let res = head.set_body(BoxBody::new(bytes));
            Ok(req.into_response(res))
        }
    }
}

/// A response to remember.
struct Stored {
    /// Remember only that the request was done, not the answer.
    carries_secret: bool,
    status: i32,
    content_type: Option<String>,
    etag: Option<String>,
    body: String,
}

/// Remembers the response of a reserved key (or forgets the key if the response is not
/// to be remembered). The reservation may have been rolled back with a write that
/// failed: then the row is made here.
///
/// One statement either way, so that on PostgreSQL it needs no transaction of its own
/// ([`db::write_statement_detached`]). It touches only this request's row: the same
/// hash and reservation instant. Another request may have taken the key after this
/// one's reservation was rolled back; its row, and the answer a retry replays from it,
/// stay its own.
fn store_response(
    conn: &mut db::DbConn,
    now: chrono::DateTime<chrono::Utc>,
    scope: &str,
    key: &str,
    hash: &str,
    store: bool,
    r: Stored,
) -> Result<(), AppError> {
    use diesel::upsert::excluded;
    let created_at = to_db(now);
    if !store && !r.carries_secret {
        // A key whose write committed stays: running the request again would repeat it.
        let forget = diesel::delete(
            idempotency_keys::table
                .find((scope, key))
                .filter(idempotency_keys::outcome.is_null())
                .filter(idempotency_keys::request_hash.eq(hash))
                .filter(idempotency_keys::created_at.eq(created_at)),
        );
        crate::on_backend!(conn, |c| forget.execute(c))?;
        return Ok(());
    }
    let (status, content_type, etag, body, outcome) = if r.carries_secret {
        (None, None, None, None, Some(SECRET))
    } else {
        (Some(r.status), r.content_type, r.etag, Some(r.body), None)
    };
    let row = (
        idempotency_keys::scope.eq(scope),
        idempotency_keys::key.eq(key),
        idempotency_keys::request_hash.eq(hash),
        idempotency_keys::created_at.eq(created_at),
        idempotency_keys::status_code.eq(status),
        idempotency_keys::content_type.eq(&content_type),
        idempotency_keys::etag.eq(&etag),
        idempotency_keys::response_body.eq(&body),
        idempotency_keys::outcome.eq(outcome),
    );
    let answer = (
        idempotency_keys::status_code.eq(excluded(idempotency_keys::status_code)),
        idempotency_keys::content_type.eq(excluded(idempotency_keys::content_type)),
        idempotency_keys::etag.eq(excluded(idempotency_keys::etag)),
        idempotency_keys::response_body.eq(excluded(idempotency_keys::response_body)),
    );
    let mine = idempotency_keys::request_hash
        .eq(excluded(idempotency_keys::request_hash))
        .and(idempotency_keys::created_at.eq(excluded(idempotency_keys::created_at)));
    let upsert = diesel::insert_into(idempotency_keys::table)
        .values(row)
        .on_conflict((idempotency_keys::scope, idempotency_keys::key));
    if outcome.is_some() {
        // A secret: only that the request was done (its outcome), never the answer.
        let q = upsert.do_update().set((
            answer,
            idempotency_keys::outcome.eq(excluded(idempotency_keys::outcome)),
        ));
        let q = diesel::query_dsl::methods::FilterDsl::filter(q, mine);
        crate::on_backend!(conn, |c| q.execute(c))?;
    } else {
        // The outcome stays: `committed` when the request's write committed.
        let q = diesel::query_dsl::methods::FilterDsl::filter(upsert.do_update().set(answer), mine);
        crate::on_backend!(conn, |c| q.execute(c))?;
    }
    Ok(())
}

/// Reserves the key (`effect`: marked committed, as the transaction commits the
/// request's effect), or says what is known of it. One conditional statement decides:
/// of two requests with the same key at once, exactly one reserves it.
fn reserve(
    conn: &mut db::DbConn,
    now: chrono::DateTime<chrono::Utc>,
    scope: &str,
    key: &str,
    hash: &str,
    effect: bool,
) -> Result<Slot, AppError> {
    let outcome = effect.then_some(COMMITTED);
    let insert = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::scope.eq(scope),
            idempotency_keys::key.eq(key),
            idempotency_keys::request_hash.eq(hash),
            idempotency_keys::created_at.eq(to_db(now)),
            idempotency_keys::outcome.eq(outcome),
        ))
        .on_conflict_do_nothing();
    if crate::on_backend!(conn, |c| insert.execute(c))? == 1 {
        return Ok(Slot::Fresh);
    }
    // Known. Take it over only if it is past its 24 hours (not yet pruned), or a stale
    // reservation whose request committed nothing and died.
    let expired = to_db(now - Duration::hours(RETENTION_HOURS));
    let stale = to_db(now - Duration::seconds(STALE_PENDING_SECONDS));
    let takeover = diesel::update(
        idempotency_keys::table.find((scope, key)).filter(
            idempotency_keys::created_at
                .lt(expired)
                .or(idempotency_keys::created_at
                    .lt(stale)
                    .and(idempotency_keys::status_code.is_null())
                    .and(idempotency_keys::outcome.is_null())),
        ),
    )
    .set((
        idempotency_keys::request_hash.eq(hash),
        idempotency_keys::created_at.eq(to_db(now)),
        idempotency_keys::status_code.eq(None::<i32>),
        idempotency_keys::content_type.eq(None::<String>),
        idempotency_keys::etag.eq(None::<String>),
        idempotency_keys::response_body.eq(None::<String>),
        idempotency_keys::outcome.eq(outcome),
    ));
    if crate::on_backend!(conn, |c| takeover.execute(c))? == 1 {
        return Ok(Slot::Fresh);
    }
    let query = idempotency_keys::table.find((scope, key));
    let existing: Option<StoredKey> = crate::on_backend!(conn, |c| query
        .select(StoredKey::as_select())
        .first(c)
        .optional())?;
    // Gone between the statements (pruned): the client may simply retry.
    let Some(StoredKey {
        request_hash: stored_hash,
        status_code: status,
        content_type,
        etag,
        response_body: body,
        created_at: created,
        outcome,
    }) = existing
    else {
        return Err(AppError::IdempotencyInProgress);
    };
    if stored_hash != hash {
        return Err(AppError::IdempotencyKeyReused);
    }
    if let Some(status) = status {
        return Ok(Slot::Replay {
            status: status as u16,
            content_type,
            etag,
            body: body.unwrap_or_default(),
        });
    }
    match outcome.as_deref() {
        Some(SECRET) => Err(AppError::IdempotencySecretNotReplayed),
        // Its write committed, and no answer came within the time a request takes: the
        // server that ran it is gone.
        Some(COMMITTED) if now - from_db(created) > Duration::seconds(STALE_PENDING_SECONDS) => {
            Err(AppError::IdempotencyAnswerLost)
        }
        _ => Err(AppError::IdempotencyInProgress),
    }
}

/// A stored key, as a retry finds it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = idempotency_keys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct StoredKey {
    request_hash: String,
    status_code: Option<i32>,
    content_type: Option<String>,
    etag: Option<String>,
    response_body: Option<String>,
    created_at: chrono::NaiveDateTime,
    outcome: Option<String>,
}

/// Deletes the keys past their 24 hours (run by the server's housekeeping, off the
/// request path: deleting a user's old keys on each new one read every key they had
/// made that day, one table lookup each). Returns how many went.
pub fn prune(conn: &mut db::DbConn, now: chrono::DateTime<chrono::Utc>) -> Result<usize, AppError> {
    let cutoff = to_db(now - Duration::hours(RETENTION_HOURS));
    Ok(
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(cutoff)))
            .execute(conn)?,
    )
}

#[cfg(test)]
#[path = "idempotency_tests.rs"]
mod tests;
