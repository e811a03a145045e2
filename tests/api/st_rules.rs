//! Issue 14, item 10: the ST minimum length warns in the plan (SOSFS 2015:8 five years;
//! HSLF-FS 2021:8 five years six months including BT), an ST enrolment links the BT it
//! builds on, and the plan warns when integrated BT's certificate is not applied for in
//! time. The test clock says 2026-11-24.

use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

struct Region {
    app: TestApp,
    admin: TestUser,
    director: TestUser,
    region: String,
    org: String,
    bt_template: String,
}

fn region() -> Region {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let org = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &org);
    let bt_template = app.stockholm_bt_template(&director, &org);
    Region {
        app,
        admin,
        director,
        region,
        org,
        bt_template,
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn codes(warnings: &Value) -> Vec<String> {
    warnings
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w["code"].as_str().expect("code").to_string())
        .collect()
}

fn message<'a>(warnings: &'a Value, code: &str) -> &'a str {
    warnings
        .as_array()
        .expect("warnings")
        .iter()
        .find(|w| w["code"] == code)
        .and_then(|w| w["message"].as_str())
        .unwrap_or_else(|| panic!("no {code} in {warnings}"))
}

impl Region {
    fn st_template(&self, director: &TestUser, org: &str, regulation: &str) -> String {
        let reg = self.app.regulation_id(director, regulation);
        let r = self
            .app
            .post(
                "/programme-templates",
                Some(&director.access),
                json!({"organisation_id": org, "regulation_id": reg, "name": format!("ST {regulation}"),
                       "duration_months": 60, "supervision_every_days": 14,
                       "placement_types": [{"key": "allmanmedicin", "name": "Allmänmedicin", "months": 60,
                                            "supervision_every_days": 14, "checklist": []}],
                       "programme_items": []}),
            )
            .expect(201);
        id(&r.body)
    }

    /// An enrolment over `[start, end]` with one placement over the whole of it.
    fn enrol(
        &self,
        director: &TestUser,
        trainee: &TestUser,
        template: &str,
        track: &str,
        [start, end]: [&str; 2],
        placement_type: &str,
    ) -> Value {
        self.app
            .post("/enrolments", Some(&director.access),
                  json!({"trainee_id": trainee.id, "template_id": template, "track": track,
                         "start_date": start, "planned_end": end,
                         "placements": [{"placement_type": placement_type, "start_date": start, "end_date": end}]}))
            .expect(201)
            .body
    }

    /// A BT year of the Stockholm programme from 1 September 2024.
    fn bt_year(&self, trainee: &TestUser) -> Value {
        self.app
            .post("/enrolments", Some(&self.director.access),
                  json!({"trainee_id": trainee.id, "template_id": self.bt_template, "track": "st_integrated_bt",
                         "start_date": "2024-09-01", "planned_end": "2025-08-31",
                         "placements": [
                            {"placement_type": "allmanmedicin", "start_date": "2024-09-01", "end_date": "2024-12-31"},
                            {"placement_type": "akut", "start_date": "2025-01-01", "end_date": "2025-04-30"},
                            {"placement_type": "geriatrik", "start_date": "2025-05-01", "end_date": "2025-06-30"},
                            {"placement_type": "psykiatri", "start_date": "2025-07-01", "end_date": "2025-08-31"}]}))
            .expect(201)
            .body
    }

    fn patch(&self, who: &TestUser, enrolment: &str, body: Value) -> crate::support::Resp {
        let path = format!("/enrolments/{enrolment}");
        let current = self.app.get(&path, Some(&self.director.access)).expect(200);
        let etag = current.header("etag").expect("etag").to_string();
        self.app
            .patch(&path, Some(&who.access), body, &[("If-Match", &etag)])
    }

    fn warnings(&self, enrolment: &str) -> Value {
        self.app
            .get(
                &format!("/enrolments/{enrolment}"),
                Some(&self.director.access),
            )
            .expect(200)
            .body["warnings"]
            .clone()
    }
}

#[test]
fn an_st_2015_plan_shorter_than_five_years_warns_with_its_statute() {
    let r = region();
    let st = r.st_template(&r.director, &r.org, "st-2015");
    let trainee = r.app.join(&r.director, "st15@sll.se", "trainee", &r.org);
    // Four years of full-time service.
    let e = r.enrol(
        &r.director,
        &trainee,
        &st,
        "st_2015",
        ["2022-01-01", "2025-12-31"],
        "allmanmedicin",
    );
    assert_eq!(codes(&e["warnings"]), ["minimum_months"], "{e}");
    let m = message(&e["warnings"], "minimum_months");
    assert!(
        m.contains("SOSFS 2015:8") && m.contains("60") && m.contains("48.0"),
        "{m}"
    );
    // Five years: no warning.
    let five = r.enrol(
        &r.director,
        &trainee,
        &st,
        "st_2015",
        ["2022-01-01", "2026-12-31"],
        "allmanmedicin",
    );
    assert_eq!(codes(&five["warnings"]), Vec::<String>::new(), "{five}");
}

#[test]
fn st_2021_counts_the_linked_bt_and_warns_until_integrated_bt_is_applied_for() {
    let r = region();
    let st = r.st_template(&r.director, &r.org, "st-2021");
    let trainee = r.app.join(&r.director, "st21@sll.se", "trainee", &r.org);
    let bt = id(&r.bt_year(&trainee));
    // 55 months of ST after a 12-month BT: 67 months with the BT, 55 without.
    let e = r.enrol(
        &r.director,
        &trainee,
        &st,
        "st_integrated_bt",
        ["2025-09-01", "2030-03-31"],
        "allmanmedicin",
    );
    let st_id = id(&e);
    assert_eq!(e["bt_enrolment_id"], Value::Null);
    let m = message(&e["warnings"], "minimum_months");
    assert!(
        m.contains("HSLF-FS 2021:8") && m.contains("66") && m.contains("no BT enrolment is linked"),
        "{m}"
    );

    // Linked: the BT's twelve months count, and the minimum is met.
    let linked = r
        .patch(&r.director, &st_id, json!({"bt_enrolment_id": bt}))
        .expect(200)
        .body;
    assert_eq!(linked["bt_enrolment_id"], bt.as_str());
    assert!(
        !codes(&linked["warnings"]).contains(&"minimum_months".to_string()),
        "{linked}"
    );
    // ST with integrated BT began with the BT on 2024-09-01: the BT certificate was due
    // by 2026-08-31 (the catalogue's 24 months) and is not applied for on 2026-11-24.
    let m = message(&linked["warnings"], "bt_application_deadline");
    assert!(
        m.contains("2026-08-31") && m.contains("has not been applied for"),
        "{m}"
    );
    // The BT's own plan says so too.
    assert!(codes(&r.warnings(&bt)).contains(&"bt_application_deadline".to_string()));

    // Applied for in the future: refused; applied for in time: the warning goes, on both.
    let future = r.patch(&r.director, &bt, json!({"applied_on": "2026-11-25"}));
    let future = future.expect(422);
    assert!(future.text.contains("applied_on"), "{}", future.text);
    let applied = r
        .patch(&r.director, &bt, json!({"applied_on": "2026-08-15"}))
        .expect(200)
        .body;
    assert_eq!(applied["applied_on"], "2026-08-15");
    assert_eq!(codes(&r.warnings(&st_id)), Vec::<String>::new());
    assert_eq!(codes(&r.warnings(&bt)), Vec::<String>::new());

    // Unlinking with null brings the minimum-length warning back.
    let unlinked = r
        .patch(&r.director, &st_id, json!({"bt_enrolment_id": null}))
        .expect(200)
        .body;
    assert_eq!(unlinked["bt_enrolment_id"], Value::Null);
    assert_eq!(codes(&unlinked["warnings"]), ["minimum_months"]);
}

#[test]
fn only_a_manager_links_and_only_the_same_trainees_bt_that_nothing_else_builds_on() {
    let r = region();
    let st21 = r.st_template(&r.director, &r.org, "st-2021");
    let st15 = r.st_template(&r.director, &r.org, "st-2015");
    let trainee = r.app.join(&r.director, "anna@sll.se", "trainee", &r.org);
    let other = r.app.join(&r.director, "bo@sll.se", "trainee", &r.org);
    let bt = id(&r.bt_year(&trainee));
    let others_bt = id(&r.bt_year(&other));
    let st = id(&r.enrol(
        &r.director,
        &trainee,
        &st21,
        "st_integrated_bt",
        ["2025-09-01", "2030-03-31"],
        "allmanmedicin",
    ));
    let refused = |resp: crate::support::Resp| {
        let resp = resp.expect(422);
        assert!(resp.text.contains("bt_enrolment_id"), "{}", resp.text);
        resp.text
    };

    // Another trainee's BT, an unknown id, and another organisation's BT give the same
    // answer: nothing says whether the other organisation's enrolment exists.
    let not_mine = refused(r.patch(&r.director, &st, json!({"bt_enrolment_id": others_bt})));
    refused(r.patch(
        &r.director,
        &st,
        json!({"bt_enrolment_id": "00000000-0000-4000-8000-000000000000"}),
    ));
    let region2 = r
        .app
        .create_org(&r.admin, "care_provider", "Capio", Some(&r.region));
    let director2 = r
        .app
        .join(&r.admin, "sr@capio.se", "director_of_studies", &region2);
    let bt2_template = r.app.stockholm_bt_template(&director2, &region2);
    let foreign = r
        .app
        .post(
            "/enrolments",
            Some(&director2.access),
            json!({"trainee_id": trainee.id, "template_id": bt2_template, "track": "bt_standalone",
                     "start_date": "2024-09-01", "planned_end": "2025-08-31"}),
        )
        .expect(201)
        .body;
    let foreign_text = refused(r.patch(&r.director, &st, json!({"bt_enrolment_id": id(&foreign)})));
    let detail = |t: &str| -> String {
        serde_json::from_str::<Value>(t).expect("json")["errors"][0]["message"]
            .as_str()
            .expect("message")
            .to_string()
    };
    assert_eq!(detail(&not_mine), detail(&foreign_text));

    // Not a BT, itself, and an ST 2015 (which counts no BT).
    let st_other = id(&r.enrol(
        &r.director,
        &trainee,
        &st21,
        "st_2021",
        ["2025-09-01", "2030-03-31"],
        "allmanmedicin",
    ));
    refused(r.patch(&r.director, &st, json!({"bt_enrolment_id": st_other})));
    refused(r.patch(&r.director, &st, json!({"bt_enrolment_id": st})));
    let st_2015 = id(&r.enrol(
        &r.director,
        &trainee,
        &st15,
        "st_2015",
        ["2020-01-01", "2024-12-31"],
        "allmanmedicin",
    ));
    refused(r.patch(&r.director, &st_2015, json!({"bt_enrolment_id": bt})));

    // The trainee (or a supervisor) cannot link: the plan is the director's.
    r.patch(&trainee, &st, json!({"bt_enrolment_id": bt}))
        .expect(403);
    let stranger = r.app.join(&r.director, "x@sll.se", "supervisor", &r.org);
    r.patch(&stranger, &st, json!({"bt_enrolment_id": bt}))
        .expect(404);

    // Linked once; a second ST enrolment cannot build on the same BT, and the BT cannot
    // in turn build on anything.
    r.patch(&r.director, &st, json!({"bt_enrolment_id": bt}))
        .expect(200);
    refused(r.patch(&r.director, &st_other, json!({"bt_enrolment_id": bt})));
    // On creation too.
    let created = r.app.post(
        "/enrolments",
        Some(&r.director.access),
        json!({"trainee_id": trainee.id, "template_id": st21, "track": "st_2021",
               "start_date": "2025-09-01", "planned_end": "2030-03-31", "bt_enrolment_id": bt}),
    );
    refused(created);
    // The change is in the plan's history.
    let changes = r
        .app
        .get(
            &format!("/enrolments/{st}/changes"),
            Some(&r.director.access),
        )
        .expect(200);
    assert!(changes.text.contains(&bt), "{}", changes.text);
}
