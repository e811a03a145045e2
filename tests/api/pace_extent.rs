//! Issue 14, item 2: pace and time served follow time served, not the calendar.
//! Employment extent is a history (a move to 75 % in March does not rewrite January),
//! parental leave is not "behind", and the projected end follows both.

use serde_json::{json, Value};

use crate::pace_world::{id, long_world, utc, World};
use crate::support::TestUser;

/// A BT year from 1 January 2026, supervised by `main`.
fn year(main: &TestUser) -> Value {
    json!({"placements": [
        {"placement_type": "allmanmedicin", "start_date": "2026-01-01", "end_date": "2026-04-30", "supervisor_id": main.id},
        {"placement_type": "akut", "start_date": "2026-05-01", "end_date": "2026-08-31", "supervisor_id": main.id},
        {"placement_type": "geriatrik", "start_date": "2026-09-01", "end_date": "2026-10-31", "supervisor_id": main.id},
        {"placement_type": "psykiatri", "start_date": "2026-11-01", "end_date": "2026-12-31", "supervisor_id": main.id}]})
}

fn served(w: &World, enrolment: &str, who: &TestUser, as_of: &str) -> Value {
    w.app
        .get(
            &format!("/enrolments/{enrolment}/time-served?as_of={as_of}"),
            Some(&who.access),
        )
        .expect(200)
        .body
}

#[test]
fn a_move_to_75_percent_in_march_and_parental_leave_shape_time_served_pace_and_the_end() {
    let w = long_world();
    let app = &w.app;
    let trainee = w.person("deltid@sll.se", "trainee");
    let main = w.person("hhl.deltid@sll.se", "supervisor");
    let e = w.enrol(&trainee, &main, "2026-01-01", "2026-12-31", year(&main));
    let enrolment = id(&e);
    assert_eq!(e["extent_percent"], 100);
    assert_eq!(
        e["extent_periods"].as_array().expect("periods").len(),
        1,
        "{e}"
    );
    // Parental leave in May and June.
    app.post(
        &format!("/enrolments/{enrolment}/leave-periods"),
        Some(&w.director.access),
        json!({"kind": "parental", "start_date": "2026-05-01", "end_date": "2026-06-30"}),
    )
    .expect(201);
    // From 1 March at 75 %: recorded by the director of studies.
    let change = app
        .post(
            &format!("/enrolments/{enrolment}/extent-changes"),
            Some(&w.director.access),
            json!({"valid_from": "2026-03-01", "extent_percent": 75}),
        )
        .expect(201)
        .body;
    assert_eq!(change["valid_from"], "2026-03-01");
    assert_eq!(change["extent_percent"], 75);
    assert!(change["valid_to"].is_null(), "{change}");

    let now = app
        .get(&format!("/enrolments/{enrolment}"), Some(&trainee.access))
        .expect(200)
        .body;
    assert_eq!(now["extent_percent"], 75, "today's extent");
    let periods = now["extent_periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 2);
    assert_eq!(periods[0]["valid_from"], "2026-01-01");
    assert_eq!(periods[0]["valid_to"], "2026-02-28");
    assert_eq!(periods[0]["extent_percent"], 100);

    // January and February stay at full time: 59 days.
    assert_eq!(
        served(&w, &enrolment, &trainee, "2026-02-28")["served_days"],
        59.0
    );
    // March at 75 %: 23.25 more.
    assert_eq!(
        served(&w, &enrolment, &trainee, "2026-03-31")["served_days"],
        82.25
    );
    // May and June on leave add nothing: 59 + 61 x 0.75 by the end of April, and the same
    // at the end of June.
    let april = served(&w, &enrolment, &trainee, "2026-04-30");
    let june = served(&w, &enrolment, &trainee, "2026-06-30");
    assert_eq!(april["served_days"], 104.75);
    assert_eq!(june["served_days"], 104.75);
    assert_eq!(june["leave_days"], 61.0);
    // The rest of the year at 75 %: 184 days give 138. Twelve months (365.25 days) need
    // 122.5 more after New Year at 75 %: 164 days, so 13 June 2027.
    let year_end = served(&w, &enrolment, &trainee, "2026-12-31");
    assert_eq!(year_end["served_days"], 242.75);
    assert_eq!(year_end["projected_end"], "2027-06-13", "{year_end}");

    // Pace at the end of the leave: the akut placement, all on leave so far, expects
    // nothing yet, and two months without supervision are no gap.
    app.clock.set(utc(2026, 6, 30, 10, 0));
    let p = w.progress(&enrolment, &trainee);
    let akut = p["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .find(|c| c["placement_type"] == "akut")
        .expect("akut");
    assert_eq!(akut["elapsed"], 0.0, "{akut}");
    for item in akut["items"].as_array().expect("items") {
        assert_eq!(item["expected_by_now"], 0.0, "{item}");
    }
    assert_eq!(p["pace"]["days_since_supervision"], 0, "{p}");
    assert_eq!(p["pace"]["supervision_overdue"], false, "{p}");
    let codes: Vec<&str> = p["pace"]["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert!(!codes.contains(&"supervision_overdue"), "{p}");
    // Two weeks back at work without a session: due every 14 days, not yet overdue; a
    // day later it is.
    app.clock.set(utc(2026, 7, 14, 10, 0));
    let p = w.progress(&enrolment, &trainee);
    assert_eq!(p["pace"]["days_since_supervision"], 14, "{p}");
    assert_eq!(p["pace"]["supervision_overdue"], false, "{p}");
    app.clock.set(utc(2026, 7, 15, 10, 0));
    let p = w.progress(&enrolment, &trainee);
    assert_eq!(p["pace"]["supervision_overdue"], true, "{p}");
}

#[test]
fn only_those_who_manage_the_plan_record_a_change_of_extent() {
    let w = long_world();
    let app = &w.app;
    let trainee = w.person("andring@sll.se", "trainee");
    let main = w.person("hhl.andring@sll.se", "supervisor");
    let stranger = w.person("annan.hhl@sll.se", "supervisor");
    let other = w.person("annan.st@sll.se", "trainee");
    let e = w.enrol(&trainee, &main, "2026-01-01", "2026-12-31", year(&main));
    let enrolment = id(&e);
    let path = format!("/enrolments/{enrolment}/extent-changes");
    let body = json!({"valid_from": "2026-09-01", "extent_percent": 50});
    let before = app
        .get(
            &format!("/enrolments/{enrolment}"),
            Some(&w.director.access),
        )
        .expect(200);
    // The trainee and the main supervisor see the plan but may not change it.
    for who in [&trainee, &main] {
        app.post(&path, Some(&who.access), body.clone())
            .expect_problem(403, "forbidden");
    }
    // Those with no part in it are not told it exists.
    for who in [&stranger, &other] {
        app.post(&path, Some(&who.access), body.clone())
            .expect_problem(404, "not-found");
    }
    app.post(&path, None, body.clone())
        .expect_problem(401, "unauthenticated");
    app.post(
        "/enrolments/no-such-enrolment/extent-changes",
        Some(&w.director.access),
        body.clone(),
    )
    .expect_problem(404, "not-found");
    let after = app
        .get(
            &format!("/enrolments/{enrolment}"),
            Some(&w.director.access),
        )
        .expect(200);
    assert_eq!(after.body, before.body, "the refusals changed nothing");

    // Bad input is a 422 with the field.
    for (bad, field) in [
        (
            json!({"valid_from": "2025-12-31", "extent_percent": 50}),
            "valid_from",
        ),
        (
            json!({"valid_from": "2026-09-01", "extent_percent": 5}),
            "extent_percent",
        ),
        (
            json!({"valid_from": "2026-09-01", "extent_percent": 101}),
            "extent_percent",
        ),
    ] {
        let r = app
            .post(&path, Some(&w.director.access), bad)
            .expect_problem(422, "validation");
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.body);
    }
    // The director records it; the same day again is a correction, not a second period.
    app.post(&path, Some(&w.director.access), body.clone())
        .expect(201);
    app.post(
        &path,
        Some(&w.director.access),
        json!({"valid_from": "2026-09-01", "extent_percent": 60}),
    )
    .expect(201);
    let now = app
        .get(&format!("/enrolments/{enrolment}"), Some(&trainee.access))
        .expect(200)
        .body;
    let periods = now["extent_periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 2, "{now}");
    assert_eq!(periods[1]["extent_percent"], 60);
    // After a change from a date, a whole-enrolment correction would rewrite months
    // already served: refused, the history stays.
    let etag = app
        .get(
            &format!("/enrolments/{enrolment}"),
            Some(&w.director.access),
        )
        .expect(200);
    let etag = etag.header("etag").expect("etag").to_string();
    app.patch(
        &format!("/enrolments/{enrolment}"),
        Some(&w.director.access),
        json!({"extent_percent": 80}),
        &[("If-Match", &etag)],
    )
    .expect_problem(409, "conflict");
    // The change is in the history.
    let changes = app
        .get(
            &format!("/enrolments/{enrolment}/changes"),
            Some(&main.access),
        )
        .expect(200)
        .body;
    assert!(
        changes["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|c| c["entity"] == "extent_period"),
        "{changes}"
    );
}
