//! Integrations with learning platforms (issue 6): API clients with the OAuth 2.0
//! client-credentials grant and scopes, xAPI ingestion, webhooks (signed, retried,
//! durable across restarts), bulk import, and who may manage all that.

use std::time::Duration;

use base64::Engine;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::hooks::Receiver;
use crate::support::{Resp, TestApp, TestUser};

const COURSE: &str = "https://lms.regionstockholm.se/courses/forsakringsmedicin";
const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";

pub struct World {
    pub admin: TestUser,
    pub region: String,
    pub slso: String,
    pub trainee: TestUser,
    pub enrolment: String,
}

pub fn world(app: &TestApp) -> World {
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
    World {
        enrolment: e.body["id"].as_str().expect("id").to_string(),
        admin,
        region,
        slso,
        trainee,
    }
}

/// A second region with its own administrator.
fn other_region(app: &TestApp) -> (TestUser, String) {
    let email = "admin@regionskane.se";
    let token = app.bootstrap_admin(email, "Region Skåne");
    let admin = app.accept_with_totp(&token, email);
    let me = app.get("/me", Some(&admin.access)).expect(200);
    let region = me.body["roles"][0]["organisation_id"]
        .as_str()
        .expect("role")
        .to_string();
    (admin, region)
}

/// Registers a client; returns (client id, secret).
pub fn client(app: &TestApp, admin: &TestUser, org: &str, scopes: &[&str]) -> (String, String) {
    let r = app
        .post(
            "/api-clients",
            Some(&admin.access),
            json!({"organisation_id": org, "name": "Lärplattformen", "scopes": scopes}),
        )
        .expect(201);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    (
        r.body["client_id"].as_str().expect("id").to_string(),
        r.body["client_secret"]
            .as_str()
            .expect("secret")
            .to_string(),
    )
}

pub fn token_request(app: &TestApp, form: &str, basic: Option<(&str, &str)>) -> Resp {
    let url = format!("{}/api/v1/oauth/token", app.base);
    let mut req = ureq::post(&url).set("Content-Type", "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        req = req.set("Authorization", &format!("Basic {b}"));
    }
    TestApp::read(req.send_string(form))
}

pub fn token(app: &TestApp, id: &str, secret: &str) -> String {
    let r = token_request(app, "grant_type=client_credentials", Some((id, secret))).expect(200);
    r.body["access_token"].as_str().expect("token").to_string()
}

fn post_statements(app: &TestApp, token: &str, body: &Value) -> Resp {
    app.send(
        "POST",
        "/xapi/statements",
        Some(token),
        Some(body),
        &[("X-Experience-API-Version", "1.0.3")],
    )
}

fn statement(id: &str, mbox: &str, object: &str) -> Value {
    json!({
        "id": id,
        "actor": {"objectType": "Agent", "name": "BT-läkare", "mbox": format!("mailto:{mbox}")},
        "verb": {"id": COMPLETED, "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": object,
                   "definition": {"name": {"sv-SE": "Försäkringsmedicinsk dag"}}},
        "timestamp": "2026-11-20T13:00:00Z",
        "stored": "2026-11-20T13:00:01Z"
    })
}

/// How many webhook deliveries a worker would take at the app's time now (taking them:
/// only for checking that none is due).
fn due_deliveries(app: &TestApp) -> usize {
    let mut conn = db(app);
    let now = eportfolio::clock::Clock::now(&*app.clock);
    let keyring = std::sync::Arc::new(eportfolio::secrets::Keyring::load(&app.dir).expect("keys"));
    eportfolio::integrations::webhooks::claim_due(&mut conn, &keyring, now, 10)
        .expect("claim")
        .len()
}

pub fn db(app: &TestApp) -> eportfolio::db::PooledConn {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    pool.get().expect("conn")
}

/// Audit entries by `actor` as (action, entity).
fn audited_by(app: &TestApp, actor: &str) -> Vec<(String, String)> {
    use eportfolio::schema::audit_log;
    let mut conn = db(app);
    audit_log::table
        .filter(audit_log::actor_id.eq(actor))
        .order(audit_log::seq)
        .select((audit_log::action, audit_log::entity))
        .load(&mut *conn)
        .expect("audit")
}

#[test]
fn client_credentials_tokens_are_scoped_to_the_clients_organisation() {
    let app = TestApp::start();
    let w = world(&app);
    let (id, secret) = client(&app, &w.admin, &w.region, &["progress:read"]);

    // RFC 6749 4.4: HTTP Basic, or the credentials in the form.
    let t = token_request(&app, "grant_type=client_credentials", Some((&id, &secret))).expect(200);
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["scope"], "progress:read");
    assert_eq!(t.body["expires_in"], 3600);
    assert_eq!(t.header("cache-control"), Some("no-store"));
    let access = t.body["access_token"].as_str().expect("token").to_string();
    token_request(
        &app,
        &format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=progress:read"),
        None,
    )
    .expect(200);
    let bad = token_request(
        &app,
        "grant_type=client_credentials",
        Some((&id, "eps_wrong")),
    )
    .expect_problem(401, "oauth-invalid-client");
    assert_eq!(bad.body["error"], "invalid_client");
    let scope = token_request(
        &app,
        "grant_type=client_credentials&scope=catalog:read",
        Some((&id, &secret)),
    )
    .expect_problem(400, "oauth-invalid-scope");
    assert_eq!(scope.body["error"], "invalid_scope");
    token_request(&app, "grant_type=password", Some((&id, &secret)))
        .expect_problem(400, "oauth-unsupported-grant-type");

    // progress:read: the enrolments of its organisation's subtree, read only.
    let list = app.get("/enrolments", Some(&access)).expect(200);
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, vec![w.enrolment.as_str()]);
    // The client's reads are checked for what they hold, not only for a 200: the same
    // record and the same activities the organisation's administrator reads.
    let enrolment = format!("/enrolments/{}", w.enrolment);
    let read = app.get(&enrolment, Some(&access)).expect(200);
    assert_eq!(read.body["id"], w.enrolment.as_str(), "{}", read.text);
    assert_eq!(
        read.body,
        app.get(&enrolment, Some(&w.admin.access)).expect(200).body
    );
    let activities = format!("/enrolments/{}/activities", w.enrolment);
    let logged = app
        .post(
            &activities,
            Some(&w.trainee.access),
            json!({"kind": "clinical_work", "title": "Akutmottagning, nattpass", "start_date": "2026-10-01", "delmal": ["BT1"]}),
        )
        .expect(201);
    let read = app.get(&activities, Some(&access)).expect(200);
    let items = read.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", read.text);
    assert_eq!(items[0]["id"], logged.body["id"]);
    assert_eq!(items[0]["title"], "Akutmottagning, nattpass");
    assert_eq!(
        read.body["items"],
        app.get(&activities, Some(&w.admin.access)).expect(200).body["items"]
    );
    // Another scope is a 403 that names the problem; people's endpoints are closed.
    let denied = app
        .get("/regulations", Some(&access))
        .expect_problem(403, "insufficient-scope");
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Bearer error=\"insufficient_scope\"")
    );
    post_statements(&app, &access, &json!([])).expect_problem(403, "insufficient-scope");
    app.get("/me", Some(&access))
        .expect_problem(403, "forbidden");
    app.get("/me/signature-queue", Some(&access))
        .expect_problem(403, "forbidden");
    app.post(
        &format!("/enrolments/{}/activities", w.enrolment),
        Some(&access),
        json!({"kind": "course", "title": "x", "start_date": "2026-10-01"}),
    )
    .expect_problem(403, "forbidden");
    app.get("/api-clients", Some(&access))
        .expect_problem(403, "forbidden");

    // catalog:read reads regulations and their delmål.
    let (cat_id, cat_secret) = client(&app, &w.admin, &w.region, &["catalog:read"]);
    let cat = token(&app, &cat_id, &cat_secret);
    let regs = app
        .get("/regulations?code=bt-2021&latest=true", Some(&cat))
        .expect(200);
    let reg = regs.body["items"][0]["id"]
        .as_str()
        .expect("reg")
        .to_string();
    let delmal = format!("/regulations/{reg}/delmal");
    let read = app.get(&delmal, Some(&cat)).expect(200);
    let codes: Vec<&str> = read.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["code"].as_str().expect("code"))
        .collect();
    let all_bt: Vec<String> = (1..=18).map(|n| format!("BT{n}")).collect();
    assert_eq!(codes, all_bt, "{}", read.text);
    assert_eq!(
        read.body,
        app.get(&delmal, Some(&w.admin.access)).expect(200).body
    );
    app.get("/enrolments", Some(&cat))
        .expect_problem(403, "insufficient-scope");

    // A client of another region does not see this region's trainees.
    let (admin2, region2) = other_region(&app);
    let (id2, secret2) = client(&app, &admin2, &region2, &["progress:read"]);
    let other = token(&app, &id2, &secret2);
    app.get(&format!("/enrolments/{}", w.enrolment), Some(&other))
        .expect_problem(404, "not-found");
    let list = app.get("/enrolments", Some(&other)).expect(200);
    assert_eq!(list.body["items"], json!([]));

    // Rotating the secret: the old one and its tokens stop working at once.
    let rotated = app
        .post(
            &format!("/api-clients/{id}/rotate-secret"),
            Some(&w.admin.access),
            json!({}),
        )
        .expect(200);
    let new_secret = rotated.body["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_ne!(new_secret, secret);
    token_request(&app, "grant_type=client_credentials", Some((&id, &secret)))
        .expect_problem(401, "oauth-invalid-client");
    app.get("/enrolments", Some(&access))
        .expect_problem(401, "unauthenticated");
    let access = token(&app, &id, &new_secret);
    let list = app.get("/enrolments", Some(&access)).expect(200);
    assert_eq!(
        list.body["items"][0]["id"],
        w.enrolment.as_str(),
        "{}",
        list.text
    );
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));

    // Revoked: no tokens, and the current one is dead.
    let revoked = app
        .post(
            &format!("/api-clients/{id}/revoke"),
            Some(&w.admin.access),
            json!({}),
        )
        .expect(200);
    assert_eq!(revoked.body["status"], "revoked");
    app.get("/enrolments", Some(&access))
        .expect_problem(401, "unauthenticated");
    token_request(
        &app,
        "grant_type=client_credentials",
        Some((&id, &new_secret)),
    )
    .expect_problem(401, "oauth-invalid-client");

    // Tokens are expired by the clock.
    let (id3, secret3) = client(&app, &w.admin, &w.slso, &["progress:read"]);
    let short = token(&app, &id3, &secret3);
    app.advance(3601);
    app.get("/enrolments", Some(&short))
        .expect_problem(401, "unauthenticated");

    // Every token issued is audited with the client's identity.
    let entries = audited_by(&app, &format!("client:{id}"));
    assert!(entries
        .iter()
        .any(|(a, e)| a == "token_issued" && e == "api_client"));
}

#[test]
fn xapi_statements_become_activities_and_the_unmatched_are_resolved_later() {
    let app = TestApp::start();
    let w = world(&app);
    let (id, secret) = client(
        &app,
        &w.admin,
        &w.region,
        &["activities:write", "progress:read"],
    );
    let access = token(&app, &id, &secret);
    app.post(
        "/xapi/activity-mappings",
        Some(&w.admin.access),
        json!({"organisation_id": w.region, "xapi_activity_id": COURSE, "kind": "course",
               "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]}),
    )
    .expect(201);

    let good = "6690e6c9-3ef0-4ed3-8b37-7f3964730bee";
    let stranger = "0b0f8f6e-2d47-4a39-9e39-0f5d7f2f1f11";
    let unmapped = "3c1a9b7e-6a55-4d2e-8e0e-2f1f5b9a7c22";
    let by_account = "9d2e4f6a-1b3c-4d5e-8f70-a1b2c3d4e5f6";
    let elearning = "https://lms.regionstockholm.se/elearning/lakemedel";
    let mut changed = statement(good, "bt@sll.se", COURSE);
    changed["timestamp"] = json!("2026-11-21T09:00:00Z");
    let mut account = statement(by_account, "x@y.se", COURSE);
    account["actor"] =
        json!({"account": {"homePage": "https://lms.regionstockholm.se", "name": "u12345"}});
    // The LRS stores a batch whole or not at all: one invalid statement refuses it.
    let invalid = json!([
        statement(good, "bt@sll.se", COURSE),
        {"id": "not-a-uuid", "actor": {"mbox": "mailto:bt@sll.se"}, "verb": {"id": COMPLETED}, "object": {"id": COURSE}},
    ]);
    let refused = post_statements(&app, &access, &invalid).expect_problem(400, "malformed-request");
    assert_eq!(refused.header("x-experience-api-version"), Some("1.0.3"));
    assert!(refused.text.contains("statement 1"), "{}", refused.text);
    let no_verb = json!([{"id": "7f1e4c9a-0000-4000-8000-000000000001",
        "actor": {"mbox": "mailto:bt@sll.se"}, "object": {"id": COURSE}}]);
    post_statements(&app, &access, &no_verb).expect_problem(400, "malformed-request");
    // The same id twice in one batch is refused too.
    let twice = json!([
        statement(good, "bt@sll.se", COURSE),
        statement(good, "bt@sll.se", COURSE)
    ]);
    post_statements(&app, &access, &twice).expect_problem(400, "malformed-request");
    app.get(&format!("/xapi/statements/{good}"), Some(&w.admin.access))
        .expect_problem(404, "not-found");

    let batch = json!([
        statement(good, "bt@sll.se", COURSE),
        statement(stranger, "nobody@example.org", COURSE),
        statement(unmapped, "bt@sll.se", elearning),
        account,
    ]);
    let r = post_statements(&app, &access, &batch).expect(200);
    assert_eq!(r.header("x-experience-api-version"), Some("1.0.3"));
    // The answer is the statements' ids (xAPI), nothing about the learners.
    assert_eq!(
        r.body,
        json!([good, stranger, unmapped, by_account]),
        "{}",
        r.text
    );
    let status = |id: &str| {
        app.get(&format!("/xapi/statements/{id}"), Some(&w.admin.access))
            .expect(200)
            .body
    };
    assert_eq!(status(good)["status"], "created");
    assert_eq!(status(stranger)["reason"], "unknown_learner");
    assert_eq!(status(unmapped)["reason"], "unmapped_activity");
    assert_eq!(status(by_account)["reason"], "unknown_learner");
    let activity = status(good)["activity_id"]
        .as_str()
        .expect("activity")
        .to_string();
    // Same id, other content: 409, and nothing of the batch is stored.
    let later = "2b7e1c3d-4f5a-4b6c-8d7e-9f0a1b2c3d4e";
    post_statements(
        &app,
        &access,
        &json!([statement(later, "bt@sll.se", COURSE), changed]),
    )
    .expect_problem(409, "conflict");
    app.get(&format!("/xapi/statements/{later}"), Some(&w.admin.access))
        .expect_problem(404, "not-found");

    // The trainee sees it, linked to the mapped delmål.
    let list = app
        .get(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
        )
        .expect(200);
    let items = list.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], activity.as_str());
    assert_eq!(items[0]["title"], "Försäkringsmedicinsk dag");
    assert_eq!(items[0]["kind"], "course");
    assert_eq!(items[0]["start_date"], "2026-11-20");
    assert_eq!(items[0]["delmal"], json!(["BT16"]));

    // Sent again (an LRS retrying): nothing new. With an Idempotency-Key, per client.
    let again =
        post_statements(&app, &access, &json!(statement(good, "bt@sll.se", COURSE))).expect(200);
    assert_eq!(again.body, json!([good]));
    assert_eq!(status(good)["activity_id"], activity.as_str());
    let keyed = |key: &str| {
        app.send(
            "POST",
            "/xapi/statements",
            Some(&access),
            Some(&json!([statement(good, "bt@sll.se", COURSE)])),
            &[
                ("X-Experience-API-Version", "1.0.3"),
                ("Idempotency-Key", key),
            ],
        )
    };
    keyed("k1").expect(200);
    assert_eq!(
        keyed("k1").expect(200).header("idempotent-replayed"),
        Some("true")
    );
    app.send(
        "POST",
        "/xapi/statements",
        Some(&access),
        Some(&json!([])),
        &[],
    )
    .expect_problem(400, "malformed-request");

    // The administrator's work list.
    let unmatched = app
        .get("/xapi/statements?status=unmatched", Some(&w.admin.access))
        .expect(200);
    let mut ids: Vec<&str> = unmatched.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    ids.sort();
    let mut expected = vec![stranger, unmapped, by_account];
    expected.sort();
    assert_eq!(ids, expected);

    // Still unmapped: 422 with the reason. Mapping it makes the activity at once.
    app.post(
        &format!("/xapi/statements/{unmapped}/resolve"),
        Some(&w.admin.access),
        json!({}),
    )
    .expect_problem(422, "unprocessable");
    app.post(
        "/xapi/activity-mappings",
        Some(&w.admin.access),
        json!({"organisation_id": w.slso, "xapi_activity_id": elearning, "kind": "e_learning",
               "title": "Läkemedel (e-learning)", "delmal": ["BT7", "BT8"]}),
    )
    .expect(201);
    let resolved = status(unmapped);
    assert_eq!(resolved["status"], "created");
    let second = resolved["activity_id"]
        .as_str()
        .expect("activity")
        .to_string();
    let a = app
        .get(&format!("/activities/{second}"), Some(&w.trainee.access))
        .expect(200);
    assert_eq!(a.body["kind"], "e_learning");
    assert_eq!(a.body["delmal"], json!(["BT7", "BT8"]));
    app.post(
        &format!("/xapi/statements/{unmapped}/resolve"),
        Some(&w.admin.access),
        json!({}),
    )
    .expect_problem(409, "conflict");

    // An account link makes the account-identified statement the trainee's at once.
    app.post(
        "/xapi/account-links",
        Some(&w.admin.access),
        json!({"organisation_id": w.region, "home_page": "https://lms.regionstockholm.se",
               "name": "u12345", "email": "bt@sll.se"}),
    )
    .expect(201);
    assert_eq!(status(by_account)["status"], "created");
    // The stranger is set aside.
    app.post(
        &format!("/xapi/statements/{stranger}/dismiss"),
        Some(&w.admin.access),
        json!({}),
    )
    .expect(200);
    let left = app
        .get("/xapi/statements?status=unmatched", Some(&w.admin.access))
        .expect(200);
    assert_eq!(left.body["items"], json!([]));
    let list = app
        .get(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
        )
        .expect(200);
    assert_eq!(list.body["items"].as_array().expect("items").len(), 3);

    // Every write of the client is audited with its identity.
    let entries = audited_by(&app, &format!("client:{id}"));
    assert!(entries
        .iter()
        .any(|(a, e)| a == "created" && e == "activity"));
    assert!(entries
        .iter()
        .any(|(a, e)| a == "received" && e == "xapi_statement"));
    let mut conn = db(&app);
    let check = eportfolio::audit::verify(&mut conn).expect("verify");
    assert!(check.intact, "{check:?}");
}

fn verify_signature(secret: &str, header: &str, body: &str) -> i64 {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_string()),
            Some(("v1", v)) => v1 = Some(v.to_string()),
            _ => {}
        }
    }
    let (t, v1) = (t.expect("t"), v1.expect("v1"));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&hex::decode(v1).expect("hex"))
        .expect("the signature verifies");
    t.parse().expect("unix time")
}

/// Polls the delivery log until `done` holds (10 s at most).
fn wait_deliveries(
    app: &TestApp,
    admin: &TestUser,
    sub: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = std::time::Instant::now();
    loop {
        let r = app
            .get(
                &format!("/webhook-subscriptions/{sub}/deliveries"),
                Some(&admin.access),
            )
            .expect(200);
        if done(&r.body["items"]) {
            return r.body["items"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "deliveries: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn log_activity(app: &TestApp, w: &World, title: &str) -> String {
    let r = app
        .post(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
            json!({"kind": "course", "title": title, "start_date": "2026-10-06", "delmal": ["BT16"]}),
        )
        .expect(201);
    r.body["id"].as_str().expect("id").to_string()
}

#[test]
fn webhooks_are_signed_retried_with_backoff_logged_and_replayable() {
    let app = TestApp::start_with(|c| c.webhook_poll = Duration::from_millis(50));
    let w = world(&app);
    let receiver = Receiver::start(vec![500, 500, 200]);
    let sub = app
        .post(
            "/webhook-subscriptions",
            Some(&w.admin.access),
            json!({"organisation_id": w.region, "url": receiver.url, "events": ["activity.created"]}),
        )
        .expect(201);
    let sub_id = sub.body["id"].as_str().expect("id").to_string();
    let secret = sub.body["secret"].as_str().expect("secret").to_string();
    let activity = log_activity(&app, &w, "Försäkringsmedicinsk dag");

    // First attempt: signed, answered 500, retried in 30 s.
    let got = receiver.wait_for(1);
    let first = &got[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.headers["eportfolio-event"], "activity.created");
    let t = verify_signature(&secret, &first.headers["eportfolio-signature"], &first.body);
    assert_eq!(t, app.now_unix());
    let body: Value = serde_json::from_str(&first.body).expect("json");
    assert_eq!(body["type"], "activity.created");
    assert_eq!(body["data"]["activity"]["id"], activity.as_str());
    let items = wait_deliveries(&app, &w.admin, &sub_id, |d| d[0]["attempts"] == 1);
    assert_eq!(items[0]["status"], "pending");
    assert_eq!(items[0]["last_status_code"], 500);
    let next =
        chrono::DateTime::parse_from_rfc3339(items[0]["next_attempt_at"].as_str().expect("next"))
            .expect("time");
    assert_eq!(next.timestamp(), app.now_unix() + 30);
    // Not before it is due: a second before, nothing is due for any worker.
    app.advance(29);
    assert_eq!(due_deliveries(&app), 0);
    assert_eq!(receiver.received().len(), 1);
    app.advance(-29);

    app.advance(30);
    receiver.wait_for(2);
    let items = wait_deliveries(&app, &w.admin, &sub_id, |d| d[0]["attempts"] == 2);
    let next =
        chrono::DateTime::parse_from_rfc3339(items[0]["next_attempt_at"].as_str().expect("next"))
            .expect("time");
    assert_eq!(next.timestamp(), app.now_unix() + 60, "exponential backoff");

    app.advance(60);
    let got = receiver.wait_for(3);
    assert_eq!(got[2].body, got[0].body, "retries carry the same body");
    verify_signature(
        &secret,
        &got[2].headers["eportfolio-signature"],
        &got[2].body,
    );
    let items = wait_deliveries(&app, &w.admin, &sub_id, |d| d[0]["status"] == "delivered");
    let log: Vec<&Value> = items[0]["attempt_log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(log, vec![&json!(500), &json!(500), &json!(200)]);
    assert_eq!(items[0]["next_attempt_at"], Value::Null);
    let delivery = items[0]["id"].as_str().expect("id").to_string();

    // Replayed: the same event again, as a new delivery.
    let replay = app
        .post(
            &format!("/webhook-deliveries/{delivery}/replay"),
            Some(&w.admin.access),
            json!({}),
        )
        .expect(201);
    assert_eq!(replay.body["replay_of"], delivery.as_str());
    let got = receiver.wait_for(4);
    assert_eq!(got[3].body, got[0].body);
    assert_eq!(
        got[3].headers["eportfolio-event-id"],
        got[0].headers["eportfolio-event-id"]
    );

    // A rotated secret signs from then on.
    let rotated = app
        .post(
            &format!("/webhook-subscriptions/{sub_id}/rotate-secret"),
            Some(&w.admin.access),
            json!({}),
        )
        .expect(200);
    let secret2 = rotated.body["secret"].as_str().expect("secret").to_string();
    app.post(
        &format!("/webhook-subscriptions/{sub_id}/ping"),
        Some(&w.admin.access),
        json!({}),
    )
    .expect(201);
    let got = receiver.wait_for(5);
    assert_eq!(got[4].headers["eportfolio-event"], "webhook.test");
    verify_signature(
        &secret2,
        &got[4].headers["eportfolio-signature"],
        &got[4].body,
    );

    // A dead receiver gives up after a day, and never holds up the API.
    let dead = app
        .post(
            "/webhook-subscriptions",
            Some(&w.admin.access),
            json!({"organisation_id": w.slso, "url": "http://127.0.0.1:9/nobody", "events": ["*"]}),
        )
        .expect(201);
    let dead_id = dead.body["id"].as_str().expect("id").to_string();
    log_activity(&app, &w, "Sepsis-seminarium");
    wait_deliveries(&app, &w.admin, &dead_id, |d| d[0]["attempts"] == 1);
    for _ in 0..40 {
        app.advance(3600);
        std::thread::sleep(Duration::from_millis(60));
    }
    // (The administrator's access token expired meanwhile.)
    let admin = app.login_totp(&w.admin);
    let items = wait_deliveries(&app, &admin, &dead_id, |d| d[0]["status"] == "failed");
    assert!(items[0]["attempts"].as_i64().expect("n") >= 5);
    assert!(items[0]["last_error"].as_str().is_some());
}

/// The stored domain events, as (kind, enrolment) in the order written.
fn stored_events(app: &TestApp) -> Vec<(String, Option<String>, String)> {
    use eportfolio::schema::domain_events;
    let mut conn = db(app);
    domain_events::table
        .order(domain_events::created_at)
        .select((
            domain_events::kind,
            domain_events::enrolment_id,
            domain_events::id,
        ))
        .load(&mut *conn)
        .expect("events")
}

#[test]
fn an_event_is_stored_only_when_a_subscriber_listens() {
    let app = TestApp::start_with(|c| c.webhook_poll = Duration::ZERO);
    let w = world(&app);
    // Nobody subscribes: the change is made and costs no event row.
    log_activity(&app, &w, "Ingen lyssnar");
    assert!(stored_events(&app).is_empty());

    // A subscription anywhere makes the webhooks listen: the event is stored, and the
    // delivery carries its id.
    let receiver = Receiver::start(vec![200]);
    let sub = app
        .post(
            "/webhook-subscriptions",
            Some(&w.admin.access),
            json!({"organisation_id": w.region, "url": receiver.url, "events": ["activity.created"]}),
        )
        .expect(201);
    let sub_id = sub.body["id"].as_str().expect("id").to_string();
    log_activity(&app, &w, "Nu lyssnar någon");
    let events = stored_events(&app);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "activity.created");
    assert_eq!(events[0].1.as_deref(), Some(w.enrolment.as_str()));
    let queued = wait_deliveries(&app, &w.admin, &sub_id, |d| d[0]["status"] == "pending");
    assert_eq!(queued.as_array().map(Vec::len), Some(1), "{queued}");
    {
        use eportfolio::schema::webhook_deliveries;
        let mut conn = db(&app);
        let event_ids: Vec<String> = webhook_deliveries::table
            .select(webhook_deliveries::event_id)
            .load(&mut *conn)
            .expect("deliveries");
        assert_eq!(event_ids, vec![events[0].2.clone()]);
    }

    // Deleted: back to no rows, since nobody listens.
    app.delete(
        &format!("/webhook-subscriptions/{sub_id}"),
        Some(&w.admin.access),
    )
    .expect(204);
    log_activity(&app, &w, "Ingen lyssnar igen");
    assert_eq!(stored_events(&app).len(), 1);
}

#[test]
fn an_event_survives_a_restart_and_a_dead_nodes_lease() {
    // No worker on the first server: the event waits in the outbox.
    let mut app = TestApp::start_with(|c| c.webhook_poll = Duration::ZERO);
    let w = world(&app);
    let receiver = Receiver::start(vec![200]);
    let sub = app
        .post(
            "/webhook-subscriptions",
            Some(&w.admin.access),
            json!({"organisation_id": w.slso, "url": receiver.url, "events": ["activity.created", "assessment.signed"]}),
        )
        .expect(201);
    let sub_id = sub.body["id"].as_str().expect("id").to_string();
    let first = log_activity(&app, &w, "Före omstarten");
    // Queued with the activity, and no worker on this node to send it.
    let queued = wait_deliveries(&app, &w.admin, &sub_id, |d| d[0]["status"] == "pending");
    assert_eq!(queued[0]["attempts"], 0, "{queued}");
    assert!(receiver.received().is_empty());

    // Restarted with a worker: delivered.
    app.restart_with(|c| c.webhook_poll = Duration::from_millis(50));
    let got = receiver.wait_for(1);
    let body: Value = serde_json::from_str(&got[0].body).expect("json");
    assert_eq!(body["data"]["activity"]["id"], first.as_str());
    wait_deliveries(&app, &w.admin, &sub_id, |d| d[0]["status"] == "delivered");

    // A node that claimed a delivery and died holds it until its lease runs out; then
    // another node delivers it, once.
    app.restart_with(|c| c.webhook_poll = Duration::ZERO);
    log_activity(&app, &w, "Nod som dog");
    {
        let mut conn = db(&app);
        let now = eportfolio::clock::Clock::now(&*app.clock);
        // The dead node had the master key: the webhook secret is sealed.
        let keyring =
            std::sync::Arc::new(eportfolio::secrets::Keyring::load(&app.dir).expect("keys"));
        let claimed = eportfolio::integrations::webhooks::claim_due(&mut conn, &keyring, now, 10)
            .expect("claim");
        assert_eq!(claimed.len(), 1);
    }
    // Leased to the dead node: no worker may take it until the lease runs out.
    assert_eq!(due_deliveries(&app), 0, "leased to the dead node");
    app.restart_with(|c| c.webhook_poll = Duration::from_millis(50));
    assert_eq!(receiver.received().len(), 1);
    app.advance(121);
    let got = receiver.wait_for(2);
    // Recorded as delivered only after it was sent: nothing more can come of it.
    wait_deliveries(&app, &w.admin, &sub_id, |d| {
        d.as_array()
            .is_some_and(|x| x.len() == 2 && x.iter().all(|i| i["status"] == "delivered"))
    });
    assert_eq!(receiver.received().len(), 2);
    let body: Value = serde_json::from_str(&got[1].body).expect("json");
    assert_eq!(body["data"]["activity"]["title"], "Nod som dog");
}

#[test]
fn bulk_import_is_all_or_nothing_and_invites_the_cohort() {
    let app = TestApp::start();
    let w = world(&app);
    let template = app
        .get("/programme-templates", Some(&w.admin.access))
        .expect(200)
        .body["items"][0]["id"]
        .as_str()
        .expect("template")
        .to_string();

    // Any bad row: nothing imported, every error by row number.
    let bad = app
        .post(
            "/imports/users",
            Some(&w.admin.access),
            json!([
                {"email": "ok.one@sll.se", "organisation_id": w.slso},
                {"email": "not-an-address", "organisation_id": w.slso},
                {"email": "ok.two@sll.se", "organisation_id": "no-such-org"},
                {"email": "ok.three@sll.se", "organisation_id": w.slso, "role": "wizard"}
            ]),
        )
        .expect_problem(422, "validation");
    let messages: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("row 2:")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("row 3:")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("row 4:")),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.starts_with("row 1:")),
        "{messages:?}"
    );
    assert_eq!(app.smtp.count_to("ok.one@sll.se"), 0);
    let users = app
        .get("/users?limit=200", Some(&w.admin.access))
        .expect(200);
    assert!(!users.text.contains("ok.one@sll.se"));

    // CSV: header row 1; both invited.
    let csv = format!(
        "email,display_name,role,organisation_id\nny.ett@sll.se,Ny Ett,trainee,{slso}\nny.tva@sll.se,Ny Två,,{slso}\n",
        slso = w.slso
    );
    let r = app
        .send_raw(
            "POST",
            "/imports/users",
            Some(&w.admin.access),
            "text/csv",
            csv.as_bytes(),
        )
        .expect(201);
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["row"], 2);
    assert_eq!(items[1]["status"], "invited");
    let invitation = app
        .smtp
        .wait_for("ny.ett@sll.se", 0)
        .find_token_after("token=")
        .expect("token");
    app.smtp.wait_for("ny.tva@sll.se", 0);

    // Enrolments: one bad row spoils the batch.
    let before = app
        .get("/enrolments", Some(&w.admin.access))
        .expect(200)
        .body["items"]
        .as_array()
        .expect("items")
        .len();
    let csv = format!(
        "email,template_id,track,start_date,planned_end\n\
         ny.ett@sll.se,{template},bt_standalone,2027-09-01,2028-08-31\n\
         ny.tva@sll.se,{template},bt_standalone,2027-09-01,2027-01-01\n\
         okand@sll.se,{template},bt_standalone,2027-09-01,2028-08-31\n"
    );
    let bad = app
        .send_raw(
            "POST",
            "/imports/enrolments",
            Some(&w.admin.access),
            "text/csv",
            csv.as_bytes(),
        )
        .expect_problem(422, "validation");
    let messages: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("row 3:")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("row 4:")),
        "{messages:?}"
    );
    let after = app
        .get("/enrolments", Some(&w.admin.access))
        .expect(200)
        .body["items"]
        .as_array()
        .expect("items")
        .len();
    assert_eq!(after, before, "nothing imported");

    app.join(&w.admin, "hhl@sll.se", "supervisor", &w.slso);
    let ok = app
        .post(
            "/imports/enrolments",
            Some(&w.admin.access),
            json!([
                {"email": "ny.ett@sll.se", "template_id": template, "track": "bt_standalone",
                 "start_date": "2027-09-01", "planned_end": "2028-08-31",
                 "placements": [{"placement_type": "allmanmedicin", "start_date": "2027-09-01", "end_date": "2027-12-31"}]},
                {"email": "ny.tva@sll.se", "template_id": template, "track": "bt_standalone",
                 "start_date": "2027-09-01", "planned_end": "2028-08-31", "main_supervisor_email": "hhl@sll.se"}
            ]),
        )
        .expect(201);
    assert_eq!(ok.body["items"].as_array().expect("items").len(), 2);
    assert_eq!(
        ok.body["items"][0]["placements"]
            .as_array()
            .expect("p")
            .len(),
        1
    );

    // The imported trainee accepts the invitation and finds their plan.
    let ett = app.accept_with_totp(&invitation, "ny.ett@sll.se");
    let mine = app.get("/enrolments", Some(&ett.access)).expect(200);
    assert_eq!(mine.body["items"].as_array().expect("items").len(), 1);
}

#[test]
fn only_the_organisations_administrators_manage_integrations() {
    let app = TestApp::start();
    let w = world(&app);
    let supervisor = app.join(&w.admin, "hl@sll.se", "supervisor", &w.slso);
    let (id, _) = client(&app, &w.admin, &w.region, &["progress:read"]);
    let sub = app
        .post(
            "/webhook-subscriptions",
            Some(&w.admin.access),
            json!({"organisation_id": w.region, "url": "https://lms.example.org/hook", "events": ["*"]}),
        )
        .expect(201);
    let sub_id = sub.body["id"].as_str().expect("id").to_string();
    assert!(sub.body["secret"]
        .as_str()
        .expect("secret")
        .starts_with("whsec_"));
    app.get(
        &format!("/webhook-subscriptions/{sub_id}"),
        Some(&w.admin.access),
    )
    .expect(200);
    assert!(app
        .get(
            &format!("/webhook-subscriptions/{sub_id}"),
            Some(&w.admin.access)
        )
        .body
        .get("secret")
        .is_none());

    for user in [&w.trainee, &supervisor] {
        let t = Some(user.access.as_str());
        app.post(
            "/api-clients",
            t,
            json!({"organisation_id": w.slso, "name": "x", "scopes": ["progress:read"]}),
        )
        .expect_problem(403, "forbidden");
        app.get("/api-clients", t).expect_problem(403, "forbidden");
        app.get(&format!("/api-clients/{id}"), t)
            .expect_problem(404, "not-found");
        app.post(
            "/webhook-subscriptions",
            t,
            json!({"organisation_id": w.slso, "url": "https://x.example/h", "events": ["*"]}),
        )
        .expect_problem(403, "forbidden");
        app.get("/webhook-subscriptions", t)
            .expect_problem(403, "forbidden");
        app.post(
            "/xapi/activity-mappings",
            t,
            json!({"organisation_id": w.slso, "xapi_activity_id": COURSE, "kind": "course", "title": "x"}),
        )
        .expect_problem(403, "forbidden");
        app.get("/xapi/statements", t)
            .expect_problem(403, "forbidden");
        app.post(
            "/imports/users",
            t,
            json!([{"email": "x@sll.se", "organisation_id": w.slso}]),
        )
        .expect_problem(403, "forbidden");
    }

    // Another region's administrator neither sees nor touches them.
    let (admin2, region2) = other_region(&app);
    let t2 = Some(admin2.access.as_str());
    app.get(&format!("/api-clients/{id}"), t2)
        .expect_problem(404, "not-found");
    app.post(&format!("/api-clients/{id}/rotate-secret"), t2, json!({}))
        .expect_problem(404, "not-found");
    app.post(&format!("/api-clients/{id}/revoke"), t2, json!({}))
        .expect_problem(404, "not-found");
    assert_eq!(
        app.get("/api-clients", t2).expect(200).body["items"],
        json!([])
    );
    app.get(&format!("/webhook-subscriptions/{sub_id}"), t2)
        .expect_problem(404, "not-found");
    app.get(&format!("/webhook-subscriptions/{sub_id}/deliveries"), t2)
        .expect_problem(404, "not-found");
    assert_eq!(
        app.get("/webhook-subscriptions", t2).expect(200).body["items"],
        json!([])
    );
    app.post(
        "/api-clients",
        t2,
        json!({"organisation_id": w.slso, "name": "x", "scopes": ["progress:read"]}),
    )
    .expect_problem(403, "forbidden");
    app.post(
        "/webhook-subscriptions",
        t2,
        json!({"organisation_id": w.region, "url": "https://x.example/h", "events": ["*"]}),
    )
    .expect_problem(403, "forbidden");
    // Their own region works.
    client(&app, &admin2, &region2, &["catalog:read"]);

    // Invalid input is a 422 with the fields.
    let bad = app
        .post(
            "/api-clients",
            Some(&w.admin.access),
            json!({"organisation_id": w.slso, "name": "", "scopes": ["everything"]}),
        )
        .expect_problem(422, "validation");
    assert!(bad.text.contains("scopes[0]") && bad.text.contains("name"));
    app.post(
        "/webhook-subscriptions",
        Some(&w.admin.access),
        json!({"organisation_id": w.slso, "url": "ftp://x", "events": ["nothing.happened"]}),
    )
    .expect_problem(422, "validation");
}

/// Every integration setting an administrator makes can be read back, changed and
/// removed, and a final check-in read and corrected: operations no workflow above needs.
#[test]
fn integration_settings_and_final_check_ins_are_read_changed_and_removed() {
    let app = TestApp::start();
    let w = world(&app);
    let t = Some(w.admin.access.as_str());

    // An API client, read by id.
    let (client_id, _) = client(&app, &w.admin, &w.region, &["progress:read"]);
    let c = app.get(&format!("/api-clients/{client_id}"), t).expect(200);
    assert_eq!(c.body["id"], client_id.as_str());
    assert_eq!(c.body["scopes"], json!(["progress:read"]));
    assert!(c.body.get("client_secret").is_none(), "{}", c.text);

    // A webhook subscription, paused and renamed, then removed.
    let receiver = Receiver::start(vec![200]);
    let sub = app
        .post(
            "/webhook-subscriptions",
            t,
            json!({"organisation_id": w.region, "url": receiver.url, "events": ["activity.created"]}),
        )
        .expect(201);
    let sub_path = format!(
        "/webhook-subscriptions/{}",
        sub.body["id"].as_str().expect("id")
    );
    let changed = app
        .patch(
            &sub_path,
            t,
            json!({"active": false, "description": "LMS i test", "events": ["activity.created", "assessment.signed"]}),
            &[],
        )
        .expect(200);
    assert_eq!(changed.body["active"], false, "{}", changed.text);
    assert_eq!(changed.body["description"], "LMS i test");
    assert_eq!(
        changed.body["events"],
        json!(["activity.created", "assessment.signed"])
    );
    app.delete(&sub_path, t).expect(204);
    app.get(&sub_path, t).expect_problem(404, "not-found");

    // An xAPI activity mapping: listed, removed, gone from the list.
    let mapping = app
        .post(
            "/xapi/activity-mappings",
            t,
            json!({"organisation_id": w.region, "xapi_activity_id": COURSE, "kind": "course",
                   "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]}),
        )
        .expect(201);
    let mapping_id = mapping.body["id"].as_str().expect("id").to_string();
    let listed = app.get("/xapi/activity-mappings", t).expect(200);
    let items = listed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", listed.text);
    assert_eq!(items[0]["id"], mapping_id.as_str());
    app.delete(&format!("/xapi/activity-mappings/{mapping_id}"), t)
        .expect(204);
    let listed = app.get("/xapi/activity-mappings", t).expect(200);
    assert_eq!(listed.body["items"], json!([]), "{}", listed.text);

    // An xAPI account link: the same.
    let link = app
        .post(
            "/xapi/account-links",
            t,
            json!({"organisation_id": w.region, "home_page": "https://lms.regionstockholm.se",
                   "name": "u12345", "email": "bt@sll.se"}),
        )
        .expect(201);
    let link_id = link.body["id"].as_str().expect("id").to_string();
    let listed = app.get("/xapi/account-links", t).expect(200);
    let items = listed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", listed.text);
    assert_eq!(items[0]["id"], link_id.as_str());
    app.delete(&format!("/xapi/account-links/{link_id}"), t)
        .expect(204);
    let listed = app.get("/xapi/account-links", t).expect(200);
    assert_eq!(listed.body["items"], json!([]), "{}", listed.text);

    // A final check-in, read and corrected by the trainee before anyone confirms it.
    let main = app.join(&w.admin, "handledare@sll.se", "supervisor", &w.slso);
    app.post(
        &format!("/enrolments/{}/assignments", w.enrolment),
        t,
        json!({"user_id": main.id, "role": "main_supervisor", "valid_from": "2026-09-01"}),
    )
    .expect(201);
    let trainee = Some(w.trainee.access.as_str());
    let check_in = app
        .post(
            &format!("/enrolments/{}/final-check-ins", w.enrolment),
            trainee,
            json!({"held_on": "2026-11-20", "notes": "Delmålen genomgångna.", "agreed_actions": "Portföljen till bedömaren."}),
        )
        .expect(201);
    let path = format!(
        "/final-check-ins/{}",
        check_in.body["id"].as_str().expect("id")
    );
    let read = app.get(&path, trainee).expect(200);
    assert_eq!(read.body["notes"], "Delmålen genomgångna.", "{}", read.text);
    let etag = read.header("etag").expect("etag").to_string();
    let corrected = app
        .patch(
            &path,
            trainee,
            json!({"held_on": "2026-11-20", "notes": "Alla delmål genomgångna.", "agreed_actions": "Portföljen till bedömaren."}),
            &[("If-Match", &etag)],
        )
        .expect(200);
    assert_eq!(corrected.body["notes"], "Alla delmål genomgångna.");
    assert_eq!(
        app.get(&path, trainee).expect(200).body["notes"],
        "Alla delmål genomgångna."
    );
}
