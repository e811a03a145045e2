//! Issue 15: personnummer and samordningsnummer, protected identity (skyddad
//! personuppgift) and HSA-id, over HTTP.
//!
//! Numbers are test-style: Skatteverket's published test number 19121212-1212 and
//! numbers whose Luhn check digit the unit tests compute (src/accounts/
//! personal_number_tests.rs); none is a real person's.

use diesel::prelude::*;
use serde_json::{json, Value};

use eportfolio::schema::{audit_log, personal_identities};

use crate::support::{log, Resp, TestApp, TestUser};

const TOLVAN: &str = "19121212-1212";
/// 1990-01-01, birth number 238, check digit 5.
const OTHER: &str = "19900101-2385";
/// A samordningsnummer: 1990-01-01 + 60.
const COORDINATION: &str = "19900161-2382";
const HSA: &str = "SE2321000016-15R7";

fn conn(app: &TestApp) -> eportfolio::db::PooledConn {
    eportfolio::db::connect(&app.config.database_url, 1)
        .expect("pool")
        .get()
        .expect("conn")
}

fn id_of(r: &Resp) -> String {
    r.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", r.text))
        .to_string()
}

/// Region Stockholm: care provider A with its director of studies, a trainee T (main
/// supervisor S), another trainee U, and care provider B with its own director.
struct World {
    app: TestApp,
    admin: TestUser,
    director_a: TestUser,
    director_b: TestUser,
    trainee: TestUser,
    other_trainee: TestUser,
    main: TestUser,
    assessor: TestUser,
    enrolment: String,
}

impl World {
    fn start() -> World {
        let app = TestApp::start();
        let (admin, region) = app.admin();
        let a = app.create_org(&admin, "care_provider", "Danderyds sjukhus", Some(&region));
        let b = app.create_org(&admin, "care_provider", "Karolinska", Some(&region));
        let director_a = app.join(
            &admin,
            "studierektor@danderyd.example",
            "director_of_studies",
            &a,
        );
        let director_b = app.join(
            &admin,
            "studierektor@karolinska.example",
            "director_of_studies",
            &b,
        );
        let template = app.stockholm_bt_template(&director_a, &a);
        let trainee = app.join(&director_a, "bt.lakare@danderyd.example", "trainee", &a);
        let other_trainee = app.join(&director_a, "annan.bt@danderyd.example", "trainee", &a);
        let main = app.join(&director_a, "hhl@danderyd.example", "supervisor", &a);
        let assessor = app.join(
            &director_a,
            "extern.bedomare@danderyd.example",
            "external_assessor",
            &a,
        );
        let r = app
            .post(
                "/enrolments",
                Some(&director_a.access),
                json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                       "start_date": "2025-12-01", "planned_end": "2026-11-30",
                       "main_supervisor_id": main.id}),
            )
            .expect(201);
        let enrolment = id_of(&r);
        app.post(
            &format!("/enrolments/{enrolment}/assignments"),
            Some(&director_a.access),
            json!({"user_id": assessor.id, "role": "external_assessor"}),
        )
        .expect(201);
        World {
            app,
            admin,
            director_a,
            director_b,
            trainee,
            other_trainee,
            main,
            assessor,
            enrolment,
        }
    }

    fn path(user: &TestUser) -> String {
        format!("/users/{}/personal-identity", user.id)
    }

    fn set(&self, by: &TestUser, of: &TestUser, body: Value) -> Resp {
        self.app.patch(&Self::path(of), Some(&by.access), body, &[])
    }

    fn read(&self, by: &TestUser, of: &TestUser) -> Resp {
        self.app.get(&Self::path(of), Some(&by.access))
    }

    /// A final assessment decided as achieved (every delmål judged achieved, the final
    /// check-in confirmed, signed by the assessor and the main supervisor).
    fn decided_final_assessment(&self) -> String {
        let achieved: Vec<Value> = (1..=18)
            .map(|n| json!({"code": format!("BT{n}"), "judgement": "achieved"}))
            .collect();
        let fa = id_of(
            &self
                .app
                .post(
                    &format!("/enrolments/{}/final-assessments", self.enrolment),
                    Some(&self.assessor.access),
                    json!({"mode": "external_assessor", "judgements": achieved, "decision": "achieved"}),
                )
                .expect(201),
        );
        let check_in = id_of(
            &self
                .app
                .post(
                    &format!("/enrolments/{}/final-check-ins", self.enrolment),
                    Some(&self.trainee.access),
                    json!({"held_on": "2026-11-20", "notes": "Alla delmål genomgångna.",
                           "agreed_actions": "Portföljen till extern bedömare."}),
                )
                .expect(201),
        );
        self.app
            .post(
                &format!("/final-check-ins/{check_in}/confirm"),
                Some(&self.main.access),
                json!({}),
            )
            .expect(200);
        let sign = format!("/final-assessments/{fa}/sign");
        self.app
            .post(&sign, Some(&self.assessor.access), json!({}))
            .expect(200);
        self.app
            .post(&sign, Some(&self.main.access), json!({}))
            .expect(200);
        fa
    }
}

/// The one field error of a 422 problem: (field, message).
#[track_caller]
fn field_error(r: Resp) -> (String, String) {
    let r = r.expect_problem(422, "validation");
    let errors = r.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{}", r.text);
    (
        errors[0]["field"].as_str().expect("field").to_string(),
        errors[0]["message"].as_str().expect("message").to_string(),
    )
}

#[test]
fn a_trainee_records_their_number_in_any_written_form_and_reads_it_normalised() {
    let w = World::start();
    // Nothing recorded yet: version 0, no number field at all.
    let empty = w.read(&w.trainee, &w.trainee).expect(200);
    assert_eq!(empty.body["version"], 0, "{}", empty.text);
    assert!(empty.body.get("personal_identity_number").is_none());
    assert_eq!(empty.body["protected_identity"], false);
    assert_eq!(empty.header("cache-control"), Some("no-store"));

    // The ten-digit form with `+`: the person is 100 or older (the clock says 2026).
    let r = w
        .set(
            &w.trainee,
            &w.trainee,
            json!({"personal_identity_number": "121212+1212"}),
        )
        .expect(200);
    assert_eq!(r.body["personal_identity_number"], TOLVAN, "{}", r.text);
    assert_eq!(r.body["number_kind"], "personnummer");
    assert_eq!(r.body["version"], 1);
    let etag = r.header("etag").expect("etag").to_string();

    // A stale If-Match is refused; the current one is taken.
    w.app
        .patch(
            &World::path(&w.trainee),
            Some(&w.trainee.access),
            json!({"personal_identity_number": "900161-2382"}),
            &[("If-Match", "\"0-0\"")],
        )
        .expect_problem(412, "precondition-failed");
    let r = w
        .app
        .patch(
            &World::path(&w.trainee),
            Some(&w.trainee.access),
            json!({"personal_identity_number": "900161-2382"}),
            &[("If-Match", &etag)],
        )
        .expect(200);
    assert_eq!(r.body["personal_identity_number"], COORDINATION);
    assert_eq!(r.body["number_kind"], "samordningsnummer");

    // The twelve-digit forms, with and without the hyphen, and `null` removes it.
    for written in ["199001012385", OTHER] {
        let r = w
            .set(
                &w.trainee,
                &w.trainee,
                json!({"personal_identity_number": written}),
            )
            .expect(200);
        assert_eq!(r.body["personal_identity_number"], OTHER, "{written}");
    }
    let r = w
        .set(
            &w.trainee,
            &w.trainee,
            json!({"personal_identity_number": null}),
        )
        .expect(200);
    assert!(
        r.body.get("personal_identity_number").is_none(),
        "{}",
        r.text
    );
    let read = w.read(&w.trainee, &w.trainee).expect(200);
    assert_eq!(read.body, r.body);

    // An unknown field is a 400, not silently ignored.
    w.set(&w.trainee, &w.trainee, json!({"personnummer": TOLVAN}))
        .expect(400);
}

#[test]
fn every_way_a_number_can_be_wrong_is_its_own_422_naming_the_field() {
    let w = World::start();
    let field = "personal_identity_number";
    let mut messages = Vec::new();
    for wrong in [
        "1912-12-12-1212", // form
        "19900230-2385",   // 30 February
        "20261201-1235",   // born after today (the clock says 2026-11-24)
        "19121212-1213",   // check digit
    ] {
        let (f, message) = field_error(w.set(
            &w.trainee,
            &w.trainee,
            json!({"personal_identity_number": wrong}),
        ));
        assert_eq!(f, field, "{wrong}");
        assert!(
            !message.contains(wrong),
            "the value is not echoed: {message}"
        );
        messages.push(message);
    }
    assert!(messages[0].contains("YYYYMMDD-NNNN"), "{}", messages[0]);
    assert!(messages[1].contains("date of birth"), "{}", messages[1]);
    assert_eq!(messages[1], messages[2]);
    assert!(messages[3].contains("check digit"), "{}", messages[3]);

    // Another person in the region has it already.
    w.set(
        &w.trainee,
        &w.trainee,
        json!({"personal_identity_number": TOLVAN}),
    )
    .expect(200);
    let (f, message) = field_error(w.set(
        &w.other_trainee,
        &w.other_trainee,
        json!({"personal_identity_number": "121212+1212"}),
    ));
    assert_eq!(f, field);
    assert!(
        message.contains("another person in this region"),
        "{message}"
    );
    // Setting one's own number again is no duplicate.
    w.set(
        &w.trainee,
        &w.trainee,
        json!({"personal_identity_number": "191212121212"}),
    )
    .expect(200);

    // A person of another region may hold the same number (another region's account of
    // the same person): uniqueness is per region.
    let email = "admin@regionskane.se";
    let invitation = w.app.bootstrap_admin(email, "Region Skåne");
    let skane = w.app.accept_with_totp(&invitation, email);
    let r = w
        .set(&skane, &skane, json!({"personal_identity_number": TOLVAN}))
        .expect(200);
    assert_eq!(r.body["personal_identity_number"], TOLVAN);

    // An HSA-id in the wrong form; both fields' problems come together.
    let r = w
        .set(
            &w.main,
            &w.main,
            json!({"personal_identity_number": "19121212-1213", "hsa_id": "SE232100-0016-ABC"}),
        )
        .expect_problem(422, "validation");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["personal_identity_number", "hsa_id"], "{}", r.text);
    // Nothing of a refused request was stored.
    assert_eq!(w.read(&w.main, &w.main).expect(200).body["version"], 0);
}

#[test]
fn supervisors_record_an_hsa_id_and_remove_it() {
    let w = World::start();
    let r = w
        .set(&w.main, &w.main, json!({"hsa_id": "se2321000016-15R7"}))
        .expect(200);
    assert_eq!(r.body["hsa_id"], HSA, "{}", r.text);
    assert!(r.body.get("personal_identity_number").is_none());
    // The director of studies sees it; a number for a supervisor is optional.
    let seen = w.read(&w.director_a, &w.main).expect(200);
    assert_eq!(seen.body["hsa_id"], HSA);
    let longest = format!("SE2321000016-{}", "A".repeat(19));
    let (f, _) = field_error(w.set(&w.main, &w.main, json!({ "hsa_id": longest })));
    assert_eq!(f, "hsa_id");
    let r = w.set(&w.main, &w.main, json!({"hsa_id": null})).expect(200);
    assert!(r.body["hsa_id"].is_null(), "{}", r.text);
}

#[test]
fn only_the_person_their_director_and_administrators_see_or_change_the_number() {
    let w = World::start();
    w.set(
        &w.trainee,
        &w.trainee,
        json!({"personal_identity_number": TOLVAN}),
    )
    .expect(200);
    for (who, user) in [
        ("the person", &w.trainee),
        ("their director of studies", &w.director_a),
        ("the region's administrator", &w.admin),
    ] {
        let r = w.read(user, &w.trainee).expect(200);
        assert_eq!(r.body["personal_identity_number"], TOLVAN, "{who}");
    }
    let email = "admin@regionskane.se";
    let invitation = w.app.bootstrap_admin(email, "Region Skåne");
    let skane = w.app.accept_with_totp(&invitation, email);
    for (who, user) in [
        ("their main supervisor", &w.main),
        ("their external assessor", &w.assessor),
        ("another trainee", &w.other_trainee),
        ("another care provider's director", &w.director_b),
        ("another region's administrator", &skane),
    ] {
        let r = w.read(user, &w.trainee).expect_problem(404, "not-found");
        assert!(!r.text.contains("1212"), "{who}: {}", r.text);
        w.set(user, &w.trainee, json!({"personal_identity_number": OTHER}))
            .expect_problem(404, "not-found");
    }
    // An unknown person is the same 404.
    w.app
        .get(
            "/users/00000000-0000-0000-0000-000000000000/personal-identity",
            Some(&w.admin.access),
        )
        .expect_problem(404, "not-found");

    // The director and the administrator may correct it.
    let r = w
        .set(
            &w.director_a,
            &w.trainee,
            json!({"personal_identity_number": OTHER}),
        )
        .expect(200);
    assert_eq!(r.body["personal_identity_number"], OTHER);
    w.set(
        &w.admin,
        &w.trainee,
        json!({"personal_identity_number": TOLVAN}),
    )
    .expect(200);
    let r = w.read(&w.trainee, &w.trainee).expect(200);
    assert_eq!(r.body["personal_identity_number"], TOLVAN);
    assert_eq!(r.body["version"], 3);

    // An API client is not a person: 403, whatever its scopes.
    let (id, secret) = crate::integrations::client(
        &w.app,
        &w.admin,
        &w.admin_region(),
        &[eportfolio::integrations::clients::SCOPE_PROGRESS_READ],
    );
    let token = crate::integrations::token(&w.app, &id, &secret);
    let r = w.app.get(&World::path(&w.trainee), Some(&token));
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(!r.text.contains("1212"), "{}", r.text);
}

impl World {
    fn admin_region(&self) -> String {
        let me = self.app.get("/me", Some(&self.admin.access)).expect(200);
        me.body["roles"][0]["organisation_id"]
            .as_str()
            .expect("region")
            .to_string()
    }
}

#[test]
fn only_administrators_and_directors_set_protected_identity() {
    let w = World::start();
    // The person themselves may not (nor say that they are not).
    for flag in [true, false] {
        w.set(&w.trainee, &w.trainee, json!({"protected_identity": flag}))
            .expect_problem(403, "forbidden");
    }
    // Neither may their supervisor or another care provider's director (who may not
    // even know the person: 404).
    for user in [&w.main, &w.director_b] {
        w.set(user, &w.trainee, json!({"protected_identity": true}))
            .expect_problem(404, "not-found");
    }
    assert_eq!(
        w.read(&w.trainee, &w.trainee).expect(200).body["protected_identity"],
        false
    );
    let r = w
        .set(
            &w.director_a,
            &w.trainee,
            json!({"protected_identity": true}),
        )
        .expect(200);
    assert_eq!(r.body["protected_identity"], true, "{}", r.text);
    // The person sees the flag and their own number; they still may not lift it.
    w.set(
        &w.trainee,
        &w.trainee,
        json!({"personal_identity_number": TOLVAN}),
    )
    .expect(200);
    w.set(&w.trainee, &w.trainee, json!({"protected_identity": false}))
        .expect_problem(403, "forbidden");
    let r = w
        .set(&w.admin, &w.trainee, json!({"protected_identity": false}))
        .expect(200);
    assert_eq!(r.body["protected_identity"], false);
    assert_eq!(r.body["personal_identity_number"], TOLVAN);
}

#[test]
fn protected_identity_keeps_the_person_out_of_csv_exports_and_off_documents() {
    let w = World::start();
    let csv = |w: &World| {
        w.app
            .send(
                "GET",
                "/cohort-overview",
                Some(&w.director_a.access),
                None,
                &[("Accept", "text/csv")],
            )
            .expect(200)
            .text
    };
    assert!(csv(&w).contains(&w.trainee.email));
    w.set(
        &w.director_a,
        &w.trainee,
        json!({"personal_identity_number": TOLVAN, "protected_identity": true}),
    )
    .expect(200);
    let export = csv(&w);
    assert!(!export.contains(&w.trainee.email), "{export}");
    assert!(!export.contains(&w.trainee.id), "{export}");
    // The director still follows the trainee in the service itself.
    let rows = w
        .app
        .get("/cohort-overview", Some(&w.director_a.access))
        .expect(200)
        .body;
    assert!(
        rows["items"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["trainee_id"] == w.trainee.id.as_str()),
        "{rows}"
    );

    // The dossier the supervisors read carries no e-mail address of the person.
    let dossier = w
        .app
        .get(
            &format!("/enrolments/{}/dossier", w.enrolment),
            Some(&w.main.access),
        )
        .expect(200);
    assert!(!dossier.text.contains(&w.trainee.email), "{}", dossier.text);
    assert!(dossier.text.contains(&w.main.email), "{}", dossier.text);

    // The certificate prints the number where the form asks for it, and no e-mail.
    let fa = w.decided_final_assessment();
    let drafts = w
        .app
        .get(
            &format!("/final-assessments/{fa}/certificates"),
            Some(&w.trainee.access),
        )
        .expect(200);
    let draft = drafts.body["items"]
        .as_array()
        .expect("drafts")
        .iter()
        .find(|d| d["key"] == "baskompetens")
        .cloned()
        .expect("baskompetens");
    let fields = draft["fields"].as_array().expect("fields");
    let value = |label: &str| {
        fields
            .iter()
            .find(|f| f["label"] == label)
            .map(|f| f["value"].clone())
    };
    assert_eq!(value("Personnummer"), Some(json!(TOLVAN)), "{draft}");
    assert_eq!(value("E-post"), None, "{draft}");
    assert!(!drafts.text.contains(&w.trainee.email));

    // Lifted again: the e-mail is back on the certificate.
    w.set(&w.admin, &w.trainee, json!({"protected_identity": false}))
        .expect(200);
    let drafts = w
        .app
        .get(
            &format!("/final-assessments/{fa}/certificates"),
            Some(&w.trainee.access),
        )
        .expect(200);
    assert!(drafts.text.contains(&w.trainee.email), "{}", drafts.text);
}

#[test]
fn a_certificate_without_a_recorded_number_leaves_the_line_to_fill_in() {
    let w = World::start();
    let fa = w.decided_final_assessment();
    let drafts = w
        .app
        .get(
            &format!("/final-assessments/{fa}/certificates"),
            Some(&w.trainee.access),
        )
        .expect(200);
    assert!(
        drafts.text.contains("fylls i vid signering"),
        "{}",
        drafts.text
    );
    assert!(drafts.text.contains(&w.trainee.email));
}

#[test]
fn the_number_is_sealed_at_rest_and_never_reaches_the_log_or_the_audit_trail() {
    log::capture();
    let w = World::start();
    w.set(
        &w.trainee,
        &w.trainee,
        json!({"personal_identity_number": "121212+1212", "hsa_id": HSA}),
    )
    .expect(200);
    // A refused one too (its problem goes to the log).
    field_error(w.set(
        &w.other_trainee,
        &w.other_trainee,
        json!({"personal_identity_number": TOLVAN}),
    ));
    field_error(w.set(
        &w.other_trainee,
        &w.other_trainee,
        json!({"personal_identity_number": "19121212-1213"}),
    ));
    w.set(&w.admin, &w.trainee, json!({"protected_identity": true}))
        .expect(200);

    let text = log::text();
    for digits in ["1212121212", "121212+1212", "19121212-121"] {
        assert!(!text.contains(digits), "the log holds {digits}");
    }

    let mut c = conn(&w.app);
    let (sealed, mac): (Option<String>, Option<String>) = personal_identities::table
        .find(&w.trainee.id)
        .select((
            personal_identities::number_sealed,
            personal_identities::number_mac,
        ))
        .first(&mut *c)
        .expect("row");
    let sealed = sealed.expect("sealed");
    assert!(sealed.starts_with("sealed:v1:"), "{sealed}");
    assert!(!sealed.contains("1212121212"));
    let mac = mac.expect("mac");
    assert_eq!(mac.len(), 64, "{mac}");
    assert!(!mac.contains("1212121212"));

    // The audit log says what changed and who changed it, never the value.
    let entries: Vec<(Option<String>, String, String)> = audit_log::table
        .filter(audit_log::entity.eq("personal_identity"))
        .order(audit_log::seq)
        .select((audit_log::actor_id, audit_log::action, audit_log::data))
        .load(&mut *c)
        .expect("audit");
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].0.as_deref(), Some(w.trainee.id.as_str()));
    let data: Value = serde_json::from_str(&entries[0].2).expect("json");
    assert_eq!(
        data,
        json!({"changed": ["personal_identity_number", "hsa_id"]})
    );
    assert_eq!(entries[1].0.as_deref(), Some(w.admin.id.as_str()));
    let data: Value = serde_json::from_str(&entries[1].2).expect("json");
    assert_eq!(data, json!({"changed": ["protected_identity"]}));
    for (_, _, data) in &entries {
        assert!(!data.contains("1212"), "{data}");
    }
}

#[test]
fn two_people_given_the_same_number_at_once_one_is_refused() {
    let w = World::start();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = [&w.trainee, &w.other_trainee]
            .into_iter()
            .map(|user| {
                let w = &w;
                scope.spawn(move || {
                    w.set(user, user, json!({"personal_identity_number": TOLVAN}))
                        .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 422], "{statuses:?}");
    let holders: i64 = personal_identities::table
        .filter(personal_identities::number_mac.is_not_null())
        .count()
        .get_result(&mut *conn(&w.app))
        .expect("count");
    assert_eq!(holders, 1);
}

#[test]
fn after_key_rotation_the_number_opens_and_stays_unique() {
    let w = World::start();
    w.set(
        &w.trainee,
        &w.trainee,
        json!({"personal_identity_number": TOLVAN}),
    )
    .expect(200);
    let sealed = |w: &World| -> (String, String) {
        let (s, m): (Option<String>, Option<String>) = personal_identities::table
            .find(&w.trainee.id)
            .select((
                personal_identities::number_sealed,
                personal_identities::number_mac,
            ))
            .first(&mut *conn(&w.app))
            .expect("row");
        (s.expect("sealed"), m.expect("mac"))
    };
    let (before, mac_before) = sealed(&w);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"))
        .args(["keys", "rotate"])
        .env("DATABASE_URL", &w.app.config.database_url)
        .env("EPORTFOLIO_DATA_DIR", &w.app.dir)
        .env("EPORTFOLIO_BIND", "127.0.0.1:0")
        .env("LOG_LEVEL", "warn")
        .env_remove("EPORTFOLIO_MASTER_KEY")
        .env_remove("EPORTFOLIO_RETIRED_MASTER_KEYS")
        .output()
        .expect("run eportfolio");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (after, mac_after) = sealed(&w);
    assert_ne!(
        eportfolio::secrets::sealed_with(&after),
        eportfolio::secrets::sealed_with(&before)
    );
    assert_ne!(mac_after, mac_before, "the hash follows the key");
    let r = w.read(&w.director_a, &w.trainee).expect(200);
    assert_eq!(r.body["personal_identity_number"], TOLVAN);
    let (f, _) = field_error(w.set(
        &w.other_trainee,
        &w.other_trainee,
        json!({"personal_identity_number": TOLVAN}),
    ));
    assert_eq!(f, "personal_identity_number");
}
