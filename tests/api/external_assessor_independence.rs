//! Issue 14 item 8: the external assessor's independence. The pilot's external assessor
//! is "en legitimerad läkare med specialistkompetens som är utbildad i bedömningsmetoder
//! och inte ska ha varit involverad i BT-läkarens utbildning" (seed 002). The director of
//! studies sees a candidate's involvement and recorded qualifications before assigning;
//! involvement that comes after the assignment shows on the final assessment as a warning,
//! and blocks opening and signing it (409) where EXTERNAL_ASSESSOR_INDEPENDENCE_REQUIRED.

use serde_json::{json, Value};

use crate::certificates::{judged, region, Region};
use crate::support::{TestUser, PASSWORD};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

struct Training {
    r: Region,
    trainee: TestUser,
    main: TestUser,
    /// External assessor who is also a supervisor at a health centre.
    assessor: TestUser,
    enrolment: String,
}

fn training() -> Training {
    let r = region();
    let app = &r.app;
    let template = app.stockholm_bt_template(&r.director, &r.slso);
    let trainee = r.person("bt@sll.se", "trainee", "Åsa Öberg");
    let main = r.person("hhl@sll.se", "supervisor", "Örjan Ärlebäck");
    let assessor = r.person("extern@uu.se", "external_assessor", "Karin Ödmark");
    let token = app.invite(&r.director, &assessor.email, "supervisor", &r.slso);
    let accepted = app
        .post(
            &format!("/auth/invitations/{token}/accept"),
            None,
            json!({"password": PASSWORD}),
        )
        .expect(200);
    assert_eq!(accepted.body["status"], "role_granted");
    let e = app
        .post("/enrolments", Some(&r.director.access),
              json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                     "start_date": "2025-12-01", "planned_end": "2026-11-30",
                     "main_supervisor_id": main.id,
                     "placements": [
                        {"placement_type": "allmanmedicin", "start_date": "2025-12-01", "end_date": "2026-11-30",
                         "supervisor_id": main.id}]}))
        .expect(201)
        .body;
    Training {
        enrolment: id(&e),
        r,
        trainee,
        main,
        assessor,
    }
}

impl Training {
    fn check_path(&self, user: &TestUser) -> String {
        format!(
            "/enrolments/{}/external-assessor-independence?user_id={}",
            self.enrolment, user.id
        )
    }

    /// The trainee asks `by` for a Mini-CEX, which `by` signs.
    fn mini_cex(&self, by: &TestUser) -> String {
        let app = &self.r.app;
        let a = app
            .post(
                &format!("/enrolments/{}/assessments", self.enrolment),
                Some(&self.trainee.access),
                json!({"instrument": "mini_cex", "performed_on": "2026-10-01", "assessor_id": by.id,
                       "delmal": ["BT1"]}),
            )
            .expect(201);
        app.post(
            &format!("/assessments/{}/sign", id(&a.body)),
            Some(&by.access),
            json!({"entrustment": 4, "feedback_strengths": "Trygg.", "feedback_next_steps": "Öva mer."}),
        )
        .expect(200);
        id(&a.body)
    }

    fn final_check_in(&self) {
        let app = &self.r.app;
        let check_in = app
            .post(&format!("/enrolments/{}/final-check-ins", self.enrolment), Some(&self.trainee.access),
                  json!({"held_on": "2026-11-20", "notes": "Alla delmål genomgångna inför slutbedömningen."}))
            .expect(201);
        app.post(
            &format!("/final-check-ins/{}/confirm", id(&check_in.body)),
            Some(&self.main.access),
            json!({}),
        )
        .expect(200);
    }

    fn final_body() -> Value {
        let codes: Vec<String> = (1..=18).map(|n| format!("BT{n}")).collect();
        json!({"mode": "external_assessor", "judgements": judged(&codes), "decision": "achieved"})
    }
}

fn warnings(check: &Value) -> Vec<String> {
    check["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().expect("warning").to_string())
        .collect()
}

#[test]
fn the_director_sees_a_candidates_involvement_and_qualifications_before_assigning() {
    let t = training();
    let app = &t.r.app;
    let director = &t.r.director;

    // Never involved; the signer profile names no specialty yet.
    let clean = app
        .get(&t.check_path(&t.assessor), Some(&director.access))
        .expect(200)
        .body;
    assert_eq!(clean["user_id"], t.assessor.id.as_str());
    assert_eq!(clean["involved"], false, "{clean}");
    assert_eq!(clean["facts"], json!([]));
    assert_eq!(clean["independence_required"], false);
    assert_eq!(
        warnings(&clean),
        [
            "specialist_status_not_stated",
            "assessment_training_not_stated"
        ]
    );

    // The assessor states their specialty: a specialist now, training still not stated
    // (an account's profile does not hold it).
    let profile = format!("/users/{}/signer-profile", t.assessor.id);
    let etag = app
        .get(&profile, Some(&t.assessor.access))
        .expect(200)
        .header("etag")
        .expect("etag")
        .to_string();
    app.send(
        "PUT",
        &profile,
        Some(&t.assessor.access),
        Some(&json!({"specialty": "Allmänmedicin", "workplace": "Akademiska sjukhuset"})),
        &[("If-Match", &etag)],
    )
    .expect(200);
    let stated = app
        .get(&t.check_path(&t.assessor), Some(&director.access))
        .expect(200)
        .body;
    assert_eq!(stated["qualifications"]["specialist"], true);
    assert_eq!(stated["qualifications"]["specialty"], "Allmänmedicin");
    assert_eq!(warnings(&stated), ["assessment_training_not_stated"]);

    // The main supervisor is involved (and has no external-assessor role: 422).
    let r = app
        .get(&t.check_path(&t.main), Some(&director.access))
        .expect_problem(422, "validation");
    assert_eq!(r.body["errors"][0]["field"], "user_id");

    // Only those who manage the enrolment ask; the trainee and the supervisor may not, a
    // stranger does not learn the enrolment exists.
    app.get(&t.check_path(&t.assessor), Some(&t.main.access))
        .expect_problem(403, "forbidden");
    app.get(&t.check_path(&t.assessor), Some(&t.trainee.access))
        .expect_problem(403, "forbidden");
    let other =
        t.r.person("annan@sll.se", "external_assessor", "Nils Nyman");
    app.get(&t.check_path(&t.assessor), Some(&other.access))
        .expect_problem(404, "not-found");

    // A second candidate who once assessed the trainee as a supervisor: involved, the
    // facts say how, and the assignment is refused as before.
    let once = t.r.person("tidigare@sll.se", "supervisor", "Ulla Åhlén");
    let token = app.invite(director, &once.email, "external_assessor", &t.r.slso);
    app.post(
        &format!("/auth/invitations/{token}/accept"),
        None,
        json!({"password": PASSWORD}),
    )
    .expect(200);
    let assessment = t.mini_cex(&once);
    let involved = app
        .get(&t.check_path(&once), Some(&director.access))
        .expect(200)
        .body;
    assert_eq!(involved["involved"], true, "{involved}");
    assert_eq!(
        involved["facts"],
        json!([{"kind": "assessment", "record_id": assessment, "detail": "mini_cex"}])
    );
    assert_eq!(warnings(&involved)[0], "involved_in_training");
    app.post(
        &format!("/enrolments/{}/assignments", t.enrolment),
        Some(&director.access),
        json!({"user_id": once.id, "role": "external_assessor"}),
    )
    .expect_problem(422, "validation");

    // The independent one is assigned; the answer carries the check.
    let assigned = app
        .post(
            &format!("/enrolments/{}/assignments", t.enrolment),
            Some(&director.access),
            json!({"user_id": t.assessor.id, "role": "external_assessor"}),
        )
        .expect(201)
        .body;
    assert_eq!(assigned["independence"]["involved"], false, "{assigned}");
    assert_eq!(
        warnings(&assigned["independence"]),
        ["assessment_training_not_stated"]
    );
    // Other assignments carry no check, and the plan lists assignments without it.
    let plan = app
        .get(
            &format!("/enrolments/{}", t.enrolment),
            Some(&director.access),
        )
        .expect(200)
        .body;
    assert!(plan["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .all(|a| a.get("independence").is_none()));
}

#[test]
fn involvement_after_the_assignment_warns_on_the_final_assessment_or_blocks_where_required() {
    let mut t = training();
    {
        let app = &t.r.app;
        app.post(
            &format!("/enrolments/{}/assignments", t.enrolment),
            Some(&t.r.director.access),
            json!({"user_id": t.assessor.id, "role": "external_assessor"}),
        )
        .expect(201);
    }
    // Assigned while independent; then the trainee asks the assessor, who is also a
    // supervisor, for a Mini-CEX, and they sign it: now they took part in the training.
    let assessment = t.mini_cex(&t.assessor);
    t.final_check_in();

    // Where the region requires independence, the final assessment is not opened.
    t.r.app
        .restart_with(|c| c.external_assessor_independence_required = true);
    let app = &t.r.app;
    let path = format!("/enrolments/{}/final-assessments", t.enrolment);
    let refused = app
        .post(&path, Some(&t.main.access), Training::final_body())
        .expect_problem(409, "conflict");
    assert!(
        refused
            .text
            .contains("involved in this trainee's training (assessment)"),
        "{}",
        refused.text
    );
    assert_eq!(
        app.get(&path, Some(&t.main.access)).expect(200).body["items"],
        json!([])
    );

    // By default it is a warning: opened, with the facts for both signers to see.
    t.r.app
        .restart_with(|c| c.external_assessor_independence_required = false);
    let app = &t.r.app;
    let f = app
        .post(&path, Some(&t.main.access), Training::final_body())
        .expect(201)
        .body;
    let check = &f["independence"];
    assert_eq!(check["user_id"], t.assessor.id.as_str());
    assert_eq!(check["involved"], true, "{f}");
    assert_eq!(
        check["facts"],
        json!([{"kind": "assessment", "record_id": assessment, "detail": "mini_cex"}])
    );
    assert_eq!(warnings(check)[0], "involved_in_training");
    let fa = id(&f);
    let read = app
        .get(
            &format!("/final-assessments/{fa}"),
            Some(&t.assessor.access),
        )
        .expect(200)
        .body;
    assert_eq!(read["independence"], f["independence"]);
    let listed = app.get(&path, Some(&t.trainee.access)).expect(200).body;
    assert_eq!(listed["items"][0]["independence"]["involved"], true);

    // The main supervisor signs under the warning ...
    app.post(
        &format!("/final-assessments/{fa}/sign"),
        Some(&t.main.access),
        json!({}),
    )
    .expect(200);
    // ... but once the region requires independence, no further signature is given.
    t.r.app
        .restart_with(|c| c.external_assessor_independence_required = true);
    let app = &t.r.app;
    let refused = app
        .post(
            &format!("/final-assessments/{fa}/sign"),
            Some(&t.assessor.access),
            json!({}),
        )
        .expect_problem(409, "conflict");
    assert!(refused.text.contains("involved"), "{}", refused.text);
    let after = app
        .get(&format!("/final-assessments/{fa}"), Some(&t.main.access))
        .expect(200)
        .body;
    assert_eq!(after["status"], "awaiting_signatures");
    assert_eq!(after["independence"]["independence_required"], true);
}

#[test]
fn a_committee_decision_carries_no_independence_check() {
    let t = training();
    let app = &t.r.app;
    let other = t.r.person("ledamot@sll.se", "supervisor", "Lars Öst");
    t.final_check_in();
    let f = app
        .post(
            &format!("/enrolments/{}/final-assessments", t.enrolment),
            Some(&t.r.director.access),
            json!({"mode": "committee", "committee_member_ids": [t.main.id, other.id]}),
        )
        .expect(201)
        .body;
    assert!(f.get("independence").is_none(), "{f}");
}
