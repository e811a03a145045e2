//! API-wide conventions: every error is `application/problem+json` with a request id,
//! the service describes itself, and creating POSTs are safe to retry.

use serde_json::{json, Value};

use crate::support::{Resp, TestApp};

/// The problem's `request_id` is the response's `X-Request-Id`.
#[track_caller]
fn assert_request_id_matches(r: &Resp) -> String {
    let id = r.body["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("problem without request_id: {}", r.text));
    assert!(!id.is_empty());
    assert_eq!(
        r.header("x-request-id"),
        Some(id),
        "header and problem disagree"
    );
    id.to_string()
}

fn login_raw(app: &TestApp, content_type: &str, body: &str) -> Resp {
    app.send_raw("POST", "/auth/login", None, content_type, body.as_bytes())
}

fn detail(r: &Resp) -> &str {
    r.body["detail"].as_str().expect("detail")
}

#[test]
fn every_kind_of_bad_input_gets_its_own_problem_document() {
    let app = TestApp::start();
    let mut request_ids = Vec::new();

    let broken = login_raw(
        &app,
        "application/json",
        r#"{"email": "a@b.se", "password": "#,
    )
    .expect_problem(400, "malformed-request");
    assert!(
        detail(&broken).contains("not valid JSON"),
        "{}",
        broken.text
    );
    request_ids.push(assert_request_id_matches(&broken));

    let unknown_field = app
        .post(
            "/auth/login",
            None,
            json!({"email": "a@b.se", "password": "x", "admin": true}),
        )
        .expect_problem(400, "malformed-request");
    assert!(
        detail(&unknown_field).contains("unknown field `admin`"),
        "{}",
        unknown_field.text
    );
    request_ids.push(assert_request_id_matches(&unknown_field));

    let wrong_type = app
        .post("/auth/login", None, json!({"email": 5, "password": "x"}))
        .expect_problem(400, "malformed-request");
    assert!(
        detail(&wrong_type).contains("invalid type"),
        "{}",
        wrong_type.text
    );
    request_ids.push(assert_request_id_matches(&wrong_type));

    let missing_field = app
        .post("/auth/login", None, json!({"email": "a@b.se"}))
        .expect_problem(400, "malformed-request");
    assert!(
        detail(&missing_field).contains("password"),
        "{}",
        missing_field.text
    );
    request_ids.push(assert_request_id_matches(&missing_field));

    let text = login_raw(
        &app,
        "text/plain",
        r#"{"email": "a@b.se", "password": "x"}"#,
    )
    .expect_problem(415, "unsupported-media-type");
    request_ids.push(assert_request_id_matches(&text));

    let nowhere = app
        .get("/api/v1/nope", None)
        .expect_problem(404, "not-found");
    request_ids.push(assert_request_id_matches(&nowhere));
    let outside_api = app.get("/api/nope", None).expect_problem(404, "not-found");
    request_ids.push(assert_request_id_matches(&outside_api));

    let (admin, _) = app.admin();
    let token = Some(admin.access.as_str());
    let bad_limit = app
        .get("/organisations?limit=abc", token)
        .expect_problem(400, "malformed-request");
    assert!(detail(&bad_limit).contains("query"), "{}", bad_limit.text);
    request_ids.push(assert_request_id_matches(&bad_limit));
    let unknown_param = app
        .get("/organisations?colour=blue", token)
        .expect_problem(400, "malformed-request");
    assert!(
        detail(&unknown_param).contains("colour"),
        "{}",
        unknown_param.text
    );
    request_ids.push(assert_request_id_matches(&unknown_param));
    let bad_kind = app
        .get("/organisations?kind=hospital", token)
        .expect_problem(400, "malformed-request");
    request_ids.push(assert_request_id_matches(&bad_kind));

    let invalid = app
        .post(
            "/invitations",
            token,
            json!({"email": "inte en adress", "role": "trainee", "organisation_id": "nowhere"}),
        )
        .expect_problem(422, "validation");
    let fields: Vec<&str> = invalid.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(
        fields,
        vec!["email", "organisation_id"],
        "all offending fields at once"
    );
    request_ids.push(assert_request_id_matches(&invalid));

    // Every response got its own id.
    let mut unique = request_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), request_ids.len(), "{request_ids:?}");
}

#[test]
fn a_body_over_the_configured_limit_is_refused_with_413() {
    let app = TestApp::start_with(|c| c.max_json_body = 1024);
    let big = json!({"email": "a@b.se", "password": "x".repeat(5 * 1024)});
    let r = app
        .post("/auth/login", None, big)
        .expect_problem(413, "payload-too-large");
    assert!(detail(&r).contains("1024"), "{}", r.text);
    assert_request_id_matches(&r);
    // Under the limit the same endpoint reads the body (and rejects the login).
    app.post(
        "/auth/login",
        None,
        json!({"email": "a@b.se", "password": "x".repeat(100)}),
    )
    .expect_problem(401, "invalid-credentials");
}

#[test]
fn a_client_request_id_is_echoed_and_a_missing_or_unusable_one_is_generated() {
    let app = TestApp::start();

    let problem = app
        .send(
            "GET",
            "/api/v1/nope",
            None,
            None,
            &[("X-Request-Id", "test-123")],
        )
        .expect_problem(404, "not-found");
    assert_eq!(problem.header("x-request-id"), Some("test-123"));
    assert_eq!(problem.body["request_id"], "test-123");

    let ok = app
        .send(
            "GET",
            "/health",
            None,
            None,
            &[("X-Request-Id", "test-123")],
        )
        .expect(200);
    assert_eq!(ok.header("x-request-id"), Some("test-123"));

    let generated = app.get("/health", None).expect(200);
    let id = generated
        .header("x-request-id")
        .expect("a request id on every response");
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "generated id is a UUID: {id}"
    );

    let too_long = "x".repeat(200);
    let replaced = app
        .send("GET", "/health", None, None, &[("X-Request-Id", &too_long)])
        .expect(200);
    let id = replaced.header("x-request-id").expect("id");
    assert_ne!(id, too_long);
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[test]
fn the_service_reports_health_readiness_and_documents_itself() {
    let app = TestApp::start();

    let health = app.get("/health", None).expect(200);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = app.get("/ready", None).expect(200);
    assert_eq!(ready.body["status"], "ready");

    let spec = app.get("/api/v1/openapi.json", None).expect(200);
    assert!(
        spec.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        spec.header("content-type")
    );
    let version = spec.body["openapi"].as_str().expect("openapi field");
    assert!(version.starts_with("3.1"), "{version}");
    assert!(spec.body["paths"]["/api/v1/organisations"]["post"].is_object());
    assert!(spec.body["components"]["schemas"]["Problem"].is_object());
    // What is served is what is committed (and generated from the code).
    let served: Value = spec.body.clone();
    let generated: Value = serde_json::from_str(&eportfolio::openapi_json()).expect("json");
    assert_eq!(served, generated);

    let docs = app.get("/docs/", None).expect(200);
    assert!(
        docs.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        docs.header("content-type")
    );
    assert!(
        docs.text.to_lowercase().contains("swagger"),
        "{}",
        docs.text
    );
    // The UI's assets are served by the service itself, not a CDN.
    let initializer = app.get("/docs/swagger-initializer.js", None).expect(200);
    assert!(
        initializer.text.contains("/api/v1/openapi.json"),
        "{}",
        initializer.text
    );
    // And no browser that opens the docs sends the spec's address to swagger.io's
    // validator (Swagger UI's default).
    assert!(
        initializer.text.contains(r#""validatorUrl": "none""#),
        "{}",
        initializer.text
    );
    let bundle = app.get("/docs/swagger-ui-bundle.js", None).expect(200);
    assert!(bundle.text.len() > 10_000, "the bundle is vendored");
}

// ---- Idempotency ----------------------------------------------------------------------

#[test]
fn a_retried_create_with_the_same_idempotency_key_is_replayed_not_repeated() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let token = Some(admin.access.as_str());
    let body = json!({"kind": "care_provider", "name": "Danderyds sjukhus", "parent_id": region});
    let key = [("Idempotency-Key", "create-danderyd-1")];

    let first = app
        .send("POST", "/organisations", token, Some(&body), &key)
        .expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let id = first.body["id"].as_str().expect("id").to_string();

    // The phone lost the response and retries.
    let retry = app
        .send("POST", "/organisations", token, Some(&body), &key)
        .expect(201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        retry.body, first.body,
        "the same organisation, not a new one"
    );
    assert!(retry.header("x-request-id").is_some());

    let named = |app: &TestApp, token: &str| -> Vec<String> {
        app.get("/organisations?kind=care_provider", Some(token))
            .expect(200)
            .body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["name"] == "Danderyds sjukhus")
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(named(&app, &admin.access), vec![id.clone()]);

    // The same key for a different request is a client bug.
    let other = json!({"kind": "care_provider", "name": "Ersta sjukhus", "parent_id": region});
    app.send("POST", "/organisations", token, Some(&other), &key)
        .expect_problem(409, "idempotency-key-reused");
    // Without a key, nothing is deduplicated.
    let twin = app.post("/organisations", token, body.clone()).expect(201);
    assert_ne!(twin.body["id"], id.as_str());

    // Keys belong to their user: another administrator's identical request is their own.
    let admin2 = app.join(
        &admin,
        "admin2@regionstockholm.se",
        "administrator",
        &region,
    );
    let theirs = app
        .send(
            "POST",
            "/organisations",
            Some(&admin2.access),
            Some(&body),
            &key,
        )
        .expect(201);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_ne!(theirs.body["id"], id.as_str());
    let ids = named(&app, &admin.access);
    assert_eq!(
        ids.len(),
        3,
        "first, the keyless twin and the second admin's: {ids:?}"
    );
}

#[test]
fn stored_idempotency_keys_are_pruned_after_24_hours_by_housekeeping() {
    // The server's own housekeeping timer, every 50 ms instead of every ten minutes;
    // access tokens outlive the day the test moves the clock through.
    let app = TestApp::start_with(|c| {
        c.housekeeping_interval = std::time::Duration::from_millis(50);
        c.access_token_ttl = std::time::Duration::from_secs(3 * 24 * 3600);
    });
    let (admin, region) = app.admin();
    let org = |name: &str| json!({"kind": "care_provider", "name": name, "parent_id": region});
    let send = |body: &Value, key: &str| {
        app.send(
            "POST",
            "/organisations",
            Some(&admin.access),
            Some(body),
            &[("Idempotency-Key", key)],
        )
    };
    // A marker key one hour older than the one under test: once housekeeping has
    // deleted it, a whole round has run at the clock's new time.
    send(&org("Markören"), "marker-1").expect(201);
    app.advance(3600);
    let body = org("Capio S:t Göran");
    let first = send(&body, "create-capio-1").expect(201);
    let id = first.body["id"].as_str().expect("id").to_string();

    // 23.5 hours on, the marker (24.5 hours old) goes; the key under test stays, so a
    // retry is still answered from it.
    app.advance(23 * 3600 + 1800);
    app.wait_until_key_deleted("marker-1");
    let retry = send(&body, "create-capio-1").expect(201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body["id"], id.as_str());

    // Past its 24 hours the timer deletes it too (nobody retried it meanwhile: the table
    // shows housekeeping, not a request taking the expired key over), and the same
    // request is new again.
    app.advance(3600);
    app.wait_until_key_deleted("create-capio-1");
    let fresh = send(&body, "create-capio-1").expect(201);
    assert_eq!(fresh.header("idempotent-replayed"), None);
    assert_ne!(fresh.body["id"], id.as_str());
}

#[test]
fn a_retried_invitation_with_the_same_idempotency_key_mails_once() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let token = Some(admin.access.as_str());
    let email = "st.lakare@karolinska.se";
    let body = json!({"email": email, "role": "trainee", "organisation_id": region});
    let key = [("Idempotency-Key", "invite-st-lakare")];

    let first = app
        .send("POST", "/invitations", token, Some(&body), &key)
        .expect(201);
    app.smtp.wait_for(email, 0);
    let retry = app
        .send("POST", "/invitations", token, Some(&body), &key)
        .expect(201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body["id"], first.body["id"]);
    // Mail goes out before the response, so a second one would be here already.
    assert_eq!(app.smtp.count_to(email), 1);

    let pending = app.get("/invitations?status=pending", token).expect(200);
    let for_email: Vec<&Value> = pending.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["email"] == email)
        .collect();
    assert_eq!(for_email.len(), 1, "{}", pending.text);
    assert_eq!(for_email[0]["id"], first.body["id"]);
    // The mailed link is the one that works.
    let token_in_mail = app
        .smtp
        .wait_for(email, 0)
        .find_token_after("token=")
        .expect("token");
    app.get(&format!("/auth/invitations/{token_in_mail}"), None)
        .expect(200);
}

#[test]
fn an_idempotent_replay_still_requires_a_live_session() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let body = json!({"kind": "care_provider", "name": "Danderyds sjukhus", "parent_id": region});
    let key = [("Idempotency-Key", "create-danderyd-1")];
    app.send(
        "POST",
        "/organisations",
        Some(&admin.access),
        Some(&body),
        &key,
    )
    .expect(201);

    let logout = app.post("/auth/logout", Some(&admin.access), json!({}));
    assert_eq!(logout.status, 204, "{}", logout.text);
    app.get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
    // A token of an ended session gets nothing, replay or not.
    app.send(
        "POST",
        "/organisations",
        Some(&admin.access),
        Some(&body),
        &key,
    )
    .expect_problem(401, "unauthenticated");
}

#[test]
fn a_create_refused_for_an_expired_token_succeeds_when_retried_with_a_fresh_one() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let body = json!({"kind": "care_provider", "name": "Danderyds sjukhus", "parent_id": region});
    let key = [("Idempotency-Key", "create-danderyd-1")];

    // The phone was in a pocket for a while: its access token (15 min) has expired.
    app.advance(16 * 60);
    app.send(
        "POST",
        "/organisations",
        Some(&admin.access),
        Some(&body),
        &key,
    )
    .expect_problem(401, "unauthenticated");

    // It refreshes and retries the same request with the same key, as it should.
    let refreshed = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": admin.refresh}),
        )
        .expect(200);
    let access = refreshed.body["access_token"].as_str().expect("access");
    let retry = app
        .send("POST", "/organisations", Some(access), Some(&body), &key)
        .expect(201);
    assert_eq!(retry.body["name"], "Danderyds sjukhus");
    let providers = app
        .get("/organisations?kind=care_provider", Some(access))
        .expect(200);
    assert_eq!(providers.body["items"].as_array().unwrap().len(), 1);
}

#[test]
fn offline_clients_choose_the_id_of_what_they_create() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let token = Some(admin.access.as_str());
    let id = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";

    let created = app
        .post(
            "/organisations",
            token,
            json!({"id": id, "kind": "care_provider", "name": "Karolinska", "parent_id": region}),
        )
        .expect(201);
    assert_eq!(created.body["id"], id);
    let fetched = app.get(&format!("/organisations/{id}"), token).expect(200);
    assert_eq!(fetched.body["name"], "Karolinska");

    // The id is taken: with no key, and with a fresh key.
    app.post(
        "/organisations",
        token,
        json!({"id": id, "kind": "care_provider", "name": "Karolinska 2", "parent_id": region}),
    )
    .expect_problem(409, "conflict");
    app.send(
        "POST",
        "/organisations",
        token,
        Some(&json!({"id": id, "kind": "care_provider", "name": "Karolinska 3", "parent_id": region})),
        &[("Idempotency-Key", "another-key")],
    )
    .expect_problem(409, "conflict");
    let fetched = app.get(&format!("/organisations/{id}"), token).expect(200);
    assert_eq!(fetched.body["name"], "Karolinska", "the first write stands");
    assert_eq!(fetched.body["version"], 1);

    // An id must be a UUID.
    app.post(
        "/organisations",
        token,
        json!({"id": "my-own-id", "kind": "care_provider", "name": "X", "parent_id": region}),
    )
    .expect_problem(400, "malformed-request");
}

/// One GET with the given `Accept-Encoding` by curl, which keeps the body as it came
/// over the wire (ureq, the tests' client, decodes gzip itself and drops the header):
/// status, `Content-Encoding`, `Vary` and the raw body.
fn get_encoded(app: &TestApp, path: &str, accept: &str) -> (u16, Option<String>, String, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-i", "-H", &format!("Accept-Encoding: {accept}")])
        .arg(format!("{}{path}", app.base))
        .output()
        .expect("curl (installed by .ci/run) runs");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&out.stdout[..split]).into_owned();
    let body = out.stdout[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let field = |name: &str| -> Vec<String> {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
            .collect()
    };
    let encoding = field("content-encoding").into_iter().next();
    let vary = field("vary").join(",");
    (status, encoding, vary, body)
}

/// Large answers go out gzip-compressed to a client that accepts gzip (and decode to
/// the plain answer); small ones are sent plain, without any `Content-Encoding` (not
/// even `identity`), as a gzip encoder would cost more than the bytes it saves.
#[test]
fn large_answers_are_gzipped_and_small_ones_sent_plain() {
    use std::io::Read;
    let app = TestApp::start();

    let (status, encoding, _, plain) = get_encoded(&app, "/api/v1/openapi.json", "identity");
    assert_eq!(status, 200);
    assert_eq!(
        encoding, None,
        "a client that does not accept gzip gets it plain"
    );
    assert!(
        plain.len() > 100_000,
        "the document is large: {} bytes",
        plain.len()
    );

    let (status, encoding, vary, wire) = get_encoded(&app, "/api/v1/openapi.json", "gzip");
    assert_eq!(status, 200);
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(vary.contains("accept-encoding"), "Vary: {vary}");
    assert!(
        wire.len() < plain.len() / 4,
        "{} of {} bytes",
        wire.len(),
        plain.len()
    );
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&wire[..])
        .read_to_end(&mut decoded)
        .expect("a valid gzip stream");
    assert_eq!(decoded, plain, "the compressed answer is the plain one");

    // A small answer, and a small problem document: plain, and readable as sent.
    for (path, expected) in [("/health", 200), ("/api/v1/no-such-route", 404)] {
        let (status, encoding, _, body) = get_encoded(&app, path, "gzip, deflate, br");
        assert_eq!(status, expected, "{path}");
        assert_eq!(encoding, None, "{path} is sent plain");
        assert!(
            (body.len() as u64) < eportfolio::compression::MIN_COMPRESSED_BYTES,
            "{path}: {} bytes",
            body.len()
        );
        serde_json::from_slice::<Value>(&body)
            .unwrap_or_else(|e| panic!("{path}: not plain JSON: {e}"));
    }
}
