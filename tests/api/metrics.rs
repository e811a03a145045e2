//! `/metrics` (Prometheus) on its own listener and the security-event stream: the
//! metric names move with the requests that should move them, no label carries an id,
//! an e-mail or a token, and the security events carry none of the secrets either.

use std::collections::BTreeMap;

use crate::support::{log, TestApp, PASSWORD};

fn start_with_metrics() -> (TestApp, String) {
    // Port 0: the test app binds it and hands the listener to the server.
    let app = TestApp::start_with(|c| {
        c.metrics_bind = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    let addr = app.config.metrics_bind.expect("metrics address");
    (app, format!("http://{addr}/metrics"))
}

/// One scrape: its text, and each sample (name with labels, as written) to its value.
fn scrape(url: &str) -> (String, BTreeMap<String, f64>) {
    let resp = ureq::get(url).call().expect("scrape");
    assert!(
        resp.content_type().starts_with("text/plain"),
        "{}",
        resp.content_type()
    );
    let text = resp.into_string().expect("body");
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect();
    (text, samples)
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Every label value of a scrape.
fn label_values(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(start) = line.find('{') else {
            continue;
        };
        let Some(end) = line.rfind('}') else { continue };
        for pair in line[start + 1..end].split("\",") {
            if let Some((_, v)) = pair.split_once("=\"") {
                values.push(v.trim_end_matches('"').to_string());
            }
        }
    }
    values
}

#[test]
fn metric_names_move_with_requests_and_labels_carry_no_identifiers() {
    let (app, metrics) = start_with_metrics();
    // The API's own address does not serve them.
    app.get("/metrics", None).expect(404);

    let (_, before) = scrape(&metrics);
    let (admin, region) = app.admin();
    app.get("/me", Some(&admin.access)).expect(200);
    app.get(&format!("/organisations/{region}"), Some(&admin.access))
        .expect(200);
    app.login_step(&admin.email, "not the password", None)
        .expect(401);
    let mfa = app.password_step(&admin.email, PASSWORD);
    app.verify(&mfa, "totp", "000000").expect(401);
    app.login_totp(&admin);
    // A path no route matches, with something token-like in it.
    let token_like = "tok_4f3a9b2c8d7e6f5a4b3c2d1e0f9a8b7c";
    app.get(&format!("/no-such-thing/{token_like}"), None)
        .expect(404);
    // A mail through the outbox: counted once the relay took it (just after the SMTP
    // sink has it, so the scrape waits for the count).
    app.invite(&admin, "new.trainee@example.org", "trainee", &region);
    let delivered = r#"eportfolio_deliveries_total{queue="mail",outcome="delivered"}"#;
    for _ in 0..100 {
        if value(&scrape(&metrics).1, delivered) > value(&before, delivered) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (text, after) = scrape(&metrics);
    if let Some(path) = std::env::var_os("METRICS_SCRAPE_FILE") {
        std::fs::write(path, &text).expect("METRICS_SCRAPE_FILE");
    }

    let moved = |series: &str| {
        assert!(
            value(&after, series) > value(&before, series),
            "{series} did not move: {} -> {}\n{text}",
            value(&before, series),
            value(&after, series)
        );
    };
    moved(r#"eportfolio_http_requests_total{route="/api/v1/me",method="GET",status_class="2xx"}"#);
    moved(
        r#"eportfolio_http_requests_total{route="/api/v1/organisations/{id}",method="GET",status_class="2xx"}"#,
    );
    moved(
        r#"eportfolio_http_requests_total{route="/api/v1/auth/login",method="POST",status_class="4xx"}"#,
    );
    moved(r#"eportfolio_http_requests_total{route="unmatched",method="GET",status_class="4xx"}"#);
    moved(r#"eportfolio_http_request_duration_seconds_count{route="/api/v1/me",method="GET"}"#);
    moved(r#"eportfolio_logins_total{outcome="failed"}"#);
    moved(r#"eportfolio_logins_total{outcome="succeeded"}"#);
    moved(r#"eportfolio_second_factor_total{method="totp",outcome="failed"}"#);
    moved(r#"eportfolio_second_factor_total{method="totp",outcome="succeeded"}"#);
    moved(r#"eportfolio_security_events_total{event="role_granted"}"#);
    moved(delivered);
    moved("eportfolio_db_pool_wait_seconds_count");
    let backend = if app.config.is_postgres() {
        "postgresql"
    } else {
        "sqlite"
    };
    assert!(
        text.lines().any(|l| l.starts_with("eportfolio_build_info{")
            && l.contains(&format!("backend=\"{backend}\""))
            && l.ends_with(" 1")),
        "{text}"
    );
    for gauge in [
        r#"eportfolio_queue_depth{queue="webhook"}"#,
        r#"eportfolio_queue_depth{queue="mail"}"#,
        r#"eportfolio_queue_oldest_age_seconds{queue="mail"}"#,
        "eportfolio_db_pool_max_connections",
        "eportfolio_db_pool_connections_in_use",
    ] {
        assert!(after.contains_key(gauge), "{gauge} missing:\n{text}");
    }
    assert_eq!(value(&after, "eportfolio_db_pool_max_connections"), 4.0);
    if backend == "sqlite" {
        assert!(
            after.contains_key("eportfolio_db_write_queue_depth"),
            "{text}"
        );
        moved("eportfolio_db_group_commit_size_count");
    }

    // No label value is an id, an e-mail address or a token.
    let uuid = |v: &str| {
        v.split(|c: char| !c.is_ascii_hexdigit() && c != '-')
            .any(|w| w.len() == 36 && w.matches('-').count() == 4)
    };
    for v in label_values(&text) {
        assert!(!v.contains('@'), "an e-mail in a label: {v}");
        assert!(!uuid(&v), "an id in a label: {v}");
        assert!(!v.contains(token_like), "a token in a label: {v}");
        assert!(!v.contains(&region), "an id in a label: {v}");
        assert!(!v.contains(&admin.id), "an id in a label: {v}");
        // Route labels are patterns (or `unmatched`), never a path as sent.
        if v.starts_with('/') {
            assert!(
                v.split('/').all(|seg| seg.len() <= 40),
                "a long path segment in a label: {v}"
            );
        }
    }
}

#[test]
fn without_metrics_bind_nothing_listens_and_the_api_has_no_metrics() {
    let app = TestApp::start();
    assert!(app.config.metrics_bind.is_none());
    app.get("/metrics", None).expect(404);
    app.send("GET", "/metrics", None, None, &[]).expect(404);
}

#[test]
fn security_events_are_their_own_stream_without_secrets() {
    log::capture();
    let app = TestApp::start();
    let (admin, _) = app.admin();
    app.login_step(&admin.email, "wrong horse battery staple", None)
        .expect(401);
    let mfa = app.password_step(&admin.email, PASSWORD);
    app.verify(&mfa, "totp", "123456").expect(401);
    let code = app.totp(admin.totp_secret.as_deref().expect("totp secret"));
    let signed_in = app.verify(&mfa, "totp", &code).expect(200);
    let access = signed_in.body["access_token"].as_str().expect("token");
    // An API client token, refused.
    app.send_raw(
        "POST",
        "/oauth/token",
        None,
        "application/x-www-form-urlencoded",
        b"grant_type=client_credentials&client_id=nobody&client_secret=guess",
    )
    .expect(401);

    let text = log::text();
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" security: security event"))
        .collect();
    let seen = |name: &str, user: Option<&str>| {
        events.iter().any(|l| {
            l.contains(&format!("event=\"{name}\""))
                && user.is_none_or(|u| l.contains(&format!("user_id=\"{u}\"")))
        })
    };
    assert!(seen("login_failed", Some(&admin.id)), "{events:#?}");
    assert!(seen("login_succeeded", Some(&admin.id)), "{events:#?}");
    assert!(seen("second_factor_failed", None), "{events:#?}");
    assert!(
        seen("second_factor_succeeded", Some(&admin.id)),
        "{events:#?}"
    );
    assert!(seen("second_factor_added", Some(&admin.id)), "{events:#?}");
    assert!(seen("role_granted", None), "{events:#?}");
    assert!(seen("api_client_token_refused", None), "{events:#?}");
    // Of every test's events in this process: no secret, no e-mail, no code.
    for line in &events {
        assert!(!line.contains('@'), "an e-mail in a security event: {line}");
        assert!(
            !line.contains(PASSWORD) && !line.contains("wrong horse"),
            "{line}"
        );
        assert!(!line.contains(&mfa) && !line.contains(access), "{line}");
        assert!(!line.contains("guess"), "{line}");
        // Only these fields: a code (six digits) could otherwise hide in any of them.
        let fields = line.split(" security: security event").nth(1).unwrap_or("");
        for field in fields.split_whitespace() {
            let name = field.split('=').next().unwrap_or("");
            assert!(
                ["event", "user_id", "subject_id", "kind", "address"].contains(&name),
                "unexpected field {name} in {line}"
            );
        }
    }
    let _ = code;
}
