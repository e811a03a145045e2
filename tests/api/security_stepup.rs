//! Issue 12, items 4 and 14: a stolen access token alone cannot take over the account
//! (step-up for security changes, notices with an undo link), and mail goes through a
//! durable outbox (no SMTP inside a request, nothing lost in an outage or a restart).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{Resp, TestApp, TestUser, PASSWORD};

fn other_than(code: &str) -> &'static str {
    if code == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// `extra`'s fields added to `base`.
fn merged(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    // Not silently `base` unchanged: the step-up fields would be missing from the request.
    let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) else {
        panic!("merged() takes two objects: {base} and {extra}");
    };
    for (k, v) in e {
        o.insert(k.clone(), v.clone());
    }
    out
}

#[track_caller]
fn expect_step_up(r: Resp, requires: &[&str]) -> Resp {
    let r = r.expect_problem(401, "step-up-required");
    assert_eq!(r.body["requires"], json!(requires), "{}", r.text);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"insufficient_user_authentication\"")
    );
    r
}

/// Polls (up to 10 s) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What every guarded change refuses to a bearer token alone: no password, a wrong
/// password, and (once the session's second factor is over five minutes old) the
/// password without a second factor or with a wrong one. Leaves the clock six minutes
/// on, so the session needs a factor.
fn assert_refused_without_step_up(app: &TestApp, user: &TestUser, call: &dyn Fn(Value) -> Resp) {
    // The session gave its factor moments ago: only the password is missing.
    expect_step_up(call(json!({})), &["password"]);
    call(json!({"password": "not my password at all"})).expect_problem(401, "invalid-credentials");
    app.advance(6 * 60);
    let r = expect_step_up(
        call(json!({"password": PASSWORD})),
        &["password", "second_factor"],
    );
    assert_eq!(r.body["methods"], json!(["totp", "recovery_code"]));
    let secret = user.totp_secret.as_deref().expect("totp");
    let right = app.totp(secret);
    call(json!({"password": PASSWORD, "totp_code": other_than(&right)}))
        .expect_problem(401, "invalid-second-factor");
    // A factor without the password is not enough either.
    expect_step_up(
        call(json!({"totp_code": right})),
        &["password", "second_factor"],
    );
}

/// The notice of a change sent to `to`, with its undo token.
fn undo_token(app: &TestApp, to: &str, before: usize) -> String {
    let notice = app.smtp.wait_for(to, before);
    assert!(
        notice.body_text().contains("/undo-change?token="),
        "{}",
        notice.body_text()
    );
    notice.find_token_after("token=").expect("undo token")
}

#[test]
fn a_stolen_access_token_cannot_change_the_email_address_without_step_up() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let base = json!({"new_email": "thief@evil.example"});
    let call = |extra: Value| app.post("/me/email", Some(&admin.access), merged(&base, extra));
    assert_refused_without_step_up(&app, &admin, &call);
    assert_eq!(app.smtp.count_to("thief@evil.example"), 0);

    // With the password and a fresh code the change starts, and the old address hears
    // of it at once.
    let before = app.smtp.count_to(&admin.email);
    let secret = admin.totp_secret.clone().expect("totp");
    call(json!({"password": PASSWORD, "totp_code": app.totp(&secret)})).expect(202);
    let notice = app.smtp.wait_for(&admin.email, before);
    assert!(notice.body_text().contains("thief@evil.example"));
    app.smtp.wait_for("thief@evil.example", 0);
}

#[test]
fn a_stolen_access_token_cannot_change_the_password_without_step_up() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let base = json!({"new_password": "the thief's new passphrase"});
    let call = |extra: Value| app.post("/me/password", Some(&admin.access), merged(&base, extra));
    assert_refused_without_step_up(&app, &admin, &call);
    // Still the old password.
    app.login_totp(&admin);
    app.advance(6 * 60);
    let before = app.smtp.count_to(&admin.email);
    call(json!({"password": PASSWORD, "recovery_code": admin.recovery_codes[0]})).expect(204);
    undo_token(&app, &admin.email, before);
    app.login_totp(&TestUser {
        password: "the thief's new passphrase".into(),
        ..admin
    });
}

#[test]
fn a_stolen_access_token_cannot_re_enrol_totp_without_step_up() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let call = |extra: Value| app.post("/me/totp", Some(&admin.access), extra);
    assert_refused_without_step_up(&app, &admin, &call);
    let secret = admin.totp_secret.clone().expect("totp");
    let setup = call(json!({"password": PASSWORD, "totp_code": app.totp(&secret)})).expect(200);
    let new = setup.body["secret"].as_str().expect("secret").to_string();
    app.advance(30);
    let before = app.smtp.count_to(&admin.email);
    app.post(
        "/me/totp/confirm",
        Some(&admin.access),
        json!({"code": app.totp(&new)}),
    )
    .expect(200);
    // The account's address is told, with an undo link.
    undo_token(&app, &admin.email, before);
}

#[test]
fn a_stolen_access_token_cannot_replace_the_recovery_codes_without_step_up() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    // A request without a body is answered with what to send.
    expect_step_up(
        app.send("POST", "/me/recovery-codes", Some(&admin.access), None, &[]),
        &["password"],
    );
    let call = |extra: Value| app.post("/me/recovery-codes", Some(&admin.access), extra);
    assert_refused_without_step_up(&app, &admin, &call);
    let before = app.smtp.count_to(&admin.email);
    let secret = admin.totp_secret.clone().expect("totp");
    let fresh = call(json!({"password": PASSWORD, "totp_code": app.totp(&secret)})).expect(201);
    assert_eq!(
        fresh.body["recovery_codes"]
            .as_array()
            .expect("codes")
            .len(),
        10
    );
    undo_token(&app, &admin.email, before);
}

#[test]
fn a_stolen_access_token_cannot_forget_remembered_devices_without_step_up() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let secret = admin.totp_secret.clone().expect("totp");
    let done = app
        .post(
            "/auth/mfa/verify",
            None,
            json!({
                "mfa_token": app.password_step(&admin.email, PASSWORD),
                "method": "totp",
                "code": app.totp(&secret),
                "remember_device": true,
            }),
        )
        .expect(200);
    let access = done.body["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    app.advance(30);
    let devices = app.get("/me/devices", Some(&access)).expect(200);
    let id = devices.body["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/me/devices/{id}");
    // A DELETE without a body is a request without step-up.
    expect_step_up(app.delete(&path, Some(&access)), &["password"]);
    let call = |extra: Value| app.send("DELETE", &path, Some(&access), Some(&extra), &[]);
    assert_refused_without_step_up(&app, &admin, &call);
    assert_eq!(
        app.get("/me/devices", Some(&access)).expect(200).body["items"]
            .as_array()
            .expect("items")
            .len(),
        1
    );
    call(json!({"password": PASSWORD, "totp_code": app.totp(&secret)})).expect(204);
}

#[test]
fn a_session_on_a_remembered_device_must_give_a_second_factor_for_step_up() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let secret = admin.totp_secret.clone().expect("totp");
    let device = app
        .post(
            "/auth/mfa/verify",
            None,
            json!({
                "mfa_token": app.password_step(&admin.email, PASSWORD),
                "method": "totp",
                "code": app.totp(&secret),
                "remember_device": true,
            }),
        )
        .expect(200)
        .body["device_token"]
        .as_str()
        .expect("device")
        .to_string();
    let direct = app
        .login_step(&admin.email, PASSWORD, Some(&device))
        .expect(200);
    let access = direct.body["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    // Opened a moment ago, but without a second factor: one is asked for.
    expect_step_up(
        app.post(
            "/me/recovery-codes",
            Some(&access),
            json!({"password": PASSWORD}),
        ),
        &["password", "second_factor"],
    );
}

#[test]
fn a_totp_code_used_for_step_up_cannot_be_replayed() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let phone = app.login_totp(&admin);
    app.advance(6 * 60);
    let secret = admin.totp_secret.clone().expect("totp");
    let code = app.totp(&secret);
    let body = json!({"password": PASSWORD, "totp_code": code});
    app.post("/me/recovery-codes", Some(&admin.access), body.clone())
        .expect(201);
    // The same code, in another session: refused (used once, like at login).
    app.post("/me/recovery-codes", Some(&phone.access), body)
        .expect_problem(401, "invalid-second-factor");
    app.verify(&app.password_step(&admin.email, PASSWORD), "totp", &code)
        .expect_problem(401, "invalid-second-factor");
}

#[test]
fn wrong_step_up_passwords_count_against_the_login_limit() {
    let app = TestApp::start_with(|c| c.rate_limits.login_per_account.max = 3);
    let (admin, _) = app.admin();
    for _ in 0..3 {
        app.post(
            "/me/recovery-codes",
            Some(&admin.access),
            json!({"password": "guess guess guess"}),
        )
        .expect_problem(401, "invalid-credentials");
    }
    app.post(
        "/me/recovery-codes",
        Some(&admin.access),
        json!({"password": PASSWORD}),
    )
    .expect_problem(429, "rate-limited");
    app.login_step(&admin.email, PASSWORD, None)
        .expect_problem(429, "rate-limited");
}

#[test]
fn an_emailed_code_answers_a_step_up_once() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    // An account that chose e-mailed codes at enrolment.
    let email = "mail.only@example.org";
    let token = app.invite(&admin, email, "supervisor", &region);
    let mfa = app.accept_new(&token, None);
    let code = app.emailed_code(email, &mfa);
    let done = app.verify(&mfa, "email_code", &code).expect(200);
    let access = done.body["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    app.advance(6 * 60);
    let r = expect_step_up(
        app.post(
            "/me/recovery-codes",
            Some(&access),
            json!({"password": PASSWORD}),
        ),
        &["password", "second_factor"],
    );
    assert_eq!(r.body["methods"], json!(["email_code", "recovery_code"]));
    let before = app.smtp.count_to(email);
    app.post("/me/step-up/email-code", Some(&access), json!({}))
        .expect(202);
    let code = app
        .smtp
        .wait_for(email, before)
        .find_six_digit_code()
        .expect("code");
    let body = json!({"password": PASSWORD, "email_code": code});
    app.post("/me/recovery-codes", Some(&access), body.clone())
        .expect(201);
    app.advance(6 * 60);
    app.post("/me/recovery-codes", Some(&access), body)
        .expect_problem(401, "invalid-second-factor");
}

#[test]
fn the_undo_link_restores_the_old_address_ends_every_session_and_works_once() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let phone = app.login_totp(&admin);
    let old = admin.email.clone();
    let new = "thief@evil.example";
    let before_old = app.smtp.count_to(&old);
    app.post(
        "/me/email",
        Some(&admin.access),
        json!({"new_email": new, "password": PASSWORD}),
    )
    .expect(202);
    let undo = undo_token(&app, &old, before_old);
    let confirm = app
        .smtp
        .wait_for(new, 0)
        .find_token_after("token=")
        .expect("token");
    app.post("/auth/email-verification", None, json!({"token": confirm}))
        .expect(204);
    assert_eq!(
        app.get("/me", Some(&admin.access)).expect(200).body["email"],
        new
    );

    // The owner, from the old mailbox, undoes it.
    let before_reset = app.smtp.count_to(&old);
    app.post("/auth/undo-change", None, json!({"token": undo}))
        .expect(204);
    // Every session ended; no password works; the old address is the account's again.
    app.get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
    app.get("/me", Some(&phone.access))
        .expect_problem(401, "unauthenticated");
    app.login_step(new, PASSWORD, None)
        .expect_problem(401, "invalid-credentials");
    app.login_step(&old, PASSWORD, None)
        .expect_problem(401, "invalid-credentials");
    // Works once: 410 the second time, 404 for a link that never was.
    app.post("/auth/undo-change", None, json!({"token": undo}))
        .expect_problem(410, "gone");
    app.post(
        "/auth/undo-change",
        None,
        json!({"token": "no-such-token-at-all"}),
    )
    .expect_problem(404, "not-found");

    // A reset link went to the restored address; the second factor is unchanged.
    let reset = app
        .smtp
        .wait_for(&old, before_reset)
        .find_token_after("token=")
        .expect("reset token");
    app.post(
        "/auth/password-reset/confirm",
        None,
        json!({"token": reset, "new_password": "a fresh passphrase of mine"}),
    )
    .expect(204);
    app.login_totp(&TestUser {
        password: "a fresh passphrase of mine".into(),
        ..admin
    });
}

#[test]
fn undoing_a_new_authenticator_removes_it_and_asks_for_a_new_enrolment() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let setup = app
        .post(
            "/me/totp",
            Some(&admin.access),
            json!({"password": PASSWORD}),
        )
        .expect(200);
    let thiefs = setup.body["secret"].as_str().expect("secret").to_string();
    let before = app.smtp.count_to(&admin.email);
    app.post(
        "/me/totp/confirm",
        Some(&admin.access),
        json!({"code": app.totp(&thiefs)}),
    )
    .expect(200);
    let undo = undo_token(&app, &admin.email, before);
    let before = app.smtp.count_to(&admin.email);
    app.post("/auth/undo-change", None, json!({"token": undo}))
        .expect(204);
    let reset = app
        .smtp
        .wait_for(&admin.email, before)
        .find_token_after("token=")
        .expect("reset token");
    app.post(
        "/auth/password-reset/confirm",
        None,
        json!({"token": reset, "new_password": "a fresh passphrase of mine"}),
    )
    .expect(204);
    // The authenticator set up with the stolen token no longer signs in.
    let step = app
        .login_step(&admin.email, "a fresh passphrase of mine", None)
        .expect(200);
    assert_eq!(
        step.body["status"], "mfa_enrolment_required",
        "{}",
        step.text
    );
}

#[test]
fn an_undo_link_sent_many_times_at_once_works_once() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let before = app.smtp.count_to(&admin.email);
    let queued = app.mails_queued_to(&admin.email);
    app.post(
        "/me/password",
        Some(&admin.access),
        json!({"password": PASSWORD, "new_password": "the thief's new passphrase"}),
    )
    .expect(204);
    let undo = undo_token(&app, &admin.email, before);
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let url = format!("{}/api/v1/auth/undo-change", app.base);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (barrier, url, undo) = (barrier.clone(), url.clone(), undo.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                barrier.wait();
                match agent.post(&url).send_json(json!({"token": undo})) {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(s, _)) => s,
                    Err(e) => panic!("transport: {e}"),
                }
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 204 || *s == 410),
        "{statuses:?}"
    );
    // Exactly one reset link went out.
    wait_until("the reset link", || {
        app.smtp.count_to(&admin.email) > before + 1
    });
    // Everything the undos queued has been sent (mail is queued with the change, so
    // no later mail can come from them).
    assert_eq!(app.mails_queued_to(&admin.email), queued + 2);
    assert_eq!(app.smtp.count_to(&admin.email), before + 2);
}

/// Entries of the administrators' view of undelivered mail.
fn outbox(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    app.get("/mail-outbox", Some(&admin.access))
        .expect(200)
        .body["items"]
        .as_array()
        .expect("items")
        .clone()
}

#[test]
fn mail_survives_an_smtp_outage_and_a_restart_and_is_delivered_later() {
    let mut app = TestApp::start();
    let (admin, region) = app.admin();
    let user = app.join(&admin, "anna@example.org", "supervisor", &region);
    app.smtp.set_refusing(true);
    app.post("/auth/password-reset", None, json!({"email": user.email}))
        .expect(202);
    // The worker tried, failed, and administrators see the mail waiting.
    wait_until("a failed attempt", || {
        outbox(&app, &admin)
            .iter()
            .any(|e| e["attempts"].as_i64() >= Some(1) && e["status"] == "pending")
    });
    let entries = outbox(&app, &admin);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["recipient"], "a***@example.org");
    assert!(entries[0]["last_error"].is_string());
    assert!(
        entries[0].get("body").is_none(),
        "bodies carry links: never shown"
    );
    // Only administrators see it.
    app.get("/mail-outbox", Some(&user.access))
        .expect_problem(403, "forbidden");

    // The service restarts during the outage; the mail is still there afterwards.
    app.restart_with(|_| {});
    app.smtp.set_refusing(false);
    assert_eq!(app.smtp.count_to(&user.email), 1);
    // The retry is due after the backoff.
    app.advance(3600);
    let reset = app.smtp.wait_for(&user.email, 1);
    assert!(reset.body_text().contains("reset-password?token="));
    let admin = app.login_totp(&admin);
    wait_until("an empty outbox", || outbox(&app, &admin).is_empty());
}

#[test]
fn password_reset_for_a_known_and_an_unknown_address_answers_alike_without_smtp() {
    let mut app = TestApp::start();
    let (admin, _) = app.admin();
    // A mail server that accepts connections and never answers: a send inside the
    // request would take the 15-second SMTP timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    app.restart_with(|c| {
        c.mail = eportfolio::config::MailTransportConfig::Smtp {
            host: "127.0.0.1".into(),
            port,
            security: eportfolio::config::SmtpSecurity::None,
            username: None,
            password: None,
        }
    });
    let ask = |email: &str| {
        let started = Instant::now();
        let r = app.post("/auth/password-reset", None, json!({"email": email}));
        (r, started.elapsed())
    };
    let (known, t_known) = ask(&admin.email);
    let (unknown, t_unknown) = ask("nobody.here@example.org");
    assert_eq!(known.status, 202);
    assert_eq!(unknown.status, 202);
    assert_eq!(known.text, unknown.text);
    assert_eq!(known.header("content-type"), unknown.header("content-type"));
    for t in [t_known, t_unknown] {
        assert!(t < Duration::from_secs(5), "waited for SMTP: {t:?}");
    }
    // The known address's mail waits in the outbox; nothing for the unknown one.
    let entries = outbox(&app, &admin);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["recipient"], "a***@regionstockholm.se");
    drop(silent);
}

#[test]
fn an_undo_link_older_than_seven_days_is_refused() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let before = app.smtp.count_to(&admin.email);
    app.post(
        "/me/recovery-codes",
        Some(&admin.access),
        json!({"password": PASSWORD}),
    )
    .expect(201);
    let undo = undo_token(&app, &admin.email, before);
    app.advance(7 * 86_400 + 1);
    app.post("/auth/undo-change", None, json!({"token": undo}))
        .expect_problem(410, "gone");
    // Nothing was undone: the password still works.
    app.login_totp(&admin);
}

#[test]
fn a_new_emailed_step_up_code_replaces_the_earlier_one() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let email = "mail.only@example.org";
    let token = app.invite(&admin, email, "supervisor", &region);
    let mfa = app.accept_new(&token, None);
    let code = app.emailed_code(email, &mfa);
    let done = app.verify(&mfa, "email_code", &code).expect(200);
    let access = done.body["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    app.advance(6 * 60);
    let mut codes = Vec::new();
    for _ in 0..2 {
        let before = app.smtp.count_to(email);
        app.post("/me/step-up/email-code", Some(&access), json!({}))
            .expect(202);
        codes.push(
            app.smtp
                .wait_for(email, before)
                .find_six_digit_code()
                .expect("code"),
        );
    }
    assert_ne!(codes[0], codes[1]);
    // Only the latest code is open: several would multiply a guesser's odds.
    app.post(
        "/me/recovery-codes",
        Some(&access),
        json!({"password": PASSWORD, "email_code": codes[0]}),
    )
    .expect_problem(401, "invalid-second-factor");
    app.post(
        "/me/recovery-codes",
        Some(&access),
        json!({"password": PASSWORD, "email_code": codes[1]}),
    )
    .expect(201);
}
