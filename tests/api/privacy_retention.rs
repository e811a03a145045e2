//! Retention (gallring): a region sets how long a closed enrolment's records are kept;
//! the daily job deletes them once the period is over, and nothing else; the audit
//! chain still verifies and records the deletion with counts.

use chrono::{TimeZone, Utc};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

struct Region {
    app: TestApp,
    admin: TestUser,
    region: String,
    slso: String,
    /// The trainee whose enrolment is withdrawn, and that enrolment.
    leaver: TestUser,
    closed: String,
    /// Another trainee, still training.
    stayer: TestUser,
    open: String,
    supervisor: TestUser,
}

fn region() -> Region {
    let app = TestApp::start_with(|c| {
        c.housekeeping_interval = std::time::Duration::from_millis(50);
    });
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let leaver = app.join(&admin, "bt1@sll.se", "trainee", &slso);
    let stayer = app.join(&admin, "bt2@sll.se", "trainee", &slso);
    let supervisor = app.join(&admin, "hhl@sll.se", "supervisor", &slso);
    let enrol = |t: &TestUser| {
        app.post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": t.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31",
                   "main_supervisor_id": supervisor.id}),
        )
        .expect(201)
        .body["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let closed = enrol(&leaver);
    let open = enrol(&stayer);
    Region {
        app,
        admin,
        region,
        slso,
        leaver,
        closed,
        stayer,
        open,
        supervisor,
    }
}

/// An activity with a PDF attached; returns (activity id, attachment id).
fn activity_with_file(app: &TestApp, trainee: &TestUser, enrolment: &str) -> (String, String) {
    let a = app
        .post(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&trainee.access),
            json!({"kind": "course", "title": "Kurs i akut omhändertagande", "start_date": "2026-10-06"}),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id").to_string();
    let f = app
        .send_raw(
            "POST",
            &format!("/activities/{id}/attachments?filename=kursintyg.pdf"),
            Some(&trainee.access),
            "application/pdf",
            format!("%PDF-1.7\n%kursintyg {}\n", trainee.email).as_bytes(),
        )
        .expect(201);
    // Files are stored under their content hash (each trainee's is their own here). The
    // file was written long before the retention round: the round leaves files written
    // in its last seconds to the sweep, since an upload of the same content may be on
    // its way (`storage::sweep::remove_released`).
    let key = crate::support::blobs::key_of(&f.body);
    let store = eportfolio::storage::open_store(&app.config).expect("store");
    let path = store
        .path(&key)
        .expect("path")
        .expect("a file on the local disk");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|file| {
            file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        })
        .expect("the file's time set back");
    (id, key)
}

/// A Mini-CEX the supervisor signed; returns its id.
fn signed_assessment(app: &TestApp, trainee: &TestUser, sup: &TestUser, enrolment: &str) -> String {
    let a = app
        .post(
            &format!("/enrolments/{enrolment}/assessments"),
            Some(&trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-14", "assessor_id": sup.id,
                   "context": {"setting (outpatient, inpatient, emergency)": "emergency"},
                   "delmal": ["BT1"], "trainee_reflection": "Jag glömde fråga om allergier."}),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id").to_string();
    app.post(
        &format!("/assessments/{id}/sign"),
        Some(&sup.access),
        json!({"ratings": {"communication": 7}, "entrustment": 4,
               "feedback_strengths": "Strukturerad anamnes.", "feedback_next_steps": "Öva status."}),
    )
    .expect(200);
    id
}

fn db(app: &TestApp) -> eportfolio::db::PooledConn {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    pool.get().expect("conn")
}

fn blob_exists(app: &TestApp, key: &str) -> bool {
    let store = eportfolio::storage::open_store(&app.config).expect("store");
    store
        .path(key)
        .expect("path")
        .expect("a file on the local disk")
        .exists()
}

/// Waits (up to 10 s) for the job's run of `day` for the region; returns it.
fn run_of(app: &TestApp, admin: &TestUser, region: &str, day: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let runs = app
            .get(
                &format!("/organisations/{region}/retention-runs"),
                Some(&admin.access),
            )
            .expect(200);
        if let Some(run) = runs.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|r| r["run_on"] == day)
        {
            return run.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no retention run for {day} after 10 s: {}",
            runs.text
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

fn move_to(app: &TestApp, y: i32, m: u32, d: u32) {
    app.clock.set(
        Utc.with_ymd_and_hms(y, m, d, 9, 0, 0)
            .single()
            .expect("time"),
    );
}

#[test]
fn a_closed_enrolment_goes_after_the_regions_period_and_nothing_else_does() {
    let r = region();
    let app = &r.app;
    let (activity, file) = activity_with_file(app, &r.leaver, &r.closed);
    let assessment = signed_assessment(app, &r.leaver, &r.supervisor, &r.closed);
    let (kept_activity, kept_file) = activity_with_file(app, &r.stayer, &r.open);
    app.patch(
        &format!("/enrolments/{}", r.closed),
        Some(&r.admin.access),
        json!({"status": "withdrawn"}),
        &[],
    )
    .expect(200);

    // Off until the region sets it.
    let policy = format!("/organisations/{}/retention-policy", r.region);
    let off = app.get(&policy, Some(&r.admin.access)).expect(200);
    assert_eq!(off.body["keep_months"], Value::Null);
    app.send(
        "PUT",
        &policy,
        Some(&r.admin.access),
        Some(&json!({"keep_months": 0})),
        &[],
    )
    .expect_problem(422, "validation");
    let set = app
        .send(
            "PUT",
            &policy,
            Some(&r.admin.access),
            Some(&json!({"keep_months": 24})),
            &[],
        )
        .expect(200);
    assert_eq!(set.body["keep_months"], 24);
    assert_eq!(set.body["updated_by"], r.admin.id.as_str());

    // Today: closed (planned end 2027-08-31) but far from past its period.
    let today = run_of(app, &r.admin, &r.region, "2026-11-24");
    assert_eq!(today["enrolments"], 0, "{today}");
    assert_eq!(today["keep_months"], 24);

    // The last day of the period: still kept.
    move_to(app, 2029, 8, 31);
    let admin = app.login_totp(&r.admin);
    let last = run_of(app, &admin, &r.region, "2029-08-31");
    assert_eq!(last["enrolments"], 0, "{last}");
    app.get(&format!("/enrolments/{}", r.closed), Some(&admin.access))
        .expect(200);
    assert!(blob_exists(app, &file));

    // The day after: everything of that enrolment goes, the other stays.
    move_to(app, 2029, 9, 1);
    let admin = app.login_totp(&r.admin);
    let run = run_of(app, &admin, &r.region, "2029-09-01");
    assert_eq!(run["enrolments"], 1, "{run}");
    assert_eq!(run["counts"]["activities"], 1, "{run}");
    assert_eq!(run["counts"]["assessments"], 1, "{run}");
    assert_eq!(run["counts"]["attachments"], 1, "{run}");
    assert!(run["counts"]["plan"].as_i64().expect("plan") >= 1, "{run}");
    for path in [
        format!("/enrolments/{}", r.closed),
        format!("/activities/{activity}"),
        format!("/assessments/{assessment}"),
    ] {
        app.get(&path, Some(&admin.access))
            .expect_problem(404, "not-found");
    }
    assert!(
        !blob_exists(app, &file),
        "the attachment's file is still stored"
    );
    app.get(&format!("/enrolments/{}", r.open), Some(&admin.access))
        .expect(200);
    app.get(&format!("/activities/{kept_activity}"), Some(&admin.access))
        .expect(200);
    assert!(blob_exists(app, &kept_file));

    // The chain verifies and says what went, in counts, not the content.
    let mut conn = db(app);
    let v = eportfolio::audit::verify(&mut conn).expect("verify");
    assert!(v.intact, "{v:?}");
    use eportfolio::schema::audit_log;
    let entries: Vec<(Option<String>, String)> = audit_log::table
        .filter(audit_log::action.eq("retention_deleted"))
        .select((audit_log::actor_id, audit_log::data))
        .load(&mut *conn)
        .expect("audit");
    assert_eq!(entries.len(), 1);
    let data: Value = serde_json::from_str(&entries[0].1).expect("json");
    assert_eq!(entries[0].0, None);
    assert_eq!(data["counts"]["activities"], 1);
    assert_eq!(data["keep_months"], 24);
    assert!(!entries[0].1.contains("Kurs"), "{}", entries[0].1);
    // The entries of the deleted enrolment lose their copies of its text, counted by the
    // run's entry and by verify (apart from intact content); the other's stay whole.
    let of = |id: &str| -> Vec<(String, String, Option<chrono::NaiveDateTime>)> {
        audit_log::table
            .filter(audit_log::enrolment_id.eq(id))
            .select((
                audit_log::action,
                audit_log::data,
                audit_log::data_erased_at,
            ))
            .load(&mut *db(app))
            .expect("audit")
    };
    let gone = of(&r.closed);
    let emptied = gone.iter().filter(|e| e.2.is_some()).count() as i64;
    assert!(emptied >= 3, "{gone:?}");
    assert!(gone
        .iter()
        .filter(|e| e.0 != "retention_deleted")
        .all(|e| e.2.is_some() && e.1 == "null"));
    assert!(gone.iter().all(|e| !e.1.contains("Kurs")), "{gone:?}");
    assert_eq!(data["audit_entries_emptied"], emptied);
    assert_eq!(v.data_erased, emptied);
    assert!(of(&r.open).iter().all(|e| e.2.is_none() && e.1 != "null"));
    // The deleted records' digest keys go with them (plan step 2); the other
    // enrolment's stay, and no entry of either ever held the records' text.
    use eportfolio::schema::audit_text_keys;
    let keys = |id: &str| -> i64 {
        audit_text_keys::table
            .filter(audit_text_keys::enrolment_id.eq(id))
            .count()
            .get_result(&mut *db(app))
            .expect("keys")
    };
    assert_eq!(keys(&r.closed), 0);
    assert!(keys(&r.open) >= 2, "the kept activity and its file");
    let all: Vec<String> = audit_log::table
        .select(audit_log::data)
        .load(&mut *db(app))
        .expect("audit");
    assert!(all
        .iter()
        .all(|d| !d.contains("omhändertagande") && !d.contains("allergier")));

    // One run a day: the next round of the same day adds nothing.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let runs = app
        .get(
            &format!("/organisations/{}/retention-runs", r.region),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(
        runs.body["items"].as_array().expect("items").len(),
        3,
        "{}",
        runs.text
    );
    assert_eq!(runs.body["items"][0]["run_on"], "2029-09-01");
}

#[test]
fn only_the_regions_administrators_see_and_set_its_retention() {
    let r = region();
    let app = &r.app;
    // Another region's administrator, as `eportfolio admin create` makes one.
    let email = "admin@regionskane.se";
    let token = app.bootstrap_admin(email, "Region Skåne");
    let other = app.accept_with_totp(&token, email);
    let policy = format!("/organisations/{}/retention-policy", r.region);
    let runs = format!("/organisations/{}/retention-runs", r.region);
    let body = json!({"keep_months": 24});
    for who in [&other, &r.leaver, &r.supervisor] {
        app.get(&policy, Some(&who.access))
            .expect_problem(404, "not-found");
        app.send("PUT", &policy, Some(&who.access), Some(&body), &[])
            .expect_problem(404, "not-found");
        app.get(&runs, Some(&who.access))
            .expect_problem(404, "not-found");
    }
    // Set per region: a care provider has none of its own.
    app.send(
        "PUT",
        &format!("/organisations/{}/retention-policy", r.slso),
        Some(&r.admin.access),
        Some(&body),
        &[],
    )
    .expect_problem(422, "unprocessable");
    // Turned off again: no row, nothing deleted.
    app.send("PUT", &policy, Some(&r.admin.access), Some(&body), &[])
        .expect(200);
    let off = app
        .send(
            "PUT",
            &policy,
            Some(&r.admin.access),
            Some(&json!({"keep_months": null})),
            &[],
        )
        .expect(200);
    assert_eq!(off.body["keep_months"], Value::Null);
    use eportfolio::schema::audit_log;
    let changes: i64 = audit_log::table
        .filter(audit_log::entity.eq("retention_policy"))
        .count()
        .get_result(&mut *db(app))
        .expect("audit");
    assert_eq!(changes, 2);
}

/// Issue 17: the daily job deletes an enrolment's course confirmations (the one its
/// kursledare confirmed, the request still waiting for the vetting) and their links
/// with its other records, counts them in its report, and the chain still verifies.
#[test]
fn retention_deletes_the_course_confirmations_with_the_enrolment() {
    use eportfolio::schema::{course_confirmation_links, course_confirmations};
    let r = region();
    let app = &r.app;
    let (confirmed, _) = activity_with_file(app, &r.leaver, &r.closed);
    crate::transfer::confirm_course(app, &r.leaver, &r.supervisor, &confirmed);
    let pending = app
        .post(
            &format!("/enrolments/{}/activities", r.closed),
            Some(&r.leaver.access),
            json!({"kind": "course", "title": "Kurs i geriatrik", "start_date": "2026-11-02"}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    app.post(
        &format!("/activities/{pending}/course-confirmation"),
        Some(&r.leaver.access),
        json!({"kursledare_email": "lina.lund@akutkurs.se", "kursledare_name": "Lina Lund",
               "kursledare_workplace": "Akutkurs Norr AB"}),
    )
    .expect(201);
    // The other trainee's request stays with their open enrolment.
    let (open_course, _) = activity_with_file(app, &r.stayer, &r.open);
    app.post(
        &format!("/activities/{open_course}/course-confirmation"),
        Some(&r.stayer.access),
        json!({"kursledare_email": "lina.lund@akutkurs.se", "kursledare_name": "Lina Lund",
               "kursledare_workplace": "Akutkurs Norr AB"}),
    )
    .expect(201);
    let rows = |enrolment: &str| -> (i64, i64) {
        let mut conn = db(app);
        let courses: Vec<String> = course_confirmations::table
            .filter(course_confirmations::enrolment_id.eq(enrolment))
            .select(course_confirmations::activity_id)
            .load(&mut *conn)
            .expect("courses");
        let links: i64 = course_confirmation_links::table
            .filter(course_confirmation_links::activity_id.eq_any(&courses))
            .count()
            .get_result(&mut *conn)
            .expect("links");
        (courses.len() as i64, links)
    };
    assert_eq!(rows(&r.closed), (2, 1));
    app.patch(
        &format!("/enrolments/{}", r.closed),
        Some(&r.admin.access),
        json!({"status": "withdrawn"}),
        &[],
    )
    .expect(200);
    app.send(
        "PUT",
        &format!("/organisations/{}/retention-policy", r.region),
        Some(&r.admin.access),
        Some(&json!({"keep_months": 24})),
        &[],
    )
    .expect(200);

    // Past the period (planned end 2027-08-31, 24 months): the job deletes them.
    move_to(app, 2029, 9, 1);
    let admin = app.login_totp(&r.admin);
    let run = run_of(app, &admin, &r.region, "2029-09-01");
    assert_eq!(run["enrolments"], 1, "{run}");
    assert_eq!(run["counts"]["course_confirmations"], 2, "{run}");
    assert_eq!(run["counts"]["activities"], 2, "{run}");
    assert_eq!(rows(&r.closed), (0, 0));
    for path in [
        format!("/activities/{confirmed}/course-confirmation"),
        format!("/activities/{pending}/course-confirmation"),
    ] {
        app.get(&path, Some(&admin.access))
            .expect_problem(404, "not-found");
    }
    assert_eq!(rows(&r.open), (1, 0));

    // The chain verifies, and the run's entry has the count, not the kursledare.
    let mut conn = db(app);
    let v = eportfolio::audit::verify(&mut conn).expect("verify");
    assert!(v.intact, "{v:?}");
    use eportfolio::schema::audit_log;
    let data: Vec<String> = audit_log::table
        .filter(audit_log::action.eq("retention_deleted"))
        .select(audit_log::data)
        .load(&mut *conn)
        .expect("audit");
    assert_eq!(data.len(), 1);
    let entry: Value = serde_json::from_str(&data[0]).expect("json");
    assert_eq!(entry["counts"]["course_confirmations"], 2, "{entry}");
    assert!(
        !data[0].contains("Örnberg") && !data[0].contains("Lina Lund"),
        "{}",
        data[0]
    );
}
