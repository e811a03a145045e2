//! Issue 12, items 8 and 15: secrets are neither replayed from the idempotency store nor
//! stored in plaintext; `keys rotate` re-seals them and old dossiers keep verifying; a
//! wrong master key stops the server at start.

use std::process::{Command, Output};

use diesel::prelude::*;
use eportfolio::schema::{idempotency_keys, service_keys, totp_credentials, webhook_subscriptions};
use serde_json::json;

use crate::support::{TestApp, TestUser};

fn conn(app: &TestApp) -> eportfolio::db::PooledConn {
    eportfolio::db::connect(&app.config.database_url, 1)
        .expect("pool")
        .get()
        .expect("conn")
}

fn totp_column(app: &TestApp, user_id: &str) -> String {
    totp_credentials::table
        .find(user_id)
        .select(totp_credentials::secret)
        .first::<Option<String>>(&mut *conn(app))
        .expect("totp row")
        .expect("confirmed secret")
}

/// Every byte of the SQLite database (file and write-ahead log); None on PostgreSQL.
fn sqlite_bytes(app: &TestApp) -> Option<Vec<u8>> {
    if app.config.is_postgres() {
        return None;
    }
    let mut bytes = std::fs::read(&app.config.database_url).expect("database file");
    if let Ok(wal) = std::fs::read(format!("{}-wal", app.config.database_url)) {
        bytes.extend(wal);
    }
    Some(bytes)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The real binary on the test's database and data directory.
fn eportfolio(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eportfolio"));
    cmd.args(args)
        .env("DATABASE_URL", &app.config.database_url)
        .env("EPORTFOLIO_DATA_DIR", &app.dir)
        .env("EPORTFOLIO_BIND", "127.0.0.1:0")
        .env("LOG_LEVEL", "warn")
        .env_remove("EPORTFOLIO_MASTER_KEY")
        .env_remove("EPORTFOLIO_RETIRED_MASTER_KEYS")
        .envs(env.iter().copied());
    cmd.output().expect("run eportfolio")
}

/// 32 bytes, base64, that sealed nothing in any test database.
const OTHER_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

#[test]
fn recovery_codes_and_client_secrets_are_not_replayed_from_the_idempotency_store() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let token = Some(admin.access.as_str());

    // Step-up: the password; the session's second factor is minutes old.
    let step_up = json!({ "password": admin.password });
    let key = [("Idempotency-Key", "new-recovery-codes-1")];
    let first = app
        .send("POST", "/me/recovery-codes", token, Some(&step_up), &key)
        .expect(201);
    let codes: Vec<String> = first.body["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    // The retry is told it was done and how to get new codes, not given these again.
    let retry = app
        .send("POST", "/me/recovery-codes", token, Some(&step_up), &key)
        .expect_problem(409, "idempotency-secret-not-replayed");
    assert!(retry.text.contains("/me/recovery-codes"), "{}", retry.text);
    for code in &codes {
        assert!(!retry.text.contains(code.as_str()));
    }

    let body =
        json!({"organisation_id": region, "name": "Lärplattformen", "scopes": ["progress:read"]});
    let key = [("Idempotency-Key", "new-client-1")];
    let client = app
        .send("POST", "/api-clients", token, Some(&body), &key)
        .expect(201);
    let secret = client.body["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let retry = app
        .send("POST", "/api-clients", token, Some(&body), &key)
        .expect_problem(409, "idempotency-secret-not-replayed");
    assert!(!retry.text.contains(&secret));
    assert!(retry.text.contains("rotate-secret"), "{}", retry.text);
    // Still one client: the retry did not make another.
    let clients = app.get("/api-clients", token).expect(200);
    assert_eq!(clients.body["items"].as_array().expect("items").len(), 1);

    // The store keeps that the keys were used, and nothing of the answers.
    let rows: Vec<(String, Option<String>, Option<String>)> = idempotency_keys::table
        .select((
            idempotency_keys::key,
            idempotency_keys::response_body,
            idempotency_keys::outcome,
        ))
        .load(&mut *conn(&app))
        .expect("keys");
    for key in ["new-recovery-codes-1", "new-client-1"] {
        let row = rows.iter().find(|r| r.0 == key).expect("key kept");
        assert_eq!(row.1, None, "{key}: no stored answer");
        assert_eq!(row.2.as_deref(), Some("secret"));
    }
    if let Some(bytes) = sqlite_bytes(&app) {
        assert!(
            !contains(&bytes, &secret),
            "client secret in the database file"
        );
        for code in &codes {
            assert!(
                !contains(&bytes, code),
                "recovery code in the database file"
            );
        }
    }
}

#[test]
fn totp_and_webhook_secrets_are_stored_sealed_and_login_still_works() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let totp_secret = admin.totp_secret.clone().expect("totp");
    let sub = app
        .post(
            "/webhook-subscriptions",
            Some(&admin.access),
            json!({"organisation_id": region, "url": "https://lms.example.org/hooks",
                   "events": ["activity.created"]}),
        )
        .expect(201);
    let sub_id = sub.body["id"].as_str().expect("id").to_string();
    let webhook_secret = sub.body["secret"].as_str().expect("secret").to_string();

    // Read the rows directly: sealed, neither secret in plaintext.
    let stored_totp = totp_column(&app, &admin.id);
    assert!(stored_totp.starts_with("sealed:v1:"), "{stored_totp}");
    assert!(!stored_totp.contains(&totp_secret));
    let stored_hook: String = webhook_subscriptions::table
        .find(&sub_id)
        .select(webhook_subscriptions::secret)
        .first(&mut *conn(&app))
        .expect("subscription row");
    assert!(stored_hook.starts_with("sealed:v1:"), "{stored_hook}");
    assert!(!stored_hook.contains(&webhook_secret));
    // The dossier signing key too.
    let private_keys: Vec<String> = service_keys::table
        .select(service_keys::private_key)
        .load(&mut *conn(&app))
        .expect("signing keys");
    assert!(!private_keys.is_empty());
    for k in &private_keys {
        assert!(k.starts_with("sealed:v1:"), "{k}");
    }
    if let Some(bytes) = sqlite_bytes(&app) {
        assert!(!contains(&bytes, &totp_secret), "TOTP secret in the file");
        assert!(
            !contains(&bytes, &webhook_secret),
            "webhook secret in the file"
        );
    }

    // The sealed secret still opens: a TOTP login works.
    let again = app.login_totp(&admin);
    app.get("/me", Some(&again.access)).expect(200);
}

#[test]
fn a_sealed_totp_secret_copied_into_another_account_does_not_open_there() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let attacker = app.join(&admin, "angripare@sll.se", "trainee", &region);
    // Someone who can write one row puts their own sealed secret into the victim's.
    let theirs = totp_column(&app, &attacker.id);
    diesel::update(totp_credentials::table.find(&admin.id))
        .set(totp_credentials::secret.eq(Some(&theirs)))
        .execute(&mut *conn(&app))
        .expect("copy");
    let mfa = app.password_step(&admin.email, &admin.password);
    let code = app.totp(attacker.totp_secret.as_deref().expect("totp"));
    app.verify(&mfa, "totp", &code)
        .expect_problem(401, "invalid-second-factor");
}

#[test]
fn plaintext_totp_secrets_from_before_are_sealed_at_start() {
    let mut app = TestApp::start();
    let (admin, _) = app.admin();
    let totp_secret = admin.totp_secret.clone().expect("totp");
    // As a database from before sealing has it.
    diesel::update(totp_credentials::table.find(&admin.id))
        .set(totp_credentials::secret.eq(Some(&totp_secret)))
        .execute(&mut *conn(&app))
        .expect("plaintext");
    app.restart_with(|_| {});
    let stored = totp_column(&app, &admin.id);
    assert!(stored.starts_with("sealed:v1:"), "{stored}");
    assert!(!stored.contains(&totp_secret));
    app.login_totp(&admin);
}

fn dossier_world(app: &TestApp) -> (TestUser, String) {
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
    (trainee, e.body["id"].as_str().expect("id").to_string())
}

#[test]
fn keys_rotate_reseals_every_secret_and_an_old_dossier_still_verifies() {
    let app = TestApp::start();
    let (trainee, enrolment) = dossier_world(&app);
    let old_dossier = app
        .get(
            &format!("/enrolments/{enrolment}/dossier"),
            Some(&trainee.access),
        )
        .expect(200);
    let old_signing_key = old_dossier.body["signature"]["key_id"]
        .as_str()
        .expect("key id")
        .to_string();
    let before = totp_column(&app, &trainee.id);
    let old_master = eportfolio::secrets::sealed_with(&before)
        .expect("sealed")
        .to_string();

    let out = eportfolio(&app, &["keys", "rotate"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Re-sealed under a new master key.
    let after = totp_column(&app, &trainee.id);
    let new_master = eportfolio::secrets::sealed_with(&after).expect("sealed");
    assert_ne!(new_master, old_master, "the key id changes");
    assert!(!after.contains(trainee.totp_secret.as_deref().expect("totp")));
    // The running server opens what was re-sealed: login works.
    let trainee = app.login_totp(&trainee);

    // The dossier signed before still verifies; new ones are signed with the new key.
    let v = app
        .send_raw(
            "POST",
            "/dossier-verifications",
            None,
            "application/json",
            old_dossier.text.as_bytes(),
        )
        .expect(200)
        .body;
    assert_eq!(v["authentic"], true, "{v}");
    let new_dossier = app
        .get(
            &format!("/enrolments/{enrolment}/dossier"),
            Some(&trainee.access),
        )
        .expect(200);
    assert_ne!(new_dossier.body["signature"]["key_id"], old_signing_key);
    // The old signing key is still published, as retired; the new one signs.
    let keys = app.get("/dossier-keys", None).expect(200);
    let keys = keys.body["items"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let old = keys
        .iter()
        .find(|k| k["key_id"] == old_signing_key.as_str())
        .expect("old key listed");
    assert!(old["retired_at"].is_string(), "{old}");
    let new = keys
        .iter()
        .find(|k| k["key_id"] == new_dossier.body["signature"]["key_id"])
        .expect("new key listed");
    assert!(new["retired_at"].is_null(), "{new}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(new_master),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_wrong_master_key_refuses_to_start_with_a_clear_message() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    assert!(totp_column(&app, &admin.id).starts_with("sealed:v1:"));
    // 32 bytes, base64, but not the key the data directory's secrets were sealed with.
    let out = eportfolio(&app, &["serve"], &[("EPORTFOLIO_MASTER_KEY", OTHER_KEY)]);
    assert!(!out.status.success(), "started with the wrong key");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wrong master key"), "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
    // Nothing was changed by the refused start: the right key still opens everything.
    app.login_totp(&admin);
}

#[test]
fn keys_rotate_moves_secrets_to_a_master_key_given_in_the_environment() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let before = totp_column(&app, &admin.id);
    let file = std::fs::read_to_string(app.dir.join("master-keys")).expect("key file");
    let old_key = file
        .lines()
        .last()
        .and_then(|l| l.split(' ').next_back())
        .expect("a key")
        .to_string();

    // The new key alone does not open what the old one sealed: refused, nothing changed.
    let out = eportfolio(
        &app,
        &["keys", "rotate"],
        &[("EPORTFOLIO_MASTER_KEY", OTHER_KEY)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong master key"));
    assert_eq!(totp_column(&app, &admin.id), before);

    // With the old key listed as retired, everything moves to the new one.
    let out = eportfolio(
        &app,
        &["keys", "rotate"],
        &[
            ("EPORTFOLIO_MASTER_KEY", OTHER_KEY),
            ("EPORTFOLIO_RETIRED_MASTER_KEYS", &old_key),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = totp_column(&app, &admin.id);
    assert_ne!(
        eportfolio::secrets::sealed_with(&after),
        eportfolio::secrets::sealed_with(&before)
    );
    let new_id = eportfolio::secrets::sealed_with(&after).expect("sealed");
    assert!(String::from_utf8_lossy(&out.stdout).contains(new_id));
    // From now on the old key alone is the wrong one.
    let out = eportfolio(&app, &["serve"], &[]);
    assert!(!out.status.success(), "started with a retired key");
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong master key"));
}

#[test]
fn a_master_key_file_readable_by_others_refuses_to_start() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::start();
    let path = app.dir.join("master-keys");
    let mode = std::fs::metadata(&path)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "created for the owner only");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = eportfolio(&app, &["serve"], &[]);
    assert!(!out.status.success(), "started with a readable key file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("readable by other users"), "{stderr}");
}
