//! What the forms print about the people who sign (issue 14 item 8): a supervisor's
//! specialty, tjänsteställe and handledarutbildning on their account; an external
//! assessor's specialist status and training in assessment methods on their vetting
//! record, warned about when missing, and both in the dossier (JSON and PDF).

use serde_json::{json, Value};

use crate::support::{pdf, TestApp, TestUser};

struct Ward {
    app: TestApp,
    director: TestUser,
    trainee: TestUser,
    supervisor: TestUser,
    /// A director of studies of another care provider.
    director_b: TestUser,
    enrolment: String,
}

fn ward_with(adjust: impl FnOnce(&mut eportfolio::Config)) -> Ward {
    let app = TestApp::start_with(adjust);
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let other = app.create_org(&admin, "care_provider", "Capio", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    let director_b = app.join(
        &admin,
        "studierektor@capio.se",
        "director_of_studies",
        &other,
    );
    let template = app.stockholm_bt_template(&director, &slso);
    let trainee = app.join(&director, "bt@sll.se", "trainee", &slso);
    let supervisor = app.join(&director, "hhl@sll.se", "supervisor", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&director.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31", "main_supervisor_id": supervisor.id}),
        )
        .expect(201);
    Ward {
        enrolment: e.body["id"].as_str().expect("id").to_string(),
        app,
        director,
        trainee,
        supervisor,
        director_b,
    }
}

fn put(
    w: &Ward,
    who: &TestUser,
    user: &TestUser,
    body: Value,
    if_match: Option<&str>,
) -> crate::support::Resp {
    let headers: Vec<(&str, &str)> = if_match.map(|t| ("If-Match", t)).into_iter().collect();
    w.app.send(
        "PUT",
        &format!("/users/{}/signer-profile", user.id),
        Some(&who.access),
        Some(&body),
        &headers,
    )
}

#[test]
fn a_supervisor_states_specialty_workplace_and_training_and_only_they_and_directors_may() {
    let w = ward_with(|_| {});
    let path = format!("/users/{}/signer-profile", w.supervisor.id);
    // Nothing stated yet: version 0, every field null.
    let empty = w.app.get(&path, Some(&w.supervisor.access)).expect(200);
    assert_eq!(empty.body["version"], 0);
    assert!(empty.body["specialty"].is_null() && empty.body["workplace"].is_null());
    let etag0 = empty.header("etag").expect("etag").to_string();

    let mine = put(
        &w,
        &w.supervisor,
        &w.supervisor,
        json!({"specialty": "Allmänmedicin", "workplace": "Vårdcentral Årsta, Region Stockholm",
               "supervisor_training_on": "2024-03-15"}),
        Some(&etag0),
    )
    .expect(200);
    assert_eq!(mine.body["specialty"], "Allmänmedicin");
    assert_eq!(
        mine.body["workplace"],
        "Vårdcentral Årsta, Region Stockholm"
    );
    assert_eq!(mine.body["supervisor_training_on"], "2024-03-15");
    assert_eq!(mine.body["version"], 1);
    assert_eq!(mine.body["updated_by"], w.supervisor.id.as_str());
    // An edit based on what was read before is refused, not merged.
    put(
        &w,
        &w.supervisor,
        &w.supervisor,
        json!({"specialty": "Geriatrik"}),
        Some(&etag0),
    )
    .expect_problem(412, "precondition-failed");

    // The director of studies over the supervisor reads and corrects it.
    let seen = w.app.get(&path, Some(&w.director.access)).expect(200);
    assert_eq!(
        seen.body["workplace"],
        "Vårdcentral Årsta, Region Stockholm"
    );
    let tag = seen.header("etag").expect("etag").to_string();
    let fixed = put(
        &w,
        &w.director,
        &w.supervisor,
        json!({"specialty": "Allmänmedicin", "workplace": "Vårdcentral Årsta, Region Stockholm",
               "supervisor_training_on": "2024-03-14"}),
        Some(&tag),
    )
    .expect(200);
    assert_eq!(fixed.body["version"], 2);
    assert_eq!(fixed.body["updated_by"], w.director.id.as_str());

    // Nobody else: the trainee, a director elsewhere, no token.
    for who in [&w.trainee, &w.director_b] {
        w.app
            .get(&path, Some(&who.access))
            .expect_problem(404, "not-found");
        put(
            &w,
            who,
            &w.supervisor,
            json!({"specialty": "Kirurgi"}),
            None,
        )
        .expect_problem(404, "not-found");
    }
    w.app.get(&path, None).expect(401);
    let after = w.app.get(&path, Some(&w.supervisor.access)).expect(200);
    assert_eq!(after.body["specialty"], "Allmänmedicin");

    // What the forms print is checked: a training in the future, a date that is not one,
    // a line-forging character.
    let bad = put(
        &w,
        &w.supervisor,
        &w.supervisor,
        json!({"supervisor_training_on": "2099-01-01"}),
        None,
    )
    .expect_problem(422, "validation");
    assert_eq!(bad.body["errors"][0]["field"], "supervisor_training_on");
    put(
        &w,
        &w.supervisor,
        &w.supervisor,
        json!({"supervisor_training_on": "15/3 2024"}),
        None,
    )
    .expect_problem(422, "validation");
    let forged = put(
        &w,
        &w.supervisor,
        &w.supervisor,
        json!({"workplace": "Årsta\u{202e}ätsrÅ"}),
        None,
    )
    .expect_problem(422, "validation");
    assert_eq!(forged.body["errors"][0]["field"], "workplace");
    put(
        &w,
        &w.supervisor,
        &w.supervisor,
        json!({"title": "Överläkare"}),
        None,
    )
    .expect(400);
}

/// The trainee asks `email` (no account) for a Mini-CEX; returns the vetting record's id
/// as the main supervisor sees it.
fn ask_unvetted(w: &Ward, email: &str, qualifications: Option<Value>) -> Value {
    let mut body = json!({"instrument": "mini_cex", "performed_on": "2026-11-01", "assessor_email": email,
                          "assessor_name": "Nora Åkerlund", "assessor_workplace": "Akutkliniken, Södersjukhuset"});
    if let Some(q) = qualifications {
        body["assessor_qualifications"] = q;
    }
    let a = w
        .app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            body,
        )
        .expect(201);
    assert_eq!(a.body["status"], "awaiting_vetting");
    let list = w
        .app
        .get("/external-assessors", Some(&w.supervisor.access))
        .expect(200);
    list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|x| x["email"] == email)
        .cloned()
        .unwrap_or_else(|| panic!("{email} waits for vetting: {}", list.text))
}

#[test]
fn an_external_assessors_qualifications_are_warned_about_confirmed_and_printed() {
    let w = ward_with(|_| {});
    let email = "nora.akerlund@hotmail.com";
    // What the trainee states about a stranger is checked like any field.
    let bad = w
        .app
        .post(&format!("/enrolments/{}/assessments", w.enrolment), Some(&w.trainee.access),
              json!({"instrument": "mini_cex", "performed_on": "2026-11-01", "assessor_email": email,
                     "assessor_name": "Nora Åkerlund", "assessor_workplace": "Akutkliniken",
                     "assessor_qualifications": {"specialist": true, "assessment_training": false}}))
        .expect_problem(422, "validation");
    assert_eq!(
        bad.body["errors"][0]["field"],
        "assessor_qualifications.specialty"
    );

    // The trainee names a person neither a specialist nor trained in assessment: the
    // vetter sees both warnings (a warning, not a block, by default).
    let x = ask_unvetted(
        &w,
        email,
        Some(json!({"specialist": false, "assessment_training": false})),
    );
    assert_eq!(x["qualifications"]["specialist"], false);
    assert_eq!(
        x["qualification_warnings"],
        json!(["not_specialist", "no_assessment_training"])
    );
    assert!(x["qualifications"]["confirmed_by"].is_null());
    let id = x["id"].as_str().expect("id").to_string();
    let path = format!("/external-assessors/{id}/qualifications");
    let stated = json!({"specialist": true, "specialty": "Akutsjukvård", "assessment_training": true,
                        "assessment_training_detail": "Kurs i bedömningsmetoder, 2023-05-10"});

    // The trainee neither sees nor changes the vetting; nor does a director elsewhere.
    for who in [&w.trainee, &w.director_b] {
        w.app
            .send("PUT", &path, Some(&who.access), Some(&stated), &[])
            .expect_problem(404, "not-found");
    }
    // The main supervisor corrects what the trainee stated, then approves.
    let corrected = w
        .app
        .send("PUT", &path, Some(&w.supervisor.access), Some(&stated), &[])
        .expect(200);
    assert_eq!(corrected.body["qualification_warnings"], json!([]));
    assert_eq!(
        corrected.body["qualifications"]["specialty"],
        "Akutsjukvård"
    );
    let before = w.app.smtp.count_to(email);
    let approved = w
        .app
        .post(
            &format!("/external-assessors/{id}/approve"),
            Some(&w.supervisor.access),
            json!({}),
        )
        .expect(200);
    assert_eq!(
        approved.body["qualifications"]["confirmed_by"],
        w.supervisor.id.as_str()
    );
    // Decided: what the approval confirmed stays.
    w.app
        .send(
            "PUT",
            &path,
            Some(&w.supervisor.access),
            Some(&json!({"specialist": false, "assessment_training": false})),
            &[],
        )
        .expect_problem(409, "conflict");

    // The person signs by link.
    let token = w
        .app
        .smtp
        .wait_for(email, before)
        .find_token_after("token=")
        .expect("link");
    w.app
        .post(&format!("/auth/signing-links/{token}/sign"), None,
              json!({"ratings": {"communication": 6}, "feedback_next_steps": "Sammanfatta för patienten."}))
        .expect(200);

    // The supervisor states what the forms print about them.
    put(
        &w,
        &w.supervisor,
        &w.supervisor,
        json!({"specialty": "Allmänmedicin", "workplace": "Vårdcentral Årsta, Region Stockholm",
               "supervisor_training_on": "2024-03-15"}),
        None,
    )
    .expect(200);

    // The dossier carries both: the supervisor's fields among the people, the link
    // signer's qualifications on their assessment.
    let dossier_path = format!("/enrolments/{}/dossier", w.enrolment);
    let d = w
        .app
        .get(&dossier_path, Some(&w.supervisor.access))
        .expect(200);
    let d = &d.body["dossier"];
    let people = d["people"].as_array().expect("people");
    let hhl = people
        .iter()
        .find(|p| p["id"] == w.supervisor.id.as_str())
        .expect("supervisor in the dossier");
    assert_eq!(hhl["specialty"], "Allmänmedicin");
    assert_eq!(hhl["workplace"], "Vårdcentral Årsta, Region Stockholm");
    assert_eq!(hhl["supervisor_training_on"], "2024-03-15");
    let signed = &d["assessments"][0];
    assert_eq!(
        signed["assessor_qualifications"]["specialty"],
        "Akutsjukvård"
    );
    assert_eq!(
        signed["assessor_qualifications"]["assessment_training"],
        true
    );

    let pdf_dossier = w
        .app
        .send(
            "GET",
            &dossier_path,
            Some(&w.supervisor.access),
            None,
            &[("Accept", "application/pdf")],
        )
        .expect(200);
    let text = pdf::text(&pdf_dossier.bytes);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for expected in [
        "Specialitet, tjänsteställe och handledarutbildning",
        "Allmänmedicin",
        "Vårdcentral Årsta",
        "2024-03-15",
        "specialist i Akutsjukvård",
        "utbildad i bedömningsmetoder (Kurs i bedömningsmetoder, 2023-05-10)",
    ] {
        assert!(
            flat.contains(expected),
            "{expected:?} not in the PDF:\n{text}"
        );
    }
}

#[test]
fn a_region_that_requires_both_qualifications_blocks_the_approval_without_them() {
    let w = ward_with(|c| c.assessor_qualifications_required = true);
    // Nothing stated: both "not stated" warnings, and the approval is refused.
    let x = ask_unvetted(&w, "okand.bedomare@gmail.com", None);
    assert_eq!(
        x["qualification_warnings"],
        json!([
            "specialist_status_not_stated",
            "assessment_training_not_stated"
        ])
    );
    let id = x["id"].as_str().expect("id").to_string();
    let refused = w
        .app
        .post(
            &format!("/external-assessors/{id}/approve"),
            Some(&w.supervisor.access),
            json!({}),
        )
        .expect_problem(422, "validation");
    assert_eq!(refused.body["errors"][0]["field"], "qualifications");
    // Still pending; once stated (a specialist trained in assessment), it goes through.
    w.app
        .send("PUT", &format!("/external-assessors/{id}/qualifications"), Some(&w.director.access),
              Some(&json!({"specialist": true, "specialty": "Internmedicin", "assessment_training": true,
                           "assessment_training_detail": "2022"})), &[])
        .expect(200);
    w.app
        .post(
            &format!("/external-assessors/{id}/approve"),
            Some(&w.director.access),
            json!({}),
        )
        .expect(200);
}

#[test]
fn two_edits_of_the_same_version_at_once_store_one() {
    let w = ward_with(|_| {});
    let path = format!("/users/{}/signer-profile", w.supervisor.id);
    let tag = w
        .app
        .get(&path, Some(&w.supervisor.access))
        .expect(200)
        .header("etag")
        .expect("etag")
        .to_string();
    // The supervisor and the director both edit the empty profile they read.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let runs: Vec<_> = [(&w.supervisor, "Allmänmedicin"), (&w.director, "Geriatrik")]
            .into_iter()
            .map(|(who, specialty)| {
                let (w, tag) = (&w, &tag);
                scope.spawn(move || {
                    put(
                        w,
                        who,
                        &w.supervisor,
                        json!({"specialty": specialty}),
                        Some(tag),
                    )
                    .status
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("thread"))
            .collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert!(
        sorted == [200, 409] || sorted == [200, 412],
        "one edit applies, the other is refused: {statuses:?}"
    );
    let now = w.app.get(&path, Some(&w.supervisor.access)).expect(200);
    assert_eq!(now.body["version"], 1);
}
