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
        .get_result(&mut *conn)
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
fn a_learner_who_enrols_later_gets_the_activity_when_enrolled() {
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
    // The learner gets an account: still nobody's trainee here, still kept.
    let later = app.join(&w.admin, "st@sll.se", "trainee", &w.slso);
    let s = app.get(&path, Some(&w.admin.access)).expect(200);
    assert_eq!(s.body["status"], "unmatched");
    // Enrolling them makes the activity at once (`enrolment.created`), in the same
    // transaction, with the statement as its source.
    let template = app.stockholm_bt_template(&w.admin, &w.slso);
    let enrolment = app
        .post(
            "/enrolments",
            Some(&w.admin.access),
            json!({"trainee_id": later.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
        )
        .expect(201);
    let enrolment = enrolment.body["id"].as_str().expect("id");
    let s = app.get(&path, Some(&w.admin.access)).expect(200);
    assert_eq!(s.body["status"], "created", "{}", s.text);
    assert_eq!(s.body["enrolment_id"], enrolment);
    let activities = app
        .get(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&later.access),
        )
        .expect(200);
    let made = &activities.body["items"][0];
    assert_eq!(made["id"], s.body["activity_id"]);
    assert_eq!(made["source"]["statement_id"], id);
    assert_eq!(made["source"]["client_id"], w.client_id.as_str());
    // Resolved already: an administrator's resolve is a conflict.
    app.post(&format!("{path}/resolve"), Some(&w.admin.access), json!({}))
        .expect_problem(409, "conflict");
}

#[test]
fn an_enrolment_elsewhere_does_not_claim_a_statement_of_another_regions_platform() {
    let w = start();
    let app = &w.app;
    let id = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
    let mut st = completed("skane@example.org");
    st["id"] = json!(id);
    w.send("POST", "/xapi/statements", Some(&st), true)
        .expect(200);
    // The same e-mail enrols in another region: this platform's statement stays kept.
    let token = app.bootstrap_admin("admin@regionskane.se", "Region Skåne");
    let skane = app.accept_with_totp(&token, "admin@regionskane.se");
    let me = app.get("/me", Some(&skane.access)).expect(200);
    let region = me.body["roles"][0]["organisation_id"]
        .as_str()
        .expect("role")
        .to_string();
    let learner = app.join(&skane, "skane@example.org", "trainee", &region);
    let template = app.stockholm_bt_template(&skane, &region);
    app.post(
        "/enrolments",
        Some(&skane.access),
        json!({"trainee_id": learner.id, "template_id": template, "track": "bt_standalone",
               "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
    )
    .expect(201);
    let s = app
        .get(&format!("/xapi/statements/{id}"), Some(&w.admin.access))
        .expect(200);
    assert_eq!(s.body["status"], "unmatched");
    assert_eq!(s.body["reason"], "unknown_learner");
}

fn ids_of(page: &Value) -> Vec<String> {
    page["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect()
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("/xapi/statements?{}", q.finish())
}

#[test]
fn an_lms_reads_its_statements_page_by_page_through_more_and_filtered() {
    let w = start();
    let app = &w.app;
    let registration = "0f1e2d3c-4b5a-4697-8877-665544332211";
    let other_course = "https://lms.regionstockholm.se/courses/lakemedel";
    // One batch: stored at the same instant, so pages are told apart by id too.
    let mut batch: Vec<Value> = (0..5).map(|_| completed("bt@sll.se")).collect();
    let mut elsewhere = completed("st@sll.se");
    elsewhere["object"]["id"] = json!(other_course);
    let mut registered = completed("bt@sll.se");
    registered["context"] = json!({"registration": registration.to_uppercase()});
    batch.push(elsewhere);
    batch.push(registered);
    let sent = w
        .send("POST", "/xapi/statements", Some(&json!(batch)), true)
        .expect(200);
    let mut ids: Vec<String> = sent
        .body
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 7);

    // Three a page, following `more` (a path relative to the server) to the end.
    let mut page = w
        .send("GET", &query(&[("limit", "3")]), None, true)
        .expect(200);
    let mut seen = Vec::new();
    let mut pages = 1;
    loop {
        let got = ids_of(&page.body);
        assert!(got.len() <= 3, "{}", page.text);
        seen.extend(got);
        let more = page.body["more"].as_str().expect("more").to_string();
        if more.is_empty() {
            break;
        }
        assert!(more.starts_with("/api/v1/xapi/statements?"), "{more}");
        assert!(more.contains("limit=3"), "{more}");
        page = w.send("GET", &more, None, true).expect(200);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "a statement twice or missing: {seen:?}");
    ids.sort();
    assert_eq!(sorted, ids);
    // Oldest first pages the other way round.
    let mut up = Vec::new();
    let mut page = w
        .send(
            "GET",
            &query(&[("limit", "4"), ("ascending", "true")]),
            None,
            true,
        )
        .expect(200);
    loop {
        up.extend(ids_of(&page.body));
        let more = page.body["more"].as_str().expect("more").to_string();
        if more.is_empty() {
            break;
        }
        page = w.send("GET", &more, None, true).expect(200);
    }
    seen.reverse();
    assert_eq!(up, seen);

    // Filters: the agent, the activity, the registration (as any UUID spelling), the verb.
    let count = |pairs: &[(&str, &str)]| {
        ids_of(&w.send("GET", &query(pairs), None, true).expect(200).body).len()
    };
    assert_eq!(count(&[("agent", r#"{"mbox": "mailto:bt@sll.se"}"#)]), 6);
    assert_eq!(
        count(&[(
            "agent",
            r#"{"objectType": "Agent", "mbox": "mailto:BT@sll.se"}"#
        )]),
        6
    );
    assert_eq!(
        count(&[(
            "agent",
            r#"{"account": {"homePage": "https://lms.example.org", "name": "bt"}}"#
        )]),
        0
    );
    assert_eq!(count(&[("activity", other_course)]), 1);
    assert_eq!(
        count(&[
            ("activity", COURSE),
            ("agent", r#"{"mbox": "mailto:st@sll.se"}"#)
        ]),
        0
    );
    assert_eq!(count(&[("registration", registration)]), 1);
    assert_eq!(count(&[("registration", &registration.to_uppercase())]), 1);
    assert_eq!(count(&[("verb", COMPLETED)]), 7);
    assert_eq!(count(&[("verb", VOIDED)]), 0);
    // A filter goes along in `more`.
    let filtered = w
        .send(
            "GET",
            &query(&[("agent", r#"{"mbox": "mailto:bt@sll.se"}"#), ("limit", "5")]),
            None,
            true,
        )
        .expect(200);
    let more = filtered.body["more"].as_str().expect("more");
    let rest = w.send("GET", more, None, true).expect(200);
    assert_eq!(ids_of(&rest.body).len(), 1, "{}", rest.text);
    assert_eq!(rest.body["more"], "");

    // What is not a filter of this LRS: a clear refusal, not an answer that ignores it.
    for bad in [
        query(&[("agent", "bt@sll.se")]),
        query(&[("agent", r#"{"objectType": "Group", "member": []}"#)]),
        query(&[(
            "agent",
            r#"{"mbox": "mailto:a@b.se", "openid": "https://a.se"}"#,
        )]),
        query(&[("activity", "not an iri")]),
        query(&[("registration", "not-a-uuid")]),
        query(&[("related_agents", "true")]),
        query(&[("cursor", "bm90IGEgY3Vyc29y")]),
    ] {
        w.send("GET", &bad, None, true)
            .expect_problem(422, "validation");
    }
    w.send(
        "GET",
        &query(&[("statementId", &ids[0]), ("cursor", "x")]),
        None,
        true,
    )
    .expect_problem(400, "malformed-request");

    // Another client following this client's `more` reads only its own statements.
    let (id, secret) = client(app, &w.admin, &w.region, &["activities:write"]);
    let first = w
        .send("GET", &query(&[("limit", "2")]), None, true)
        .expect(200);
    let more = first.body["more"].as_str().expect("more");
    let other = app
        .send(
            "GET",
            more,
            None,
            None,
            &[("Authorization", &basic(&id, &secret)), V],
        )
        .expect(200);
    assert_eq!(other.body["statements"], json!([]));
}

#[test]
fn activities_made_from_statements_show_their_source_in_the_api_and_the_dossier() {
    let w = start();
    let app = &w.app;
    let sent = w
        .send(
            "POST",
            "/xapi/statements",
            Some(&completed("bt@sll.se")),
            true,
        )
        .expect(200);
    let statement = sent.body[0].as_str().expect("id").to_string();
    let stored = w
        .send(
            "GET",
            &format!("/xapi/statements?statementId={statement}"),
            None,
            true,
        )
        .expect(200);
    let activities = w.activities();
    let source = &activities[0]["source"];
    assert_eq!(source["kind"], "xapi");
    assert_eq!(source["client_id"], w.client_id.as_str());
    assert_eq!(source["client_name"], "Lärplattformen");
    assert_eq!(source["statement_id"], statement.as_str());
    // When it arrived: the statement's `stored`.
    assert_eq!(source["received_at"], stored.body["stored"], "{source}");
    let id = activities[0]["id"].as_str().expect("id");
    let one = app
        .get(&format!("/activities/{id}"), Some(&w.trainee.access))
        .expect(200);
    assert_eq!(&one.body["source"], source);
    // What the trainee logs has none.
    let logged = app
        .post(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
            json!({"kind": "course", "title": "Egen kurs", "start_date": "2026-11-02"}),
        )
        .expect(201);
    assert_eq!(logged.body["source"], Value::Null);
    // The dossier carries it (JSON), and its PDF names the platform.
    let dossier = app
        .get(
            &format!("/enrolments/{}/dossier", w.enrolment),
            Some(&w.trainee.access),
        )
        .expect(200);
    let listed: Vec<&Value> = dossier.body["dossier"]["activities"]
        .as_array()
        .expect("activities")
        .iter()
        .filter(|a| a["source"].is_object())
        .collect();
    assert_eq!(listed.len(), 1, "{}", dossier.text);
    assert_eq!(listed[0]["source"]["statement_id"], statement.as_str());
}
