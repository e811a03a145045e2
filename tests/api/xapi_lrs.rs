//! The xAPI Statements resource as an LMS configured with an LRS endpoint, key and
//! secret uses it (issue 16): HTTP Basic, PUT/POST/GET, ids assigned, voiding, the
//! version header, and who may do what.

use base64::Engine;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::integrations::{client, token};
use crate::support::{Resp, TestApp, TestUser};

const COURSE: &str = "https://lms.regionstockholm.se/courses/forsakringsmedicin";
const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";
const V: (&str, &str) = ("X-Experience-API-Version", "1.0.3");

struct Lms {
    app: TestApp,
    admin: TestUser,
    trainee: TestUser,
    enrolment: String,
    region: String,
    slso: String,
    /// `Basic base64(id:secret)`.
    basic: String,
    client_id: String,
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn start() -> Lms {
    let app = TestApp::start();
    let w = crate::integrations::world(&app);
    app.post(
        "/xapi/activity-mappings",
        Some(&w.admin.access),
        json!({"organisation_id": w.region, "xapi_activity_id": COURSE, "kind": "course",
               "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]}),
    )
    .expect(201);
    let (client_id, secret) = client(&app, &w.admin, &w.region, &["activities:write"]);
    Lms {
        enrolment: w.enrolment,
        basic: basic(&client_id, &secret),
        app,
        admin: w.admin,
        trainee: w.trainee,
        region: w.region,
        slso: w.slso,
        client_id,
    }
}

impl Lms {
    fn send(&self, method: &str, path: &str, body: Option<&Value>, version: bool) -> Resp {
        let mut headers = vec![("Authorization", self.basic.as_str())];
        if version {
            headers.push(V);
        }
        self.app.send(method, path, None, body, &headers)
    }

    fn activities(&self) -> Vec<Value> {
        self.app
            .get(
                &format!("/enrolments/{}/activities", self.enrolment),
                Some(&self.trainee.access),
            )
            .expect(200)
            .body["items"]
            .as_array()
            .expect("items")
            .clone()
    }
}

fn completed(mbox: &str) -> Value {
    json!({
        "actor": {"objectType": "Agent", "name": "BT-läkare", "mbox": format!("mailto:{mbox}")},
        "verb": {"id": COMPLETED, "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": COURSE},
        "timestamp": "2026-11-20T13:00:00Z"
    })
}

fn voiding(target: &str) -> Value {
    json!({
        "actor": {"objectType": "Agent", "mbox": "mailto:lms@regionstockholm.se"},
        "verb": {"id": VOIDED, "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": target}
    })
}

#[test]
fn an_lms_with_a_key_and_secret_stores_reads_and_voids_statements() {
    let w = start();
    let app = &w.app;

    // The About resource: no credentials, no version header needed.
    let about = app.get("/xapi/about", None).expect(200);
    assert_eq!(about.body["version"], json!(["1.0.3", "2.0.0"]));
    assert_eq!(about.header("x-experience-api-version"), Some("1.0.3"));
    // A 1.0 client hears of 1.0.3 only (1.0 libraries refuse unknown versions).
    let about = app.send("GET", "/xapi/about", None, None, &[V]).expect(200);
    assert_eq!(about.body["version"], json!(["1.0.3"]));

    // No version header, or an unsupported one: 400, and the answer still has the header.
    let none = w
        .send(
            "POST",
            "/xapi/statements",
            Some(&completed("bt@sll.se")),
            false,
        )
        .expect_problem(400, "malformed-request");
    assert_eq!(none.header("x-experience-api-version"), Some("1.0.3"));
    app.send(
        "POST",
        "/xapi/statements",
        None,
        Some(&completed("bt@sll.se")),
        &[
            ("Authorization", &w.basic),
            ("X-Experience-API-Version", "0.95"),
        ],
    )
    .expect_problem(400, "malformed-request");

    // POST of one statement without an id: the LRS assigns one and answers it.
    let posted = w
        .send(
            "POST",
            "/xapi/statements",
            Some(&completed("bt@sll.se")),
            true,
        )
        .expect(200);
    assert_eq!(posted.header("x-experience-api-version"), Some("1.0.3"));
    let first = posted.body[0].as_str().expect("an id").to_string();
    assert!(uuid::Uuid::parse_str(&first).is_ok(), "{}", posted.text);
    // Read back as stored, with what the LRS adds.
    let got = w
        .send(
            "GET",
            &format!("/xapi/statements?statementId={first}"),
            None,
            true,
        )
        .expect(200);
    assert_eq!(got.body["id"], first.as_str());
    assert_eq!(got.body["verb"]["id"], COMPLETED);
    assert_eq!(got.body["version"], "1.0.0");
    assert_eq!(
        got.body["authority"]["account"]["name"],
        w.client_id.as_str()
    );
    assert!(got.body["stored"].is_string(), "{}", got.text);
    assert!(got.header("x-experience-api-consistent-through").is_some());
    let activities = w.activities();
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0]["title"], "Försäkringsmedicinsk dag");

    // PUT under a chosen id: 204; the same again: 204, nothing new; other content: 409.
    let chosen = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
    let put = format!("/xapi/statements?statementId={chosen}");
    let mut second = completed("bt@sll.se");
    second["timestamp"] = json!("2026-11-21T09:00:00Z");
    w.send("PUT", &put, Some(&second), true).expect(204);
    w.send("PUT", &put, Some(&second), true).expect(204);
    assert_eq!(w.activities().len(), 2);
    let mut other = second.clone();
    other["timestamp"] = json!("2026-11-22T09:00:00Z");
    w.send("PUT", &put, Some(&other), true)
        .expect_problem(409, "conflict");
    // A body id other than statementId: 400.
    let mut mismatched = completed("bt@sll.se");
    mismatched["id"] = json!(first);
    w.send("PUT", &put, Some(&mismatched), true)
        .expect_problem(400, "malformed-request");

    // A batch without ids, one of them voiding the chosen statement.
    let batch = json!([completed("bt@sll.se"), voiding(chosen)]);
    let ids = w
        .send("POST", "/xapi/statements", Some(&batch), true)
        .expect(200);
    assert_eq!(ids.body.as_array().map(Vec::len), Some(2), "{}", ids.text);
    // Voided: gone from the portfolio, found only as voided, and audited.
    let titles: Vec<Value> = w
        .activities()
        .iter()
        .map(|a| a["start_date"].clone())
        .collect();
    assert_eq!(titles.len(), 2);
    assert!(!titles.contains(&json!("2026-11-21")), "{titles:?}");
    w.send("GET", &put, None, true)
        .expect_problem(404, "not-found");
    let voided = w
        .send(
            "GET",
            &format!("/xapi/statements?voidedStatementId={chosen}"),
            None,
            true,
        )
        .expect(200);
    assert_eq!(voided.body["id"], chosen);
    w.send(
        "GET",
        &format!("/xapi/statements?voidedStatementId={first}"),
        None,
        true,
    )
    .expect_problem(404, "not-found");
    let status = app
        .get(&format!("/xapi/statements/{chosen}"), Some(&w.admin.access))
        .expect(200);
    assert_eq!(status.body["status"], "created");
    let mut conn = crate::integrations::db(app);
    let voided_entries: i64 = eportfolio::schema::audit_log::table
        .filter(eportfolio::schema::audit_log::action.eq("voided"))
        .count()
        .get_result(&mut conn)
        .expect("audit");
    assert_eq!(voided_entries, 1);
    // A voiding statement cannot be voided.
    let voiding_id = ids.body[1].as_str().expect("id").to_string();
    w.send(
        "POST",
        "/xapi/statements",
        Some(&voiding(&voiding_id)),
        true,
    )
    .expect_problem(400, "malformed-request");

    // The StatementResult: the client's statements that are not voided.
    let result = w.send("GET", "/xapi/statements", None, true).expect(200);
    let listed: Vec<&str> = result.body["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(listed.len(), 3, "{}", result.text);
    assert!(!listed.contains(&chosen));
    assert_eq!(result.body["more"], "");
}

#[test]
fn a_statement_voided_before_it_arrives_arrives_voided() {
    let w = start();
    let target = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    w.send("POST", "/xapi/statements", Some(&voiding(target)), true)
        .expect(200);
    let mut late = completed("bt@sll.se");
    late["id"] = json!(target);
    w.send("POST", "/xapi/statements", Some(&late), true)
        .expect(200);
    assert_eq!(w.activities(), Vec::<Value>::new());
    w.send(
        "GET",
        &format!("/xapi/statements?voidedStatementId={target}"),
        None,
        true,
    )
    .expect(200);
}

#[test]
fn basic_credentials_are_checked_like_the_token_endpoints_and_guessing_is_limited() {
    let w = start();
    let app = &w.app;
    let (id, secret) = client(app, &w.admin, &w.region, &["activities:write"]);
    let send = |auth: &str| {
        app.send(
            "POST",
            "/xapi/statements",
            None,
            Some(&completed("bt@sll.se")),
            &[("Authorization", auth), V],
        )
    };
    // A wrong secret, an unknown client: 401 with a Basic challenge and the version.
    let wrong = send(&basic(&id, "eps_wrong")).expect_problem(401, "unauthenticated");
    assert!(
        wrong
            .header("www-authenticate")
            .is_some_and(|h| h.contains("Basic")),
        "{:?}",
        wrong.header("www-authenticate")
    );
    assert_eq!(wrong.header("x-experience-api-version"), Some("1.0.3"));
    send(&basic("no-such-client", &secret)).expect_problem(401, "unauthenticated");
    send("Basic not-base64!").expect_problem(401, "unauthenticated");
    send(&basic(&id, &secret)).expect(200);
    // Guessing: after the limit of wrong secrets even the right one waits (429).
    let mut limited = false;
    for _ in 0..12 {
        let r = send(&basic(&id, "eps_guess"));
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
            limited = true;
            break;
        }
        r.expect_problem(401, "unauthenticated");
    }
    assert!(limited, "wrong secrets are not limited");
    send(&basic(&id, &secret)).expect_problem(429, "rate-limited");
    // The token endpoint counts the same attempts.
    crate::integrations::token_request(app, "grant_type=client_credentials", Some((&id, &secret)))
        .expect_problem(429, "rate-limited");
    // A revoked client's credentials no longer work.
    let (id2, secret2) = client(app, &w.admin, &w.region, &["activities:write"]);
    app.post(
        &format!("/api-clients/{id2}/revoke"),
        Some(&w.admin.access),
        json!({}),
    )
    .expect(200);
    send(&basic(&id2, &secret2)).expect_problem(401, "unauthenticated");
}

#[test]
fn people_and_other_clients_cannot_use_or_read_the_statements_resource() {
    let w = start();
    let app = &w.app;
    let chosen = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
    let put = format!("/xapi/statements?statementId={chosen}");
    // A trainee cannot PUT a statement crediting themselves.
    let mine = completed("bt@sll.se");
    app.send("PUT", &put, Some(&w.trainee.access), Some(&mine), &[V])
        .expect_problem(403, "forbidden");
    assert_eq!(w.activities(), Vec::<Value>::new());
    w.send("PUT", &put, Some(&mine), true).expect(204);
    // A client without `activities:write` may neither write nor read statements.
    let (id, secret) = client(app, &w.admin, &w.region, &["progress:read"]);
    let reader = token(app, &id, &secret);
    app.send("PUT", &put, Some(&reader), Some(&mine), &[V])
        .expect_problem(403, "insufficient-scope");
    app.send("GET", &put, Some(&reader), None, &[V])
        .expect_problem(403, "insufficient-scope");
    // Another client of the organisation does not read this client's statements.
    let (id, secret) = client(app, &w.admin, &w.region, &["activities:write"]);
    let other = token(app, &id, &secret);
    app.send("GET", &put, Some(&other), None, &[V])
        .expect_problem(404, "not-found");
    let all = app
        .send("GET", "/xapi/statements", Some(&other), None, &[V])
        .expect(200);
    assert_eq!(all.body["statements"], json!([]));
    // Administrators' parameters are not for LRS clients, nor LRS ones for administrators.
    w.send("GET", "/xapi/statements?status=unmatched", None, true)
        .expect_problem(400, "malformed-request");
    app.get(&put, Some(&w.admin.access))
        .expect_problem(422, "validation");
}

#[test]
fn a_learner_who_enrols_later_is_resolved_by_an_administrator() {
    let w = start();
    let app = &w.app;
    let id = "8e9f0a1b-2c3d-4e5f-8a6b-7c8d9e0f1a2b";
    let mut st = completed("st@sll.se");
    st["id"] = json!(id);
    w.send("POST", "/xapi/statements", Some(&st), true)
        .expect(200);
    let path = format!("/xapi/statements/{id}");
    let s = app.get(&path, Some(&w.admin.access)).expect(200);
    assert_eq!(s.body["reason"], "unknown_learner");
    // The learner gets an account and an enrolment; the administrator resolves it.
    let later = app.join(&w.admin, "st@sll.se", "trainee", &w.slso);
    let template = app.stockholm_bt_template(&w.admin, &w.slso);
    app.post(
        "/enrolments",
        Some(&w.admin.access),
        json!({"trainee_id": later.id, "template_id": template, "track": "bt_standalone",
               "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
    )
    .expect(201);
    let resolved = app
        .post(&format!("{path}/resolve"), Some(&w.admin.access), json!({}))
        .expect(200);
    assert_eq!(resolved.body["status"], "created");
}
