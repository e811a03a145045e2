//! Establishing who is calling: sessions and access tokens, checked per request (with a
//! short cache), filling a `Principal`. The `Principal` type and its role checks sit
//! below the features in `crate::principal` (the request context and the idempotency
//! layer name it); they are re-exported here.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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
    load_roles, org_chain, org_subtrees, ClientPrincipal, Principal, Role, RoleGrant,
};

// ---- Session cache -------------------------------------------------------------------
//
// Every authenticated request needs its session checked and its roles loaded. A live
// session is remembered in process for at most `SESSION_CACHE_TTL`, keyed by session id.
// Whatever ends a session or changes what a principal holds (logout, revocation,
// password change, a new role, a changed e-mail address) calls `auth_changed` (inside a
// request's write: `changed_in`, which also asks its context to call it again after the
// commit), which empties the cache on this node at once. Other nodes sharing a
// PostgreSQL database notice within the TTL.
// Only positive answers are cached: an unknown or ended session always asks the database.

/// How long another node may still accept a session that was ended elsewhere.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(2);
const SESSION_CACHE_MAX: usize = 50_000;

/// Bumped by every change to sessions, users or roles; cached entries of an older epoch
/// are not used.
static AUTH_EPOCH: AtomicU64 = AtomicU64::new(0);

struct Cached {
    principal: Principal,
    session_expires: chrono::NaiveDateTime,
    epoch: u64,
    at: Instant,
}

fn session_cache() -> &'static Mutex<HashMap<String, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Cached>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Sessions, users or roles changed: forget every cached principal. Call it after the
/// change is executed; inside a request's write, call [`changed_in`] instead.
pub fn auth_changed() {
    AUTH_EPOCH.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut cache) = session_cache().lock() {
        cache.clear();
    }
}

/// A request's write changed sessions, users or roles: forget cached principals now, and
/// again once the transaction has ended, so that no request reading the database
/// between the change and its commit keeps (caches) the state from before it.
pub fn changed_in<C: Send + Sync + 'static>(ctx: &crate::context::Context<C>) {
    auth_changed();
    ctx.after_commit(auth_changed);
}

fn cached(sid: &str, sub: &str, now: chrono::NaiveDateTime) -> Option<Principal> {
    let epoch = AUTH_EPOCH.load(Ordering::SeqCst);
    let cache = session_cache().lock().ok()?;
    let hit = cache.get(sid)?;
    (hit.epoch == epoch
        && hit.at.elapsed() < SESSION_CACHE_TTL
        && hit.session_expires > now
        && hit.principal.user_id == sub)
        .then(|| hit.principal.clone())
}

fn remember(p: &Principal, session_expires: chrono::NaiveDateTime, epoch: u64) {
    let Ok(mut cache) = session_cache().lock() else {
        return;
    };
    if cache.len() >= SESSION_CACHE_MAX {
        cache.retain(|_, c| c.at.elapsed() < SESSION_CACHE_TTL);
        if cache.len() >= SESSION_CACHE_MAX {
            cache.clear();
        }
    }
    // Not if something changed while this request read the database.
    if AUTH_EPOCH.load(Ordering::SeqCst) == epoch {
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
    sid: &str,
    sub: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Principal, AppError> {
    let now = to_db(now);
    if let Some(p) = cached(sid, sub, now) {
        return Ok(p);
    }
    let epoch = AUTH_EPOCH.load(Ordering::SeqCst);
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
    remember(&p, expires, epoch);
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
        if let Some(p) = cached(&claims.sid, &claims.sub, to_db(now)) {
            return Ok(p);
        }
        db::run(&state.pool, move |conn| {
            session_principal(conn, &claims.sid, &claims.sub, now)
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
