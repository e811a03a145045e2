//! Integrations with learning platforms (issue 6): API clients and the OAuth 2.0
//! client-credentials grant, xAPI statement ingestion, webhooks (durable outbox and a
//! background worker) and bulk import of a cohort.
//!
//! Administrators of an organisation manage its clients, mappings, subscriptions and
//! imports; nobody else sees them (404 for other regions' records).

pub mod clients;
pub mod imports;
pub mod webhooks;
pub mod xapi;

use actix_web::http::{header, StatusCode};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::audit::{self, Event};
use crate::auth::principal::{org_subtrees, Principal, Role};
use crate::db::{self, DbConn};
use crate::error::{AppError, Problem, PROBLEM_BASE, PROBLEM_JSON};
use crate::http::{check_if_match, if_match, media_type, read_body, with_etag, Page, PageParams};
use clients::{ApiClient, ApiClientCredentials, NewApiClient, TokenResponse};
use imports::{EnrolmentImportResult, EnrolmentImportRow, UserImportResult, UserImportRow};
use webhooks::{
    NewWebhookSubscription, WebhookDelivery, WebhookSubscription, WebhookSubscriptionPatch,
    WebhookSubscriptionWithSecret,
};
use xapi::{
    AccountLink, ActivityMapping, IngestReport, NewAccountLink, NewActivityMapping, XapiStatement,
};

const PROBLEM: &str = "application/problem+json";

// ---- Shared helpers ----------------------------------------------------------------------

/// Appends an audit entry for a write by `me` (a person, or `client:<id>` for API clients).
pub(crate) fn audit_write(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    me: &Principal,
    action: &str,
    entity: &str,
    entity_id: &str,
    data: &serde_json::Value,
) -> Result<(), AppError> {
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client: me.client.as_ref().map(|c| c.name.as_str()),
            action,
            entity,
            entity_id,
            enrolment_id: None,
            data,
        },
    )
}

/// A person administering `org` (or one of its ancestors).
pub(crate) fn require_admin_over(
    conn: &mut DbConn,
    me: &Principal,
    org: &str,
) -> Result<(), AppError> {
    me.require_person()?;
    Principal::require(me.has_role_over(conn, Role::Administrator, org)?)
}

/// Organisations whose integrations the caller manages: their administrator subtrees.
pub(crate) fn visible_orgs(conn: &mut DbConn, me: &Principal) -> Result<Vec<String>, AppError> {
    if me.is_client() {
        return Ok(Vec::new());
    }
    org_subtrees(conn, &me.orgs_with(&[Role::Administrator]))
}

/// A cursor `<RFC 3339 time>|<id>`.
pub(crate) fn parse_time_cursor(c: &str) -> Result<(DateTime<Utc>, String), AppError> {
    let bad = || AppError::validation("cursor", "is not a cursor from this API");
    let (t, id) = c.split_once('|').ok_or_else(bad)?;
    let t = DateTime::parse_from_rfc3339(t).map_err(|_| bad())?;
    Ok((t.with_timezone(&Utc), id.to_string()))
}

/// Integrations are managed by administrators (people).
fn require_admin(me: &Principal) -> Result<(), AppError> {
    me.require_person()?;
    Principal::require(me.has_role(Role::Administrator))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl ListParams {
    fn page(self) -> Result<(i64, Option<String>), AppError> {
        let p = PageParams {
            limit: self.limit,
            cursor: self.cursor,
        };
        Ok((p.limit()?, p.after()?))
    }
}

// ---- OAuth 2.0 token endpoint --------------------------------------------------------------

/// `application/x-www-form-urlencoded` body of a token request (RFC 6749 section 4.4.2).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Always `client_credentials`.
    #[schema(example = "client_credentials")]
    pub grant_type: Option<String>,
    /// Space-separated scopes; default: all the client's scopes.
    #[schema(example = "activities:write progress:read")]
    pub scope: Option<String>,
    /// When not sent with HTTP Basic authentication.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let body = json!({
        "type": format!("{PROBLEM_BASE}oauth-{}", error.replace('_', "-")),
        "title": "OAuth error",
        "status": status.as_u16(),
        "detail": description,
        "error": error,
        "error_description": description,
    });
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"eportfolio\""));
    }
    res.body(body.to_string())
}

fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Get an access token (OAuth 2.0 client credentials)
///
/// RFC 6749 section 4.4: `grant_type=client_credentials`, optional `scope`, the client
/// authenticated with HTTP Basic (`client_id:client_secret`) or with `client_id` and
/// `client_secret` in the form. Errors carry the RFC's `error` and `error_description`
/// members besides the problem fields.
#[utoipa::path(
    tag = "integrations",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "An access token", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type` or `invalid_scope`", body = Problem, content_type = PROBLEM),
        (status = 401, description = "`invalid_client`: unknown client, wrong or rotated secret, revoked client", body = Problem, content_type = PROBLEM),
    ),
    security(())
)]
#[post("/oauth/token")]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body = read_body(payload, 16 * 1024).await?;
    let form: TokenRequest = match media_type(&req).as_str() {
        "application/x-www-form-urlencoded" => {
            let text = String::from_utf8_lossy(&body);
            match web::Query::<TokenRequest>::from_query(&text) {
                Ok(q) => q.into_inner(),
                Err(e) => {
                    return Ok(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        &format!("the form cannot be read: {e}"),
                    ))
                }
            }
        }
        other => {
            return Err(AppError::UnsupportedMediaType(format!(
                "send application/x-www-form-urlencoded, not {other:?}"
            )))
        }
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return Ok(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        ));
    }
    let (id, secret) =
        match (basic_credentials(&req), form.client_id, form.client_secret) {
            (Some(c), None, None) => c,
            (None, Some(id), Some(secret)) => (id, secret),
            _ => return Ok(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "authenticate the client with HTTP Basic or client_id and client_secret (one way)",
            )),
        };
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let scope = form.scope;
    let result = db::write(&state.pool, move |c| {
        clients::issue_token(c, &cfg, now, &id, &secret, scope.as_deref())
    })
    .await?;
    Ok(match result {
        Ok(t) => crate::idempotency::secret(
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::PRAGMA, "no-cache"))
                .json(t),
        ),
        Err(e) if e.error == "invalid_client" => {
            oauth_error(StatusCode::UNAUTHORIZED, e.error, &e.description)
        }
        Err(e) => oauth_error(StatusCode::BAD_REQUEST, e.error, &e.description),
    })
}

// ---- API clients ---------------------------------------------------------------------------

/// Register an API client
///
/// Administrators of the organisation. The answer holds the `client_secret`, shown this
/// once (only a hash is kept). The client sees the organisation's subtree only.
#[utoipa::path(
    tag = "integrations",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewApiClient, example = json!({
        "organisation_id": "…", "name": "Lärplattformen", "scopes": ["activities:write", "progress:read", "catalog:read"]
    })),
    responses((status = 201, description = "Registered; the secret is shown once", body = ApiClientCredentials)),
    security(("bearer" = []))
)]
#[post("/api-clients")]
pub async fn create_client(
    state: web::Data<AppState>,
    me: Principal,
    body: web::Json<NewApiClient>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let c = db::write(&state.pool, move |c| {
        clients::create_client(c, now, &me, body.into_inner())
    })
    .await?;
    // The secret is shown once: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(
        HttpResponse::Created()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(c),
    ))
}

/// List API clients of my organisations
#[utoipa::path(
    tag = "integrations",
    params(ListParams),
    responses((status = 200, description = "A page of clients", body = Page<ApiClient>)),
    security(("bearer" = []))
)]
#[get("/api-clients")]
pub async fn list_clients(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, AppError> {
    require_admin(&me)?;
    let (limit, after) = query.into_inner().page()?;
    let rows = db::run(&state.pool, move |c| {
        clients::list_clients(c, &me, after.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |c| c.id.clone())))
}

/// Get an API client
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The client", body = ApiClient, headers(("ETag" = String))),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/api-clients/{id}")]
pub async fn get_client(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let c = db::run(&state.pool, move |c| clients::visible_client(c, &me, &id)).await?;
    Ok(with_etag(StatusCode::OK, c.etag(), &c))
}

/// Rotate an API client's secret
///
/// A new secret, shown once; the old secret and every token issued with it stop working
/// at once.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The new credentials", body = ApiClientCredentials),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/api-clients/{id}/rotate-secret")]
pub async fn rotate_client_secret(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let c = db::write(&state.pool, move |c| {
        clients::rotate_secret(c, now, &me, &id)
    })
    .await?;
    // The secret is shown once: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(c),
    ))
}

/// Revoke an API client
///
/// For good: its tokens stop working at once and it gets no new ones.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Revoked", body = ApiClient),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/api-clients/{id}/revoke")]
pub async fn revoke_client(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let c = db::write(&state.pool, move |c| {
        clients::revoke_client(c, now, &me, &id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(c))
}

// ---- xAPI ----------------------------------------------------------------------------------

/// Send xAPI statements (learning record stores, platforms)
///
/// API clients with the scope `activities:write`. The body is one xAPI 1.0.3 statement or
/// an array of them; send `X-Experience-API-Version: 1.0.3`. Each statement gets its own
/// outcome: `created` (a learning activity of the trainee), `duplicate` (that id was
/// received from this organisation's clients before with the same content), `conflict`
/// (same id, other content; ids are unique per organisation), `unmatched` (kept for an
/// administrator: no trainee enrolled in the client's organisation is the learner, or an
/// unmapped xAPI activity), `ignored` (a verb that records no learning) or `rejected`
/// (malformed, with the reason). At most 500 per request.
#[utoipa::path(
    tag = "integrations",
    params(
        ("X-Experience-API-Version" = String, Header, description = "`1.0.3` (any 1.0.x)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; statement ids already make resends safe"),
    ),
    request_body(content = serde_json::Value, content_type = "application/json", example = json!([{
        "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
        "actor": {"objectType": "Agent", "mbox": "mailto:bt.lakare@regionstockholm.se"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": "https://lms.regionstockholm.se/courses/forsakringsmedicin"},
        "timestamp": "2026-11-20T13:00:00Z"
    }])),
    responses(
        (status = 200, description = "Each statement's outcome", body = IngestReport, headers(("X-Experience-API-Version" = String))),
    ),
    security(("bearer" = []))
)]
#[post("/xapi/statements")]
pub async fn post_statements(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let version = req
        .headers()
        .get("x-experience-api-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !version.starts_with("1.0") {
        return Err(AppError::Malformed(
            "send the header X-Experience-API-Version: 1.0.3".into(),
        ));
    }
    if media_type(&req) != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "send statements as application/json".into(),
        ));
    }
    let body = read_body(payload, state.config.max_json_body.max(1024 * 1024)).await?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::Malformed(format!("the body is not JSON: {e}")))?;
    let statements = match value {
        serde_json::Value::Array(v) => v,
        v @ serde_json::Value::Object(_) => vec![v],
        _ => {
            return Err(AppError::Malformed(
                "send a statement object or an array of statements".into(),
            ))
        }
    };
    if statements.len() > xapi::MAX_BATCH {
        return Err(AppError::validation(
            "statements",
            "at most 500 statements per request",
        ));
    }
    let now = state.clock.now();
    let report = db::write(&state.pool, move |c| xapi::ingest(c, now, &me, &statements)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("X-Experience-API-Version", "1.0.3"))
        .json(report))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementFilter {
    /// `unmatched`, `created` or `dismissed`.
    pub status: Option<String>,
    pub client_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List received xAPI statements
///
/// Administrators: statements received by the clients of their organisations, newest
/// first. `status=unmatched` is the work list.
#[utoipa::path(
    tag = "integrations",
    params(StatementFilter),
    responses((status = 200, description = "A page of statements", body = Page<XapiStatement>)),
    security(("bearer" = []))
)]
#[get("/xapi/statements")]
pub async fn list_statements(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<StatementFilter>,
) -> Result<HttpResponse, AppError> {
    require_admin(&me)?;
    let q = query.into_inner();
    if let Some(s) = &q.status {
        if !["unmatched", "created", "dismissed"].contains(&s.as_str()) {
            return Err(AppError::validation(
                "status",
                "unmatched, created or dismissed",
            ));
        }
    }
    let (limit, after) = ListParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let rows = db::run(&state.pool, move |c| {
        xapi::list_statements(
            c,
            &me,
            q.status.as_deref(),
            q.client_id.as_deref(),
            after.as_deref(),
            limit,
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |s| {
        format!("{}|{}", s.received_at.to_rfc3339(), s.id)
    })))
}

/// Which organisation's statement is meant, when the clients of several organisations
/// the caller administers sent the same statement id (ids are unique per organisation).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementOrganisation {
    pub organisation_id: Option<String>,
}

/// Get a received xAPI statement
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path, description = "The statement id"), StatementOrganisation),
    responses(
        (status = 200, description = "The statement and what became of it", body = XapiStatement),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Several of your organisations have a statement with this id: name one", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/xapi/statements/{id}")]
pub async fn get_statement(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<StatementOrganisation>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let org = query.into_inner().organisation_id;
    let s = db::run(&state.pool, move |c| {
        xapi::visible_statement(c, &me, &id, org.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Resolve an unmatched statement
///
/// Matches it again (after adding an activity mapping or an account link) and creates
/// the learning activity; 422 with the reason when it still does not match.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path, description = "The statement id"), StatementOrganisation),
    responses(
        (status = 200, description = "Resolved: the activity was created", body = XapiStatement),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Not unmatched (already created or dismissed), or the id is several of your organisations' (name one)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Still unmatched; the detail says why", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/xapi/statements/{id}/resolve")]
pub async fn resolve_statement(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<StatementOrganisation>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let org = query.into_inner().organisation_id;
    let now = state.clock.now();
    let s = db::write(&state.pool, move |c| {
        xapi::resolve(c, now, &me, &id, org.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Dismiss an unmatched statement
///
/// It stays stored, marked `dismissed`, and leaves the work list.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path, description = "The statement id"), StatementOrganisation),
    responses(
        (status = 200, description = "Dismissed", body = XapiStatement),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
        (status = 409, description = "Not unmatched, or the id is several of your organisations' (name one)", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/xapi/statements/{id}/dismiss")]
pub async fn dismiss_statement(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<StatementOrganisation>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let org = query.into_inner().organisation_id;
    let now = state.clock.now();
    let s = db::write(&state.pool, move |c| {
        xapi::dismiss(c, now, &me, &id, org.as_deref())
    })
    .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// Map an xAPI activity to a learning activity
///
/// Administrators. Statements about `xapi_activity_id` from clients of this
/// organisation (or below) become activities of this kind and title, linked to these
/// delmål (those of each trainee's regulation).
#[utoipa::path(
    tag = "integrations",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewActivityMapping, example = json!({
        "organisation_id": "…", "xapi_activity_id": "https://lms.regionstockholm.se/courses/forsakringsmedicin",
        "kind": "course", "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]
    })),
    responses((status = 201, description = "Mapped", body = ActivityMapping)),
    security(("bearer" = []))
)]
#[post("/xapi/activity-mappings")]
pub async fn create_mapping(
    state: web::Data<AppState>,
    me: Principal,
    body: web::Json<NewActivityMapping>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let m = db::write(&state.pool, move |c| {
        xapi::create_mapping(c, now, &me, body.into_inner())
    })
    .await?;
    Ok(HttpResponse::Created().json(m))
}

/// List xAPI activity mappings of my organisations
#[utoipa::path(
    tag = "integrations",
    params(ListParams),
    responses((status = 200, description = "A page of mappings", body = Page<ActivityMapping>)),
    security(("bearer" = []))
)]
#[get("/xapi/activity-mappings")]
pub async fn list_mappings(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, AppError> {
    require_admin(&me)?;
    let (limit, after) = query.into_inner().page()?;
    let rows = db::run(&state.pool, move |c| {
        xapi::list_mappings(c, &me, after.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |m| m.id.clone())))
}

/// Delete an xAPI activity mapping
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted (activities created through it stay)"),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/xapi/activity-mappings/{id}")]
pub async fn delete_mapping(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    db::write(&state.pool, move |c| xapi::delete_mapping(c, now, &me, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Link an xAPI account to a user
///
/// Administrators. Statements whose `actor.account` is `home_page` + `name` are then
/// the user's (for platforms that do not send e-mail addresses).
#[utoipa::path(
    tag = "integrations",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewAccountLink, example = json!({
        "organisation_id": "…", "home_page": "https://lms.regionstockholm.se", "name": "u12345",
        "email": "bt.lakare@regionstockholm.se"
    })),
    responses((status = 201, description = "Linked", body = AccountLink)),
    security(("bearer" = []))
)]
#[post("/xapi/account-links")]
pub async fn create_link(
    state: web::Data<AppState>,
    me: Principal,
    body: web::Json<NewAccountLink>,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let l = db::write(&state.pool, move |c| {
        xapi::create_link(c, now, &me, body.into_inner())
    })
    .await?;
    Ok(HttpResponse::Created().json(l))
}

/// List xAPI account links of my organisations
#[utoipa::path(
    tag = "integrations",
    params(ListParams),
    responses((status = 200, description = "A page of links", body = Page<AccountLink>)),
    security(("bearer" = []))
)]
#[get("/xapi/account-links")]
pub async fn list_links(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, AppError> {
    require_admin(&me)?;
    let (limit, after) = query.into_inner().page()?;
    let rows = db::run(&state.pool, move |c| {
        xapi::list_links(c, &me, after.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |l| l.id.clone())))
}

/// Delete an xAPI account link
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/xapi/account-links/{id}")]
pub async fn delete_link(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    db::write(&state.pool, move |c| xapi::delete_link(c, now, &me, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- Webhooks ------------------------------------------------------------------------------

/// Subscribe a URL to events
///
/// Administrators of the organisation. Events of the organisation and every unit below
/// it are delivered as signed POSTs (see the README: `Eportfolio-Signature`). The answer
/// holds the signing `secret`, shown this once.
#[utoipa::path(
    tag = "integrations",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried create safe")),
    request_body(content = NewWebhookSubscription, example = json!({
        "organisation_id": "…", "url": "https://lms.example.org/hooks/eportfolio",
        "events": ["activity.created", "assessment.signed", "final_assessment.decided"]
    })),
    responses((status = 201, description = "Subscribed; the secret is shown once", body = WebhookSubscriptionWithSecret)),
    security(("bearer" = []))
)]
#[post("/webhook-subscriptions")]
pub async fn create_subscription(
    state: web::Data<AppState>,
    me: Principal,
    body: web::Json<NewWebhookSubscription>,
) -> Result<HttpResponse, AppError> {
    require_admin(&me)?;
    check_webhook_destination(&state, &body.url).await?;
    let now = state.clock.now();
    let s = db::write(&state.pool, move |c| {
        webhooks::create_subscription(c, now, &me, body.into_inner())
    })
    .await?;
    // The secret is shown once: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(
        HttpResponse::Created()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(s),
    ))
}

/// Refuses (422 on `url`) a webhook URL that is not https (unless allowed) or whose host
/// resolves to an address that is not public (unless in an allowed network). Resolved off
/// the executor and before the write transaction, which a slow DNS must not hold open.
async fn check_webhook_destination(state: &web::Data<AppState>, url: &str) -> Result<(), AppError> {
    let policy = webhooks::DestinationPolicy::from_config(&state.config);
    let url = url.to_string();
    web::block(move || webhooks::check_destination(&url, &policy)).await?
}

/// List webhook subscriptions of my organisations
#[utoipa::path(
    tag = "integrations",
    params(ListParams),
    responses((status = 200, description = "A page of subscriptions", body = Page<WebhookSubscription>)),
    security(("bearer" = []))
)]
#[get("/webhook-subscriptions")]
pub async fn list_subscriptions(
    state: web::Data<AppState>,
    me: Principal,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, AppError> {
    require_admin(&me)?;
    let (limit, after) = query.into_inner().page()?;
    let rows = db::run(&state.pool, move |c| {
        webhooks::list_subscriptions(c, &me, after.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |s| s.id.clone())))
}

/// Get a webhook subscription
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The subscription", body = WebhookSubscription, headers(("ETag" = String))),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/webhook-subscriptions/{id}")]
pub async fn get_subscription(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let s = db::run(&state.pool, move |c| {
        webhooks::visible_subscription(c, &me, &id)
    })
    .await?;
    Ok(with_etag(StatusCode::OK, s.etag(), &s))
}

/// Update a webhook subscription (partial)
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag you read")),
    request_body = WebhookSubscriptionPatch,
    responses(
        (status = 200, description = "Updated", body = WebhookSubscription),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
        (status = 412, description = "Changed since you read it", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[patch("/webhook-subscriptions/{id}")]
pub async fn patch_subscription(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    path: web::Path<String>,
    body: web::Json<WebhookSubscriptionPatch>,
) -> Result<HttpResponse, AppError> {
    if let Some(url) = &body.url {
        require_admin(&me)?;
        check_webhook_destination(&state, url).await?;
    }
    let id = path.into_inner();
    let now = state.clock.now();
    let expected = if_match(&req);
    let s = db::write(&state.pool, move |c| {
        webhooks::update_subscription(
            c,
            now,
            &me,
            &id,
            |t| check_if_match(expected.as_deref(), t),
            body.into_inner(),
        )
    })
    .await?;
    Ok(with_etag(StatusCode::OK, s.etag(), &s))
}

/// Delete a webhook subscription
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 204, description = "Deleted; pending deliveries are dropped"),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[delete("/webhook-subscriptions/{id}")]
pub async fn delete_subscription(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    db::write(&state.pool, move |c| {
        webhooks::delete_subscription(c, now, &me, &id)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate a webhook subscription's signing secret
///
/// The new secret is shown once and signs every delivery from now on, retries included.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The subscription with its new secret", body = WebhookSubscriptionWithSecret),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/webhook-subscriptions/{id}/rotate-secret")]
pub async fn rotate_subscription_secret(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let s = db::write(&state.pool, move |c| {
        webhooks::rotate_subscription_secret(c, now, &me, &id)
    })
    .await?;
    // The secret is shown once: never stored for an idempotent replay.
    Ok(crate::idempotency::secret(
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(s),
    ))
}

/// Send a test event to a subscription
///
/// Queues a `webhook.test` delivery to this subscription only.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 201, description = "Queued", body = WebhookDelivery),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/webhook-subscriptions/{id}/ping")]
pub async fn ping_subscription(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let d = db::write(&state.pool, move |c| webhooks::ping(c, now, &me, &id)).await?;
    Ok(HttpResponse::Created().json(d))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFilter {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The delivery log of a subscription
///
/// Newest first, each with its attempts (time, status code or error, duration), the
/// next attempt and the exact body.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path), DeliveryFilter),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<WebhookDelivery>),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/webhook-subscriptions/{id}/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
    query: web::Query<DeliveryFilter>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let q = query.into_inner();
    if let Some(s) = &q.status {
        if !["pending", "delivered", "failed"].contains(&s.as_str()) {
            return Err(AppError::validation(
                "status",
                "pending, delivered or failed",
            ));
        }
    }
    let (limit, after) = ListParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let rows = db::run(&state.pool, move |c| {
        webhooks::list_deliveries(c, &me, &id, q.status.as_deref(), after.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |d| {
        format!("{}|{}", d.created_at.to_rfc3339(), d.id)
    })))
}

/// Get a webhook delivery
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The delivery and its attempts", body = WebhookDelivery),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[get("/webhook-deliveries/{id}")]
pub async fn get_delivery(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let d = db::run(&state.pool, move |c| {
        webhooks::visible_delivery(c, &me, &id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(d))
}

/// Replay a webhook delivery
///
/// Queues the same event (same event id and body) again as a new delivery, with a new
/// day of retries.
#[utoipa::path(
    tag = "integrations",
    params(("id" = String, Path)),
    responses(
        (status = 201, description = "The new delivery, queued", body = WebhookDelivery),
        (status = 404, description = "Unknown, or not yours to see", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/webhook-deliveries/{id}/replay")]
pub async fn replay_delivery(
    state: web::Data<AppState>,
    me: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let now = state.clock.now();
    let d = db::write(&state.pool, move |c| webhooks::replay(c, now, &me, &id)).await?;
    Ok(HttpResponse::Created().json(d))
}

// ---- Bulk import ---------------------------------------------------------------------------

/// Import people (a new cohort)
///
/// Administrators (and directors of studies for trainees, supervisors and external
/// assessors). `application/json`: an array of rows. `text/csv`: header
/// `email,display_name,role,organisation_id` (role defaults to `trainee`). Every row is
/// checked first; any error imports nothing and all errors are listed by row number.
/// Each new person gets an invitation mail; enrolments can name them at once.
#[utoipa::path(
    tag = "integrations",
    request_body(content(
        (Vec<UserImportRow> = "application/json"),
        (String = "text/csv", example = "email,display_name,role,organisation_id\nny.bt@regionstockholm.se,Ny BT-läkare,trainee,…\n")
    )),
    responses(
        (status = 201, description = "All rows imported", body = UserImportResult),
        (status = 422, description = "Nothing imported; every offending row listed", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/imports/users")]
pub async fn import_users(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body = read_body(payload, state.config.max_json_body).await?;
    let (rows, first) = imports::rows_of(&media_type(&req), &body, &[])?;
    let (cfg, now) = (state.config.clone(), state.clock.now());
    let items = crate::notifications::write_and_send(&state, move |c| {
        imports::import_users(c, &cfg, now, &me, rows, first)
    })
    .await?;
    Ok(HttpResponse::Created().json(UserImportResult { items }))
}

/// Import enrolments (a new cohort)
///
/// Administrators and directors of studies of the templates' organisations. Trainees and
/// main supervisors by e-mail (import the people first). `application/json`: an array of
/// rows (placements allowed). `text/csv`: header
/// `email,template_id,template_version,track,start_date,planned_end,extent_percent,main_supervisor_email`.
/// Each row gets the checks of `POST /enrolments`; any error imports nothing.
#[utoipa::path(
    tag = "integrations",
    request_body(content(
        (Vec<EnrolmentImportRow> = "application/json"),
        (String = "text/csv", example = "email,template_id,track,start_date,planned_end\nny.bt@regionstockholm.se,…,bt_standalone,2027-09-01,2028-08-31\n")
    )),
    responses(
        (status = 201, description = "All rows imported", body = EnrolmentImportResult),
        (status = 422, description = "Nothing imported; every offending row listed", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []))
)]
#[post("/imports/enrolments")]
pub async fn import_enrolments(
    state: web::Data<AppState>,
    req: HttpRequest,
    me: Principal,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body = read_body(payload, state.config.max_json_body).await?;
    let (rows, first) = imports::rows_of(
        &media_type(&req),
        &body,
        &["template_version", "extent_percent"],
    )?;
    let now = state.clock.now();
    let items = db::write(&state.pool, move |c| {
        imports::import_enrolments(c, now, &me, rows, first)
    })
    .await?;
    Ok(HttpResponse::Created().json(EnrolmentImportResult { items }))
}

// ---- Wiring ----------------------------------------------------------------------------------

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(token)
        .service(create_client)
        .service(list_clients)
        .service(get_client)
        .service(rotate_client_secret)
        .service(revoke_client)
        .service(post_statements)
        .service(list_statements)
        .service(get_statement)
        .service(resolve_statement)
        .service(dismiss_statement)
        .service(create_mapping)
        .service(list_mappings)
        .service(delete_mapping)
        .service(create_link)
        .service(list_links)
        .service(delete_link)
        .service(create_subscription)
        .service(list_subscriptions)
        .service(get_subscription)
        .service(patch_subscription)
        .service(delete_subscription)
        .service(rotate_subscription_secret)
        .service(ping_subscription)
        .service(list_deliveries)
        .service(get_delivery)
        .service(replay_delivery)
        .service(import_users)
        .service(import_enrolments);
}

/// Delivers due webhooks: claims, sends (off the executor, concurrently within a batch)
/// and records, until nothing is due. Returns the number of attempts made.
pub async fn deliver_due(state: &web::Data<AppState>) -> Result<usize, AppError> {
    let mut total = 0;
    loop {
        let now = state.clock.now();
        let claimed = db::write(&state.pool, move |c| webhooks::claim_due(c, now, 20)).await?;
        if claimed.is_empty() {
            return Ok(total);
        }
        total += claimed.len();
        let timeout = state.config.webhook_timeout;
        let policy = webhooks::DestinationPolicy::from_config(&state.config);
        let attempts = claimed.into_iter().map(|c| {
            let st = state.clone();
            let policy = policy.clone();
            async move {
                let sent_at = st.clock.now();
                let d = c.clone();
                let outcome =
                    web::block(move || webhooks::send(&d, sent_at, timeout, &policy)).await?;
                let now = st.clock.now();
                db::write(&st.pool, move |conn| {
                    webhooks::record(conn, now, &c, &outcome)
                })
                .await
            }
        });
        for result in futures_util::future::join_all(attempts).await {
            result?;
        }
        // Let the next tick continue a very long queue.
        if total >= 500 {
            return Ok(total);
        }
    }
}

/// The webhook worker: every `WEBHOOK_POLL_MILLIS` (not at all when zero), off the
/// request path, so a slow or dead receiver never slows the API.
pub fn spawn_worker(state: web::Data<AppState>) {
    let every = state.config.webhook_poll;
    if every.is_zero() {
        return;
    }
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match deliver_due(&state).await {
                Ok(_) => {}
                Err(AppError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "webhook delivery postponed");
                }
                Err(e) => tracing::error!(error = %e, "webhook delivery failed"),
            }
        }
    });
}
