//! Several API nodes on one database (issue 19): the in-process test server and the real
//! binary started beside it on the same database and data directory, driven together.
//! What a region running two nodes behind a load balancer relies on: no acknowledged
//! write lost, an `Idempotency-Key` retried on the other node replays, the login limit
//! counts on both, a session ended on one node is refused by the other within the
//! session cache's bound, and each webhook event is delivered once, not once per node.
//! Runs on both backends (two processes on one SQLite file in WAL mode, or one
//! PostgreSQL database).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::crash::spawn_server_with;
use crate::support::hooks::Receiver;
use crate::support::{TestApp, TestUser, PASSWORD};

/// The other node: the real binary on the test app's database. Its webhook worker polls
/// often and may deliver to the loopback receiver, as the test app's may.
struct OtherNode {
    child: std::process::Child,
    base: String,
    agent: ureq::Agent,
}

impl OtherNode {
    fn start(app: &TestApp) -> OtherNode {
        let (child, base) = spawn_server_with(
            app,
            &[
                ("WEBHOOK_POLL_MILLIS", "20"),
                ("WEBHOOK_ALLOW_HTTP", "true"),
                ("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32"),
            ],
        );
        OtherNode {
            child,
            base,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    /// A request to this node, answered as the test app's helpers answer.
    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> crate::support::Resp {
        let mut req = self
            .agent
            .request(method, &format!("{}/api/v1{path}", self.base));
        if let Some(token) = token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        for (name, value) in headers {
            req = req.set(name, value);
        }
        TestApp::read(match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        })
    }
}

impl Drop for OtherNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A trainee with an enrolment on the test app; returns the admin, the region, the
/// trainee and the enrolment id. The test app's clock is set to the real time first:
/// the other node runs on the real clock, and its tokens and rows must agree.
fn world(app: &TestApp) -> (TestUser, String, TestUser, String) {
    app.clock.set(chrono::Utc::now());
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
        )
        .expect(201);
    let enrolment = e.body["id"].as_str().expect("id").to_string();
    (admin, region, trainee, enrolment)
}

fn activity(id: &str, title: &str) -> Value {
    json!({"id": id, "kind": "self_study", "title": title, "start_date": "2026-10-01",
           "delmal": ["BT7"]})
}

/// The ids of the enrolment's activities, read from the database.
fn stored_activity_ids(app: &TestApp, enrolment: &str) -> Vec<String> {
    use eportfolio::schema::activities;
    let mut conn = eportfolio::db::connect(&app.config.database_url, 1)
        .expect("pool")
        .get()
        .expect("conn");
    activities::table
        .filter(activities::enrolment_id.eq(enrolment))
        .select(activities::id)
        .load(&mut *conn)
        .expect("activities")
}

#[test]
fn writes_split_over_two_nodes_are_all_kept_once() {
    let app = TestApp::start();
    let (_, _, trainee, enrolment) = world(&app);
    let other = OtherNode::start(&app);
    let path = format!("/enrolments/{enrolment}/activities");

    // Two clients at once, one per node, every write with its own id and key.
    let acknowledged: Vec<String> = std::thread::scope(|scope| {
        let on_app = scope.spawn(|| {
            (0..40)
                .map(|i| {
                    let id = uuid::Uuid::new_v4().to_string();
                    app.send(
                        "POST",
                        &path,
                        Some(&trainee.access),
                        Some(&activity(&id, &format!("nod A {i}"))),
                        &[("Idempotency-Key", &format!("a{i}"))],
                    )
                    .expect(201);
                    id
                })
                .collect::<Vec<_>>()
        });
        let on_other = scope.spawn(|| {
            (0..40)
                .map(|i| {
                    let id = uuid::Uuid::new_v4().to_string();
                    other
                        .send(
                            "POST",
                            &path,
                            Some(&trainee.access),
                            Some(&activity(&id, &format!("nod B {i}"))),
                            &[("Idempotency-Key", &format!("b{i}"))],
                        )
                        .expect(201);
                    id
                })
                .collect::<Vec<_>>()
        });
        let mut all = on_app.join().expect("node A writer");
        all.extend(on_other.join().expect("node B writer"));
        all
    });
    let stored: HashSet<String> = stored_activity_ids(&app, &enrolment).into_iter().collect();
    assert_eq!(
        stored.len(),
        80,
        "every acknowledged write, and nothing else"
    );
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged activity {id} is missing");
    }

    // A client that got no answer from one node retries on the other: replayed, not
    // repeated, with the first answer's body.
    let id = uuid::Uuid::new_v4().to_string();
    let body = activity(&id, "Omförsök på andra noden");
    let first = other
        .send(
            "POST",
            &path,
            Some(&trainee.access),
            Some(&body),
            &[("Idempotency-Key", "cross-node")],
        )
        .expect(201);
    // The first node stores its answer just after answering (queued, not awaited: see
    // `idempotency`), so a retry on the other node in that instant is told
    // `idempotency-in-progress` and retries shortly, as the problem says; never repeated.
    let mut tries = 0;
    let again = loop {
        let r = app.send(
            "POST",
            &path,
            Some(&trainee.access),
            Some(&body),
            &[("Idempotency-Key", "cross-node")],
        );
        let in_progress = r.status == 409
            && r.body["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("/idempotency-in-progress"));
        tries += 1;
        if !in_progress || tries == 50 {
            break r.expect(201);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    // The same key with another body, on the first node: a misuse, refused.
    other
        .send(
            "POST",
            &path,
            Some(&trainee.access),
            Some(&activity(&uuid::Uuid::new_v4().to_string(), "Annan kropp")),
            &[("Idempotency-Key", "cross-node")],
        )
        .expect_problem(409, "idempotency-key-reused");
    assert_eq!(stored_activity_ids(&app, &enrolment).len(), 81);
}

#[test]
fn the_login_limit_counts_wrong_passwords_on_both_nodes() {
    let app = TestApp::start();
    let (admin, _) = {
        app.clock.set(chrono::Utc::now());
        app.admin()
    };
    let other = OtherNode::start(&app);
    let login = |on_other: bool, password: &str| {
        let body = json!({"email": admin.email, "password": password});
        if on_other {
            other.send("POST", "/auth/login", None, Some(&body), &[])
        } else {
            app.post("/auth/login", None, body)
        }
    };
    // Ten wrong guesses, half on each node (the limit of 10 per account).
    for n in 0..10 {
        login(n % 2 == 1, "guess guess guess").expect_problem(401, "invalid-credentials");
    }
    // Now the account is locked on both nodes, even for the right password.
    for on_other in [false, true] {
        let locked = login(on_other, PASSWORD).expect_problem(429, "rate-limited");
        assert!(locked.header("retry-after").is_some(), "{}", locked.text);
    }
}

#[test]
fn a_session_ended_on_one_node_is_refused_by_the_other_within_the_cache_bound() {
    let app = TestApp::start();
    app.clock.set(chrono::Utc::now());
    let (admin, _) = app.admin();
    let other = OtherNode::start(&app);
    // The other node knows the session (and may keep it for the cache's bound).
    other
        .send("GET", "/me", Some(&admin.access), None, &[])
        .expect(200);

    app.post("/auth/logout", Some(&admin.access), json!({}))
        .expect(204);
    app.get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
    // docs/security.md (3.3.1): refused on every other node within SESSION_CACHE_TTL.
    std::thread::sleep(eportfolio::auth::principal::SESSION_CACHE_TTL + Duration::from_millis(500));
    other
        .send("GET", "/me", Some(&admin.access), None, &[])
        .expect_problem(401, "unauthenticated");
    other
        .send(
            "POST",
            "/auth/refresh",
            None,
            Some(&json!({"refresh_token": admin.refresh})),
            &[],
        )
        .expect_problem(401, "unauthenticated");
}

#[test]
fn each_webhook_event_is_delivered_once_with_both_nodes_delivering() {
    let app = TestApp::start_with(|c| c.webhook_poll = Duration::from_millis(20));
    let (admin, region, trainee, enrolment) = world(&app);
    let receiver = Receiver::start(vec![200]);
    app.post(
        "/webhook-subscriptions",
        Some(&admin.access),
        json!({"organisation_id": region, "url": receiver.url, "events": ["activity.created"]}),
    )
    .expect(201);
    let other = OtherNode::start(&app);
    let path = format!("/enrolments/{enrolment}/activities");

    // Activities logged on both nodes while both nodes' workers poll the one outbox.
    let mut created = HashSet::new();
    for i in 0..30 {
        let id = uuid::Uuid::new_v4().to_string();
        let body = activity(&id, &format!("händelse {i}"));
        if i % 2 == 0 {
            app.post(&path, Some(&trainee.access), body).expect(201);
        } else {
            other
                .send("POST", &path, Some(&trainee.access), Some(&body), &[])
                .expect(201);
        }
        created.insert(id);
    }
    receiver.wait_for(30);
    // Every delivery recorded as delivered, then a pause in which a second delivery by
    // the other node's worker would arrive.
    let started = Instant::now();
    loop {
        use eportfolio::schema::webhook_deliveries;
        let mut conn = eportfolio::db::connect(&app.config.database_url, 1)
            .expect("pool")
            .get()
            .expect("conn");
        let statuses: Vec<String> = webhook_deliveries::table
            .select(webhook_deliveries::status)
            .load(&mut *conn)
            .expect("deliveries");
        if statuses.len() == 30 && statuses.iter().all(|s| s == "delivered") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "deliveries: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));

    let got = receiver.received();
    let mut per_message: HashMap<String, usize> = HashMap::new();
    let mut activities = HashSet::new();
    for request in &got {
        let message = request
            .headers
            .get("webhook-id")
            .expect("webhook-id header")
            .clone();
        *per_message.entry(message).or_default() += 1;
        let body: Value = serde_json::from_str(&request.body).expect("json body");
        activities.insert(
            body["data"]["activity"]["id"]
                .as_str()
                .expect("activity id")
                .to_string(),
        );
    }
    assert_eq!(got.len(), 30, "one request per event, not one per node");
    assert!(per_message.values().all(|n| *n == 1), "{per_message:?}");
    assert_eq!(activities, created);
}
