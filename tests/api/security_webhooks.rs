//! Issue 12, items 5, 11 (xAPI part) and 16 (xAPI part): webhooks reach no address of the
//! service's own networks (at creation and at every delivery, no redirects, no DNS
//! rebinding, a delivery log without OS error texts); an LMS cannot probe for accounts
//! outside its organisation; xAPI statement ids are unique per organisation.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::time::Duration;

use serde_json::{json, Value};

use eportfolio::integrations::webhooks::{classify, AddressClass, DestinationPolicy};

use crate::support::hooks::Receiver;
use crate::support::{Resp, TestApp, TestUser};

// ---- The address classifier (a pure function) ---------------------------------------------

fn class_of(ip: &str) -> AddressClass {
    classify(ip.parse::<IpAddr>().expect("an address"))
}

#[test]
fn the_address_classifier_knows_every_class_a_webhook_must_not_reach() {
    use AddressClass::*;
    let cases = [
        ("127.0.0.1", Loopback),
        ("127.255.0.9", Loopback),
        ("::1", Loopback),
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Unspecified),
        ("::", Unspecified),
        ("10.0.0.1", Private),
        ("172.16.0.1", Private),
        ("172.31.255.254", Private),
        ("192.168.1.1", Private),
        ("fc00::1", Private),
        ("fd12:3456::1", Private),
        ("169.254.169.254", LinkLocal),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("100.64.0.1", SharedCgnat),
        ("100.127.255.254", SharedCgnat),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("ff02::1", Multicast),
        ("192.0.2.1", Documentation),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("2001:db8::1", Documentation),
        ("198.18.0.1", Benchmarking),
        ("198.19.255.254", Benchmarking),
        ("192.0.0.8", Reserved),
        ("240.0.0.1", Reserved),
        ("255.255.255.255", Reserved),
        // IPv4-mapped IPv6 is the IPv4 address itself.
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:169.254.169.254", LinkLocal),
        ("::ffff:10.1.2.3", Private),
        ("::ffff:0.0.0.0", Unspecified),
        // IPv4-compatible (deprecated) likewise; of a public address: reserved.
        ("::127.0.0.1", Loopback),
        ("::10.0.0.1", Private),
        ("::8.8.8.8", Reserved),
        // NAT64 forwards to the embedded address.
        ("64:ff9b::a9fe:a9fe", LinkLocal),
        ("64:ff9b::808:808", Public),
        // 6to4 and Teredo embed addresses too; never webhook destinations.
        ("2002:7f00:1::1", Reserved),
        ("2001:0:4136:e378::1", Reserved),
        // Outside global unicast.
        ("4000::1", Reserved),
        // Public.
        ("8.8.8.8", Public),
        ("93.184.215.14", Public),
        ("100.63.255.255", Public),
        ("100.128.0.0", Public),
        ("172.32.0.1", Public),
        ("::ffff:8.8.8.8", Public),
        ("2a00:1450:4001::200e", Public),
    ];
    for (ip, expected) in cases {
        assert_eq!(class_of(ip), expected, "{ip}");
        assert_eq!(expected.is_public(), expected == Public);
    }
}

#[test]
fn only_the_networks_an_operator_names_open_non_public_addresses() {
    let none = DestinationPolicy::default();
    let ip = |s: &str| s.parse::<IpAddr>().expect("address");
    assert!(none.allows(ip("8.8.8.8")));
    for refused in [
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "::ffff:127.0.0.1",
    ] {
        assert!(!none.allows(ip(refused)), "{refused}");
    }
    let lms = DestinationPolicy {
        allow_http: false,
        allowed_networks: vec![
            "10.1.0.0/16".parse().expect("cidr"),
            "0.0.0.0/0".parse().expect("cidr"),
        ],
    };
    assert!(lms.allows(ip("10.1.2.3")));
    // (An IPv4-mapped address is matched as the IPv4 address.)
    assert!(lms.allows(ip("::ffff:10.1.2.3")));
    // The unspecified address and multicast are never destinations, whatever is allowed.
    assert!(!lms.allows(ip("0.0.0.0")));
    assert!(!lms.allows(ip("224.0.0.1")));
    let one = DestinationPolicy {
        allow_http: false,
        allowed_networks: vec!["10.1.0.0/16".parse().expect("cidr")],
    };
    assert!(!one.allows(ip("10.2.0.1")));
    assert!(!one.allows(ip("127.0.0.1")));
}

// ---- Webhooks over HTTP ---------------------------------------------------------------------

/// The production policy: https only, public addresses only.
fn no_allowance(c: &mut eportfolio::Config) {
    c.webhook_allow_http = false;
    c.webhook_allowed_networks = Vec::new();
}

fn subscribe(app: &TestApp, admin: &TestUser, org: &str, url: &str) -> String {
    let r = app
        .post(
            "/webhook-subscriptions",
            Some(&admin.access),
            json!({"organisation_id": org, "url": url, "events": ["*"]}),
        )
        .expect(201);
    r.body["id"].as_str().expect("id").to_string()
}

/// Queues a `webhook.test` delivery and waits for its first attempt; returns the delivery.
fn ping_and_wait(app: &TestApp, admin: &TestUser, sub: &str) -> Value {
    let d = app
        .post(
            &format!("/webhook-subscriptions/{sub}/ping"),
            Some(&admin.access),
            json!({}),
        )
        .expect(201);
    let id = d.body["id"].as_str().expect("id").to_string();
    let started = std::time::Instant::now();
    loop {
        let d = app
            .get(&format!("/webhook-deliveries/{id}"), Some(&admin.access))
            .expect(200);
        if d.body["attempts"].as_i64().unwrap_or(0) >= 1 {
            return d.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no attempt: {}",
            d.text
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn webhooks_to_loopback_private_metadata_or_mapped_addresses_are_refused_at_creation() {
    let app = TestApp::start_with(|c| {
        no_allowance(c);
        c.webhook_poll = Duration::ZERO;
    });
    let (admin, region) = app.admin();
    for url in [
        // The service itself, and its port scan.
        "https://127.0.0.1:8080/hook",
        "https://0.0.0.0:8080/hook",
        "https://localhost:5432/",
        // Other spellings of loopback.
        "https://2130706433/hook",
        "https://0x7f.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::127.0.0.1]/hook",
        // Cloud metadata, private networks, CGNAT, multicast, documentation.
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:169.254.169.254]/",
        "https://10.0.0.5/hook",
        "https://172.16.3.4/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",
        "https://[fc00::1]/hook",
        "https://[fe80::1]/hook",
        "https://224.0.0.1/hook",
        "https://192.0.2.10/hook",
        "https://198.18.0.1/hook",
        // Plain http, even to a public address.
        "http://93.184.215.14/hook",
        "ftp://93.184.215.14/hook",
    ] {
        let r = app
            .post(
                "/webhook-subscriptions",
                Some(&admin.access),
                json!({"organisation_id": region, "url": url, "events": ["*"]}),
            )
            .expect_problem(422, "validation");
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}: {}", r.text);
    }
    // Nothing was stored.
    assert_eq!(
        app.get("/webhook-subscriptions", Some(&admin.access))
            .expect(200)
            .body["items"],
        json!([])
    );
    // A public https address is fine; changing it to loopback is refused the same way.
    let sub = subscribe(&app, &admin, &region, "https://93.184.215.14/hook");
    let current = app
        .get(
            &format!("/webhook-subscriptions/{sub}"),
            Some(&admin.access),
        )
        .expect(200);
    let etag = current.header("etag").expect("etag").to_string();
    let r = app
        .patch(
            &format!("/webhook-subscriptions/{sub}"),
            Some(&admin.access),
            json!({"url": "https://127.0.0.1:8080/hook"}),
            &[("If-Match", &etag)],
        )
        .expect_problem(422, "validation");
    assert_eq!(r.body["errors"][0]["field"], "url");
    let after = app
        .get(
            &format!("/webhook-subscriptions/{sub}"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(after.body["url"], "https://93.184.215.14/hook");
}

#[test]
fn a_webhook_allowed_once_is_refused_at_delivery_when_the_allowance_is_gone() {
    // Allowed at creation (the test default: http to 127.0.0.1 as an on-premises LMS) ...
    let mut app = TestApp::start_with(|c| c.webhook_poll = Duration::ZERO);
    let (admin, region) = app.admin();
    let receiver = Receiver::start(vec![200]);
    let sub = subscribe(&app, &admin, &region, &receiver.url);

    // ... then the operator takes the network allowance away: not delivered, logged
    // generically.
    app.restart_with(|c| {
        c.webhook_allowed_networks = Vec::new();
        c.webhook_poll = Duration::from_millis(50);
    });
    let d = ping_and_wait(&app, &admin, &sub);
    assert_eq!(d["status"], "pending", "retried later: {d}");
    assert_eq!(d["last_error"], "destination not allowed");
    assert_eq!(d["last_status_code"], Value::Null);
    assert_eq!(d["attempt_log"][0]["error"], "destination not allowed");

    // And without plain http allowed (the network allowed again): refused as well.
    app.restart_with(|c| {
        c.webhook_allowed_networks = vec!["127.0.0.1/32".parse().expect("cidr")];
        c.webhook_allow_http = false;
    });
    let d = ping_and_wait(&app, &admin, &sub);
    assert_eq!(d["last_error"], "destination not allowed");
    // The attempt is logged only once it is over: had it connected, the receiver would
    // hold the request already, so no waiting is needed to see that it did not.
    assert!(receiver.received().is_empty(), "nothing reached loopback");

    // With both allowances back, the same subscription delivers (the check is the
    // policy's, not a broken subscription).
    app.restart_with(|c| c.webhook_allow_http = true);
    let d = ping_and_wait(&app, &admin, &sub);
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(receiver.received().len(), 1);
}

#[test]
fn a_webhook_host_name_is_resolved_checked_and_connected_to_as_checked() {
    // `localhost` is a name: resolved once per delivery, every address checked, and the
    // connection made to exactly those addresses (ureq's own lookup is replaced).
    let loopback = |c: &mut eportfolio::Config| {
        c.webhook_allowed_networks = vec![
            "127.0.0.1/32".parse().expect("cidr"),
            "::1/128".parse().expect("cidr"),
        ];
    };
    let mut app = TestApp::start_with(|c| {
        loopback(c);
        c.webhook_poll = Duration::from_millis(50);
    });
    let (admin, region) = app.admin();
    let receiver = Receiver::start(vec![200]);
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let sub = subscribe(&app, &admin, &region, &by_name);
    let d = ping_and_wait(&app, &admin, &sub);
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(receiver.received().len(), 1);

    // Without the allowance the same name resolves to loopback and is refused, before
    // any connection.
    app.restart_with(|c| c.webhook_allowed_networks = Vec::new());
    let d = ping_and_wait(&app, &admin, &sub);
    assert_eq!(d["last_error"], "destination not allowed", "{d}");
    // Logged after the attempt ended: nothing more can arrive from it.
    assert_eq!(receiver.received().len(), 1);
}

/// A one-request server on loopback that answers every request with a redirect.
fn redirector(location: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let location = location.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    format!("http://127.0.0.1:{port}/hook")
}

#[test]
fn a_webhook_redirect_to_loopback_is_not_followed() {
    let app = TestApp::start_with(|c| c.webhook_poll = Duration::from_millis(50));
    let (admin, region) = app.admin();
    let inside = Receiver::start(vec![200]);
    let sub = subscribe(&app, &admin, &region, &redirector(&inside.url));
    let d = ping_and_wait(&app, &admin, &sub);
    assert_eq!(
        d["status"], "pending",
        "a redirect is a failed attempt: {d}"
    );
    assert_eq!(d["last_status_code"], 307);
    assert_eq!(d["last_error"], "HTTP 307");
    // A followed redirect would have completed inside the logged attempt.
    assert!(inside.received().is_empty(), "the redirect was followed");
}

#[test]
fn the_webhook_delivery_log_is_no_port_scan_oracle() {
    let app = TestApp::start_with(|c| {
        c.webhook_poll = Duration::from_millis(50);
        c.webhook_timeout = Duration::from_secs(1);
    });
    let (admin, region) = app.admin();

    // A closed port: "connection failed", not "Connection refused (os error 111)".
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let sub = subscribe(
        &app,
        &admin,
        &region,
        &format!("http://127.0.0.1:{closed}/hook"),
    );
    let d = ping_and_wait(&app, &admin, &sub);
    assert_eq!(d["last_error"], "connection failed", "{d}");

    // An open port that never answers: "timeout".
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let sub = subscribe(
        &app,
        &admin,
        &region,
        &format!("http://127.0.0.1:{silent_port}/hook"),
    );
    let d = ping_and_wait(&app, &admin, &sub);
    assert_eq!(d["last_error"], "timeout", "{d}");
    drop(silent);

    // A receiver that answers 503: "HTTP 503".
    let busy = Receiver::start(vec![503]);
    let sub = subscribe(&app, &admin, &region, &busy.url);
    let d = ping_and_wait(&app, &admin, &sub);
    assert_eq!(d["last_error"], "HTTP 503", "{d}");
    assert_eq!(d["last_status_code"], 503);

    // No attempt of any delivery carries an OS error text.
    let all = app
        .get("/webhook-subscriptions", Some(&admin.access))
        .expect(200);
    // The three subscriptions above, each with its failed delivery: an empty list would
    // make the "no leak" checks below pass without reading anything.
    let subscriptions = all.body["items"].as_array().expect("items");
    assert_eq!(subscriptions.len(), 3, "{}", all.text);
    for s in subscriptions {
        let id = s["id"].as_str().expect("id");
        let log = app
            .get(
                &format!("/webhook-subscriptions/{id}/deliveries"),
                Some(&admin.access),
            )
            .expect(200);
        let deliveries = log.body["items"].as_array().expect("items");
        assert!(!deliveries.is_empty(), "{}", log.text);
        assert!(
            deliveries.iter().all(|d| d["last_error"].is_string()),
            "{}",
            log.text
        );
        let text = log.text.to_lowercase();
        for leak in ["os error", "refused", "errno", "127.0.0.1"] {
            assert!(!text.contains(leak), "{leak} in {}", log.text);
        }
    }
}

// ---- xAPI: learners and statement ids are the client's organisation's ----------------------

const COURSE: &str = "https://lms.example.org/courses/forsakringsmedicin";
const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";

fn statement(id: &str, mbox: &str, timestamp: &str) -> Value {
    json!({
        "id": id,
        "actor": {"objectType": "Agent", "mbox": format!("mailto:{mbox}")},
        "verb": {"id": COMPLETED},
        "object": {"objectType": "Activity", "id": COURSE},
        "timestamp": timestamp,
    })
}

/// A region with its administrator, a care provider with one enrolled trainee, an API
/// client of the region that sends statements, and the course mapped.
struct Region {
    admin: TestUser,
    region: String,
    unit: String,
    trainee: TestUser,
    enrolment: String,
    lms: String,
}

fn region(app: &TestApp, admin_email: &str, name: &str, trainee_email: &str) -> Region {
    let token_ = app.bootstrap_admin(admin_email, name);
    let admin = app.accept_with_totp(&token_, admin_email);
    let me = app.get("/me", Some(&admin.access)).expect(200);
    let region = me.body["roles"][0]["organisation_id"]
        .as_str()
        .expect("role")
        .to_string();
    let unit = app.create_org(&admin, "care_provider", "Vårdgivaren", Some(&region));
    let template = app.stockholm_bt_template(&admin, &unit);
    let trainee = app.join(&admin, trainee_email, "trainee", &unit);
    let e = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
        )
        .expect(201);
    app.post(
        "/xapi/activity-mappings",
        Some(&admin.access),
        json!({"organisation_id": region, "xapi_activity_id": COURSE, "kind": "course",
               "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]}),
    )
    .expect(201);
    let lms = lms_token(app, &admin, &region);
    Region {
        enrolment: e.body["id"].as_str().expect("id").to_string(),
        admin,
        region,
        unit,
        trainee,
        lms,
    }
}

fn lms_token(app: &TestApp, admin: &TestUser, org: &str) -> String {
    let (id, secret) = crate::integrations::client(app, admin, org, &["activities:write"]);
    crate::integrations::token(app, &id, &secret)
}

/// Sends statements; the LRS answers their ids (nothing more, whatever became of them).
fn post_statements(app: &TestApp, token: &str, body: Value) -> Resp {
    app.send(
        "POST",
        "/xapi/statements",
        Some(token),
        Some(&body),
        &[("X-Experience-API-Version", "1.0.3")],
    )
}

/// A statement as the administrators of `r` read it.
fn stored_statement(app: &TestApp, r: &Region, id: &str) -> Value {
    app.get(&format!("/xapi/statements/{id}"), Some(&r.admin.access))
        .expect(200)
        .body
}

#[test]
fn an_lms_cannot_tell_an_account_elsewhere_from_no_account() {
    let app = TestApp::start();
    let stockholm = region(
        &app,
        "admin@regionstockholm.se",
        "Region Stockholm",
        "bt@sll.se",
    );
    let skane = region(&app, "admin@regionskane.se", "Region Skåne", "bt@skane.se");
    let t = "2026-11-20T13:00:00Z";

    // Skåne's platform names Stockholm's trainee, Stockholm's administrator and an
    // address without any account.
    let probes = [
        ("bt@sll.se", "c1a0e7a4-1111-4c1e-9d0e-000000000001"),
        (
            "admin@regionstockholm.se",
            "c1a0e7a4-1111-4c1e-9d0e-000000000002",
        ),
        ("nobody@example.org", "c1a0e7a4-1111-4c1e-9d0e-000000000003"),
    ];
    let answer = post_statements(
        &app,
        &skane.lms,
        json!(probes
            .iter()
            .map(|(mbox, id)| statement(id, mbox, t))
            .collect::<Vec<_>>()),
    )
    .expect(200);
    // The platform learns the ids it sent and nothing about the learners.
    assert_eq!(
        answer.body,
        json!(probes.iter().map(|(_, id)| *id).collect::<Vec<_>>())
    );
    let seen: Vec<(Value, Value, String)> = probes
        .iter()
        .map(|(mbox, id)| {
            let s = stored_statement(&app, &skane, id);
            (
                s["status"].clone(),
                s["reason"].clone(),
                s["detail"]
                    .as_str()
                    .expect("detail")
                    .replace(mbox, "<learner>"),
            )
        })
        .collect();
    assert_eq!(seen[0].0, "unmatched");
    assert_eq!(seen[0].1, "unknown_learner");
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "the outcomes differ: {seen:?}"
    );
    // Stored the same way for Skåne's administrator; nothing reached Stockholm's trainee.
    let stored = app
        .get(
            "/xapi/statements?status=unmatched",
            Some(&skane.admin.access),
        )
        .expect(200);
    let items = stored.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert!(items
        .iter()
        .all(|s| s["reason"] == "unknown_learner" && s["user_id"].is_null()));
    let activities = app
        .get(
            &format!("/enrolments/{}/activities", stockholm.enrolment),
            Some(&stockholm.trainee.access),
        )
        .expect(200);
    assert_eq!(activities.body["items"], json!([]));

    // Stockholm's own platform does find its trainee.
    let own_id = "c1a0e7a4-1111-4c1e-9d0e-000000000001";
    post_statements(
        &app,
        &stockholm.lms,
        json!([statement(own_id, "bt@sll.se", t)]),
    )
    .expect(200);
    assert_eq!(
        stored_statement(&app, &stockholm, own_id)["status"],
        "created"
    );
}

#[test]
fn one_organisations_lms_can_neither_block_nor_probe_anothers_statement_ids() {
    let app = TestApp::start();
    let stockholm = region(
        &app,
        "admin@regionstockholm.se",
        "Region Stockholm",
        "bt@sll.se",
    );
    let skane = region(&app, "admin@regionskane.se", "Region Skåne", "bt@skane.se");
    let id = "5b0c2f4e-8d1a-4b6c-9e2f-3a4b5c6d7e8f";

    // Skåne's platform sends the id first (as if to squat it) ...
    post_statements(
        &app,
        &skane.lms,
        json!([statement(id, "bt@skane.se", "2026-11-19T08:00:00Z")]),
    )
    .expect(200);
    assert_eq!(stored_statement(&app, &skane, id)["status"], "created");
    // ... Stockholm's statement with that id is still Stockholm's to create, and no
    // conflict tells Stockholm's platform that the id is taken.
    let mine = statement(id, "bt@sll.se", "2026-11-20T13:00:00Z");
    let r = post_statements(&app, &stockholm.lms, json!([mine.clone()])).expect(200);
    assert_eq!(r.body, json!([id]));
    assert_eq!(stored_statement(&app, &stockholm, id)["status"], "created");
    // Idempotency still holds within each organisation.
    post_statements(&app, &stockholm.lms, json!([mine.clone()])).expect(200);
    post_statements(&app, &skane.lms, json!([mine])).expect_problem(409, "conflict");

    // Each administrator sees their own organisation's statement under the id.
    for (r, mbox) in [(&stockholm, "bt@sll.se"), (&skane, "bt@skane.se")] {
        let s = app
            .get(&format!("/xapi/statements/{id}"), Some(&r.admin.access))
            .expect(200);
        assert_eq!(s.body["organisation_id"], r.region.as_str());
        assert_eq!(s.body["learner"], format!("mailto:{mbox}"));
        let a = app
            .get(
                &format!("/enrolments/{}/activities", r.enrolment),
                Some(&r.trainee.access),
            )
            .expect(200);
        assert_eq!(a.body["items"].as_array().expect("items").len(), 1);
    }

    // Two platforms within one administrator's organisations may share an id too; the
    // administrator names the organisation meant.
    let unit_lms = lms_token(&app, &stockholm.admin, &stockholm.unit);
    let shared = "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f";
    for token_ in [&stockholm.lms, &unit_lms] {
        post_statements(
            &app,
            token_,
            json!([statement(
                shared,
                "nobody@example.org",
                "2026-11-20T13:00:00Z"
            )]),
        )
        .expect(200);
    }
    let admin = Some(stockholm.admin.access.as_str());
    app.get(&format!("/xapi/statements/{shared}"), admin)
        .expect_problem(409, "conflict");
    let s = app
        .get(
            &format!(
                "/xapi/statements/{shared}?organisation_id={}",
                stockholm.unit
            ),
            admin,
        )
        .expect(200);
    assert_eq!(s.body["organisation_id"], stockholm.unit.as_str());
    let d = app
        .post(
            &format!(
                "/xapi/statements/{shared}/dismiss?organisation_id={}",
                stockholm.unit
            ),
            admin,
            json!({}),
        )
        .expect(200);
    assert_eq!(d.body["status"], "dismissed");
    let region_one = app
        .get(
            &format!(
                "/xapi/statements/{shared}?organisation_id={}",
                stockholm.region
            ),
            admin,
        )
        .expect(200);
    assert_eq!(region_one.body["status"], "unmatched");
    // Skåne's administrator cannot reach either by naming Stockholm's organisation.
    app.get(
        &format!(
            "/xapi/statements/{shared}?organisation_id={}",
            stockholm.unit
        ),
        Some(&skane.admin.access),
    )
    .expect_problem(404, "not-found");
}
