//! Issue 12, the plumbing: who may call an operation is decided from the matched route
//! (not the path as sent), link tokens stay out of the log, files are private, uploads
//! are what they claim, security headers, names without control characters, database
//! messages stay inside, regions are created by region administrators, and the client
//! address behind a proxy is the hop the proxy saw.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::integrations::client;
use crate::support::{Resp, TestApp, TestUser};

struct World {
    app: TestApp,
    admin: TestUser,
    region: String,
    slso: String,
    trainee: TestUser,
    enrolment: String,
}

fn world_with(adjust: impl FnOnce(&mut eportfolio::Config)) -> World {
    let app = TestApp::start_with(adjust);
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31"}),
        )
        .expect(201);
    World {
        enrolment: e.body["id"].as_str().expect("id").to_string(),
        app,
        admin,
        region,
        slso,
        trainee,
    }
}

fn world() -> World {
    world_with(|_| {})
}

/// A client-credentials token of client `id` limited to `scope`.
fn scoped_token(app: &TestApp, id: &str, secret: &str, scope: &str) -> String {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let r = ureq::post(&format!("{}/api/v1/oauth/token", app.base))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .set("Authorization", &format!("Basic {basic}"))
        .send_string(&format!(
            "grant_type=client_credentials&scope={}",
            scope.replace(':', "%3A")
        ))
        .expect("token");
    let body: Value = r.into_json().expect("json");
    assert_eq!(body["scope"], scope);
    body["access_token"].as_str().expect("token").to_string()
}

/// The path with the last letter of every literal segment after `/api/v1`
/// percent-encoded (`/dossier` becomes `/dossie%72`): the same route to the router.
fn percent_encoded(path: &str) -> String {
    let rest = path.strip_prefix("/api/v1").expect("under /api/v1");
    let segments: Vec<String> = rest
        .split('/')
        .map(|segment| {
            if segment.is_empty() || segment.contains('{') {
                return segment.to_string();
            }
            match segment
                .char_indices()
                .rev()
                .find(|(_, c)| c.is_ascii_alphabetic())
            {
                Some((i, c)) => format!(
                    "{}%{:02X}{}",
                    &segment[..i],
                    c as u8,
                    &segment[i + c.len_utf8()..]
                ),
                None => segment.to_string(),
            }
        })
        .collect();
    format!("/api/v1{}", segments.join("/"))
}

/// The pattern with its parameters filled: the world's enrolment for enrolment routes,
/// plausible values elsewhere.
fn fill(pattern: &str, enrolment: &str) -> String {
    let mut out = Vec::new();
    let mut previous = "";
    for segment in pattern.split('/') {
        let value = if segment.starts_with('{') {
            match (previous, segment) {
                ("enrolments", _) => enrolment.to_string(),
                (_, "{version}") => "1".to_string(),
                (_, "{instrument}") => "mini_cex".to_string(),
                _ => uuid::Uuid::new_v4().to_string(),
            }
        } else {
            segment.to_string()
        };
        previous = segment;
        out.push(value);
    }
    out.join("/")
}

#[test]
fn an_api_client_cannot_reach_person_only_operations_by_percent_encoding_the_path() {
    let w = world();
    let app = &w.app;
    let (id, secret) = client(
        app,
        &w.admin,
        &w.slso,
        &["progress:read", "catalog:read", "activities:write"],
    );
    let tokens: Vec<(&str, String)> = ["progress:read", "catalog:read", "activities:write"]
        .iter()
        .map(|s| (*s, scoped_token(app, &id, &secret, s)))
        .collect();
    let progress = &tokens[0].1;

    // The attack as reported: the dossier under another spelling of its path.
    let dossier = format!("/api/v1/enrolments/{}/dossier", w.enrolment);
    app.get(&dossier, Some(progress))
        .expect_problem(403, "forbidden");
    let spelled = format!("/api/v1/enrolments/{}/dossi%65r", w.enrolment);
    app.get(&spelled, Some(progress))
        .expect_problem(403, "forbidden");
    let progress_path = format!("/api/v1/enrolments/{}/progress", w.enrolment);
    app.get(&progress_path, Some(progress)).expect(200);
    app.get(&percent_encoded(&progress_path), Some(progress))
        .expect(200);

    // Every operation of the served document, with every token, plain and encoded.
    let doc = app.get("/api/v1/openapi.json", None).expect(200).body;
    let paths = doc["paths"].as_object().expect("paths");
    let mut walked = 0;
    let mut wrong = Vec::new();
    for (pattern, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let method = method.to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            // Public operations (login, links by token, health) know no principal.
            let public = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if public {
                continue;
            }
            assert!(pattern.starts_with("/api/v1/"), "{pattern}");
            let scope = eportfolio::integrations::clients::required_scope(
                &actix_web::http::Method::from_bytes(method.as_bytes()).expect("method"),
                pattern,
            );
            let body = op.get("requestBody").map(|_| json!({}));
            let plain = fill(pattern, &w.enrolment);
            for (held, token) in &tokens {
                let mut statuses = Vec::new();
                for path in [plain.clone(), percent_encoded(&plain)] {
                    let r = app.send(&method, &path, Some(token), body.as_ref(), &[]);
                    walked += 1;
                    let allowed = scope == Some(*held);
                    let ok = if allowed {
                        r.status != 401 && r.status != 403 && r.status < 500
                    } else {
                        let kind = if scope.is_some() {
                            "insufficient-scope"
                        } else {
                            "forbidden"
                        };
                        r.status == 403
                            && r.body["type"]
                                == format!("https://eportfolio.example/problems/{kind}")
                    };
                    if !ok {
                        wrong.push(format!(
                            "{method} {path} with {held} (needs {scope:?}): {} {}",
                            r.status, r.text
                        ));
                    }
                    statuses.push(r.status);
                }
                if statuses[0] != statuses[1] {
                    wrong.push(format!(
                        "{method} {plain} with {held}: {} plain, {} encoded",
                        statuses[0], statuses[1]
                    ));
                }
            }
        }
    }
    assert!(
        walked > 400,
        "only {walked} requests: is the document empty?"
    );
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // The table names only operations that exist, and no person-only one.
    for (method, pattern, _) in eportfolio::integrations::clients::CLIENT_ROUTES {
        assert!(
            paths
                .get(*pattern)
                .is_some_and(|item| item.get(method.to_ascii_lowercase()).is_some()),
            "{method} {pattern} is not an operation"
        );
        assert!(!pattern.ends_with("/dossier") && !pattern.starts_with("/api/v1/me"));
    }
}

// ---- The request log --------------------------------------------------------------

fn capture_log() {
    crate::support::log::capture();
}

fn log_text() -> String {
    crate::support::log::text()
}

fn token_like() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[test]
fn link_tokens_never_reach_the_request_log() {
    capture_log();
    let app = TestApp::start();
    let mut secrets: Vec<String> = Vec::new();

    // Invitations: previewed and accepted by token in the path.
    let email = "admin@regionstockholm.se";
    let invitation = app.bootstrap_admin(email, "Region Stockholm");
    app.get(&format!("/auth/invitations/{invitation}"), None)
        .expect(200);
    let admin = app.accept_with_totp(&invitation, email);
    secrets.extend([invitation, admin.access.clone(), admin.refresh.clone()]);
    let me = app.get("/me", Some(&admin.access)).expect(200);
    let region = me.body["roles"][0]["organisation_id"]
        .as_str()
        .expect("region")
        .to_string();
    let second = app.invite(&admin, "st@sll.se", "trainee", &region);
    app.get(&format!("/auth/invitations/{second}"), None)
        .expect(200);
    let mfa = app.accept_new(&second, Some("Sara Ström"));
    secrets.extend([second, mfa]);

    // An API client's secret and token.
    let (id, secret) = client(&app, &admin, &region, &["catalog:read"]);
    let token = crate::integrations::token(&app, &id, &secret);
    app.get("/regulations", Some(&token)).expect(200);
    secrets.extend([secret, token]);

    // A password reset (token in the body) and a login with its challenge.
    let reset = app.reset_link(email);
    app.post(
        "/auth/password-reset/confirm",
        None,
        json!({"token": reset, "new_password": "another long passphrase 42"}),
    )
    .expect(204);
    secrets.push(reset);
    // The challenge is required, not skipped when absent: the log check must cover it.
    let step = app
        .login_step(email, "another long passphrase 42", None)
        .expect(200);
    secrets.push(TestApp::mfa_token_of(&step));

    // Signing links (whether or not the token is known, the route is the same), an
    // unmatched path with a token in it, and a token in a query string.
    let link = token_like();
    // Each reaches its route and is answered as an unknown link (not a 405 or a 500 that
    // would log something else).
    app.get(&format!("/auth/signing-links/{link}"), None)
        .expect_problem(422, "invalid-token");
    app.post(&format!("/auth/signing-links/{link}/sign"), None, json!({}))
        .expect_problem(422, "invalid-token");
    app.post(
        &format!("/auth/signing-links/{link}/decline"),
        None,
        json!({"reason": "x"}),
    )
    .expect_problem(422, "invalid-token");
    let stray = token_like();
    app.get(&format!("/auth/invitations/{stray}/nothing-here"), None)
        .expect(404);
    let queried = token_like();
    app.get(
        &format!("/enrolments?cursor={queried}"),
        Some(&admin.access),
    )
    .expect(401);
    secrets.extend([link, stray, queried]);

    let log = log_text();
    // The capture works: the routes of this flow are there, by pattern.
    assert!(
        log.contains("/api/v1/auth/invitations/{token}/accept"),
        "the log does not show the accepted invitation's route"
    );
    assert!(log.contains("/api/v1/auth/signing-links/{token}/sign"));
    for secret in &secrets {
        assert!(secret.len() >= 16, "{secret}");
        assert!(!log.contains(secret.as_str()), "the log holds {secret}");
    }
}

// ---- Files --------------------------------------------------------------------------

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
fn walk(dir: &std::path::Path, found: &mut Vec<(std::path::PathBuf, bool)>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let is_dir = path.is_dir();
        found.push((path.clone(), is_dir));
        if is_dir {
            walk(&path, found);
        }
    }
}

#[cfg(unix)]
#[test]
fn other_local_users_cannot_read_the_data_directory_or_its_files() {
    let w = world();
    let app = &w.app;
    // An attachment and a mail in an outbox under the data directory.
    let activity = app
        .post(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
            json!({"kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": "2026-10-06", "delmal": ["BT16"]}),
        )
        .expect(201);
    let id = activity.body["id"].as_str().expect("id");
    app.send_raw(
        "POST",
        &format!("/activities/{id}/attachments?filename=intyg.pdf"),
        Some(&w.trainee.access),
        "application/pdf",
        b"%PDF-1.7\nkursintyg",
    )
    .expect(201);
    let outbox = app.dir.join("outbox");
    let mailer = eportfolio::mail::Mailer::new(
        &eportfolio::config::MailTransportConfig::Outbox(outbox.clone()),
        &app.config.mail_from,
    )
    .expect("mailer");
    mailer
        .send(&eportfolio::mail::Mail {
            to: "bt@sll.se".into(),
            subject: "Inbjudan".into(),
            body: "https://app.example/invitation?token=secret".into(),
        })
        .expect("outbox mail");

    let backup = app.dir.join("backup.db");
    let blobs = eportfolio::storage::open_store(&app.config).expect("store");
    eportfolio::backup::backup(
        &eportfolio::backup::Source {
            database_url: &app.config.database_url,
            blobs: &*blobs,
            data_dir: &app.config.data_dir,
        },
        &backup,
        false,
    )
    .expect("backup");
    assert_eq!(mode(&backup), 0o600, "backup");

    assert_eq!(mode(&app.dir), 0o700, "data directory");
    assert_eq!(mode(&app.dir.join("jwt-secret")), 0o600);
    let mut found = Vec::new();
    walk(&app.dir, &mut found);
    assert!(found
        .iter()
        .any(|(p, _)| p.starts_with(app.dir.join("attachments"))));
    assert!(found.iter().any(|(p, d)| !d && p.starts_with(&outbox)));
    if std::env::var("TEST_DATABASE_URL").is_err() {
        assert!(found
            .iter()
            .any(|(p, _)| p.extension().is_some_and(|e| e == "sqlite3")));
    }
    for (path, is_dir) in found {
        let expected = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
}

#[cfg(unix)]
#[test]
fn a_jwt_secret_readable_by_others_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir =
        std::env::temp_dir().join(format!("eportfolio-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let secret = dir.join("jwt-secret");
    std::fs::write(&secret, token_like()).expect("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut config = eportfolio::Config::defaults();
    config.data_dir = dir.clone();
    config.database_url = crate::support::new_database_url(&dir, "perm");
    config.mail = eportfolio::config::MailTransportConfig::Outbox(dir.join("outbox"));
    config.argon2 = eportfolio::config::Argon2Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let clock = eportfolio::clock::ManualClock::new(chrono::Utc::now());
    let refused = eportfolio::AppState::new(config.clone(), clock.clone());
    let message = match refused {
        Ok(_) => panic!("started with a world-readable jwt-secret"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains("jwt-secret"), "{message}");
    assert!(message.contains("chmod 600"), "{message}");
    // Fixed as the message says, it starts.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(eportfolio::AppState::new(config, clock).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- Uploads and headers ------------------------------------------------------------

#[test]
fn an_html_page_declared_as_a_pdf_is_refused_with_415() {
    let w = world();
    let app = &w.app;
    // Photos and plain text are opt-in per region (issue 17): opted in, so that what is
    // refused here is refused for its content.
    crate::privacy_attachments::accept_attachment_types(
        app,
        &w.admin,
        &w.region,
        &[
            "application/pdf",
            "image/jpeg",
            "image/png",
            "image/heic",
            "text/plain",
        ],
    );
    let activity = app
        .post(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
            json!({"kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": "2026-10-06", "delmal": ["BT16"]}),
        )
        .expect(201);
    let upload = format!(
        "/activities/{}/attachments?filename=intyg.pdf",
        activity.body["id"].as_str().expect("id")
    );
    let t = Some(w.trainee.access.as_str());
    let html: &[u8] = b"<!DOCTYPE html><html><script>fetch('/api/v1/me')</script></html>";
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    for (declared, body) in [
        ("application/pdf", html),
        ("text/plain", html),
        ("image/jpeg", png),
        ("image/png", b"%PDF-1.7\n".as_slice()),
        ("application/pdf", b"just some words".as_slice()),
        ("text/plain", b"\0\x01\x02binary".as_slice()),
    ] {
        app.send_raw("POST", &upload, t, declared, body)
            .expect_problem(415, "unsupported-media-type");
    }
    // Nothing half-stored: the activity has no attachments.
    let id = activity.body["id"].as_str().expect("id");
    let read = app
        .get(&format!("/activities/{id}"), Some(&w.trainee.access))
        .expect(200);
    // An empty list, not a missing one: a read without the field would pass otherwise.
    assert_eq!(read.body["attachments"], json!([]), "{}", read.text);
    // What it claims to be is stored, and served with nosniff.
    for (declared, body) in [
        ("application/pdf", b"%PDF-1.7\nkursintyg".as_slice()),
        ("image/png", png),
        ("text/plain", "Kursintyg, Åsa Öberg".as_bytes()),
    ] {
        let stored = app.send_raw("POST", &upload, t, declared, body).expect(201);
        let href = stored.body["href"].as_str().expect("href");
        let got = app.send("GET", href, t, None, &[]).expect(200);
        assert!(
            got.header("content-type")
                .is_some_and(|c| c.split(';').next() == Some(declared)),
            "{:?}",
            got.header("content-type")
        );
        assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(got.header("cache-control"), Some("no-store"));
    }
}

#[test]
fn responses_say_nosniff_api_answers_are_not_cached_and_the_docs_have_a_csp() {
    let w = world();
    let app = &w.app;
    let nosniff = |r: &Resp| assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let no_store = |r: &Resp| assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");

    for r in [
        app.get("/me", Some(&w.trainee.access)).expect(200),
        app.get(
            &format!("/enrolments/{}/progress", w.enrolment),
            Some(&w.trainee.access),
        )
        .expect(200),
        app.send(
            "GET",
            &format!("/enrolments/{}/progress/chart", w.enrolment),
            Some(&w.trainee.access),
            None,
            &[("Accept", "image/svg+xml")],
        )
        .expect(200),
        app.post(
            "/auth/login",
            None,
            json!({"email": "bt@sll.se", "password": "wrong password here"}),
        ),
        app.get("/me", None).expect(401),
        app.post(
            "/auth/refresh",
            None,
            json!({"refresh_token": w.trainee.refresh}),
        ),
    ] {
        nosniff(&r);
        no_store(&r);
    }
    // Public content keeps its caching; everything carries nosniff.
    let keys = app.get("/dossier-keys", None).expect(200);
    nosniff(&keys);
    assert!(keys
        .header("cache-control")
        .is_some_and(|c| c.contains("public")));
    nosniff(&app.get("/health", None).expect(200));
    nosniff(&app.get("/api/v1/openapi.json", None).expect(200));
    nosniff(&app.get("/no-such-thing", None).expect(404));

    // The docs: a policy that allows only what the vendored Swagger UI loads itself.
    let docs = app.get("/docs/", None).expect(200);
    nosniff(&docs);
    let csp = docs
        .header("content-security-policy")
        .expect("csp")
        .to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-eval") && !csp.contains("script-src 'self' 'unsafe-inline'"));
    // Everything the page loads is its own (relative) and served under the same policy.
    let page = docs.text.clone();
    assert!(!page.contains("<script>"), "inline script in {page}");
    let mut loaded = 0;
    for attr in ["src=\"", "href=\""] {
        for part in page.split(attr).skip(1) {
            let url = part.split('"').next().expect("url");
            assert!(!url.contains("//"), "{url} is not from this server");
            let file = app
                .get(&format!("/docs/{}", url.trim_start_matches("./")), None)
                .expect(200);
            assert_eq!(file.header("content-security-policy"), Some(csp.as_str()));
            loaded += 1;
        }
    }
    assert!(loaded >= 4, "{page}");
    let init = app.get("/docs/swagger-initializer.js", None).expect(200);
    assert!(init.text.contains("/api/v1/openapi.json"));
}

// ---- Names, conflicts, regions, proxies ---------------------------------------------

const FORGED: [&str; 6] = [
    "Eva\n2026-11-30T06:00:00Z INFO login ok user=admin",
    "Eva\r\nBcc: all@sll.se",
    "Eva\u{0085}Berg",
    "Eva\u{202E}greB",
    "Eva \u{2066}Berg\u{2069}",
    "Eva\u{0007}",
];

#[track_caller]
fn refused_naming(r: Resp, field: &str) {
    let r = r.expect_problem(422, "validation");
    assert!(
        r.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|e| e["field"].as_str().is_some_and(|f| f.ends_with(field))),
        "{}",
        r.text
    );
}

#[test]
fn display_names_with_control_or_direction_characters_are_refused() {
    let w = world();
    let app = &w.app;
    for name in FORGED {
        refused_naming(
            app.patch(
                "/me",
                Some(&w.trainee.access),
                json!({"display_name": name}),
                &[],
            ),
            "display_name",
        );
        refused_naming(
            app.post(
                "/invitations",
                Some(&w.admin.access),
                json!({"email": "ny@sll.se", "role": "trainee", "organisation_id": w.slso, "display_name": name}),
            ),
            "display_name",
        );
        refused_naming(
            app.post(
                "/imports/users",
                Some(&w.admin.access),
                json!([{"email": "ny@sll.se", "organisation_id": w.slso, "display_name": name}]),
            ),
            "display_name",
        );
        refused_naming(
            app.post(
                "/api-clients",
                Some(&w.admin.access),
                json!({"organisation_id": w.slso, "name": name, "scopes": ["catalog:read"]}),
            ),
            "name",
        );
        refused_naming(
            app.post(
                "/organisations",
                Some(&w.admin.access),
                json!({"kind": "unit", "name": name, "parent_id": w.slso}),
            ),
            "name",
        );
    }
    // Accepting an invitation with such a name is refused too; a real name is kept.
    let token = app.invite(&w.admin, "ny.st@sll.se", "trainee", &w.slso);
    refused_naming(
        app.post(
            &format!("/auth/invitations/{token}/accept"),
            None,
            json!({"password": crate::support::PASSWORD, "display_name": FORGED[0]}),
        ),
        "display_name",
    );
    let me = app
        .patch(
            "/me",
            Some(&w.trainee.access),
            json!({"display_name": "Åsa Öberg-Nguyễn"}),
            &[],
        )
        .expect(200);
    assert_eq!(me.body["display_name"], "Åsa Öberg-Nguyễn");
}

#[test]
fn a_duplicate_does_not_leak_the_database_message() {
    let w = world();
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({"id": id, "kind": "unit", "name": "Akutmottagningen", "parent_id": w.slso});
    w.app
        .post("/organisations", Some(&w.admin.access), body.clone())
        .expect(201);
    let again = w
        .app
        .post("/organisations", Some(&w.admin.access), body)
        .expect_problem(409, "conflict");
    assert_eq!(
        again.body["detail"],
        eportfolio::error::UNIQUE_CONFLICT,
        "{}",
        again.text
    );
    let text = again.text.to_ascii_lowercase();
    for leak in ["unique", "constraint", "organisations", "duplicate", "key"] {
        assert!(!text.contains(leak), "{leak} in {}", again.text);
    }
}

#[test]
fn only_region_administrators_create_regions() {
    let w = world();
    let app = &w.app;
    let director = app.join(
        &w.admin,
        "studierektor@sll.se",
        "director_of_studies",
        &w.region,
    );
    let provider_admin = app.join(&w.admin, "admin@slso.se", "administrator", &w.slso);
    let region = json!({"kind": "region", "name": "Region Uppsala"});
    app.post("/organisations", Some(&director.access), region.clone())
        .expect_problem(403, "forbidden");
    app.post(
        "/organisations",
        Some(&provider_admin.access),
        region.clone(),
    )
    .expect_problem(403, "forbidden");
    // The care provider's administrator still runs their own subtree.
    app.post(
        "/organisations",
        Some(&provider_admin.access),
        json!({"kind": "unit", "name": "Vårdcentralen Gubbängen", "parent_id": w.slso}),
    )
    .expect(201);
    app.post("/organisations", Some(&w.admin.access), region)
        .expect(201);
}

/// The address the server recorded for the newest session of `user_id`.
fn session_address(app: &TestApp, user_id: &str) -> Option<String> {
    use eportfolio::schema::sessions;
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .order(sessions::created_at.desc())
        .select(sessions::client_address)
        .first::<Option<String>>(&mut *conn)
        .expect("session")
}

fn login_through_proxy(app: &TestApp, user: &TestUser, forwarded: &str) {
    let headers = [("X-Forwarded-For", forwarded)];
    let step = app
        .send(
            "POST",
            "/auth/login",
            None,
            Some(&json!({"email": user.email, "password": user.password})),
            &headers,
        )
        .expect(200);
    let mfa = TestApp::mfa_token_of(&step);
    let code = app.totp(user.totp_secret.as_deref().expect("totp"));
    app.send(
        "POST",
        "/auth/mfa/verify",
        None,
        Some(&json!({"mfa_token": mfa, "method": "totp", "code": code})),
        &headers,
    )
    .expect(200);
    app.advance(30);
}

#[test]
fn behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_forwarded_hop() {
    let w = world_with(|c| c.trusted_proxies = vec!["127.0.0.1".into(), "10.0.0.0/8".into()]);
    let app = &w.app;
    // The client wrote the first hop itself; our proxies appended the rest.
    login_through_proxy(app, &w.trainee, "1.2.3.4, 198.51.100.7");
    assert_eq!(
        session_address(app, &w.trainee.id).as_deref(),
        Some("198.51.100.7")
    );
    login_through_proxy(app, &w.trainee, "6.6.6.6, 198.51.100.8, 10.1.2.3");
    assert_eq!(
        session_address(app, &w.trainee.id).as_deref(),
        Some("198.51.100.8")
    );
    login_through_proxy(app, &w.trainee, "10.9.9.9");
    assert_eq!(
        session_address(app, &w.trainee.id).as_deref(),
        Some("10.9.9.9")
    );

    // A peer that is not a trusted proxy: its header means nothing.
    let mut app = w.app;
    app.restart_with(|c| c.trusted_proxies = vec!["10.0.0.0/8".into()]);
    login_through_proxy(&app, &w.trainee, "1.2.3.4, 198.51.100.7");
    assert_eq!(
        session_address(&app, &w.trainee.id).as_deref(),
        Some("127.0.0.1")
    );
}

#[test]
fn a_remembered_device_name_cannot_carry_control_characters() {
    let w = world();
    let app = &w.app;
    let secret = w.trainee.totp_secret.clone().expect("secret");
    // A TOTP step later than the one the trainee signed up with.
    app.clock.advance(chrono::Duration::seconds(30));
    let mfa_token = app.password_step(&w.trainee.email, crate::support::PASSWORD);
    for name in FORGED {
        refused_naming(
            app.post(
                "/auth/mfa/verify",
                None,
                json!({"mfa_token": mfa_token, "method": "totp", "code": app.totp(&secret),
                       "remember_device": true, "device_name": name}),
            ),
            "device_name",
        );
    }
    // The refusal spent neither the challenge nor the code: a plain name works.
    let done = app
        .post(
            "/auth/mfa/verify",
            None,
            json!({"mfa_token": mfa_token, "method": "totp", "code": app.totp(&secret),
                   "remember_device": true, "device_name": "Evas telefon"}),
        )
        .expect(200);
    let devices = app
        .get("/me/devices", done.body["access_token"].as_str())
        .expect(200);
    assert_eq!(
        devices.body["items"][0]["name"], "Evas telefon",
        "{}",
        devices.text
    );
}
