//! An object store that fails while the service runs, and one that refuses the
//! credentials at start-up. A tiny S3 stand-in on loopback answers what a node asks
//! when it starts (list, write and remove a probe) and then goes away, leaving a closed
//! port: uploads and downloads get 503 `attachment-store-unavailable` with Retry-After,
//! and no row names an object that is not there. Another answers everything with S3's
//! AccessDenied: the node refuses to start and says the credentials were refused. (moto
//! takes any key unless IAM users are set up through its own API, so it cannot stand in
//! for wrong credentials.) Runs on every backend, with or without .ci/objectstore.sh.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;

use crate::support::hooks::read_request;
use crate::support::{TestApp, TestUser};

/// How the stand-in answers.
#[derive(Clone, Copy)]
enum Answers {
    /// Lists nothing, takes writes and removals: enough for a node to start.
    StartUp,
    /// 403 AccessDenied to everything, as S3 answers a wrong secret key.
    AccessDenied,
}

/// An S3 stand-in on a loopback port until `go_away`, then a closed port.
struct FakeS3 {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeS3 {
    fn start(answers: Answers) -> FakeS3 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let mut stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Some(req) = read_request(&mut stream) else {
                    continue;
                };
                let (status, headers, body) = match (answers, req.method.as_str()) {
                    (Answers::AccessDenied, _) => (
                        "403 Forbidden",
                        "Content-Type: application/xml\r\n",
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied\
                         </Code><Message>Access Denied</Message><RequestId>1</RequestId></Error>"
                            .to_string(),
                    ),
                    (Answers::StartUp, "GET") => (
                        "200 OK",
                        "Content-Type: application/xml\r\n",
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult \
                         xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bucket</Name>\
                         <Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>\
                         <IsTruncated>false</IsTruncated></ListBucketResult>"
                            .to_string(),
                    ),
                    (Answers::StartUp, "PUT") => ("200 OK", "ETag: \"probe\"\r\n", String::new()),
                    // Removals are DeleteObjects requests: each key answered as deleted.
                    (Answers::StartUp, "POST") => {
                        let key = req
                            .body
                            .split_once("<Key>")
                            .and_then(|(_, rest)| rest.split_once("</Key>"))
                            .map_or("", |(key, _)| key)
                            .to_string();
                        (
                            "200 OK",
                            "Content-Type: application/xml\r\n",
                            format!(
                                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult \
                                 xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Deleted>\
                                 <Key>{key}</Key></Deleted></DeleteResult>"
                            ),
                        )
                    }
                    (Answers::StartUp, _) => ("204 No Content", "", String::new()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            // The listener goes with the thread: the port is closed from here on.
        });
        FakeS3 {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn config(&self) -> eportfolio::storage::ObjectStoreConfig {
        eportfolio::storage::ObjectStoreConfig {
            bucket: "eportfolio-outage".into(),
            prefix: "node".into(),
            endpoint: Some(format!("http://127.0.0.1:{}", self.port)),
            region: "us-east-1".into(),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test-secret-never-logged".into()),
            session_token: None,
            allow_http: true,
        }
    }

    /// Stops answering and closes the port, as a store that crashed.
    fn go_away(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeS3 {
    fn drop(&mut self) {
        self.go_away();
    }
}

struct World {
    trainee: TestUser,
    enrolment: String,
    activity: String,
}

fn world(app: &TestApp) -> World {
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
    let a = app
        .post(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&trainee.access),
            json!({"kind": "self_study", "title": "Kurs", "start_date": "2026-10-01"}),
        )
        .expect(201);
    World {
        trainee,
        enrolment,
        activity: a.body["id"].as_str().expect("id").to_string(),
    }
}

#[test]
fn a_store_that_goes_away_gives_503_with_retry_after_and_no_row_without_its_object() {
    let mut s3 = FakeS3::start(Answers::StartUp);
    let config = s3.config();
    let app = TestApp::start_with(|c| c.attachment_store = Some(config));
    let w = world(&app);
    // An attachment stored while the store still answered.
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let stored = uuid::Uuid::new_v4().to_string();
    let sha = "ab".repeat(32);
    diesel::insert_into(eportfolio::schema::attachments::table)
        .values((
            eportfolio::schema::attachments::id.eq(&stored),
            eportfolio::schema::attachments::enrolment_id.eq(&w.enrolment),
            eportfolio::schema::attachments::record_id.eq(&w.activity),
            eportfolio::schema::attachments::filename.eq("intyg.pdf"),
            eportfolio::schema::attachments::content_type.eq("application/pdf"),
            eportfolio::schema::attachments::size_bytes.eq(10_i64),
            eportfolio::schema::attachments::sha256.eq(&sha),
            eportfolio::schema::attachments::storage_key
                .eq(eportfolio::storage::content_key(&sha).expect("key")),
            eportfolio::schema::attachments::uploaded_by.eq(&w.trainee.id),
            eportfolio::schema::attachments::created_at.eq(chrono::Utc::now().naive_utc()),
        ))
        .execute(&mut *conn)
        .expect("row");

    s3.go_away();

    // An upload: 503, with the stable code and a pause to retry after; no row.
    let upload = app.send_raw(
        "POST",
        &format!("/activities/{}/attachments?filename=intyg.pdf", w.activity),
        Some(&w.trainee.access),
        "application/pdf",
        b"%PDF-1.7\nstored while the store is away",
    );
    let upload = upload.expect_problem(503, "attachment-store-unavailable");
    assert!(
        upload.header("retry-after").is_some(),
        "{:?}",
        upload.headers
    );
    assert!(
        !upload.text.contains("127.0.0.1") && !upload.text.contains("test-secret"),
        "the store's address stays in the log: {}",
        upload.text
    );
    let names: i64 = eportfolio::schema::attachments::table
        .filter(eportfolio::schema::attachments::record_id.eq(&w.activity))
        .count()
        .get_result(&mut *conn)
        .expect("count");
    assert_eq!(names, 1, "no row names the object that was never stored");

    // A download of what was stored before: 503 too, not 500 or `attachment-damaged`.
    let got = app.send(
        "GET",
        &format!("/attachments/{stored}"),
        Some(&w.trainee.access),
        None,
        &[],
    );
    let got = got.expect_problem(503, "attachment-store-unavailable");
    assert!(got.header("retry-after").is_some());

    // Everything that needs no store goes on.
    app.post(
        &format!("/enrolments/{}/activities", w.enrolment),
        Some(&w.trainee.access),
        json!({"kind": "self_study", "title": "Efteråt", "start_date": "2026-10-02"}),
    )
    .expect(201);
}

#[test]
fn a_node_whose_store_refuses_the_credentials_does_not_start_and_says_so() {
    let s3 = FakeS3::start(Answers::AccessDenied);
    let config = s3.config();
    let refused = match eportfolio::storage::S3Store::open(&config) {
        Ok(_) => panic!("a store that refuses the credentials was opened"),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.contains("credentials") && refused.contains("AWS_SECRET_ACCESS_KEY"),
        "{refused}"
    );
    assert!(!refused.contains("test-secret-never-logged"), "{refused}");

    // The server itself: it exits with the message, before it listens.
    let dir =
        std::env::temp_dir().join(format!("eportfolio-test-{}", uuid::Uuid::new_v4().simple()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EPORTFOLIO_DATA_DIR", &dir)
        .env("EPORTFOLIO_BIND", "127.0.0.1:0")
        .env("ATTACHMENT_STORE", "s3://eportfolio-outage/node")
        .env(
            "AWS_ENDPOINT_URL",
            config.endpoint.as_deref().unwrap_or_default(),
        )
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "wrong")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret-never-logged")
        .output()
        .expect("run eportfolio");
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("ATTACHMENT_STORE") && text.contains("refused the credentials"),
        "{text}"
    );
    assert!(!text.contains("test-secret-never-logged"), "{text}");
}
