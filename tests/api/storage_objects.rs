//! Attachments in an S3-compatible bucket (`ATTACHMENT_STORE`). A node whose bucket
//! cannot be used refuses to start and says why; against a real server (moto, started
//! by .ci/objectstore.sh) uploads go up in parts and come back whole, an abandoned
//! upload leaves nothing, and housekeeping sweeps the bucket's orphans but never a named
//! attachment. The rest of the attachment, backup and storage tests run against the
//! bucket in that pass too.

use serde_json::json;

use crate::support::{blobs, TestApp};

/// `eportfolio` with only the variables given (plus PATH), and what it printed.
fn serve_with(vars: &[(&str, &str)]) -> (bool, String) {
    let dir =
        std::env::temp_dir().join(format!("eportfolio-test-{}", uuid::Uuid::new_v4().simple()));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EPORTFOLIO_DATA_DIR", &dir)
        .env("EPORTFOLIO_BIND", "127.0.0.1:0");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run eportfolio");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn a_node_whose_bucket_cannot_be_used_refuses_to_start_and_says_why() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let base = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret-never-logged"),
        ("AWS_REGION", "us-east-1"),
    ];
    // Nothing answers at the endpoint.
    let mut vars = base.to_vec();
    vars.push(("ATTACHMENT_STORE", "s3://eportfolio-attachments/node"));
    let (ok, out) = serve_with(&vars);
    assert!(!ok, "{out}");
    assert!(
        out.contains("ATTACHMENT_STORE") && out.contains("the bucket cannot be used"),
        "{out}"
    );
    assert!(!out.contains("test-secret-never-logged"), "{out}");

    // Not S3, not a bucket name, or S3 in clear without the loopback opt-in.
    for (store, says) in [
        ("ftp://files/attachments", "only S3-compatible"),
        ("s3://No_Such_Name/x", "not a valid bucket name"),
        ("s3://bucket/a/../b", "`..`"),
    ] {
        let mut vars = base.to_vec();
        vars.push(("ATTACHMENT_STORE", store));
        let (ok, out) = serve_with(&vars);
        assert!(!ok && out.contains(says), "{store}: {out}");
    }
    let vars = [
        ("ATTACHMENT_STORE", "s3://eportfolio-attachments/node"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ];
    let (ok, out) = serve_with(&vars);
    assert!(!ok && out.contains("AWS_ALLOW_HTTP"), "{out}");

    // A real server (.ci/objectstore.sh) without the bucket named.
    if let Some(real) = blobs::store_config(std::path::Path::new("x")) {
        let endpoint = real.endpoint.clone().unwrap_or_default();
        let vars = [
            ("ATTACHMENT_STORE", "s3://no-such-bucket-here/node"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ];
        let (ok, out) = serve_with(&vars);
        assert!(
            !ok && out.contains("the bucket cannot be used"),
            "no such bucket: {out}"
        );
    }
}

fn pdf(len: usize, seed: usize) -> Vec<u8> {
    b"%PDF-1.7\n"
        .iter()
        .copied()
        .chain((0..len).map(|i| ((i * seed + seed) % 251) as u8))
        .collect()
}

#[test]
fn attachments_go_up_in_parts_come_back_whole_and_orphans_in_the_bucket_are_swept() {
    if !blobs::object_store() {
        eprintln!("skipped: needs ATTACHMENT_STORE (.ci/objectstore.sh runs it)");
        return;
    }
    let app = TestApp::start_with(|c| {
        // Larger than a multipart part (5 MiB): the upload goes up in three parts.
        c.attachment_max_bytes = 16 * 1024 * 1024;
    });
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
    let a = app
        .post(
            &format!(
                "/enrolments/{}/activities",
                e.body["id"].as_str().expect("id")
            ),
            Some(&trainee.access),
            json!({"kind": "self_study", "title": "Kurs", "start_date": "2026-10-01"}),
        )
        .expect(201);
    let upload = |bytes: &[u8]| {
        app.send_raw(
            "POST",
            &format!(
                "/activities/{}/attachments?filename=intyg.pdf",
                a.body["id"].as_str().expect("id")
            ),
            Some(&trainee.access),
            "application/pdf",
            bytes,
        )
    };
    let big = pdf(12 * 1024 * 1024, 7);
    let stored = upload(&big).expect(201);
    let key = blobs::key_of(&stored.body);
    let got = app.send(
        "GET",
        stored.body["href"].as_str().expect("href"),
        Some(&trainee.access),
        None,
        &[],
    );
    let got = got.expect(200);
    assert_eq!(got.bytes.len(), big.len());
    assert!(got.bytes == big, "the same bytes come back");
    assert_eq!(blobs::read(&app.dir, &key).as_deref(), Some(&big[..]));

    // Too large: refused, and the multipart upload is abandoned, not published.
    let before = blobs::open(&app.dir)
        .committed_before(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .expect("list");
    upload(&pdf(17 * 1024 * 1024, 3)).expect_problem(413, "payload-too-large");
    let after = blobs::open(&app.dir)
        .committed_before(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .expect("list");
    assert_eq!(before, after);

    // An object some stopped node committed without its row.
    blobs::put(&app.dir, "ab0123orphan", b"no row names this");
    let store = blobs::open(&app.dir);
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    // Too young to sweep: it may be an upload whose row is on its way.
    let now = std::time::SystemTime::now();
    let swept = eportfolio::storage::sweep(&mut conn, &*store, now).expect("sweep");
    assert_eq!(swept, eportfolio::storage::Swept::default());
    // Two hours on, it goes; the named attachment stays.
    let later = now + std::time::Duration::from_secs(7200);
    let swept = eportfolio::storage::sweep(&mut conn, &*store, later).expect("sweep");
    assert_eq!(
        swept,
        eportfolio::storage::Swept {
            parts: 0,
            orphans: 1
        }
    );
    assert!(blobs::read(&app.dir, "ab0123orphan").is_none());
    assert_eq!(blobs::read(&app.dir, &key).as_deref(), Some(&big[..]));
    let findings = eportfolio::storage::verify_attachments(&mut conn, &*store).expect("verify");
    assert!(findings.is_empty(), "{findings:?}");
}
