//! Accepted attachment types per region (issue 17): a region accepts PDF only until its
//! administrators opt in to photos; an upload of another type, or content that is not
//! what it claims, is refused with 415 naming what the region accepts. Only the
//! region's administrators read or change the setting.

use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

const PHOTOS: [&str; 4] = ["application/pdf", "image/jpeg", "image/png", "image/heic"];

/// Opts the region in to `types` (for tests that upload photos or plain text).
pub fn accept_attachment_types(app: &TestApp, admin: &TestUser, region: &str, types: &[&str]) {
    app.send(
        "PUT",
        &format!("/organisations/{region}/attachment-types"),
        Some(&admin.access),
        Some(&json!({"media_types": types})),
        &[],
    )
    .expect(200);
}

struct World {
    app: TestApp,
    admin: TestUser,
    region: String,
    slso: String,
    trainee: TestUser,
    upload: String,
}

fn world() -> World {
    let app = TestApp::start();
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
    let activity = app
        .post(
            &format!("/enrolments/{}/activities", e.body["id"].as_str().expect("id")),
            Some(&trainee.access),
            json!({"kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": "2026-10-06", "delmal": ["BT16"]}),
        )
        .expect(201);
    let upload = format!(
        "/activities/{}/attachments?filename=intyg",
        activity.body["id"].as_str().expect("id")
    );
    World {
        app,
        admin,
        region,
        slso,
        trainee,
        upload,
    }
}

const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
const PDF: &[u8] = b"%PDF-1.7\nkursintyg";

fn types_path(org: &str) -> String {
    format!("/organisations/{org}/attachment-types")
}

#[test]
fn a_region_accepts_pdf_only_until_it_opts_in_to_photos() {
    let w = world();
    let (app, t) = (&w.app, Some(w.trainee.access.as_str()));

    // The default: PDF only, as the administrator reads it.
    let read = app
        .get(&types_path(&w.region), Some(&w.admin.access))
        .expect(200);
    assert_eq!(read.body["media_types"], json!(["application/pdf"]));
    assert_eq!(read.body["is_default"], json!(true));
    assert!(read.body["available"]
        .as_array()
        .expect("available")
        .contains(&json!("image/jpeg")));

    // A photo of a course certificate is refused, naming what the region takes.
    let refused = app
        .send_raw("POST", &w.upload, t, "image/jpeg", JPEG)
        .expect_problem(415, "unsupported-media-type");
    let detail = refused.body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("image/jpeg") && detail.contains("application/pdf"),
        "{detail}"
    );
    app.send_raw("POST", &w.upload, t, "text/plain", b"Kursintyg")
        .expect_problem(415, "unsupported-media-type");
    app.send_raw("POST", &w.upload, t, "application/pdf", PDF)
        .expect(201);

    // The region opts in to photos; the change is audited.
    let etag = read.header("etag").expect("etag").to_string();
    let set = app
        .send(
            "PUT",
            &types_path(&w.region),
            Some(&w.admin.access),
            Some(&json!({"media_types": PHOTOS})),
            &[("If-Match", etag.as_str())],
        )
        .expect(200);
    assert_eq!(set.body["media_types"], json!(PHOTOS));
    assert_eq!(set.body["is_default"], json!(false));
    assert_eq!(set.body["version"], json!(1));
    // The old ETag no longer fits.
    app.send(
        "PUT",
        &types_path(&w.region),
        Some(&w.admin.access),
        Some(&json!({"media_types": ["application/pdf"]})),
        &[("If-Match", etag.as_str())],
    )
    .expect_problem(412, "precondition-failed");

    app.send_raw("POST", &w.upload, t, "image/jpeg", JPEG)
        .expect(201);
    app.send_raw("POST", &w.upload, t, "image/png", PNG)
        .expect(201);
    // Still not plain text; and the content is sniffed, not taken at its word: a PNG
    // declared as a JPEG, or a page declared as a PDF, is refused naming the types.
    app.send_raw("POST", &w.upload, t, "text/plain", b"Kursintyg")
        .expect_problem(415, "unsupported-media-type");
    let sniffed = app
        .send_raw("POST", &w.upload, t, "image/jpeg", PNG)
        .expect_problem(415, "unsupported-media-type");
    assert!(
        sniffed.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("image/heic")),
        "{}",
        sniffed.text
    );
    app.send_raw(
        "POST",
        &w.upload,
        t,
        "application/pdf",
        b"<!DOCTYPE html><html></html>",
    )
    .expect_problem(415, "unsupported-media-type");
}

#[test]
fn only_the_regions_administrators_read_or_set_its_attachment_types() {
    let w = world();
    let app = &w.app;
    // Another region and its administrator.
    let email = "admin@regionskane.se";
    let invitation = app.bootstrap_admin(email, "Region Skåne");
    let other_admin = app.accept_with_totp(&invitation, email);
    let me = app.get("/me", Some(&other_admin.access)).expect(200).body;
    let other = me["roles"][0]["organisation_id"]
        .as_str()
        .expect("region")
        .to_string();
    // An administrator of a care provider in this region.
    let provider_admin = app.join(&w.admin, "admin@slso.se", "administrator", &w.slso);
    let body = json!({"media_types": PHOTOS});
    for who in [&w.trainee, &other_admin, &provider_admin] {
        app.get(&types_path(&w.region), Some(&who.access))
            .expect_problem(403, "forbidden");
        app.send(
            "PUT",
            &types_path(&w.region),
            Some(&who.access),
            Some(&body),
            &[],
        )
        .expect_problem(403, "forbidden");
    }
    // Unknown organisation: 404. Below a region: set on the region instead (422).
    app.get(
        &types_path("00000000-0000-4000-8000-000000000000"),
        Some(&w.admin.access),
    )
    .expect_problem(404, "not-found");
    app.get(&types_path(&w.slso), Some(&w.admin.access))
        .expect_problem(422, "unprocessable");
    // A type the service does not handle at all: 422 naming the entry.
    let bad = app
        .send(
            "PUT",
            &types_path(&w.region),
            Some(&w.admin.access),
            Some(&json!({"media_types": ["application/pdf", "text/html"]})),
            &[],
        )
        .expect_problem(422, "validation");
    assert_eq!(bad.body["errors"][0]["field"], json!("media_types[1]"));
    // Nothing changed by the refusals: still the default, and still no photos.
    let read = app
        .get(&types_path(&w.region), Some(&w.admin.access))
        .expect(200);
    assert_eq!(read.body["is_default"], json!(true), "{}", read.text);
    app.send_raw(
        "POST",
        &w.upload,
        Some(&w.trainee.access),
        "image/jpeg",
        JPEG,
    )
    .expect_problem(415, "unsupported-media-type");
    // The other region's choice is its own.
    accept_attachment_types(app, &other_admin, &other, &PHOTOS);
    let read: Value = app
        .get(&types_path(&w.region), Some(&w.admin.access))
        .expect(200)
        .body;
    assert_eq!(read["media_types"], json!(["application/pdf"]));
}
