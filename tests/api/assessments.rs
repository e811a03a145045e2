//! Formative assessments as the pilot's users wanted them: started by either side,
//! signed in one request, corrected without rewriting history.

use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

struct Ward {
    app: TestApp,
    admin: TestUser,
    care_provider: String,
    trainee: TestUser,
    supervisor: TestUser,
    /// An external supervisor with a private address, not assigned to the trainee.
    external: TestUser,
    enrolment: String,
}

/// SHA-256 (hex) of an assessment's signed content, computed from the API's view of it:
/// the fields the signature covers, as one JSON object with sorted keys.
fn signed_content_hash(a: &Value) -> String {
    use sha2::Digest;
    let fields = [
        "id",
        "enrolment_id",
        "instrument",
        "assessor_id",
        "placement_id",
        "performed_on",
        "context",
        "ratings",
        "entrustment",
        "feedback_strengths",
        "feedback_next_steps",
        "trainee_reflection",
        "delmal",
        "supersedes_id",
    ];
    let content: serde_json::Map<String, Value> = fields
        .iter()
        .map(|f| {
            let v = a
                .get(*f)
                .unwrap_or_else(|| panic!("assessment without {f}: {a}"));
            (f.to_string(), v.clone())
        })
        .collect();
    hex::encode(sha2::Sha256::digest(Value::Object(content).to_string()))
}

fn ward() -> Ward {
    ward_with(|_| {})
}

fn ward_with(adjust: impl FnOnce(&mut eportfolio::Config)) -> Ward {
    let app = TestApp::start_with(adjust);
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    let template = app.stockholm_bt_template(&director, &slso);
    let trainee = app.join(&director, "bt@sll.se", "trainee", &slso);
    let supervisor = app.join(&director, "hhl@sll.se", "supervisor", &slso);
    let external = app.join(&director, "kirurg.konsult@gmail.com", "supervisor", &slso);
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
        admin,
        care_provider: slso,
        trainee,
        supervisor,
        external,
    }
}

fn request(w: &Ward, instrument: &str, assessor: &TestUser) -> Value {
    w.app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": instrument, "performed_on": "2026-10-14", "assessor_id": assessor.id,
                   "context": {"setting (outpatient, inpatient, emergency)": "emergency"},
                   "delmal": ["BT1"], "trainee_reflection": "Jag glömde fråga om allergier."}),
        )
        .expect(201)
        .body
}

#[test]
fn a_requested_mini_cex_is_signed_in_one_request_and_corrected_as_a_new_version() {
    let w = ward();
    let before = w.app.smtp.count_to(&w.supervisor.email);
    let a = request(&w, "mini_cex", &w.supervisor);
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(a["status"], "awaiting_signature");
    // The supervisor is told, with a link straight to it.
    let mail = w.app.smtp.wait_for(&w.supervisor.email, before);
    assert!(mail.subject().contains("mini_cex"), "{}", mail.subject());
    assert!(mail
        .body_text()
        .contains(&format!("https://app.example/assessments/{id}")));
    let queue = w
        .app
        .get("/me/signature-queue", Some(&w.supervisor.access))
        .expect(200);
    assert_eq!(queue.body["items"][0]["id"], id.as_str());
    assert_eq!(
        w.app
            .get("/me/signature-queue", Some(&w.trainee.access))
            .expect(200)
            .body["items"],
        json!([])
    );

    // The trainee cannot rate or sign their own assessment.
    w.app
        .patch(
            &format!("/assessments/{id}"),
            Some(&w.trainee.access),
            json!({"ratings": {"overall": 9}}),
            &[],
        )
        .expect_problem(403, "forbidden");
    w.app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(&w.trainee.access),
            json!({}),
        )
        .expect_problem(403, "forbidden");

    // The supervisor starts on the phone, the phone sleeps, the draft is kept.
    let saved = w
        .app
        .patch(
            &format!("/assessments/{id}"),
            Some(&w.supervisor.access),
            json!({"ratings": {"communication": 7}}),
            &[],
        )
        .expect(200);
    assert_eq!(saved.body["ratings"], json!({"communication": 7}));
    w.app
        .patch(
            &format!("/assessments/{id}"),
            Some(&w.supervisor.access),
            json!({"ratings": {"communication": 12}}),
            &[],
        )
        .expect_problem(422, "validation");
    w.app
        .patch(
            &format!("/assessments/{id}"),
            Some(&w.supervisor.access),
            json!({"ratings": {"juggling": 5}}),
            &[],
        )
        .expect_problem(422, "validation");
    // Without feed forward there is nothing to sign.
    w.app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(&w.supervisor.access),
            json!({}),
        )
        .expect_problem(422, "validation");

    let before = w.app.smtp.count_to(&w.trainee.email);
    let signed = w
        .app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(&w.supervisor.access),
            json!({"ratings": {"communication": 7, "history taking (anamnes)": 6, "physical examination (status)": null},
                   "entrustment": 4, "feedback_strengths": "Strukturerad anamnes.", "feedback_next_steps": "Öva riktat status vid buksmärta."}),
        )
        .expect(200);
    assert_eq!(signed.body["status"], "signed");
    let signature = &signed.body["signature"];
    assert_eq!(signature["signed_by"], w.supervisor.id.as_str());
    assert_eq!(signature["method"], "totp");
    let hash = signature["content_hash"]
        .as_str()
        .expect("hash")
        .to_string();
    // Recomputed here from what the response shows, not only checked for its length:
    // the hash must cover exactly the signed content (the ratings, the feedback, ...).
    assert_eq!(hash, signed_content_hash(&signed.body), "{}", signed.text);
    let mail = w.app.smtp.wait_for(&w.trainee.email, before);
    assert!(mail.body_text().contains("Öva riktat status"));
    assert_eq!(
        w.app
            .get("/me/signature-queue", Some(&w.supervisor.access))
            .expect(200)
            .body["items"],
        json!([])
    );

    // Signed means immutable: no edit, no second signature, no deletion.
    w.app
        .patch(
            &format!("/assessments/{id}"),
            Some(&w.supervisor.access),
            json!({"feedback_strengths": "Ändrat i efterhand"}),
            &[],
        )
        .expect_problem(409, "conflict");
    w.app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(&w.supervisor.access),
            json!({}),
        )
        .expect_problem(409, "conflict");
    w.app
        .delete(&format!("/assessments/{id}"), Some(&w.trainee.access))
        .expect_problem(409, "conflict");

    // A correction is a new version by the signer; the original stays as signed.
    w.app
        .post(
            &format!("/assessments/{id}/corrections"),
            Some(&w.trainee.access),
            json!({}),
        )
        .expect_problem(403, "forbidden");
    let correction = w
        .app
        .post(
            &format!("/assessments/{id}/corrections"),
            Some(&w.supervisor.access),
            json!({"ratings": {"communication": 6, "history taking (anamnes)": 6}}),
        )
        .expect(201);
    let cid = correction.body["id"].as_str().expect("id").to_string();
    assert_eq!(correction.body["status"], "draft");
    assert_eq!(correction.body["supersedes_id"], id.as_str());
    assert_eq!(
        correction.body["feedback_next_steps"],
        "Öva riktat status vid buksmärta."
    );
    w.app
        .post(
            &format!("/assessments/{cid}/sign"),
            Some(&w.supervisor.access),
            json!({}),
        )
        .expect(200);
    let original = w
        .app
        .get(&format!("/assessments/{id}"), Some(&w.trainee.access))
        .expect(200);
    assert_eq!(original.body["superseded_by"], cid.as_str());
    assert_eq!(original.body["ratings"]["communication"], 7);
    assert_eq!(original.body["signature"]["content_hash"], hash.as_str());
    let all = w
        .app
        .get(
            &format!("/enrolments/{}/assessments?status=signed", w.enrolment),
            Some(&w.trainee.access),
        )
        .expect(200);
    assert_eq!(all.body["items"].as_array().expect("items").len(), 2);
    w.app
        .post(
            &format!("/assessments/{id}/corrections"),
            Some(&w.supervisor.access),
            json!({}),
        )
        .expect_problem(409, "conflict");
}

#[test]
fn an_external_supervisor_declines_a_dops_and_keeps_seeing_it() {
    let w = ward();
    // Not assigned to the trainee: the enrolment is not theirs to see...
    w.app
        .get(
            &format!("/enrolments/{}", w.enrolment),
            Some(&w.external.access),
        )
        .expect_problem(404, "not-found");
    let a = request(&w, "dops", &w.external);
    let id = a["id"].as_str().expect("id");
    // ...but what they were asked to assess is.
    let got = w
        .app
        .get(&format!("/assessments/{id}"), Some(&w.external.access))
        .expect(200);
    assert_eq!(got.body["instrument"], "dops");
    assert_eq!(
        w.app
            .get("/me/signature-queue", Some(&w.external.access))
            .expect(200)
            .body["items"][0]["id"],
        id
    );
    // DOPS rates on its own three-level scale.
    w.app
        .patch(
            &format!("/assessments/{id}"),
            Some(&w.external.access),
            json!({"ratings": {"asepsis": 4}}),
            &[],
        )
        .expect_problem(422, "validation");
    w.app
        .post(
            &format!("/assessments/{id}/decline"),
            Some(&w.external.access),
            json!({"reason": " "}),
        )
        .expect_problem(422, "validation");
    w.app
        .post(
            &format!("/assessments/{id}/decline"),
            Some(&w.supervisor.access),
            json!({"reason": "Inte min"}),
        )
        .expect_problem(403, "forbidden");
    let before = w.app.smtp.count_to(&w.trainee.email);
    let declined = w
        .app
        .post(
            &format!("/assessments/{id}/decline"),
            Some(&w.external.access),
            json!({"reason": "Jag observerade inte ingreppet."}),
        )
        .expect(200);
    assert_eq!(declined.body["status"], "declined");
    assert_eq!(
        declined.body["decline_reason"],
        "Jag observerade inte ingreppet."
    );
    assert!(w
        .app
        .smtp
        .wait_for(&w.trainee.email, before)
        .body_text()
        .contains("Jag observerade inte ingreppet."));
    w.app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(&w.external.access),
            json!({}),
        )
        .expect_problem(409, "conflict");
    w.app
        .get(&format!("/assessments/{id}"), Some(&w.external.access))
        .expect(200);
    let declined_list = w
        .app
        .get(
            &format!(
                "/enrolments/{}/assessments?status=declined&instrument=dops",
                w.enrolment
            ),
            Some(&w.supervisor.access),
        )
        .expect(200);
    assert_eq!(
        declined_list.body["items"].as_array().expect("items").len(),
        1
    );
}

#[test]
fn a_supervisor_records_an_assessment_directly_and_drafts_can_be_deleted() {
    let w = ward();
    let path = format!("/enrolments/{}/assessments", w.enrolment);
    let direct = w
        .app
        .post(&path, Some(&w.supervisor.access), json!({"instrument": "cbd", "performed_on": "2026-10-20", "ratings": {"treatment": 5}, "delmal": ["BT15"]}))
        .expect(201);
    assert_eq!(direct.body["status"], "draft");
    assert_eq!(direct.body["assessor_id"], w.supervisor.id.as_str());
    let id = direct.body["id"].as_str().expect("id");
    w.app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(&w.supervisor.access),
            json!({"feedback_next_steps": "Läs på om interaktioner."}),
        )
        .expect(200);
    assert_eq!(
        w.app
            .get(&format!("{path}?delmal=BT15"), Some(&w.trainee.access))
            .expect(200)
            .body["items"][0]["status"],
        "signed"
    );
    // An unassigned supervisor may not record one for this trainee.
    w.app
        .post(
            &path,
            Some(&w.external.access),
            json!({"instrument": "cbd", "performed_on": "2026-10-20"}),
        )
        .expect_problem(404, "not-found");

    // The trainee drafts, thinks again, deletes; then drafts and asks later.
    let draft = w
        .app
        .post(
            &path,
            Some(&w.trainee.access),
            json!({"instrument": "sit_in", "performed_on": "2026-10-21"}),
        )
        .expect(201);
    let did = draft.body["id"].as_str().expect("id");
    w.app
        .delete(&format!("/assessments/{did}"), Some(&w.supervisor.access))
        .expect_problem(403, "forbidden");
    w.app
        .delete(&format!("/assessments/{did}"), Some(&w.trainee.access))
        .expect(204);
    w.app
        .get(&format!("/assessments/{did}"), Some(&w.trainee.access))
        .expect_problem(404, "not-found");
    let later = w
        .app
        .post(
            &path,
            Some(&w.trainee.access),
            json!({"instrument": "sit_in", "performed_on": "2026-10-22"}),
        )
        .expect(201);
    let lid = later.body["id"].as_str().expect("id");
    w.app
        .post(
            &format!("/assessments/{lid}/request"),
            Some(&w.trainee.access),
            json!({"assessor_id": w.trainee.id}),
        )
        .expect_problem(422, "validation");
    let asked = w
        .app
        .post(
            &format!("/assessments/{lid}/request"),
            Some(&w.trainee.access),
            json!({"assessor_id": w.supervisor.id}),
        )
        .expect(200);
    assert_eq!(asked.body["status"], "awaiting_signature");
    w.app
        .post(
            &format!("/assessments/{lid}/request"),
            Some(&w.trainee.access),
            json!({"assessor_id": w.supervisor.id}),
        )
        .expect_problem(409, "conflict");

    let forms = w
        .app
        .get("/assessment-instruments", Some(&w.trainee.access))
        .expect(200);
    let mini = forms.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|f| f["instrument"] == "mini_cex")
        .expect("mini-cex")
        .clone();
    assert_eq!(mini["scale_max"], 9);
    assert_eq!(
        mini["entrustment_levels"].as_array().expect("levels").len(),
        5
    );
}

#[test]
fn an_assessor_without_an_account_signs_through_a_link() {
    let w = ward();
    let path = format!("/enrolments/{}/assessments", w.enrolment);
    let email = "narakut.lakare@hotmail.com";
    // The first request waits until the main supervisor has vetted the person.
    let first = w
        .app
        .post(&path, Some(&w.trainee.access), json!({"instrument": "mini_cex", "performed_on": "2026-11-01", "assessor_email": email,
                                                      "assessor_name": "Nora Akut", "assessor_workplace": "Akutkliniken"}))
        .expect(201);
    assert_eq!(first.body["status"], "awaiting_vetting");
    let pending = w
        .app
        .get("/external-assessors", Some(&w.supervisor.access))
        .expect(200);
    let vetting = pending.body["items"][0]["id"]
        .as_str()
        .expect("pending")
        .to_string();
    let before = w.app.smtp.count_to(email);
    w.app
        .post(
            &format!("/external-assessors/{vetting}/approve"),
            Some(&w.supervisor.access),
            json!({}),
        )
        .expect(200);
    w.app.smtp.wait_for(email, before);
    let ask = |instrument: &str| {
        let before = w.app.smtp.count_to(email);
        let a = w
            .app
            .post(&path, Some(&w.trainee.access), json!({"instrument": instrument, "performed_on": "2026-11-02", "assessor_email": "Narakut.Lakare@Hotmail.com"}))
            .expect(201);
        let token = w
            .app
            .smtp
            .wait_for(email, before)
            .find_token_after("token=")
            .expect("link");
        (a.body, token)
    };
    let (a, token) = ask("mini_cex");
    assert_eq!(a["status"], "awaiting_signature");
    assert!(a["assessor_id"].is_null());
    assert_eq!(a["assessor_email"], email);

    let view = w
        .app
        .get(&format!("/auth/signing-links/{token}"), None)
        .expect(200);
    assert_eq!(view.body["assessment"]["id"], a["id"]);
    assert_eq!(view.body["form"]["scale_max"], 9);
    assert_eq!(view.body["email"], email);
    w.app
        .post(
            &format!("/auth/signing-links/{token}/sign"),
            None,
            json!({"ratings": {"communication": 6}}),
        )
        .expect_problem(422, "validation");
    let signed = w
        .app
        .post(&format!("/auth/signing-links/{token}/sign"), None, json!({"ratings": {"communication": 6}, "feedback_next_steps": "Sammanfatta för patienten."}))
        .expect(200);
    assert_eq!(signed.body["status"], "signed");
    assert!(signed.body["signature"]["signed_by"].is_null());
    assert_eq!(signed.body["signature"]["signed_by_email"], email);
    assert_eq!(signed.body["signature"]["method"], "signing_link");
    // Single use.
    w.app
        .get(&format!("/auth/signing-links/{token}"), None)
        .expect_problem(422, "invalid-token");
    w.app
        .post(
            &format!("/auth/signing-links/{token}/sign"),
            None,
            json!({"feedback_next_steps": "igen"}),
        )
        .expect_problem(422, "invalid-token");

    // Declining works the same way; a link expires after 14 days.
    let (_, token) = ask("dops");
    w.app
        .post(
            &format!("/auth/signing-links/{token}/decline"),
            None,
            json!({"reason": "Fel person."}),
        )
        .expect(200);
    let (_, token) = ask("cbd");
    w.app.advance(15 * 86_400);
    w.app
        .get(&format!("/auth/signing-links/{token}"), None)
        .expect_problem(422, "invalid-token");

    // An address that has an account is asked in the app instead.
    let trainee = w.app.login_totp(&w.trainee);
    let known = w
        .app
        .post(&path, Some(&trainee.access), json!({"instrument": "cbd", "performed_on": "2026-11-03", "assessor_email": w.supervisor.email}))
        .expect(201);
    assert_eq!(known.body["assessor_id"], w.supervisor.id.as_str());
    assert!(known.body["assessor_email"].is_null());
    w.app
        .post(&path, Some(&trainee.access), json!({"instrument": "cbd", "performed_on": "2026-11-03", "assessor_email": "inte-en-adress"}))
        .expect_problem(422, "validation");
}

#[test]
fn the_supervisor_signs_on_the_trainees_phone_with_their_own_credentials() {
    let w = ward();
    let a = request(&w, "mini_cex", &w.supervisor);
    let id = a["id"].as_str().expect("id");
    let path = format!("/assessments/{id}/co-sign");
    let secret = w.supervisor.totp_secret.clone().expect("secret");
    let body = |password: &str, code: &str| {
        json!({"email": w.supervisor.email, "password": password, "method": "totp", "code": code,
               "ratings": {"communication": 8}, "feedback_next_steps": "Fortsätt så."})
    };
    // Wrong password or wrong code: refused, nothing signed.
    w.app
        .post(
            &path,
            Some(&w.trainee.access),
            body("fel lösenord!!", &w.app.totp(&secret)),
        )
        .expect_problem(401, "invalid-credentials");
    w.app
        .post(
            &path,
            Some(&w.trainee.access),
            body(crate::support::PASSWORD, "000000"),
        )
        .expect_problem(401, "invalid-second-factor");
    // Someone else's credentials do not sign for the named assessor.
    let mut other = body(
        crate::support::PASSWORD,
        &w.app
            .totp(w.external.totp_secret.as_deref().expect("secret")),
    );
    other["email"] = json!(w.external.email);
    w.app
        .post(&path, Some(&w.trainee.access), other)
        .expect_problem(401, "invalid-credentials");
    assert_eq!(
        w.app
            .get(&format!("/assessments/{id}"), Some(&w.trainee.access))
            .expect(200)
            .body["status"],
        "awaiting_signature"
    );

    // Only from the trainee's own session (the supervisor's session would just sign).
    w.app
        .post(
            &path,
            Some(&w.supervisor.access),
            body(crate::support::PASSWORD, &w.app.totp(&secret)),
        )
        .expect_problem(403, "forbidden");

    let code = w.app.totp(&secret);
    let signed = w
        .app
        .post(
            &path,
            Some(&w.trainee.access),
            body(crate::support::PASSWORD, &code),
        )
        .expect(200);
    assert_eq!(signed.body["status"], "signed");
    assert_eq!(
        signed.body["signature"]["signed_by"],
        w.supervisor.id.as_str()
    );
    assert_eq!(signed.body["signature"]["method"], "in_person_totp");
    // The trainee's session is still the trainee's: no new powers.
    let me = w.app.get("/me", Some(&w.trainee.access)).expect(200);
    assert_eq!(me.body["id"], w.trainee.id.as_str());
    let b = request(&w, "cbd", &w.supervisor);
    w.app
        .post(
            &format!("/assessments/{}/sign", b["id"].as_str().expect("id")),
            Some(&w.trainee.access),
            json!({}),
        )
        .expect_problem(403, "forbidden");
    // The TOTP code just used does not work twice.
    w.app
        .post(
            &format!("/assessments/{}/co-sign", b["id"].as_str().expect("id")),
            Some(&w.trainee.access),
            body(crate::support::PASSWORD, &code),
        )
        .expect_problem(401, "invalid-second-factor");
}

#[test]
fn a_supervisor_who_prefers_it_gets_one_daily_digest_instead_of_a_mail_per_request() {
    // The server's own housekeeping timer sends the digests, every 50 ms instead of every
    // ten minutes; access tokens outlive the days the test moves the clock through.
    let w = ward_with(|c| {
        c.housekeeping_interval = std::time::Duration::from_millis(50);
        c.access_token_ttl = std::time::Duration::from_secs(7 * 24 * 3600);
    });
    let me = w.app.get("/me", Some(&w.supervisor.access)).expect(200);
    assert_eq!(me.body["notification_mode"], "immediate");
    w.app
        .patch(
            "/me",
            Some(&w.supervisor.access),
            json!({"notification_mode": "hourly"}),
            &[],
        )
        .expect_problem(422, "validation");
    w.app
        .patch(
            "/me",
            Some(&w.supervisor.access),
            json!({"notification_mode": "daily_digest"}),
            &[],
        )
        .expect(200);

    // Markers: idempotency keys housekeeping deletes 24 hours after they were made. A
    // round reads the clock once, sends due digests, then deletes keys; so once a marker
    // is gone, the digests were looked at as of a time after everything before the clock
    // move that let the marker go. Starts at 08:00 (day 0).
    let admin = w.admin.access.clone();
    let marker = |name: &str| json!({"kind": "unit", "name": name, "parent_id": w.care_provider});
    let make_marker = |name: &str| {
        w.app
            .send(
                "POST",
                "/organisations",
                Some(&admin),
                Some(&marker(name)),
                &[("Idempotency-Key", name)],
            )
            .expect(201);
    };
    w.app.advance(16 * 3600 + 1800); // day 1, 00:30
    make_marker("night-marker");
    w.app.advance(6 * 3600 + 1800); // day 1, 07:00
    make_marker("day-marker");

    // Before the digest hour (06:00 UTC): requests wait, nothing goes out.
    w.app.advance(17 * 3600 + 900); // day 2, 00:15
    let before = w.app.smtp.count_to(&w.supervisor.email);
    let queued = w.app.mails_queued_to(&w.supervisor.email);
    request(&w, "mini_cex", &w.supervisor);
    request(&w, "dops", &w.supervisor);
    // Nothing at once: a mail would have been queued with the request.
    assert_eq!(w.app.mails_queued_to(&w.supervisor.email), queued);
    w.app.advance(1800); // day 2, 00:45: the night marker is past its 24 hours
    w.app.wait_until_key_deleted("night-marker");
    assert_eq!(w.app.mails_queued_to(&w.supervisor.email), queued);
    assert_eq!(w.app.smtp.count_to(&w.supervisor.email), before);

    // ...one digest when it is due, with both requests...
    w.app.advance(5 * 3600 + 900); // day 2, 06:00
    let digest = w.app.smtp.wait_for(&w.supervisor.email, before);
    assert!(
        digest.subject().contains("2 notifications"),
        "{}",
        digest.subject()
    );
    let text = digest.body_text();
    assert_eq!(text.matches("Assessment to sign: ").count(), 2, "{text}");
    assert!(
        text.contains("Assessment to sign: mini_cex") && text.contains("Assessment to sign: dops"),
        "{text}"
    );

    // ...and not twice a day: a request later that day waits for the next day's digest.
    request(&w, "cbd", &w.supervisor);
    w.app.advance(5400); // day 2, 07:30: the day marker is past its 24 hours
    w.app.wait_until_key_deleted("day-marker");
    // The digest is queued in the round's transaction: a second one would be counted
    // here at once, whether or not the worker has sent it yet.
    assert_eq!(w.app.mails_queued_to(&w.supervisor.email), queued + 1);
    assert_eq!(w.app.smtp.count_to(&w.supervisor.email), before + 1);
    w.app.advance(22 * 3600 + 1800); // day 3, 06:00
    let next = w.app.smtp.wait_for(&w.supervisor.email, before + 1);
    assert!(
        next.subject().contains("1 notifications"),
        "{}",
        next.subject()
    );
    let text = next.body_text();
    assert_eq!(text.matches("Assessment to sign: ").count(), 1, "{text}");
    assert!(text.contains("Assessment to sign: cbd"), "{text}");

    // Sign-in mail is never held back: a reset link arrives at once.
    let before = w.app.smtp.count_to(&w.supervisor.email);
    w.app
        .post(
            "/auth/password-reset",
            None,
            json!({"email": w.supervisor.email}),
        )
        .expect(202);
    w.app.smtp.wait_for(&w.supervisor.email, before);
}

#[test]
fn a_region_adjusts_the_mini_cex_form_for_its_trainees() {
    let w = ward();
    let form = json!({"organisation_id": w.care_provider, "name": "Mini-CEX (SLSO)",
        "domains": ["anamnes", "status", "kommunikation", "helhet"], "scale_max": 5,
        "scale_labels": ["behöver full handledning", "behöver mycket stöd", "behöver visst stöd", "klarar med stöd vid behov", "självständig"]});
    // Only administrators of the organisation store forms.
    w.app
        .post(
            "/assessment-instruments/mini_cex/forms",
            Some(&w.supervisor.access),
            form.clone(),
        )
        .expect_problem(403, "forbidden");
    let mut bad = form.clone();
    bad["scale_labels"] = json!(["en", "två"]);
    w.app
        .post(
            "/assessment-instruments/mini_cex/forms",
            Some(&w.admin.access),
            bad,
        )
        .expect_problem(422, "validation");
    let stored = w
        .app
        .post(
            "/assessment-instruments/mini_cex/forms",
            Some(&w.admin.access),
            form,
        )
        .expect(201);
    assert_eq!(stored.body["version"], 1);
    assert_eq!(stored.body["organisation_id"], w.care_provider.as_str());

    let here = w
        .app
        .get(
            &format!(
                "/assessment-instruments?organisation_id={}",
                w.care_provider
            ),
            Some(&w.trainee.access),
        )
        .expect(200);
    let mini = here.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|f| f["instrument"] == "mini_cex")
        .expect("mini")
        .clone();
    assert_eq!(mini["scale_max"], 5);
    let national = w
        .app
        .get("/assessment-instruments", Some(&w.trainee.access))
        .expect(200);
    let default = national.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|f| f["instrument"] == "mini_cex")
        .expect("mini")
        .clone();
    assert_eq!(default["scale_max"], 9);
    assert!(default["organisation_id"].is_null());

    // The trainee's assessments are now rated on the region's form.
    let a = request(&w, "mini_cex", &w.supervisor);
    let id = a["id"].as_str().expect("id");
    w.app
        .patch(
            &format!("/assessments/{id}"),
            Some(&w.supervisor.access),
            json!({"ratings": {"communication": 4}}),
            &[],
        )
        .expect_problem(422, "validation");
    w.app
        .patch(
            &format!("/assessments/{id}"),
            Some(&w.supervisor.access),
            json!({"ratings": {"kommunikation": 7}}),
            &[],
        )
        .expect_problem(422, "validation");
    w.app
        .patch(
            &format!("/assessments/{id}"),
            Some(&w.supervisor.access),
            json!({"ratings": {"kommunikation": 4}}),
            &[],
        )
        .expect(200);
}

/// Two nodes' housekeeping on one database reaching the digest hour at the same moment
/// send the day's digest once: each claims it by one conditional statement.
#[test]
fn two_nodes_at_the_digest_hour_queue_one_digest() {
    // No timer of the app's own: the two "nodes" below are the only digest rounds.
    let w = ward_with(|c| c.housekeeping_interval = std::time::Duration::ZERO);
    w.app
        .patch(
            "/me",
            Some(&w.supervisor.access),
            json!({"notification_mode": "daily_digest"}),
            &[],
        )
        .expect(200);
    let queued = w.app.mails_queued_to(&w.supervisor.email);
    request(&w, "mini_cex", &w.supervisor);
    request(&w, "dops", &w.supervisor);
    assert_eq!(w.app.mails_queued_to(&w.supervisor.email), queued);

    let now = eportfolio::clock::Clock::now(&*w.app.clock); // 08:00: past the digest hour
    let keyring =
        std::sync::Arc::new(eportfolio::secrets::Keyring::load(&w.app.dir).expect("keys"));
    let barrier = std::sync::Barrier::new(2);
    let sent: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (barrier, keyring, url) = (&barrier, &keyring, &w.app.config.database_url);
                scope.spawn(move || {
                    let pool = eportfolio::db::connect(url, 1).expect("pool");
                    let mut conn = pool.get().expect("conn");
                    barrier.wait();
                    eportfolio::db::write_tx(&mut conn, |c| {
                        eportfolio::notifications::send_due_digests(c, keyring, now)
                    })
                    .expect("digest round")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(sent.iter().sum::<usize>(), 1, "{sent:?}");
    assert_eq!(w.app.mails_queued_to(&w.supervisor.email), queued + 1);
}

/// An offline phone chooses its activities' ids, and links to delmål are keyed by record
/// id: a trainee who sent a signed assessment's id with a new activity replaced what the
/// signed assessment is evidence of. Such an id is refused, and the signed record keeps
/// its delmål.
#[test]
fn an_activity_cannot_take_a_signed_assessments_id() {
    let w = ward();
    let a = request(&w, "mini_cex", &w.supervisor);
    let id = a["id"].as_str().expect("id").to_string();
    w.app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(&w.supervisor.access),
            json!({"ratings": {"communication": 7}, "entrustment": 4,
                   "feedback_strengths": "Strukturerad.", "feedback_next_steps": "Status."}),
        )
        .expect(200);
    w.app
        .post(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
            json!({"id": id, "kind": "course", "title": "Kapning", "start_date": "2026-10-15",
                   "delmal": ["BT16"]}),
        )
        .expect_problem(409, "conflict");
    let after = w
        .app
        .get(&format!("/assessments/{id}"), Some(&w.trainee.access))
        .expect(200);
    assert_eq!(after.body["status"], "signed");
    assert_eq!(after.body["delmal"], json!(["BT1"]), "{}", after.text);
    w.app
        .get(&format!("/activities/{id}"), Some(&w.trainee.access))
        .expect_problem(404, "not-found");
}

/// A supervisor with a long queue reads it a page at a time: oldest request first, every
/// item once, the same order as one long page; a cursor is no key to anyone else's queue.
#[test]
fn the_signature_queue_comes_a_page_at_a_time_oldest_request_first() {
    let w = ward();
    let mut requested = Vec::new();
    for i in 0..5 {
        // Two requests in the same second: the id decides between them.
        if i % 2 == 0 {
            w.app.advance(60);
        }
        let a = request(&w, "mini_cex", &w.supervisor);
        requested.push(a["id"].as_str().expect("id").to_string());
    }
    // A draft the supervisor starts themselves waits too, from when it was made.
    w.app.advance(60);
    let draft = w
        .app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.supervisor.access),
            json!({"instrument": "cbd", "performed_on": "2026-10-20", "delmal": ["BT15"]}),
        )
        .expect(201);
    assert_eq!(draft.body["status"], "draft");
    requested.push(draft.body["id"].as_str().expect("id").to_string());
    let whole = w
        .app
        .get("/me/signature-queue?limit=200", Some(&w.supervisor.access))
        .expect(200);
    let whole: Vec<String> = whole.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_string())
        .collect();
    let mut expected = requested.clone();
    expected.sort();
    let mut sorted = whole.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every request is in the queue once");
    // Oldest request first (the draft from when it was made, so last); the pairs asked
    // for in the same second (0 and 1, 2 and 3) in id order.
    let pair = |a: usize, b: usize| {
        let mut p = vec![requested[a].clone(), requested[b].clone()];
        p.sort();
        p
    };
    let mut in_order = pair(0, 1);
    in_order.extend(pair(2, 3));
    in_order.extend([requested[4].clone(), requested[5].clone()]);
    assert_eq!(whole, in_order);

    // Pages of two follow the same order, each item once, and the last says so.
    let mut paged = Vec::new();
    let mut path = "/me/signature-queue?limit=2".to_string();
    let mut pages = 0;
    loop {
        let page = w.app.get(&path, Some(&w.supervisor.access)).expect(200);
        pages += 1;
        let items = page.body["items"].as_array().expect("items");
        assert!(items.len() <= 2, "{}", page.text);
        paged.extend(
            items
                .iter()
                .map(|a| a["id"].as_str().expect("id").to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/me/signature-queue?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, whole);

    // The default page holds them all (50); a limit outside 1..=200 and a cursor this API
    // did not make are refused with the field, not a 500.
    let first = w
        .app
        .get("/me/signature-queue", Some(&w.supervisor.access))
        .expect(200);
    assert_eq!(first.body["items"].as_array().expect("items").len(), 6);
    assert!(first.body["next_cursor"].is_null());
    for bad in [
        "/me/signature-queue?limit=201",
        "/me/signature-queue?cursor=bm90LWEtY3Vyc29y",
        "/me/signature-queue?cursor=!!",
    ] {
        let r = w.app.get(bad, Some(&w.supervisor.access)).expect(422);
        assert!(
            r.text.contains("limit") || r.text.contains("cursor"),
            "{}",
            r.text
        );
    }

    // Another supervisor's cursor positions nothing in my queue: it stays mine (empty).
    let page = w
        .app
        .get("/me/signature-queue?limit=2", Some(&w.supervisor.access))
        .expect(200);
    let cursor = page.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let theirs = w
        .app
        .get(
            &format!("/me/signature-queue?limit=2&cursor={cursor}"),
            Some(&w.external.access),
        )
        .expect(200);
    assert_eq!(theirs.body["items"], json!([]));
}
