//! Trainees' training plans, as directors of studies and the BT unit run them.

use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

/// A region with a care provider and unit, its director, a BT template, two supervisors
/// and a trainee.
struct Programme {
    app: TestApp,
    admin: TestUser,
    director: TestUser,
    template: String,
    unit: String,
    trainee: TestUser,
    supervisor_a: TestUser,
    supervisor_b: TestUser,
}

fn programme() -> Programme {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let unit = app.create_org(&admin, "unit", "Vårdcentralen Gustavsberg", Some(&slso));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    let template = app.stockholm_bt_template(&director, &slso);
    let trainee = app.join(&director, "bt.lakare@sll.se", "trainee", &unit);
    let supervisor_a = app.join(&director, "handledare.a@sll.se", "supervisor", &unit);
    // An external supervisor with a private address.
    let supervisor_b = app.join(&director, "handledare.b@gmail.com", "supervisor", &unit);
    Programme {
        app,
        admin,
        director,
        template,
        unit,
        trainee,
        supervisor_a,
        supervisor_b,
    }
}

/// The pilot's four placements over a year, starting 2026-01-05, at 75 % with a month of
/// parental leave in March.
fn part_time_year(p: &Programme) -> Value {
    json!({
        "trainee_id": p.trainee.id,
        "template_id": p.template,
        "track": "bt_standalone",
        "start_date": "2026-01-05",
        "planned_end": "2027-12-31",
        "extent_percent": 75,
        "main_supervisor_id": p.supervisor_a.id,
        "placements": [
            {"placement_type": "allmanmedicin", "start_date": "2026-01-05", "end_date": "2026-05-04", "unit_id": p.unit},
            {"placement_type": "akut", "start_date": "2026-05-05", "end_date": "2026-09-04"},
            {"placement_type": "geriatrik", "start_date": "2026-09-05", "end_date": "2026-11-04"},
            {"placement_type": "psykiatri", "start_date": "2026-11-05", "end_date": "2027-01-04"}
        ],
        "leave_periods": [{"kind": "parental", "start_date": "2026-03-02", "end_date": "2026-03-31"}]
    })
}

fn enrol(p: &Programme, body: Value) -> Value {
    p.app
        .post("/enrolments", Some(&p.director.access), body)
        .expect(201)
        .body
}

fn codes(warnings: &Value) -> Vec<String> {
    warnings
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w["code"].as_str().expect("code").to_string())
        .collect()
}

#[test]
fn part_time_and_leave_give_the_right_time_served() {
    let p = programme();
    let e = enrol(&p, part_time_year(&p));
    let id = e["id"].as_str().expect("id");
    assert_eq!(e["template_version"], 1);
    assert_eq!(e["placements"].as_array().expect("placements").len(), 4);
    assert_eq!(e["assignments"][0]["role"], "main_supervisor");
    assert_eq!(e["assignments"][0]["user_id"], p.supervisor_a.id.as_str());

    // Up to 30 June: 177 placement days, 30 of them on leave, at 75 %: 110.25 days.
    let t = p
        .app
        .get(
            &format!("/enrolments/{id}/time-served?as_of=2026-06-30"),
            Some(&p.director.access),
        )
        .expect(200);
    assert_eq!(t.body["calendar_days"], 177);
    assert_eq!(t.body["leave_days"], 30.0);
    assert_eq!(t.body["served_days"], 110.25);
    assert_eq!(t.body["served_months"], 3.6);
    assert_eq!(t.body["nominal_months"], 12);
    // Twelve full-time months take until June 2027 at this pace.
    assert_eq!(t.body["projected_end"], "2027-06-05");

    // Today (the test clock says 2026-11-24): 324 days, 220.5 served.
    assert_eq!(e["time_served"]["calendar_days"], 324);
    assert_eq!(e["time_served"]["served_days"], 220.5);
    assert_eq!(e["time_served"]["served_months"], 7.2);

    // At 75 %, four months of allmänmedicin are less than the three full-time months of
    // primärvård BT requires: the plan says so.
    assert_eq!(codes(&e["warnings"]), ["minimum_months_in"]);
    assert!(e["warnings"][0]["message"]
        .as_str()
        .expect("m")
        .contains("primärvård"));

    // Full time removes the warning; half-time leave counts half.
    let etag = p
        .app
        .get(&format!("/enrolments/{id}"), Some(&p.director.access))
        .expect(200);
    let etag = etag.header("etag").expect("etag").to_string();
    let full = p
        .app
        .patch(
            &format!("/enrolments/{id}"),
            Some(&p.director.access),
            json!({"extent_percent": 100}),
            &[("If-Match", &etag)],
        )
        .expect(200);
    assert_eq!(codes(&full.body["warnings"]), Vec::<String>::new());
    p.app
        .patch(
            &format!("/enrolments/{id}"),
            Some(&p.director.access),
            json!({"extent_percent": 50}),
            &[("If-Match", &etag)],
        )
        .expect_problem(412, "precondition-failed");
    p.app
        .post(&format!("/enrolments/{id}/leave-periods"), Some(&p.director.access), json!({"kind": "sick", "start_date": "2026-06-01", "end_date": "2026-06-30", "percent": 50}))
        .expect(201);
    let t = p
        .app
        .get(
            &format!("/enrolments/{id}/time-served?as_of=2026-06-30"),
            Some(&p.director.access),
        )
        .expect(200);
    assert_eq!(t.body["leave_days"], 45.0);
    assert_eq!(t.body["served_days"], 132.0);
}

#[test]
fn credited_service_before_licence_counts_up_to_six_months() {
    let p = programme();
    let e = enrol(&p, part_time_year(&p));
    let id = e["id"].as_str().expect("id");
    let path = format!("/enrolments/{id}/credited-service");
    let at = json!({
        "description": "AT, medicinkliniken, Danderyds sjukhus",
        "start_date": "2024-09-01", "end_date": "2024-11-30", "credited_days": 90,
        "evidence": "Tjänstgöringsintyg 2024-12-02", "delmal": ["BT1", "BT15"]
    });
    let credited = p.app.post(&path, Some(&p.director.access), at).expect(201);
    assert_eq!(credited.body["delmal"], json!(["BT1", "BT15"]));
    let t = p
        .app
        .get(
            &format!("/enrolments/{id}/time-served?as_of=2026-06-30"),
            Some(&p.director.access),
        )
        .expect(200);
    assert_eq!(t.body["credited_days"], 90);
    assert_eq!(t.body["total_months"], 6.6);
    assert_eq!(t.body["projected_end"], "2027-02-05");

    let too_much = json!({"description": "Vikariat", "start_date": "2025-01-01", "end_date": "2025-06-30",
        "credited_days": 100, "evidence": "Intyg", "delmal": []});
    let r = p
        .app
        .post(&path, Some(&p.director.access), too_much)
        .expect_problem(422, "validation");
    assert_eq!(r.body["errors"][0]["field"], "credited_days");
    let no_evidence = json!({"description": "Vikariat", "start_date": "2025-01-01", "end_date": "2025-01-31",
        "credited_days": 20, "evidence": " ", "delmal": ["BT99"]});
    let r = p
        .app
        .post(&path, Some(&p.director.access), no_evidence)
        .expect_problem(422, "validation");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .expect("e")
        .iter()
        .map(|e| e["field"].as_str().expect("f"))
        .collect();
    assert_eq!(fields, ["evidence", "delmal"]);
}

#[test]
fn trainees_stay_on_their_template_version_until_an_administrator_migrates_them() {
    let p = programme();
    let first = enrol(&p, part_time_year(&p));
    let id = first["id"].as_str().expect("id");

    // The BT unit changes the programme mid-year.
    let t = p
        .app
        .get(
            &format!("/programme-templates/{}", p.template),
            Some(&p.director.access),
        )
        .expect(200);
    let etag = t.header("etag").expect("etag").to_string();
    let mut content = t.body.clone();
    for k in [
        "id",
        "version",
        "organisation_id",
        "regulation_id",
        "latest",
        "created_by",
        "created_at",
        "updated_at",
    ] {
        content.as_object_mut().expect("o").remove(k);
    }
    content["supervision_every_days"] = json!(10);
    p.app
        .send(
            "POST",
            &format!("/programme-templates/{}/versions", p.template),
            Some(&p.director.access),
            Some(&content),
            &[("If-Match", &etag)],
        )
        .expect(201);

    let still = p
        .app
        .get(&format!("/enrolments/{id}"), Some(&p.trainee.access))
        .expect(200);
    assert_eq!(still.body["template_version"], 1);

    // A new trainee gets the new version.
    let other = p.app.join(&p.director, "ny.bt@sll.se", "trainee", &p.unit);
    let mut body = part_time_year(&p);
    body["trainee_id"] = json!(other.id);
    assert_eq!(enrol(&p, body)["template_version"], 2);

    // Directors may not migrate; administrators may.
    let path = format!("/enrolments/{id}/template-migration");
    p.app
        .post(
            &path,
            Some(&p.director.access),
            json!({"template_version": 2}),
        )
        .expect_problem(403, "forbidden");
    p.app
        .post(&path, Some(&p.admin.access), json!({"template_version": 9}))
        .expect_problem(422, "validation");
    let moved = p
        .app
        .post(&path, Some(&p.admin.access), json!({"template_version": 2}))
        .expect(200);
    assert_eq!(moved.body["template_version"], 2);
    let history = p
        .app
        .get(
            &format!("/enrolments/{id}/changes"),
            Some(&p.director.access),
        )
        .expect(200);
    let last = history.body["items"]
        .as_array()
        .expect("items")
        .last()
        .expect("change")
        .clone();
    assert_eq!(last["action"], "migrated");
    assert_eq!(last["data"], json!({"from_version": 1, "to_version": 2}));
    assert_eq!(last["actor_id"], p.admin.id.as_str());
}

#[test]
fn reassigning_the_main_supervisor_moves_read_access() {
    let p = programme();
    let e = enrol(&p, part_time_year(&p));
    let id = e["id"].as_str().expect("id");
    let path = format!("/enrolments/{id}");
    p.app.get(&path, Some(&p.supervisor_a.access)).expect(200);
    p.app
        .get(&path, Some(&p.supervisor_b.access))
        .expect_problem(404, "not-found");
    assert_eq!(
        p.app
            .get("/enrolments", Some(&p.supervisor_b.access))
            .expect(200)
            .body["items"],
        json!([])
    );

    // From today B is the main supervisor; A's assignment ends the same day.
    p.app
        .post(&format!("{path}/assignments"), Some(&p.director.access), json!({"user_id": p.supervisor_b.id, "role": "main_supervisor", "valid_from": "2026-11-24"}))
        .expect(201);
    p.app.get(&path, Some(&p.supervisor_b.access)).expect(200);
    p.app
        .get(&path, Some(&p.supervisor_a.access))
        .expect_problem(404, "not-found");
    let listed = p
        .app
        .get("/enrolments", Some(&p.supervisor_b.access))
        .expect(200);
    assert_eq!(listed.body["items"][0]["id"], id);

    let now = p.app.get(&path, Some(&p.director.access)).expect(200);
    let assignments = now.body["assignments"].as_array().expect("assignments");
    assert_eq!(assignments.len(), 2, "history is kept");
    assert_eq!(assignments[0]["user_id"], p.supervisor_a.id.as_str());
    assert_eq!(assignments[0]["valid_to"], "2026-11-24");
    assert_eq!(assignments[0]["active"], false);
    assert_eq!(assignments[1]["active"], true);

    // A placement supervisor sees the trainee only during the placement.
    let other = p
        .app
        .join(&p.director, "tjg.hl@sll.se", "supervisor", &p.unit);
    p.app
        .post(
            &format!("{path}/placements"),
            Some(&p.director.access),
            json!({"placement_type": "geriatrik", "start_date": "2026-12-01", "end_date": "2026-12-31", "supervisor_id": other.id}),
        )
        .expect(201);
    // Assigned from today, since the placement is ahead: they prepare for it.
    p.app.get(&path, Some(&other.access)).expect(200);
    p.app.advance(40 * 86_400);
    let other = p.app.login_totp(&other);
    p.app
        .get(&path, Some(&other.access))
        .expect_problem(404, "not-found");

    // Ending B's assignment removes B's access too.
    let director = p.app.login_totp(&p.director);
    let b = p.app.login_totp(&p.supervisor_b);
    let a_id = p.app.get(&path, Some(&director.access)).expect(200).body["assignments"]
        .as_array()
        .expect("a")
        .iter()
        .find(|a| a["user_id"] == p.supervisor_b.id.as_str())
        .expect("B's assignment")["id"]
        .as_str()
        .expect("id")
        .to_string();
    p.app
        .post(
            &format!("/assignments/{a_id}/end"),
            Some(&director.access),
            json!({}),
        )
        .expect(200);
    p.app
        .get(&path, Some(&b.access))
        .expect_problem(404, "not-found");
    p.app
        .post(
            &format!("/assignments/{a_id}/end"),
            Some(&director.access),
            json!({}),
        )
        .expect_problem(409, "conflict");
}

#[test]
fn plan_changes_are_kept_as_history() {
    let p = programme();
    let e = enrol(&p, part_time_year(&p));
    let id = e["id"].as_str().expect("id");
    let placement = e["placements"][1]["id"]
        .as_str()
        .expect("placement")
        .to_string();
    let etag = format!("\"{}-", e["placements"][1]["version"]);
    let current = p
        .app
        .get(&format!("/enrolments/{id}"), Some(&p.director.access))
        .expect(200);
    assert!(current.body["placements"][1]["id"] == placement.as_str());
    // A stale If-Match is refused; the placement's own ETag works.
    p.app
        .patch(
            &format!("/placements/{placement}"),
            Some(&p.director.access),
            json!({"end_date": "2026-09-30"}),
            &[("If-Match", "\"9-0\"")],
        )
        .expect_problem(412, "precondition-failed");
    let changed = p
        .app
        .patch(
            &format!("/placements/{placement}"),
            Some(&p.director.access),
            json!({"end_date": "2026-09-30"}),
            &[],
        )
        .expect(200);
    assert_eq!(changed.body["version"], 2);
    assert!(changed
        .header("etag")
        .expect("etag")
        .starts_with(&etag.replace('1', "2")));
    p.app
        .patch(
            &format!("/placements/{placement}"),
            Some(&p.director.access),
            json!({"placement_type": "kirurgi"}),
            &[],
        )
        .expect_problem(422, "validation");
    p.app
        .delete(
            &format!("/placements/{placement}"),
            Some(&p.director.access),
        )
        .expect(204);
    p.app
        .delete(
            &format!("/placements/{placement}"),
            Some(&p.director.access),
        )
        .expect_problem(404, "not-found");

    let history = p
        .app
        .get(
            &format!("/enrolments/{id}/changes?limit=100"),
            Some(&p.trainee.access),
        )
        .expect(200);
    let items = history.body["items"].as_array().expect("items");
    let of_placement: Vec<(&str, &Value)> = items
        .iter()
        .filter(|c| c["entity_id"] == placement.as_str())
        .map(|c| (c["action"].as_str().expect("action"), &c["data"]))
        .collect();
    assert_eq!(of_placement.len(), 3);
    assert_eq!(of_placement[0].0, "created");
    assert_eq!(of_placement[1].0, "updated");
    assert_eq!(of_placement[1].1["previous"]["end_date"], "2026-09-04");
    assert_eq!(of_placement[1].1["end_date"], "2026-09-30");
    assert_eq!(of_placement[2].0, "removed");
    // Paging through the history sees every change once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/enrolments/{id}/changes?limit=2&cursor={c}"),
            None => format!("/enrolments/{id}/changes?limit=2"),
        };
        let page = p.app.get(&url, Some(&p.trainee.access)).expect(200);
        seen.extend(
            page.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|c| c["seq"].as_i64().expect("seq")),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "in order, each once");
    assert_eq!(seen.len(), items.len());
}

#[test]
fn the_trainee_and_supervisor_write_the_study_plan_together() {
    let p = programme();
    let e = enrol(&p, part_time_year(&p));
    let id = e["id"].as_str().expect("id");
    let placement = e["placements"][0]["id"].as_str().expect("placement");
    let goal = p
        .app
        .post(
            &format!("/enrolments/{id}/study-plan-goals"),
            Some(&p.trainee.access),
            json!({"goal": "Leda ett familjesamtal", "delmal": ["BT9", "BT10"], "placement_id": placement}),
        )
        .expect(201);
    let goal_id = goal.body["id"].as_str().expect("id");
    let etag = goal.header("etag").expect("etag").to_string();
    p.app
        .post(
            &format!("/enrolments/{id}/study-plan-goals"),
            Some(&p.trainee.access),
            json!({"goal": "x", "delmal": ["BT42"]}),
        )
        .expect_problem(422, "validation");
    let agreed = p
        .app
        .patch(
            &format!("/study-plan-goals/{goal_id}"),
            Some(&p.supervisor_a.access),
            json!({"status": "in_progress"}),
            &[("If-Match", &etag)],
        )
        .expect(200);
    assert_eq!(agreed.body["version"], 2);
    assert_eq!(agreed.body["updated_by"], p.supervisor_a.id.as_str());
    p.app
        .patch(
            &format!("/study-plan-goals/{goal_id}"),
            Some(&p.trainee.access),
            json!({"goal": "Leda två familjesamtal"}),
            &[("If-Match", &etag)],
        )
        .expect_problem(412, "precondition-failed");
    let plan = p
        .app
        .get(
            &format!("/enrolments/{id}/study-plan-goals"),
            Some(&p.trainee.access),
        )
        .expect(200);
    assert_eq!(plan.body["items"][0]["status"], "in_progress");
    let history = p
        .app
        .get(
            &format!("/enrolments/{id}/changes?limit=200"),
            Some(&p.trainee.access),
        )
        .expect(200);
    let versions: Vec<&Value> = history.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["entity"] == "study_plan_goal")
        .map(|c| &c["data"]["status"])
        .collect();
    assert_eq!(versions, [&json!("planned"), &json!("in_progress")]);
}

#[test]
fn an_enrolment_is_checked_before_it_is_stored() {
    let p = programme();
    let mut body = part_time_year(&p);
    body["trainee_id"] = json!(p.supervisor_a.id);
    body["extent_percent"] = json!(5);
    body["planned_end"] = json!("2025-01-01");
    let r = p
        .app
        .post("/enrolments", Some(&p.director.access), body)
        .expect_problem(422, "validation");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .expect("e")
        .iter()
        .map(|e| e["field"].as_str().expect("f"))
        .collect();
    assert_eq!(fields, ["trainee_id", "extent_percent", "planned_end"]);

    let mut body = part_time_year(&p);
    body["placements"][2]["placement_type"] = json!("ortopedi");
    let r = p
        .app
        .post("/enrolments", Some(&p.director.access), body)
        .expect_problem(422, "validation");
    assert_eq!(r.body["errors"][0]["field"], "placements[2].placement_type");
    // Nothing half-written: the trainee has no enrolment.
    assert_eq!(
        p.app
            .get("/enrolments", Some(&p.trainee.access))
            .expect(200)
            .body["items"],
        json!([])
    );

    // Overlapping placements are stored but flagged.
    let mut body = part_time_year(&p);
    body["placements"][1]["start_date"] = json!("2026-04-01");
    body["extent_percent"] = json!(100);
    let e = enrol(&p, body);
    assert_eq!(codes(&e["warnings"]), ["overlapping_placements"]);
}

#[test]
fn a_placement_supervisor_follows_the_placement() {
    let p = programme();
    let e = enrol(&p, part_time_year(&p));
    let id = e["id"].as_str().expect("id");
    let path = format!("/enrolments/{id}");
    let tjg = p.app.join(&p.director, "tjg@sll.se", "supervisor", &p.unit);
    let placement = p
        .app
        .post(
            &format!("{path}/placements"),
            Some(&p.director.access),
            json!({"placement_type": "psykiatri", "start_date": "2026-11-01", "end_date": "2026-11-30", "supervisor_id": tjg.id}),
        )
        .expect(201);
    assert_eq!(placement.body["supervisor_id"], tjg.id.as_str());
    let pid = placement.body["id"].as_str().expect("id");

    // The placement is extended by a month: so is the supervisor's access.
    p.app
        .patch(
            &format!("/placements/{pid}"),
            Some(&p.director.access),
            json!({"end_date": "2026-12-31"}),
            &[],
        )
        .expect(200);
    p.app.advance(10 * 86_400);
    let tjg = p.app.login_totp(&tjg);
    p.app.get(&path, Some(&tjg.access)).expect(200);

    // Removed from the plan: the supervisor's assignment ends the same day.
    let director = p.app.login_totp(&p.director);
    p.app
        .delete(&format!("/placements/{pid}"), Some(&director.access))
        .expect(204);
    p.app
        .get(&path, Some(&tjg.access))
        .expect_problem(404, "not-found");
    let ended = p.app.get(&path, Some(&director.access)).expect(200).body["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .find(|a| a["user_id"] == tjg.id.as_str())
        .expect("assignment kept")
        .clone();
    assert_eq!(ended["valid_to"], "2026-12-04");
    assert_eq!(ended["active"], false);

    // The programme's director of studies is involved in the training, so may not be
    // its external assessor even with that role.
    let admin = p.app.login_totp(&p.admin);
    let region = p.app.get("/me", Some(&admin.access)).expect(200).body["roles"][0]
        ["organisation_id"]
        .as_str()
        .expect("region")
        .to_string();
    let token = p
        .app
        .invite(&admin, "studierektor@sll.se", "external_assessor", &region);
    p.app
        .post(
            &format!("/auth/invitations/{token}/accept"),
            None,
            json!({"password": crate::support::PASSWORD}),
        )
        .expect(200);
    let refused = p
        .app
        .post(
            &format!("{path}/assignments"),
            Some(&director.access),
            json!({"user_id": p.director.id, "role": "external_assessor"}),
        )
        .expect_problem(422, "validation");
    assert_eq!(refused.body["errors"][0]["field"], "user_id");
}
