//! Backing up a live database and restoring it elsewhere loses nothing.

use serde_json::json;

use crate::support::{new_database_url, TestApp};

fn cli(args: &[&str], database_url: &str, dir: &std::path::Path) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"));
    cmd.args(args)
        .env("DATABASE_URL", database_url)
        .env("EPORTFOLIO_DATA_DIR", dir);
    crate::support::blobs::cli_env(&mut cmd, dir);
    let out = cmd.output().expect("run eportfolio");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_live_backup_restores_every_record_with_a_verifying_audit_chain() {
    let app = TestApp::start();
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
    let path = format!(
        "/enrolments/{}/activities",
        e.body["id"].as_str().expect("id")
    );
    for i in 1..=3 {
        app.post(&path, Some(&trainee.access), json!({"kind": "self_study", "title": format!("Läsning {i}"), "start_date": "2026-10-01", "delmal": ["BT7"]}))
            .expect(201);
    }

    // Taken while the service runs.
    let file = app
        .dir
        .join(if app.config.database_url.starts_with("postgres") {
            "backup.dump"
        } else {
            "backup.sqlite3"
        });
    let (ok, out) = cli(
        &["backup", file.to_str().expect("path")],
        &app.config.database_url,
        &app.dir,
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(
        &["backup", file.to_str().expect("path")],
        &app.config.database_url,
        &app.dir,
    );
    assert!(
        !ok && out.contains("exists"),
        "a backup never overwrites: {out}"
    );
    // Written after the backup: not in it.
    app.post(
        &path,
        Some(&trainee.access),
        json!({"kind": "self_study", "title": "Efteråt", "start_date": "2026-10-02"}),
    )
    .expect(201);

    let target = new_database_url(&app.dir, "restored");
    let (ok, out) = cli(
        &["restore", file.to_str().expect("path")],
        &target,
        &app.dir,
    );
    assert!(ok && out.contains("audit log intact"), "{out}");
    let pool = eportfolio::db::connect(&target, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    use diesel::prelude::*;
    let titles: Vec<String> = eportfolio::schema::activities::table
        .order(eportfolio::schema::activities::title)
        .select(eportfolio::schema::activities::title)
        .load(&mut *conn)
        .expect("activities");
    assert_eq!(titles, ["Läsning 1", "Läsning 2", "Läsning 3"]);
    let users: i64 = eportfolio::schema::users::table
        .count()
        .get_result(&mut *conn)
        .expect("users");
    assert_eq!(users, 2);
    assert!(eportfolio::audit::verify(&mut conn).expect("verify").intact);
    // Restoring over an existing database is refused.
    let (ok, _) = cli(
        &["restore", file.to_str().expect("path")],
        &target,
        &app.dir,
    );
    assert!(!ok);
}
