//! Traces across nodes: an optional OpenTelemetry exporter (OTLP over HTTP/protobuf) fed
//! by the `tracing` spans of requests, database work and webhook deliveries, and the W3C
//! Trace Context (`traceparent`, `tracestate`) taken from requests and passed on to
//! webhook receivers. See docs/operations.md, "Traces".
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set; then nothing here makes a span or reads a header: every entry point first asks
//! [`enabled`], one relaxed atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The standard variables that switch the exporter on (the OTLP exporter reads them
/// itself, with `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` ...).
const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// Whether spans are exported (and so made at all).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Flushes the spans still queued when the process ends (dropped at the end of `main`).
pub struct Guard(SdkTracerProvider);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("OpenTelemetry: {e}");
        }
    }
}

/// The exporter's subscriber layer and the guard that flushes it, when an OTLP endpoint
/// is configured. Call it outside the async runtime: the exporter's blocking HTTP client
/// runs on the batch processor's own thread. An endpoint that cannot be used is reported
/// and tracing stays off: the service does not refuse to start for its traces.
pub fn layer<S>() -> Option<(
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
    Guard,
)>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let configured = ENDPOINT_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !configured {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("OpenTelemetry exporter not started: {e}");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder().with_attribute(
        opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    );
    // Otherwise the SDK's default, `unknown_service:eportfolio`.
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|s| !s.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|s| s.contains("service.name="));
    if !named {
        resource = resource.with_service_name("eportfolio");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("eportfolio");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    ENABLED.store(true, Ordering::Relaxed);
    Some((
        tracing_opentelemetry::layer().with_tracer(tracer),
        Guard(provider),
    ))
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The span of one request, a child of the caller's trace when its `traceparent` is
/// valid (an invalid one is ignored: the span starts a trace of its own). Its name and
/// `http.route` are the route pattern, filled in by [`finish_request`] once routing is
/// done; never the path as sent, which may carry link tokens.
pub fn request_span(method: &str, headers: &actix_web::http::header::HeaderMap) -> Span {
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = method,
        otel.kind = "server",
        http.request.method = method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Without a valid remote span there is nothing to attach to.
    let _ = span.set_parent(parent);
    span
}

/// Names the request span after its route pattern and records the status.
pub fn finish_request(span: &Span, method: &str, route: Option<&str>, status: u16) {
    let route = route.unwrap_or("(no route)");
    // Through the OpenTelemetry span: once a child (a transaction) has started it, the
    // `otel.name` field no longer renames it.
    span.context()
        .span()
        .update_name(format!("{method} {route}"));
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// A span for one database transaction (`read` or `write`), a child of the current one.
pub fn database_span(kind: &'static str) -> Span {
    tracing::info_span!(
        "database",
        otel.name = kind,
        otel.kind = "client",
        db.operation.name = kind,
    )
}

/// The current span's trace context as W3C headers (`traceparent`, and `tracestate`
/// when there is one): stored with a queued webhook delivery so that the delivery,
/// however much later, continues the trace of the change that produced its event.
/// `None` when tracing is off or there is no sampled span.
pub fn current_context() -> Option<TraceHeaders> {
    if !enabled() {
        return None;
    }
    let mut headers = HashMap::new();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut headers);
    let traceparent = headers.remove("traceparent")?;
    Some(TraceHeaders {
        traceparent,
        tracestate: headers.remove("tracestate").filter(|s| !s.is_empty()),
    })
}

/// W3C Trace Context headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// Stored trace headers as the propagator reads them.
struct Stored<'a>(&'a TraceHeaders);

impl Extractor for Stored<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(&self.0.traceparent),
            "tracestate" => self.0.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The span of one webhook delivery attempt, a child of the trace its event was
/// produced in (`stored`), or of the current span when none was stored.
pub fn delivery_span(stored: Option<&TraceHeaders>, event: &str, attempt: i32) -> Span {
    let span = tracing::info_span!(
        "webhook delivery",
        otel.name = format!("webhook {event}"),
        otel.kind = "client",
        webhook.event = event,
        webhook.attempt = attempt,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(stored) = stored {
        let _ = span.set_parent(TraceContextPropagator::new().extract(&Stored(stored)));
    }
    span
}
