//! Stored attachments that went bad, and a disk that fills up: a damaged file is never
//! served and `attachments verify` names it; an upload into a full disk gets 507 and
//! leaves nothing behind, while everything that needs no disk goes on.

use std::path::Path;

use serde_json::json;

use crate::support::{blobs, TestApp, TestUser};

fn cli(args: &[&str], app: &TestApp) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"));
    cmd.args(args)
        .env("DATABASE_URL", &app.config.database_url)
        .env("EPORTFOLIO_DATA_DIR", &app.dir)
        .env_remove("EPORTFOLIO_MASTER_KEY");
    blobs::cli_env(&mut cmd, &app.dir);
    let out = cmd.output().expect("run eportfolio");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

struct World {
    trainee: TestUser,
    activity: String,
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
    let a = app
        .post(
            &activities,
            Some(&trainee.access),
            json!({"kind": "self_study", "title": "Kurs", "start_date": "2026-10-01"}),
        )
        .expect(201);
    World {
        trainee,
        activity: a.body["id"].as_str().expect("id").to_string(),
        activities,
    }
}

fn pdf(len: usize) -> Vec<u8> {
    b"%PDF-1.7\n"
        .iter()
        .copied()
        .chain((0..len).map(|i| (i % 251) as u8))
        .collect()
}

fn upload(app: &TestApp, w: &World, bytes: &[u8]) -> crate::support::Resp {
    app.send_raw(
        "POST",
        &format!("/activities/{}/attachments?filename=intyg.pdf", w.activity),
        Some(&w.trainee.access),
        "application/pdf",
        bytes,
    )
}

/// The files under the attachment store, tmp included.
fn stored_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root).expect("store") {
        let dir = dir.expect("entry").path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).expect("dir") {
                out.push(f.expect("entry").path().display().to_string());
            }
        }
    }
    out
}

#[test]
fn a_damaged_attachment_is_never_served_and_verify_names_it() {
    let app = TestApp::start();
    let w = world(&app);
    let good = upload(&app, &w, &pdf(40_000)).expect(201);
    let bad = upload(&app, &w, &pdf(30_000)).expect(201);
    let (ok, out) = cli(&["attachments", "verify"], &app);
    assert!(ok && out.contains("every attachment matches"), "{out}");

    // A byte of one file changes in the store (bit rot, a bad restore, a hand edit).
    let bad_id = bad.body["id"].as_str().expect("id");
    let bad_key = blobs::key_of(&bad.body);
    let mut bytes = blobs::read(&app.dir, &bad_key).expect("blob");
    bytes[20_000] ^= 0xff;
    blobs::put(&app.dir, &bad_key, &bytes);

    let got = app.send(
        "GET",
        bad.body["href"].as_str().expect("href"),
        Some(&w.trainee.access),
        None,
        &[],
    );
    let got = got.expect_problem(500, "attachment-damaged");
    assert!(!got.text.contains("%PDF"), "no damaged bytes: {}", got.text);
    app.send(
        "GET",
        good.body["href"].as_str().expect("href"),
        Some(&w.trainee.access),
        None,
        &[],
    )
    .expect(200);

    let (ok, out) = cli(&["attachments", "verify"], &app);
    assert!(!ok, "{out}");
    assert!(
        out.contains(bad_id) && out.contains("hash differs"),
        "{out}"
    );
    assert!(
        !out.contains(good.body["id"].as_str().expect("id")),
        "{out}"
    );
    // A backup refuses to carry it as if it were whole.
    let (ok, out) = cli(
        &["backup", app.dir.join("x.backup").to_str().expect("path")],
        &app,
    );
    assert!(!ok && out.contains(bad_id), "{out}");
    assert!(!app.dir.join("x.backup").exists());

    blobs::remove(&app.dir, &bad_key);
    let (ok, out) = cli(&["attachments", "verify"], &app);
    assert!(!ok && out.contains("missing"), "{out}");
    app.send(
        "GET",
        bad.body["href"].as_str().expect("href"),
        Some(&w.trainee.access),
        None,
        &[],
    )
    .expect_problem(500, "attachment-damaged");
}

/// A small tmpfs over the attachment store, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn an_upload_into_a_full_disk_gets_507_and_leaves_no_partial_file() {
    if blobs::object_store() {
        eprintln!("skipped: attachments are in an object store, not on a disk to fill");
        return;
    }
    let mut mounted = None;
    let app = TestApp::start_with(|c| {
        mounted = Tmpfs::mount(&c.data_dir.join("attachments"), "1m");
    });
    let Some(_tmpfs) = mounted else {
        // Mounting needs root (CI runs as root); elsewhere there is no small disk to fill.
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    let w = world(&app);
    let root = app.config.data_dir.join("attachments");

    let full = upload(&app, &w, &pdf(1_500_000));
    full.expect_problem(507, "insufficient-storage");
    assert!(
        stored_files(&root).is_empty(),
        "no partial file: {:?}",
        stored_files(&root)
    );
    let listed = app
        .get(
            &format!("/activities/{}", w.activity),
            Some(&w.trainee.access),
        )
        .expect(200);
    assert_eq!(
        listed.body["attachments"].as_array().map_or(0, Vec::len),
        0,
        "the database names no attachment"
    );

    // Writes that need no disk go on, and a file that fits is stored.
    app.post(
        &w.activities,
        Some(&w.trainee.access),
        json!({"kind": "self_study", "title": "Efteråt", "start_date": "2026-10-02"}),
    )
    .expect(201);
    upload(&app, &w, &pdf(100_000)).expect(201);
    let (ok, out) = cli(&["attachments", "verify"], &app);
    assert!(ok, "{out}");
}

#[test]
fn housekeeping_sweeps_what_failed_uploads_left_but_never_a_named_attachment() {
    if blobs::object_store() {
        // Object times cannot be set back: storage_objects.rs sweeps the bucket instead.
        eprintln!("skipped: this one ages files on the local disk");
        return;
    }
    let app = TestApp::start();
    let w = world(&app);
    let kept = upload(&app, &w, &pdf(10_000)).expect(201);
    let kept_key = blobs::key_of(&kept.body);
    let root = app.config.data_dir.join("attachments");
    // A part from a process that stopped mid-upload, and a blob committed by one that
    // stopped before its row: both two hours old.
    let part = root.join("tmp").join("0123abcd.part");
    std::fs::write(&part, b"half").expect("part");
    let orphan = root.join("ab").join("ab0123");
    std::fs::create_dir_all(orphan.parent().expect("dir")).expect("dir");
    std::fs::write(&orphan, b"no row").expect("orphan");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let kept_path = kept_key.split('/').fold(root.clone(), |p, s| p.join(s));
    for path in [&part, &orphan, &kept_path] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(two_hours_ago))
            .expect("age");
    }
    // A fresh part may belong to an upload under way: it stays.
    let fresh = root.join("tmp").join("fresh.part");
    std::fs::write(&fresh, b"on its way").expect("fresh");

    let blobs = eportfolio::storage::open_store(&app.config).expect("store");
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let swept = eportfolio::storage::sweep(&mut conn, &*blobs, std::time::SystemTime::now())
        .expect("sweep");
    assert_eq!(
        swept,
        eportfolio::storage::Swept {
            parts: 1,
            orphans: 1
        }
    );
    assert!(!part.exists() && !orphan.exists() && fresh.exists());
    let (ok, out) = cli(&["attachments", "verify"], &app);
    assert!(ok, "the named attachment is untouched: {out}");
}
