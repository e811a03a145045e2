//! Issue 17: an erasure keeps what a kursledare signed. A trainee has a course the
//! kursledare confirmed and another whose request is still waiting for the vetting; the
//! administrator's erasure keeps the first (named in the answer's `kept`) and erases the
//! second with its request, and the course certificate still prints the kursledare.

use serde_json::{json, Value};

use crate::certificates::{by_key, lines};
use crate::kursledare::{course, KURSLEDARE};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn an_erasure_keeps_a_course_its_kursledare_confirmed_and_names_it() {
    let c = course("st-2021", "st_2021", "STb1");
    let app = c.app();
    let token = c.vetted_link();
    app.post(
        &format!("/auth/course-confirmation-links/{token}/confirm"),
        None,
        json!({}),
    )
    .expect(200);
    let confirmed = c.confirmation(&c.trainee);
    assert_eq!(confirmed["status"], "confirmed", "{confirmed}");

    // A second course whose kursledare is named but not yet vetted: a pending request.
    let pending = id(&app
        .post(
            &format!("/enrolments/{}/activities", c.enrolment),
            Some(&c.trainee.access),
            json!({"kind": "course", "title": "Kurs i akut omhändertagande", "start_date": "2026-05-04",
                   "delmal": ["STb1"]}),
        )
        .expect(201)
        .body);
    let asked = app
        .post(
            &format!("/activities/{pending}/course-confirmation"),
            Some(&c.trainee.access),
            json!({"kursledare_email": "lina.lund@akutkurs.se", "kursledare_name": "Lina Lund",
                   "kursledare_workplace": "Akutkurs Norr AB"}),
        )
        .expect(201)
        .body;
    assert_eq!(asked["status"], "awaiting_vetting", "{asked}");

    // Only an administrator over the enrolment erases.
    let path = format!("/enrolments/{}/erasure", c.enrolment);
    for who in [&c.trainee, &c.main] {
        app.post(&path, Some(&who.access), json!({}))
            .expect_problem(404, "not-found");
    }
    let answer = app
        .post(&path, Some(&c.r.admin.access), json!({}))
        .expect(200)
        .body;
    assert_eq!(answer["erased"]["activities"], 1, "{answer}");
    assert_eq!(answer["erased"]["course_confirmations"], 1, "{answer}");
    let kept = answer["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .find(|k| k["kind"] == "confirmed_courses")
        .cloned()
        .unwrap_or_else(|| panic!("confirmed courses not named: {answer}"));
    assert_eq!(kept["count"], 1, "{answer}");
    assert!(
        kept["reason"]
            .as_str()
            .is_some_and(|r| r.contains("kursledare")),
        "{kept}"
    );

    // The confirmed course and its confirmation stay as they were; the pending one went.
    let course = app
        .get(
            &format!("/activities/{}", c.course),
            Some(&c.trainee.access),
        )
        .expect(200)
        .body;
    assert_eq!(course["title"], "Kurs i palliativ vård för ST-läkare");
    assert_eq!(course["delmal"], json!(["STb1"]), "{course}");
    assert_eq!(c.confirmation(&c.trainee), confirmed);
    app.get(&format!("/activities/{pending}"), Some(&c.trainee.access))
        .expect_problem(404, "not-found");
    app.get(
        &format!("/activities/{pending}/course-confirmation"),
        Some(&c.trainee.access),
    )
    .expect(404);
    // A second erasure finds nothing left and still names the course.
    let again = app
        .post(&path, Some(&c.r.admin.access), json!({}))
        .expect(200)
        .body;
    assert!(
        again["erased"]
            .as_object()
            .expect("erased")
            .values()
            .all(|n| n == 0),
        "{again}"
    );

    // The course certificate still names the kursledare: in the application summary,
    // and on the certificate after the decision (JSON and PDF).
    let entry = c.summary_entry();
    assert_eq!(entry["signatures"][0]["name"], "Kåre Örnberg", "{entry}");
    let fa = c.decide_st();
    let drafts = c.r.certificates(&fa, &c.trainee);
    let key = format!("utbildningsaktivitet-{}", c.course);
    assert_eq!(
        lines(by_key(&drafts, &key)),
        [(
            "kursledare eller handledare".to_string(),
            Some("Kåre Örnberg".to_string())
        )]
    );
    assert!(
        !drafts
            .iter()
            .any(|d| d["key"] == format!("utbildningsaktivitet-{pending}")),
        "{drafts:?}"
    );
    let text = c.r.pdf_text(&fa, &key, &c.trainee);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "Kurs i palliativ vård för ST-läkare",
        "kursledare eller handledare: Kåre Örnberg",
        "Tjänsteställe: Läkarutbildning Väst, Göteborg",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert_eq!(app.smtp.count_to(KURSLEDARE), 1);

    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let v = eportfolio::audit::verify(&mut pool.get().expect("conn")).expect("verify");
    assert!(v.intact, "{v:?}");
}
