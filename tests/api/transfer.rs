//! A portfolio that moves with the doctor (issue 17, docs/transfer.md): two real
//! services. Service A is the real binary on its own SQLite file (set up through an
//! in-process server on the same file); service B is the test server (PostgreSQL in the
//! PostgreSQL pass: SQLite -> PostgreSQL). A trainee with signed records and an
//! attachment on A exports; B's administrator trusts A's key; B's director of studies
//! imports; the trainee on B sees the records read-only with their provenance. Tampered,
//! untrusted, repeated and too large bundles are refused, and so is anyone without the
//! right.

use std::process::Child;

use serde_json::{json, Value};

use crate::crash::spawn_server_with;
use crate::support::{TestApp, TestUser};

const PDF: &[u8] = b"%PDF-1.7\nKursintyg, akutkurs";

/// Service A: the in-process server for the set-up, on a SQLite file of its own in
/// either pass, and the real binary beside it on the same file.
struct Sender {
    app: TestApp,
    base: String,
    child: Child,
    trainee: TestUser,
    director: TestUser,
    supervisor: TestUser,
    other_trainee: TestUser,
    enrolment: String,
    activity_title: String,
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request to a server by its base URL: (status, JSON body or null).
fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = ureq::request(method, &format!("{base}/api/v1{path}"));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn sender() -> Sender {
    let dir = std::env::temp_dir().join(format!(
        "eportfolio-transfer-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let sqlite = dir.join("service-a.sqlite3").to_string_lossy().into_owned();
    let app = TestApp::start_with(|c| {
        c.database_url = sqlite;
        c.service_id = "eportfolio-uppsala".into();
        c.service_name = "eportfolio Region Uppsala".into();
    });
    // The real binary runs on the real clock: tokens are issued on it too.
    app.clock.set(chrono::Utc::now());
    let (admin, region) = app.admin();
    let akademiska = app.create_org(&admin, "care_provider", "Akademiska", Some(&region));
    let director = app.join(
        &admin,
        "studierektor@regionuppsala.se",
        "director_of_studies",
        &akademiska,
    );
    let template = app.stockholm_bt_template(&director, &akademiska);
    let trainee = app.join(&director, "anna.bt@gmail.com", "trainee", &akademiska);
    let other_trainee = app.join(
        &director,
        "annan.bt@regionuppsala.se",
        "trainee",
        &akademiska,
    );
    let supervisor = app.join(&director, "hhl@regionuppsala.se", "supervisor", &akademiska);
    let e = app
        .post(
            "/enrolments",
            Some(&director.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-03-01", "planned_end": "2027-02-28",
                   "main_supervisor_id": supervisor.id,
                   "placements": [{"placement_type": "akut", "start_date": "2026-03-01",
                                   "end_date": "2026-08-31", "supervisor_id": supervisor.id},
                                  {"placement_type": "allmanmedicin", "start_date": "2026-09-01",
                                   "end_date": "2026-12-31"},
                                  {"placement_type": "geriatrik", "start_date": "2027-01-01",
                                   "end_date": "2027-02-28"}]}),
        )
        .expect(201);
    let enrolment = e.body["id"].as_str().expect("id").to_string();
    // The plan as served on A: two weeks of half-time parental leave, 75 % from July,
    // and two months of AT credited.
    app.post(
        &format!("/enrolments/{enrolment}/leave-periods"),
        Some(&director.access),
        json!({"kind": "parental", "start_date": "2026-05-04", "end_date": "2026-05-17",
               "percent": 50}),
    )
    .expect(201);
    app.post(
        &format!("/enrolments/{enrolment}/extent-changes"),
        Some(&director.access),
        json!({"valid_from": "2026-07-01", "extent_percent": 75}),
    )
    .expect(201);
    app.post(
        &format!("/enrolments/{enrolment}/credited-service"),
        Some(&director.access),
        json!({"description": "AT, medicinkliniken, Akademiska", "start_date": "2025-01-01",
               "end_date": "2025-03-31", "credited_days": 60,
               "evidence": "Tjänstgöringsintyg 2025-04-01", "delmal": ["BT1"]}),
    )
    .expect(201);
    let title = "Akutkurs ATLS";
    let activity = app
        .post(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&trainee.access),
            json!({"kind": "course", "title": title, "start_date": "2026-04-06", "delmal": ["BT16"],
                   "reflection": "Traumaomhändertagande i team."}),
        )
        .expect(201);
    app.send_raw(
        "POST",
        &format!(
            "/activities/{}/attachments?filename=kursintyg.pdf",
            activity.body["id"].as_str().expect("id")
        ),
        Some(&trainee.access),
        "application/pdf",
        PDF,
    )
    .expect(201);
    confirm_course(
        &app,
        &trainee,
        &supervisor,
        activity.body["id"].as_str().expect("id"),
    );
    let a = app
        .post(
            &format!("/enrolments/{enrolment}/assessments"),
            Some(&trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-04-14", "assessor_id": supervisor.id,
                   "context": {"setting (outpatient, inpatient, emergency)": "emergency"},
                   "delmal": ["BT1"], "trainee_reflection": "Jag glömde fråga om allergier."}),
        )
        .expect(201);
    app.post(
        &format!("/assessments/{}/sign", a.body["id"].as_str().expect("id")),
        Some(&supervisor.access),
        json!({"ratings": {"communication": 7}, "entrustment": 4,
               "feedback_strengths": "Strukturerad anamnes.", "feedback_next_steps": "Öva riktat status."}),
    )
    .expect(200);
    let (child, base) = spawn_server_with(
        &app,
        &[
            ("SERVICE_ID", "eportfolio-uppsala"),
            ("SERVICE_NAME", "eportfolio Region Uppsala"),
            (
                "EPORTFOLIO_PUBLIC_URL",
                "https://eportfolio.regionuppsala.example",
            ),
        ],
    );
    Sender {
        app,
        base,
        child,
        trainee,
        director,
        supervisor,
        other_trainee,
        enrolment,
        activity_title: title.into(),
    }
}

const KURSLEDARE: &str = "kare.ornberg@kursgivare.se";

/// The kursledare of the course confirms it on A: named by the trainee, approved by the
/// main supervisor, confirmed through the link.
pub(crate) fn confirm_course(app: &TestApp, trainee: &TestUser, main: &TestUser, course: &str) {
    let asked = app
        .post(
            &format!("/activities/{course}/course-confirmation"),
            Some(&trainee.access),
            json!({"kursledare_email": KURSLEDARE, "kursledare_name": "Kåre Örnberg",
                   "kursledare_workplace": "Traumakurser Uppsala AB"}),
        )
        .expect(201);
    assert_eq!(asked.body["status"], "awaiting_vetting", "{}", asked.text);
    let list = app
        .get("/external-assessors", Some(&main.access))
        .expect(200);
    let vetting = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|x| x["email"] == KURSLEDARE)
        .and_then(|x| x["id"].as_str())
        .expect("pending")
        .to_string();
    let before = app.smtp.count_to(KURSLEDARE);
    app.post(
        &format!("/external-assessors/{vetting}/approve"),
        Some(&main.access),
        json!({}),
    )
    .expect(200);
    let token = app
        .smtp
        .wait_for(KURSLEDARE, before)
        .find_token_after("token=")
        .expect("link");
    app.post(
        &format!("/auth/course-confirmation-links/{token}/confirm"),
        None,
        json!({}),
    )
    .expect(200);
}

/// Service B: a region with a BT template, its administrator, director and the trainee's
/// account there.
struct Receiver {
    app: TestApp,
    admin: TestUser,
    region: String,
    slso: String,
    director: TestUser,
    trainee: TestUser,
}

fn receiver() -> Receiver {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    app.stockholm_bt_template(&director, &slso);
    let trainee = app.join(&director, "anna.bt@gmail.com", "trainee", &slso);
    Receiver {
        app,
        admin,
        region,
        slso,
        director,
        trainee,
    }
}

fn export(a: &Sender, who: &TestUser) -> Value {
    let (status, bundle) = call(
        &a.base,
        "POST",
        &format!("/enrolments/{}/transfer-export", a.enrolment),
        Some(&who.access),
        None,
    );
    assert_eq!(status, 200, "{bundle}");
    bundle
}

fn import(b: &Receiver, bundle: &Value) -> (u16, Value) {
    call(
        &b.app.base,
        "POST",
        "/transfers",
        Some(&b.director.access),
        Some(&json!({"bundle": bundle, "trainee_email": b.trainee.email})),
    )
}

fn trust(b: &Receiver, a: &Sender) -> String {
    let (status, keys) = call(&a.base, "GET", "/dossier-keys", None, None);
    assert_eq!(status, 200);
    let pems: Vec<Value> = keys["items"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["public_key_pem"].clone())
        .collect();
    let created = b
        .app
        .post(
            "/trusted-services",
            Some(&b.admin.access),
            json!({"organisation_id": b.region, "name": "Region Uppsala", "base_url": a.base,
                   "public_keys": pems}),
        )
        .expect(201);
    assert_eq!(
        created.body["keys"].as_array().map(Vec::len),
        Some(pems.len())
    );
    created.body["id"].as_str().expect("id").to_string()
}

#[test]
fn a_trainee_moves_with_signed_records_and_the_receiving_side_keeps_their_provenance() {
    let a = sender();
    let b = receiver();
    // A (the real binary) issues the bundle to the trainee.
    let bundle = export(&a, &a.trainee);
    let content = &bundle["bundle"];
    assert_eq!(content["format"], "eportfolio-transfer/1");
    assert_eq!(content["service"]["id"], "eportfolio-uppsala");
    assert_eq!(
        content["service"]["base_url"],
        "https://eportfolio.regionuppsala.example"
    );
    assert_eq!(content["service"]["key_id"], bundle["signature"]["key_id"]);
    assert_eq!(content["activities"][0]["title"], a.activity_title.as_str());
    assert_eq!(content["assessments"][0]["status"], "signed");
    assert_eq!(
        content["attachments"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );
    assert!(content["audit"].as_array().is_some_and(|f| !f.is_empty()));
    // The kursledare's confirmation of the course: who, where, when, the digest of what
    // was confirmed, and who vetted them (named among the people).
    let course = &content["course_confirmations"][0];
    assert_eq!(course["status"], "confirmed", "{course}");
    assert_eq!(course["kursledare_name"], "Kåre Örnberg");
    assert_eq!(course["kursledare_email"], KURSLEDARE);
    assert_eq!(course["kursledare_workplace"], "Traumakurser Uppsala AB");
    assert!(course["confirmed_at"].is_string(), "{course}");
    assert_eq!(course["content_hash"].as_str().map(str::len), Some(64));
    assert_eq!(course["vetted_by"], a.supervisor.id.as_str());
    assert!(content["people"]
        .as_array()
        .expect("people")
        .iter()
        .any(|p| p["id"] == a.supervisor.id.as_str()));

    // Not trusted yet: refused, and nothing was made.
    let (status, problem) = import(&b, &bundle);
    assert_eq!(status, 403, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/transfer-untrusted")),
        "{problem}"
    );
    let trusted = trust(&b, &a);

    // One changed letter in a reflection: refused as tampered.
    let mut tampered = bundle.clone();
    tampered["bundle"]["activities"][0]["reflection"] = json!("Traumaomhändertagande i Team.");
    let (status, problem) = import(&b, &tampered);
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/transfer-tampered")),
        "{problem}"
    );
    // A changed attachment byte too.
    let mut tampered = bundle.clone();
    tampered["bundle"]["attachments"][0]["data"] =
        json!("JVBERi0xLjcKS3Vyc2ludHlnLCBmw7ZyZmFsc2thdA==");
    let (status, problem) = import(&b, &tampered);
    assert_eq!(status, 422, "{problem}");

    // Two imports of the same bundle at once: one is made, the other refused.
    let results: Vec<(u16, Value)> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2).map(|_| s.spawn(|| import(&b, &bundle))).collect();
        runs.into_iter()
            .map(|r| r.join().expect("import thread"))
            .collect()
    });
    let mut statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    statuses.sort();
    assert_eq!(statuses, vec![201, 409], "{results:?}");
    let done = results
        .iter()
        .find(|(s, _)| *s == 201)
        .map(|(_, v)| v.clone())
        .expect("201");
    let refused = results
        .iter()
        .find(|(s, _)| *s == 409)
        .map(|(_, v)| v.clone())
        .expect("409");
    assert!(
        refused["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/transfer-already-imported")),
        "{refused}"
    );
    assert_eq!(done["service_name"], "Region Uppsala");
    assert_eq!(done["sending_service_id"], "eportfolio-uppsala");
    assert_eq!(done["counts"]["activities"], 1);
    assert_eq!(done["counts"]["assessments"], 1);
    assert_eq!(done["counts"]["attachments"], 1);
    assert_eq!(done["counts"]["course_confirmations"], 1);
    assert_eq!(done["counts"]["supervisor_assignments"], 2, "{done}");
    assert_eq!(done["unmapped_delmal"], json!([]), "{done}");
    // And later again: refused.
    let (status, _) = import(&b, &bundle);
    assert_eq!(status, 409);
    let enrolment = done["enrolment_id"]
        .as_str()
        .expect("enrolment")
        .to_string();

    // The trainee on B sees the activity, read-only, with where it came from.
    let acts = b
        .app
        .get(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&b.trainee.access),
        )
        .expect(200);
    let act = &acts.body["items"][0];
    assert_eq!(act["title"], a.activity_title.as_str());
    assert_eq!(act["delmal"], json!(["BT16"]));
    assert_eq!(act["source"]["kind"], "transfer", "{act}");
    assert_eq!(act["source"]["transfer"]["service_name"], "Region Uppsala");
    assert_eq!(act["source"]["transfer"]["signed_role"], "trainee");
    let act_id = act["id"].as_str().expect("id");
    b.app
        .patch(
            &format!("/activities/{act_id}"),
            Some(&b.trainee.access),
            json!({"title": "Ändrad"}),
            &[],
        )
        .expect_problem(409, "transferred-read-only");
    b.app
        .delete(&format!("/activities/{act_id}"), Some(&b.trainee.access))
        .expect_problem(409, "transferred-read-only");
    course_confirmed_there_stays_confirmed_here(&b, act_id, course);
    // The attachment's bytes arrived unchanged.
    let href = act["attachments"][0]["href"].as_str().expect("href");
    let file = b
        .app
        .get(href.trim_start_matches("/api/v1"), Some(&b.trainee.access))
        .expect(200);
    assert_eq!(file.bytes, PDF);
    // The signed assessment is signed here too, and cannot be corrected here.
    let asm = b
        .app
        .get(
            &format!("/enrolments/{enrolment}/assessments"),
            Some(&b.trainee.access),
        )
        .expect(200);
    let asm = &asm.body["items"][0];
    assert_eq!(asm["status"], "signed");
    assert_eq!(asm["signature"]["method"], "transfer");
    b.app
        .post(
            &format!(
                "/assessments/{}/corrections",
                asm["id"].as_str().expect("id")
            ),
            Some(&b.trainee.access),
            json!({"trainee_reflection": "Ändrad"}),
        )
        .expect_problem(409, "transferred-read-only");

    // Progress names each imported record with its provenance, and counts the evidence.
    let progress = b
        .app
        .get(
            &format!("/enrolments/{enrolment}/progress?items=true"),
            Some(&b.trainee.access),
        )
        .expect(200);
    let transferred = progress.body["transferred"]
        .as_array()
        .expect("transferred");
    let signed = transferred
        .iter()
        .find(|r| r["record_type"] == "assessment")
        .expect("the assessment");
    assert_eq!(signed["provenance"]["signed_role"], "assessor");
    assert!(
        signed["provenance"]["signed_by"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{signed}"
    );
    assert!(signed["provenance"]["signed_at"].is_string());
    assert!(transferred
        .iter()
        .any(|r| r["record_type"] == "placement" && r["kept_as"] == "record"));
    // Who supervised on A, with their periods: facts, not accounts here.
    let supervisor_name = content["people"]
        .as_array()
        .expect("people")
        .iter()
        .find(|p| p["id"] == a.supervisor.id.as_str())
        .map(|p| p["name"].clone())
        .expect("the supervisor");
    let supervised: Vec<&Value> = transferred
        .iter()
        .filter(|r| r["record_type"] == "supervisor_assignment")
        .collect();
    let mut roles: Vec<(String, String)> = supervised
        .iter()
        .map(|r| {
            assert_eq!(r["kept_as"], "evidence", "{r}");
            assert_eq!(r["provenance"]["signed_by"], supervisor_name, "{r}");
            assert_eq!(r["provenance"]["service_name"], "Region Uppsala");
            assert_eq!(r["date"], "2026-03-01", "{r}");
            (
                r["provenance"]["signed_role"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                r["title"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            ("main_supervisor".to_string(), "main_supervisor".to_string()),
            (
                "placement_supervisor".to_string(),
                "placement_supervisor akut".to_string()
            ),
        ]
    );
    let akut_supervisor = supervised
        .iter()
        .find(|r| r["provenance"]["signed_role"] == "placement_supervisor")
        .expect("akut");
    assert_eq!(akut_supervisor["content"]["served_until"], "2026-08-31");
    assert!(akut_supervisor["content"]["placement_id_here"].is_string());
    // No account or assignment was made for them here.
    let here = b
        .app
        .get(&format!("/enrolments/{enrolment}"), Some(&b.trainee.access))
        .expect(200);
    assert_eq!(here.body["assignments"], json!([]), "{}", here.text);
    let bt1 = progress.body["delmal"]
        .as_array()
        .expect("delmal")
        .iter()
        .find(|d| d["code"] == "BT1")
        .expect("BT1")
        .clone();
    assert!(
        bt1.to_string().contains(asm["id"].as_str().expect("id")),
        "{bt1}"
    );

    time_served_there_counts_here(&a, &b, &enrolment, &progress.body);
    certificates_say_where_imported_records_come_from(&b, &enrolment);

    // The dossier on B shows them and still verifies.
    let dossier = b
        .app
        .get(
            &format!("/enrolments/{enrolment}/dossier"),
            Some(&b.trainee.access),
        )
        .expect(200);
    assert_eq!(
        dossier.body["dossier"]["progress"]["transferred"]
            .as_array()
            .map(Vec::len),
        Some(transferred.len())
    );
    let verdict = b
        .app
        .send_raw(
            "POST",
            "/dossier-verifications",
            None,
            "application/json",
            dossier.text.as_bytes(),
        )
        .expect(200);
    assert_eq!(verdict.body["authentic"], true, "{}", verdict.text);
    // The dossier names the kursledare and where they confirmed, in JSON and PDF.
    let courses = &dossier.body["dossier"]["course_confirmations"];
    assert_eq!(courses[0]["kursledare_name"], "Kåre Örnberg", "{courses}");
    assert_eq!(courses[0]["kursledare_email"], KURSLEDARE);
    assert_eq!(courses[0]["content_hash"], course["content_hash"]);
    assert_eq!(
        courses[0]["transferred"]["service_name"], "Region Uppsala",
        "{courses}"
    );
    assert_eq!(courses[0]["transferred"]["signed_role"], "kursledare");
    let pdf = b
        .app
        .send(
            "GET",
            &format!("/enrolments/{enrolment}/dossier"),
            Some(&b.trainee.access),
            None,
            &[("Accept", "application/pdf")],
        )
        .expect(200);
    let text = crate::support::pdf::text(&pdf.bytes);
    // Words as printed, whatever line a table cell wraps them onto.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "Kurser intygade av kursledare",
        "Kåre Örnberg",
        "Traumakurser Uppsala AB",
        "i tjänsten Region Uppsala",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }

    // Trust withdrawn: the next bundle is refused, what was imported stays.
    b.app
        .delete(
            &format!("/trusted-services/{trusted}"),
            Some(&b.admin.access),
        )
        .expect(204);
    let again = export(&a, &a.trainee);
    let (status, _) = import(&b, &again);
    assert_eq!(status, 403);
    b.app
        .get(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&b.trainee.access),
        )
        .expect(200);
}

/// The course the kursledare confirmed on A is confirmed on B too: the kursledare as
/// vetted there, the digest of what they confirmed, read-only, with its provenance (who
/// vetted them there is named in it; they are no account here).
fn course_confirmed_there_stays_confirmed_here(b: &Receiver, course: &str, sent: &Value) {
    let here = b
        .app
        .get(
            &format!("/activities/{course}/course-confirmation"),
            Some(&b.trainee.access),
        )
        .expect(200)
        .body;
    assert_eq!(here["status"], "confirmed", "{here}");
    assert_eq!(here["role"], "kursledare");
    assert_eq!(here["kursledare_name"], "Kåre Örnberg");
    assert_eq!(here["kursledare_workplace"], "Traumakurser Uppsala AB");
    assert_eq!(here["content_hash"], sent["content_hash"]);
    assert_eq!(here["confirmed_at"], sent["confirmed_at"]);
    assert_eq!(here["vetted_by"], Value::Null);
    // A confirmation never changes, here neither.
    b.app
        .post(
            &format!("/activities/{course}/course-confirmation"),
            Some(&b.trainee.access),
            json!({"kursledare_email": "annan@kursgivare.se", "kursledare_name": "Annan",
                   "kursledare_workplace": "Någon annanstans"}),
        )
        .expect(409);
    let progress = b
        .app
        .get(
            &format!(
                "/enrolments/{}/progress",
                here["enrolment_id"].as_str().expect("id")
            ),
            Some(&b.trainee.access),
        )
        .expect(200);
    let given = progress.body["transferred"]
        .as_array()
        .expect("transferred")
        .iter()
        .find(|r| r["record_type"] == "course_confirmation")
        .cloned()
        .expect("the confirmation's provenance");
    assert_eq!(given["provenance"]["signed_by"], "Kåre Örnberg");
    assert_eq!(given["provenance"]["signed_role"], "kursledare");
    assert_eq!(given["provenance"]["service_name"], "Region Uppsala");
    assert_eq!(given["content"]["vetted_by"], sent["vetted_by"]);
    assert!(
        given["content"]["vetted_by_name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{given}"
    );
}

/// After a positive final assessment on B, the service certificate lists the placements
/// served on A with where they come from, in JSON and in the PDF.
fn certificates_say_where_imported_records_come_from(b: &Receiver, enrolment: &str) {
    let app = &b.app;
    let main = app.join(&b.director, "hhl@sll.se", "supervisor", &b.slso);
    let assessor = app.join(&b.director, "extern@uu.se", "external_assessor", &b.slso);
    for (who, role) in [(&main, "main_supervisor"), (&assessor, "external_assessor")] {
        app.post(
            &format!("/enrolments/{enrolment}/assignments"),
            Some(&b.director.access),
            json!({"user_id": who.id, "role": role}),
        )
        .expect(201);
    }
    // The main supervisor here signs a Mini-CEX on BT1, a delmål A's assessor signed
    // too: their delmål certificate lists A's assessment with where it was signed.
    let mini_cex = app
        .post(
            &format!("/enrolments/{enrolment}/assessments"),
            Some(&b.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-11-24", "assessor_id": main.id,
                   "context": {"setting (outpatient, inpatient, emergency)": "outpatient"},
                   "delmal": ["BT1"], "trainee_reflection": "Uppföljning av anamnesen."}),
        )
        .expect(201);
    app.post(
        &format!(
            "/assessments/{}/sign",
            mini_cex.body["id"].as_str().expect("id")
        ),
        Some(&main.access),
        json!({"ratings": {"communication": 8}, "entrustment": 4,
               "feedback_strengths": "Tydlig.", "feedback_next_steps": "Fortsätt."}),
    )
    .expect(200);
    let check_in = app
        .post(
            &format!("/enrolments/{enrolment}/final-check-ins"),
            Some(&b.trainee.access),
            json!({"held_on": "2026-11-20", "notes": "Alla delmål genomgångna."}),
        )
        .expect(201);
    app.post(
        &format!(
            "/final-check-ins/{}/confirm",
            check_in.body["id"].as_str().expect("id")
        ),
        Some(&main.access),
        json!({}),
    )
    .expect(200);
    let judgements: Vec<Value> = (1..=18)
        .map(|n| json!({"code": format!("BT{n}"), "judgement": "achieved"}))
        .collect();
    let fa = app
        .post(
            &format!("/enrolments/{enrolment}/final-assessments"),
            Some(&assessor.access),
            json!({"mode": "external_assessor", "judgements": judgements, "decision": "achieved"}),
        )
        .expect(201);
    let fa = fa.body["id"].as_str().expect("id").to_string();
    for who in [&assessor, &main] {
        app.post(
            &format!("/final-assessments/{fa}/sign"),
            Some(&who.access),
            json!({}),
        )
        .expect(200);
    }
    let drafts = app
        .get(
            &format!("/final-assessments/{fa}/certificates"),
            Some(&b.trainee.access),
        )
        .expect(200);
    let service = drafts.body["items"]
        .as_array()
        .expect("drafts")
        .iter()
        .find(|d| d["key"] == "fullgjord-bt")
        .expect("fullgjord-bt")
        .clone();
    let lines = service["transferred"].as_array().expect("transferred");
    let akut = lines
        .iter()
        .find(|l| l["record_type"] == "placement" && l["title"] == "akut")
        .expect("the akut placement");
    assert_eq!(akut["provenance"]["service_name"], "Region Uppsala");
    assert!(
        akut["text"]
            .as_str()
            .is_some_and(|t| t.contains("Region Uppsala")),
        "{akut}"
    );
    // The leave and the credited service it lists came from A too.
    for kind in ["leave_period", "credited_service"] {
        assert!(
            lines.iter().any(|l| l["record_type"] == kind),
            "{kind}: {service}"
        );
    }
    let rows = service["tables"][0]["rows"].to_string();
    assert!(rows.contains("överförd från Region Uppsala"), "{rows}");
    // A certificate that lists nothing imported says nothing about it.
    let competence = drafts.body["items"]
        .as_array()
        .expect("drafts")
        .iter()
        .find(|d| d["key"] == "baskompetens")
        .expect("baskompetens")
        .clone();
    assert_eq!(competence["transferred"], json!([]));
    delmal_certificate_lists_what_was_signed_there(app, &fa, &main, &drafts.body);
    let pdf = app
        .send(
            "GET",
            &format!("/final-assessments/{fa}/certificates/fullgjord-bt"),
            Some(&b.trainee.access),
            None,
            &[("Accept", "application/pdf")],
        )
        .expect(200);
    let text = crate::support::pdf::text(&pdf.bytes);
    assert!(text.contains("Överförda poster"), "{text}");
    assert!(
        text.contains("överförd från tjänsten Region Uppsala"),
        "{text}"
    );
}

/// The main supervisor's delmål certificate (bilaga 2) keeps its own rows (what they
/// checked here) and lists A's signed assessment of the same delmål with its
/// provenance, as the course certificate does; the activity the trainee logged on A is
/// no one's signature and is not listed. JSON and PDF.
fn delmal_certificate_lists_what_was_signed_there(
    app: &TestApp,
    fa: &str,
    main: &TestUser,
    drafts: &Value,
) {
    let key = format!("delmal-{}", main.id);
    let cert = drafts["items"]
        .as_array()
        .expect("drafts")
        .iter()
        .find(|d| d["key"] == key.as_str())
        .unwrap_or_else(|| panic!("no {key}: {drafts}"))
        .clone();
    let rows = cert["tables"][0]["rows"].to_string();
    assert!(rows.contains("BT1 ") && !rows.contains("BT16 "), "{rows}");
    let lines = cert["transferred"].as_array().expect("transferred");
    assert_eq!(lines.len(), 1, "{cert}");
    let line = &lines[0];
    assert_eq!(line["record_type"], "assessment", "{line}");
    assert_eq!(line["title"], "mini_cex");
    assert_eq!(line["date"], "2026-04-14");
    assert_eq!(line["provenance"]["service_name"], "Region Uppsala");
    assert_eq!(line["provenance"]["signed_role"], "assessor");
    let text = line["text"].as_str().expect("text");
    assert!(
        text.starts_with("signerad i tjänsten Region Uppsala av ")
            && text.contains("(assessor) den "),
        "{text}"
    );
    let pdf = app
        .send(
            "GET",
            &format!("/final-assessments/{fa}/certificates/{key}"),
            Some(&main.access),
            None,
            &[("Accept", "application/pdf")],
        )
        .expect(200);
    let pdf = crate::support::pdf::text(&pdf.bytes);
    let pdf = pdf.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in ["Överförda poster", "signerad i tjänsten Region Uppsala av"] {
        assert!(pdf.contains(needle), "{needle} missing:\n{pdf}");
    }
}

/// The months served on A count on B: the placements, leave, extent and credited
/// service arrived as the enrolment's own plan, read-only, cut at the day of the export.
fn time_served_there_counts_here(a: &Sender, b: &Receiver, enrolment: &str, progress: &Value) {
    // A runs on the real clock, B on the test clock: compare on one day.
    let as_of = "2026-11-20";
    let there = a
        .app
        .get(
            &format!("/enrolments/{}/time-served?as_of={as_of}", a.enrolment),
            Some(&a.trainee.access),
        )
        .expect(200)
        .body;
    let here = b
        .app
        .get(
            &format!("/enrolments/{enrolment}/time-served?as_of={as_of}"),
            Some(&b.trainee.access),
        )
        .expect(200)
        .body;
    for field in [
        "calendar_days",
        "leave_days",
        "served_days",
        "served_months",
        "credited_days",
        "total_months",
    ] {
        assert_eq!(here[field], there[field], "{field}: {here} / {there}");
    }
    // Past half-way through BT: over seven months served (part time from July), two
    // credited.
    assert!(
        here["served_months"].as_f64().is_some_and(|m| m > 7.0),
        "{here}"
    );
    assert_eq!(here["credited_days"], 60);
    assert!(
        progress.to_string().contains("\"served_months\""),
        "{progress}"
    );

    let got = b
        .app
        .get(
            &format!("/enrolments/{enrolment}"),
            Some(&b.director.access),
        )
        .expect(200);
    let etag = got.header("etag").expect("etag").to_string();
    let e = got.body;
    let placements = e["placements"].as_array().expect("placements");
    // The placement that had not begun at the export is not taken; the one running then
    // ends on the day of the export.
    let types: Vec<&str> = placements
        .iter()
        .filter_map(|p| p["placement_type"].as_str())
        .collect();
    assert_eq!(types, ["akut", "allmanmedicin"], "{e}");
    assert!(
        placements[1]["end_date"]
            .as_str()
            .is_some_and(|d| d < "2026-12-31" && d >= as_of),
        "{e}"
    );
    assert_eq!(e["leave_periods"][0]["percent"], 50);
    assert_eq!(e["extent_periods"].as_array().map(Vec::len), Some(2), "{e}");
    assert_eq!(e["credited_service"][0]["delmal"], json!(["BT1"]));

    // Read-only: the plan served there is not changed here.
    let akut = placements[0]["id"].as_str().expect("id");
    b.app
        .patch(
            &format!("/placements/{akut}"),
            Some(&b.director.access),
            json!({"end_date": "2026-07-31"}),
            &[],
        )
        .expect_problem(409, "transferred-read-only");
    b.app
        .delete(&format!("/placements/{akut}"), Some(&b.director.access))
        .expect_problem(409, "transferred-read-only");
    let leave = e["leave_periods"][0]["id"].as_str().expect("id");
    b.app
        .delete(&format!("/leave-periods/{leave}"), Some(&b.director.access))
        .expect_problem(409, "transferred-read-only");
    b.app
        .post(
            &format!("/enrolments/{enrolment}/extent-changes"),
            Some(&b.director.access),
            json!({"valid_from": "2026-08-01", "extent_percent": 100}),
        )
        .expect_problem(409, "transferred-read-only");
    b.app
        .patch(
            &format!("/enrolments/{enrolment}"),
            Some(&b.director.access),
            json!({"extent_percent": 50}),
            &[("If-Match", &etag)],
        )
        .expect_problem(409, "transferred-read-only");
    // What follows is B's to plan: back to full time from the new year.
    b.app
        .post(
            &format!("/enrolments/{enrolment}/extent-changes"),
            Some(&b.director.access),
            json!({"valid_from": "2027-01-01", "extent_percent": 100}),
        )
        .expect(201);
}

/// The template's own links to delmål, taken out (they name BT codes).
fn without_delmal(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "delmal" {
                    *x = json!([]);
                } else {
                    without_delmal(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(without_delmal),
        _ => {}
    }
}

#[test]
fn delmal_the_receiving_template_lacks_are_named_and_kept_as_unmapped_evidence() {
    let a = sender();
    let b = receiver();
    trust(&b, &a);
    // B's director chooses a template of another regulation (ST 2021), which has none
    // of BT's delmål codes.
    let st = b.app.regulation_id(&b.director, "st-2021");
    let mut body = crate::support::stockholm_bt(&b.slso, &st);
    without_delmal(&mut body);
    let template = b
        .app
        .post("/programme-templates", Some(&b.director.access), body)
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    let bundle = export(&a, &a.trainee);
    let (status, done) = call(
        &b.app.base,
        "POST",
        "/transfers",
        Some(&b.director.access),
        Some(&json!({"bundle": bundle, "trainee_email": b.trainee.email,
                     "template_id": template})),
    );
    assert_eq!(status, 201, "{done}");
    // The answer names each code with the record it was on: the activity's BT16, the
    // assessment's BT1 and the credited service's BT1.
    let mut named: Vec<(String, String)> = done["unmapped_delmal"]
        .as_array()
        .expect("unmapped")
        .iter()
        .map(|u| {
            (
                u["record_type"].as_str().unwrap_or("").to_string(),
                u["code"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            ("activity".to_string(), "BT16".to_string()),
            ("assessment".to_string(), "BT1".to_string()),
            ("credited_service".to_string(), "BT1".to_string()),
        ],
        "{done}"
    );
    let enrolment = done["enrolment_id"].as_str().expect("id").to_string();
    // Not dropped: the records are there, not linked to a delmål the template lacks,
    // with the codes in their provenance.
    let acts = b
        .app
        .get(
            &format!("/enrolments/{enrolment}/activities"),
            Some(&b.trainee.access),
        )
        .expect(200);
    let act = &acts.body["items"][0];
    assert_eq!(act["delmal"], json!([]), "{act}");
    assert_eq!(
        act["source"]["transfer"]["unmapped_delmal"],
        json!(["BT16"])
    );
    let progress = b
        .app
        .get(
            &format!("/enrolments/{enrolment}/progress"),
            Some(&b.trainee.access),
        )
        .expect(200);
    let unmapped: Vec<String> = progress.body["transferred"]
        .as_array()
        .expect("transferred")
        .iter()
        .flat_map(|r| {
            r["provenance"]["unmapped_delmal"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    assert_eq!(unmapped.len(), 3, "{unmapped:?}");
    // The dossier shows them too (its progress), and still verifies.
    let dossier = b
        .app
        .get(
            &format!("/enrolments/{enrolment}/dossier"),
            Some(&b.trainee.access),
        )
        .expect(200);
    let listed = &dossier.body["dossier"]["progress"]["transferred"];
    let in_dossier = listed
        .as_array()
        .expect("transferred")
        .iter()
        .filter(|r| r["provenance"]["unmapped_delmal"] != json!([]))
        .count();
    assert_eq!(in_dossier, 3, "{listed}");
    let verdict = b
        .app
        .send_raw(
            "POST",
            "/dossier-verifications",
            None,
            "application/json",
            dossier.text.as_bytes(),
        )
        .expect(200);
    assert_eq!(verdict.body["authentic"], true, "{}", verdict.text);
}

#[test]
fn who_may_export_import_and_keep_trusted_services() {
    let a = sender();
    let b = receiver();
    let export_path = format!("/enrolments/{}/transfer-export", a.enrolment);
    // Export on A: the trainee (above) and a director of studies of the region; the
    // supervisor who may read it is refused, a stranger does not learn it exists.
    // (Through the in-process server on the same database, whose requests the route
    // coverage sees.)
    let by_director = a
        .app
        .post(&export_path, Some(&a.director.access), json!({}))
        .expect(200)
        .body;
    assert_eq!(
        by_director["bundle"]["exported_by"]["role"],
        "director_of_studies"
    );
    a.app
        .post(&export_path, Some(&a.supervisor.access), json!({}))
        .expect_problem(403, "forbidden");
    a.app
        .post(&export_path, Some(&a.other_trainee.access), json!({}))
        .expect_problem(404, "not-found");
    a.app.post(&export_path, None, json!({})).expect(401);

    // Trusted services on B: administrators only.
    b.app
        .get("/trusted-services", Some(&b.director.access))
        .expect_problem(403, "forbidden");
    b.app
        .post(
            "/trusted-services",
            Some(&b.director.access),
            json!({"organisation_id": b.region, "name": "X", "base_url": "https://x.example",
                   "public_keys": ["AAAA"]}),
        )
        .expect_problem(403, "forbidden");
    b.app
        .post(
            "/trusted-services",
            Some(&b.admin.access),
            json!({"organisation_id": b.region, "name": "X", "base_url": "https://x.example",
                   "public_keys": ["not a key"]}),
        )
        .expect_problem(422, "validation");
    let trusted = trust(&b, &a);
    let list = b
        .app
        .get("/trusted-services", Some(&b.admin.access))
        .expect(200);
    assert_eq!(list.body["items"][0]["id"], trusted.as_str());
    b.app
        .delete(
            &format!("/trusted-services/{trusted}"),
            Some(&b.director.access),
        )
        .expect_problem(404, "not-found");

    // Import on B: a director of studies; not the trainee, not the administrator.
    let body = json!({"bundle": by_director, "trainee_email": b.trainee.email});
    b.app
        .post("/transfers", Some(&b.trainee.access), body.clone())
        .expect_problem(403, "forbidden");
    b.app
        .post("/transfers", Some(&b.admin.access), body.clone())
        .expect_problem(403, "forbidden");
    // A template that is not of the director's region, a trainee with no account here.
    let mut other = body.clone();
    other["template_id"] = json!("no-such-template");
    b.app
        .post("/transfers", Some(&b.director.access), other)
        .expect_problem(422, "validation");
    let mut other = body.clone();
    other["trainee_email"] = json!("nobody@example.se");
    b.app
        .post("/transfers", Some(&b.director.access), other)
        .expect_problem(422, "validation");
    b.app
        .post("/transfers", Some(&b.director.access), body)
        .expect(201);
}

#[test]
fn a_bundle_larger_than_the_limit_is_refused_before_it_is_read() {
    let app = TestApp::start_with(|c| c.transfer_max_bytes = 1024);
    let (admin, region) = app.admin();
    let director = app.join(
        &admin,
        "studierektor@sll.se",
        "director_of_studies",
        &region,
    );
    let big = json!({"bundle": {"padding": "x".repeat(4096)}, "trainee_email": "a@b.se"});
    app.post("/transfers", Some(&director.access), big)
        .expect_problem(413, "payload-too-large");
}

/// Talks under a key the format does not hold are refused (422 `validation`, naming
/// the key), never imported as supervision sessions: the supervisors' check-in (a kind
/// this build knows but never exports: the trainee does not see it) and a kind it does
/// not know at all. The bundle is signed by a service B trusts, so only its content
/// decides.
#[test]
fn talks_of_a_kind_the_bundle_format_does_not_hold_are_refused_not_guessed() {
    let a = sender();
    let b = receiver();
    let content = export(&a, &a.trainee)["bundle"].clone();
    // B trusts a service whose key this test holds, so it can sign what it likes.
    let key = ed25519_dalek::SigningKey::from_bytes(&[13; 32]);
    let public = key.verifying_key().to_bytes();
    b.app
        .post(
            "/trusted-services",
            Some(&b.admin.access),
            json!({"organisation_id": b.region, "name": "Region Uppsala", "base_url": a.base,
                   "public_keys": [eportfolio::dossier::signing::pem(&public)]}),
        )
        .expect(201);
    let key_id = eportfolio::ids::SigningKeyId::new(eportfolio::dossier::signing::key_id(&public));
    let signed = |content: &Value| {
        let signature = eportfolio::dossier::signing::sign_dossier(&key_id, &key, content);
        json!({"bundle": content, "signature": signature})
    };
    let talk = json!({"id": "7d0c5a3e-52b1-4c2e-9a57-1f0e6c1b2d3a", "held_on": "2026-04-01",
                      "participants": [], "topics": ["Handledning"], "delmal": []});
    for kind in ["supervisor_check_in", "peer_review"] {
        let mut odd = content.clone();
        odd["talks"][kind] = json!([talk]);
        let bundle = signed(&odd);
        // Twice: the refused import left nothing behind (a second try is not "already
        // imported").
        for _ in 0..2 {
            let refused = b
                .app
                .post(
                    "/transfers",
                    Some(&b.director.access),
                    json!({"bundle": bundle, "trainee_email": b.trainee.email}),
                )
                .expect_problem(422, "validation");
            assert_eq!(
                refused.body["errors"][0]["field"],
                format!("bundle.talks.{kind}"),
                "{}",
                refused.text
            );
        }
    }
    // The same content without the odd kind, signed by the same key, is imported.
    b.app
        .post(
            "/transfers",
            Some(&b.director.access),
            json!({"bundle": signed(&content), "trainee_email": b.trainee.email}),
        )
        .expect(201);
}
