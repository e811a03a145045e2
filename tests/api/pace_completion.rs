//! Issue 14, item 3: a positive final decision completes the enrolment, which leaves the
//! at-risk lists; after "not yet" the enrolment stays active and its pace names what is
//! missing.

use serde_json::{json, Value};

use crate::pace_world::{id, world, World};
use crate::support::TestUser;

/// A whole BT year from 1 November 2025, supervised by `main`.
fn year(main: &TestUser) -> Value {
    json!({"placements": [
        {"placement_type": "allmanmedicin", "start_date": "2025-11-01", "end_date": "2026-02-28", "supervisor_id": main.id},
        {"placement_type": "akut", "start_date": "2026-03-01", "end_date": "2026-06-30", "supervisor_id": main.id},
        {"placement_type": "geriatrik", "start_date": "2026-07-01", "end_date": "2026-08-31", "supervisor_id": main.id},
        {"placement_type": "psykiatri", "start_date": "2026-09-01", "end_date": "2026-10-31", "supervisor_id": main.id}]})
}

/// A committee final assessment for `enrolment`, every delmål judged as `judge` says,
/// signed by both members, with `(decision, missing)`; returns the decided assessment.
fn decide(
    w: &World,
    enrolment: &str,
    trainee: &TestUser,
    main: &TestUser,
    members: [&TestUser; 2],
    judge: impl Fn(&str) -> &'static str,
    (decision, missing): (&str, &str),
) -> Value {
    let app = &w.app;
    let check_in = app
        .post(
            &format!("/enrolments/{enrolment}/final-check-ins"),
            Some(&main.access),
            json!({"held_on": "2026-11-01", "notes": "Genomgång av hela året."}),
        )
        .expect(201);
    app.post(
        &format!("/final-check-ins/{}/confirm", id(&check_in.body)),
        Some(&trainee.access),
        json!({}),
    )
    .expect(200);
    let judgements: Vec<Value> = (1..=18)
        .map(|n| format!("BT{n}"))
        .map(|c| json!({"code": c, "judgement": judge(&c)}))
        .collect();
    let fa = app
        .post(
            &format!("/enrolments/{enrolment}/final-assessments"),
            Some(&w.director.access),
            json!({"mode": "committee", "committee_member_ids": [members[0].id, members[1].id],
                   "judgements": judgements, "decision": decision, "missing": missing}),
        )
        .expect(201)
        .body;
    let sign = format!("/final-assessments/{}/sign", id(&fa));
    app.post(&sign, Some(&members[0].access), json!({}))
        .expect(200);
    let decided = app
        .post(&sign, Some(&members[1].access), json!({}))
        .expect(200)
        .body;
    assert_eq!(decided["status"], "decided", "{decided}");
    decided
}

#[test]
fn a_positive_final_decision_completes_the_enrolment_and_takes_it_off_the_at_risk_list() {
    let w = world();
    let app = &w.app;
    let trainee = w.person("klar@sll.se", "trainee");
    let main = w.person("hhl.klar@sll.se", "supervisor");
    let m1 = w.person("kkk1@sll.se", "supervisor");
    let m2 = w.person("kkk2@sll.se", "supervisor");
    // A year that ended before the test clock (2026-11-24), with no evidence recorded:
    // at risk until the final assessment says otherwise.
    let e = w.enrol(&trainee, &main, "2025-11-01", "2026-10-31", year(&main));
    let enrolment = id(&e);
    assert_eq!(w.progress(&enrolment, &trainee)["pace"]["flag"], "at_risk");
    assert!(w.cohort("?pace=at_risk").contains(&enrolment));

    decide(
        &w,
        &enrolment,
        &trainee,
        &main,
        [&m1, &m2],
        |_| "achieved",
        ("achieved", ""),
    );

    let now = app
        .get(&format!("/enrolments/{enrolment}"), Some(&trainee.access))
        .expect(200)
        .body;
    assert_eq!(now["status"], "completed", "{now}");
    let progress = w.progress(&enrolment, &trainee);
    assert_eq!(progress["pace"]["flag"], "on_pace", "{progress}");
    assert_eq!(progress["final_decision"], "achieved");
    assert!(!w.cohort("?pace=at_risk").contains(&enrolment));
    assert!(
        !w.cohort("").contains(&enrolment),
        "the default list is the active one"
    );
    assert!(w.cohort("?status=completed").contains(&enrolment));
    // The history says why the status changed, without a person behind it.
    let changes = app
        .get(
            &format!("/enrolments/{enrolment}/changes"),
            Some(&main.access),
        )
        .expect(200)
        .body;
    let completed = changes["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["action"] == "completed")
        .unwrap_or_else(|| panic!("no completion in {changes}"));
    assert_eq!(completed["entity"], "enrolment");
    assert!(completed["actor_id"].is_null(), "{completed}");
}

#[test]
fn after_not_yet_the_enrolment_stays_active_and_its_pace_names_what_is_missing() {
    let w = world();
    let app = &w.app;
    let trainee = w.person("snart@sll.se", "trainee");
    let main = w.person("hhl.snart@sll.se", "supervisor");
    let m1 = w.person("kkk3@sll.se", "supervisor");
    let m2 = w.person("kkk4@sll.se", "supervisor");
    let e = w.enrol(&trainee, &main, "2025-11-01", "2026-10-31", year(&main));
    let enrolment = id(&e);
    let missing = "Fler observerade bedömningar i akut sjukvård.";
    decide(
        &w,
        &enrolment,
        &trainee,
        &main,
        [&m1, &m2],
        |c| {
            if c == "BT1" || c == "BT7" {
                "not_yet"
            } else {
                "achieved"
            }
        },
        ("not_yet", missing),
    );
    let now = app
        .get(&format!("/enrolments/{enrolment}"), Some(&trainee.access))
        .expect(200)
        .body;
    assert_eq!(now["status"], "active", "{now}");
    let progress = w.progress(&enrolment, &trainee);
    let reasons = progress["pace"]["reasons"].as_array().expect("reasons");
    let reason = reasons
        .iter()
        .find(|r| r["code"] == "final_assessment_not_yet")
        .unwrap_or_else(|| panic!("no not-yet reason in {progress}"));
    let message = reason["message"].as_str().expect("message");
    assert!(message.contains("BT1, BT7"), "{message}");
    assert!(message.contains(missing), "{message}");
    assert!(w.cohort("").contains(&enrolment));
}
