//! Erasing an account (GDPR Art. 17), by an administrator after a step-up: what no
//! signed record depends on goes, the account stays as a pseudonymous id (with the name
//! only where signed records need it), nobody can sign in with it again, the e-mail
//! address can be used for a new account, and the same request twice erases once.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::support::{Resp, TestApp, TestUser};

struct Ward {
    app: TestApp,
    admin: TestUser,
    other_admin: TestUser,
    slso: String,
    trainee: TestUser,
    supervisor: TestUser,
    /// A supervisor who never signed anything.
    idle: TestUser,
    enrolment: String,
}

fn ward() -> Ward {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let email = "admin@regionskane.se";
    let token = app.bootstrap_admin(email, "Region Skåne");
    let other_admin = app.accept_with_totp(&token, email);
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let supervisor = app.join(&admin, "hhl@sll.se", "supervisor", &slso);
    let idle = app.join(&admin, "ledig@sll.se", "supervisor", &slso);
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
        slso,
        trainee,
        supervisor,
        idle,
    }
}

fn db(app: &TestApp) -> eportfolio::db::PooledConn {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    pool.get().expect("conn")
}

fn audit_count(app: &TestApp, action: &str, entity: &str) -> i64 {
    use eportfolio::schema::audit_log;
    audit_log::table
        .filter(audit_log::action.eq(action))
        .filter(audit_log::entity.eq(entity))
        .count()
        .get_result(&mut *db(app))
        .expect("audit")
}

fn stored_user(app: &TestApp, id: &str) -> (String, String, String, Option<String>) {
    use eportfolio::schema::users;
    users::table
        .find(id)
        .select((
            users::email,
            users::display_name,
            users::status,
            users::password_hash,
        ))
        .first(&mut *db(app))
        .expect("user row")
}

/// A Mini-CEX asked of the supervisor and signed by them.
fn signed_assessment(w: &Ward) -> String {
    let id = w
        .app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-14", "assessor_id": w.supervisor.id,
                   "context": {"setting (outpatient, inpatient, emergency)": "emergency"},
                   "delmal": ["BT1"], "trainee_reflection": "Reflektion."}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    w.app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(&w.supervisor.access),
            json!({"ratings": {"communication": 7}, "entrustment": 4,
                   "feedback_strengths": "Bra.", "feedback_next_steps": "Öva status."}),
        )
        .expect(200);
    id
}

fn erase(w: &Ward, by: &TestUser, who: &TestUser) -> Resp {
    w.app.post(
        &format!("/users/{}/erasure", who.id),
        Some(&by.access),
        json!({}),
    )
}

fn kept_of(answer: &Value, kind: &str) -> Value {
    answer["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .find(|k| k["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("{kind} not named: {answer}"))
}

#[test]
fn an_erased_supervisor_keeps_their_name_on_what_they_signed_and_cannot_sign_in() {
    let w = ward();
    let app = &w.app;
    let signed = signed_assessment(&w);
    // Nobody but an administrator over the person: 404.
    for who in [&w.trainee, &w.idle, &w.other_admin] {
        erase(&w, who, &w.supervisor).expect_problem(404, "not-found");
    }
    // Unknown account: 404 too; one's own: refused.
    app.post(
        "/users/00000000-0000-0000-0000-000000000000/erasure",
        Some(&w.admin.access),
        json!({}),
    )
    .expect_problem(404, "not-found");
    erase(&w, &w.admin, &w.admin).expect_problem(409, "conflict");

    // Twice at once: one erases, the other is told it is done.
    let answers: Vec<Resp> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| erase(&w, &w.admin, &w.supervisor)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![200, 409],
        "{:?}",
        answers.iter().map(|a| &a.text).collect::<Vec<_>>()
    );
    let done = answers
        .iter()
        .find(|a| a.status == 200)
        .expect("the erasure");
    let body = &done.body;
    assert_eq!(body["name_kept"], true, "{body}");
    assert_eq!(body["email_reusable"], true);
    assert_eq!(kept_of(body, "signatures")["count"], 1);
    assert_eq!(kept_of(body, "name")["count"], 1);
    assert!(kept_of(body, "name")["reason"]
        .as_str()
        .expect("reason")
        .contains("signer's name"));
    assert_eq!(body["erased"]["roles"], 1);
    assert!(body["erased"]["sessions"].as_i64().expect("sessions") >= 1);
    assert_eq!(body["erased"]["authenticator_apps"], 1);
    assert_eq!(audit_count(app, "erased", "user"), 1);
    // Later, again: 409 to the administrator, 404 to another region's.
    erase(&w, &w.admin, &w.supervisor).expect_problem(409, "conflict");
    erase(&w, &w.other_admin, &w.supervisor).expect_problem(404, "not-found");

    // Pseudonymised: no address, no password, disabled; the name stays.
    let (email, name, status, hash) = stored_user(app, &w.supervisor.id);
    assert!(email.ends_with("@erased.invalid"), "{email}");
    assert!(!email.contains("hhl"), "{email}");
    assert_ne!(name, "Raderad användare");
    assert_eq!(status, "disabled");
    assert!(hash.is_none());
    // No way in: the old session, the password, the refresh token.
    app.get("/me", Some(&w.supervisor.access)).expect(401);
    app.login_step(&w.supervisor.email, &w.supervisor.password, None)
        .expect(401);
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": w.supervisor.refresh}),
    )
    .expect(401);
    // The signed assessment stays, with its signer.
    let a = app
        .get(&format!("/assessments/{signed}"), Some(&w.trainee.access))
        .expect(200);
    assert_eq!(
        a.body["signature"]["signed_by"],
        w.supervisor.id.as_str(),
        "{}",
        a.text
    );

    // The address is free: a new account, a new person.
    let again = app.join(&w.admin, "hhl@sll.se", "supervisor", &w.slso);
    assert_ne!(again.id, w.supervisor.id);
    app.get("/me", Some(&again.access)).expect(200);

    let v = eportfolio::audit::verify(&mut db(app)).expect("verify");
    assert!(v.intact, "{v:?}");
}

#[test]
fn an_erasure_takes_the_name_when_nothing_signed_needs_it_and_the_trainees_drafts() {
    let w = ward();
    let app = &w.app;
    // A fresh second factor is needed: six minutes after signing in, a step-up first.
    app.advance(360);
    erase(&w, &w.admin, &w.idle).expect_problem(401, "step-up-required");
    let code = app.totp(w.admin.totp_secret.as_deref().expect("totp"));
    app.send(
        "POST",
        "/me/step-up",
        Some(&w.admin.access),
        Some(&json!({"password": w.admin.password, "totp_code": code})),
        &[],
    )
    .expect(204);
    let idle = erase(&w, &w.admin, &w.idle).expect(200);
    assert_eq!(idle.body["name_kept"], false, "{}", idle.text);
    assert_eq!(stored_user(app, &w.idle.id).1, "Raderad användare");

    // The trainee: the draft activity goes, the signed assessment and the name stay.
    let activity = app
        .post(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
            json!({"kind": "course", "title": "Kurs", "start_date": "2026-10-06"}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let signed = signed_assessment(&w);
    let t = erase(&w, &w.admin, &w.trainee).expect(200);
    assert_eq!(t.body["erased"]["activities"], 1, "{}", t.text);
    assert_eq!(t.body["name_kept"], true);
    assert_eq!(kept_of(&t.body, "own_enrolments")["count"], 1);
    app.get(&format!("/activities/{activity}"), Some(&w.admin.access))
        .expect_problem(404, "not-found");
    app.get(
        &format!("/assessments/{signed}"),
        Some(&w.supervisor.access),
    )
    .expect(200);
    let v = eportfolio::audit::verify(&mut db(app)).expect("verify");
    assert!(v.intact, "{v:?}");
}

/// A completed-course statement from a learning platform about `mbox`.
fn statement(id: &str, mbox: &str, object: &str) -> Value {
    json!({
        "id": id,
        "actor": {"objectType": "Agent", "name": "BT-läkare", "mbox": format!("mailto:{mbox}")},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": object,
                   "definition": {"name": {"sv-SE": "Okänd kurs"}}},
        "timestamp": "2026-11-20T13:00:00Z"
    })
}

fn statement_learners(app: &TestApp) -> Vec<(String, String)> {
    use eportfolio::schema::xapi_statements;
    xapi_statements::table
        .order(xapi_statements::id)
        .select((xapi_statements::id, xapi_statements::learner))
        .load(&mut *db(app))
        .expect("statements")
}

#[test]
fn an_account_erasure_takes_the_persons_unmatched_xapi_statements() {
    let w = ward();
    let app = &w.app;
    let (id, secret) = crate::integrations::client(app, &w.admin, &w.slso, &["activities:write"]);
    let platform = crate::integrations::token(app, &id, &secret);
    // Two statements about the trainee that made no activity (the course is not mapped),
    // one about a learner who has no account here: all kept as unmatched.
    let unmapped = "https://lms.regionstockholm.se/courses/omappad";
    let mine = [
        "5a0c2f4e-8a1b-4c3d-9e2f-0a1b2c3d4e01",
        "5a0c2f4e-8a1b-4c3d-9e2f-0a1b2c3d4e02",
    ];
    let theirs = "5a0c2f4e-8a1b-4c3d-9e2f-0a1b2c3d4e03";
    app.send(
        "POST",
        "/xapi/statements",
        Some(&platform),
        Some(&json!([
            statement(mine[0], "bt@sll.se", unmapped),
            statement(mine[1], "BT@sll.se", unmapped),
            statement(theirs, "annan@sll.se", unmapped),
        ])),
        &[("X-Experience-API-Version", "1.0.3")],
    )
    .expect(200);
    assert_eq!(statement_learners(app).len(), 3);
    let listed = app
        .get("/xapi/statements?status=unmatched", Some(&w.admin.access))
        .expect(200);
    assert_eq!(listed.body["items"].as_array().expect("items").len(), 3);
    // An entry about the account (its export), to be emptied with the erasure.
    app.send("GET", "/me/export", Some(&w.trainee.access), None, &[])
        .expect(200);

    let t = erase(&w, &w.admin, &w.trainee).expect(200);
    assert_eq!(
        t.body["erased"]["unmatched_xapi_statements"], 2,
        "{}",
        t.text
    );
    // Only the other learner's statement stays; the trainee's are gone, for the
    // administrator too.
    let left = statement_learners(app);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, theirs);
    assert!(left.iter().all(|(_, l)| !l.contains("bt@sll.se")));
    for gone in mine {
        app.get(&format!("/xapi/statements/{gone}"), Some(&w.admin.access))
            .expect_problem(404, "not-found");
    }
    // The audit entries about the account lose their copies of its data (the address
    // it was invited with), and the chain still verifies with them counted apart.
    use eportfolio::schema::audit_log;
    let about: Vec<(String, String, Option<chrono::NaiveDateTime>)> = audit_log::table
        .filter(audit_log::entity_id.eq(&w.trainee.id))
        .select((
            audit_log::action,
            audit_log::data,
            audit_log::data_erased_at,
        ))
        .load(&mut *db(app))
        .expect("audit");
    assert!(about.iter().any(|e| e.0 != "erased"), "{about:?}");
    assert!(about
        .iter()
        .filter(|e| e.0 != "erased")
        .all(|e| e.2.is_some() && e.1 == "null"));
    assert!(
        about.iter().all(|e| !e.1.contains("bt@sll.se")),
        "{about:?}"
    );
    let v = eportfolio::audit::verify(&mut db(app)).expect("verify");
    assert!(v.intact, "{v:?}");
    assert!(v.data_erased > 0, "{v:?}");
}
