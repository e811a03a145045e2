//! Killing the server (SIGKILL) in the middle of a stream of writes loses nothing that
//! was acknowledged, and leaves nothing half-written.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::TestApp;

/// The real binary, on the test's database and data directory (so it shares the
/// signing secret and accepts the test's tokens).
pub(crate) fn spawn_server(app: &TestApp) -> (Child, String) {
    spawn_server_with(app, &[])
}

/// As [`spawn_server`], with more environment variables for the node.
pub(crate) fn spawn_server_with(app: &TestApp, env: &[(&str, &str)]) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_eportfolio"))
        .arg("serve")
        .env("DATABASE_URL", &app.config.database_url)
        .env("EPORTFOLIO_DATA_DIR", &app.dir)
        .env("EPORTFOLIO_BIND", format!("127.0.0.1:{port}"))
        .env("ARGON2_MEMORY_KIB", "1024")
        .env("ARGON2_ITERATIONS", "1")
        .env("EPORTFOLIO_WORKERS", "2")
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start eportfolio");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if ureq::get(&format!("{base}/ready")).call().is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, base)
}

#[test]
fn a_killed_server_keeps_every_acknowledged_write() {
    let app = TestApp::start();
    // The spawned server runs on the real clock: tokens must be issued on it too, or
    // they have expired (15 minutes) whenever the test runs later in the day than the
    // test clock's fixed start.
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

    let (mut child, base) = spawn_server(&app);
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop, token) =
            (acknowledged.clone(), stop.clone(), trainee.access.clone());
        let url = format!("{base}/api/v1/enrolments/{enrolment}/activities");
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            let mut i = 0;
            // Bounded: at most 5,000 writes or until the server is gone.
            while !stop.load(Ordering::SeqCst) && i < 5_000 {
                let id = uuid::Uuid::new_v4().to_string();
                let body = json!({"id": id, "kind": "self_study", "title": format!("skrivning {i}"),
                                  "start_date": "2026-10-01", "delmal": ["BT7"]});
                match agent
                    .post(&url)
                    .set("Authorization", &format!("Bearer {token}"))
                    .send_json(body)
                {
                    Ok(r) if r.status() == 201 => acknowledged.lock().expect("lock").push(id),
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(ureq::Error::Status(code, r)) => {
                        panic!("{code}: {}", r.into_string().unwrap_or_default())
                    }
                    // The server died under us: unacknowledged, may or may not be there.
                    Err(_) => break,
                }
                i += 1;
            }
        })
    };
    // Let a stream build up, then pull the plug mid-write.
    let started = Instant::now();
    while acknowledged.lock().expect("lock").len() < 40
        && started.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 40,
        "only {} writes before the kill",
        acknowledged.len()
    );

    // Restarted on the same database: every acknowledged write is there.
    let (mut child, base) = spawn_server(&app);
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/enrolments/{enrolment}/activities?limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: serde_json::Value = ureq::get(&url)
            .set("Authorization", &format!("Bearer {}", trainee.access))
            .call()
            .expect("list")
            .into_json()
            .expect("json");
        for a in page["items"].as_array().expect("items") {
            // Nothing half-written: every activity has its delmål link.
            assert_eq!(a["delmal"], json!(["BT7"]), "{a}");
            found.push(a["id"].as_str().expect("id").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    child.kill().expect("stop");
    child.wait().expect("reap");
    for id in &acknowledged {
        assert!(found.contains(id), "acknowledged write {id} lost");
    }
    assert!(
        found.len() <= acknowledged.len() + 1,
        "at most the one write in flight may also have landed"
    );
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    assert!(eportfolio::audit::verify(&mut conn).expect("verify").intact);
}
