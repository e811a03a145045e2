//! A backup holds everything: the rows, every attachment's bytes, the audit chain's head
//! and (when asked) the keys. Taken while writes with attachments go on, restored into a
//! fresh directory (and from SQLite into the suite's backend, which on a PostgreSQL run
//! is how a region moves up), served again; a damaged archive is refused.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use diesel::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{blobs, new_database_url, TestApp, TestUser};

const PASSPHRASE: &str = "correct horse battery staple";

fn cli(args: &[&str], database_url: &str, dir: &Path, passphrase: Option<&str>) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"));
    cmd.args(args)
        .env("DATABASE_URL", database_url)
        .env("EPORTFOLIO_DATA_DIR", dir)
        .env_remove("EPORTFOLIO_MASTER_KEY")
        .env_remove("EPORTFOLIO_BACKUP_PASSPHRASE");
    blobs::cli_env(&mut cmd, dir);
    if let Some(p) = passphrase {
        cmd.env("EPORTFOLIO_BACKUP_PASSPHRASE", p);
    }
    let out = cmd.output().expect("run eportfolio");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A trainee with an activity to attach files to.
struct World {
    trainee: TestUser,
    activities: String,
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
    let activities = format!(
        "/enrolments/{}/activities",
        e.body["id"].as_str().expect("id")
    );
    World {
        trainee,
        activities,
    }
}

fn pdf(seed: u32, len: u32) -> Vec<u8> {
    b"%PDF-1.7\n"
        .iter()
        .copied()
        .chain((0..len).map(|i| (i.wrapping_mul(seed).wrapping_add(seed) % 251) as u8))
        .collect()
}

/// Logs an activity with one attachment; returns (attachment id, bytes).
fn activity_with_file(app: &TestApp, w: &World, i: u32) -> (String, Vec<u8>) {
    let a = app
        .post(
            &w.activities,
            Some(&w.trainee.access),
            json!({"kind": "self_study", "title": format!("Kurs {i}"), "start_date": "2026-10-01"}),
        )
        .expect(201);
    let bytes = pdf(i + 7, 20_000 + i * 997);
    let stored = app
        .send_raw(
            "POST",
            &format!(
                "/activities/{}/attachments?filename=intyg{i}.pdf",
                a.body["id"].as_str().expect("id")
            ),
            Some(&w.trainee.access),
            "application/pdf",
            &bytes,
        )
        .expect(201);
    (stored.body["id"].as_str().expect("id").to_string(), bytes)
}

/// Every attachment row of the database at `url` has its bytes under `data_dir`, and
/// they hash to what the row says; returns the ids.
fn attachments_intact(url: &str, data_dir: &Path) -> Vec<String> {
    use eportfolio::schema::attachments as a;
    let pool = eportfolio::db::connect(url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let rows: Vec<(String, String, String)> = a::table
        .select((a::id, a::storage_key, a::sha256))
        .load(&mut *conn)
        .expect("attachments");
    for (id, key, sha) in &rows {
        let bytes = blobs::read(data_dir, key).expect("restored blob");
        assert_eq!(&hex::encode(Sha256::digest(&bytes)), sha, "attachment {id}");
    }
    assert!(eportfolio::audit::verify(&mut conn).expect("verify").intact);
    rows.into_iter().map(|(id, _, _)| id).collect()
}

#[test]
fn a_backup_taken_under_writes_restores_every_record_and_byte_and_serves_again() {
    let mut app = TestApp::start();
    let w = world(&app);
    let before: Vec<(String, Vec<u8>)> = (1..=3).map(|i| activity_with_file(&app, &w, i)).collect();
    let file = app.dir.join("everything.backup");

    // A steady stream of uploads while the backup runs.
    let stop = AtomicBool::new(false);
    let during = Mutex::new(Vec::new());
    let (ok, out) = std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 100;
            while !stop.load(Ordering::SeqCst) {
                let done = activity_with_file(&app, &w, i);
                during.lock().expect("lock").push(done);
                i += 1;
            }
        });
        // The backup starts once the uploads are under way.
        let started = std::time::Instant::now();
        while during.lock().expect("lock").is_empty() && started.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let result = cli(
            &["backup", "--include-keys", file.to_str().expect("path")],
            &app.config.database_url,
            &app.dir,
            Some(PASSPHRASE),
        );
        stop.store(true, Ordering::SeqCst);
        result
    });
    assert!(ok, "{out}");
    assert!(
        out.contains("attachments") && out.contains("keys (sealed)"),
        "{out}"
    );
    let during = during.into_inner().expect("lock");
    assert!(!during.is_empty(), "uploads went on during the backup");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("backup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the backup is private");
    }

    // Into a fresh data directory and database.
    let restored = app.dir.join("restored");
    let target = new_database_url(&app.dir, "restored");
    let (ok, out) = cli(
        &["restore", file.to_str().expect("path")],
        &target,
        &restored,
        Some(PASSPHRASE),
    );
    assert!(ok && out.contains("audit log intact"), "{out}");
    let ids = attachments_intact(&target, &restored);
    // Everything acknowledged before the backup began is in it; of the uploads during
    // it, whatever the snapshot held came back whole (checked above), nothing half.
    for (id, _) in &before {
        assert!(ids.contains(id), "attachment {id} restored");
    }
    assert!(ids.len() >= before.len() && ids.len() <= before.len() + during.len());

    // A restore never lands on something that holds data.
    let (ok, out) = cli(
        &["restore", file.to_str().expect("path")],
        &target,
        &app.dir.join("another"),
        Some(PASSPHRASE),
    );
    assert!(!ok && out.contains("not empty"), "{out}");
    let fresh_db = new_database_url(&app.dir, "fresh");
    let (ok, out) = cli(
        &["restore", file.to_str().expect("path")],
        &fresh_db,
        &restored,
        Some(PASSPHRASE),
    );
    assert!(!ok && out.contains("not empty"), "{out}");

    // The restored instance serves the same bytes to the same session: the keys came
    // back with the passphrase.
    app.restart_with(|c| {
        c.data_dir = restored.clone();
        c.database_url = target.clone();
    });
    for (id, bytes) in &before {
        let raw = ureq::get(&format!("{}/api/v1/attachments/{id}", app.base))
            .set("Authorization", &format!("Bearer {}", w.trainee.access))
            .call()
            .expect("download");
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut raw.into_reader(), &mut body).expect("read");
        assert_eq!(&body, bytes);
    }
}

#[test]
fn a_sqlite_backup_restores_into_the_suites_backend() {
    // The source is SQLite whatever the suite runs on; the target is the suite's
    // backend: PostgreSQL on a PostgreSQL run.
    let app = TestApp::start_with(|c| {
        c.database_url = c
            .data_dir
            .join("source.sqlite3")
            .to_string_lossy()
            .into_owned();
    });
    let w = world(&app);
    let files: Vec<(String, Vec<u8>)> = (1..=2).map(|i| activity_with_file(&app, &w, i)).collect();
    let file = app.dir.join("move.backup");
    let (ok, out) = cli(
        &["backup", file.to_str().expect("path")],
        &app.config.database_url,
        &app.dir,
        None,
    );
    assert!(ok, "{out}");
    let restored = app.dir.join("moved");
    let target = new_database_url(&app.dir, "moved");
    let (ok, out) = cli(
        &["restore", file.to_str().expect("path")],
        &target,
        &restored,
        None,
    );
    assert!(ok, "{out}");

    // Table by table, the same rows.
    let source = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let moved = eportfolio::db::connect(&target, 1).expect("pool");
    let (mut s, mut m) = (source.get().expect("conn"), moved.get().expect("conn"));
    use eportfolio::schema::{activities, audit_log, organisations, users};
    let count = |c: &mut eportfolio::db::DbConn| -> (i64, i64, i64, i64) {
        (
            users::table.count().get_result(c).expect("users"),
            organisations::table.count().get_result(c).expect("orgs"),
            activities::table.count().get_result(c).expect("activities"),
            audit_log::table.count().get_result(c).expect("audit"),
        )
    };
    assert_eq!(count(&mut s), count(&mut m));
    let titles = |c: &mut eportfolio::db::DbConn| -> Vec<(String, chrono::NaiveDateTime)> {
        activities::table
            .order(activities::title)
            .select((activities::title, activities::created_at))
            .load(c)
            .expect("titles")
    };
    assert_eq!(titles(&mut s), titles(&mut m));
    let ids = attachments_intact(&target, &restored);
    for (id, bytes) in &files {
        assert!(ids.contains(id));
        let key: String = eportfolio::schema::attachments::table
            .find(id)
            .select(eportfolio::schema::attachments::storage_key)
            .first(&mut *m)
            .expect("key");
        assert_eq!(&blobs::read(&restored, &key).expect("blob"), bytes);
    }
}

#[test]
fn a_damaged_archive_or_a_wrong_passphrase_is_refused_and_nothing_is_restored() {
    let app = TestApp::start();
    let w = world(&app);
    activity_with_file(&app, &w, 1);
    let file = app.dir.join("good.backup");
    let (ok, out) = cli(
        &["backup", "--include-keys", file.to_str().expect("path")],
        &app.config.database_url,
        &app.dir,
        Some(PASSPHRASE),
    );
    assert!(ok, "{out}");
    let good = std::fs::read(&file).expect("backup");
    let target = new_database_url(&app.dir, "target");
    let restored = app.dir.join("restored");
    let restore = |archive: &Path, passphrase: Option<&str>| {
        cli(
            &["restore", archive.to_str().expect("path")],
            &target,
            &restored,
            passphrase,
        )
    };

    // --include-keys without a passphrase is refused before anything is written.
    let (ok, out) = cli(
        &[
            "backup",
            "--include-keys",
            app.dir.join("nokey.backup").to_str().expect("p"),
        ],
        &app.config.database_url,
        &app.dir,
        None,
    );
    assert!(!ok && out.contains("EPORTFOLIO_BACKUP_PASSPHRASE"), "{out}");
    assert!(!app.dir.join("nokey.backup").exists());

    // A flipped byte, a cut-off file, and something that is no backup at all.
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    let cut = good[..good.len() * 2 / 3].to_vec();
    for (name, bytes) in [
        ("flipped", flipped),
        ("cut", cut),
        ("text", b"not a backup".to_vec()),
    ] {
        let path = app.dir.join(format!("{name}.backup"));
        std::fs::write(&path, bytes).expect("write");
        let (ok, out) = restore(&path, Some(PASSPHRASE));
        assert!(!ok && out.contains("damaged"), "{name}: {out}");
    }
    // An archive with sealed keys but no passphrase given: refused, not restored
    // without its keys.
    let (ok, out) = restore(&file, None);
    assert!(
        !ok && out.contains("--include-keys") && out.contains("EPORTFOLIO_BACKUP_PASSPHRASE"),
        "{out}"
    );
    assert!(!restored.join("master-keys").exists());
    // The wrong passphrase opens nothing.
    let (ok, out) = restore(&file, Some("not the passphrase at all"));
    assert!(!ok && out.contains("passphrase"), "{out}");

    // None of that left anything behind: the good archive restores into the same target.
    let (ok, out) = restore(&file, Some(PASSPHRASE));
    assert!(ok, "{out}");
    assert_eq!(attachments_intact(&target, &restored).len(), 1);
    assert!(restored.join("master-keys").exists() && restored.join("jwt-secret").exists());
}
