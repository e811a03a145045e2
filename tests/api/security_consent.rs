//! Consent and one-time things (issue 12, items 6, 7, 12 in part and 16 in part): a role
//! is the person's to accept, a signing link goes only to a vetted person, and a link,
//! a signature or an invitation counts once however many requests race for it.

use std::sync::Barrier;

use serde_json::{json, Value};

use crate::support::{TestApp, TestUser, PASSWORD};

struct Ward {
    app: TestApp,
    admin: TestUser,
    region: String,
    provider: String,
    director: TestUser,
    template: String,
    trainee: TestUser,
    supervisor: TestUser,
    enrolment: String,
}

fn enrol(
    app: &TestApp,
    director: &TestUser,
    template: &str,
    trainee: &TestUser,
    main: &TestUser,
) -> String {
    app.post(
        "/enrolments",
        Some(&director.access),
        json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
               "start_date": "2026-09-01", "planned_end": "2027-08-31", "main_supervisor_id": main.id}),
    )
    .expect(201)
    .body["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn ward() -> Ward {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let provider = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(
        &admin,
        "studierektor@sll.se",
        "director_of_studies",
        &provider,
    );
    let template = app.stockholm_bt_template(&director, &provider);
    let trainee = app.join(&director, "bt.lakare@gmail.com", "trainee", &provider);
    let supervisor = app.join(&director, "hhl@sll.se", "supervisor", &provider);
    let enrolment = enrol(&app, &director, &template, &trainee, &supervisor);
    Ward {
        app,
        admin,
        region,
        provider,
        director,
        template,
        trainee,
        supervisor,
        enrolment,
    }
}

/// The trainee asks `email` (no account) for a Mini-CEX.
fn ask(w: &Ward, trainee: &TestUser, enrolment: &str, email: &str) -> Value {
    w.app
        .post(
            &format!("/enrolments/{enrolment}/assessments"),
            Some(&trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-11-20", "assessor_email": email,
                   "assessor_name": "Nora Akut", "assessor_workplace": "Akutkliniken, Södersjukhuset"}),
        )
        .expect(201)
        .body
}

/// The id of the pending vetting of `email` that `vetter` sees.
fn pending_vetting(w: &Ward, vetter: &TestUser, email: &str) -> String {
    let list = w
        .app
        .get("/external-assessors", Some(&vetter.access))
        .expect(200);
    list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|x| x["email"] == email)
        .unwrap_or_else(|| panic!("{email} not pending for the vetter: {}", list.text))["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// Asks, has the main supervisor approve, and returns (assessment id, link token).
fn vetted_link(w: &Ward, email: &str) -> (String, String) {
    let a = ask(w, &w.trainee, &w.enrolment, email);
    let id = pending_vetting(w, &w.supervisor, email);
    let before = w.app.smtp.count_to(email);
    w.app
        .post(
            &format!("/external-assessors/{id}/approve"),
            Some(&w.supervisor.access),
            json!({}),
        )
        .expect(200);
    let token = w
        .app
        .smtp
        .wait_for(email, before)
        .find_token_after("token=")
        .expect("signing link");
    (a["id"].as_str().expect("id").to_string(), token)
}

/// Sends the same request `n` times at once, each from its own thread and HTTP agent,
/// released together by a barrier. Returns each answer's status and body.
fn at_once(
    app: &TestApp,
    n: usize,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Vec<(u16, Value)> {
    let url = format!("{}/api/v1{path}", app.base);
    let barrier = Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (url, body, barrier) = (url.clone(), body.clone(), &barrier);
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new().build();
                    let mut req = agent.post(&url);
                    if let Some(t) = token {
                        req = req.set("Authorization", &format!("Bearer {t}"));
                    }
                    barrier.wait();
                    let r = TestApp::read(req.send_json(body));
                    (r.status, r.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

fn exactly_one_success(answers: &[(u16, Value)]) -> Value {
    let ok: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one success: {answers:?}");
    for (s, b) in answers.iter().filter(|(s, _)| *s != 200) {
        assert!(
            *s == 409 || *s == 422,
            "the others are refused as used: {s} {b}"
        );
    }
    ok[0].1.clone()
}

/// Audit entries of `action` on `entity_id` in the enrolment's history.
fn audited(w: &Ward, action: &str, entity_id: &str) -> usize {
    let changes = w
        .app
        .get(
            &format!("/enrolments/{}/changes?limit=200", w.enrolment),
            Some(&w.director.access),
        )
        .expect(200);
    changes.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["action"] == action && c["entity_id"] == entity_id)
        .count()
}

// ---- Item 6: bulk import asks for consent ----------------------------------------

#[test]
fn a_bulk_import_cannot_grant_a_role_to_another_providers_account() {
    let w = ward();
    // Someone of another care provider, with an account of their own.
    let other = w
        .app
        .create_org(&w.admin, "care_provider", "Capio", Some(&w.region));
    let other_director = w.app.join(
        &w.admin,
        "studierektor@capio.example",
        "director_of_studies",
        &other,
    );
    let victim = w.app.join(
        &other_director,
        "kirurg@capio.example",
        "supervisor",
        &other,
    );
    let before = w.app.smtp.count_to(&victim.email);

    let report = w
        .app
        .post(
            "/imports/users",
            Some(&w.director.access),
            json!([
                {"email": victim.email, "role": "external_assessor", "organisation_id": w.provider},
                {"email": "ny.bedomare@example.org", "role": "external_assessor", "organisation_id": w.provider},
            ]),
        )
        .expect(201);
    let items = report.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", report.text);
    // The report reads the same whether the address had an account or not.
    for item in items {
        assert_eq!(item["status"], "invited", "{}", report.text);
        assert!(item["user_id"].is_null(), "{}", report.text);
        assert!(item["invitation_id"].is_string(), "{}", report.text);
    }
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(&items[0]), keys(&items[1]));
    assert!(!report.text.contains(&victim.id), "{}", report.text);

    // No role until they accept; the importer sees nothing of the account.
    let me = w.app.get("/me", Some(&victim.access)).expect(200);
    // Exactly the role they had: an empty list would pass a "none at this provider" check.
    let roles: Vec<(&str, &str)> = me.body["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| {
            (
                r["role"].as_str().expect("role"),
                r["organisation_id"].as_str().expect("organisation_id"),
            )
        })
        .collect();
    assert_eq!(roles, [("supervisor", other.as_str())], "{}", me.text);
    w.app
        .get(&format!("/users/{}", victim.id), Some(&w.director.access))
        .expect_problem(404, "not-found");
    let users = w
        .app
        .get(
            &format!("/users?organisation_id={}&limit=200", w.provider),
            Some(&w.director.access),
        )
        .expect(200);
    assert!(!users.text.contains(&victim.email), "{}", users.text);
    // Nor does an enrolment import reach it: it reads exactly as an unknown address.
    let refused = |email: &str| {
        let r = w
            .app
            .post(
                "/imports/enrolments",
                Some(&w.director.access),
                json!([{"email": email, "template_id": w.template, "track": "bt_standalone",
                        "start_date": "2026-09-01", "planned_end": "2027-08-31"}]),
            )
            .expect_problem(422, "validation");
        r.body["errors"].clone()
    };
    assert_eq!(refused(&victim.email), refused("finns.inte@example.org"));
    let trainee_elsewhere = w
        .app
        .join(&other_director, "bt@capio.example", "trainee", &other);
    assert_eq!(
        refused(&trainee_elsewhere.email),
        refused("finns.inte@example.org")
    );

    // The person decides: the invitation mail, accepted with their own password.
    let token = w
        .app
        .smtp
        .wait_for(&victim.email, before)
        .find_token_after("token=")
        .expect("invitation");
    let accepted = w
        .app
        .post(
            &format!("/auth/invitations/{token}/accept"),
            None,
            json!({"password": PASSWORD}),
        )
        .expect(200);
    assert_eq!(accepted.body["status"], "role_granted");
    let me = w.app.get("/me", Some(&victim.access)).expect(200);
    assert!(me.body["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .any(|r| r["organisation_id"] == w.provider.as_str() && r["role"] == "external_assessor"));
}

// ---- Item 7: signing links only to vetted people ---------------------------------

#[test]
fn a_trainee_cannot_get_a_signing_link_to_an_unvetted_address() {
    let w = ward();
    let mine = "privat.adress@hotmail.com";
    let before_main = w.app.smtp.count_to(&w.supervisor.email);
    let a = ask(&w, &w.trainee, &w.enrolment, mine);
    assert_eq!(a["status"], "awaiting_vetting");
    let id = a["id"].as_str().expect("id");
    // The main supervisor is told; the address gets nothing.
    let told = w.app.smtp.wait_for(&w.supervisor.email, before_main);
    assert!(told.body_text().contains(mine), "{}", told.body_text());
    assert_eq!(w.app.smtp.count_to(mine), 0);

    // Asking again while pending sends nothing either, and needs no second vetting.
    let again = ask(&w, &w.trainee, &w.enrolment, mine);
    assert_eq!(again["status"], "awaiting_vetting");

    // The trainee neither sees nor decides on the vetting; nor does an unrelated
    // supervisor.
    let theirs = w
        .app
        .get("/external-assessors", Some(&w.trainee.access))
        .expect(200);
    assert_eq!(theirs.body["items"], json!([]), "{}", theirs.text);
    let vetting = pending_vetting(&w, &w.director, mine);
    let listed = w
        .app
        .get("/external-assessors", Some(&w.director.access))
        .expect(200);
    let row = &listed.body["items"][0];
    assert_eq!(row["name"], "Nora Akut");
    assert_eq!(row["workplace"], "Akutkliniken, Södersjukhuset");
    assert_eq!(row["requested_by"], w.trainee.id.as_str());
    w.app
        .post(
            &format!("/external-assessors/{vetting}/approve"),
            Some(&w.trainee.access),
            json!({}),
        )
        .expect_problem(404, "not-found");
    let unrelated = w
        .app
        .join(&w.director, "annan.hhl@sll.se", "supervisor", &w.provider);
    w.app
        .post(
            &format!("/external-assessors/{vetting}/approve"),
            Some(&unrelated.access),
            json!({}),
        )
        .expect_problem(404, "not-found");
    w.app
        .get(&format!("/assessments/{id}"), Some(&w.trainee.access))
        .expect(200);
    assert_eq!(w.app.smtp.count_to(mine), 0);

    // The director declines: both requests return to the trainee as drafts.
    let before_trainee = w.app.smtp.count_to(&w.trainee.email);
    let declined = w
        .app
        .post(
            &format!("/external-assessors/{vetting}/decline"),
            Some(&w.director.access),
            json!({}),
        )
        .expect(200);
    assert_eq!(declined.body["status"], "declined");
    assert_eq!(declined.body["decided_by"], w.director.id.as_str());
    w.app.smtp.wait_for(&w.trainee.email, before_trainee);
    let back = w
        .app
        .get(&format!("/assessments/{id}"), Some(&w.trainee.access))
        .expect(200);
    assert_eq!(back.body["status"], "draft");
    assert!(back.body["assessor_email"].is_null());
    // Deciding twice, and asking the declined person again, are refused.
    w.app
        .post(
            &format!("/external-assessors/{vetting}/approve"),
            Some(&w.director.access),
            json!({}),
        )
        .expect_problem(409, "conflict");
    w.app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": "dops", "performed_on": "2026-11-21", "assessor_email": mine}),
        )
        .expect_problem(422, "validation");
    assert_eq!(w.app.smtp.count_to(mine), 0);
}

#[test]
fn a_trainee_cannot_name_their_own_address_as_assessor() {
    let w = ward();
    let path = format!("/enrolments/{}/assessments", w.enrolment);
    for own in [
        "BT.Lakare@Gmail.com",
        "bt.lakare+mcx@gmail.com",
        "btlakare@gmail.com",
        "b.t.lakare@googlemail.com",
    ] {
        w.app
            .post(
                &path,
                Some(&w.trainee.access),
                json!({"instrument": "mini_cex", "performed_on": "2026-11-20", "assessor_email": own,
                       "assessor_name": "Jag", "assessor_workplace": "Hemma"}),
            )
            .expect_problem(422, "validation");
    }
    let pending = w
        .app
        .get("/external-assessors", Some(&w.director.access))
        .expect(200);
    assert_eq!(pending.body["items"], json!([]), "{}", pending.text);
    // A person not yet vetted must be named (name and workplace) for the approver.
    w.app
        .post(
            &path,
            Some(&w.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-11-20", "assessor_email": "okand@example.org"}),
        )
        .expect_problem(422, "validation");
}

#[test]
fn a_vetted_assessor_is_vetted_once_for_every_trainee_of_the_organisation() {
    let w = ward();
    let email = "narakut.lakare@hotmail.com";
    let (first, _) = vetted_link(&w, email);
    let now = w
        .app
        .get(&format!("/assessments/{first}"), Some(&w.trainee.access))
        .expect(200);
    assert_eq!(now.body["status"], "awaiting_signature");

    // The same trainee again, and another trainee of the organisation: the link goes at once.
    let other = w
        .app
        .join(&w.director, "annan.bt@sll.se", "trainee", &w.provider);
    let other_enrolment = enrol(&w.app, &w.director, &w.template, &other, &w.supervisor);
    for (trainee, enrolment) in [(&w.trainee, &w.enrolment), (&other, &other_enrolment)] {
        let before = w.app.smtp.count_to(email);
        let a = w
            .app
            .post(
                &format!("/enrolments/{enrolment}/assessments"),
                Some(&trainee.access),
                json!({"instrument": "dops", "performed_on": "2026-11-22", "assessor_email": email}),
            )
            .expect(201);
        assert_eq!(a.body["status"], "awaiting_signature", "{}", a.text);
        w.app
            .smtp
            .wait_for(email, before)
            .find_token_after("token=")
            .expect("link");
    }
    let pending = w
        .app
        .get("/external-assessors", Some(&w.director.access))
        .expect(200);
    assert_eq!(pending.body["items"], json!([]), "{}", pending.text);
}

#[test]
fn the_dossier_names_who_vetted_a_link_signed_assessment() {
    let w = ward();
    let (id, token) = vetted_link(&w, "narakut.lakare@hotmail.com");
    w.app
        .post(
            &format!("/auth/signing-links/{token}/sign"),
            None,
            json!({"ratings": {"communication": 6}, "feedback_next_steps": "Sammanfatta för patienten."}),
        )
        .expect(200);
    let dossier = w
        .app
        .get(
            &format!("/enrolments/{}/dossier", w.enrolment),
            Some(&w.director.access),
        )
        .expect(200);
    let d = &dossier.body["dossier"];
    let a = d["assessments"]
        .as_array()
        .expect("assessments")
        .iter()
        .find(|a| a["id"] == id.as_str())
        .expect("the signed assessment");
    assert_eq!(a["assessor_vetted_by"], w.supervisor.id.as_str(), "{a}");
    assert!(d["people"]
        .as_array()
        .expect("people")
        .iter()
        .any(|p| p["id"] == w.supervisor.id.as_str()));
}

// ---- Item 12: one-time on PostgreSQL too -----------------------------------------

#[test]
fn the_same_signing_link_sent_at_once_signs_once() {
    let w = ward();
    let (id, token) = vetted_link(&w, "narakut.lakare@hotmail.com");
    let answers = at_once(
        &w.app,
        6,
        &format!("/auth/signing-links/{token}/sign"),
        None,
        json!({"ratings": {"communication": 6}, "feedback_next_steps": "Sammanfatta för patienten."}),
    );
    let signed = exactly_one_success(&answers);
    assert_eq!(signed["status"], "signed");
    assert_eq!(audited(&w, "signed", &id), 1);
}

#[test]
fn the_same_signing_link_declined_at_once_declines_once() {
    let w = ward();
    let (id, token) = vetted_link(&w, "narakut.lakare@hotmail.com");
    let answers = at_once(
        &w.app,
        6,
        &format!("/auth/signing-links/{token}/decline"),
        None,
        json!({"reason": "Fel person."}),
    );
    exactly_one_success(&answers);
    assert_eq!(audited(&w, "declined", &id), 1);
}

#[test]
fn the_same_assessment_signed_in_the_app_at_once_is_signed_once() {
    let w = ward();
    let a = w
        .app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-11-20", "assessor_id": w.supervisor.id}),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id").to_string();
    let answers = at_once(
        &w.app,
        6,
        &format!("/assessments/{id}/sign"),
        Some(&w.supervisor.access),
        json!({"ratings": {"communication": 6}, "feedback_next_steps": "Sammanfatta för patienten."}),
    );
    exactly_one_success(&answers);
    assert_eq!(audited(&w, "signed", &id), 1);
}

#[test]
fn the_same_assessor_approved_at_once_sends_one_link() {
    let w = ward();
    let email = "narakut.lakare@hotmail.com";
    let a = ask(&w, &w.trainee, &w.enrolment, email);
    let id = a["id"].as_str().expect("id").to_string();
    let vetting = pending_vetting(&w, &w.supervisor, email);
    let answers = at_once(
        &w.app,
        6,
        &format!("/external-assessors/{vetting}/approve"),
        Some(&w.supervisor.access),
        json!({}),
    );
    let approved = exactly_one_success(&answers);
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decided_by"], w.supervisor.id.as_str());
    assert_eq!(audited(&w, "requested", &id), 1);
    // The refused approvals rolled back before sending anything: one link in all.
    w.app.smtp.wait_for(email, 0);
    assert_eq!(w.app.smtp.count_to(email), 1);
}

#[test]
fn the_same_invitation_accepted_at_once_makes_one_account() {
    let w = ward();
    let email = "ny.hhl@sll.se";
    let token = w.app.invite(&w.director, email, "supervisor", &w.provider);
    let answers = at_once(
        &w.app,
        6,
        &format!("/auth/invitations/{token}/accept"),
        None,
        json!({"password": PASSWORD}),
    );
    let accepted = exactly_one_success(&answers);
    assert_eq!(accepted["status"], "mfa_enrolment_required");
    let users = w
        .app
        .get(
            &format!("/users?organisation_id={}&limit=200", w.provider),
            Some(&w.director.access),
        )
        .expect(200);
    let found: Vec<_> = users.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|u| u["email"] == email)
        .collect();
    assert_eq!(found.len(), 1, "{}", users.text);
    assert_eq!(
        found[0]["roles"].as_array().expect("roles").len(),
        1,
        "{}",
        users.text
    );
}

#[test]
fn the_same_invitation_for_an_existing_account_accepted_at_once_grants_one_role() {
    let w = ward();
    let other = w
        .app
        .create_org(&w.admin, "care_provider", "Capio", Some(&w.region));
    let token = w
        .app
        .invite(&w.admin, &w.supervisor.email, "supervisor", &other);
    let answers = at_once(
        &w.app,
        6,
        &format!("/auth/invitations/{token}/accept"),
        None,
        json!({"password": PASSWORD}),
    );
    let accepted = exactly_one_success(&answers);
    assert_eq!(accepted["status"], "role_granted");
    let me = w.app.get("/me", Some(&w.supervisor.access)).expect(200);
    let at_other = me.body["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter(|r| r["organisation_id"] == other.as_str())
        .count();
    assert_eq!(at_other, 1, "{}", me.text);
}

// ---- Item 16: accepting for an existing account is rate-limited like login --------

#[test]
fn accepting_an_invitation_cannot_be_used_to_guess_an_accounts_password() {
    let w = ward();
    let other = w
        .app
        .create_org(&w.admin, "care_provider", "Capio", Some(&w.region));
    let token = w
        .app
        .invite(&w.admin, &w.supervisor.email, "supervisor", &other);
    let accept = format!("/auth/invitations/{token}/accept");
    let max = w.app.config.rate_limits.login_per_account.max;
    for i in 0..max {
        w.app
            .post(
                &accept,
                None,
                json!({"password": format!("fel gissning {i}")}),
            )
            .expect_problem(401, "invalid-credentials");
    }
    // The limit holds for the right password too, and for login to the same account.
    let limited = w.app.post(&accept, None, json!({"password": PASSWORD}));
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert!(limited.header("retry-after").is_some());
    let login = w.app.login_step(&w.supervisor.email, PASSWORD, None);
    assert_eq!(login.status, 429, "{}", login.text);
    // After the window the owner accepts.
    w.app
        .advance(w.app.config.rate_limits.login_per_account.window.as_secs() as i64 + 1);
    w.app
        .post(&accept, None, json!({"password": PASSWORD}))
        .expect(200);
}

#[test]
fn an_assessor_name_cannot_forge_lines_in_the_vetting_mail() {
    let w = ward();
    let path = format!("/enrolments/{}/assessments", w.enrolment);
    for (name, workplace) in [
        ("Nora\r\nBcc: alla@sll.se", "Akutkliniken"),
        ("Nora Akut", "Akut\u{202E}kliniken"),
    ] {
        let r = w
            .app
            .post(
                &path,
                Some(&w.trainee.access),
                json!({"instrument": "mini_cex", "performed_on": "2026-11-20",
                       "assessor_email": "nora@example.org",
                       "assessor_name": name, "assessor_workplace": workplace}),
            )
            .expect_problem(422, "validation");
        let fields: Vec<&str> = r.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(fields.len(), 1, "{}", r.text);
        assert!(fields[0].starts_with("assessor_"), "{}", r.text);
    }
    // Nothing waits for vetting, and no mail asked anyone to vet.
    let pending = w
        .app
        .get("/external-assessors", Some(&w.director.access))
        .expect(200);
    assert_eq!(pending.body["items"], json!([]), "{}", pending.text);
}

#[test]
fn a_trainee_cannot_tell_from_naming_an_assessor_whether_the_address_has_an_account() {
    let w = ward();
    // The director has an account but no supervisor role; the other address has none.
    let with_account = ask(&w, &w.trainee, &w.enrolment, &w.director.email);
    let without = ask(&w, &w.trainee, &w.enrolment, "ingen.alls@example.org");
    for a in [&with_account, &without] {
        assert_eq!(a["status"], "awaiting_vetting", "{a}");
        assert_eq!(a["assessor_id"], Value::Null, "{a}");
    }
    let keys = |v: &Value| {
        v.as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&with_account), keys(&without));
    // Both wait for the same vetting, which the main supervisor decides.
    pending_vetting(&w, &w.supervisor, &w.director.email);
    pending_vetting(&w, &w.supervisor, "ingen.alls@example.org");
}
