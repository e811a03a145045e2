//! Faults survived (issue 18): slow clients are cut off without holding up anyone
//! else, and mail and webhooks outlive a day-long outage of the services they go to.
//! The database going away is in `faults_database.rs`.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::support::hooks::{read_request, Received};
use crate::support::{TestApp, TestUser};

/// A connection that sends its request a byte a second.
struct Slow {
    stream: TcpStream,
    /// What is still to be sent, a byte at a time.
    rest: Vec<u8>,
    opened: Instant,
    closed: Option<Duration>,
    answer: Vec<u8>,
    headers_only: bool,
}

impl Slow {
    fn open(addr: &str, sent_at_once: &[u8], trickled: &[u8], headers_only: bool) -> Slow {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.write_all(sent_at_once).expect("write");
        stream.set_nonblocking(true).expect("nonblocking");
        Slow {
            stream,
            rest: trickled.to_vec(),
            opened: Instant::now(),
            closed: None,
            answer: Vec::new(),
            headers_only,
        }
    }

    /// Sends the next byte and reads whatever the server said; notes when it hung up.
    fn tick(&mut self) {
        if self.closed.is_some() {
            return;
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = Some(self.opened.elapsed());
                    return;
                }
                Ok(n) => self.answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = Some(self.opened.elapsed());
                    return;
                }
            }
        }
        if !self.rest.is_empty() {
            let byte = self.rest.remove(0);
            if self.stream.write_all(&[byte]).is_err() {
                self.closed = Some(self.opened.elapsed());
            }
        }
    }
}

#[test]
fn slow_clients_are_cut_off_and_two_hundred_of_them_do_not_stop_others() {
    let header_timeout = Duration::from_secs(2);
    let body_timeout = Duration::from_secs(3);
    let app = TestApp::start_with(|c| {
        c.client_header_timeout = header_timeout;
        c.client_body_timeout = body_timeout;
    });
    let (admin, _) = app.admin();
    let addr = app.base.trim_start_matches("http://").to_string();
    let body = json!({"email": format!("{}@example.org", "x".repeat(80))}).to_string();
    let mut slow: Vec<Slow> = (0..200)
        .map(|i| {
            if i % 2 == 0 {
                // Headers a byte a second: never finished within the timeout.
                let head = format!(
                    "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}\r\n\r\n",
                    "a".repeat(100)
                );
                Slow::open(&addr, b"G", &head.as_bytes()[1..], true)
            } else {
                // Headers at once, then the body a byte a second.
                let head = format!(
                    "POST /api/v1/auth/password-reset HTTP/1.1\r\nHost: {addr}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                Slow::open(&addr, head.as_bytes(), body.as_bytes(), false)
            }
        })
        .collect();

    // Other clients are served all along, at their usual speed.
    let others_done = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<(u16, Duration)>::new()));
    let other = {
        let (done, latencies, base, token) = (
            others_done.clone(),
            latencies.clone(),
            app.base.clone(),
            admin.access.clone(),
        );
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build();
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let status = match agent
                    .get(&format!("{base}/api/v1/me"))
                    .set("Authorization", &format!("Bearer {token}"))
                    .call()
                {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(s, _)) => s,
                    Err(e) => panic!("another client was not served: {e}"),
                };
                latencies
                    .lock()
                    .expect("lock")
                    .push((status, started.elapsed()));
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let started = Instant::now();
    while started.elapsed() < body_timeout + Duration::from_secs(4)
        && slow.iter().any(|s| s.closed.is_none())
    {
        for s in &mut slow {
            s.tick();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    others_done.store(true, Ordering::Relaxed);
    other.join().expect("other client");

    for s in &slow {
        let limit = if s.headers_only {
            header_timeout
        } else {
            body_timeout
        } + Duration::from_secs(3);
        let closed = s.closed.unwrap_or_else(|| {
            panic!(
                "a slow client (headers only: {}) is still connected after {:?}",
                s.headers_only,
                started.elapsed()
            )
        });
        assert!(closed <= limit, "cut off after {closed:?}, limit {limit:?}");
        let answer = String::from_utf8_lossy(&s.answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "headers only: {}: {answer}",
            s.headers_only
        );
        if !s.headers_only {
            assert!(answer.contains("request-timeout"), "{answer}");
        }
    }
    let latencies = latencies.lock().expect("lock");
    assert!(latencies.len() >= 20, "{latencies:?}");
    for (status, took) in latencies.iter() {
        assert_eq!(*status, 200);
        // Generous for a loaded CI machine; a client held up by the slow ones would wait
        // for their timeouts.
        assert!(*took < Duration::from_secs(2), "{took:?}");
    }
}

/// A webhook receiver that is down (connection accepted, 503) until switched up.
struct Switch {
    url: String,
    up: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Switch {
    fn start() -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://127.0.0.1:{}/hooks",
            listener.local_addr().expect("addr").port()
        );
        let up = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (is_up, log) = (up.clone(), received.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Some(req) = read_request(&mut stream) else {
                    continue;
                };
                let status = if is_up.load(Ordering::Relaxed) {
                    log.lock().expect("lock").push(req);
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Switch { url, up, received }
    }
}

fn deliveries(app: &TestApp, admin: &TestUser, sub: &str) -> Vec<Value> {
    app.get(
        &format!("/webhook-subscriptions/{sub}/deliveries"),
        Some(&admin.access),
    )
    .expect(200)
    .body["items"]
        .as_array()
        .expect("items")
        .clone()
}

/// (status, attempts) of the mail to `email` queued last, read from the database.
fn queued_mail(app: &TestApp, email: &str) -> (String, i32) {
    use eportfolio::schema::mail_outbox;
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    mail_outbox::table
        .filter(mail_outbox::recipient.eq(email))
        .order(mail_outbox::created_at.desc())
        .select((mail_outbox::status, mail_outbox::attempts))
        .first(&mut *conn)
        .expect("queued mail")
}

fn wait_for(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mail_and_webhooks_down_for_a_day_wait_survive_restarts_and_end_delivered_or_failed() {
    let mut app = TestApp::start_with(|c| c.webhook_poll = Duration::from_millis(50));
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
        .expect(201);
    let activities = format!(
        "/enrolments/{}/activities",
        enrolment.body["id"].as_str().expect("id")
    );
    let receiver = Switch::start();
    let sub = app
        .post(
            "/webhook-subscriptions",
            Some(&admin.access),
            json!({"organisation_id": region, "url": receiver.url, "events": ["activity.created"]}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Both services go down; a webhook and a mail are due.
    app.smtp.set_refusing(true);
    let mails_before = app.smtp.count_to(&trainee.email);
    app.post(
        &activities,
        Some(&trainee.access),
        json!({"kind": "course", "title": "Sepsis-seminarium", "start_date": "2026-10-06", "delmal": ["BT16"]}),
    )
    .expect(201);
    app.post(
        "/auth/password-reset",
        None,
        json!({"email": trainee.email}),
    )
    .expect(202);
    wait_for("first attempts", 10, || {
        queued_mail(&app, &trainee.email).1 >= 1
            && deliveries(&app, &admin, &sub)
                .first()
                .is_some_and(|d| d["attempts"].as_i64() >= Some(1))
    });

    // Half a day of outage, the service restarted in the middle of it.
    for hour in 1..=12 {
        app.advance(3600);
        if hour == 6 {
            app.restart_with(|_| {});
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
    let admin = app.login_totp(&admin);
    let waiting = deliveries(&app, &admin, &sub);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["status"], "pending");
    assert!(waiting[0]["attempts"].as_i64() > Some(1), "{waiting:?}");
    let (status, attempts) = queued_mail(&app, &trainee.email);
    assert_eq!(status, "pending");
    assert!(attempts > 1, "{attempts}");
    assert!(receiver.received.lock().expect("lock").is_empty());

    // Both come back: what waited is delivered, once.
    app.smtp.set_refusing(false);
    receiver.up.store(true, Ordering::Relaxed);
    app.advance(3600);
    let reset = app.smtp.wait_for(&trainee.email, mails_before);
    assert!(reset.body_text().contains("reset-password?token="));
    // (The administrator's access token expired meanwhile.)
    let admin = app.login_totp(&admin);
    wait_for("the webhook delivered", 10, || {
        deliveries(&app, &admin, &sub)[0]["status"] == "delivered"
    });
    assert_eq!(receiver.received.lock().expect("lock").len(), 1);

    // Down again, this time for longer than the retry windows (about a day each).
    app.smtp.set_refusing(true);
    receiver.up.store(false, Ordering::Relaxed);
    let trainee = app.login_totp(&trainee);
    app.post(
        &activities,
        Some(&trainee.access),
        json!({"kind": "course", "title": "Akutdag", "start_date": "2026-10-07", "delmal": ["BT16"]}),
    )
    .expect(201);
    app.post(
        "/auth/password-reset",
        None,
        json!({"email": trainee.email}),
    )
    .expect(202);
    wait_for("a first failed attempt", 10, || {
        queued_mail(&app, &trainee.email).1 >= 1
    });
    // Hour by hour, each attempt made before the next hour: the mail worker looks
    // every second.
    for _ in 0..40 {
        let (status, attempts) = queued_mail(&app, &trainee.email);
        if status == "failed" {
            break;
        }
        app.advance(3600);
        wait_for("the next attempt", 10, || {
            let (s, a) = queued_mail(&app, &trainee.email);
            s == "failed" || a > attempts
        });
    }
    let admin = app.login_totp(&admin);
    // Administrators see both given up, never silently dropped.
    let failed = app
        .get("/mail-outbox?status=failed", Some(&admin.access))
        .expect(200);
    let items = failed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", failed.text);
    assert_eq!(items[0]["status"], "failed");
    assert!(items[0]["last_error"].is_string());
    wait_for("the webhook given up", 10, || {
        deliveries(&app, &admin, &sub)
            .iter()
            .any(|d| d["status"] == "failed")
    });
    let all = deliveries(&app, &admin, &sub);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().any(|d| d["status"] == "delivered"));
    // Nothing more reached the receiver while it was down.
    assert_eq!(receiver.received.lock().expect("lock").len(), 1);
}
