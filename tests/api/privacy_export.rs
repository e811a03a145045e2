//! `GET /me/export` (issue 17, GDPR Art. 15 and 20): everything the service holds about
//! the caller as one streamed tar.gz archive, unpacked here with the `tar` crate and
//! checked file by file: the manifest's hashes, the attachments' bytes, no secret, and
//! nothing of another trainee. Sensitive, so it needs a recent second factor, is
//! rate-limited and audited.

use std::collections::BTreeMap;
use std::io::Read;

use diesel::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use eportfolio::integrations::clients::SCOPE_PROGRESS_READ;

use crate::integrations::{client, token};
use crate::support::{Resp, TestApp, TestUser};

struct World {
    app: TestApp,
    admin: TestUser,
    region: String,
    trainee: TestUser,
    other: TestUser,
}

/// One trainee's enrolment with an activity and `pdf` attached to it.
fn portfolio(
    app: &TestApp,
    admin: &TestUser,
    template: &str,
    trainee: &TestUser,
    title: &str,
    pdf: &[u8],
) {
    let e = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31",
                   "placements": [{"placement_type": "akut", "start_date": "2026-09-01",
                                   "end_date": "2026-10-31"}]}),
        )
        .expect(201);
    // The trainee's voice: an evaluation of the ended placement, a group review.
    let placement = e.body["placements"][0]["id"].as_str().expect("placement");
    app.post(
        &format!("/placements/{placement}/evaluation"),
        Some(&trainee.access),
        json!({"answers": {"supervision": 4, "workload": 3, "on_call": 4,
                           "work_environment": 5, "educational_quality": 4},
               "comment": format!("Utvärdering: {title}")}),
    )
    .expect(201);
    app.post(
        &format!(
            "/enrolments/{}/group-reviews",
            e.body["id"].as_str().expect("id")
        ),
        Some(&admin.access),
        json!({"held_on": "2026-11-20", "outcome": "on_track",
               "summary": format!("Kollegium: {title}")}),
    )
    .expect(201);
    let activity = app
        .post(
            &format!(
                "/enrolments/{}/activities",
                e.body["id"].as_str().expect("id")
            ),
            Some(&trainee.access),
            json!({"kind": "course", "title": title, "start_date": "2026-10-06", "delmal": ["BT16"],
                   "reflection": format!("Reflektion: {title}")}),
        )
        .expect(201);
    // The kursledare named for the course (waiting for the vetting): who they are is
    // the trainee's data too.
    app.post(
        &format!(
            "/activities/{}/course-confirmation",
            activity.body["id"].as_str().expect("id")
        ),
        Some(&trainee.access),
        json!({"kursledare_email": format!("kursledare.{}", trainee.email),
               "kursledare_name": format!("Kursledare för {title}"),
               "kursledare_workplace": "Försäkringskassan, Solna"}),
    )
    .expect(201);
    app.send_raw(
        "POST",
        &format!(
            "/activities/{}/attachments?filename=kursintyg%20%C3%A5.pdf",
            activity.body["id"].as_str().expect("id")
        ),
        Some(&trainee.access),
        "application/pdf",
        pdf,
    )
    .expect(201);
}

const MINE: &[u8] = b"%PDF-1.7\nKursintyg, min egen kurs";
const THEIRS: &[u8] = b"%PDF-1.7\nKursintyg, den andras kurs";

fn world() -> World {
    world_with(|_| {})
}

fn world_with(adjust: impl FnOnce(&mut eportfolio::config::Config)) -> World {
    let app = TestApp::start_with(adjust);
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let other = app.join(&admin, "annan.bt@sll.se", "trainee", &slso);
    portfolio(
        &app,
        &admin,
        &template,
        &trainee,
        "Försäkringsmedicinsk dag",
        MINE,
    );
    portfolio(
        &app,
        &admin,
        &template,
        &other,
        "Den andras hemliga kurs",
        THEIRS,
    );
    World {
        app,
        admin,
        region,
        trainee,
        other,
    }
}

/// The archive's files by path, in the archive's order too.
fn unpack(r: &Resp) -> (Vec<String>, BTreeMap<String, Vec<u8>>) {
    assert_eq!(
        r.header("content-type"),
        Some("application/gzip"),
        "{}",
        r.text
    );
    let gz = flate2::read::GzDecoder::new(r.bytes.as_slice());
    let mut archive = tar::Archive::new(gz);
    let mut order = Vec::new();
    let mut files = BTreeMap::new();
    for entry in archive.entries().expect("a tar archive") {
        let mut entry = entry.expect("an entry");
        let path = entry.path().expect("path").to_string_lossy().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        order.push(path.clone());
        files.insert(path, bytes);
    }
    (order, files)
}

fn json_of(files: &BTreeMap<String, Vec<u8>>, path: &str) -> Value {
    serde_json::from_slice(files.get(path).unwrap_or_else(|| panic!("{path} missing")))
        .expect("json")
}

fn export(app: &TestApp, who: &TestUser) -> Resp {
    app.send("GET", "/me/export", Some(&who.access), None, &[])
}

#[test]
fn a_trainee_exports_everything_about_them_and_nothing_of_anyone_else() {
    let w = world();
    let app = &w.app;
    let r = export(app, &w.trainee).expect(200);
    assert!(r
        .header("content-disposition")
        .is_some_and(|d| d.contains("eportfolio-export-") && d.contains(".tar.gz")));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let (order, files) = unpack(&r);
    assert_eq!(order[0], "manifest.json");

    // The manifest names every other file, with its size and SHA-256.
    let manifest = json_of(&files, "manifest.json");
    assert_eq!(manifest["format"], json!("eportfolio-personal-data-export"));
    assert_eq!(manifest["user_id"], json!(w.trainee.id));
    let listed = manifest["files"].as_array().expect("files");
    assert_eq!(listed.len() + 1, files.len(), "{order:?}");
    for f in listed {
        let path = f["path"].as_str().expect("path");
        let bytes = files
            .get(path)
            .unwrap_or_else(|| panic!("{path} not in the archive"));
        assert_eq!(f["size_bytes"], json!(bytes.len()), "{path}");
        assert_eq!(
            f["sha256"],
            json!(hex::encode(Sha256::digest(bytes))),
            "{path}"
        );
    }

    // The account, the enrolment's records, and the attachment's bytes as uploaded.
    let account = json_of(&files, "account.json");
    assert_eq!(account["email"], json!("bt@sll.se"));
    assert_eq!(account["roles"][0]["role"], json!("trainee"));
    let enrolment_dir = order
        .iter()
        .find_map(|p| p.strip_suffix("/activities.json"))
        .expect("an enrolment")
        .to_string();
    let activities = json_of(&files, &format!("{enrolment_dir}/activities.json"));
    assert_eq!(activities[0]["title"], json!("Försäkringsmedicinsk dag"));
    let evaluations = json_of(
        &files,
        &format!("{enrolment_dir}/placement_evaluations.json"),
    );
    assert_eq!(
        evaluations[0]["comment"], "Utvärdering: Försäkringsmedicinsk dag",
        "{evaluations}"
    );
    // The kursledare named for the course: name, address, workplace, where it stands.
    let courses = json_of(
        &files,
        &format!("{enrolment_dir}/course_confirmations.json"),
    );
    assert_eq!(
        courses[0]["kursledare_name"], "Kursledare för Försäkringsmedicinsk dag",
        "{courses}"
    );
    assert_eq!(courses[0]["kursledare_email"], "kursledare.bt@sll.se");
    assert_eq!(
        courses[0]["kursledare_workplace"],
        "Försäkringskassan, Solna"
    );
    assert_eq!(courses[0]["status"], "awaiting_vetting");
    assert_eq!(courses.as_array().map(Vec::len), Some(1), "{courses}");
    let reviews = json_of(&files, &format!("{enrolment_dir}/group_reviews.json"));
    assert_eq!(reviews[0]["summary"], "Kollegium: Försäkringsmedicinsk dag");
    let audit = json_of(&files, &format!("{enrolment_dir}/audit.json"));
    assert!(audit
        .as_array()
        .expect("audit")
        .iter()
        .any(|e| e["entity"] == json!("attachment") && e["action"] == json!("created")));
    let attachment = listed
        .iter()
        .find(|f| f["media_type"] == json!("application/pdf"))
        .expect("the attachment in the manifest");
    assert_eq!(attachment["filename"], json!("kursintyg å.pdf"));
    let path = attachment["path"].as_str().expect("path");
    assert!(
        path.starts_with(&format!("{enrolment_dir}/attachments/")),
        "{path}"
    );
    assert!(path.ends_with("/kursintyg å.pdf"), "{path}");
    assert_eq!(files[path], MINE);
    let sessions = json_of(&files, "sessions.json");
    assert!(!sessions.as_array().expect("sessions").is_empty());

    // Never a secret, and nothing of the other trainee.
    let everything: Vec<u8> = files.values().flatten().copied().collect();
    let text = String::from_utf8_lossy(&everything);
    let secret = w.trainee.totp_secret.as_deref().expect("totp");
    for forbidden in [
        w.trainee.password.as_str(),
        secret,
        w.trainee.access.as_str(),
        w.trainee.refresh.as_str(),
        "$argon2",
        "password_hash",
        "token_hash",
        "code_hash",
        "Den andras hemliga kurs",
        "annan.bt@sll.se",
        w.other.id.as_str(),
    ] {
        assert!(!text.contains(forbidden), "the export holds {forbidden:?}");
    }
    for code in &w.trainee.recovery_codes {
        assert!(
            !text.contains(code.as_str()),
            "the export holds a recovery code"
        );
    }
    assert!(
        !everything.windows(THEIRS.len()).any(|b| b == THEIRS),
        "the other trainee's attachment is in the export"
    );

    // Audited: who exported, and how much.
    let exported = audited(app, "exported");
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].0, w.trainee.id);
    assert_eq!(exported[0].1["attachments"], json!(1));

    // The other trainee's export holds their own course, not this one.
    let (_, theirs) = unpack(&export(app, &w.other).expect(200));
    let theirs: Vec<u8> = theirs.values().flatten().copied().collect();
    let theirs = String::from_utf8_lossy(&theirs);
    assert!(theirs.contains("Den andras hemliga kurs"));
    assert!(!theirs.contains("Försäkringsmedicinsk dag"));
}

/// (entity id, data) of every audit entry with `action`.
fn audited(app: &TestApp, action: &str) -> Vec<(String, Value)> {
    use eportfolio::schema::audit_log;
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let rows: Vec<(String, String)> = audit_log::table
        .filter(audit_log::action.eq(action))
        .order(audit_log::seq)
        .select((audit_log::entity_id, audit_log::data))
        .load(&mut *pool.get().expect("conn"))
        .expect("audit");
    rows.into_iter()
        .map(|(id, data)| (id, serde_json::from_str(&data).expect("data")))
        .collect()
}

#[test]
fn an_export_needs_a_recent_second_factor_and_is_rate_limited() {
    let w = world();
    let app = &w.app;
    // Six minutes after signing in, a stolen access token alone cannot pull the export.
    app.advance(360);
    let refused = export(app, &w.trainee).expect_problem(401, "step-up-required");
    assert_eq!(
        refused.body["requires"],
        json!(["password", "second_factor"])
    );
    // The person confirms with their password and a code; then it works.
    app.send(
        "POST",
        "/me/step-up",
        Some(&w.trainee.access),
        Some(&json!({"password": w.trainee.password})),
        &[],
    )
    .expect_problem(401, "step-up-required");
    app.send(
        "POST",
        "/me/step-up",
        Some(&w.trainee.access),
        Some(&json!({"password": "fel lösenord", "totp_code": app.totp(w.trainee.totp_secret.as_deref().expect("totp"))})),
        &[],
    )
    .expect_problem(401, "invalid-credentials");
    let code = app.totp(w.trainee.totp_secret.as_deref().expect("totp"));
    app.send(
        "POST",
        "/me/step-up",
        Some(&w.trainee.access),
        Some(&json!({"password": w.trainee.password, "totp_code": code})),
        &[],
    )
    .expect(204);
    for _ in 0..5 {
        export(app, &w.trainee).expect(200);
    }
    let limited = export(app, &w.trainee).expect_problem(429, "rate-limited");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(audited(app, "exported").len(), 5);
    // No API client gets it; nor does anyone without a token.
    let (id, secret) = client(app, &w.admin, &w.region, &[SCOPE_PROGRESS_READ]);
    let client_token = token(app, &id, &secret);
    app.send("GET", "/me/export", Some(&client_token), None, &[])
        .expect_problem(403, "forbidden");
    app.send("GET", "/me/export", None, None, &[])
        .expect_problem(401, "unauthenticated");

    // An hour later, on a refreshed access token of the same session: the factor given
    // an hour ago no longer counts.
    app.advance(3600);
    let refreshed = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": w.trainee.refresh}),
        )
        .expect(200);
    let access = refreshed.body["access_token"]
        .as_str()
        .expect("access token");
    app.send("GET", "/me/export", Some(access), None, &[])
        .expect_problem(401, "step-up-required");
}

#[test]
fn the_export_limit_is_the_operators_setting() {
    // RATE_LIMIT_EXPORT_PER_ACCOUNT=2: the third export within the hour is refused.
    let w = world_with(|c| c.rate_limits.export_per_account.max = 2);
    let app = &w.app;
    export(app, &w.trainee).expect(200);
    export(app, &w.trainee).expect(200);
    let limited = export(app, &w.trainee).expect_problem(429, "rate-limited");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(audited(app, "exported").len(), 2);
    // The limit is per account: the other trainee still has theirs.
    export(app, &w.other).expect(200);
}
