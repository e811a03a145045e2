//! Establishing who is calling: sessions and access tokens, checked per request, filling
//! a `Principal`. The `Principal` type and its role checks sit below the features in
//! `crate::principal` (the request context and the idempotency layer name it); they are
//! re-exported here.
//!
//! A live session's principal is kept for at most `SESSION_CACHE_TTL` in the session
//! cache of the application (`AppState::sessions`, see `principal::SessionCache`).
//! Nothing here has to be told of changes: the only writers of sessions, role grants and
//! users' e-mail and status (`auth::sessions`, `auth::roles`, `auth::credentials`) take
//! the request's `AuthChanges`, and the context's write empties the cache for them.

use std::future::Future;
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{http::header, web, FromRequest, HttpMessage, HttpRequest};
use diesel::prelude::*;

use crate::app::AppState;
use crate::clock::to_db;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::ids::{SessionId, UserId};
use crate::schema::{sessions, users};

pub use crate::principal::{
    load_roles, org_chain, org_subtrees, ClientPrincipal, Principal, Role, RoleGrant, SessionCache,
    SESSION_CACHE_TTL,
};

/// What a live session's check reads: its user (joined) and the session.
#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LiveSession {
    #[diesel(select_expression = users::id, select_expression_type = users::id)]
    user_id: UserId,
    #[diesel(select_expression = users::email, select_expression_type = users::email)]
    email: String,
    second_factor: String,
    expires_at: chrono::NaiveDateTime,
}

/// The live session `sid` of user `sub` at `now`, from the cache or the database.
pub fn session_principal(
    conn: &mut DbConn,
    cache: &SessionCache,
    sid: &str,
    sub: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Principal, AppError> {
    let now = to_db(now);
    if let Some(p) = cache.get(sid, sub, now) {
        return Ok(p);
    }
    let epoch = cache.epoch();
    let found: Option<LiveSession> = crate::on_backend!(conn, |c| sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(sid))
        .filter(sessions::user_id.eq(sub))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(users::status.eq("active"))
        .select(LiveSession::as_select())
        .first(c)
        .optional())?;
    let LiveSession {
        user_id,
        email,
        second_factor,
        expires_at: expires,
    } = found
        .ok_or_else(|| AppError::Unauthenticated("the session has ended; log in again".into()))?;
    let roles = load_roles(conn, &user_id)?;
    let p = Principal {
        user_id,
        session_id: SessionId::from(sid),
        second_factor,
        email,
        roles,
        client: None,
    };
    cache.remember(&p, expires, epoch);
    Ok(p)
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Who presents the request's bearer token, without asking whether they may call the
/// route: for middlewares, which run before the router has matched one. A principal
/// already found for this request (by an earlier middleware) is reused.
/// The idempotency layer's key owner is the authenticated caller.
impl crate::idempotency::KeyOwner for Principal {
    fn authenticate(req: &HttpRequest) -> Pin<Box<dyn Future<Output = Result<Self, AppError>>>> {
        authenticate(req)
    }

    fn key_scope(&self) -> String {
        match &self.client {
            Some(c) => format!("client:{}", c.client_id),
            None => format!("user:{}", self.user_id),
        }
    }
}

pub fn authenticate(
    req: &HttpRequest,
) -> Pin<Box<dyn Future<Output = Result<Principal, AppError>>>> {
    if let Some(known) = req.extensions().get::<Principal>().cloned() {
        return Box::pin(async move { Ok(known) });
    }
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let token = bearer(req);
    Box::pin(async move {
        let state = state.ok_or_else(|| AppError::internal("state missing"))?;
        let token = token.ok_or_else(|| {
            AppError::Unauthenticated("send an access token: Authorization: Bearer <token>".into())
        })?;
        if token.starts_with(crate::auth::client_tokens::TOKEN_PREFIX) {
            let now = state.clock.now();
            return db::run(&state.pool, move |conn| {
                crate::auth::client_tokens::authenticate(conn, &token, now)
            })
            .await;
        }
        let claims = state
            .jwt
            .decode(&token)
            .ok_or_else(|| AppError::Unauthenticated("the access token is not valid".into()))?;
        let now = state.clock.now();
        if claims.exp <= now.timestamp() {
            return Err(AppError::Unauthenticated(
                "the access token has expired; refresh it".into(),
            ));
        }
        // A cached live session needs no trip to the blocking pool.
        if let Some(p) = state.sessions.get(&claims.sid, &claims.sub, to_db(now)) {
            return Ok(p);
        }
        let cache = state.sessions.clone();
        db::run(&state.pool, move |conn| {
            session_principal(conn, &cache, &claims.sid, &claims.sub, now)
        })
        .await
    })
}

/// Authenticates API-client tokens before the handler runs (people's tokens are left to
/// the extractor), so that the `Principal` extractor can decide at once whether the
/// client may call the matched route: a client refused a route gets 403 whatever else is
/// wrong with its request, not an answer about the request body.
pub async fn authenticate_clients(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let is_client = bearer(req.request())
        .is_some_and(|t| t.starts_with(crate::auth::client_tokens::TOKEN_PREFIX));
    if is_client {
        // A failure is the extractor's to report (401), if the route needs a principal.
        if let Ok(me) = authenticate(req.request()).await {
            req.extensions_mut().insert(me);
        }
    }
    next.call(req).await
}

/// The principal of a request to a handler. Who may call the operation is decided here,
/// from the route the router matched (`match_pattern`), never from the path as sent: an
/// API client may call only the operations listed in `clients::CLIENT_ROUTES`.
impl FromRequest for Principal {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Principal, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let method = req.method().clone();
        let pattern = req.match_pattern();
        let me = authenticate(req);
        let req = req.clone();
        Box::pin(async move {
            let me = me.await?;
            req.extensions_mut().insert(if me.is_client() {
                crate::http::CallerKind::Client
            } else {
                crate::http::CallerKind::Person
            });
            crate::auth::client_tokens::route_policy(&method, pattern.as_deref(), &me)?;
            Ok(me)
        })
    }
}
