//! Cross-origin requests from browser apps (CORS), for the origins an operator lists in
//! `CORS_ALLOWED_ORIGINS`. With none listed (the default) no CORS header is sent, and
//! browsers keep pages of other origins from reading any answer.
//!
//! actix-cors does the protocol. Two choices are ours:
//! - It does not refuse a request whose `Origin` is not listed
//!   (`block_on_origin_mismatch(false)`): browsers send `Origin` on same-origin POSTs
//!   too (Swagger UI under `/docs`), and API clients and LMSs are not browsers. Such an
//!   answer carries no CORS header, so a browser page of an unlisted origin cannot read
//!   it; authorisation is by bearer token, never by cookie, so a request a page makes
//!   blind carries no credential of the user's.
//! - Exact origins only: no wildcard and no patterns, so a typo cannot open the API to
//!   a whole domain.

use actix_cors::Cors;
use actix_web::http::Method;

/// The request headers a browser app needs beyond the CORS-safelisted ones.
const ALLOWED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "x-experience-api-version",
];

/// Response headers a browser app may read beyond the safelisted ones.
const EXPOSED_HEADERS: [&str; 6] = [
    "etag",
    "location",
    "retry-after",
    "idempotent-replayed",
    "content-disposition",
    "x-request-id",
];

/// The middleware for `origins` (already checked by [`origin`]).
pub fn middleware(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        // Browsers cap this (Chromium at 2 h); an hour keeps preflights rare.
        .max_age(3600)
        .block_on_origin_mismatch(false);
    for o in origins {
        cors = cors.allowed_origin(o);
    }
    cors
}

/// `s` as a browser writes it in `Origin`: scheme, host and port only (the default port
/// left out, the host in lower case), or why it is not one.
pub fn origin(s: &str) -> Result<String, String> {
    if s == "*" {
        return Err("a wildcard is not allowed: list each origin".into());
    }
    let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not an origin ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?}: only http and https origins"));
    }
    if url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || s.ends_with('/')
    {
        return Err(format!(
            "{s:?} is not an origin: write scheme://host[:port], without a path"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
#[path = "cors_tests.rs"]
mod tests;
