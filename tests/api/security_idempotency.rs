//! Issue 12, items 12 and 13: an Idempotency-Key is reserved by one conditional
//! statement (N identical requests at once: one effect), and it commits with the write,
//! so a retry after the server died never repeats the write.

use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use eportfolio::schema::idempotency_keys;
use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

fn conn(app: &TestApp) -> eportfolio::db::PooledConn {
    eportfolio::db::connect(&app.config.database_url, 1)
        .expect("pool")
        .get()
        .expect("conn")
}

/// A trainee with an enrolment; returns the trainee and the enrolment id.
fn trainee_world(app: &TestApp) -> (TestUser, String) {
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
    (trainee, e.body["id"].as_str().expect("id").to_string())
}

/// How many activities of the enrolment have this title.
fn titled(app: &TestApp, token: &str, enrolment: &str, title: &str) -> usize {
    app.get(
        &format!("/enrolments/{enrolment}/activities?limit=200"),
        Some(token),
    )
    .expect(200)
    .body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|a| a["title"] == title)
        .count()
}

#[test]
fn parallel_requests_with_one_idempotency_key_log_one_activity() {
    let app = TestApp::start();
    let (trainee, enrolment) = trainee_world(&app);
    let url = format!("{}/api/v1/enrolments/{enrolment}/activities", app.base);
    let body = json!({"kind": "self_study", "title": "Parallell", "start_date": "2026-10-01",
                      "delmal": ["BT7"]});
    const N: usize = 12;
    let barrier = Arc::new(Barrier::new(N));
    let answers: Vec<(u16, Option<String>, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                let (url, token, body, barrier) = (
                    url.clone(),
                    trainee.access.clone(),
                    body.clone(),
                    barrier.clone(),
                );
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(30))
                        .build();
                    let req = agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {token}"))
                        .set("Idempotency-Key", "one-activity");
                    barrier.wait();
                    let r = TestApp::read(req.send_json(body));
                    let replayed = r.header("idempotent-replayed").map(str::to_string);
                    (r.status, replayed, r.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let fresh: Vec<_> = answers
        .iter()
        .filter(|(s, replayed, _)| *s == 201 && replayed.is_none())
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one request ran: {answers:?}");
    for (status, replayed, v) in &answers {
        match status {
            201 => {
                if replayed.is_some() {
                    assert_eq!(v, &fresh[0].2, "a replay is the first answer");
                }
            }
            409 => assert_eq!(
                v["type"], "https://eportfolio.example/problems/idempotency-in-progress",
                "{v}"
            ),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(titled(&app, &trainee.access, &enrolment, "Parallell"), 1);
}

#[test]
fn a_retry_after_the_answer_was_lost_with_its_server_does_not_log_the_activity_twice() {
    let app = TestApp::start();
    let (trainee, enrolment) = trainee_world(&app);
    let path = format!("/enrolments/{enrolment}/activities");
    let body = json!({"kind": "self_study", "title": "Kvar efter krasch", "start_date": "2026-10-01",
                      "delmal": ["BT7"]});
    let key = [("Idempotency-Key", "lost-answer")];
    app.send("POST", &path, Some(&trainee.access), Some(&body), &key)
        .expect(201);
    // The key committed with the activity (its transaction), marked so.
    let outcome: Option<String> = idempotency_keys::table
        .filter(idempotency_keys::key.eq("lost-answer"))
        .select(idempotency_keys::outcome)
        .first(&mut *conn(&app))
        .expect("key row");
    assert_eq!(outcome.as_deref(), Some("committed"));
    // What a server killed after that commit, before storing the answer, leaves behind.
    diesel::update(idempotency_keys::table.filter(idempotency_keys::key.eq("lost-answer")))
        .set((
            idempotency_keys::status_code.eq(None::<i32>),
            idempotency_keys::content_type.eq(None::<String>),
            idempotency_keys::etag.eq(None::<String>),
            idempotency_keys::response_body.eq(None::<String>),
        ))
        .execute(&mut *conn(&app))
        .expect("forget the answer");

    // At once: the first request may still be answering.
    app.send("POST", &path, Some(&trainee.access), Some(&body), &key)
        .expect_problem(409, "idempotency-in-progress");
    // 62 s later (the takeover that made a second activity before): done, not repeated.
    app.advance(62);
    let retry = app
        .send("POST", &path, Some(&trainee.access), Some(&body), &key)
        .expect_problem(409, "idempotency-answer-lost");
    assert!(retry.text.contains("carried out"), "{}", retry.text);
    app.advance(300);
    app.send("POST", &path, Some(&trainee.access), Some(&body), &key)
        .expect_problem(409, "idempotency-answer-lost");
    assert_eq!(
        titled(&app, &trainee.access, &enrolment, "Kvar efter krasch"),
        1
    );
}

#[test]
fn a_retry_on_another_node_after_a_sigkill_never_logs_an_activity_twice() {
    let app = TestApp::start();
    // The spawned server runs on the real clock: so must the tokens.
    app.clock.set(chrono::Utc::now());
    let (trainee, enrolment) = trainee_world(&app);
    let (mut child, base) = crate::crash::spawn_server(&app);
    let body_of = |i: usize| {
        json!({"kind": "self_study", "title": format!("skrivning {i}"),
               "start_date": "2026-10-01", "delmal": ["BT7"]})
    };
    let acknowledged = Arc::new(Mutex::new(0usize));
    let writer = {
        let (acknowledged, token) = (acknowledged.clone(), trainee.access.clone());
        let url = format!("{base}/api/v1/enrolments/{enrolment}/activities");
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            // Bounded: at most 5,000 writes or until the server is gone.
            for i in 0..5_000 {
                let sent = agent
                    .post(&url)
                    .set("Authorization", &format!("Bearer {token}"))
                    .set("Idempotency-Key", &format!("k{i}"))
                    .send_json(body_of(i));
                match sent {
                    Ok(r) if r.status() == 201 => *acknowledged.lock().expect("lock") += 1,
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(ureq::Error::Status(code, r)) => {
                        panic!("{code}: {}", r.into_string().unwrap_or_default())
                    }
                    // The server died under us: this one is unacknowledged.
                    Err(_) => return,
                }
            }
        })
    };
    let started = std::time::Instant::now();
    while *acknowledged.lock().expect("lock") < 30 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    writer.join().expect("writer");
    let acked = *acknowledged.lock().expect("lock");
    assert!(acked >= 30, "only {acked} writes before the kill");

    // The client retries what it got no answer for, on the other node, two minutes on
    // (past the 60 s after which a dead reservation may be taken over).
    app.clock
        .set(chrono::Utc::now() + chrono::Duration::seconds(120));
    let lost = acked;
    let retry = app.send(
        "POST",
        &format!("/enrolments/{enrolment}/activities"),
        Some(&trainee.access),
        Some(&body_of(lost)),
        &[("Idempotency-Key", &format!("k{lost}"))],
    );
    match retry.status {
        201 => {}
        409 => assert_eq!(
            retry.body["type"], "https://eportfolio.example/problems/idempotency-answer-lost",
            "{}",
            retry.text
        ),
        other => panic!("unexpected {other}: {}", retry.text),
    }
    assert_eq!(
        titled(
            &app,
            &trainee.access,
            &enrolment,
            &format!("skrivning {lost}")
        ),
        1,
        "the write in flight at the kill exists exactly once after the retry"
    );
    // An acknowledged one retried is replayed, not repeated.
    let again = app
        .send(
            "POST",
            &format!("/enrolments/{enrolment}/activities"),
            Some(&trainee.access),
            Some(&body_of(0)),
            &[("Idempotency-Key", "k0")],
        )
        .expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(titled(&app, &trainee.access, &enrolment, "skrivning 0"), 1);
}
