//! `TestApp`: the real server on a loopback port, a real SMTP server beside it, a clock
//! the test moves, and a fresh database (SQLite file, or a new PostgreSQL database when
//! `TEST_DATABASE_URL` is set).

#![allow(dead_code)]

pub mod blobs;
pub mod hooks;
pub mod log;
pub mod oidc;
pub mod pdf;
pub mod smtp;
pub mod statements;
pub mod totp;
pub mod ward;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use diesel::Connection;
use eportfolio::clock::ManualClock;
use eportfolio::config::{Argon2Params, MailTransportConfig, SmtpSecurity};
use eportfolio::{db, AppState, Config};
use serde_json::{json, Value};

pub use smtp::SmtpServer;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub smtp: SmtpServer,
    pub config: Config,
    handle: actix_web::dev::ServerHandle,
    pub dir: std::path::PathBuf,
    agent: ureq::Agent,
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub text: String,
    pub body: Value,
    /// The body as sent (PDF, PNG, ...).
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an RFC 9457 problem with the given status and type suffix.
    #[track_caller]
    pub fn expect_problem(self, status: u16, kind: &str) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not a problem document: {}",
            self.text
        );
        assert_eq!(
            self.body["type"],
            format!("https://eportfolio.example/problems/{kind}"),
            "body: {}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        assert!(
            self.body["request_id"].is_string(),
            "problem without request id"
        );
        self
    }
}

/// A signed-in user as the tests drive them.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
    pub totp_secret: Option<String>,
    pub recovery_codes: Vec<String>,
}

fn start_clock() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0)
        .single()
        .expect("valid time")
}

fn database_url(dir: &std::path::Path) -> String {
    new_database_url(dir, "test")
}

/// The PostgreSQL databases made for each test app's directory, dropped with the app:
/// a suite run makes hundreds, and a server that keeps them fills its disk.
static CREATED_DATABASES: std::sync::Mutex<Vec<(std::path::PathBuf, String)>> =
    std::sync::Mutex::new(Vec::new());

/// Drops the PostgreSQL databases made for `dir` (best effort: a database someone still
/// holds open is dropped by `WITH (FORCE)`, and a failure only leaves it behind).
fn drop_databases(dir: &std::path::Path) {
    let names: Vec<String> = match CREATED_DATABASES.lock() {
        Ok(mut created) => {
            let (mine, rest) = created.drain(..).partition(|(d, _)| d == dir);
            *created = rest;
            mine.into_iter().map(|(_, n)| n).collect()
        }
        Err(_) => return,
    };
    let Some(base) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|_| !names.is_empty())
    else {
        return;
    };
    if let Ok(mut admin) = diesel::PgConnection::establish(&base) {
        for name in names {
            let _ = diesel::RunQueryDsl::execute(
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
                &mut admin,
            );
        }
    }
}

/// A new, empty database: a new PostgreSQL database when `TEST_DATABASE_URL` is set,
/// else a SQLite path in `dir` that does not exist yet.
pub fn new_database_url(dir: &std::path::Path, name: &str) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        // Set but blank is a mistake (an unset CI variable), not a request for SQLite.
        Ok(base) if base.trim().is_empty() => {
            panic!("TEST_DATABASE_URL is set but blank; unset it to test on SQLite")
        }
        Ok(base) => {
            let name = format!("ep_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = diesel::PgConnection::establish(&base)
                .unwrap_or_else(|e| panic!("TEST_DATABASE_URL {base}: {e}"));
            diesel::RunQueryDsl::execute(
                diesel::sql_query(format!("CREATE DATABASE {name}")),
                &mut admin,
            )
            .expect("create test database");
            if let Ok(mut created) = CREATED_DATABASES.lock() {
                created.push((dir.to_path_buf(), name.clone()));
            }
            let (head, tail) = base.split_at(base.rfind('/').expect("database url has a path"));
            let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
            format!("{head}/{name}{query}")
        }
        _ => dir
            .join(format!("{name}.sqlite3"))
            .to_string_lossy()
            .into_owned(),
    }
}

impl TestApp {
    pub fn start() -> TestApp {
        TestApp::start_with(|_| {})
    }

    /// Starts the app with test defaults, then lets the test adjust the configuration.
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        log::capture_if_recording();
        let dir =
            std::env::temp_dir().join(format!("eportfolio-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let smtp = SmtpServer::start();
        let mut config = Config::defaults();
        config.data_dir = dir.clone();
        config.attachment_store = blobs::store_config(&dir);
        config.database_url = database_url(&dir);
        config.db_pool_size = 4;
        config.workers = 2;
        config.public_url = "https://app.example".into();
        // Cheap hashing keeps the suite fast; production parameters are the defaults.
        config.argon2 = Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        // The webhook receiver (support::hooks) listens on loopback over http: an explicit
        // opt-in, as an operator's for an on-premises LMS (production: https to public
        // addresses only). Tests of the refusals take it away again.
        config.webhook_allow_http = true;
        config.webhook_allowed_networks = vec!["127.0.0.1/32".parse().expect("cidr")];
        config.mail = MailTransportConfig::Smtp {
            host: "127.0.0.1".into(),
            port: smtp.port(),
            security: SmtpSecurity::None,
            username: None,
            password: None,
        };
        adjust(&mut config);
        // A metrics address with port 0 is bound here and kept: a port found free first and
        // bound later by the server could be taken in between by another test.
        let metrics = config
            .metrics_bind
            .filter(|addr| addr.port() == 0)
            .map(|addr| std::net::TcpListener::bind(addr).expect("bind metrics"));
        if let Some(listener) = &metrics {
            config.metrics_bind = Some(listener.local_addr().expect("metrics addr"));
        }
        let clock = ManualClock::new(start_clock());
        let (handle, port) = Self::launch(&config, &clock, metrics);
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            clock,
            smtp,
            config,
            handle,
            dir,
            agent: ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(30))
                .build(),
        }
    }

    /// Starts a server for `config` on a new loopback port.
    fn launch(
        config: &Config,
        clock: &Arc<ManualClock>,
        metrics: Option<std::net::TcpListener>,
    ) -> (actix_web::dev::ServerHandle, u16) {
        let state = AppState::new(config.clone(), clock.clone()).expect("app state");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = match metrics {
                    Some(metrics) => {
                        eportfolio::server_with_metrics(state, listener, Some(metrics))
                    }
                    None => eportfolio::server(state, listener),
                }
                .expect("server");
                tx.send(server.handle()).expect("send handle");
                let _ = server.await;
            })
        });
        (rx.recv().expect("server started"), port)
    }

    /// Stops the server (its background tasks with it) and starts a new one on the same
    /// database, data directory and clock, with the configuration adjusted.
    pub fn restart_with(&mut self, adjust: impl FnOnce(&mut Config)) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(true)))
            .join()
            .expect("stop");
        adjust(&mut self.config);
        let (handle, port) = Self::launch(&self.config, &self.clock, None);
        self.handle = handle;
        self.base = format!("http://127.0.0.1:{port}");
    }

    /// Sends a request; `path` starting with `/api` or `/health`-like is used as is,
    /// anything else is under `/api/v1`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with("/api/")
            || !path.starts_with('/')
            || ["/health", "/ready", "/docs"]
                .iter()
                .any(|p| path.starts_with(p))
        {
            format!("{}{path}", self.base)
        } else {
            format!("{}/api/v1{path}", self.base)
        };
        let mut req = self.agent.request(method, &url);
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        Self::read(result)
    }

    /// Sends a raw body with a content type of the test's choosing.
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Resp {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self
            .agent
            .request(method, &url)
            .set("Content-Type", content_type);
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        Self::read(req.send_bytes(body))
    }

    /// Reads a whole response. A body that cannot be read, or a body labelled JSON that
    /// does not parse, fails the test: with a `Value::Null` fallback every
    /// `body["x"].is_null()` check would pass on a truncated or garbled answer.
    #[track_caller]
    pub fn read(result: Result<ureq::Response, ureq::Error>) -> Resp {
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = resp.status();
        let headers: HashMap<String, String> = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| {
                resp.header(&n)
                    .map(|v| (n.to_ascii_lowercase(), v.to_string()))
            })
            .collect();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes)
            .unwrap_or_else(|e| panic!("reading the {status} response body failed: {e}"));
        let text = String::from_utf8_lossy(&bytes).to_string();
        let is_json = headers
            .get("content-type")
            .is_some_and(|ct| ct.contains("json"));
        let body = if is_json {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("{status} body labelled JSON does not parse ({e}): {text}")
            })
        } else {
            // PDFs, CSV, empty 204s: callers use `text`/`bytes`; `body` stays Null.
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            text,
            body,
            bytes,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send("GET", path, token, None, &[])
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.send("POST", path, token, Some(&body), &[])
    }

    pub fn patch(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.send("PATCH", path, token, Some(&body), headers)
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.send("DELETE", path, token, None, &[])
    }

    /// Moves time forward (tokens expire, TOTP steps advance).
    pub fn advance(&self, seconds: i64) {
        self.clock.advance(chrono::Duration::seconds(seconds));
    }

    /// Waits (polling, up to 10 s) until the server's housekeeping has deleted the stored
    /// idempotency key `key`; panics on timeout. Read from the table: over HTTP an expired
    /// key already stops replaying before it is deleted (the next request takes it over),
    /// so only the table shows that the timer ran.
    pub fn wait_until_key_deleted(&self, key: &str) {
        use diesel::prelude::*;
        use eportfolio::schema::idempotency_keys;
        let pool = eportfolio::db::connect(&self.config.database_url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let stored: i64 = idempotency_keys::table
                .filter(idempotency_keys::key.eq(key))
                .count()
                .get_result(&mut *conn)
                .expect("count idempotency keys");
            if stored == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "idempotency key {key:?} still stored after 10 s: housekeeping never deleted it"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Every mail ever queued to `email`, sent or not. Mail is queued in the transaction
    /// of the change it announces, so once a request has answered, this count says
    /// whether it sent anything: no waiting needed to see that nothing went out.
    pub fn mails_queued_to(&self, email: &str) -> i64 {
        use diesel::prelude::*;
        use eportfolio::schema::mail_outbox;
        let pool = eportfolio::db::connect(&self.config.database_url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        mail_outbox::table
            .filter(mail_outbox::recipient.eq(email))
            .count()
            .get_result(&mut *conn)
            .expect("count queued mail")
    }

    pub fn now_unix(&self) -> i64 {
        eportfolio::clock::Clock::now(&*self.clock).timestamp()
    }

    /// A TOTP code for the app's current time, computed by the test's own RFC 6238 code.
    pub fn totp(&self, secret: &str) -> String {
        totp::code_at(secret, self.now_unix())
    }

    /// What `eportfolio admin create` does: invites the first administrator of a region.
    /// Returns the invitation token from the mail the SMTP server received.
    pub fn bootstrap_admin(&self, email: &str, region: &str) -> String {
        let pool = db::connect(&self.config.database_url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        let now = eportfolio::clock::Clock::now(&*self.clock);
        let before = self.smtp.count_to(email);
        let (_, mail, _) = db::write_tx(&mut conn, |c| {
            eportfolio::accounts::service::bootstrap_admin(c, &self.config, now, email, region)
        })
        .expect("bootstrap");
        let mailer = eportfolio::mail::Mailer::new(&self.config.mail, &self.config.mail_from)
            .expect("mailer");
        mailer.send(&mail).expect("send");
        self.smtp
            .wait_for(email, before)
            .find_token_after("token=")
            .expect("token in invitation mail")
    }

    /// Accepts an invitation as a new account and enrols TOTP; returns the signed-in user.
    pub fn accept_with_totp(&self, token: &str, email: &str) -> TestUser {
        let mfa = self.accept_new(token, None);
        let setup = self
            .post("/auth/mfa/totp/setup", None, json!({"mfa_token": mfa}))
            .expect(200);
        let uri = setup.body["otpauth_uri"].as_str().expect("uri");
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        let secret = totp::secret_from_otpauth_uri(uri);
        assert_eq!(secret, setup.body["secret"].as_str().expect("secret"));
        let done = self
            .post(
                "/auth/mfa/totp/confirm",
                None,
                json!({"mfa_token": mfa, "code": self.totp(&secret)}),
            )
            .expect(200);
        let codes: Vec<String> = done.body["recovery_codes"]
            .as_array()
            .expect("recovery codes at first enrolment")
            .iter()
            .map(|c| c.as_str().expect("code").to_string())
            .collect();
        assert_eq!(codes.len(), 10);
        // The next TOTP code must come from a later step (no replay).
        self.advance(30);
        let access = done.body["access_token"]
            .as_str()
            .expect("access")
            .to_string();
        let me = self.get("/me", Some(&access)).expect(200);
        TestUser {
            id: me.body["id"].as_str().expect("id").to_string(),
            email: email.to_string(),
            password: PASSWORD.into(),
            access,
            refresh: done.body["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_string(),
            totp_secret: Some(secret),
            recovery_codes: codes,
        }
    }

    /// A signed-in administrator of a fresh region; returns (admin, region id).
    pub fn admin(&self) -> (TestUser, String) {
        let email = "admin@regionstockholm.se";
        let token = self.bootstrap_admin(email, "Region Stockholm");
        let admin = self.accept_with_totp(&token, email);
        let me = self.get("/me", Some(&admin.access)).expect(200);
        let region = me.body["roles"][0]["organisation_id"]
            .as_str()
            .expect("role")
            .to_string();
        (admin, region)
    }

    /// Invites `email` as `role` at `org` (as `inviter`) and returns the token mailed.
    pub fn invite(&self, inviter: &TestUser, email: &str, role: &str, org: &str) -> String {
        let before = self.smtp.count_to(email);
        self.post(
            "/invitations",
            Some(&inviter.access),
            json!({"email": email, "role": role, "organisation_id": org}),
        )
        .expect(201);
        self.smtp
            .wait_for(email, before)
            .find_token_after("token=")
            .expect("token in invitation mail")
    }

    /// Invites and onboards a user with TOTP.
    pub fn join(&self, inviter: &TestUser, email: &str, role: &str, org: &str) -> TestUser {
        let token = self.invite(inviter, email, role, org);
        self.accept_with_totp(&token, email)
    }

    /// Step one of a login: e-mail and password (and a remembered device, if any).
    pub fn login_step(&self, email: &str, password: &str, device_token: Option<&str>) -> Resp {
        let mut body = json!({"email": email, "password": password});
        if let Some(device) = device_token {
            body["device_token"] = json!(device);
        }
        self.post("/auth/login", None, body)
    }

    /// The `mfa_token` of a login (or acceptance) step that asks for a second factor.
    pub fn mfa_token_of(step: &Resp) -> String {
        step.body["mfa_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no mfa_token in {}", step.text))
            .to_string()
    }

    /// A password login that must be answered with a second factor; returns its token.
    pub fn password_step(&self, email: &str, password: &str) -> String {
        let step = self.login_step(email, password, None).expect(200);
        assert_eq!(step.body["status"], "mfa_required", "{}", step.text);
        Self::mfa_token_of(&step)
    }

    /// Step two: answer the challenge with a second factor.
    pub fn verify(&self, mfa_token: &str, method: &str, code: &str) -> Resp {
        self.post(
            "/auth/mfa/verify",
            None,
            json!({"mfa_token": mfa_token, "method": method, "code": code}),
        )
    }

    /// Asks for an e-mailed code for the challenge and reads it from the delivered mail.
    pub fn emailed_code(&self, email: &str, mfa_token: &str) -> String {
        let before = self.smtp.count_to(email);
        self.post(
            "/auth/mfa/email-code",
            None,
            json!({"mfa_token": mfa_token}),
        )
        .expect(202);
        self.smtp
            .wait_for(email, before)
            .find_six_digit_code()
            .expect("code in mail")
    }

    /// Accepts an invitation as a new account with the standard password; returns the
    /// enrolment `mfa_token`.
    pub fn accept_new(&self, token: &str, display_name: Option<&str>) -> String {
        let mut body = json!({"password": PASSWORD});
        if let Some(name) = display_name {
            body["display_name"] = json!(name);
        }
        let accepted = self
            .post(&format!("/auth/invitations/{token}/accept"), None, body)
            .expect(200);
        assert_eq!(accepted.body["status"], "mfa_enrolment_required");
        Self::mfa_token_of(&accepted)
    }

    /// Asks for a password-reset link for `email` and returns its token.
    pub fn reset_link(&self, email: &str) -> String {
        let before = self.smtp.count_to(email);
        self.post("/auth/password-reset", None, json!({"email": email}))
            .expect(202);
        self.smtp
            .wait_for(email, before)
            .find_token_after("token=")
            .expect("token in reset mail")
    }

    /// Full login with password and TOTP.
    pub fn login_totp(&self, user: &TestUser) -> TestUser {
        let mfa = self.password_step(&user.email, &user.password);
        let secret = user.totp_secret.as_deref().expect("user has totp");
        let done = self.verify(&mfa, "totp", &self.totp(secret)).expect(200);
        self.advance(30);
        TestUser {
            access: done.body["access_token"].as_str().expect("access").into(),
            refresh: done.body["refresh_token"].as_str().expect("refresh").into(),
            ..user.clone()
        }
    }

    /// Id of the newest version of a seeded regulation (`bt-2021`, `st-2021`, ...).
    pub fn regulation_id(&self, user: &TestUser, code: &str) -> String {
        let r = self
            .get(
                &format!("/regulations?code={code}&latest=true"),
                Some(&user.access),
            )
            .expect(200);
        r.body["items"][0]["id"]
            .as_str()
            .expect("regulation")
            .to_string()
    }

    /// Region Stockholm's BT programme (the shared catalogue's example) as a template of
    /// `org`; returns the template id.
    pub fn stockholm_bt_template(&self, admin: &TestUser, org: &str) -> String {
        let regulation = self.regulation_id(admin, "bt-2021");
        let r = self
            .post(
                "/programme-templates",
                Some(&admin.access),
                stockholm_bt(org, &regulation),
            )
            .expect(201);
        r.body["id"].as_str().expect("template id").to_string()
    }

    pub fn create_org(
        &self,
        admin: &TestUser,
        kind: &str,
        name: &str,
        parent: Option<&str>,
    ) -> String {
        let r = self
            .post(
                "/organisations",
                Some(&admin.access),
                json!({"kind": kind, "name": name, "parent_id": parent}),
            )
            .expect(201);
        r.body["id"].as_str().expect("id").to_string()
    }
}

/// The body of Region Stockholm's BT template: four placements, each with a checklist,
/// and programme-wide teaching.
pub fn stockholm_bt(org: &str, regulation: &str) -> Value {
    json!({
        "organisation_id": org,
        "regulation_id": regulation,
        "name": "BT Region Stockholm",
        "duration_months": 12,
        "supervision_every_days": 14,
        "placement_types": [
            {"key": "allmanmedicin", "name": "Allmänmedicin", "months": 4, "supervision_every_days": 7,
             "counts_as": ["primärvård"],
             "checklist": [
                {"kind": "assessment", "title": "Mini-CEX på vårdcentralen", "assessment_type": "mini_cex", "count": 2, "delmal": ["BT1", "BT9"]},
                {"kind": "learning_activity", "title": "Hembesök med distriktssköterska", "delmal": ["BT10"]},
                {"kind": "supervision_topic", "title": "Bemötande i svåra samtal", "delmal": ["BT9"]}
             ]},
            {"key": "akut", "name": "Akut sjukvård", "months": 4, "supervision_every_days": 14,
             "counts_as": ["akut sjukvård"],
             "checklist": [
                {"kind": "assessment", "title": "DOPS", "assessment_type": "dops", "count": 2, "delmal": ["BT1"]},
                {"kind": "deeper_study", "title": "Sepsis", "delmal": ["BT1", "BT15"]}
             ]},
            {"key": "geriatrik", "name": "Geriatrik", "months": 2, "supervision_every_days": 14,
             "checklist": [{"kind": "assessment", "title": "CbD", "assessment_type": "cbd", "count": 1, "delmal": ["BT17"]}]},
            {"key": "psykiatri", "name": "Psykiatri", "months": 2, "supervision_every_days": 14,
             "checklist": [{"kind": "assessment", "title": "Medsittning", "assessment_type": "sit_in", "count": 1, "delmal": ["BT2"]}]}
        ],
        "programme_items": [
            {"kind": "teaching", "title": "Regional utbildningsdag (första tisdagen)", "count": 10, "delmal": ["BT3", "BT4"]},
            {"kind": "course", "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]}
        ]
    })
}

/// A second server in this process on a test app's database, data directory and clock,
/// with an application state of its own (its own session cache): `TestApp::beside`.
/// Stopped when dropped.
pub struct Beside {
    base: String,
    handle: actix_web::dev::ServerHandle,
    agent: ureq::Agent,
}

impl TestApp {
    pub fn beside(&self) -> Beside {
        let (handle, port) = Self::launch(&self.config, &self.clock, None);
        Beside {
            base: format!("http://127.0.0.1:{port}"),
            handle,
            agent: ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(30))
                .build(),
        }
    }
}

impl Beside {
    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let mut req = self.agent.get(&format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        TestApp::read(req.call())
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ =
            std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)))
                .join();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ =
            std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)))
                .join();
        drop_databases(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
