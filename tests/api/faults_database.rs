//! Faults survived: the database goes away in the middle of a stream of writes (issue
//! 18). A PostgreSQL cluster of the test's own, on its own port, is stopped and started
//! again under the running server: meanwhile every request gets 503 with
//! `Retry-After` within the connection timeout, afterwards the server serves again by
//! itself, and no acknowledged write is missing.
//!
//! Runs in the PostgreSQL pass of the suite (`TEST_DATABASE_URL` set, so Debian's
//! PostgreSQL binaries are installed); on SQLite the database cannot go away.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::TestApp;

/// A PostgreSQL cluster of this test's own, stopped and removed when dropped.
struct Cluster {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL binaries in /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("pg_ctl").exists())
            .max_by_key(|p| {
                p.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .expect("a PostgreSQL version with pg_ctl");
        let dir =
            std::env::temp_dir().join(format!("eportfolio-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let cluster = Cluster { bin, dir, port };
        if is_root() {
            // PostgreSQL refuses to run as root.
            cluster.run(Command::new("chown").arg("postgres").arg(&cluster.dir));
        }
        let mut initdb = cluster.as_postgres("initdb");
        initdb
            .arg("-D")
            .arg(cluster.data())
            .args(["-A", "trust", "-U", "postgres"]);
        cluster.run(&mut initdb);
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_postgres(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, cmd: &mut Command) {
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let mut c = self.as_postgres("pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "start", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.display()
            ));
        self.run(&mut c);
    }

    /// Stops the server at once, as a crash or a killed container would: sessions are
    /// cut off in the middle of their transactions.
    fn stop(&self) {
        let mut c = self.as_postgres("pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"]);
        self.run(&mut c);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// One write of the stream: what the client was told, and how long it took.
#[derive(Debug)]
struct Attempt {
    title: String,
    status: u16,
    retry_after: Option<String>,
    id: Option<String>,
    took: Duration,
}

#[test]
fn the_database_going_away_gives_503_and_loses_no_acknowledged_write() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        // SQLite: the database is a file of this process, it cannot go away.
        return;
    }
    let cluster = Cluster::start();
    let timeout = Duration::from_secs(2);
    let app = TestApp::start_with(|c| {
        c.database_url = cluster.url();
        c.db_connect_timeout = timeout;
    });
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
    let url = format!(
        "{}/api/v1/enrolments/{}/activities",
        app.base,
        enrolment.body["id"].as_str().expect("id")
    );

    // Three clients write without pause, each write with its own Idempotency-Key.
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, attempts, url, token) = (
                stop.clone(),
                attempts.clone(),
                url.clone(),
                trainee.access.clone(),
            );
            std::thread::spawn(move || {
                // Far above the server's own timeouts: a request that hangs shows here.
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let title = format!("Läsning {w}-{n}");
                    let started = Instant::now();
                    let result = agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {token}"))
                        .set("Idempotency-Key", &uuid::Uuid::new_v4().to_string())
                        .send_json(json!({"kind": "self_study", "title": title,
                                          "start_date": "2026-10-01", "delmal": ["BT7"]}));
                    let took = started.elapsed();
                    let (status, retry_after, id) = match result {
                        Ok(r) => {
                            let body: serde_json::Value = r.into_json().expect("json");
                            (201, None, body["id"].as_str().map(str::to_string))
                        }
                        Err(ureq::Error::Status(s, r)) => {
                            (s, r.header("retry-after").map(str::to_string), None)
                        }
                        Err(e) => panic!("transport error (a hang or a dropped connection): {e}"),
                    };
                    attempts.lock().expect("lock").push(Attempt {
                        title,
                        status,
                        retry_after,
                        id,
                        took,
                    });
                    if status != 201 {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        })
        .collect();
    let acknowledged = |attempts: &Mutex<Vec<Attempt>>| {
        attempts
            .lock()
            .expect("lock")
            .iter()
            .filter(|a| a.status == 201)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged(&attempts) < 10 {
        assert!(Instant::now() < deadline, "no writes before the outage");
        std::thread::sleep(Duration::from_millis(20));
    }

    cluster.stop();
    let stopped_at = attempts.lock().expect("lock").len();
    // While it is down: readiness says so, with Retry-After, within the timeout.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let ready = app.get("/ready", None);
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(ready.header("retry-after").is_some(), "{:?}", ready.headers);
    assert!(started.elapsed() < timeout + Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(4));
    let during = attempts.lock().expect("lock").len();
    assert!(
        during > stopped_at,
        "the writers made no request during the outage"
    );

    cluster.pg_ctl_start();
    // The server serves again by itself: writes are acknowledged again.
    let restarted_acks = acknowledged(&attempts);
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged(&attempts) < restarted_acks + 10 {
        assert!(
            Instant::now() < deadline,
            "no write acknowledged after the database came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }

    let attempts = attempts.lock().expect("lock");
    let refused: Vec<&Attempt> = attempts.iter().filter(|a| a.status != 201).collect();
    assert!(!refused.is_empty(), "no request saw the outage");
    for a in &refused {
        assert_eq!(a.status, 503, "{a:?}");
        assert_eq!(a.retry_after.as_deref(), Some("5"), "{a:?}");
    }
    for a in attempts.iter() {
        // Waiting for a connection takes `timeout`; nothing hangs beyond it.
        assert!(a.took < timeout + Duration::from_secs(3), "{a:?}");
    }
    // Every write the clients were told about is there.
    let acked: Vec<&Attempt> = attempts.iter().filter(|a| a.status == 201).collect();
    for a in &acked {
        let id = a.id.as_deref().expect("id");
        let got = app
            .get(&format!("/activities/{id}"), Some(&trainee.access))
            .expect(200);
        assert_eq!(got.body["title"], a.title.as_str());
    }
    let ready = app.get("/ready", None);
    assert_eq!(ready.status, 200, "{}", ready.text);
}
