//! API-client access tokens as the authentication layer sees them: the token prefix,
//! the scopes, the principal of a token, and which operations a client may call with
//! which scope. Client management (register, rotate, revoke) and the OAuth token
//! endpoint that issues these tokens are `integrations::clients`' (it imports this; auth
//! imports nothing from integrations).

use actix_web::http::Method;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::auth::crypto::sha256_hex;
use crate::auth::principal::{ClientPrincipal, Principal};
use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{ClientId, SessionId};
use crate::schema::{api_client_tokens, api_clients};

/// Access tokens of API clients start with this, so they are told apart from JWTs.
pub const TOKEN_PREFIX: &str = "epc_";

pub const SCOPE_ACTIVITIES_WRITE: &str = "activities:write";
pub const SCOPE_PROGRESS_READ: &str = "progress:read";
pub const SCOPE_CATALOG_READ: &str = "catalog:read";
/// Every scope a client may hold.
pub const SCOPES: [&str; 3] = [
    SCOPE_ACTIVITIES_WRITE,
    SCOPE_PROGRESS_READ,
    SCOPE_CATALOG_READ,
];

/// Scopes are stored space-separated, as OAuth sends them.
pub fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// A live token and its client, as [`authenticate`] reads them.
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_client_tokens, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct LiveToken {
    #[diesel(select_expression = api_client_tokens::id)]
    token_id: SessionId,
    #[diesel(select_expression = api_clients::id)]
    client_id: ClientId,
    #[diesel(select_expression = api_clients::organisation_id)]
    organisation_id: String,
    #[diesel(select_expression = api_client_tokens::scopes)]
    scopes: String,
    #[diesel(select_expression = api_clients::name)]
    name: String,
}

/// The principal of a client access token: unknown, expired or revoked tokens, and
/// tokens of revoked clients, are 401.
pub fn authenticate(
    conn: &mut DbConn,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Principal, AppError> {
    let found: Option<LiveToken> = api_client_tokens::table
        .inner_join(api_clients::table)
        .filter(api_client_tokens::token_hash.eq(sha256_hex(token)))
        .filter(api_client_tokens::revoked_at.is_null())
        .filter(api_client_tokens::expires_at.gt(to_db(now)))
        .filter(api_clients::revoked_at.is_null())
        .select(LiveToken::as_select())
        .first(conn)
        .optional()?;
    let t = found.ok_or_else(|| {
        AppError::Unauthenticated(
            "the access token is unknown, expired or revoked; get a new one".into(),
        )
    })?;
    Ok(Principal {
        user_id: crate::ids::UserId::new(format!("client:{}", t.client_id)),
        session_id: crate::ids::SessionId::new(t.token_id.into_inner()),
        second_factor: "client_credentials".into(),
        email: String::new(),
        roles: Vec::new(),
        client: Some(ClientPrincipal {
            client_id: t.client_id.into_inner(),
            organisation_id: t.organisation_id,
            name: t.name,
            scopes: split_scopes(&t.scopes),
        }),
    })
}

/// The operations API clients may call, by method and route pattern (as the router
/// matched it, so `/dossi%65r` is the dossier route), with the scope each needs.
/// Everything else is for people and answers 403, whatever the token's scopes. Deny by
/// default: a new endpoint is closed to clients until it is listed here. The signed
/// dossier is not listed: it is a person's to pull (and the pull is audited to them).
pub const CLIENT_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/activities/{id}", SCOPE_PROGRESS_READ),
    ("GET", "/api/v1/assessments/{id}", SCOPE_PROGRESS_READ),
    ("GET", "/api/v1/cohort-overview", SCOPE_PROGRESS_READ),
    ("GET", "/api/v1/enrolments", SCOPE_PROGRESS_READ),
    ("GET", "/api/v1/enrolments/{id}", SCOPE_PROGRESS_READ),
    (
        "GET",
        "/api/v1/enrolments/{id}/activities",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/assessments",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/changes",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/final-assessments",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/final-check-ins",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/handover-talks",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/progress",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/progress/chart",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/study-plan-goals",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/summary-assessments",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/supervision-sessions",
        SCOPE_PROGRESS_READ,
    ),
    (
        "GET",
        "/api/v1/enrolments/{id}/time-served",
        SCOPE_PROGRESS_READ,
    ),
    ("GET", "/api/v1/assessment-instruments", SCOPE_CATALOG_READ),
    ("GET", "/api/v1/programme-templates", SCOPE_CATALOG_READ),
    (
        "GET",
        "/api/v1/programme-templates/{id}",
        SCOPE_CATALOG_READ,
    ),
    (
        "GET",
        "/api/v1/programme-templates/{id}/versions",
        SCOPE_CATALOG_READ,
    ),
    (
        "GET",
        "/api/v1/programme-templates/{id}/versions/{version}",
        SCOPE_CATALOG_READ,
    ),
    ("GET", "/api/v1/regulations", SCOPE_CATALOG_READ),
    ("GET", "/api/v1/regulations/{id}", SCOPE_CATALOG_READ),
    ("GET", "/api/v1/regulations/{id}/delmal", SCOPE_CATALOG_READ),
    ("POST", "/api/v1/xapi/statements", SCOPE_ACTIVITIES_WRITE),
    ("PUT", "/api/v1/xapi/statements", SCOPE_ACTIVITIES_WRITE),
    ("GET", "/api/v1/xapi/statements", SCOPE_ACTIVITIES_WRITE),
];

/// The scope an API client needs for `method` on the route `pattern`; `None`: the
/// operation is for people only.
pub fn required_scope(method: &Method, pattern: &str) -> Option<&'static str> {
    // HEAD is answered like GET.
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    CLIENT_ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == pattern)
        .map(|(_, _, scope)| *scope)
}

/// Applies [`required_scope`] to a client principal (people pass unchanged). `pattern`
/// is the route the router matched (`HttpRequest::match_pattern`), never the path as
/// sent; without one, a client is refused.
pub fn route_policy(
    method: &Method,
    pattern: Option<&str>,
    me: &Principal,
) -> Result<(), AppError> {
    if !me.is_client() {
        return Ok(());
    }
    match pattern.and_then(|p| required_scope(method, p)) {
        Some(scope) => me.require_scope(scope),
        None => me.require_person(),
    }
}
