//! Issue 15: passkeys (WebAuthn). A software authenticator (webauthn-authenticator-rs's
//! `SoftToken`) builds real registration and assertion responses, signed with its own
//! keys, for the origin the test names; the server checks them with webauthn-rs.

use std::sync::{Arc, Barrier};

use diesel::prelude::*;
use serde_json::{json, Value};
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

use crate::support::{Resp, TestApp, TestUser, PASSWORD};

/// The origin of the test configuration's public URL (`https://app.example`).
const ORIGIN: &str = "https://app.example";

/// A phone with a passkey authenticator, answering for `origin`.
struct Phone {
    token: SoftToken,
}

impl Phone {
    fn new() -> Phone {
        // `true`: the token reports user verification (a fingerprint), as phones do.
        let (token, _ca) = SoftToken::new(true).expect("soft token");
        Phone { token }
    }

    /// Another authenticator holding the same keys and counter: a clone.
    fn clone_of(&self) -> Phone {
        let cbor = self.token.to_cbor().expect("cbor");
        Phone {
            token: SoftToken::from_cbor(&cbor).expect("from cbor"),
        }
    }

    fn create(&mut self, origin: &str, options: &Value) -> Value {
        let options: CreationChallengeResponse =
            serde_json::from_value(options.clone()).expect("creation options");
        let answer = self
            .token
            .perform_register(Url::parse(origin).expect("url"), options.public_key, 60_000)
            .expect("authenticator registers");
        serde_json::to_value(answer).expect("json")
    }

    fn get(&mut self, origin: &str, options: &Value) -> Value {
        let options: RequestChallengeResponse =
            serde_json::from_value(options.clone()).expect("request options");
        let answer = self
            .token
            .perform_auth(Url::parse(origin).expect("url"), options.public_key, 60_000)
            .expect("authenticator asserts");
        serde_json::to_value(answer).expect("json")
    }
}

/// Registers a passkey for `user` (whose session gave its second factor moments ago).
fn register(app: &TestApp, user: &TestUser, phone: &mut Phone, name: &str) -> Value {
    let options = app
        .post(
            "/me/passkeys/options",
            Some(&user.access),
            json!({"password": user.password}),
        )
        .expect(200);
    let credential = phone.create(ORIGIN, &options.body["options"]);
    app.post(
        "/me/passkeys",
        Some(&user.access),
        json!({"ceremony_id": options.body["ceremony_id"], "name": name, "credential": credential}),
    )
    .expect(201)
    .body
}

/// Options for a passwordless sign-in of `email`, answered by `phone` from `origin`.
fn sign_in_answer(app: &TestApp, email: &str, phone: &mut Phone, origin: &str) -> Value {
    let options = app
        .post("/auth/passkeys/options", None, json!({"email": email}))
        .expect(200);
    let credential = phone.get(origin, &options.body["options"]);
    json!({"ceremony_id": options.body["ceremony_id"], "credential": credential})
}

fn sign_in(app: &TestApp, email: &str, phone: &mut Phone) -> Resp {
    let body = sign_in_answer(app, email, phone, ORIGIN);
    app.post("/auth/passkeys/verify", None, body)
}

/// The field names of an options answer, nested: what a decoy must share with real ones.
fn shape(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    let path = format!("{prefix}/{k}");
                    out.push(path.clone());
                    walk(&path, v, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(&format!("{prefix}[]"), item, out);
                }
            }
            _ => {}
        }
    }
    walk("", v, &mut out);
    out.sort();
    out.dedup();
    out
}

fn audit_count(app: &TestApp, action: &str) -> i64 {
    use eportfolio::schema::audit_log;
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    audit_log::table
        .filter(audit_log::entity.eq("passkey"))
        .filter(audit_log::action.eq(action))
        .count()
        .get_result(&mut *conn)
        .expect("count")
}

#[test]
fn a_doctor_registers_passkeys_and_signs_in_with_them_as_second_factor_and_without_password() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let doctor = app.join(&admin, "st.lakare@sll.se", "supervisor", &region);

    // Registering needs step-up: the password (the session's factor is fresh).
    let r = app
        .post("/me/passkeys/options", Some(&doctor.access), json!({}))
        .expect_problem(401, "step-up-required");
    assert_eq!(r.body["requires"], json!(["password"]), "{}", r.text);

    let mut phone = Phone::new();
    let before = app.smtp.count_to(&doctor.email);
    let options = app
        .post(
            "/me/passkeys/options",
            Some(&doctor.access),
            json!({"password": PASSWORD}),
        )
        .expect(200);
    let o = &options.body["options"]["publicKey"];
    assert_eq!(o["rp"]["id"], "app.example", "{}", options.text);
    assert_eq!(o["attestation"], "none");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    let credential = phone.create(ORIGIN, &options.body["options"]);
    let body = json!({"ceremony_id": options.body["ceremony_id"], "name": "iPhone", "credential": credential});
    let iphone = app
        .post("/me/passkeys", Some(&doctor.access), body.clone())
        .expect(201);
    assert_eq!(iphone.body["name"], "iPhone");
    assert!(iphone.header("etag").is_some());
    // The account's address is told, with an undo link.
    let notice = app.smtp.wait_for(&doctor.email, before);
    assert!(notice.body_text().contains("undo-change?token="));
    // The ceremony answers once: the same answer again is refused.
    app.post("/me/passkeys", Some(&doctor.access), body)
        .expect_problem(401, "unauthenticated");

    app.advance(60);
    let mut laptop = Phone::new();
    let second = register(&app, &doctor, &mut laptop, "Laptop");
    let list = app.get("/me/passkeys", Some(&doctor.access)).expect(200);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["iPhone", "Laptop"]);
    assert!(list.text.find("credential").is_none(), "{}", list.text);

    // Renaming needs the current ETag when one is sent.
    let path = format!("/me/passkeys/{}", second["id"].as_str().expect("id"));
    app.patch(
        &path,
        Some(&doctor.access),
        json!({"name": "Jobbdatorn"}),
        &[("If-Match", "\"stale\"")],
    )
    .expect_problem(412, "precondition-failed");
    let renamed = app
        .patch(
            &path,
            Some(&doctor.access),
            json!({"name": "Jobbdatorn"}),
            &[],
        )
        .expect(200);
    assert_eq!(renamed.body["version"], 2);
    app.patch(&path, Some(&doctor.access), json!({"name": "  "}), &[])
        .expect_problem(422, "validation");

    // A login offers the passkey beside the codes and is completed with it.
    let step = app.login_step(&doctor.email, PASSWORD, None).expect(200);
    assert_eq!(
        step.body["methods"],
        json!(["totp", "recovery_code", "passkey"])
    );
    let mfa = TestApp::mfa_token_of(&step);
    let options = app
        .post("/auth/passkeys/options", None, json!({"mfa_token": mfa}))
        .expect(200);
    let credential = phone.get(ORIGIN, &options.body["options"]);
    let answer = json!({"ceremony_id": options.body["ceremony_id"], "credential": credential, "mfa_token": mfa});
    let done = app
        .post("/auth/passkeys/verify", None, answer.clone())
        .expect(200);
    assert_eq!(done.body["status"], "authenticated");
    // A replayed assertion: the ceremony and the sign-in step are used up.
    app.post("/auth/passkeys/verify", None, answer)
        .expect_problem(401, "unauthenticated");

    // On the phone, without a password: the e-mail address names the account.
    let done = sign_in(&app, &doctor.email, &mut phone).expect(200);
    assert_eq!(done.body["status"], "authenticated");
    let access = done.body["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    // The passkey is a fresh second factor: a step-up needs only the password.
    app.post(
        "/me/recovery-codes",
        Some(&access),
        json!({"password": PASSWORD}),
    )
    .expect(201);
    let used = app.get("/me/passkeys", Some(&access)).expect(200);
    assert!(used.body["items"][0]["last_used_at"].is_string());

    // An unknown address and an account without passkeys get options shaped like real
    // ones (never telling which addresses have accounts), the same credential id for the
    // same address each time; an answer to them is refused like a wrong assertion.
    let options = |email: &str| {
        app.post("/auth/passkeys/options", None, json!({"email": email}))
            .expect(200)
            .body
    };
    let real = options(&doctor.email);
    let unknown = options("nobody@sll.se");
    let without = options(&admin.email);
    assert_eq!(shape(&real), shape(&unknown));
    assert_eq!(shape(&real), shape(&without));
    for field in ["timeout", "rpId", "userVerification"] {
        assert_eq!(
            real["options"]["publicKey"][field],
            unknown["options"]["publicKey"][field]
        );
    }
    let ids = |o: &Value| o["options"]["publicKey"]["allowCredentials"].clone();
    assert_eq!(ids(&unknown), ids(&options("nobody@sll.se")));
    assert_ne!(ids(&unknown), ids(&without));
    let credential = phone.get(ORIGIN, &real["options"]);
    app.post(
        "/auth/passkeys/verify",
        None,
        json!({"ceremony_id": unknown["ceremony_id"], "credential": credential}),
    )
    .expect_problem(401, "invalid-second-factor");
    // Both or neither of mfa_token and email: 422.
    app.post("/auth/passkeys/options", None, json!({}))
        .expect_problem(422, "validation");

    // Revoking needs step-up; a ceremony begun before the revocation is refused after.
    let pending = sign_in_answer(&app, &doctor.email, &mut laptop, ORIGIN);
    app.delete(&path, Some(&access))
        .expect_problem(401, "step-up-required");
    app.send(
        "DELETE",
        &path,
        Some(&access),
        Some(&json!({"password": PASSWORD})),
        &[],
    )
    .expect(204);
    app.post("/auth/passkeys/verify", None, pending)
        .expect_problem(401, "invalid-second-factor");
    assert_eq!(
        app.get("/me/passkeys", Some(&access)).expect(200).body["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(audit_count(&app, "created"), 2);
    assert_eq!(audit_count(&app, "revoked"), 1);
}

#[test]
fn a_cloned_authenticator_and_a_wrong_origin_are_refused_and_the_clone_audited() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let doctor = app.join(&admin, "bt.lakare@sll.se", "trainee", &region);
    let mut phone = Phone::new();
    register(&app, &doctor, &mut phone, "iPhone");
    // Someone copies the key right after registration.
    let mut clone = phone.clone_of();

    sign_in(&app, &doctor.email, &mut phone).expect(200);
    sign_in(&app, &doctor.email, &mut phone).expect(200);
    // The copy's counter is behind: refused, and audited.
    sign_in(&app, &doctor.email, &mut clone).expect_problem(401, "invalid-second-factor");
    sign_in(&app, &doctor.email, &mut clone).expect_problem(401, "invalid-second-factor");
    // A ceremony begun before the original's latest use: its state holds the older
    // counter, which the copy passes; the stored counter does not let it.
    let pending = sign_in_answer(&app, &doctor.email, &mut clone, ORIGIN);
    sign_in(&app, &doctor.email, &mut phone).expect(200);
    app.post("/auth/passkeys/verify", None, pending)
        .expect_problem(401, "invalid-second-factor");
    assert_eq!(audit_count(&app, "counter_regressed"), 3);

    // Another origin (a look-alike site under the RP id's domain) is refused.
    let wrong = sign_in_answer(&app, &doctor.email, &mut phone, "https://login.app.example");
    app.post("/auth/passkeys/verify", None, wrong)
        .expect_problem(401, "invalid-second-factor");
    // So is a registration made for another origin.
    let options = app
        .post(
            "/me/passkeys/options",
            Some(&doctor.access),
            json!({"password": PASSWORD}),
        )
        .expect(200);
    let credential = Phone::new().create("https://evil.app.example", &options.body["options"]);
    app.post(
        "/me/passkeys",
        Some(&doctor.access),
        json!({"ceremony_id": options.body["ceremony_id"], "name": "Evil", "credential": credential}),
    )
    .expect_problem(422, "validation");
    // The original still works.
    sign_in(&app, &doctor.email, &mut phone).expect(200);
}

#[test]
fn one_assertion_sent_twice_at_once_signs_in_once() {
    let app = Arc::new(TestApp::start());
    let (admin, region) = app.admin();
    let doctor = app.join(&admin, "parallel@sll.se", "trainee", &region);
    let mut phone = Phone::new();
    register(&app, &doctor, &mut phone, "iPhone");
    let answer = sign_in_answer(&app, &doctor.email, &mut phone, ORIGIN);
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (app, barrier, answer) = (app.clone(), barrier.clone(), answer.clone());
            std::thread::spawn(move || {
                barrier.wait();
                app.post("/auth/passkeys/verify", None, answer).status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 401]);
}

#[test]
fn a_passkey_session_signs_records_and_others_cannot_touch_my_passkeys() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
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
    let enrolment = e.body["id"].as_str().expect("id");
    let a = app
        .post(
            &format!("/enrolments/{enrolment}/assessments"),
            Some(&trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-14", "assessor_id": supervisor.id,
                   "context": {"setting (outpatient, inpatient, emergency)": "emergency"},
                   "delmal": ["BT1"], "trainee_reflection": "Jag glömde fråga om allergier."}),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id");

    let mut phone = Phone::new();
    let passkey = register(&app, &supervisor, &mut phone, "iPhone");
    let path = format!("/me/passkeys/{}", passkey["id"].as_str().expect("id"));

    // Someone else's passkey is not there for another person.
    app.patch(&path, Some(&trainee.access), json!({"name": "Mine"}), &[])
        .expect_problem(404, "not-found");
    app.send(
        "DELETE",
        &path,
        Some(&trainee.access),
        Some(&json!({"password": PASSWORD})),
        &[],
    )
    .expect_problem(404, "not-found");
    assert_eq!(
        app.get("/me/passkeys", Some(&trainee.access))
            .expect(200)
            .body["items"],
        json!([])
    );
    // A registration ceremony is answered only by the person it was opened for.
    let options = app
        .post(
            "/me/passkeys/options",
            Some(&supervisor.access),
            json!({"password": PASSWORD}),
        )
        .expect(200);
    let credential = Phone::new().create(ORIGIN, &options.body["options"]);
    app.post(
        "/me/passkeys",
        Some(&trainee.access),
        json!({"ceremony_id": options.body["ceremony_id"], "name": "Stolen", "credential": credential}),
    )
    .expect_problem(401, "unauthenticated");

    // The supervisor signs on the phone with a passkey session: the signature says so.
    let done = sign_in(&app, &supervisor.email, &mut phone).expect(200);
    let access = done.body["access_token"].as_str().expect("access");
    let signed = app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(access),
            json!({"ratings": {"communication": 7}, "entrustment": 4,
                   "feedback_strengths": "Strukturerad anamnes.", "feedback_next_steps": "Öva status."}),
        )
        .expect(200);
    assert_eq!(signed.body["signature"]["method"], "passkey");
}

#[test]
fn without_a_usable_relying_party_passkeys_are_off_and_say_why() {
    // An IP address cannot be a relying-party id.
    let app = TestApp::start_with(|c| c.public_url = "https://127.0.0.1:8443".into());
    let (admin, _) = app.admin();
    app.post(
        "/me/passkeys/options",
        Some(&admin.access),
        json!({"password": PASSWORD}),
    )
    .expect_problem(503, "unavailable");
    // A region that sets its RP id explicitly gets passkeys under it.
    let app = TestApp::start_with(|c| {
        c.public_url = "https://portfolio.regionstockholm.se".into();
        c.webauthn_rp_id = Some("regionstockholm.se".into());
    });
    let (admin, _) = app.admin();
    let options = app
        .post(
            "/me/passkeys/options",
            Some(&admin.access),
            json!({"password": PASSWORD}),
        )
        .expect(200);
    assert_eq!(
        options.body["options"]["publicKey"]["rp"]["id"],
        "regionstockholm.se"
    );
    let mut phone = Phone::new();
    let credential = phone.create(
        "https://portfolio.regionstockholm.se",
        &options.body["options"],
    );
    app.post(
        "/me/passkeys",
        Some(&admin.access),
        json!({"ceremony_id": options.body["ceremony_id"], "name": "iPhone", "credential": credential}),
    )
    .expect(201);
}
