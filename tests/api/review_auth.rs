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
