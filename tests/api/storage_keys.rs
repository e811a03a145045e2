//! Attachments land under their content hash (`sha256/ab/cd/<hex>`), on the local disk
//! and in a bucket alike (.ci/objectstore.sh runs these against moto): the same file
//! uploaded twice is stored once, removing one attachment (or erasing its rows) leaves
//! the bytes another still names, a blob published again is never swept from under its
//! new row, and rows written before content keys (named by the attachment's id) are
//! still served, verified and backed up.

use std::time::{Duration, SystemTime};

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::support::{blobs, new_database_url, Resp, TestApp, TestUser};
use eportfolio::schema::attachments;

struct World {
    trainee: TestUser,
    activities: Vec<String>,
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
    let list = format!(
        "/enrolments/{}/activities",
        e.body["id"].as_str().expect("id")
    );
    let activities = ["Kurs", "Auskultation"]
        .iter()
        .map(|title| {
            app.post(
                &list,
                Some(&trainee.access),
                json!({"kind": "self_study", "title": title, "start_date": "2026-10-01"}),
            )
            .expect(201)
            .body["id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect();
    World {
        trainee,
        activities,
    }
}

fn pdf(len: usize, seed: usize) -> Vec<u8> {
    b"%PDF-1.7\n"
        .iter()
        .copied()
        .chain((0..len).map(|i| ((i * seed + seed) % 251) as u8))
        .collect()
}

fn upload(app: &TestApp, w: &World, activity: usize, bytes: &[u8]) -> Resp {
    app.send_raw(
        "POST",
        &format!(
            "/activities/{}/attachments?filename=intyg.pdf",
            w.activities[activity]
        ),
        Some(&w.trainee.access),
        "application/pdf",
        bytes,
    )
}

fn download(app: &TestApp, w: &World, a: &Value) -> Resp {
    app.send(
        "GET",
        a["href"].as_str().expect("href"),
        Some(&w.trainee.access),
        None,
        &[],
    )
}

/// Every committed blob of the test's store.
fn stored_keys(app: &TestApp) -> Vec<String> {
    let mut keys = blobs::open(&app.dir)
        .committed_before(SystemTime::now() + Duration::from_secs(3600))
        .expect("list");
    keys.sort();
    keys
}

fn key_in_db(conn: &mut eportfolio::db::DbConn, id: &str) -> String {
    attachments::table
        .find(id)
        .select(attachments::storage_key)
        .first(conn)
        .expect("key")
}

#[test]
fn the_same_file_twice_is_stored_once_and_stays_while_any_row_names_it() {
    let app = TestApp::start();
    let w = world(&app);
    let bytes = pdf(50_000, 3);
    let first = upload(&app, &w, 0, &bytes).expect(201);
    let second = upload(&app, &w, 1, &bytes).expect(201);
    let other = upload(&app, &w, 1, &pdf(20_000, 5)).expect(201);
    let key = blobs::key_of(&first.body);
    let sha = first.body["sha256"].as_str().expect("sha256");
    assert_eq!(key, format!("sha256/{}/{}/{sha}", &sha[..2], &sha[2..4]));
    assert_eq!(second.body["sha256"], first.body["sha256"]);

    // Both rows name the one blob; the store holds two blobs for three attachments.
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let first_id = first.body["id"].as_str().expect("id");
    let second_id = second.body["id"].as_str().expect("id");
    assert_eq!(key_in_db(&mut conn, first_id), key);
    assert_eq!(key_in_db(&mut conn, second_id), key);
    let mut expected = vec![key.clone(), blobs::key_of(&other.body)];
    expected.sort();
    assert_eq!(stored_keys(&app), expected);
    if !blobs::object_store() {
        let path = key
            .split('/')
            .fold(app.dir.join("attachments"), |p, s| p.join(s));
        assert!(path.is_file(), "{}", path.display());
    }

    // Removing one attachment leaves the bytes the other names.
    app.send(
        "DELETE",
        &format!("/attachments/{first_id}"),
        Some(&w.trainee.access),
        None,
        &[],
    )
    .expect(204);
    let got = download(&app, &w, &second.body).expect(200);
    assert!(got.bytes == bytes);

    // Rows hard-deleted (an erasure, a retention round) release their blob only when
    // no other row names it.
    let store = blobs::open(&app.dir);
    diesel::delete(attachments::table.find(first_id))
        .execute(&mut *conn)
        .expect("delete row");
    eportfolio::storage::remove_released(&mut conn, &*store, std::slice::from_ref(&key));
    assert_eq!(blobs::read(&app.dir, &key).as_deref(), Some(&bytes[..]));
    download(&app, &w, &second.body).expect(200);

    // The sweep, two hours on, takes nothing a row names.
    let later = SystemTime::now() + Duration::from_secs(7200);
    let swept = eportfolio::storage::sweep(&mut conn, &*store, later).expect("sweep");
    assert_eq!(swept, eportfolio::storage::Swept::default());

    // The last row gone, the blob goes with it (a second later: S3 keeps whole seconds).
    diesel::delete(attachments::table.find(second_id))
        .execute(&mut *conn)
        .expect("delete row");
    std::thread::sleep(Duration::from_millis(2100));
    eportfolio::storage::remove_released(&mut conn, &*store, std::slice::from_ref(&key));
    assert!(blobs::read(&app.dir, &key).is_none());
    assert_eq!(stored_keys(&app), vec![blobs::key_of(&other.body)]);
}

#[test]
fn a_blob_uploaded_again_is_not_swept_from_under_its_new_row() {
    let app = TestApp::start();
    let w = world(&app);
    let bytes = pdf(30_000, 7);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let key = eportfolio::storage::content_key(&sha).expect("key");
    // Left by an attachment whose rows are gone: no row names it.
    blobs::put(&app.dir, &key, &bytes);
    std::thread::sleep(Duration::from_millis(2100));
    let checked = SystemTime::now();
    std::thread::sleep(Duration::from_millis(1100));
    // The same file uploaded anew, while a sweep has found the blob unnamed...
    let again = upload(&app, &w, 0, &bytes).expect(201);
    assert_eq!(blobs::key_of(&again.body), key);
    // ...which then keeps it: it was written after the sweep looked.
    let store = blobs::open(&app.dir);
    assert!(!store.remove(&key, checked).expect("remove"));
    download(&app, &w, &again.body).expect(200);
    // A fresh upload's leftovers are in flight: the sweep of now takes none of them.
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    blobs::put(&app.dir, "ab0123orphan", b"no row names this");
    let swept = eportfolio::storage::sweep(&mut conn, &*store, SystemTime::now()).expect("sweep");
    assert_eq!(swept, eportfolio::storage::Swept::default());
    assert!(blobs::read(&app.dir, "ab0123orphan").is_some());
}

#[test]
fn rows_from_before_content_keys_are_still_served_verified_and_backed_up() {
    let app = TestApp::start();
    let w = world(&app);
    let bytes = pdf(25_000, 11);
    let a = upload(&app, &w, 0, &bytes).expect(201);
    let id = a.body["id"].as_str().expect("id").to_string();
    let key = blobs::key_of(&a.body);
    // As an earlier version stored it: under the attachment's id, the row naming that.
    blobs::put(&app.dir, &id, &bytes);
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    diesel::update(attachments::table.find(&id))
        .set(attachments::storage_key.eq(&id))
        .execute(&mut *conn)
        .expect("old key");
    blobs::remove(&app.dir, &key);
    if !blobs::object_store() {
        assert!(app
            .dir
            .join("attachments")
            .join(&id[..2])
            .join(&id)
            .is_file());
    }

    let got = download(&app, &w, &a.body).expect(200);
    assert!(got.bytes == bytes);
    let store = blobs::open(&app.dir);
    assert!(eportfolio::storage::verify_attachments(&mut conn, &*store)
        .expect("verify")
        .is_empty());
    // The sweep leaves it (its row names it), and an orphan of either layout goes.
    blobs::put(&app.dir, "ab0123orphan", b"no row names this");
    let orphan_key = eportfolio::storage::content_key(&"0".repeat(64)).expect("key");
    blobs::put(&app.dir, &orphan_key, b"nor this");
    let later = SystemTime::now() + Duration::from_secs(7200);
    let swept = eportfolio::storage::sweep(&mut conn, &*store, later).expect("sweep");
    assert_eq!(swept.orphans, 2);
    assert_eq!(stored_keys(&app), vec![id.clone()]);

    // A backup carries it under its old key, and a restore brings it back there.
    let archive = app.dir.join("old-keys.backup");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"));
    cmd.args(["backup", archive.to_str().expect("path")])
        .env("DATABASE_URL", &app.config.database_url)
        .env("EPORTFOLIO_DATA_DIR", &app.dir)
        .env_remove("EPORTFOLIO_MASTER_KEY");
    blobs::cli_env(&mut cmd, &app.dir);
    let out = cmd.output().expect("backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = app.dir.join("restored");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"));
    cmd.args(["restore", archive.to_str().expect("path")])
        .env("DATABASE_URL", new_database_url(&app.dir, "restored"))
        .env("EPORTFOLIO_DATA_DIR", &restored)
        .env_remove("EPORTFOLIO_MASTER_KEY");
    blobs::cli_env(&mut cmd, &restored);
    let out = cmd.output().expect("restore");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(blobs::read(&restored, &id).as_deref(), Some(&bytes[..]));
}
