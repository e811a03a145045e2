//! A trainee's learning log from a phone: activities, attachments, retries, conflicts,
//! and the audit trail behind it.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{TestApp, TestUser};

struct Setup {
    app: TestApp,
    admin: TestUser,
    region: String,
    director: TestUser,
    trainee: TestUser,
    supervisor: TestUser,
    outsider: TestUser,
    enrolment: String,
    placement: String,
}

fn setup_with(adjust: impl FnOnce(&mut eportfolio::Config)) -> Setup {
    let app = TestApp::start_with(adjust);
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    let template = app.stockholm_bt_template(&director, &slso);
    let trainee = app.join(&director, "bt@sll.se", "trainee", &slso);
    let supervisor = app.join(&director, "hhl@sll.se", "supervisor", &slso);
    let outsider = app.join(&director, "annan.hl@sll.se", "supervisor", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&director.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31", "main_supervisor_id": supervisor.id,
                   "placements": [{"placement_type": "allmanmedicin", "start_date": "2026-09-01", "end_date": "2026-12-31"}]}),
        )
        .expect(201);
    Setup {
        enrolment: e.body["id"].as_str().expect("id").to_string(),
        placement: e.body["placements"][0]["id"]
            .as_str()
            .expect("placement")
            .to_string(),
        app,
        admin,
        region,
        director,
        trainee,
        supervisor,
        outsider,
    }
}

fn setup() -> Setup {
    setup_with(|_| {})
}

fn course(id: &str) -> Value {
    json!({"id": id, "kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": "2026-10-06",
           "reflection": "Sjukskrivningsprocessen", "delmal": ["BT16"]})
}

#[test]
fn a_phone_retry_never_logs_an_activity_twice() {
    let s = setup();
    let path = format!("/enrolments/{}/activities", s.enrolment);
    let id = "0b6f1c1e-8f1e-4c57-9a59-2f0c3f1d2b7a";
    let key = [("Idempotency-Key", "act-1")];
    let first = s
        .app
        .send(
            "POST",
            &path,
            Some(&s.trainee.access),
            Some(&course(id)),
            &key,
        )
        .expect(201);
    assert_eq!(first.body["id"], id);
    assert_eq!(first.body["delmal"], json!(["BT16"]));
    // The response was lost; the phone retries.
    let again = s
        .app
        .send(
            "POST",
            &path,
            Some(&s.trainee.access),
            Some(&course(id)),
            &key,
        )
        .expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    // Without the key, the client's own id still prevents a duplicate.
    s.app
        .post(&path, Some(&s.trainee.access), course(id))
        .expect_problem(409, "conflict");
    let mut other = course(id);
    other["title"] = json!("Något annat");
    s.app
        .send("POST", &path, Some(&s.trainee.access), Some(&other), &key)
        .expect_problem(409, "idempotency-key-reused");
    let list = s.app.get(&path, Some(&s.trainee.access)).expect(200);
    assert_eq!(list.body["items"].as_array().expect("items").len(), 1);
}

#[test]
fn activities_are_filtered_paged_and_edited_without_lost_updates() {
    let s = setup();
    let path = format!("/enrolments/{}/activities", s.enrolment);
    let log = |title: &str, kind: &str, date: &str, delmal: Value| {
        s.app
            .post(
                &path,
                Some(&s.trainee.access),
                json!({"kind": kind, "title": title, "start_date": date, "placement_id": s.placement, "delmal": delmal}),
            )
            .expect(201)
            .body
    };
    log(
        "Akutmottagning",
        "clinical_work",
        "2026-09-10",
        json!(["BT1"]),
    );
    log(
        "Etikseminarium",
        "seminar",
        "2026-09-20",
        json!(["BT8", "BT9"]),
    );
    let hembesok = log(
        "Hembesök",
        "clinical_work",
        "2026-10-01",
        json!(["BT10", "BT1"]),
    );
    assert_eq!(hembesok["delmal"], json!(["BT1", "BT10"]));

    let by = |q: &str| -> Vec<String> {
        s.app
            .get(&format!("{path}?{q}"), Some(&s.supervisor.access))
            .expect(200)
            .body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|a| a["title"].as_str().expect("title").to_string())
            .collect()
    };
    assert_eq!(by("delmal=BT1"), ["Hembesök", "Akutmottagning"]);
    assert_eq!(by("kind=seminar"), ["Etikseminarium"]);
    assert_eq!(by("from=2026-09-15&to=2026-09-30"), ["Etikseminarium"]);
    assert_eq!(by(&format!("placement_id={}", s.placement)).len(), 3);
    // Paging, newest first, sees each exactly once.
    let first = s
        .app
        .get(&format!("{path}?limit=2"), Some(&s.trainee.access))
        .expect(200);
    let cursor = first.body["next_cursor"].as_str().expect("cursor");
    let second = s
        .app
        .get(
            &format!("{path}?limit=2&cursor={cursor}"),
            Some(&s.trainee.access),
        )
        .expect(200);
    assert_eq!(second.body["items"][0]["title"], "Akutmottagning");
    assert!(second.body["next_cursor"].is_null());

    // Unknown delmål, a foreign checklist item and an end before the start are refused.
    let bad = s
        .app
        .post(&path, Some(&s.trainee.access), json!({"kind": "course", "title": "x", "start_date": "2026-10-01", "end_date": "2026-09-01", "checklist_item_id": "nope", "delmal": ["BT77"]}))
        .expect_problem(422, "validation");
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("e")
        .iter()
        .map(|e| e["field"].as_str().expect("f"))
        .collect();
    assert_eq!(fields, ["end_date", "checklist_item_id", "delmal"]);

    // A draft saved as typed on two devices: the second, stale save is refused.
    let id = hembesok["id"].as_str().expect("id");
    let read = s
        .app
        .get(&format!("/activities/{id}"), Some(&s.trainee.access))
        .expect(200);
    let etag = read.header("etag").expect("etag").to_string();
    s.app
        .send(
            "GET",
            &format!("/activities/{id}"),
            Some(&s.trainee.access),
            None,
            &[("If-None-Match", &etag)],
        )
        .expect(304);
    let saved = s
        .app
        .patch(
            &format!("/activities/{id}"),
            Some(&s.trainee.access),
            json!({"reflection": "Första stycket"}),
            &[("If-Match", &etag)],
        )
        .expect(200);
    assert_eq!(
        saved.body["title"], "Hembesök",
        "a partial update keeps the rest"
    );
    assert_eq!(saved.body["version"], 2);
    s.app
        .patch(
            &format!("/activities/{id}"),
            Some(&s.trainee.access),
            json!({"reflection": "Från surfplattan"}),
            &[("If-Match", &etag)],
        )
        .expect_problem(412, "precondition-failed");
    // Only the trainee writes the log; others may read it or not see it at all.
    s.app
        .patch(
            &format!("/activities/{id}"),
            Some(&s.supervisor.access),
            json!({"title": "x"}),
            &[],
        )
        .expect_problem(403, "forbidden");
    s.app
        .post(
            &path,
            Some(&s.director.access),
            course("7d0c3b3e-3c55-4b55-9d8d-1b8e0a1c9f11"),
        )
        .expect_problem(403, "forbidden");
    s.app
        .get(&format!("/activities/{id}"), Some(&s.outsider.access))
        .expect_problem(404, "not-found");
    s.app
        .get(&path, Some(&s.outsider.access))
        .expect_problem(404, "not-found");

    s.app
        .delete(&format!("/activities/{id}"), Some(&s.trainee.access))
        .expect(204);
    s.app
        .get(&format!("/activities/{id}"), Some(&s.trainee.access))
        .expect_problem(404, "not-found");
    assert_eq!(by("delmal=BT1"), ["Akutmottagning"]);
}

#[test]
fn a_course_certificate_is_attached_from_the_phone_and_read_by_the_supervisor() {
    let s = setup_with(|c| c.attachment_max_bytes = 200_000);
    // Photos are opt-in per region (issue 17).
    crate::privacy_attachments::accept_attachment_types(
        &s.app,
        &s.admin,
        &s.region,
        &["application/pdf", "image/jpeg"],
    );
    let path = format!("/enrolments/{}/activities", s.enrolment);
    let a = s
        .app
        .post(
            &path,
            Some(&s.trainee.access),
            course("4a4c7a2e-2b8b-4bfb-8e0e-5b2b6c0d2e01"),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id");
    let pdf: Vec<u8> = b"%PDF-1.7\n"
        .iter()
        .copied()
        .chain((0..150_000u32).map(|i| (i % 251) as u8))
        .collect();
    let upload = format!("/activities/{id}/attachments?filename=..%2Fkursintyg.pdf");
    let stored = s
        .app
        .send_raw(
            "POST",
            &upload,
            Some(&s.trainee.access),
            "application/pdf",
            &pdf,
        )
        .expect(201);
    assert_eq!(stored.body["sha256"], hex::encode(Sha256::digest(&pdf)));
    assert_eq!(stored.body["size_bytes"], pdf.len());
    assert_eq!(stored.body["filename"], "kursintyg.pdf");
    let href = stored.body["href"].as_str().expect("href").to_string();

    // The main supervisor downloads the same bytes; an unassigned supervisor cannot.
    let got = s
        .app
        .send("GET", &href, Some(&s.supervisor.access), None, &[]);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/pdf"));
    assert!(got
        .header("content-disposition")
        .expect("disposition")
        .contains("kursintyg.pdf"));
    let raw = download(&s.app, &href, &s.supervisor.access);
    assert_eq!(raw, pdf);
    s.app
        .send("GET", &href, Some(&s.outsider.access), None, &[])
        .expect_problem(404, "not-found");
    let listed = s
        .app
        .get(&format!("/activities/{id}"), Some(&s.supervisor.access))
        .expect(200);
    assert_eq!(
        listed.body["attachments"][0]["sha256"],
        stored.body["sha256"]
    );

    // Wrong type, too large, or not the trainee: refused, and nothing half-stored.
    s.app
        .send_raw(
            "POST",
            &upload,
            Some(&s.trainee.access),
            "application/x-msdownload",
            b"MZ",
        )
        .expect_problem(415, "unsupported-media-type");
    let big = vec![7u8; 300_000];
    s.app
        .send_raw("POST", &upload, Some(&s.trainee.access), "image/jpeg", &big)
        .expect_problem(413, "payload-too-large");
    s.app
        .send_raw(
            "POST",
            &upload,
            Some(&s.supervisor.access),
            "image/jpeg",
            b"jpeg",
        )
        .expect_problem(403, "forbidden");
    let after = s
        .app
        .get(&format!("/activities/{id}"), Some(&s.trainee.access))
        .expect(200);
    assert_eq!(after.body["attachments"].as_array().expect("a").len(), 1);
    // (An object store aborts the multipart upload instead: storage_objects.rs.)
    if !crate::support::blobs::object_store() {
        let tmp = s.app.config.data_dir.join("attachments").join("tmp");
        assert_eq!(
            std::fs::read_dir(tmp).expect("tmp dir").count(),
            0,
            "no partial uploads left behind"
        );
    }

    let att = stored.body["id"].as_str().expect("id");
    s.app
        .delete(&format!("/attachments/{att}"), Some(&s.supervisor.access))
        .expect_problem(403, "forbidden");
    s.app
        .delete(&format!("/attachments/{att}"), Some(&s.trainee.access))
        .expect(204);
    s.app
        .send("GET", &href, Some(&s.trainee.access), None, &[])
        .expect_problem(404, "not-found");
}

/// A file name with å, ä and ö comes back as it was uploaded: in `filename*` (RFC 6266,
/// UTF-8) for every current browser and HTTP library, with an ASCII `filename` for the
/// rest, never as mojibake.
#[test]
fn a_swedish_file_name_downloads_intact() {
    let s = setup();
    let a = s
        .app
        .post(
            &format!("/enrolments/{}/activities", s.enrolment),
            Some(&s.trainee.access),
            course("4a4c7a2e-2b8b-4bfb-8e0e-5b2b6c0d2e02"),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id");
    let name = "kursintyg-försäkringsmedicin.pdf";
    let encoded = "kursintyg-f%C3%B6rs%C3%A4kringsmedicin.pdf";
    let stored = s
        .app
        .send_raw(
            "POST",
            &format!("/activities/{id}/attachments?filename={encoded}"),
            Some(&s.trainee.access),
            "application/pdf",
            b"%PDF-1.7\n%%EOF\n",
        )
        .expect(201);
    assert_eq!(stored.body["filename"], name);
    let href = stored.body["href"].as_str().expect("href");
    let got = s.app.send("GET", href, Some(&s.trainee.access), None, &[]);
    assert_eq!(got.status, 200);
    let disposition = got.header("content-disposition").expect("disposition");
    assert!(
        disposition.starts_with(
            "attachment; filename=\"kursintyg-forsakringsmedicin.pdf\"; filename*=UTF-8''"
        ),
        "{disposition}"
    );
    // `filename*` decoded by Python's standard library (RFC 2231/5987 encoding), not by
    // code of ours. Given alone: Python's mail parser takes the last of the two names,
    // where browsers (RFC 6266) prefer `filename*` wherever it stands.
    let extended = &disposition[disposition.find("filename*=").expect("filename*")..];
    let decoded = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; from email.message import EmailMessage; from email import policy; \
             m = EmailMessage(policy=policy.default); \
             m['Content-Disposition'] = 'attachment; ' + sys.argv[1]; print(m.get_filename())",
            extended,
        ])
        .output()
        .expect("python3");
    assert!(decoded.status.success(), "{decoded:?}");
    assert_eq!(String::from_utf8_lossy(&decoded.stdout).trim(), name);
}

/// Raw bytes of a download (the support client reads bodies as text).
fn download(app: &TestApp, href: &str, token: &str) -> Vec<u8> {
    let resp = ureq::get(&format!("{}{href}", app.base))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("download");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes).expect("read");
    bytes
}

#[test]
fn the_audit_chain_verifies_and_detects_a_tampered_row() {
    let s = setup();
    let path = format!("/enrolments/{}/activities", s.enrolment);
    let a = s
        .app
        .post(
            &path,
            Some(&s.trainee.access),
            course("1e0d1f9a-93c4-4d3b-8a0a-1f6b2c5e7d10"),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id");
    s.app
        .patch(
            &format!("/activities/{id}"),
            Some(&s.trainee.access),
            json!({"reflection": "Ändrad"}),
            &[],
        )
        .expect(200);
    s.app
        .delete(&format!("/activities/{id}"), Some(&s.trainee.access))
        .expect(204);

    // A phone that last synced before the activity sees all three changes, deletion too.
    let feed = s
        .app
        .get(
            &format!("/enrolments/{}/changes?limit=200", s.enrolment),
            Some(&s.trainee.access),
        )
        .expect(200);
    let items = feed.body["items"].as_array().expect("items");
    let first = items
        .iter()
        .position(|c| c["entity"] == "activity")
        .expect("activity in feed");
    let since = items[first - 1]["seq"].as_i64().expect("seq");
    let later = s
        .app
        .get(
            &format!("/enrolments/{}/changes?since={since}", s.enrolment),
            Some(&s.supervisor.access),
        )
        .expect(200);
    let seen: Vec<(&str, &str)> = later.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| {
            (
                c["entity"].as_str().expect("entity"),
                c["action"].as_str().expect("action"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("activity", "created"),
            ("activity", "updated"),
            ("activity", "deleted")
        ]
    );
    assert_eq!(later.body["items"][2]["entity_id"], id);
    s.app
        .get(
            &format!("/enrolments/{}/changes?since={since}", s.enrolment),
            Some(&s.outsider.access),
        )
        .expect_problem(404, "not-found");

    let pool = eportfolio::db::connect(&s.app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let v = eportfolio::audit::verify(&mut conn).expect("verify");
    assert!(v.intact, "{v:?}");
    assert!(
        v.entries >= 6,
        "enrolment changes and the activity's create, update, delete: {v:?}"
    );

    // The command an auditor runs agrees.
    let cli = |expect_ok: bool| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"))
            .args(["audit", "verify"])
            .env("DATABASE_URL", &s.app.config.database_url)
            .env("EPORTFOLIO_DATA_DIR", &s.app.config.data_dir)
            .output()
            .expect("run eportfolio");
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(cli(true).contains("intact"));

    // Someone with database access rewrites what the entry says of the change (its
    // facts: the reflection's text was never in it, only its keyed digest).
    use diesel::RunQueryDsl;
    let changed = diesel::sql_query("UPDATE audit_log SET data = REPLACE(data, '\"version\":2', '\"version\":7') WHERE action = 'updated' AND entity = 'activity'")
        .execute(&mut *conn)
        .expect("tamper");
    assert_eq!(changed, 1);
    let v = eportfolio::audit::verify(&mut conn).expect("verify");
    assert!(!v.intact);
    // (Version-2 entries hash a digest of their data: the data no longer matches it.)
    assert_eq!(
        v.reason.as_deref(),
        Some("the entry's data does not match its digest")
    );
    assert!(cli(false).contains("broken at entry"));
}
