//! The server does what its OpenAPI document says (issue 16): `Location` on creates,
//! timestamps in one millisecond form, paged lists, and the token endpoint's 415.

use serde_json::{json, Value};

use eportfolio::clock::Clock;

use crate::support::TestApp;

/// Every string in `v` that is an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS…`).
fn timestamps(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            if b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && b[13] == b':' {
                out.push(s.clone());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| timestamps(i, out)),
        Value::Object(map) => map.values().for_each(|i| timestamps(i, out)),
        _ => {}
    }
}

/// `2026-11-24T08:00:01.234Z`: seconds, a dot, three digits, `Z`.
fn in_millis(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 24 && b[19] == b'.' && b[20..23].iter().all(u8::is_ascii_digit) && b[23] == b'Z'
}

#[test]
fn a_create_answers_with_the_location_of_what_it_made_and_a_replay_too() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let org = app
        .send(
            "POST",
            "/organisations",
            Some(&admin.access),
            Some(&json!({"kind": "care_provider", "name": "SLSO", "parent_id": region})),
            &[("Idempotency-Key", "org-1")],
        )
        .expect(201);
    let id = org.body["id"].as_str().expect("id");
    let location = org.header("location").expect("a Location");
    assert_eq!(location, format!("/api/v1/organisations/{id}"));
    let read = app.get(location, Some(&admin.access)).expect(200);
    assert_eq!(read.body["id"], id);
    let replay = app
        .send(
            "POST",
            "/organisations",
            Some(&admin.access),
            Some(&json!({"kind": "care_provider", "name": "SLSO", "parent_id": region})),
            &[("Idempotency-Key", "org-1")],
        )
        .expect(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.header("location"), Some(location));
    // A refused create has none.
    let refused = app
        .post(
            "/organisations",
            None,
            json!({"kind": "care_provider", "name": "X"}),
        )
        .expect(401);
    assert_eq!(refused.header("location"), None);
}

#[test]
fn timestamps_have_milliseconds_as_stored_and_etags_still_guard_updates() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    // Between two milliseconds, and more precise than any: what is stored and served is
    // the millisecond.
    app.clock
        .advance(chrono::Duration::nanoseconds(1_234_567_891));
    let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let now = app.clock.now();
    assert_eq!(now.timestamp_subsec_nanos() % 1_000_000, 0, "{now}");
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let created = app
        .get(&format!("/organisations/{slso}"), Some(&admin.access))
        .expect(200);
    assert_eq!(created.body["created_at"], at(now), "{}", created.body);
    let etag = created.header("etag").expect("etag").to_string();
    app.advance(1);
    let renamed = app
        .patch(
            &format!("/organisations/{slso}"),
            Some(&admin.access),
            json!({"name": "SLSO Södersjukhuset"}),
            &[("If-Match", &etag)],
        )
        .expect(200);
    assert_eq!(
        renamed.body["updated_at"],
        at(now + chrono::Duration::seconds(1))
    );
    // The old ETag no longer matches; the new one does.
    app.patch(
        &format!("/organisations/{slso}"),
        Some(&admin.access),
        json!({"name": "Fel"}),
        &[("If-Match", &etag)],
    )
    .expect_problem(412, "precondition-failed");
    let again = app
        .get(&format!("/organisations/{slso}"), Some(&admin.access))
        .expect(200);
    assert_eq!(again.header("etag"), renamed.header("etag"));

    // Whole seconds too have their three digits, in every response read here.
    let mut seen = Vec::new();
    for path in [
        "/me".to_string(),
        format!("/organisations/{slso}"),
        "/organisations".to_string(),
        "/invitations?status=pending".to_string(),
        "/dossier-keys".to_string(),
    ] {
        let body = app.get(&path, Some(&admin.access)).expect(200).body;
        timestamps(&body, &mut seen);
    }
    assert!(seen.len() > 5, "{seen:?}");
    let wrong: Vec<&String> = seen.iter().filter(|t| !in_millis(t)).collect();
    assert!(
        wrong.is_empty(),
        "timestamps not in milliseconds: {wrong:?}"
    );
}

#[test]
fn short_lists_are_paged_like_the_others() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let bt = app.regulation_id(&admin, "bt-2021");
    let first = app
        .get(
            &format!("/regulations/{bt}/delmal?limit=10"),
            Some(&admin.access),
        )
        .expect(200)
        .body;
    assert_eq!(first["items"].as_array().expect("items").len(), 10);
    assert_eq!(first["items"][0]["code"], "BT1");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let rest = app
        .get(
            &format!("/regulations/{bt}/delmal?limit=10&cursor={cursor}"),
            Some(&admin.access),
        )
        .expect(200)
        .body;
    assert_eq!(rest["items"].as_array().expect("items").len(), 8);
    assert_eq!(rest["items"][0]["code"], "BT11");
    assert!(rest["next_cursor"].is_null());
    app.get(
        &format!("/regulations/{bt}/delmal?limit=201"),
        Some(&admin.access),
    )
    .expect_problem(422, "validation");
    app.get(
        &format!("/regulations/{bt}/delmal?cursor=bm9wZQ"),
        Some(&admin.access),
    )
    .expect_problem(422, "validation");

    let keys = app.get("/dossier-keys?limit=1", None).expect(200).body;
    assert_eq!(keys["items"].as_array().expect("keys").len(), 1, "{keys}");
    assert!(keys["next_cursor"].is_null());
    app.get("/dossier-keys?limit=0", None)
        .expect_problem(422, "validation");
}

#[test]
fn the_token_endpoint_asks_for_a_form_and_answers_errors_as_rfc_6749_says() {
    let app = TestApp::start();
    let wrong = app
        .post(
            "/oauth/token",
            None,
            json!({"grant_type": "client_credentials"}),
        )
        .expect_problem(415, "unsupported-media-type");
    assert!(
        wrong.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("application/x-www-form-urlencoded")),
        "{}",
        wrong.body
    );
    let unknown = app.send_raw(
        "POST",
        "/oauth/token",
        None,
        "application/x-www-form-urlencoded",
        b"grant_type=client_credentials&client_id=nobody&client_secret=nothing",
    );
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.body["error"], "invalid_client");
    assert!(unknown.body["error_description"].is_string());
}
