//! Who is calling, and what they may do. Every authorisation decision goes through
//! `Principal`, so later capabilities (per-trainee assignments, API clients) extend it
//! here rather than in handlers.

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
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::clock::to_db;
use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::ids::{SessionId, UserId};
use crate::schema::{organisations, sessions, user_roles, users};

/// A role held at an organisation (and, through the tree, below it).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// BT/ST doctor in training (BT-/ST-läkare).
    Trainee,
    /// Main or placement supervisor (huvudhandledare / tjänstgöringshandledare).
    Supervisor,
    /// Director of studies (studierektor).
    DirectorOfStudies,
    /// Administrator (e.g. the BT unit).
    Administrator,
    /// External assessor for the final assessment (extern bedömare).
    ExternalAssessor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Trainee => "trainee",
            Role::Supervisor => "supervisor",
            Role::DirectorOfStudies => "director_of_studies",
            Role::Administrator => "administrator",
            Role::ExternalAssessor => "external_assessor",
        }
    }

    /// A stored or typed code; `None` for one this build does not know.
    pub fn from_code(s: &str) -> Option<Role> {
        Self::parse(s)
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "trainee" => Role::Trainee,
            "supervisor" => Role::Supervisor,
            "director_of_studies" => Role::DirectorOfStudies,
            "administrator" => Role::Administrator,
            "external_assessor" => Role::ExternalAssessor,
            _ => return None,
        })
    }
}

crate::text_enum_sql!(Role);

#[derive(Debug, Clone, Serialize, ToSchema, Queryable, Selectable)]
#[diesel(table_name = user_roles, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct RoleGrant {
    pub role: Role,
    pub organisation_id: String,
}

/// An API client (a learning platform) calling with a client-credentials access token.
#[derive(Debug, Clone)]
pub struct ClientPrincipal {
    pub client_id: String,
    /// The client sees this organisation's subtree, nothing else.
    pub organisation_id: String,
    pub name: String,
    /// The scopes of the access token presented.
    pub scopes: Vec<String>,
}

/// An authenticated user with a completed second factor, or an API client. For a client,
/// `user_id` is `client:<id>` (what the audit log records as the actor), `roles` is
/// empty and `client` is set.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: SessionId,
    /// How this session passed its second factor (`totp`, `email_code`,
    /// `recovery_code`, `remembered_device`); recorded with signatures.
    pub second_factor: String,
    pub email: String,
    pub roles: Vec<RoleGrant>,
    /// Set when the caller is an API client rather than a person.
    pub client: Option<ClientPrincipal>,
}

impl Principal {
    /// Is the caller an API client (not a person)?
    pub fn is_client(&self) -> bool {
        self.client.is_some()
    }

    /// For an API client: does its token carry `scope`? People are not limited by scopes.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.client
            .as_ref()
            .is_none_or(|c| c.scopes.iter().any(|s| s == scope))
    }

    /// An API client's token must carry `scope` (403 `insufficient-scope` otherwise).
    pub fn require_scope(&self, scope: &str) -> Result<(), AppError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(AppError::InsufficientScope(format!(
                "this needs an access token with the scope {scope}"
            )))
        }
    }

    /// Only people may do this (sign, manage their profile, ...): API clients get 403.
    pub fn require_person(&self) -> Result<(), AppError> {
        if self.is_client() {
            Err(AppError::Forbidden(
                "API clients may not use this endpoint; it is for people".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Does the caller hold `role` at `org_id` or at one of its ancestors?
    pub fn has_role_over(
        &self,
        conn: &mut DbConn,
        role: Role,
        org_id: &str,
    ) -> Result<bool, AppError> {
        if !self.roles.iter().any(|g| g.role == role) {
            return Ok(false);
        }
        let chain = org_chain(conn, org_id)?;
        Ok(self
            .roles
            .iter()
            .any(|g| g.role == role && chain.iter().any(|o| o == &g.organisation_id)))
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|g| g.role == role)
    }

    /// Organisations where the caller holds one of `roles` (roots of the subtrees they see).
    pub fn orgs_with(&self, roles: &[Role]) -> Vec<String> {
        self.roles
            .iter()
            .filter(|g| roles.contains(&g.role))
            .map(|g| g.organisation_id.clone())
            .collect()
    }

    /// May the caller invite someone as `role` to `org_id`? Administrators invite any
    /// role in their subtree; directors of studies invite the people of a training
    /// programme (trainees, supervisors, external assessors).
    pub fn can_invite(
        &self,
        conn: &mut DbConn,
        role: Role,
        org_id: &str,
    ) -> Result<bool, AppError> {
        if self.has_role_over(conn, Role::Administrator, org_id)? {
            return Ok(true);
        }
        let director_may = matches!(
            role,
            Role::Trainee | Role::Supervisor | Role::ExternalAssessor
        );
        Ok(director_may && self.has_role_over(conn, Role::DirectorOfStudies, org_id)?)
    }

    pub fn require(allowed: bool) -> Result<(), AppError> {
        if allowed {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "your roles do not allow this action".into(),
            ))
        }
    }
}

/// `org_id` followed by its ancestors up to the region. Trees are shallow (region,
/// care provider, unit), so a walk is cheaper than a recursive query on both backends.
pub fn org_chain(conn: &mut DbConn, org_id: &str) -> Result<Vec<String>, AppError> {
    let mut chain = Vec::new();
    let mut next = Some(org_id.to_string());
    while let Some(id) = next {
        if chain.contains(&id) || chain.len() > 16 {
            break;
        }
        let parent: Option<Option<String>> = organisations::table
            .find(&id)
            .select(organisations::parent_id)
            .first(conn)
            .optional()?;
        match parent {
            None => break,
            Some(p) => {
                chain.push(id);
                next = p;
            }
        }
    }
    Ok(chain)
}

/// All organisations in the subtrees rooted at `roots` (the roots included).
pub fn org_subtrees(conn: &mut DbConn, roots: &[String]) -> Result<Vec<String>, AppError> {
    let mut all: Vec<String> = roots.to_vec();
    let mut frontier = roots.to_vec();
    while !frontier.is_empty() && all.len() < 100_000 {
        let children: Vec<String> = organisations::table
            .filter(organisations::parent_id.eq_any(&frontier))
            .select(organisations::id)
            .load(conn)?;
        frontier = children.into_iter().filter(|c| !all.contains(c)).collect();
        all.extend(frontier.iter().cloned());
    }
    Ok(all)
}

pub fn load_roles(conn: &mut DbConn, user_id: &UserId) -> Result<Vec<RoleGrant>, AppError> {
    // A role this build does not know is an error, not a role quietly dropped.
    Ok(crate::on_backend!(conn, |c| user_roles::table
        .filter(user_roles::user_id.eq(user_id))
        .select(RoleGrant::as_select())
        .order(user_roles::created_at)
        .load(c))?)
}

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
