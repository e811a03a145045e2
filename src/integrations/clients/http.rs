//! HTTP handlers of API clients: the OAuth 2.0 token endpoint and client management.

use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::context::{Context, Ctx};
use crate::error::{AppError, Problem, PROBLEM_BASE, PROBLEM_JSON};
use crate::http::{media_type, read_body, with_etag, Page};
use crate::ids::ClientId;
use crate::integrations::clients;
use crate::integrations::clients::{ApiClient, ApiClientCredentials, NewApiClient, TokenResponse};
use crate::integrations::shared::{require_admin, ListParams, PROBLEM};
use crate::telemetry::security::{Event, SecurityEvent};

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

/// `Authorization: Basic` credentials: the client's id and secret.
pub(crate) fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
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
    ctx: Context<()>,
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
    let scope = form.scope;
    let client_id = id.clone();
    let result = ctx
        .write(move |c, ctx| {
            clients::issue_token(c, ctx, &ClientId::new(id), &secret, scope.as_deref())
        })
        .await?;
    // The client id names the client only once it authenticated: before, it is
    // whatever the caller sent.
    match &result {
        Ok(_) => SecurityEvent::new(Event::ApiClientTokenIssued).user(&client_id),
        Err(_) => SecurityEvent::new(Event::ApiClientTokenRefused),
    }
    .client(&ctx.client)
    .emit();
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
    ctx: Ctx,
    body: web::Json<NewApiClient>,
) -> Result<HttpResponse, AppError> {
    let c = ctx
        .write(move |c, ctx| clients::create_client(c, ctx, body.into_inner()))
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
    ctx: Ctx,
    query: web::Query<ListParams>,
) -> Result<HttpResponse, AppError> {
    require_admin(&ctx.caller)?;
    let (limit, after) = query.into_inner().page()?;
    let rows = ctx
        .read(move |c, ctx| clients::list_clients(c, &ctx.caller, after.as_deref(), limit))
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
pub async fn get_client(ctx: Ctx, path: web::Path<ClientId>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let c = ctx
        .read(move |c, ctx| clients::visible_client(c, &ctx.caller, &id))
        .await?;
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
    ctx: Ctx,
    path: web::Path<ClientId>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let c = ctx
        .write(move |c, ctx| clients::rotate_secret(c, ctx, &id))
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
pub async fn revoke_client(ctx: Ctx, path: web::Path<ClientId>) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let c = ctx
        .write(move |c, ctx| clients::revoke_client(c, ctx, &id))
        .await?;
    Ok(HttpResponse::Ok().json(c))
}
