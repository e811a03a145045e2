//! Review of the merged issue-12 work on authentication: attacks that still worked after
//! the merge, each named after the attack.

use serde_json::json;

use crate::support::{TestApp, PASSWORD};

/// The token of the undo link in the newest notice to `to` after `before` mails.
fn undo_token(app: &TestApp, to: &str, before: usize) -> String {
    let notice = app.smtp.wait_for(to, before);
    assert!(
        notice.body_text().contains("/undo-change?token="),
        "{}",
        notice.body_text()
    );
    notice.find_token_after("token=").expect("undo token")
}

/// An intruder with the password and a fresh session moves the account to their own
/// address (the owner's old address gets an undo link), then makes a second change whose
/// undo link comes to the intruder's new address, and uses it first. That must not
/// cancel the owner's link: the owner's undo still restores the old address, and the
/// reset link the intruder's undo mailed to the intruder stops working.
#[test]
fn an_intruders_own_undo_link_cannot_cancel_the_owners_undo_link() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let old = admin.email.clone();
    let thief = "thief@evil.example";

    let before_old = app.smtp.count_to(&old);
    app.post(
        "/me/email",
        Some(&admin.access),
        json!({"new_email": thief, "password": PASSWORD}),
    )
    .expect(202);
    let owners_undo = undo_token(&app, &old, before_old);
    let confirm = app
        .smtp
        .wait_for(thief, 0)
        .find_token_after("token=")
        .expect("confirmation token");
    app.post("/auth/email-verification", None, json!({"token": confirm}))
        .expect(204);

    // A second change, still within the session's five fresh minutes: its notice (and
    // undo link) goes to the account's address, now the intruder's.
    app.advance(5);
    let before_thief = app.smtp.count_to(thief);
    app.post(
        "/me/recovery-codes",
        Some(&admin.access),
        json!({"password": PASSWORD}),
    )
    .expect(201);
    let thiefs_undo = undo_token(&app, thief, before_thief);

    // The intruder undoes their own change first: a reset link comes to them.
    app.advance(5);
    let before_reset = app.smtp.count_to(thief);
    app.post("/auth/undo-change", None, json!({"token": thiefs_undo}))
        .expect(204);
    let thiefs_reset = app
        .smtp
        .wait_for(thief, before_reset)
        .find_token_after("token=")
        .expect("reset token");

    // The owner's link still works: the old address is restored.
    app.advance(5);
    let before_owner_reset = app.smtp.count_to(&old);
    app.post("/auth/undo-change", None, json!({"token": owners_undo}))
        .expect(204);
    // The intruder's reset link is dead; the owner's works and the owner is back in.
    app.post(
        "/auth/password-reset/confirm",
        None,
        json!({"token": thiefs_reset, "new_password": "the thief's new passphrase"}),
    )
    .expect_problem(422, "invalid-token");
    app.login_step(thief, "the thief's new passphrase", None)
        .expect_problem(401, "invalid-credentials");
    let owners_reset = app
        .smtp
        .wait_for(&old, before_owner_reset)
        .find_token_after("token=")
        .expect("owner's reset token");
    app.post(
        "/auth/password-reset/confirm",
        None,
        json!({"token": owners_reset, "new_password": "a fresh passphrase of mine"}),
    )
    .expect(204);
    // The intruder's undo removed the second factor: the owner logs in at the old address
    // and is asked to enrol one.
    let step = app
        .login_step(&old, "a fresh passphrase of mine", None)
        .expect(200);
    assert_eq!(
        step.body["status"], "mfa_enrolment_required",
        "{}",
        step.text
    );
}

/// The SHA-256 of `text`, in lower-case hex.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whoever has a copy of the database (or a backup) reads `idempotency_keys`. A step-up
/// request sent with an `Idempotency-Key` carries the current password; the hash kept to
/// recognise a retry must not let them test password guesses at SHA-256 speed (the
/// password itself is stored with argon2). The key still does its job: the same request
/// replays, another body with the same key is refused.
#[test]
fn a_copy_of_the_database_cannot_test_password_guesses_against_the_idempotency_store() {
    use diesel::prelude::*;
    use eportfolio::schema::idempotency_keys;

    let app = TestApp::start();
    let (admin, _) = app.admin();
    let body = json!({"new_email": "new.address@regionstockholm.se", "password": PASSWORD});
    let key = [("Idempotency-Key", "change-my-address")];
    app.send("POST", "/me/email", Some(&admin.access), Some(&body), &key)
        .expect(202);

    let mut conn = eportfolio::db::connect(&app.config.database_url, 1)
        .expect("pool")
        .get()
        .expect("conn");
    let stored: String = idempotency_keys::table
        .filter(idempotency_keys::key.eq("change-my-address"))
        .select(idempotency_keys::request_hash)
        .first(&mut *conn)
        .expect("the key is kept");
    // What an offline guesser computes for each candidate password.
    let guess = |password: &str| {
        let body = json!({"new_email": "new.address@regionstockholm.se", "password": password});
        sha256_hex(&format!(
            "POST /api/v1/me/email\n{}",
            serde_json::to_string(&body).expect("json")
        ))
    };
    assert_ne!(stored, guess(PASSWORD), "the right guess is recognisable");
    assert!(
        !stored.contains(&guess(PASSWORD)),
        "the stored hash gives the password away"
    );

    // The key still recognises the retry and refuses another body.
    let again = app
        .send("POST", "/me/email", Some(&admin.access), Some(&body), &key)
        .expect(202);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = json!({"new_email": "other.address@regionstockholm.se", "password": PASSWORD});
    let r = app.send("POST", "/me/email", Some(&admin.access), Some(&other), &key);
    assert!(r.status == 409 || r.status == 422, "{}", r.text);
}

/// While the mail server is down, a reset link waits in the outbox. Its token is kept
/// only as a hash in `mail_tokens`; the queued body must not hand it to whoever copies
/// the database or a backup meanwhile. Once the server is back, the link is delivered
/// and works.
#[test]
fn a_copy_of_the_database_holds_no_link_of_mail_waiting_for_smtp() {
    use diesel::prelude::*;
    use eportfolio::schema::mail_outbox;

    let app = TestApp::start();
    let (admin, _) = app.admin();
    app.smtp.set_refusing(true);
    let before = app.smtp.count_to(&admin.email);
    app.post("/auth/password-reset", None, json!({"email": admin.email}))
        .expect(202);

    let mut conn = eportfolio::db::connect(&app.config.database_url, 1)
        .expect("pool")
        .get()
        .expect("conn");
    let bodies: Vec<String> = mail_outbox::table
        .filter(mail_outbox::status.eq("pending"))
        .select(mail_outbox::body)
        .load(&mut *conn)
        .expect("outbox");
    assert!(!bodies.is_empty(), "the reset mail waits in the outbox");
    for body in &bodies {
        assert!(
            !body.contains("token=") && !body.contains("reset-password"),
            "a queued body gives its link away: {body}"
        );
    }

    // The first attempt must have failed and been recorded before the server comes
    // back: an attempt still in flight while the clock moves would schedule its retry
    // from the moved clock, past anything this test waits for.
    let started = std::time::Instant::now();
    loop {
        let failed: i64 = mail_outbox::table
            .filter(mail_outbox::status.eq("pending"))
            .filter(mail_outbox::attempts.ge(1))
            .filter(mail_outbox::lease.is_null())
            .count()
            .get_result(&mut *conn)
            .expect("outbox");
        if failed == bodies.len() as i64 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the first attempt never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Delivered once the mail server is back (after the retry's backoff), and it works.
    app.smtp.set_refusing(false);
    app.advance(300);
    let token = app
        .smtp
        .wait_for(&admin.email, before)
        .find_token_after("token=")
        .expect("reset token");
    app.post(
        "/auth/password-reset/confirm",
        None,
        json!({"token": token, "new_password": "a fresh passphrase of mine"}),
    )
    .expect(204);
}

/// An intruder (password and a fresh session) asks to move the account to their address.
/// The owner, warned by the notice, answers by resetting the password. The intruder's
/// confirmation link must stop working with that: otherwise they confirm it afterwards
/// and the account's address (and every later reset link) is theirs.
#[test]
fn a_pending_email_change_does_not_survive_a_password_reset() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let thief = "thief@evil.example";
    let before = app.smtp.count_to(&admin.email);
    app.post(
        "/me/email",
        Some(&admin.access),
        json!({"new_email": thief, "password": PASSWORD}),
    )
    .expect(202);
    let confirm = app
        .smtp
        .wait_for(thief, 0)
        .find_token_after("token=")
        .expect("confirmation token");
    // The owner's notice has arrived (the reset link below is the next mail).
    undo_token(&app, &admin.email, before);

    let reset = app.reset_link(&admin.email);
    app.post(
        "/auth/password-reset/confirm",
        None,
        json!({"token": reset, "new_password": "a fresh passphrase of mine"}),
    )
    .expect(204);

    app.post("/auth/email-verification", None, json!({"token": confirm}))
        .expect_problem(422, "invalid-token");
    app.login_step(thief, "a fresh passphrase of mine", None)
        .expect_problem(401, "invalid-credentials");
    let step = app
        .login_step(&admin.email, "a fresh passphrase of mine", None)
        .expect(200);
    assert_eq!(step.body["status"], "mfa_required", "{}", step.text);
}

/// The same when the owner changes the password from a signed-in session.
#[test]
fn a_pending_email_change_does_not_survive_a_password_change() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let owner = app.login_totp(&admin);
    let thief = "thief@evil.example";
    app.post(
        "/me/email",
        Some(&admin.access),
        json!({"new_email": thief, "password": PASSWORD}),
    )
    .expect(202);
    let confirm = app
        .smtp
        .wait_for(thief, 0)
        .find_token_after("token=")
        .expect("confirmation token");

    app.post(
        "/me/password",
        Some(&owner.access),
        json!({"password": PASSWORD, "new_password": "a fresh passphrase of mine"}),
    )
    .expect(204);

    app.post("/auth/email-verification", None, json!({"token": confirm}))
        .expect_problem(422, "invalid-token");
    app.login_step(thief, "a fresh passphrase of mine", None)
        .expect_problem(401, "invalid-credentials");
}

/// The hash that logins of unknown accounts are checked against (so that timing tells
/// nothing) was of a fixed password in the source. An account left without a password,
/// as every undo leaves it until the owner sets one from the reset link, opened with that
/// password; after undoing a second-factor change the account has no second factor
/// either, so the login went on to enrol the intruder's own authenticator.
#[test]
fn the_dummy_password_does_not_open_an_account_left_without_a_password() {
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
    app.post("/auth/undo-change", None, json!({"token": undo}))
        .expect(204);

    app.login_step(&admin.email, "not-a-real-password-0f8e", None)
        .expect_problem(401, "invalid-credentials");
    app.login_step(&admin.email, "", None)
        .expect_problem(401, "invalid-credentials");
}

/// Whoever got hold of a reset link (a copy of a mail, a forwarded mailbox) set a new
/// password and the owner was never told: the notice with its undo link, sent for a
/// password change from a session, must follow a reset too (ASVS 2.2.3).
#[test]
fn a_password_set_from_a_reset_link_is_told_to_the_account_with_an_undo_link() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let reset = app.reset_link(&admin.email);
    let before = app.smtp.count_to(&admin.email);
    app.post(
        "/auth/password-reset/confirm",
        None,
        json!({"token": reset, "new_password": "the intruder's passphrase"}),
    )
    .expect(204);
    let undo = undo_token(&app, &admin.email, before);
    // The owner undoes it: the intruder's password stops working.
    app.post("/auth/undo-change", None, json!({"token": undo}))
        .expect(204);
    app.login_step(&admin.email, "the intruder's passphrase", None)
        .expect_problem(401, "invalid-credentials");
}

/// The code that confirms a new authenticator is a second-factor code like any other,
/// yet wrong ones were never counted: a bearer token could guess at it without end
/// (and a confirmation hands out recovery codes when the account has none left). It
/// counts against the account's second-factor limit, as at login and step-up.
#[test]
fn guesses_at_the_code_confirming_a_new_authenticator_are_limited() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let setup = app
        .post(
            "/me/totp",
            Some(&admin.access),
            json!({"password": PASSWORD}),
        )
        .expect(200);
    let secret = setup.body["secret"].as_str().expect("secret").to_string();
    let right = app.totp(&secret);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            app.post(
                "/me/totp/confirm",
                Some(&admin.access),
                json!({"code": wrong}),
            )
            .status,
        );
    }
    assert!(statuses[..10].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even the right code waits for the window to pass.
    app.post(
        "/me/totp/confirm",
        Some(&admin.access),
        json!({"code": right}),
    )
    .expect_problem(429, "rate-limited");
}
