//! Restriction and erasure requests, handled by the region's administrator: a restricted
//! enrolment is read-only and out of the lists until lifted; an erasure takes what no
//! signature depends on and names what stays. Every action audited; nobody else may;
//! the same request twice at once has one effect.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::support::{Resp, TestApp, TestUser};

struct Ward {
    app: TestApp,
    admin: TestUser,
    /// An administrator of another region.
    other_admin: TestUser,
    trainee: TestUser,
    supervisor: TestUser,
    enrolment: String,
}

fn ward() -> Ward {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    // Another region's administrator, as `eportfolio admin create` makes one.
    let email = "admin@regionskane.se";
    let token = app.bootstrap_admin(email, "Region Skåne");
    let other_admin = app.accept_with_totp(&token, email);
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let supervisor = app.join(&admin, "hhl@sll.se", "supervisor", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31",
                   "main_supervisor_id": supervisor.id}),
        )
        .expect(201);
    Ward {
        enrolment: e.body["id"].as_str().expect("id").to_string(),
        app,
        admin,
        other_admin,
        trainee,
        supervisor,
    }
}

fn db(app: &TestApp) -> eportfolio::db::PooledConn {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    pool.get().expect("conn")
}

fn audit_count(app: &TestApp, action: &str) -> i64 {
    use eportfolio::schema::audit_log;
    audit_log::table
        .filter(audit_log::action.eq(action))
        .count()
        .get_result(&mut *db(app))
        .expect("audit")
}

fn new_activity(w: &Ward, title: &str) -> Resp {
    w.app.post(
        &format!("/enrolments/{}/activities", w.enrolment),
        Some(&w.trainee.access),
        json!({"kind": "course", "title": title, "start_date": "2026-10-06"}),
    )
}

fn ids_of(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i.get("enrolment_id")
                .or_else(|| i.get("id"))
                .and_then(Value::as_str)
                .expect("id")
                .to_string()
        })
        .collect()
}

#[test]
fn a_restricted_enrolment_is_read_only_and_unlisted_until_lifted() {
    let w = ward();
    let app = &w.app;
    new_activity(&w, "Kurs före begäran").expect(201);
    let restriction = json!({"subject_kind": "enrolment", "subject_id": w.enrolment,
                             "reason": "Begäran 2026-11-20, ärende 17"});

    // Nobody but an administrator over it may restrict it, or knows it exists.
    for who in [&w.trainee, &w.supervisor, &w.other_admin] {
        app.post("/restrictions", Some(&who.access), restriction.clone())
            .expect_problem(404, "not-found");
    }
    let r = app
        .post("/restrictions", Some(&w.admin.access), restriction.clone())
        .expect(201);
    let rid = r.body["id"].as_str().expect("id").to_string();
    assert_eq!(r.body["in_force"], true);
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/restrictions/{rid}").as_str())
    );
    app.post("/restrictions", Some(&w.admin.access), restriction.clone())
        .expect_problem(409, "conflict");

    // Read-only: the trainee's and the administrator's changes are refused.
    new_activity(&w, "Kurs efter begäran").expect_problem(409, "processing-restricted");
    app.patch(
        &format!("/enrolments/{}", w.enrolment),
        Some(&w.admin.access),
        json!({"planned_end": "2027-09-30"}),
        &[],
    )
    .expect_problem(409, "processing-restricted");
    // Still readable by id, by those who could read it.
    app.get(
        &format!("/enrolments/{}", w.enrolment),
        Some(&w.trainee.access),
    )
    .expect(200);
    // Out of the lists, but the trainee's own.
    let listed = app.get("/enrolments", Some(&w.admin.access)).expect(200);
    assert!(
        !ids_of(&listed.body).contains(&w.enrolment),
        "{}",
        listed.text
    );
    let cohort = app
        .get("/cohort-overview?status=all", Some(&w.admin.access))
        .expect(200);
    assert!(
        !ids_of(&cohort.body).contains(&w.enrolment),
        "{}",
        cohort.text
    );
    let own = app.get("/enrolments", Some(&w.trainee.access)).expect(200);
    assert!(ids_of(&own.body).contains(&w.enrolment));
    // The administrators find it among the restrictions.
    let mine = app
        .get("/restrictions?in_force=true", Some(&w.admin.access))
        .expect(200);
    assert_eq!(ids_of(&mine.body), vec![rid.clone()]);
    let theirs = app
        .get("/restrictions", Some(&w.other_admin.access))
        .expect(200);
    assert_eq!(theirs.body["items"], json!([]));
    app.get(&format!("/restrictions/{rid}"), Some(&w.admin.access))
        .expect(200);
    for who in [&w.trainee, &w.other_admin] {
        app.get(&format!("/restrictions/{rid}"), Some(&who.access))
            .expect_problem(404, "not-found");
        app.post(
            &format!("/restrictions/{rid}/lift"),
            Some(&who.access),
            json!({}),
        )
        .expect_problem(404, "not-found");
    }

    // Lifted: writable and listed again; lifting twice is refused.
    let lifted = app
        .post(
            &format!("/restrictions/{rid}/lift"),
            Some(&w.admin.access),
            json!({}),
        )
        .expect(200);
    assert_eq!(lifted.body["in_force"], false);
    assert_eq!(lifted.body["lifted_by"], w.admin.id.as_str());
    app.post(
        &format!("/restrictions/{rid}/lift"),
        Some(&w.admin.access),
        json!({}),
    )
    .expect_problem(409, "conflict");
    new_activity(&w, "Kurs efter hävd begränsning").expect(201);
    let listed = app.get("/enrolments", Some(&w.admin.access)).expect(200);
    assert!(ids_of(&listed.body).contains(&w.enrolment));

    // Audited, without the reason.
    assert_eq!(audit_count(app, "restricted"), 1);
    assert_eq!(audit_count(app, "restriction_lifted"), 1);
    use eportfolio::schema::audit_log;
    let data: Vec<String> = audit_log::table
        .filter(audit_log::entity.eq("restriction"))
        .select(audit_log::data)
        .load(&mut *db(app))
        .expect("audit");
    assert!(data.iter().all(|d| !d.contains("ärende")), "{data:?}");
    let v = eportfolio::audit::verify(&mut db(app)).expect("verify");
    assert!(v.intact, "{v:?}");
}

#[test]
fn a_restricted_account_restricts_its_enrolments() {
    let w = ward();
    w.app
        .post(
            "/restrictions",
            Some(&w.other_admin.access),
            json!({"subject_kind": "account", "subject_id": w.trainee.id, "reason": "Begäran"}),
        )
        .expect_problem(404, "not-found");
    w.app
        .post(
            "/restrictions",
            Some(&w.admin.access),
            json!({"subject_kind": "account", "subject_id": w.trainee.id, "reason": "Begäran"}),
        )
        .expect(201);
    new_activity(&w, "Kurs").expect_problem(409, "processing-restricted");
}

#[test]
fn the_same_restriction_sent_twice_at_once_restricts_once() {
    let w = ward();
    let body = json!({"subject_kind": "enrolment", "subject_id": w.enrolment, "reason": "Begäran"});
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (app, token, body) = (&w.app, &w.admin.access, body.clone());
                s.spawn(move || app.post("/restrictions", Some(token), body).status)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, vec![201, 409], "{statuses:?}");
    assert_eq!(audit_count(&w.app, "restricted"), 1);
}

/// A Mini-CEX asked of the supervisor; signed when `sign`.
fn assessment(w: &Ward, sign: bool) -> String {
    let a = w
        .app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-14", "assessor_id": w.supervisor.id,
                   "context": {"setting (outpatient, inpatient, emergency)": "emergency"},
                   "delmal": ["BT1"], "trainee_reflection": "Reflektion."}),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id").to_string();
    if sign {
        w.app
            .post(
                &format!("/assessments/{id}/sign"),
                Some(&w.supervisor.access),
                json!({"ratings": {"communication": 7}, "entrustment": 4,
                       "feedback_strengths": "Bra.", "feedback_next_steps": "Öva status."}),
            )
            .expect(200);
    }
    id
}

#[test]
fn an_erasure_takes_what_no_signature_depends_on_and_names_what_stays() {
    let w = ward();
    let app = &w.app;
    let activity = new_activity(&w, "Kurs").expect(201).body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let file = app
        .send_raw(
            "POST",
            &format!("/activities/{activity}/attachments?filename=intyg.pdf"),
            Some(&w.trainee.access),
            "application/pdf",
            b"%PDF-1.7\n%intyg\n",
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let signed = assessment(&w, true);
    let unsigned = assessment(&w, false);
    let path = format!("/enrolments/{}/erasure", w.enrolment);
    for who in [&w.trainee, &w.supervisor, &w.other_admin] {
        app.post(&path, Some(&who.access), json!({}))
            .expect_problem(404, "not-found");
    }

    // Twice at once: one erases, the other finds nothing left.
    let answers: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (app, token, path) = (app, &w.admin.access, path.clone());
                s.spawn(move || app.post(&path, Some(token), json!({})).expect(200).body)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let total = |k: &str| -> i64 {
        answers
            .iter()
            .map(|a| a["erased"][k].as_i64().expect("count"))
            .sum()
    };
    assert_eq!(total("activities"), 1, "{answers:?}");
    assert_eq!(total("assessments"), 1, "{answers:?}");
    assert_eq!(total("attachments"), 1, "{answers:?}");
    assert_eq!(audit_count(app, "erased"), 1);
    let kept = &answers[0]["kept"];
    let kept_of = |kind: &str| {
        kept.as_array()
            .expect("kept")
            .iter()
            .find(|k| k["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("{kind} not named: {kept}"))
    };
    assert_eq!(kept_of("signed_assessments")["count"], 1);
    assert!(kept_of("signed_assessments")["reason"].is_string());
    assert!(kept_of("audit_log")["count"].as_i64().expect("count") > 0);

    // The signed assessment stays; the rest is gone, its file too.
    app.get(&format!("/assessments/{signed}"), Some(&w.trainee.access))
        .expect(200);
    app.get(&format!("/assessments/{unsigned}"), Some(&w.trainee.access))
        .expect_problem(404, "not-found");
    app.get(&format!("/activities/{activity}"), Some(&w.trainee.access))
        .expect_problem(404, "not-found");
    let store = eportfolio::storage::open_store(&app.config).expect("store");
    assert!(!store
        .path(&file)
        .expect("path")
        .expect("a file on the local disk")
        .exists());
    let v = eportfolio::audit::verify(&mut db(app)).expect("verify");
    assert!(v.intact, "{v:?}");
}
