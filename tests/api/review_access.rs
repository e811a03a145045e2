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
