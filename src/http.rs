//! HTTP plumbing shared by every feature: request ids and access logs, extractor error
//! mapping to problem+json, client address, pagination, ETags.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::config::Config;
use crate::error::{AppError, PROBLEM_JSON};

#[path = "http_location.rs"]
mod location;
pub use location::{created_at, location, CREATED_AT, UNLOCATED};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Who made a request, as far as its authentication got: set by the caller's extractor
/// once a token is accepted, and written to the request log, so that an operator (and
/// the route-coverage check of the tests) can tell a person's refused request from an
/// API client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    Person,
    Client,
}

impl CallerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallerKind::Person => "person",
            CallerKind::Client => "client",
        }
    }
}

/// Gives every request an id (the client's `X-Request-Id` if sane), logs one line per
/// request, and copies the id into problem documents so users can quote it to support.
pub async fn request_id_and_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        // From the thread's RNG (seeded from the OS once), not a getrandom call per request.
        .unwrap_or_else(|| {
            uuid::Builder::from_random_bytes(rand::random::<[u8; 16]>())
                .into_uuid()
                .to_string()
        });
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    // With traces on, the request's span (a child of the caller's `traceparent`).
    let span = crate::telemetry::traces::enabled()
        .then(|| crate::telemetry::traces::request_span(&method, req.headers()));
    let res = match &span {
        Some(span) => tracing::Instrument::instrument(next.call(req), span.clone()).await?,
        None => next.call(req).await?,
    };
    // The route pattern, never the path as sent: paths carry link tokens
    // (`/auth/invitations/{token}`), and whoever reads the log must not be able to use them.
    let path = logged_path(res.request());
    let status = res.status();
    let caller = res
        .request()
        .extensions()
        .get::<CallerKind>()
        .map_or("none", |c| c.as_str());
    let location_template = (status == actix_web::http::StatusCode::CREATED
        && !res.headers().contains_key(header::LOCATION))
    .then(|| res.request().match_pattern())
    .flatten()
    .and_then(|p| created_at(&p));
    let mut res = if res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes())
    {
        add_request_id_to_problem(res, &id).await?
    } else if let Some(template) = location_template {
        add_location(res, template).await?
    } else {
        res.map_into_boxed_body()
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let request_path = res.request().path().to_string();
    security_headers(&request_path, res.headers_mut());
    let elapsed = started.elapsed();
    crate::telemetry::metrics::http_request(
        res.request().method(),
        res.request().match_pattern().as_deref(),
        status.as_u16(),
        elapsed,
    );
    if let Some(span) = &span {
        crate::telemetry::traces::finish_request(
            span,
            &method,
            res.request().match_pattern().as_deref(),
            status.as_u16(),
        );
    }
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(request_id = %id, %method, %path, status = status.as_u16(), %caller, elapsed_ms, "request");
    } else {
        tracing::info!(request_id = %id, %method, %path, status = status.as_u16(), %caller, elapsed_ms, "request");
    }
    Ok(res)
}

/// What the request log says for a request's path: the pattern of the route that
/// answered (`/api/v1/auth/invitations/{token}`); for a path no route matched, the path
/// with every segment that could be a token (long, or not plain ASCII) replaced by `…`.
/// Query strings are never logged.
pub fn logged_path(req: &HttpRequest) -> String {
    if let Some(pattern) = req.match_pattern() {
        return pattern;
    }
    req.path()
        .split('/')
        .map(|segment| {
            let plain = segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if plain && segment.len() <= 24 {
                segment
            } else {
                "…"
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The swagger UI (vendored, served from `/docs/`) loads its own scripts and styles, the
/// spec from `/api/v1/openapi.json`, and images from data: URIs in its stylesheet; its
/// components set inline styles. Nothing else is allowed, so an injected script cannot
/// run or send anything anywhere.
pub const DOCS_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Headers every response carries. Browsers must not sniff a type other than the one
/// declared (an uploaded file declared as text must not run as HTML). Everything under
/// `/api/v1` is tokens or personal data and is never stored by caches, except content
/// the handler marks as public (the service's public keys) and the OpenAPI document.
pub fn security_headers(path: &str, headers: &mut header::HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path.starts_with("/api/v1") && path != "/api/v1/openapi.json" {
        let public = headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|d| d.trim() == "public"));
        if !public {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    if path == "/docs" || path.starts_with("/docs/") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
    }
}

async fn add_request_id_to_problem(
    res: ServiceResponse<impl MessageBody + 'static>,
    id: &str,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|_| actix_web::error::ErrorInternalServerError("body"))?;
    let bytes = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("request_id".into(), serde_json::Value::String(id.into()));
            serde_json::to_vec(&map).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    let res = head.set_body(BoxBody::new(bytes));
    Ok(ServiceResponse::new(req, res))
}

/// Sets `Location` on a 201 from the created representation (`CREATED_AT`). Here
/// rather than in each handler, so that the header, the document's declaration of it and
/// an idempotent replay (which passes through here too) all come from one table.
async fn add_location(
    res: ServiceResponse<impl MessageBody + 'static>,
    template: &str,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|_| actix_web::error::ErrorInternalServerError("body"))?;
    let value = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|created| location(template, &created))
        .and_then(|l| HeaderValue::from_str(&l).ok());
    let mut res = head.set_body(BoxBody::new(bytes));
    if let Some(value) = value {
        res.headers_mut().insert(header::LOCATION, value);
    }
    Ok(ServiceResponse::new(req, res))
}

/// Maps extractor failures (bad JSON, wrong content type, oversized body, bad query or
/// path) to the problem types of the API.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            let app = match &err {
                JsonPayloadError::ContentType => AppError::UnsupportedMediaType(
                    "send the request body as application/json".into(),
                ),
                JsonPayloadError::OverflowKnownLength { length, limit } => {
                    AppError::PayloadTooLarge(format!(
                        "the body is {length} bytes; the limit is {limit}"
                    ))
                }
                JsonPayloadError::Overflow { limit } => {
                    AppError::PayloadTooLarge(format!("the body exceeds {limit} bytes"))
                }
                JsonPayloadError::Deserialize(e) => {
                    if e.is_data() {
                        AppError::Malformed(format!("the JSON does not fit the schema: {e}"))
                    } else {
                        AppError::Malformed(format!("the body is not valid JSON: {e}"))
                    }
                }
                other => AppError::Malformed(format!("cannot read the body: {other}")),
            };
            app.into()
        })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let detail = match &err {
            QueryPayloadError::Deserialize(e) => format!("bad query parameters: {e}"),
            other => format!("bad query parameters: {other}"),
        };
        AppError::Malformed(detail).into()
    })
}

/// An id in the path that cannot exist (not a UUID, say) is simply not found.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err: PathError, _req| AppError::NotFound.into())
}

pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` hop that is not a trusted proxy (so one proxy does not make all
/// clients share one rate limit). Hops left of that one were written by the client
/// itself and prove nothing: taking the leftmost would let anyone pick their address.
/// Where a request came from, for sessions, devices and rate limits.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

pub fn client_info(req: &HttpRequest, config: &Config) -> ClientInfo {
    let peer = req.peer_addr().map(|a| a.ip().to_string());
    let trusted = |addr: &str| config.trusted_proxies.iter().any(|t| in_network(t, addr));
    let address = match &peer {
        Some(p) if trusted(p) => {
            let forwarded: Vec<String> = req
                .headers()
                .get_all("x-forwarded-for")
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|hop| hop.trim().to_string())
                .filter(|hop| !hop.is_empty())
                .collect();
            forwarded
                .iter()
                .rev()
                .find(|hop| !trusted(hop))
                // Every hop a trusted proxy: the one farthest from us is the client.
                .or(forwarded.first())
                .cloned()
                .or(peer.clone())
        }
        _ => peer,
    };
    ClientInfo {
        address,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// Is `addr` the address `net`, or inside the network `net` (`10.0.0.0/8`, `fd00::/8`)?
/// An IPv4 peer seen through a dual-stack socket arrives as an IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.1`): it is compared as the IPv4 address it is, so IPv4 ranges match
/// it. A malformed `net` (bad address or prefix length) matches nothing: trusting less.
pub fn in_network(net: &str, addr: &str) -> bool {
    use std::net::IpAddr;
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let Ok(net) = net
        .parse::<ipnet::IpNet>()
        .or_else(|_| net.parse::<IpAddr>().map(ipnet::IpNet::from))
    else {
        return false;
    };
    net.contains(&addr) || net.contains(&addr.to_canonical())
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// `limit` (default 50, max 200) and an opaque `cursor` from the previous page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<i64, AppError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
            Some(_) => Err(AppError::validation("limit", "must be between 1 and 200")),
        }
    }

    /// The decoded cursor: the sort key of the last item of the previous page.
    pub fn after(&self) -> Result<Option<String>, AppError> {
        match &self.cursor {
            None => Ok(None),
            Some(c) => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .map(Some)
                .ok_or_else(|| AppError::validation("cursor", "is not a cursor from this API")),
        }
    }
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only says "there is more".
    pub fn from_rows(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last()
                .map(|r| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

impl<T: ToSchema> Page<T> {
    /// Like `from_rows`, for rows that come with their own cursor key (a sort key that is
    /// not a field of the item).
    pub fn from_keyed_rows(rows: Vec<(String, T)>, limit: i64) -> Page<T> {
        let more = rows.len() as i64 > limit;
        let mut next_cursor = None;
        let mut items = Vec::with_capacity(rows.len().min(limit as usize));
        for (key, item) in rows.into_iter().take(limit as usize) {
            next_cursor = Some(key);
            items.push(item);
        }
        Page {
            items,
            next_cursor: next_cursor
                .filter(|_| more)
                .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k)),
        }
    }

    /// A page of a list made whole in memory (a computed overview, a short catalogue), in
    /// its order: the items after the one whose `key` the cursor names. The cursor stays an
    /// item's key, as elsewhere, so an item added before it does not shift the pages.
    pub fn of_list(
        items: Vec<T>,
        params: &PageParams,
        key: impl Fn(&T) -> String,
    ) -> Result<Page<T>, AppError> {
        let limit = params.limit()?;
        let start = match params.after()? {
            None => 0,
            Some(after) => items
                .iter()
                .position(|i| key(i) == after)
                .map(|p| p + 1)
                .ok_or_else(|| {
                    AppError::validation("cursor", "names no item of this list any more")
                })?,
        };
        let rows: Vec<T> = items
            .into_iter()
            .skip(start)
            .take(limit as usize + 1)
            .collect();
        Ok(Page::from_rows(rows, limit, key))
    }
}

/// Strong ETag derived from a record's version and update time.
pub fn etag(version: i32, updated_at: DateTime<Utc>) -> String {
    format!("\"{version}-{}\"", updated_at.timestamp_micros())
}

/// The `If-Match` header, if sent (unreadable values never match).
pub fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\u{0}").to_string())
}

/// `If-Match`, when sent, must name the current ETag (or `*`).
pub fn check_if_match(if_match: Option<&str>, current: &str) -> Result<(), AppError> {
    let Some(value) = if_match else {
        return Ok(());
    };
    let matches = value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == current || t.trim_start_matches("W/") == current);
    if matches {
        Ok(())
    } else {
        Err(AppError::PreconditionFailed)
    }
}

/// A JSON response with the record's ETag.
pub fn with_etag<T: Serialize>(
    status: actix_web::http::StatusCode,
    tag: String,
    body: &T,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, tag))
        .json(body)
}

/// Reads a raw request body up to `limit` bytes (for non-JSON uploads such as CSV).
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, AppError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::Malformed(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge(format!(
                "the body exceeds {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The media type of a request, without parameters, lower-cased.
pub fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Content negotiation: the best of `offered` for the request's `Accept` header (with
/// q-values and wildcards). No header, or `*/*`, gets the first offered, the default.
pub fn negotiate(req: &HttpRequest, offered: &[&'static str]) -> Result<&'static str, AppError> {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(offered[0]);
    };
    let mut best: Option<(f32, usize, &'static str)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f32>().ok())
            .next()
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        for (i, o) in offered.iter().enumerate() {
            let (otype, _) = o.split_once('/').unwrap_or((o, ""));
            let matches = media == *o
                || media == "*/*"
                || media.strip_suffix("/*").is_some_and(|t| t == otype);
            // Exact media types beat wildcards at equal q; then the server's order.
            let rank = if media == *o { 0 } else { 1 };
            if matches {
                let better = match best {
                    None => true,
                    Some((bq, bi, _)) => q > bq || (q == bq && rank * 100 + i < bi),
                };
                if better {
                    best = Some((q, rank * 100 + i, o));
                }
            }
        }
    }
    best.map(|(_, _, o)| o).ok_or_else(|| {
        AppError::NotAcceptable(format!(
            "this resource is available as {}",
            offered.join(", ")
        ))
    })
}

/// A file's raw bytes: a binary string in the OpenAPI document.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBody(pub Vec<u8>);

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
