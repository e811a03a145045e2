//! Traces across nodes (issue 22): the real binary started with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a tiny OTLP/HTTP collector on loopback
//! exports a span for a request that continues the caller's `traceparent` (named after
//! the route pattern, never the path as sent), a span for its database transaction, and a
//! span for the webhook delivery of the event it produced; the webhook receiver gets a
//! `traceparent` of the same trace. Invalid `traceparent` headers are ignored, never an
//! error. The binary, not the in-process test server: the exporter is process-wide state.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::json;

use crate::crash::spawn_server_with;
use crate::support::hooks::Receiver;
use crate::support::TestApp;

/// A span as the collector received it (ids in lower-case hex).
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP (protobuf) trace collector on loopback: records every span posted to
/// `/v1/traces`.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<Exported>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind collector");
        let port = listener.local_addr().expect("addr").port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let log = spans.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Some((path, body)) = read_request(&mut stream) else {
                    continue;
                };
                let decoded = (path == "/v1/traces")
                    .then(|| ExportTraceServiceRequest::decode(body.as_slice()).ok())
                    .flatten();
                let status = if decoded.is_some() { 200 } else { 400 };
                if let Some(request) = decoded {
                    log.lock().expect("lock").extend(spans_of(request));
                }
                // An empty ExportTraceServiceResponse encodes to no bytes.
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.flush();
            }
        });
        Collector {
            endpoint: format!("http://127.0.0.1:{port}"),
            spans,
        }
    }

    fn spans(&self) -> Vec<Exported> {
        self.spans.lock().expect("lock").clone()
    }

    /// The first span `matches` accepts, waiting for the exporter (15 s at most).
    #[track_caller]
    fn wait_for(&self, what: &str, matches: impl Fn(&Exported) -> bool) -> Exported {
        let started = Instant::now();
        loop {
            if let Some(span) = self.spans().into_iter().find(|s| matches(s)) {
                return span;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no span {what} among {:#?}",
                self.spans()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn spans_of(request: ExportTraceServiceRequest) -> Vec<Exported> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .map(|kv| value_text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(Exported {
                    service: service.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    name: span.name,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| {
                            (
                                kv.key.clone(),
                                value_text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                            )
                        })
                        .collect(),
                });
            }
        }
    }
    out
}

fn value_text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// One HTTP/1.1 request's path and body (Content-Length framed, as the exporter sends).
fn read_request(stream: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, body))
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[test]
fn a_request_continues_the_callers_trace_into_its_spans_and_webhook() {
    // Only the traced node's worker delivers.
    let app = TestApp::start_with(|c| c.webhook_poll = Duration::ZERO);
    app.clock.set(chrono::Utc::now());
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let enrolment = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let receiver = Receiver::start(vec![200]);
    app.post(
        "/webhook-subscriptions",
        Some(&admin.access),
        json!({"organisation_id": region, "url": receiver.url, "events": ["activity.created"]}),
    )
    .expect(201);

    let collector = Collector::start();
    let (mut child, base) = spawn_server_with(
        &app,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "eportfolio-node-a"),
            // Exported every 50 ms rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("WEBHOOK_POLL_MILLIS", "20"),
            ("WEBHOOK_ALLOW_HTTP", "true"),
            ("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32"),
        ],
    );
    let url = format!("{base}/api/v1/enrolments/{enrolment}/activities");
    let bearer = format!("Bearer {}", trainee.access);
    let activity = uuid::Uuid::new_v4().to_string();
    let created = ureq::post(&url)
        .set("Authorization", &bearer)
        .set("traceparent", &format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .set("tracestate", "sll=t61rcWkgMzE")
        .send_json(
            json!({"id": activity, "kind": "self_study", "title": "Spårad",
                          "start_date": "2026-10-01", "delmal": ["BT7"]}),
        )
        .expect("activity created");
    assert_eq!(created.status(), 201);

    // The request's span: a child of the caller's span, named after the route pattern.
    let request = collector.wait_for("for the request", |s| {
        s.trace_id == TRACE_ID && s.attributes.contains_key("http.route")
    });
    let route = request.attributes["http.route"].clone();
    assert!(
        route.starts_with("/api/v1/enrolments/{") && route.ends_with("}/activities"),
        "{route}"
    );
    assert_eq!(request.name, format!("POST {route}"));
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.service, "eportfolio-node-a");
    assert_eq!(request.attributes["http.request.method"], "POST");
    assert_eq!(request.attributes["http.response.status_code"], "201");

    // Its write transaction, inside it.
    let write = collector.wait_for("for the write", |s| {
        s.trace_id == TRACE_ID && s.name == "write"
    });
    assert_eq!(write.parent_span_id, request.span_id);

    // The webhook delivery, later and on the worker, still in the caller's trace; the
    // receiver gets a traceparent of that trace (whose parent is the delivery's span).
    let hook = receiver.wait_for(1).remove(0);
    let traceparent = hook.headers.get("traceparent").expect("traceparent sent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], TRACE_ID);
    assert_eq!(
        hook.headers.get("tracestate").map(String::as_str),
        Some("sll=t61rcWkgMzE")
    );
    let delivery = collector.wait_for("for the delivery", |s| {
        s.trace_id == TRACE_ID && s.name == "webhook activity.created"
    });
    assert_eq!(parts[2], delivery.span_id);
    assert_eq!(delivery.attributes["http.response.status_code"], "200");

    // Invalid traceparents are ignored: the request is answered and starts a trace of
    // its own.
    let invalid = [
        "garbage".to_string(),
        format!("00-{}-{CALLER_SPAN}-01", "0".repeat(32)),
        format!("00-{TRACE_ID}-{}-01", "0".repeat(16)),
        format!("ff-{TRACE_ID}-{CALLER_SPAN}-01"),
        format!("00-{TRACE_ID}-{CALLER_SPAN}-01-{}", "x".repeat(200)),
    ];
    for traceparent in &invalid {
        let answer = ureq::get(&url)
            .set("Authorization", &bearer)
            .set("traceparent", traceparent)
            .set("tracestate", "=,=")
            .call()
            .unwrap_or_else(|e| panic!("traceparent {traceparent}: {e}"));
        assert_eq!(answer.status(), 200, "traceparent {traceparent}");
    }
    let fresh = collector.wait_for("for an untraced caller", |s| {
        s.name == format!("GET {route}")
    });
    assert_ne!(fresh.trace_id, TRACE_ID);
    assert_ne!(fresh.trace_id, "0".repeat(32));
    assert_eq!(fresh.parent_span_id, "");

    // No exported name or attribute carries an id from the path.
    for span in collector.spans() {
        let text = format!("{} {:?}", span.name, span.attributes);
        assert!(!text.contains(&enrolment), "{text}");
        assert!(!text.contains(&activity), "{text}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
