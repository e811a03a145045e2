//! The trainee's voice (issue 14, item 12): a trainee evaluates each placement after it
//! ends, once; nobody else reads one evaluation; directors see the answers per unit only
//! for closed half-years and groups of at least three; supervisors record group reviews
//! (kollegium) that the trainee reads.

use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

struct Ward {
    admin: TestUser,
    director: TestUser,
    supervisor: TestUser,
    slso: String,
    akut: String,
    geriatrik: String,
    /// Trainee, enrolment and placement: three at the emergency unit, one at geriatrics.
    trainees: Vec<(TestUser, String, String)>,
}

fn ward(app: &TestApp) -> Ward {
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let akut = app.create_org(&admin, "unit", "Akutkliniken", Some(&slso));
    let geriatrik = app.create_org(&admin, "unit", "Geriatriska kliniken", Some(&slso));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    let supervisor = app.join(&admin, "hhl@sll.se", "supervisor", &slso);
    let template = app.stockholm_bt_template(&director, &slso);
    let mut trainees = Vec::new();
    for (n, unit) in [&akut, &akut, &akut, &geriatrik].into_iter().enumerate() {
        let trainee = app.join(&director, &format!("bt{n}@sll.se"), "trainee", &slso);
        let e = app
            .post(
                "/enrolments",
                Some(&director.access),
                json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                       "start_date": "2026-09-01", "planned_end": "2027-08-31",
                       "main_supervisor_id": supervisor.id,
                       "placements": [{"placement_type": "akut", "start_date": "2026-09-01",
                                       "end_date": "2026-11-30", "unit_id": unit}]}),
            )
            .expect(201);
        let enrolment = e.body["id"].as_str().expect("id").to_string();
        let placement = e.body["placements"][0]["id"]
            .as_str()
            .expect("placement")
            .to_string();
        trainees.push((trainee, enrolment, placement));
    }
    Ward {
        admin,
        director,
        supervisor,
        slso,
        akut,
        geriatrik,
        trainees,
    }
}

/// Days later: access tokens live 15 minutes, so everyone signs in again.
fn days_later(app: &TestApp, w: &mut Ward, days: i64) {
    app.advance(days * 86_400);
    w.admin = app.login_totp(&w.admin);
    w.director = app.login_totp(&w.director);
    w.supervisor = app.login_totp(&w.supervisor);
    for t in &mut w.trainees {
        t.0 = app.login_totp(&t.0);
    }
}

fn answers(value: i64) -> Value {
    json!({"supervision": value, "workload": value, "on_call": value,
           "work_environment": value, "educational_quality": value})
}

fn evaluate(app: &TestApp, who: &TestUser, placement: &str, body: Value) -> crate::support::Resp {
    app.post(
        &format!("/placements/{placement}/evaluation"),
        Some(&who.access),
        body,
    )
}

#[test]
fn a_trainee_evaluates_a_placement_once_and_directors_see_groups_of_three_after_the_half_year() {
    let app = TestApp::start();
    let mut w = ward(&app);

    // The form names every question; the answers below use its keys.
    let form = app
        .get("/placement-evaluation-form", Some(&w.trainees[0].0.access))
        .expect(200);
    let keys: Vec<&str> = form.body["questions"]
        .as_array()
        .expect("questions")
        .iter()
        .map(|q| q["key"].as_str().expect("key"))
        .collect();
    assert_eq!(
        keys,
        [
            "supervision",
            "workload",
            "on_call",
            "work_environment",
            "educational_quality"
        ]
    );

    // 24 November: the placement ends on the 30th.
    let p0 = w.trainees[0].2.clone();
    let p0 = p0.as_str();
    evaluate(&app, &w.trainees[0].0, p0, json!({"answers": answers(4)}))
        .expect_problem(409, "conflict");
    days_later(&app, &mut w, 7); // 1 December
    let t0 = &w.trainees[0].0;

    // Every question, on the scale, and nothing else.
    let mut missing = answers(4);
    missing.as_object_mut().expect("object").remove("on_call");
    evaluate(&app, t0, p0, json!({"answers": missing})).expect_problem(422, "validation");
    evaluate(&app, t0, p0, json!({"answers": answers(6)})).expect_problem(422, "validation");
    let mut extra = answers(4);
    extra["salary"] = json!(1);
    evaluate(&app, t0, p0, json!({"answers": extra})).expect_problem(422, "validation");
    // Free text is screened for patient data like every other.
    evaluate(
        &app,
        t0,
        p0,
        json!({"answers": answers(4), "comment": "Patient 19121212-1212 var svår."}),
    )
    .expect_problem(422, "patient-data-suspected");

    // Only the trainee evaluates: not the supervisor, not the director, and another
    // trainee does not even learn that the placement exists.
    evaluate(&app, &w.supervisor, p0, json!({"answers": answers(1)}))
        .expect_problem(403, "forbidden");
    evaluate(&app, &w.director, p0, json!({"answers": answers(1)}))
        .expect_problem(403, "forbidden");
    evaluate(&app, &w.trainees[1].0, p0, json!({"answers": answers(1)}))
        .expect_problem(404, "not-found");

    let made = evaluate(
        &app,
        t0,
        p0,
        json!({"answers": answers(4), "comment": "Bra handledning på akuten."}),
    )
    .expect(201);
    assert_eq!(made.body["half_year"], "2026-H2");
    assert_eq!(made.body["unit_id"], w.akut.as_str());
    assert_eq!(
        made.header("location"),
        Some(format!("/api/v1/placements/{p0}/evaluation").as_str())
    );
    // Once.
    evaluate(&app, t0, p0, json!({"answers": answers(2)})).expect_problem(409, "conflict");

    // The trainee reads it back; nobody else does.
    let own = app
        .get(&format!("/placements/{p0}/evaluation"), Some(&t0.access))
        .expect(200);
    assert_eq!(own.body["answers"], answers(4));
    for other in [&w.supervisor, &w.director, &w.admin] {
        app.get(&format!("/placements/{p0}/evaluation"), Some(&other.access))
            .expect_problem(403, "forbidden");
    }
    app.get(
        &format!("/placements/{p0}/evaluation"),
        Some(&w.trainees[1].0.access),
    )
    .expect_problem(404, "not-found");

    // Two more at the emergency unit, one at geriatrics.
    for (n, (value, comment)) in [(2, "Tung jour."), (3, "Alldeles för hög arbetsbörda.")]
        .into_iter()
        .enumerate()
    {
        let (t, _, p) = &w.trainees[n + 1];
        evaluate(
            &app,
            t,
            p,
            json!({"answers": answers(value), "comment": comment}),
        )
        .expect(201);
    }
    let (t3, _, p3) = &w.trainees[3];
    evaluate(
        &app,
        t3,
        p3,
        json!({"answers": answers(1), "comment": "Ensam på avdelningen."}),
    )
    .expect(201);

    // The half-year is still running: nothing is shown yet.
    let summary = format!(
        "/organisations/{}/placement-evaluations?half_year=2026-H2",
        w.slso
    );
    app.get(&summary, Some(&w.director.access))
        .expect_problem(409, "conflict");

    days_later(&app, &mut w, 31); // 1 January 2027
    let t0 = &w.trainees[0].0;
    let s = app.get(&summary, Some(&w.director.access)).expect(200);
    let units = s.body["units"].as_array().expect("units");
    assert_eq!(units.len(), 2, "{}", s.text);
    let akut = &units[0];
    assert_eq!(akut["unit_name"], "Akutkliniken");
    assert_eq!(akut["suppressed"], false);
    assert_eq!(akut["responses"], 3);
    assert_eq!(akut["means"]["supervision"], 3.0);
    assert_eq!(
        akut["comments"],
        json!([
            "Alldeles för hög arbetsbörda.",
            "Bra handledning på akuten.",
            "Tung jour."
        ])
    );
    // One answer at geriatrics: marked, and nothing of it shown.
    let geri = &units[1];
    assert_eq!(geri["unit_id"], w.geriatrik.as_str());
    assert_eq!(geri["suppressed"], true);
    assert_eq!(geri["responses"], Value::Null);
    assert_eq!(geri["means"], json!({}));
    assert_eq!(geri["comments"], json!([]));
    assert!(!s.text.contains("Ensam"), "{}", s.text);

    // The region's administrator reads it too; a unit's own subtree only that unit.
    app.get(&summary, Some(&w.admin.access)).expect(200);
    let unit_only = app
        .get(
            &format!(
                "/organisations/{}/placement-evaluations?half_year=2026-H2",
                w.akut
            ),
            Some(&w.director.access),
        )
        .expect(200);
    assert_eq!(unit_only.body["units"].as_array().map(Vec::len), Some(1));
    // Not for supervisors or trainees; a malformed half-year is refused.
    app.get(&summary, Some(&w.supervisor.access))
        .expect_problem(403, "forbidden");
    app.get(&summary, Some(&t0.access))
        .expect_problem(403, "forbidden");
    app.get(
        &format!(
            "/organisations/{}/placement-evaluations?half_year=2026-H3",
            w.slso
        ),
        Some(&w.director.access),
    )
    .expect_problem(422, "validation");
    app.get(
        "/organisations/no-such-org/placement-evaluations?half_year=2026-H2",
        Some(&w.director.access),
    )
    .expect_problem(404, "not-found");
    // The first half of 2026 had none.
    let empty = app
        .get(
            &format!(
                "/organisations/{}/placement-evaluations?half_year=2026-H1",
                w.slso
            ),
            Some(&w.director.access),
        )
        .expect(200);
    assert_eq!(empty.body["units"], json!([]));
}

#[test]
fn one_evaluation_sent_many_times_at_once_is_recorded_once() {
    let app = TestApp::start();
    let mut w = ward(&app);
    days_later(&app, &mut w, 7);
    let (t0, _, p0) = &w.trainees[0];
    let barrier = std::sync::Barrier::new(4);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let barrier = &barrier;
                let app = &app;
                scope.spawn(move || {
                    barrier.wait();
                    app.send(
                        "POST",
                        &format!("/placements/{p0}/evaluation"),
                        Some(&t0.access),
                        Some(&json!({"answers": answers(i + 1)})),
                        &[("Idempotency-Key", &format!("eval-{i}"))],
                    )
                    .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        3,
        "{statuses:?}"
    );
}

#[test]
fn group_reviews_are_recorded_by_supervisors_and_read_by_the_trainee() {
    let app = TestApp::start();
    let w = ward(&app);
    let (t0, e0, _) = &w.trainees[0];
    let path = format!("/enrolments/{e0}/group-reviews");
    let review = json!({"held_on": "2026-11-20", "outcome": "needs_support",
                        "summary": "Följer planen; behöver fler akuta bedömningar under våren."});

    // The trainee does not record their own review; a stranger does not see the plan.
    app.post(&path, Some(&t0.access), review.clone())
        .expect_problem(403, "forbidden");
    let stranger = app.join(&w.admin, "annan@sll.se", "supervisor", &w.slso);
    app.post(&path, Some(&stranger.access), review.clone())
        .expect_problem(404, "not-found");
    // Not in the future, not empty, a known outcome.
    let mut future = review.clone();
    future["held_on"] = json!("2026-12-24");
    app.post(&path, Some(&w.supervisor.access), future)
        .expect_problem(422, "validation");
    let mut empty = review.clone();
    empty["summary"] = json!("   ");
    app.post(&path, Some(&w.supervisor.access), empty)
        .expect_problem(422, "validation");
    let mut odd = review.clone();
    odd["outcome"] = json!("excellent");
    assert!(matches!(
        app.post(&path, Some(&w.supervisor.access), odd).status,
        400 | 422
    ));

    let made = app
        .post(&path, Some(&w.supervisor.access), review)
        .expect(201);
    let id = made.body["id"].as_str().expect("id").to_string();
    assert_eq!(made.body["recorded_by"], w.supervisor.id.as_str());
    assert_eq!(
        made.header("location"),
        Some(format!("/api/v1/group-reviews/{id}").as_str())
    );
    app.post(
        &path,
        Some(&w.director.access),
        json!({"held_on": "2026-11-24", "outcome": "on_track", "summary": "Kollegium efter tre månader."}),
    )
    .expect(201);

    // The trainee reads them, oldest first, and one by one.
    let list = app.get(&path, Some(&t0.access)).expect(200);
    let items = list.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["outcome"], "needs_support");
    assert_eq!(items[1]["outcome"], "on_track");
    app.get(&format!("/group-reviews/{id}"), Some(&t0.access))
        .expect(200);
    // Another trainee sees neither the list nor the review.
    let other = &w.trainees[1].0;
    app.get(&path, Some(&other.access))
        .expect_problem(404, "not-found");
    app.get(&format!("/group-reviews/{id}"), Some(&other.access))
        .expect_problem(404, "not-found");
}
