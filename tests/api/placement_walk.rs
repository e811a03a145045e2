//! One placement from start to handover, as the "done when" describes it: the
//! trainee's log, assessments signed and declined, supervision, the handover talk, the
//! summary assessment, corrections, retries, conflicts, mails and the audit chain.

use serde_json::json;

use crate::support::TestApp;

#[test]
fn a_placement_walked_from_first_activity_to_handover() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    let template = app.stockholm_bt_template(&director, &slso);
    let trainee = app.join(&director, "bt@sll.se", "trainee", &slso);
    let main = app.join(&director, "hhl@sll.se", "supervisor", &slso);
    let akut = app.join(&director, "tjg.akut@sll.se", "supervisor", &slso);
    let geri = app.join(&director, "tjg.geriatrik@outlook.com", "supervisor", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&director.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31", "main_supervisor_id": main.id,
                   "placements": [
                       {"placement_type": "akut", "start_date": "2026-09-01", "end_date": "2026-12-31", "supervisor_id": akut.id},
                       {"placement_type": "geriatrik", "start_date": "2027-01-01", "end_date": "2027-02-28", "supervisor_id": geri.id}]}),
        )
        .expect(201);
    let enrolment = e.body["id"].as_str().expect("id").to_string();
    let placement = e.body["placements"][0]["id"]
        .as_str()
        .expect("p")
        .to_string();
    let next = e.body["placements"][1]["id"]
        .as_str()
        .expect("p")
        .to_string();
    let t = Some(trainee.access.as_str());

    // 1. Learning activities, one with a course certificate; a retry makes no duplicate.
    let activities = format!("/enrolments/{enrolment}/activities");
    let course = json!({"id": "5b7c2c1a-1f4e-4d8e-9a55-0d2f7e9b3c41", "kind": "course", "title": "Akut omhändertagande",
                        "start_date": "2026-09-15", "placement_id": placement, "delmal": ["BT1"]});
    let key = [("Idempotency-Key", "walk-activity-1")];
    let made = app
        .send("POST", &activities, t, Some(&course), &key)
        .expect(201);
    app.send("POST", &activities, t, Some(&course), &key)
        .expect(201);
    app.post(&activities, t, json!({"kind": "clinical_work", "title": "Jour", "start_date": "2026-09-20", "delmal": ["BT1", "BT13"]}))
        .expect(201);
    assert_eq!(
        app.get(&format!("{activities}?delmal=BT1"), t)
            .expect(200)
            .body["items"]
            .as_array()
            .expect("items")
            .len(),
        2
    );
    let upload = format!(
        "/activities/{}/attachments?filename=intyg.pdf",
        made.body["id"].as_str().expect("id")
    );
    app.send_raw("POST", &upload, t, "application/pdf", b"%PDF-1.4 kursintyg")
        .expect(201);

    // 2. A Mini-CEX signed, a DOPS declined; each step mails the other side.
    let assessments = format!("/enrolments/{enrolment}/assessments");
    let before = app.smtp.count_to(&akut.email);
    let mini = app
        .post(&assessments, t, json!({"instrument": "mini_cex", "performed_on": "2026-10-01", "assessor_id": akut.id, "placement_id": placement, "delmal": ["BT1"]}))
        .expect(201);
    let mini_id = mini.body["id"].as_str().expect("id").to_string();
    app.smtp.wait_for(&akut.email, before);
    let before = app.smtp.count_to(&trainee.email);
    app.post(
        &format!("/assessments/{mini_id}/sign"),
        Some(&akut.access),
        json!({"ratings": {"overall": 6}, "feedback_strengths": "Lugn.", "feedback_next_steps": "Fler sepsisfall."}),
    )
    .expect(200);
    app.smtp.wait_for(&trainee.email, before);
    let dops = app
        .post(
            &assessments,
            t,
            json!({"instrument": "dops", "performed_on": "2026-10-02", "assessor_id": akut.id}),
        )
        .expect(201);
    let before = app.smtp.count_to(&trainee.email);
    app.post(
        &format!(
            "/assessments/{}/decline",
            dops.body["id"].as_str().expect("id")
        ),
        Some(&akut.access),
        json!({"reason": "Inte observerat."}),
    )
    .expect(200);
    assert!(app
        .smtp
        .wait_for(&trainee.email, before)
        .body_text()
        .contains("Inte observerat."));

    // 3. The signed Mini-CEX cannot be edited; a correction version can, and is signed.
    app.patch(
        &format!("/assessments/{mini_id}"),
        Some(&akut.access),
        json!({"feedback_strengths": "x"}),
        &[],
    )
    .expect_problem(409, "conflict");
    let fix = app
        .post(
            &format!("/assessments/{mini_id}/corrections"),
            Some(&akut.access),
            json!({"ratings": {"overall": 7}}),
        )
        .expect(201);
    let fix_id = fix.body["id"].as_str().expect("id").to_string();
    // Two devices: the stale one gets 412.
    let etag = fix.header("etag").expect("etag").to_string();
    app.patch(
        &format!("/assessments/{fix_id}"),
        Some(&akut.access),
        json!({"feedback_strengths": "Lugn och strukturerad."}),
        &[("If-Match", &etag)],
    )
    .expect(200);
    app.patch(
        &format!("/assessments/{fix_id}"),
        Some(&akut.access),
        json!({"feedback_strengths": "Från telefonen."}),
        &[("If-Match", &etag)],
    )
    .expect_problem(412, "precondition-failed");
    app.post(
        &format!("/assessments/{fix_id}/sign"),
        Some(&akut.access),
        json!({}),
    )
    .expect(200);
    assert_eq!(
        app.get(&format!("/assessments/{mini_id}"), t)
            .expect(200)
            .body["superseded_by"],
        fix_id.as_str()
    );

    // 4. An ad hoc supervision session, confirmed by the supervisor.
    let session = app
        .post(
            &format!("/enrolments/{enrolment}/supervision-sessions"),
            Some(&main.access),
            json!({"held_on": "2026-10-15", "topics": ["Halvtidsavstämning"], "notes": "Går bra.", "delmal": ["BT1"]}),
        )
        .expect(201);
    app.post(
        &format!(
            "/supervision-sessions/{}/confirm",
            session.body["id"].as_str().expect("id")
        ),
        t,
        json!({}),
    )
    .expect(200);

    // 5. The summary assessment of the placement, by its supervisor.
    let summary = app
        .post(
            &format!("/enrolments/{enrolment}/summary-assessments"),
            Some(&akut.access),
            json!({"placement_id": placement, "judgements": [{"code": "BT1", "judgement": "progressing"}], "overall": "God utveckling."}),
        )
        .expect(201);
    app.post(
        &format!(
            "/summary-assessments/{}/sign",
            summary.body["id"].as_str().expect("id")
        ),
        Some(&akut.access),
        json!({}),
    )
    .expect(200);

    // 6. The handover talk, confirmed by all four.
    let before = app.smtp.count_to(&geri.email);
    let talk = app
        .post(
            &format!("/enrolments/{enrolment}/handover-talks"),
            t,
            json!({"held_on": "2026-12-28", "placement_id": placement, "next_placement_id": next,
                   "outgoing_supervisor_id": akut.id, "incoming_supervisor_id": geri.id,
                   "handover": {"delmal_status": [{"code": "BT1", "status": "in_progress"}], "strengths": "Akuta bedömningar.",
                                "areas_to_develop": "Prioritering.", "plan_next_placement": "CbD om palliativ vård."}}),
        )
        .expect(201);
    assert!(app
        .smtp
        .wait_for(&geri.email, before)
        .subject()
        .contains("Överlämningssamtal"));
    let talk_id = talk.body["id"].as_str().expect("id").to_string();
    for who in [&main, &akut, &geri] {
        app.post(
            &format!("/handover-talks/{talk_id}/confirm"),
            Some(&who.access),
            json!({}),
        )
        .expect(200);
    }
    assert_eq!(
        app.get(&format!("/handover-talks/{talk_id}"), t)
            .expect(200)
            .body["status"],
        "confirmed"
    );

    // 7. Everything is in the audit chain, and a tampered row is found.
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let v = eportfolio::audit::verify(&mut conn).expect("verify");
    assert!(v.intact && v.entries > 15, "{v:?}");
    use diesel::RunQueryDsl;
    diesel::sql_query("UPDATE audit_log SET actor_id = NULL WHERE seq = 5")
        .execute(&mut *conn)
        .expect("tamper");
    let v = eportfolio::audit::verify(&mut conn).expect("verify");
    assert!(!v.intact);
    assert_eq!(v.first_broken, Some(5));
}
