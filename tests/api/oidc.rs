//! Sign-in with a Swedish e-ID over OpenID Connect (issue 15), against the loopback
//! provider of `support::oidc`: linking after a login and a step-up, signing in with
//! the link, and every refusal the issue names (wrong issuer, wrong audience, expired
//! token, replayed nonce and state, a code with another attempt's PKCE verifier, an
//! unlinked e-ID), with who may call what.

use diesel::prelude::*;
use eportfolio::schema::audit_log;
use serde_json::json;

use crate::support::oidc::{Bend, Provider};
use crate::support::{TestApp, TestUser};

/// An app whose region's e-ID broker is `provider`, adjusted by `adjust`.
fn app_with(
    provider: &Provider,
    adjust: impl FnOnce(&mut eportfolio::config::OidcProvider),
) -> TestApp {
    let mut p = provider.config();
    adjust(&mut p);
    let app = TestApp::start_with(|c| c.oidc = Some(p));
    provider.use_clock(app.clock.clone());
    app
}

/// Starts a link as `user` (whose second factor is fresh: the password is the step-up)
/// and returns the authorization URL.
fn start_link(app: &TestApp, user: &TestUser) -> String {
    let r = app
        .post(
            "/me/oidc-links/authorize",
            Some(&user.access),
            json!({"password": user.password}),
        )
        .expect(200);
    r.body["authorization_url"]
        .as_str()
        .expect("url")
        .to_string()
}

/// Links the e-ID `subject` to `user`; returns the link id.
fn link(app: &TestApp, provider: &Provider, user: &TestUser, subject: &str) -> String {
    let url = start_link(app, user);
    let (code, state) = provider.authorize(&url, subject);
    let r = app
        .post(
            "/me/oidc-links",
            Some(&user.access),
            json!({"state": state, "code": code}),
        )
        .expect(201);
    r.body["id"].as_str().expect("id").to_string()
}

/// A started sign-in: the authorization URL.
fn start_sign_in(app: &TestApp) -> String {
    let r = app
        .post("/auth/oidc/authorize", None, json!({}))
        .expect(200);
    let url = r.body["authorization_url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(url.starts_with(&app.config.oidc.as_ref().expect("oidc").issuer));
    for part in [
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "code_challenge=",
    ] {
        assert!(url.contains(part), "{part} missing in {url}");
    }
    url
}

fn callback(app: &TestApp, code: &str, state: &str) -> crate::support::Resp {
    app.post(
        "/auth/oidc/callback",
        None,
        json!({"state": state, "code": code}),
    )
}

fn audit_actions(app: &TestApp) -> Vec<(String, String)> {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    audit_log::table
        .filter(audit_log::entity.eq("oidc_link"))
        .order(audit_log::seq)
        .select((audit_log::action, audit_log::data))
        .load(&mut *conn)
        .expect("audit rows")
}

#[test]
fn a_linked_e_id_signs_in_after_a_step_up_link_and_is_then_removed() {
    let provider = Provider::start();
    let app = app_with(&provider, |_| {});
    let info = app.get("/auth/oidc", None).expect(200);
    assert_eq!(info.body["display_name"], "Test e-ID");
    assert_eq!(info.body["counts_as_second_factor"], false);
    let (admin, _) = app.admin();

    // Linking needs the step-up: without the password, nothing starts.
    app.post("/me/oidc-links/authorize", Some(&admin.access), json!({}))
        .expect_problem(401, "step-up-required");
    let link_id = link(&app, &provider, &admin, "199001011234-sub");
    let links = app.get("/me/oidc-links", Some(&admin.access)).expect(200);
    assert_eq!(links.body["items"].as_array().expect("items").len(), 1);
    assert_eq!(links.body["items"][0]["id"], link_id.as_str());
    assert_eq!(links.body["items"][0]["issuer"], provider.issuer.as_str());
    // The subject (it may be a personnummer) is neither shown nor audited in clear.
    assert!(!links.text.contains("199001011234"), "{}", links.text);

    // Signing in: the e-ID replaces the password; the account's own second factor follows.
    let url = start_sign_in(&app);
    let (code, state) = provider.authorize(&url, "199001011234-sub");
    let step = callback(&app, &code, &state).expect(200);
    assert_eq!(step.body["status"], "mfa_required", "{}", step.text);
    let mfa = TestApp::mfa_token_of(&step);
    let secret = admin.totp_secret.as_deref().expect("totp");
    let done = app.verify(&mfa, "totp", &app.totp(secret)).expect(200);
    let access = done.body["access_token"].as_str().expect("access");
    let me = app.get("/me", Some(access)).expect(200);
    assert_eq!(me.body["id"], admin.id.as_str());
    app.advance(30);

    // Removing needs the step-up too; then the e-ID no longer signs in.
    let other_session = app.login_totp(&admin);
    app.advance(400); // the factor of that session is no longer fresh
    app.delete(
        &format!("/me/oidc-links/{link_id}"),
        Some(&other_session.access),
    )
    .expect_problem(401, "step-up-required");
    let code_now = app.totp(secret);
    app.send(
        "DELETE",
        &format!("/me/oidc-links/{link_id}"),
        Some(&other_session.access),
        Some(&json!({"password": admin.password, "totp_code": code_now})),
        &[],
    )
    .expect(204);
    let url = start_sign_in(&app);
    let (code, state) = provider.authorize(&url, "199001011234-sub");
    callback(&app, &code, &state).expect_problem(401, "oidc-not-linked");

    let audit = audit_actions(&app);
    let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["oidc_linked", "oidc_sign_in", "oidc_unlinked"]);
    assert!(
        audit.iter().all(|(_, d)| !d.contains("199001011234")),
        "{audit:?}"
    );
}

#[test]
fn a_provider_that_counts_as_a_second_factor_signs_in_at_once() {
    let provider = Provider::start();
    let app = app_with(&provider, |p| p.counts_as_second_factor = true);
    let (admin, _) = app.admin();
    link(&app, &provider, &admin, "freja-42");
    let url = start_sign_in(&app);
    let (code, state) = provider.authorize(&url, "freja-42");
    let done = callback(&app, &code, &state).expect(200);
    assert_eq!(done.body["status"], "authenticated", "{}", done.text);
    let access = done.body["access_token"].as_str().expect("access");
    assert!(done.body["refresh_token"].is_string());
    let me = app.get("/me", Some(access)).expect(200);
    assert_eq!(me.body["id"], admin.id.as_str());
    // Such a session has a fresh second factor: a step-up needs only the password.
    app.post(
        "/me/oidc-links/authorize",
        Some(access),
        json!({"password": admin.password}),
    )
    .expect(200);
}

#[test]
fn an_unlinked_e_id_gets_one_answer_that_names_no_account() {
    let provider = Provider::start();
    let app = app_with(&provider, |_| {});
    let (admin, _) = app.admin();
    link(&app, &provider, &admin, "linked-subject");
    let url = start_sign_in(&app);
    let (code, state) = provider.authorize(&url, "nobody-here");
    let r = callback(&app, &code, &state).expect_problem(401, "oidc-not-linked");
    assert!(!r.text.contains("admin@"), "{}", r.text);
}

#[test]
fn id_tokens_of_another_issuer_audience_or_time_and_replayed_nonces_are_refused() {
    let provider = Provider::start();
    let app = app_with(&provider, |_| {});
    let (admin, _) = app.admin();
    link(&app, &provider, &admin, "subject-1");
    let first_nonce = provider.nonces()[0].clone();

    let bends = [
        Bend {
            issuer: Some("https://evil.example".into()),
            ..Bend::default()
        },
        Bend {
            audience: Some("another-client".into()),
            ..Bend::default()
        },
        Bend {
            shift: -3600,
            ..Bend::default()
        },
        // The ID token of an earlier attempt, replayed into a new one.
        Bend {
            nonce: Some(first_nonce),
            ..Bend::default()
        },
    ];
    for bend in bends {
        let url = start_sign_in(&app);
        let (code, state) = provider.authorize(&url, "subject-1");
        provider.bend_next(bend.clone());
        let r = callback(&app, &code, &state);
        assert_eq!(r.status, 401, "{bend:?}: {}", r.text);
        assert!(r.text.contains("oidc-refused"), "{bend:?}: {}", r.text);
        assert!(r.body.get("access_token").is_none());
    }
    // Unbent, the same e-ID signs in.
    let url = start_sign_in(&app);
    let (code, state) = provider.authorize(&url, "subject-1");
    assert_eq!(
        callback(&app, &code, &state).expect(200).body["status"],
        "mfa_required"
    );
}

#[test]
fn a_state_works_once_and_a_code_needs_its_own_attempts_pkce_verifier() {
    let provider = Provider::start();
    let app = app_with(&provider, |p| p.counts_as_second_factor = true);
    let (admin, _) = app.admin();
    link(&app, &provider, &admin, "subject-2");

    let url = start_sign_in(&app);
    let (code, state) = provider.authorize(&url, "subject-2");
    callback(&app, &code, &state).expect(200);
    let asked = provider.token_requests();
    // Replayed: refused before the provider is asked again.
    callback(&app, &code, &state).expect_problem(401, "oidc-refused");
    assert_eq!(provider.token_requests(), asked);
    // An unknown state likewise.
    callback(&app, &code, "made-up-state").expect_problem(401, "oidc-refused");

    // A code intercepted from the victim's attempt, injected into the attacker's own:
    // the attacker's attempt sends its own PKCE verifier, which the provider refuses.
    let victim = start_sign_in(&app);
    let attacker = start_sign_in(&app);
    let (victim_code, _) = provider.authorize(&victim, "subject-2");
    let (_, attacker_state) = provider.authorize(&attacker, "attacker");
    callback(&app, &victim_code, &attacker_state).expect_problem(401, "oidc-refused");

    // An attempt that took too long has expired.
    let url = start_sign_in(&app);
    let (code, state) = provider.authorize(&url, "subject-2");
    app.advance(601);
    callback(&app, &code, &state).expect_problem(401, "oidc-refused");
}

#[test]
fn links_are_one_account_per_e_id_and_only_the_starting_session_finishes_one() {
    let provider = Provider::start();
    let app = app_with(&provider, |_| {});
    let (admin, region) = app.admin();
    let other = app.join(
        &admin,
        "studierektor@regionstockholm.se",
        "director_of_studies",
        &region,
    );
    let link_id = link(&app, &provider, &admin, "subject-3");

    // Another account cannot take the same e-ID, nor the admin a second one.
    let url = start_link(&app, &other);
    let (code, state) = provider.authorize(&url, "subject-3");
    app.post(
        "/me/oidc-links",
        Some(&other.access),
        json!({"state": state, "code": code}),
    )
    .expect_problem(409, "conflict");
    let url = start_link(&app, &admin);
    let (code, state) = provider.authorize(&url, "subject-4");
    app.post(
        "/me/oidc-links",
        Some(&admin.access),
        json!({"state": state, "code": code}),
    )
    .expect_problem(409, "conflict");

    // A link attempt of the admin, finished by another person: 404, and it still works
    // for the admin afterwards (the other's try did not use it up: the admin gets as far
    // as the provider's answer, and the conflict of a second e-ID).
    let url = start_link(&app, &admin);
    let (code, state) = provider.authorize(&url, "subject-5");
    app.post(
        "/me/oidc-links",
        Some(&other.access),
        json!({"state": state, "code": code}),
    )
    .expect(404);
    app.post(
        "/me/oidc-links",
        Some(&admin.access),
        json!({"state": state, "code": code}),
    )
    .expect_problem(409, "conflict");
    // Another's link cannot be removed (404, with the step-up given).
    app.send(
        "DELETE",
        &format!("/me/oidc-links/{link_id}"),
        Some(&other.access),
        Some(&json!({"password": other.password})),
        &[],
    )
    .expect(404);
    assert_eq!(
        app.get("/me/oidc-links", Some(&other.access))
            .expect(200)
            .body["items"],
        json!([])
    );
    // A sign-in attempt is no link attempt.
    let url = start_sign_in(&app);
    let (code, state) = provider.authorize(&url, "subject-3");
    app.post(
        "/me/oidc-links",
        Some(&admin.access),
        json!({"state": state, "code": code}),
    )
    .expect(404);
}

#[test]
fn without_a_provider_or_over_plain_http_nothing_starts() {
    let app = TestApp::start();
    app.get("/auth/oidc", None).expect(404);
    app.post("/auth/oidc/authorize", None, json!({}))
        .expect(404);
    let (admin, _) = app.admin();
    app.post(
        "/me/oidc-links/authorize",
        Some(&admin.access),
        json!({"password": admin.password}),
    )
    .expect(404);

    // An http provider without the explicit opt-in is not talked to.
    let provider = Provider::start();
    let app = app_with(&provider, |p| p.allow_http = false);
    app.post("/auth/oidc/authorize", None, json!({}))
        .expect_problem(503, "unavailable");
}

#[test]
fn the_same_answer_sent_several_times_at_once_signs_in_once() {
    let provider = Provider::start();
    let app = app_with(&provider, |p| p.counts_as_second_factor = true);
    let (admin, _) = app.admin();
    link(&app, &provider, &admin, "subject-6");
    let url = start_sign_in(&app);
    let (code, state) = provider.authorize(&url, "subject-6");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let sent: Vec<_> = (0..4)
            .map(|_| s.spawn(|| callback(&app, &code, &state).status))
            .collect();
        sent.into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        provider.token_requests(),
        2,
        "one for the link, one for the sign-in"
    );
}

#[test]
fn a_link_started_with_a_stale_second_factor_needs_a_right_code() {
    let provider = Provider::start();
    let app = app_with(&provider, |_| {});
    let (admin, _) = app.admin();
    app.advance(400);
    let path = "/me/oidc-links/authorize";
    app.post(
        path,
        Some(&admin.access),
        json!({"password": admin.password}),
    )
    .expect_problem(401, "step-up-required");
    app.post(
        path,
        Some(&admin.access),
        json!({"password": "wrong password", "totp_code": "000000"}),
    )
    .expect_problem(401, "invalid-credentials");
    app.post(
        path,
        Some(&admin.access),
        json!({"password": admin.password, "totp_code": "000000"}),
    )
    .expect_problem(401, "invalid-second-factor");
    let secret = admin.totp_secret.as_deref().expect("totp");
    let code = app.totp(secret);
    app.post(
        path,
        Some(&admin.access),
        json!({"password": admin.password, "totp_code": code}),
    )
    .expect(200);
}
