//! Signing in, as the users of the pilot did it and as they wished they could.

use serde_json::{json, Value};

use crate::support::{totp, Resp, TestApp, TestUser, PASSWORD};

/// A six-digit code that is certainly not `code`.
fn other_than(code: &str) -> &'static str {
    if code == "000000" {
        "111111"
    } else {
        "000000"
    }
}

#[test]
fn rfc6238_reference_vectors_hold_for_the_test_totp() {
    totp::self_check();
}

#[test]
fn invited_administrator_enrols_totp_and_logs_in_again_with_it() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let me = app.get("/me", Some(&admin.access)).expect(200);
    assert_eq!(me.body["email"], "admin@regionstockholm.se");
    assert_eq!(me.body["roles"][0]["role"], "administrator");
    assert_eq!(me.body["roles"][0]["organisation_id"], region.as_str());
    assert_eq!(me.body["mfa"]["totp"], true);
    assert_eq!(me.body["mfa"]["recovery_codes_remaining"], 10);
    assert!(me.header("etag").is_some());

    let again = app.login_totp(&admin);
    app.get("/me", Some(&again.access)).expect(200);
}

#[test]
fn a_totp_code_is_accepted_once_and_one_step_of_skew_is_allowed() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let secret = admin.totp_secret.clone().expect("secret");
    let login = || app.password_step(&admin.email, PASSWORD);

    // A code from the previous 30-second step still works (clock skew of a phone);
    // move on one step first, since enrolment used the step before this one.
    app.advance(30);
    let previous = totp::code_at(&secret, app.now_unix() - 30);
    app.verify(&login(), "totp", &previous).expect(200);

    // The current code works once; the same code again is a replay.
    let current = app.totp(&secret);
    app.verify(&login(), "totp", &current).expect(200);
    app.verify(&login(), "totp", &current)
        .expect_problem(401, "invalid-second-factor");

    // Two steps old is too old.
    app.advance(30);
    let stale = totp::code_at(&secret, app.now_unix() - 60);
    app.verify(&login(), "totp", &stale)
        .expect_problem(401, "invalid-second-factor");
}

#[test]
fn doctor_without_an_authenticator_app_uses_emailed_codes() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let email = "ny.bt-lakare@example.org";
    let token = app.invite(&admin, email, "trainee", &region);
    let mfa = app.accept_new(&token, Some("Ny BT-läkare"));

    // Choosing e-mailed codes: ask for one, then verify it.
    let before = app.smtp.count_to(email);
    let sent = app
        .post("/auth/mfa/email-code", None, json!({"mfa_token": mfa}))
        .expect(202);
    assert_eq!(sent.body["sent_to"], "n***@example.org");
    let code = app
        .smtp
        .wait_for(email, before)
        .find_six_digit_code()
        .expect("code in mail");
    let done = app.verify(&mfa, "email_code", &code).expect(200);
    assert_eq!(
        done.body["recovery_codes"].as_array().expect("codes").len(),
        10
    );
    let me = app
        .get("/me", done.body["access_token"].as_str())
        .expect(200);
    assert_eq!(me.body["mfa"]["email_code"], true);
    assert_eq!(me.body["mfa"]["totp"], false);
    assert_eq!(me.body["display_name"], "Ny BT-läkare");

    // Next login: the e-mailed code is offered; a wrong one fails, the right one works once.
    let step = app.login_step(email, PASSWORD, None).expect(200);
    assert_eq!(step.body["methods"], json!(["email_code", "recovery_code"]));
    let mfa = TestApp::mfa_token_of(&step);
    let code = app.emailed_code(email, &mfa);
    app.verify(&mfa, "email_code", other_than(&code))
        .expect_problem(401, "invalid-second-factor");
    app.verify(&mfa, "email_code", &code).expect(200);
    // The challenge is used up with it.
    app.verify(&mfa, "email_code", &code)
        .expect_problem(401, "unauthenticated");

    // A code expires after 10 minutes.
    let mfa = app.password_step(email, PASSWORD);
    let code = app.emailed_code(email, &mfa);
    app.advance(11 * 60);
    app.verify(&mfa, "email_code", &code)
        .expect_problem(401, "invalid-second-factor");
}

#[test]
fn emailed_code_attempts_are_limited() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let email = "trainee@example.org";
    let token = app.invite(&admin, email, "trainee", &region);
    let mfa = app.accept_new(&token, None);
    let code = app.emailed_code(email, &mfa);
    for _ in 0..5 {
        app.verify(&mfa, "email_code", other_than(&code))
            .expect_problem(401, "invalid-second-factor");
    }
    // After five wrong tries even the right code is refused: the step must start over.
    app.verify(&mfa, "email_code", &code)
        .expect_problem(401, "unauthenticated");
}

#[test]
fn a_totp_user_cannot_fall_back_to_emailed_codes() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let step = app.login_step(&admin.email, PASSWORD, None).expect(200);
    assert_eq!(step.body["methods"], json!(["totp", "recovery_code"]));
    app.post(
        "/auth/mfa/email-code",
        None,
        json!({"mfa_token": step.body["mfa_token"]}),
    )
    .expect_problem(403, "forbidden");
}

#[test]
fn recovery_codes_work_once_each() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let code = admin.recovery_codes[0].clone();
    // Typed in upper case with spaces: still accepted.
    let typed = code.to_uppercase().replace('-', " ");
    let done = app
        .verify(
            &app.password_step(&admin.email, PASSWORD),
            "recovery_code",
            &typed,
        )
        .expect(200);
    assert_eq!(done.body["recovery_codes_remaining"], 9);

    app.verify(
        &app.password_step(&admin.email, PASSWORD),
        "recovery_code",
        &code,
    )
    .expect_problem(401, "invalid-second-factor");

    // New codes replace the old ones.
    let fresh = app
        .post(
            "/me/recovery-codes",
            Some(&admin.access),
            json!({"password": PASSWORD}),
        )
        .expect(201);
    assert_eq!(
        fresh.body["recovery_codes"]
            .as_array()
            .expect("codes")
            .len(),
        10
    );
    app.verify(
        &app.password_step(&admin.email, PASSWORD),
        "recovery_code",
        &admin.recovery_codes[1],
    )
    .expect_problem(401, "invalid-second-factor");
}

#[test]
fn a_remembered_phone_skips_the_second_factor_until_revoked_or_expired() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let secret = admin.totp_secret.clone().expect("secret");
    let remembered = |name: Option<&str>| {
        let mut body = json!({
            "mfa_token": app.password_step(&admin.email, PASSWORD),
            "method": "totp",
            "code": app.totp(&secret),
            "remember_device": true,
        });
        if let Some(name) = name {
            body["device_name"] = json!(name);
        }
        let done = app.post("/auth/mfa/verify", None, body).expect(200);
        done.body["device_token"]
            .as_str()
            .expect("device token")
            .to_string()
    };
    let device = remembered(Some("Annas iPhone"));

    let direct = app
        .login_step(&admin.email, PASSWORD, Some(&device))
        .expect(200);
    assert_eq!(direct.body["status"], "authenticated");
    let access = direct.body["access_token"]
        .as_str()
        .expect("access")
        .to_string();

    // The device token alone is not enough: the password is still checked.
    app.login_step(&admin.email, "wrong password!", Some(&device))
        .expect_problem(401, "invalid-credentials");

    let devices = app.get("/me/devices", Some(&access)).expect(200);
    assert_eq!(devices.body["items"][0]["name"], "Annas iPhone");
    let id = devices.body["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    // A remembered-device session proved no second factor: forgetting a device asks
    // for one (step-up); the code must come from a later step than the login's.
    app.advance(30);
    let forget = |body: Value| {
        app.send(
            "DELETE",
            &format!("/me/devices/{id}"),
            Some(&access),
            Some(&body),
            &[],
        )
    };
    forget(json!({"password": PASSWORD, "totp_code": app.totp(&secret)})).expect(204);
    // The factor just given counts for five minutes: the password is enough now.
    forget(json!({"password": PASSWORD})).expect_problem(404, "not-found");
    let asked = app
        .login_step(&admin.email, PASSWORD, Some(&device))
        .expect(200);
    assert_eq!(asked.body["status"], "mfa_required");

    // A new remembered device lasts 30 days.
    app.advance(30);
    let device = remembered(None);
    app.advance(29 * 86_400);
    let ok = app
        .login_step(&admin.email, PASSWORD, Some(&device))
        .expect(200);
    assert_eq!(ok.body["status"], "authenticated");
    app.advance(2 * 86_400);
    let expired = app
        .login_step(&admin.email, PASSWORD, Some(&device))
        .expect(200);
    assert_eq!(expired.body["status"], "mfa_required");
}

#[test]
fn refresh_tokens_rotate_and_reuse_revokes_the_session() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let refresh = |token: &str| app.post("/auth/refresh", None, json!({"refresh_token": token}));
    let first = refresh(&admin.refresh).expect(200);
    let second_refresh = first.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_ne!(second_refresh, admin.refresh);
    let access = first.body["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    app.get("/me", Some(&access)).expect(200);

    // The rotated token presented again: somebody has a copy. The session ends.
    refresh(&admin.refresh).expect_problem(401, "unauthenticated");
    refresh(&second_refresh).expect_problem(401, "unauthenticated");
    app.get("/me", Some(&access))
        .expect_problem(401, "unauthenticated");
    app.get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
}

#[test]
fn access_tokens_expire_after_fifteen_minutes_and_refresh_continues() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    app.advance(14 * 60);
    app.get("/me", Some(&admin.access)).expect(200);
    app.advance(2 * 60);
    let r = app
        .get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let fresh = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": admin.refresh}),
        )
        .expect(200);
    app.get("/me", fresh.body["access_token"].as_str())
        .expect(200);
    // A forged token is refused.
    app.get(
        "/me",
        Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"),
    )
    .expect_problem(401, "unauthenticated");
}

#[test]
fn logout_ends_only_that_session() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let phone = app.login_totp(&admin);
    app.post("/auth/logout", Some(&admin.access), json!({}))
        .expect(204);
    app.get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": admin.refresh}),
    )
    .expect_problem(401, "unauthenticated");
    app.get("/me", Some(&phone.access)).expect(200);
}

#[test]
fn changing_the_password_ends_every_session() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let phone = app.login_totp(&admin);
    let change = |current: &str, new: &str| {
        app.post(
            "/me/password",
            Some(&admin.access),
            json!({"current_password": current, "new_password": new}),
        )
    };
    change("not it at all", "a brand new passphrase").expect_problem(401, "invalid-credentials");
    change(PASSWORD, "short").expect_problem(422, "validation");
    change(PASSWORD, "a brand new passphrase").expect(204);
    app.get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
    app.get("/me", Some(&phone.access))
        .expect_problem(401, "unauthenticated");
    app.login_step(&admin.email, PASSWORD, None)
        .expect_problem(401, "invalid-credentials");
    app.login_totp(&TestUser {
        password: "a brand new passphrase".into(),
        ..admin
    });
}

#[test]
fn password_reset_by_mail_without_revealing_accounts() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    // Same answer for an unknown address as for the real account, and no mail.
    let unknown = app
        .post(
            "/auth/password-reset",
            None,
            json!({"email": "nobody@example.org"}),
        )
        .expect(202);
    let before = app.smtp.count_to(&admin.email);
    let known = app
        .post(
            "/auth/password-reset",
            None,
            json!({"email": "Admin@RegionStockholm.se"}),
        )
        .expect(202);
    assert_eq!(known.text, unknown.text);
    assert_eq!(known.header("content-type"), unknown.header("content-type"));
    let mail = app.smtp.wait_for(&admin.email, before);
    assert!(mail.subject().contains("lösenord"), "{}", mail.subject());
    let token = mail.find_token_after("token=").expect("token");
    assert_eq!(app.smtp.count_to("nobody@example.org"), 0);

    let confirm = |token: &str, new: &str| {
        app.post(
            "/auth/password-reset/confirm",
            None,
            json!({"token": token, "new_password": new}),
        )
    };
    confirm(&token, "tiny").expect_problem(422, "validation");
    confirm(&token, "reset passphrase 2026").expect(204);
    confirm(&token, "another passphrase").expect_problem(422, "invalid-token");
    app.get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
    let user = TestUser {
        password: "reset passphrase 2026".into(),
        ..admin
    };
    // The second factor is still required after a reset.
    app.login_totp(&user);

    // Links expire after an hour.
    let token = app.reset_link(&user.email);
    app.advance(3601);
    confirm(&token, "too late passphrase").expect_problem(422, "invalid-token");
}

#[test]
fn repeated_wrong_passwords_lock_the_account_with_429_and_retry_after() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let mut wrong = Vec::new();
    for _ in 0..10 {
        wrong.push(
            app.login_step(&admin.email, "guess guess guess", None)
                .expect_problem(401, "invalid-credentials"),
        );
    }
    // Now even the right password waits: the account is locked for the window.
    let locked = app
        .login_step(&admin.email, PASSWORD, None)
        .expect_problem(429, "rate-limited");
    let retry: i64 = locked
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry > 0 && retry <= 900, "retry after {retry}");

    // An unknown address behaves exactly the same as the real account above: no way to
    // tell which accounts exist, neither from the refusals nor from the lock-out.
    let unknown = "ingen@example.org";
    for (n, known) in wrong.iter().enumerate() {
        let answer = app
            .login_step(unknown, "guess guess guess", None)
            .expect_problem(401, "invalid-credentials");
        assert_same_refusal(known, &answer, n);
    }
    let unknown_locked = app
        .login_step(unknown, "guess", None)
        .expect_problem(429, "rate-limited");
    assert_same_refusal(&locked, &unknown_locked, 10);
    assert_eq!(
        unknown_locked.header("retry-after"),
        locked.header("retry-after")
    );

    app.advance(retry + 1);
    app.login_totp(&admin);
}

/// The same problem document, field for field, but for the request's own id.
#[track_caller]
fn assert_same_refusal(known: &Resp, unknown: &Resp, attempt: usize) {
    let strip = |r: &Resp| {
        let mut body = r.body.clone();
        let fields = body.as_object_mut().expect("a problem document");
        assert!(fields.remove("request_id").is_some());
        fields.remove("instance");
        body
    };
    assert_eq!(known.status, unknown.status, "attempt {attempt}");
    assert_eq!(
        strip(known),
        strip(unknown),
        "attempt {attempt}: a real account and an unknown address answer differently"
    );
    assert_eq!(known.header("content-type"), unknown.header("content-type"));
}

#[test]
fn many_logins_from_one_address_are_rate_limited() {
    let app = TestApp::start_with(|c| c.rate_limits.login_per_address.max = 5);
    let (admin, _) = app.admin();
    for i in 0..5 {
        app.login_step(&format!("u{i}@example.org"), "whatever pass", None)
            .expect(401);
    }
    app.login_step(&admin.email, PASSWORD, None)
        .expect_problem(429, "rate-limited");
}

#[test]
fn wrong_second_factors_are_limited_per_account() {
    let app = TestApp::start_with(|c| c.rate_limits.mfa_per_account.max = 3);
    let (admin, _) = app.admin();
    for _ in 0..3 {
        app.verify(&app.password_step(&admin.email, PASSWORD), "totp", "000000")
            .expect(401);
    }
    let secret = admin.totp_secret.clone().expect("secret");
    app.verify(
        &app.password_step(&admin.email, PASSWORD),
        "totp",
        &app.totp(&secret),
    )
    .expect_problem(429, "rate-limited");
}

#[test]
fn re_enrolling_totp_keeps_the_old_app_working_until_confirmed() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let old = admin.totp_secret.clone().expect("secret");
    let setup = app
        .post(
            "/me/totp",
            Some(&admin.access),
            json!({"password": PASSWORD}),
        )
        .expect(200);
    let new = setup.body["secret"].as_str().expect("secret").to_string();
    assert!(!setup.body["qr_png_base64"].as_str().expect("qr").is_empty());
    // Not confirmed yet: the old authenticator still signs in.
    app.login_totp(&admin);
    let confirm = |code: &str| {
        app.post(
            "/me/totp/confirm",
            Some(&admin.access),
            json!({"code": code}),
        )
    };
    confirm("123456").expect_problem(401, "invalid-second-factor");
    confirm(&app.totp(&new)).expect(200);
    app.advance(30);
    app.verify(
        &app.password_step(&admin.email, PASSWORD),
        "totp",
        &app.totp(&old),
    )
    .expect_problem(401, "invalid-second-factor");
    app.login_totp(&TestUser {
        totp_secret: Some(new),
        ..admin
    });
}

#[test]
fn changing_the_email_address_needs_the_new_address_to_confirm() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let change = |new: &str| {
        app.post(
            "/me/email",
            Some(&admin.access),
            json!({"new_email": new, "password": PASSWORD}),
        )
    };
    change("not-an-address").expect_problem(422, "validation");
    let other = app.join(&admin, "taken@example.org", "supervisor", &region);
    change(&other.email).expect_problem(409, "conflict");
    let new = "anna.admin@sll.se";
    let before = app.smtp.count_to(new);
    change(new).expect(202);
    let token = app
        .smtp
        .wait_for(new, before)
        .find_token_after("token=")
        .expect("token");
    // Not changed until confirmed.
    assert_eq!(
        app.get("/me", Some(&admin.access)).expect(200).body["email"],
        admin.email.as_str()
    );
    app.post("/auth/email-verification", None, json!({"token": token}))
        .expect(204);
    assert_eq!(
        app.get("/me", Some(&admin.access)).expect(200).body["email"],
        new
    );
    app.post("/auth/email-verification", None, json!({"token": token}))
        .expect_problem(422, "invalid-token");
    app.login_totp(&TestUser {
        email: new.into(),
        ..admin
    });
}

#[test]
fn behind_a_trusted_proxy_each_client_address_has_its_own_limit() {
    let app = TestApp::start_with(|c| {
        c.rate_limits.login_per_address.max = 2;
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
    });
    let (admin, _) = app.admin();
    let attempt = |from: &str| {
        app.send(
            "POST",
            "/auth/login",
            None,
            Some(&json!({"email": "nobody@example.org", "password": "whatever pass"})),
            &[("X-Forwarded-For", from)],
        )
    };
    attempt("203.0.113.7").expect(401);
    attempt("203.0.113.7").expect(401);
    attempt("203.0.113.7").expect_problem(429, "rate-limited");
    // Another client behind the same proxy is not affected.
    app.send(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"email": admin.email, "password": PASSWORD})),
        &[("X-Forwarded-For", "198.51.100.23")],
    )
    .expect(200);
}
