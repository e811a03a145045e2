//! Attacks on signing in, each as the review carried it out: a login challenge used to
//! replace the authenticator, parallel guesses racing the attempt limits, and one-time
//! things (refresh tokens, TOTP codes, e-mailed codes, reset links) used twice by
//! sending them at once. Every race fires its requests together behind a barrier, each
//! from its own thread and HTTP agent, and requires exactly one effect.

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{TestApp, TestUser, PASSWORD};

/// Sends every body to `path` (under `/api/v1`) at the same moment; returns each
/// answer's status and body, in the order of `bodies`.
fn at_once(app: &TestApp, path: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let url = format!("{}/api/v1{path}", app.base);
    let barrier = Barrier::new(bodies.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let (url, barrier) = (&url, &barrier);
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(60))
                        .build();
                    let request = agent.post(url);
                    barrier.wait();
                    let r = TestApp::read(request.send_json(body));
                    (r.status, r.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    })
}

/// How many answers had each outcome: `"200"`, or `"401 invalid-second-factor"` for a
/// problem (status and the last segment of its type).
fn tally(answers: &[(u16, Value)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (status, body) in answers {
        let key = match body["type"].as_str() {
            Some(t) => format!("{status} {}", t.rsplit('/').next().unwrap_or(t)),
            None => status.to_string(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

fn count(counts: &BTreeMap<String, usize>, key: &str) -> usize {
    counts.get(key).copied().unwrap_or(0)
}

/// A six-digit code that is certainly not `code`.
fn other_than(code: &str) -> &'static str {
    if code == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// Invites `email` and enrols e-mailed codes as its second factor (one code mail).
fn join_with_emailed_codes(app: &TestApp, admin: &TestUser, region: &str, email: &str) {
    let token = app.invite(admin, email, "trainee", region);
    let mfa = app.accept_new(&token, None);
    let code = app.emailed_code(email, &mfa);
    app.verify(&mfa, "email_code", &code).expect(200);
}

// ---- Item 1: a challenge serves only its purpose ------------------------------------

#[test]
fn a_login_challenge_cannot_enrol_a_new_authenticator() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    // The attacker knows the password: the login answers with a login challenge.
    let mfa = app.password_step(&admin.email, PASSWORD);
    app.post("/auth/mfa/totp/setup", None, json!({"mfa_token": mfa}))
        .expect_problem(403, "forbidden");
    // Even with a code from a secret of the attacker's choosing: no tokens.
    let attacker_secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let confirm = app
        .post(
            "/auth/mfa/totp/confirm",
            None,
            json!({"mfa_token": mfa, "code": app.totp(attacker_secret)}),
        )
        .expect_problem(403, "forbidden");
    assert!(
        confirm.body.get("access_token").is_none(),
        "{}",
        confirm.text
    );

    // The victim's authenticator and recovery codes are untouched.
    let me = app.get("/me", Some(&admin.access)).expect(200);
    assert_eq!(me.body["mfa"]["totp"], true);
    assert_eq!(me.body["mfa"]["recovery_codes_remaining"], 10);
    let again = app.login_totp(&admin);
    app.get("/me", Some(&again.access)).expect(200);
    // And the login challenge still serves its own purpose.
    let mfa = app.password_step(&admin.email, PASSWORD);
    let secret = admin.totp_secret.clone().expect("secret");
    app.verify(&mfa, "totp", &app.totp(&secret)).expect(200);
}

#[test]
fn an_old_enrolment_challenge_cannot_replace_the_confirmed_authenticator() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let email = "ny.st-lakare@example.org";
    let token = app.invite(&admin, email, "trainee", &region);
    // Two enrolment challenges: the acceptance's, and a login before enrolling.
    let first = app.accept_new(&token, None);
    let step = app.login_step(email, PASSWORD, None).expect(200);
    assert_eq!(
        step.body["status"], "mfa_enrolment_required",
        "{}",
        step.text
    );
    let second = TestApp::mfa_token_of(&step);

    // An enrolment challenge is not answered with an authenticator or recovery code.
    app.verify(&second, "totp", "123456")
        .expect_problem(403, "forbidden");

    // Enrol with the second one.
    let setup = app
        .post("/auth/mfa/totp/setup", None, json!({"mfa_token": second}))
        .expect(200);
    let secret = setup.body["secret"].as_str().expect("secret").to_string();
    app.post(
        "/auth/mfa/totp/confirm",
        None,
        json!({"mfa_token": second, "code": app.totp(&secret)}),
    )
    .expect(200);
    app.advance(30);

    // Whoever holds the first one cannot set up another authenticator or e-mailed codes.
    app.post("/auth/mfa/totp/setup", None, json!({"mfa_token": first}))
        .expect_problem(403, "forbidden");
    app.post(
        "/auth/mfa/totp/confirm",
        None,
        json!({"mfa_token": first, "code": app.totp(&secret)}),
    )
    .expect_problem(403, "forbidden");
    app.post("/auth/mfa/email-code", None, json!({"mfa_token": first}))
        .expect_problem(403, "forbidden");

    // The enrolled authenticator is still the one that signs in.
    let mfa = app.password_step(email, PASSWORD);
    let done = app.verify(&mfa, "totp", &app.totp(&secret)).expect(200);
    let me = app
        .get("/me", done.body["access_token"].as_str())
        .expect(200);
    assert_eq!(me.body["mfa"]["totp"], true);
    assert_eq!(me.body["mfa"]["email_code"], false);
}

// ---- Item 2: attempt limits hold under parallel guesses ------------------------------

#[test]
fn parallel_wrong_passwords_get_at_most_the_limit_of_401s() {
    let app = TestApp::start_with(|c| c.rate_limits.login_per_account.max = 5);
    let (admin, _) = app.admin();
    let bodies = (0..16)
        .map(|i| json!({"email": admin.email, "password": format!("wrong guess number {i}")}))
        .collect();
    let counts = tally(&at_once(&app, "/auth/login", bodies));
    assert_eq!(count(&counts, "401 invalid-credentials"), 5, "{counts:?}");
    assert_eq!(count(&counts, "429 rate-limited"), 11, "{counts:?}");
    // The account is locked for the window, the right password included.
    app.login_step(&admin.email, PASSWORD, None)
        .expect_problem(429, "rate-limited");
}

#[test]
fn the_right_password_among_parallel_guesses_does_not_let_the_guesses_through() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let limit = app.config.rate_limits.login_per_account.max as usize;
    // The reviewer's run: 40 at once, 39 wrong and 1 right.
    let mut bodies: Vec<Value> = (0..39)
        .map(|i| json!({"email": admin.email, "password": format!("wrong guess number {i}")}))
        .collect();
    bodies.insert(20, json!({"email": admin.email, "password": PASSWORD}));
    let counts = tally(&at_once(&app, "/auth/login", bodies));
    let wrong_checked = count(&counts, "401 invalid-credentials");
    let signed_in = count(&counts, "200");
    let refused = count(&counts, "429 rate-limited");
    assert!(wrong_checked <= limit, "{counts:?}");
    assert!(signed_in <= 1, "{counts:?}");
    assert_eq!(wrong_checked + signed_in + refused, 40, "{counts:?}");
    assert!(refused >= 40 - limit - 1, "{counts:?}");
}

#[test]
fn parallel_wrong_second_factors_get_at_most_the_account_limit() {
    let app = TestApp::start_with(|c| c.rate_limits.mfa_per_account.max = 4);
    let (admin, _) = app.admin();
    let secret = admin.totp_secret.clone().expect("secret");
    let wrong = other_than(&app.totp(&secret)).to_string();
    // Each guess on a challenge of its own, so only the account's limit stops them.
    let bodies = (0..12)
        .map(|_| {
            let mfa = app.password_step(&admin.email, PASSWORD);
            json!({"mfa_token": mfa, "method": "totp", "code": wrong})
        })
        .collect();
    let counts = tally(&at_once(&app, "/auth/mfa/verify", bodies));
    assert_eq!(count(&counts, "401 invalid-second-factor"), 4, "{counts:?}");
    assert_eq!(count(&counts, "429 rate-limited"), 8, "{counts:?}");
    // Locked: the right code waits for the window too.
    app.verify(
        &app.password_step(&admin.email, PASSWORD),
        "totp",
        &app.totp(&secret),
    )
    .expect_problem(429, "rate-limited");
}

#[test]
fn parallel_wrong_codes_on_one_challenge_get_only_its_five_tries() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let secret = admin.totp_secret.clone().expect("secret");
    let mfa = app.password_step(&admin.email, PASSWORD);
    let wrong = other_than(&app.totp(&secret)).to_string();
    let bodies = (0..16)
        .map(|_| json!({"mfa_token": mfa, "method": "totp", "code": wrong}))
        .collect();
    let counts = tally(&at_once(&app, "/auth/mfa/verify", bodies));
    assert_eq!(count(&counts, "401 invalid-second-factor"), 5, "{counts:?}");
    assert_eq!(count(&counts, "401 unauthenticated"), 11, "{counts:?}");
    // The challenge is used up: even the right code must start over.
    app.verify(&mfa, "totp", &app.totp(&secret))
        .expect_problem(401, "unauthenticated");
}

#[test]
fn parallel_wrong_emailed_codes_use_up_the_code() {
    let app = TestApp::start_with(|c| c.email_code_max_attempts = 3);
    let (admin, region) = app.admin();
    let email = "epost.lakare@example.org";
    join_with_emailed_codes(&app, &admin, &region, email);
    let mfa = app.password_step(email, PASSWORD);
    let code = app.emailed_code(email, &mfa);
    let wrong = other_than(&code).to_string();
    let bodies = (0..4)
        .map(|_| json!({"mfa_token": mfa, "method": "email_code", "code": wrong}))
        .collect();
    let counts = tally(&at_once(&app, "/auth/mfa/verify", bodies));
    assert_eq!(count(&counts, "401 invalid-second-factor"), 4, "{counts:?}");
    // Three tries per code: the fourth wrong one used it up, so the right code is refused.
    app.verify(&mfa, "email_code", &code)
        .expect_problem(401, "invalid-second-factor");
}

#[test]
fn parallel_mail_requests_send_at_most_the_limit() {
    let app = TestApp::start_with(|c| c.rate_limits.mail_per_account.max = 6);
    let (admin, region) = app.admin();
    let email = "epost.lakare@example.org";
    // Enrolling sent one code: five of the six mails of the hour are left.
    join_with_emailed_codes(&app, &admin, &region, email);
    let mfa = app.password_step(email, PASSWORD);
    let before = app.smtp.count_to(email);
    let bodies = (0..12).map(|_| json!({"mfa_token": mfa})).collect();
    let counts = tally(&at_once(&app, "/auth/mfa/email-code", bodies));
    assert_eq!(count(&counts, "202"), 5, "{counts:?}");
    assert_eq!(count(&counts, "429 rate-limited"), 7, "{counts:?}");
    app.smtp.wait_for(email, before + 4);
    assert_eq!(app.smtp.count_to(email), before + 5);

    // Password-reset mails to one address: the same limit, counted atomically too.
    let before = app.smtp.count_to(&admin.email);
    let bodies = (0..12).map(|_| json!({"email": admin.email})).collect();
    let counts = tally(&at_once(&app, "/auth/password-reset", bodies));
    assert_eq!(count(&counts, "202"), 6, "{counts:?}");
    assert_eq!(count(&counts, "429 rate-limited"), 6, "{counts:?}");
    app.smtp.wait_for(&admin.email, before + 5);
    assert_eq!(app.smtp.count_to(&admin.email), before + 6);
}

// ---- Item 12: one-time things are one-time under parallel use -----------------------

#[test]
fn one_refresh_token_sent_at_once_rotates_once() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let bodies = (0..12)
        .map(|_| json!({"refresh_token": admin.refresh}))
        .collect();
    let answers = at_once(&app, "/auth/refresh", bodies);
    let counts = tally(&answers);
    assert_eq!(count(&counts, "200"), 1, "{counts:?}");
    assert_eq!(count(&counts, "401 unauthenticated"), 11, "{counts:?}");
    // The others were reuse of a rotated token: the session is ended, as for a leak.
    let winner = answers
        .iter()
        .find(|(status, _)| *status == 200)
        .map(|(_, body)| body["refresh_token"].as_str().expect("refresh").to_string())
        .expect("one rotation");
    app.post("/auth/refresh", None, json!({"refresh_token": winner}))
        .expect_problem(401, "unauthenticated");
}

#[test]
fn one_totp_code_on_parallel_login_challenges_opens_one_session() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let secret = admin.totp_secret.clone().expect("secret");
    let code = app.totp(&secret);
    let bodies = (0..8)
        .map(|_| {
            let mfa = app.password_step(&admin.email, PASSWORD);
            json!({"mfa_token": mfa, "method": "totp", "code": code})
        })
        .collect();
    let counts = tally(&at_once(&app, "/auth/mfa/verify", bodies));
    assert_eq!(count(&counts, "200"), 1, "{counts:?}");
    assert_eq!(count(&counts, "401 invalid-second-factor"), 7, "{counts:?}");
}

#[test]
fn one_totp_code_sent_at_once_on_one_challenge_opens_one_session() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let secret = admin.totp_secret.clone().expect("secret");
    let mfa = app.password_step(&admin.email, PASSWORD);
    let code = app.totp(&secret);
    let bodies = (0..8)
        .map(|_| json!({"mfa_token": mfa, "method": "totp", "code": code}))
        .collect();
    let answers = at_once(&app, "/auth/mfa/verify", bodies);
    let counts = tally(&answers);
    assert_eq!(count(&counts, "200"), 1, "{counts:?}");
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == 200 || *status == 401),
        "{counts:?}"
    );
}

#[test]
fn one_emailed_code_sent_at_once_signs_in_once() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let email = "epost.lakare@example.org";
    join_with_emailed_codes(&app, &admin, &region, email);
    let mfa = app.password_step(email, PASSWORD);
    let code = app.emailed_code(email, &mfa);
    let bodies = (0..8)
        .map(|_| json!({"mfa_token": mfa, "method": "email_code", "code": code}))
        .collect();
    let answers = at_once(&app, "/auth/mfa/verify", bodies);
    let counts = tally(&answers);
    assert_eq!(count(&counts, "200"), 1, "{counts:?}");
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == 200 || *status == 401),
        "{counts:?}"
    );
}

#[test]
fn one_recovery_code_sent_at_once_signs_in_once() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let code = admin.recovery_codes[0].clone();
    let bodies = (0..8)
        .map(|_| {
            let mfa = app.password_step(&admin.email, PASSWORD);
            json!({"mfa_token": mfa, "method": "recovery_code", "code": code})
        })
        .collect();
    let counts = tally(&at_once(&app, "/auth/mfa/verify", bodies));
    assert_eq!(count(&counts, "200"), 1, "{counts:?}");
    assert_eq!(count(&counts, "401 invalid-second-factor"), 7, "{counts:?}");
}

#[test]
fn one_password_reset_link_used_at_once_sets_one_password() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let token = app.reset_link(&admin.email);
    let passwords: Vec<String> = (0..8).map(|i| format!("new passphrase no {i}")).collect();
    let bodies = passwords
        .iter()
        .map(|p| json!({"token": token, "new_password": p}))
        .collect();
    let answers = at_once(&app, "/auth/password-reset/confirm", bodies);
    let counts = tally(&answers);
    assert_eq!(count(&counts, "204"), 1, "{counts:?}");
    assert_eq!(count(&counts, "422 invalid-token"), 7, "{counts:?}");
    // Exactly the winner's password is set.
    let winner = answers
        .iter()
        .position(|(status, _)| *status == 204)
        .expect("one reset");
    for (i, password) in passwords.iter().enumerate() {
        let step = app.login_step(&admin.email, password, None);
        if i == winner {
            assert_eq!(step.status, 200, "{}", step.text);
        } else {
            step.expect_problem(401, "invalid-credentials");
        }
    }
}

// ---- Item 16: passwords of at least 12 characters (ASVS 2.1.1) -----------------------

#[test]
fn a_password_shorter_than_twelve_characters_is_refused() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let eleven = "elva tecken";
    assert_eq!(eleven.chars().count(), 11);
    let twelve = "tolv tecken!";
    assert_eq!(twelve.chars().count(), 12);

    // A new account from an invitation.
    let token = app.invite(&admin, "kort@example.org", "trainee", &region);
    let accept = format!("/auth/invitations/{token}/accept");
    let weak = app
        .post(&accept, None, json!({"password": eleven}))
        .expect_problem(422, "validation");
    assert_eq!(weak.body["errors"][0]["field"], "password");
    let ok = app
        .post(&accept, None, json!({"password": twelve}))
        .expect(200);
    assert_eq!(ok.body["status"], "mfa_enrolment_required");

    // A reset.
    let token = app.reset_link(&admin.email);
    let confirm = |password: &str| {
        app.post(
            "/auth/password-reset/confirm",
            None,
            json!({"token": token, "new_password": password}),
        )
    };
    let weak = confirm(eleven).expect_problem(422, "validation");
    assert_eq!(weak.body["errors"][0]["field"], "new_password");
    confirm(twelve).expect(204);
    let user = TestUser {
        password: twelve.into(),
        ..admin
    };
    app.login_totp(&user);
}

#[test]
fn recovery_codes_replaced_twice_at_once_leave_ten_valid_codes() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let url = format!("{}/api/v1/me/recovery-codes", app.base);
    // Step-up: the password; the session's second factor is minutes old.
    let body = json!({ "password": admin.password });
    let n = 6;
    let barrier = Barrier::new(n);
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (url, barrier, body, access) = (&url, &barrier, &body, &admin.access);
                scope.spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(60))
                        .build();
                    let request = agent
                        .post(url)
                        .set("Authorization", &format!("Bearer {access}"));
                    barrier.wait();
                    let r = TestApp::read(request.send_json(body.clone()));
                    (r.status, r.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    assert!(!created.is_empty(), "{answers:?}");
    // However many replacements ran, the account holds the ten codes of one of them.
    let me = app.get("/me", Some(&admin.access)).expect(200);
    assert_eq!(
        me.body["mfa"]["recovery_codes_remaining"], 10,
        "{}",
        me.text
    );
    let last_codes: Vec<Vec<String>> = created
        .iter()
        .map(|b| {
            let codes: Vec<String> = b["recovery_codes"]
                .as_array()
                .expect("codes")
                .iter()
                .map(|c| c.as_str().expect("code").to_string())
                .collect();
            assert_eq!(codes.len(), 10);
            codes
        })
        .collect();
    // Exactly one answer's codes are the valid ones: each other answer's first code is
    // refused at sign-in, that one's is accepted.
    let mut valid = 0;
    for codes in &last_codes {
        let mfa_token = app.password_step(&admin.email, &admin.password);
        let r = app.post(
            "/auth/mfa/verify",
            None,
            json!({"mfa_token": mfa_token, "method": "recovery_code", "code": codes[0]}),
        );
        match r.status {
            200 => valid += 1,
            401 => {}
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(valid, 1, "{answers:?}");
}
