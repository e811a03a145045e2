//! A restricted account (GDPR Art. 18) is read-only wherever the person acts: their
//! profile, their personal identity, their signatures and confirmations in others'
//! portfolios as supervisor. It is hidden from the people list; administrators find it
//! under `/restrictions`. Lifted, everything works again.

use serde_json::json;

use crate::support::ward::{ward, Ward};
use crate::support::{Resp, TestUser};

fn assessment_asked_of_supervisor(w: &Ward) -> String {
    w.app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-14", "assessor_id": w.supervisor.id,
                   "context": {"setting (outpatient, inpatient, emergency)": "emergency"},
                   "delmal": ["BT1"], "trainee_reflection": "Reflektion."}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn sign(w: &Ward, id: &str) -> Resp {
    w.app.post(
        &format!("/assessments/{id}/sign"),
        Some(&w.supervisor.access),
        json!({"ratings": {"communication": 7}, "entrustment": 4,
               "feedback_strengths": "Bra.", "feedback_next_steps": "Öva status."}),
    )
}

fn rename(w: &Ward, who: &TestUser, name: &str) -> Resp {
    w.app
        .patch("/me", Some(&who.access), json!({"display_name": name}), &[])
}

fn listed(w: &Ward, who: &TestUser) -> bool {
    let list = w
        .app
        .get("/users?limit=100", Some(&w.admin.access))
        .expect(200);
    list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|u| u["id"] == who.id.as_str())
}

fn restrict(w: &Ward, who: &TestUser) -> String {
    w.app
        .post(
            "/restrictions",
            Some(&w.admin.access),
            json!({"subject_kind": "account", "subject_id": who.id, "reason": "Begäran 2026-11"}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string()
}

#[test]
fn a_restricted_supervisor_cannot_sign_or_change_their_profile_and_is_unlisted() {
    let w = ward();
    let app = &w.app;
    let asked = assessment_asked_of_supervisor(&w);
    assert!(listed(&w, &w.supervisor));
    let restriction = restrict(&w, &w.supervisor);

    // As supervisor, in someone else's (unrestricted) portfolio: no signature.
    sign(&w, &asked).expect_problem(409, "processing-restricted");
    app.get(&format!("/assessments/{asked}"), Some(&w.trainee.access))
        .expect(200)
        .body["signed_at"]
        .is_null()
        .then_some(())
        .expect("not signed");
    // Their own profile and personal identity: read-only, whoever changes them.
    rename(&w, &w.supervisor, "Nytt Namn").expect_problem(409, "processing-restricted");
    let path = format!("/users/{}/personal-identity", w.supervisor.id);
    app.patch(
        &path,
        Some(&w.supervisor.access),
        json!({"hsa_id": "se2321000016-15R7"}),
        &[],
    )
    .expect_problem(409, "processing-restricted");
    app.patch(
        &path,
        Some(&w.admin.access),
        json!({"hsa_id": "se2321000016-15R7"}),
        &[],
    )
    .expect_problem(409, "processing-restricted");
    // Reads go on; the people list leaves them out, the restrictions list has them.
    app.get("/me", Some(&w.supervisor.access)).expect(200);
    assert!(!listed(&w, &w.supervisor));
    assert!(listed(&w, &w.trainee));
    app.get(
        &format!("/users/{}", w.supervisor.id),
        Some(&w.admin.access),
    )
    .expect(200);
    let r = app
        .get("/restrictions?in_force=true", Some(&w.admin.access))
        .expect(200);
    assert_eq!(r.body["items"][0]["subject_id"], w.supervisor.id.as_str());
    // The other people of the enrolment carry on: the trainee still records.
    app.post(
        &format!("/enrolments/{}/activities", w.enrolment),
        Some(&w.trainee.access),
        json!({"kind": "course", "title": "Kurs", "start_date": "2026-10-06"}),
    )
    .expect(201);

    // Lifted: signs, renames, listed again.
    app.post(
        &format!("/restrictions/{restriction}/lift"),
        Some(&w.admin.access),
        json!({}),
    )
    .expect(200);
    sign(&w, &asked).expect(200);
    rename(&w, &w.supervisor, "Nytt Namn").expect(200);
    assert!(listed(&w, &w.supervisor));
}

#[test]
fn a_restricted_trainee_cannot_rename_themselves_but_can_still_export() {
    let w = ward();
    restrict(&w, &w.trainee);
    rename(&w, &w.trainee, "Annat Namn").expect_problem(409, "processing-restricted");
    assert!(!listed(&w, &w.trainee));
    // The right of access is not restricted.
    w.app
        .send("GET", "/me/export", Some(&w.trainee.access), None, &[])
        .expect(200);
}
