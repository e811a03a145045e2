//! The metrics, through the `metrics` facade and its Prometheus exporter. Everything is
//! recorded only once `install` ran (`METRICS_BIND` set): before that every call here is
//! one relaxed atomic load, so a node without metrics pays nothing per request.
//!
//! Labels are bounded sets chosen here (route patterns, methods, status classes, fixed
//! outcome and kind names), never a path as sent, an id, an address or an e-mail: a
//! label value is a new time series, and whatever a scrape shows anyone may read.
//!
//! Gauges that describe state (pool, queues) are read when `/metrics` is scraped
//! (`endpoint`), not kept up to date on every change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::AppError;

static ENABLED: AtomicBool = AtomicBool::new(false);
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

pub const HTTP_REQUESTS: &str = "eportfolio_http_requests_total";
pub const HTTP_DURATION: &str = "eportfolio_http_request_duration_seconds";
pub const DB_POOL_MAX: &str = "eportfolio_db_pool_max_connections";
pub const DB_POOL_SIZE: &str = "eportfolio_db_pool_connections";
pub const DB_POOL_IN_USE: &str = "eportfolio_db_pool_connections_in_use";
pub const DB_POOL_WAIT: &str = "eportfolio_db_pool_wait_seconds";
pub const DB_WRITE_QUEUE: &str = "eportfolio_db_write_queue_depth";
pub const DB_GROUP_COMMIT: &str = "eportfolio_db_group_commit_size";
pub const QUEUE_DEPTH: &str = "eportfolio_queue_depth";
pub const QUEUE_OLDEST: &str = "eportfolio_queue_oldest_age_seconds";
pub const DELIVERIES: &str = "eportfolio_deliveries_total";
pub const LOGINS: &str = "eportfolio_logins_total";
pub const SECOND_FACTOR: &str = "eportfolio_second_factor_total";
pub const RATE_LIMITED: &str = "eportfolio_rate_limited_total";
pub const SECURITY_EVENTS: &str = "eportfolio_security_events_total";
pub const SIGNATURES: &str = "eportfolio_signatures_total";
pub const DOSSIERS: &str = "eportfolio_dossiers_total";
pub const BUILD_INFO: &str = "eportfolio_build_info";

/// Request latency: from a cached read (a millisecond) to a large dossier (seconds).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Waiting for a pooled connection: nothing, usually; the pool times out at 10 s.
const WAIT_BUCKETS: &[f64] = &[0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
/// Jobs in one SQLite group commit: at most 64 (`db::GROUP_MAX`).
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Whether metrics are being recorded (`METRICS_BIND` is set in this process).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Installs the process's recorder (once: a second server in the same process, as in
/// the tests, shares it) and describes every metric. Returns the handle that renders them.
pub fn install(backend: &'static str) -> Result<PrometheusHandle, AppError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(DB_POOL_WAIT.into()), WAIT_BUCKETS))
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(DB_GROUP_COMMIT.into()), GROUP_BUCKETS)
        })
        .map_err(|e| AppError::Config(format!("metrics: {e}")))?;
    let handle = match builder.install_recorder() {
        Ok(handle) => handle,
        // Another thread won the race: use its recorder.
        Err(e) => {
            return HANDLE
                .get()
                .cloned()
                .ok_or_else(|| AppError::Config(format!("metrics: {e}")))
        }
    };
    let handle = HANDLE.get_or_init(|| handle).clone();
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "backend" => backend).set(1.0);
    ENABLED.store(true, Ordering::Relaxed);
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by route pattern, method and status class"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by route pattern and method"
    );
    describe_gauge!(
        DB_POOL_MAX,
        "Connections the database pool may open (DATABASE_POOL_SIZE)"
    );
    describe_gauge!(DB_POOL_SIZE, "Connections the database pool holds (open)");
    describe_gauge!(DB_POOL_IN_USE, "Pooled database connections checked out");
    describe_histogram!(
        DB_POOL_WAIT,
        Unit::Seconds,
        "Time spent waiting for a pooled database connection"
    );
    describe_gauge!(DB_WRITE_QUEUE, "Writes queued for the SQLite writer thread");
    describe_histogram!(
        DB_GROUP_COMMIT,
        "Writes committed together by one SQLite group commit"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Items waiting in a delivery queue (webhook, mail)"
    );
    describe_gauge!(
        QUEUE_OLDEST,
        Unit::Seconds,
        "Age of the oldest item waiting in a delivery queue"
    );
    describe_counter!(DELIVERIES, "Delivery attempts by queue and outcome");
    describe_counter!(LOGINS, "Password logins by outcome");
    describe_counter!(SECOND_FACTOR, "Second-factor answers by method and outcome");
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit");
    describe_counter!(SECURITY_EVENTS, "Security events by stable event name");
    describe_counter!(SIGNATURES, "Records signed, by kind");
    describe_counter!(DOSSIERS, "Signed dossiers produced, by format");
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels say which build and backend"
    );
}

/// `2xx`, `4xx`, ...: a bounded label, where the status itself would be a dozen series.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// One answered request. `route` is the matched pattern, None when no route matched
/// (counted as `unmatched`: the path as sent could carry a token and is unbounded).
pub fn http_request(
    method: &actix_web::http::Method,
    route: Option<&str>,
    status: u16,
    elapsed: Duration,
) {
    if !enabled() {
        return;
    }
    let route = route.unwrap_or("unmatched").to_string();
    let method = method_label(method);
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status_class" => status_class(status))
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route, "method" => method).record(elapsed.as_secs_f64());
}

fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        // Anything else a client invents is one series, not one per invention.
        _ => "other",
    }
}

/// Time a request waited for a pooled connection.
pub fn pool_wait(waited: Duration) {
    if enabled() {
        histogram!(DB_POOL_WAIT).record(waited.as_secs_f64());
    }
}

/// The size of one SQLite group commit.
pub fn group_commit(jobs: usize) {
    if enabled() {
        histogram!(DB_GROUP_COMMIT).record(jobs as f64);
    }
}

/// Which delivery queue.
#[derive(Clone, Copy)]
pub enum Queue {
    Webhook,
    Mail,
}

impl Queue {
    fn as_str(self) -> &'static str {
        match self {
            Queue::Webhook => "webhook",
            Queue::Mail => "mail",
        }
    }
}

/// How a delivery attempt ended.
#[derive(Clone, Copy)]
pub enum Delivery {
    /// Delivered (webhook: a 2xx answer; mail: the relay took it).
    Delivered,
    /// Failed; it will be tried again.
    Retry,
    /// Failed for the last time: given up.
    GaveUp,
}

pub fn delivery(queue: Queue, outcome: Delivery) {
    if !enabled() {
        return;
    }
    let outcome = match outcome {
        Delivery::Delivered => "delivered",
        Delivery::Retry => "retry",
        Delivery::GaveUp => "gave_up",
    };
    counter!(DELIVERIES, "queue" => queue.as_str(), "outcome" => outcome).increment(1);
}

/// A queue's state, read at scrape time.
pub fn queue_state(queue: Queue, depth: i64, oldest_age: Option<Duration>) {
    gauge!(QUEUE_DEPTH, "queue" => queue.as_str()).set(depth as f64);
    gauge!(QUEUE_OLDEST, "queue" => queue.as_str())
        .set(oldest_age.map_or(0.0, |d| d.as_secs_f64()));
}

/// The pool's state, read at scrape time.
pub fn pool_state(max: u32, open: u32, idle: u32, write_queue: Option<usize>) {
    gauge!(DB_POOL_MAX).set(f64::from(max));
    gauge!(DB_POOL_SIZE).set(f64::from(open));
    gauge!(DB_POOL_IN_USE).set(f64::from(open.saturating_sub(idle)));
    if let Some(depth) = write_queue {
        gauge!(DB_WRITE_QUEUE).set(depth as f64);
    }
}

/// A record signed (`kind`: a fixed name such as `assessment`, never an id).
pub fn signed(kind: &'static str) {
    if enabled() {
        counter!(SIGNATURES, "kind" => kind).increment(1);
    }
}

/// A signed dossier produced (`format`: `json` or `pdf`).
pub fn dossier(format: &'static str) {
    if enabled() {
        counter!(DOSSIERS, "format" => format).increment(1);
    }
}

/// Counts a security event under its stable name, and the login, second-factor and
/// rate-limit families it belongs to (see `security::Event`).
pub(crate) fn security_event(
    event: &'static str,
    method: Option<&'static str>,
    kind: Option<&'static str>,
) {
    if !enabled() {
        return;
    }
    counter!(SECURITY_EVENTS, "event" => event).increment(1);
    if let Some(outcome) = event.strip_prefix("login_") {
        counter!(LOGINS, "outcome" => outcome).increment(1);
    } else if let Some(outcome) = event.strip_prefix("second_factor_") {
        if matches!(outcome, "succeeded" | "failed") {
            counter!(SECOND_FACTOR, "method" => method.unwrap_or("unknown"), "outcome" => outcome)
                .increment(1);
        }
    } else if matches!(event, "rate_limited" | "account_locked_out") {
        counter!(RATE_LIMITED, "limit" => kind.unwrap_or("other")).increment(1);
    }
}

/// Drains histogram samples into their buckets; the endpoint runs it now and then so
/// that memory does not grow between scrapes.
pub fn upkeep() {
    if let Some(handle) = HANDLE.get() {
        handle.run_upkeep();
    }
}
