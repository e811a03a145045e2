//! Review of issue 12's access control and integrations: attacks on the merged work,
//! each a regression test named after the attack.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

/// Polls (up to 10 s) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Entries of the administrators' view of undelivered mail, as `admin` sees it.
fn outbox(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    app.get("/mail-outbox", Some(&admin.access))
        .expect(200)
        .body["items"]
        .as_array()
        .expect("items")
        .clone()
}

#[test]
fn an_administrator_of_another_region_cannot_read_this_regions_undelivered_mail() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let provider = app.create_org(&admin, "care_provider", "Södersjukhuset", Some(&region));
    let anna = app.join(&admin, "anna@regionstockholm.se", "supervisor", &region);
    // The administrator of another region, and one of a care provider in this region.
    let token = app.bootstrap_admin("admin@regionskane.se", "Region Skåne");
    let skane = app.accept_with_totp(&token, "admin@regionskane.se");
    let provider_admin = app.join(&admin, "it@sodersjukhuset.se", "administrator", &provider);

    app.smtp.set_refusing(true);
    app.post("/auth/password-reset", None, json!({"email": anna.email}))
        .expect(202);
    wait_until("a failed attempt", || {
        outbox(&app, &admin)
            .iter()
            .any(|e| e["attempts"].as_i64() >= Some(1))
    });
    // The region's own administrator sees the mail waiting ...
    assert_eq!(outbox(&app, &admin).len(), 1);
    // ... administrators whose organisations the recipient has no part in do not: not
    // who gets mail, nor what about (subjects name trainees and assessments).
    assert_eq!(outbox(&app, &skane), Vec::<Value>::new());
    assert_eq!(outbox(&app, &provider_admin), Vec::<Value>::new());
    app.smtp.set_refusing(false);
}

/// A trainee with an enrolment, and one of their activities: (app, trainee, activity id).
fn trainee_with_activity() -> (TestApp, TestUser, String) {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    // Plain text is opt-in per region (issue 17).
    crate::privacy_attachments::accept_attachment_types(
        &app,
        &admin,
        &region,
        &["application/pdf", "text/plain"],
    );
    let e = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
        )
        .expect(201);
    let activity = app
        .post(
            &format!("/enrolments/{}/activities", e.body["id"].as_str().expect("id")),
            Some(&trainee.access),
            json!({"kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": "2026-10-06", "delmal": ["BT16"]}),
        )
        .expect(201);
    let id = activity.body["id"].as_str().expect("id").to_string();
    (app, trainee, id)
}

#[test]
fn markup_that_the_html_signature_misses_is_refused_as_plain_text() {
    let (app, trainee, activity) = trainee_with_activity();
    let upload = format!("/activities/{activity}/attachments?filename=notes.txt");
    let t = Some(trainee.access.as_str());
    // What a browser parses as a page or an image with script, though the signature
    // check (a tag followed by a space or `>`) does not see it: a tag ended by a newline
    // or a tab, a byte-order mark first, tags it does not list (svg, img).
    let pages: [&[u8]; 5] = [
        b"<html\n><script>fetch('/api/v1/me')</script></html>",
        b"<script\tsrc=https://evil.example/x.js></script>",
        b"\xEF\xBB\xBF<html><script>alert(1)</script></html>",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
        b"  <img src=x onerror=alert(1)>",
    ];
    for body in pages {
        app.send_raw("POST", &upload, t, "text/plain", body)
            .expect_problem(415, "unsupported-media-type");
    }
    // Plain text, even with a `<` inside, is still welcome.
    app.send_raw(
        "POST",
        &upload,
        t,
        "text/plain",
        "Kursintyg: Åsa Öberg, 3 < 4 timmar".as_bytes(),
    )
    .expect(201);
}
