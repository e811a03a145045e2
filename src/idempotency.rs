//! `Idempotency-Key` on POST: the first response is stored with a hash of the request
//! body for 24 hours; the same key and body replays it, the same key with another body
//! is a 409. Keys are scoped per user, so two users never collide.
//!
//! Phones on bad networks retry; without this a retry after a lost response would log
//! the same activity twice.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpResponse};
use chrono::Duration;
use diesel::prelude::*;
use futures_util::StreamExt;

use crate::app::AppState;
use crate::auth::crypto::sha256_hex;
use crate::auth::principal::Principal;
use crate::clock::{from_db, to_db};
use crate::db;
use crate::error::AppError;
use crate::schema::idempotency_keys;

pub const HEADER: &str = "idempotency-key";
const RETENTION_HOURS: i64 = 24;
/// A key still marked in progress after this long belongs to a request that died with
/// its server; a retry may take it over.
const STALE_PENDING_SECONDS: i64 = 60;

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

pub async fn middleware(
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
    let principal =
        Principal::from_request(req.request(), &mut actix_web::dev::Payload::None).await;
    let Ok(principal) = principal else {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    };
    // Keys are per user, or per API client.
    let scope = match &principal.client {
        Some(c) => format!("client:{}", c.client_id),
        None => format!("user:{}", principal.user_id),
    };
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
    let request_hash = sha256_hex(&format!(
        "{} {}\n{}",
        req.method(),
        req.path(),
        String::from_utf8_lossy(&body)
    ));
    let (_, mut replay) = actix_http::h1::Payload::create(true);
    replay.unread_data(body);
    req.set_payload(replay.into());

    let now = state.clock.now();
    let slot = {
        let (scope, key, hash) = (scope.clone(), key.clone(), request_hash.clone());
        db::write(&state.pool, move |conn| {
            reserve(conn, now, &scope, &key, &hash)
        })
        .await
    };
    match slot {
        Err(e) => Ok(req.error_response(e).map_into_boxed_body()),
        Ok(Slot::Replay {
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
        Ok(Slot::Fresh) => {
            let res = next.call(req).await?;
            let (http_req, res) = res.into_parts();
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
            let text = String::from_utf8_lossy(&bytes).into_owned();
            // Answers that a retry may change are not remembered: server errors, an
            // expired token (the client refreshes and retries), rate limits.
            let store = !(status.is_server_error()
                || status == StatusCode::UNAUTHORIZED
                || status == StatusCode::TOO_MANY_REQUESTS);
            let result = db::write(&state.pool, move |conn| {
                if store {
                    diesel::update(idempotency_keys::table.find((&scope, &key)))
                        .set((
                            idempotency_keys::status_code.eq(status.as_u16() as i32),
                            idempotency_keys::content_type.eq(content_type),
                            idempotency_keys::etag.eq(etag),
                            idempotency_keys::response_body.eq(text),
                        ))
                        .execute(conn)?;
                } else {
                    diesel::delete(idempotency_keys::table.find((&scope, &key))).execute(conn)?;
                }
                Ok(())
            })
            .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "could not store idempotent response");
            }
            let res = head.set_body(BoxBody::new(bytes));
            Ok(ServiceResponse::new(http_req, res))
        }
    }
}

fn reserve(
    conn: &mut db::DbConn,
    now: chrono::DateTime<chrono::Utc>,
    scope: &str,
    key: &str,
    hash: &str,
) -> Result<Slot, AppError> {
    type Row = (
        String,
        Option<i32>,
        Option<String>,
        Option<String>,
        Option<String>,
        chrono::NaiveDateTime,
    );
    let existing: Option<Row> = idempotency_keys::table
        .find((scope, key))
        .select((
            idempotency_keys::request_hash,
            idempotency_keys::status_code,
            idempotency_keys::content_type,
            idempotency_keys::etag,
            idempotency_keys::response_body,
            idempotency_keys::created_at,
        ))
        .first(conn)
        .optional()?;
    if let Some((stored_hash, status, content_type, etag, body, created)) = existing {
        let age = now - from_db(created);
        let expired = age > Duration::hours(RETENTION_HOURS);
        let stale = status.is_none() && age > Duration::seconds(STALE_PENDING_SECONDS);
        if !expired && !stale {
            if stored_hash != hash {
                return Err(AppError::IdempotencyKeyReused);
            }
            return match status {
                None => Err(AppError::IdempotencyInProgress),
                Some(status) => Ok(Slot::Replay {
                    status: status as u16,
                    content_type,
                    etag,
                    body: body.unwrap_or_default(),
                }),
            };
        }
        diesel::delete(idempotency_keys::table.find((scope, key))).execute(conn)?;
    }
    // Old keys of this user go when they make a new one; nothing else needs them.
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::scope.eq(scope))
            .filter(idempotency_keys::created_at.lt(to_db(now - Duration::hours(RETENTION_HOURS)))),
    )
    .execute(conn)?;
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::scope.eq(scope),
            idempotency_keys::key.eq(key),
            idempotency_keys::request_hash.eq(hash),
            idempotency_keys::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(Slot::Fresh)
}
