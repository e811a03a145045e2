//! What fuzzing the API as a trainee and as an API client (`.ci/fuzz.sh`) found: each
//! finding, reproduced over HTTP, so that it stays fixed without the fuzzer.

use serde_json::json;

use crate::support::TestApp;

/// The media types the OpenAPI document names for a 200 answer of `GET /attachments/{id}`.
fn documented_download_types() -> Vec<String> {
    let spec: serde_json::Value =
        serde_json::from_str(&eportfolio::openapi_json()).expect("openapi json");
    spec["paths"]["/api/v1/attachments/{id}"]["get"]["responses"]["200"]["content"]
        .as_object()
        .expect("documented content of the download")
        .keys()
        .cloned()
        .collect()
}

/// Schemathesis as a trainee uploaded a PNG and downloaded it as `image/png`, where the
/// document promised only `application/octet-stream`: a client generated from the
/// document would refuse the photo of its own course certificate. Every media type an
/// attachment may have by default must come back as a documented one.
/// Every media type of the default `ATTACHMENT_TYPES`.
const ALL_TYPES: &[&str] = &[
    "application/pdf",
    "image/jpeg",
    "image/png",
    "image/heic",
    "text/plain",
];

#[test]
fn a_downloaded_attachment_has_a_media_type_the_document_names() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let enrolment = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
        )
        .expect(201);
    let enrolment = enrolment.body["id"].as_str().expect("enrolment id");
    let activity = app
        .post(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&trainee.access),
            json!({"kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": "2026-10-06",
                   "delmal": ["BT16"]}),
        )
        .expect(201);
    let activity = activity.body["id"].as_str().expect("activity id");

    // Photos and plain text are opt-in per region (issue 17).
    crate::privacy_attachments::accept_attachment_types(&app, &admin, &region, ALL_TYPES);
    let documented = documented_download_types();
    let files: [(&str, &[u8]); 4] = [
        ("application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
        (
            "image/png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01",
        ),
        (
            "image/jpeg",
            b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01",
        ),
        ("text/plain", b"Kursintyg: godk\xc3\xa4nd\n"),
    ];
    for (media_type, bytes) in files {
        let stored = app
            .send_raw(
                "POST",
                &format!("/activities/{activity}/attachments?filename=intyg"),
                Some(&trainee.access),
                media_type,
                bytes,
            )
            .expect(201);
        let href = stored.body["href"].as_str().expect("href");
        let got = app.send("GET", href, Some(&trainee.access), None, &[]);
        assert_eq!(got.status, 200, "{media_type}: {}", got.text);
        let served = got.header("content-type").expect("content-type");
        let essence = served.split(';').next().unwrap_or_default().trim();
        assert_eq!(essence, media_type, "served as {served}");
        assert!(
            documented.iter().any(|d| d == essence),
            "{media_type} is served but the document names only {documented:?}"
        );
    }
}
