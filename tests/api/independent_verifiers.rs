//! Checks that do not trust the code under test: dossier signatures verified with
//! Ed25519 and the published PEM alone, and the audit chain recomputed from its rows,
//! each written here from the documented construction (src/dossier/signing.rs and
//! src/audit/mod.rs module docs), not by calling the service's own verifiers.

use base64::Engine;
use diesel::prelude::*;
use ed25519_dalek::{Signature, VerifyingKey};
use eportfolio::schema::audit_log;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{TestApp, TestUser};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

struct Setup {
    app: TestApp,
    trainee: TestUser,
    enrolment: String,
}

/// The smallest portfolio that yields a dossier: one trainee, one enrolment, one
/// logged activity (so the dossier has a record and the audit log a few entries).
fn setup() -> Setup {
    setup_with(|_| {})
}

fn setup_with(adjust: impl FnOnce(&mut eportfolio::Config)) -> Setup {
    let app = TestApp::start_with(adjust);
    let (admin, region) = app.admin();
    let org = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &org);
    let template = app.stockholm_bt_template(&director, &org);
    let trainee = app.join(&director, "bt@sll.se", "trainee", &org);
    let supervisor = app.join(&director, "hhl@sll.se", "supervisor", &org);
    let e = app
        .post(
            "/enrolments",
            Some(&director.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31", "main_supervisor_id": supervisor.id,
                   "placements": [{"placement_type": "allmanmedicin", "start_date": "2026-09-01", "end_date": "2026-12-31"}]}),
        )
        .expect(201);
    let enrolment = e.body["id"].as_str().expect("id").to_string();
    let s = Setup {
        app,
        trainee,
        enrolment,
    };
    log_activity(&s, "Försäkringsmedicinsk dag");
    s
}

fn log_activity(s: &Setup, title: &str) -> String {
    let a = s
        .app
        .post(
            &format!("/enrolments/{}/activities", s.enrolment),
            Some(&s.trainee.access),
            json!({"kind": "course", "title": title, "start_date": "2026-10-06",
                   "reflection": "Sjukskrivningsprocessen", "delmal": ["BT16"]}),
        )
        .expect(201);
    a.body["id"].as_str().expect("activity id").to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// ---------------------------------------------------------------------------------
// Dossier signatures
// ---------------------------------------------------------------------------------

/// Canonical JSON as signing.rs documents it: object keys sorted, no whitespace,
/// strings and numbers as JSON writes them. Written here, not borrowed.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, x)| format!("{}:{}", Value::String(k.clone()), canonical(x)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// The published key `key_id` from `/dossier-keys`, read from its PEM only: a
/// SubjectPublicKeyInfo (RFC 8410) whose DER is a fixed 12-byte prefix and the key.
fn published_key(keys: &Value, key_id: &str) -> Result<VerifyingKey, String> {
    let listed = keys.as_array().ok_or("no key list")?;
    let entry = listed
        .iter()
        .find(|k| k["key_id"] == key_id)
        .ok_or_else(|| format!("key {key_id} is not published"))?;
    let pem = entry["public_key_pem"].as_str().ok_or("no PEM")?;
    let mut lines = pem.lines();
    if lines.next() != Some("-----BEGIN PUBLIC KEY-----") {
        return Err("not a PEM public key".into());
    }
    let body: String = lines.take_while(|l| !l.starts_with("-----END")).collect();
    let der = B64.decode(body).map_err(|e| format!("PEM body: {e}"))?;
    const ED25519_SPKI: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    if der.len() != 44 || der[..12] != ED25519_SPKI {
        return Err("not an Ed25519 SubjectPublicKeyInfo".into());
    }
    let raw: [u8; 32] = der[12..].try_into().map_err(|_| "key length")?;
    // The key id is derivable from the key, so a listing cannot pair an id with a
    // different key unnoticed.
    if sha256_hex(&raw)[..16] != *key_id {
        return Err("the key id is not the key's SHA-256 prefix".into());
    }
    VerifyingKey::from_bytes(&raw).map_err(|e| format!("bad key: {e}"))
}

fn ed25519_verify(key: &VerifyingKey, message: &[u8], signature_b64: &str) -> Result<(), String> {
    let bytes: [u8; 64] = B64
        .decode(signature_b64)
        .map_err(|e| format!("signature not base64: {e}"))?
        .try_into()
        .map_err(|_| "signature is not 64 bytes")?;
    key.verify_strict(message, &Signature::from_bytes(&bytes))
        .map_err(|e| format!("Ed25519 rejects the signature: {e}"))
}

/// A JSON dossier as issued: the signature block must cover the canonical dossier.
fn check_json_dossier(text: &str, keys: &Value) -> Result<(), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let dossier = doc.get("dossier").ok_or("no dossier")?;
    let sig = doc.get("signature").ok_or("no signature")?;
    if sig["algorithm"] != "Ed25519" {
        return Err(format!("algorithm {}", sig["algorithm"]));
    }
    let key = published_key(keys, sig["key_id"].as_str().ok_or("no key id")?)?;
    let bytes = canonical(dossier).into_bytes();
    if sig["content_hash"] != format!("sha256:{}", sha256_hex(&bytes)) {
        return Err("content hash differs from the canonical dossier".into());
    }
    ed25519_verify(&key, &bytes, sig["value"].as_str().ok_or("no value")?)
}

/// A PDF dossier as issued: after `%%EOF`, one line `%eportfolio-signature
/// <base64url(manifest)>`; the manifest (less its `signature`) is signed, and names the
/// SHA-256 of every byte before that line. Returns the manifest.
fn check_pdf_dossier(pdf: &[u8], keys: &Value) -> Result<Value, String> {
    const MARKER: &[u8] = b"\n%eportfolio-signature ";
    let at = pdf
        .windows(MARKER.len())
        .rposition(|w| w == MARKER)
        .ok_or("no signature line")?;
    let (body, line) = pdf.split_at(at + 1);
    if !body.trim_ascii_end().ends_with(b"%%EOF") {
        return Err("the signature line does not follow %%EOF".into());
    }
    let encoded = line[MARKER.len() - 1..]
        .strip_suffix(b"\n")
        .ok_or("the signature line is not the last line")?;
    let manifest = B64URL
        .decode(encoded)
        .map_err(|e| format!("manifest not base64url: {e}"))?;
    let mut manifest: Value =
        serde_json::from_slice(&manifest).map_err(|e| format!("manifest not JSON: {e}"))?;
    let signature = manifest
        .as_object_mut()
        .and_then(|m| m.remove("signature"))
        .ok_or("manifest without signature")?;
    if manifest["algorithm"] != "Ed25519" {
        return Err(format!("algorithm {}", manifest["algorithm"]));
    }
    let key = published_key(keys, manifest["key_id"].as_str().ok_or("no key id")?)?;
    ed25519_verify(
        &key,
        canonical(&manifest).as_bytes(),
        signature.as_str().ok_or("signature not a string")?,
    )?;
    if manifest["pdf_sha256"] != sha256_hex(body) {
        return Err("the PDF bytes differ from the signed manifest".into());
    }
    Ok(manifest)
}

#[test]
fn a_dossier_changed_by_one_byte_fails_an_independent_ed25519_check() {
    let s = setup();
    let path = format!("/enrolments/{}/dossier", s.enrolment);
    let keys = s.app.get("/dossier-keys", None).expect(200).body["items"].clone();
    assert!(
        !keys.as_array().expect("keys").is_empty(),
        "no published key"
    );

    // JSON, as issued: verifies with the published PEM and our own canonical form.
    let issued = s.app.get(&path, Some(&s.trainee.access)).expect(200);
    let dossier = &issued.body["dossier"];
    assert_eq!(
        dossier["records"].as_array().expect("records").len(),
        1,
        "the activity is covered: {}",
        issued.text
    );
    check_json_dossier(&issued.text, &keys).expect("the issued JSON dossier verifies");

    // One byte of one field changed (a title): rejected.
    let needle = "Försäkringsmedicinsk dag";
    assert!(issued.text.contains(needle), "{}", issued.text);
    let tampered = issued.text.replacen(needle, "Försäkringsmedicinsk dah", 1);
    assert_eq!(tampered.len(), issued.text.len());
    let err = check_json_dossier(&tampered, &keys).expect_err("a changed title is caught");
    assert!(err.contains("content hash"), "{err}");
    // Also when the forger updates the content hash: the signature still catches it.
    let mut forged: Value = serde_json::from_str(&tampered).expect("json");
    forged["signature"]["content_hash"] = json!(format!(
        "sha256:{}",
        sha256_hex(canonical(&forged["dossier"]).as_bytes())
    ));
    let err = check_json_dossier(&forged.to_string(), &keys)
        .expect_err("a recomputed hash without the key is caught");
    assert!(err.contains("Ed25519 rejects"), "{err}");

    // PDF at the same moment: the same dossier, sealed with a signed manifest.
    let pdf = s.app.send(
        "GET",
        &path,
        Some(&s.trainee.access),
        None,
        &[("Accept", "application/pdf")],
    );
    let pdf = pdf.expect(200);
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    assert!(pdf.bytes.starts_with(b"%PDF-"));
    let manifest = check_pdf_dossier(&pdf.bytes, &keys).expect("the issued PDF verifies");
    assert_eq!(
        manifest["content_hash"],
        format!("sha256:{}", sha256_hex(canonical(dossier).as_bytes())),
        "the PDF seals the same content as the JSON"
    );
    assert_eq!(manifest["dossier_id"], dossier["dossier_id"]);
    assert_eq!(manifest["enrolment_id"], s.enrolment.as_str());
    assert_eq!(manifest["records"], dossier["records"]);

    // One byte of the PDF body changed: rejected.
    let mut changed = pdf.bytes.clone();
    let at = changed
        .windows(5)
        .position(|w| w == b"/Type")
        .expect("a PDF object");
    changed[at + 1] ^= 0x01;
    let err = check_pdf_dossier(&changed, &keys).expect_err("a changed PDF body is caught");
    assert!(err.contains("PDF bytes differ"), "{err}");
    // Also when the forger rewrites the manifest's hash: the signature catches it.
    let line = pdf
        .bytes
        .windows(23)
        .rposition(|w| w == b"\n%eportfolio-signature ")
        .expect("marker");
    let encoded = std::str::from_utf8(&pdf.bytes[line + 23..])
        .expect("ascii")
        .trim_end();
    let mut m: Value =
        serde_json::from_slice(&B64URL.decode(encoded).expect("b64")).expect("manifest");
    m["pdf_sha256"] = json!(sha256_hex(&changed[..line + 1]));
    let mut forged = changed[..line + 1].to_vec();
    forged.extend_from_slice(b"%eportfolio-signature ");
    forged.extend_from_slice(B64URL.encode(canonical(&m)).as_bytes());
    forged.push(b'\n');
    let err = check_pdf_dossier(&forged, &keys).expect_err("a rewritten manifest is caught");
    assert!(err.contains("Ed25519 rejects"), "{err}");
    // A key that is not the service's cannot stand in for it.
    let mut foreign = keys.clone();
    foreign[0]["public_key_pem"] = json!(
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"
    );
    let err = check_pdf_dossier(&pdf.bytes, &foreign).expect_err("a foreign key is caught");
    assert!(err.contains("key id is not"), "{err}");
}

// ---------------------------------------------------------------------------------
// The audit chain
// ---------------------------------------------------------------------------------

pub(crate) type AuditRow = (
    i64,
    chrono::NaiveDateTime,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i32,
    Option<String>,
    Option<chrono::NaiveDateTime>,
);

/// Every audit row, read straight from the database (the API has no export of the
/// whole chain: `/changes` is one enrolment's and carries no hashes).
pub(crate) fn audit_rows(app: &TestApp) -> Vec<AuditRow> {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    audit_log::table
        .order(audit_log::seq)
        .select((
            audit_log::seq,
            audit_log::at,
            audit_log::actor_id,
            audit_log::client,
            audit_log::action,
            audit_log::entity,
            audit_log::entity_id,
            audit_log::enrolment_id,
            audit_log::data,
            audit_log::prev_hash,
            audit_log::hash,
            audit_log::hash_version,
            audit_log::data_digest,
            audit_log::data_erased_at,
        ))
        .load(&mut *conn)
        .expect("audit rows")
}

/// The chain as src/audit/mod.rs documents it: entry n's hash is the SHA-256 (hex) of
/// its fields, each written `<byte length>:<value>|`, in the order prev hash, seq, time
/// (microseconds since the epoch), actor, client, action, entity, entity id, enrolment
/// (absent as empty), then for version 1 the data, for version 2 the text `v2` and the
/// data's digest (SHA-256 hex of the data), which the data must match unless it was
/// emptied (the JSON `null` with `data_erased_at` set); the first entry links to 64
/// zeros and seq runs 1, 2, 3, ... A version-1 entry emptied by a redaction (data the
/// JSON `null`, `data_erased_at` set) is accepted when a later version-2 `redacted`
/// entry names its seq and stored hash. Returns the head hash, or the first seq that
/// does not verify.
pub(crate) fn recompute_chain(rows: &[AuditRow]) -> Result<String, (i64, &'static str)> {
    let mut prev = "0".repeat(64);
    let redactions: Vec<(i64, i64, String)> = rows
        .iter()
        .filter(|r| r.4 == "redacted" && r.11 == 2)
        .filter_map(|r| {
            let d: Value = serde_json::from_str(&r.8).ok()?;
            Some((r.0, d["seq"].as_i64()?, d["hash"].as_str()?.to_string()))
        })
        .collect();
    for (n, r) in rows.iter().enumerate() {
        let expected = n as i64 + 1;
        if r.0 != expected {
            return Err((expected, "sequence gap"));
        }
        if r.9 != prev {
            return Err((expected, "link to the previous entry"));
        }
        if !(1..=2).contains(&r.11) {
            return Err((expected, "hash version"));
        }
        if r.11 == 1 && r.13.is_some() {
            let named = redactions
                .iter()
                .any(|(by, seq, hash)| *by > r.0 && *seq == r.0 && *hash == r.10);
            if r.8 != "null" || !named {
                return Err((expected, "redaction"));
            }
        } else if entry_hash(&r.9, r) != r.10 {
            return Err((expected, "content hash"));
        }
        if r.11 == 2 {
            let data_holds = match r.13 {
                Some(_) => r.8 == "null",
                None => r.12.as_deref() == Some(sha256_hex(r.8.as_bytes()).as_str()),
            };
            if !data_holds {
                return Err((expected, "data digest"));
            }
        }
        prev = r.10.clone();
    }
    Ok(prev)
}

/// Entry `r`'s hash with link `prev`, as documented above.
pub(crate) fn entry_hash(prev: &str, r: &AuditRow) -> String {
    let seq = r.0.to_string();
    let at = r.1.and_utc().timestamp_micros().to_string();
    let mut fields = vec![
        prev,
        &seq,
        &at,
        r.2.as_deref().unwrap_or(""),
        r.3.as_deref().unwrap_or(""),
        &r.4,
        &r.5,
        &r.6,
        r.7.as_deref().unwrap_or(""),
    ];
    if r.11 == 1 {
        fields.push(&r.8);
    } else {
        fields.push("v2");
        fields.push(r.12.as_deref().unwrap_or(""));
    }
    let mut text = String::new();
    for field in fields {
        text.push_str(&format!("{}:{field}|", field.len()));
    }
    sha256_hex(text.as_bytes())
}

/// What the service says: its own verify, and the CLI an auditor runs.
fn service_verdict(app: &TestApp) -> (eportfolio::audit::Verification, bool, String) {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let v = eportfolio::audit::verify(&mut conn).expect("verify");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &app.config.database_url)
        .env("EPORTFOLIO_DATA_DIR", &app.config.data_dir)
        .output()
        .expect("run eportfolio");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (v, out.status.success(), text)
}

/// Runs `f` on a direct database connection, as someone with database access would.
fn tamper(app: &TestApp, f: impl FnOnce(&mut eportfolio::db::DbConn)) {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    f(&mut conn);
}

/// A setup with some history, checked intact by both the service and the test.
fn audited() -> (Setup, Vec<AuditRow>) {
    let s = setup();
    let id = log_activity(&s, "Etikseminarium");
    s.app
        .patch(
            &format!("/activities/{id}"),
            Some(&s.trainee.access),
            json!({"reflection": "Ändrad"}),
            &[],
        )
        .expect(200);
    s.app
        .delete(&format!("/activities/{id}"), Some(&s.trainee.access))
        .expect(204);
    let rows = audit_rows(&s.app);
    assert!(rows.len() >= 6, "too little history: {}", rows.len());
    recompute_chain(&rows).expect("the untouched chain recomputes");
    let (v, ok, out) = service_verdict(&s.app);
    assert!(v.intact && ok, "{v:?} {out}");
    assert_eq!(v.entries, rows.len() as i64);
    (s, rows)
}

#[test]
fn the_audit_chain_recomputed_outside_the_service_matches_every_stored_hash() {
    let (s, rows) = audited();
    let head = recompute_chain(&rows).expect("recomputes");
    assert_eq!(head, rows.last().expect("rows").10);
    // The three changes to the activity are there, in order, with their content.
    let actions: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.5 == "activity")
        .map(|r| (r.5.as_str(), r.4.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("activity", "created"),
            ("activity", "created"),
            ("activity", "updated"),
            ("activity", "deleted")
        ]
    );
    // The update's entry records the change's facts and the reflection's keyed digest,
    // never its text (docs/privacy.md, step 2).
    assert!(rows.iter().any(|r| r.4 == "updated"
        && r.8.contains("\"reflection\":\"")
        && r.8.contains("text_digests")));
    assert!(rows.iter().all(|r| !r.8.contains("Ändrad")));
    // The recomputation is not a tautology: one changed character fails it.
    let mut edited = rows.clone();
    let i = edited
        .iter()
        .position(|r| r.4 == "updated")
        .expect("update");
    edited[i].8 = edited[i].8.replace("\"version\":2", "\"version\":3");
    assert_ne!(edited[i].8, rows[i].8);
    assert_eq!(recompute_chain(&edited), Err((edited[i].0, "data digest")));
    // Nor is the digest: changing it (with the data to match) breaks the entry's hash.
    let mut edited = rows.clone();
    edited[i].8 = edited[i].8.replace("\"version\":2", "\"version\":3");
    edited[i].12 = Some(sha256_hex(edited[i].8.as_bytes()));
    assert_eq!(recompute_chain(&edited), Err((edited[i].0, "content hash")));
    // New entries hash a digest of their data (version 2).
    assert!(
        rows.iter().all(|r| r.11 == 2),
        "every new entry is version 2"
    );
    // An entry appended later extends the same chain from the same head.
    log_activity(&s, "Hembesök");
    let later = audit_rows(&s.app);
    assert_eq!(later[rows.len()].9, head);
    recompute_chain(&later).expect("still recomputes");
}

#[test]
fn a_long_user_agent_does_not_break_the_audit_chain() {
    // The column keeps 200 characters of the client; an entry made with a longer user
    // agent must still verify, or anyone could make the chain look tampered with.
    let (s, _) = audited();
    let agent = format!(
        "Mozilla/5.0 (Linux; Android 15) {}",
        "Extended-Agent/1.0 ".repeat(20)
    );
    assert!(agent.chars().count() > 300);
    let body = json!({"kind": "course", "title": "Lång klient", "start_date": "2026-10-07",
                      "reflection": "Från en telefon med lång user agent", "delmal": ["BT16"]});
    s.app
        .send(
            "POST",
            &format!("/enrolments/{}/activities", s.enrolment),
            Some(&s.trainee.access),
            Some(&body),
            &[("User-Agent", agent.as_str())],
        )
        .expect(201);
    let rows = audit_rows(&s.app);
    let stored = rows
        .iter()
        .rev()
        .find_map(|r| {
            r.3.clone()
                .filter(|c| c.starts_with("Mozilla/5.0 (Linux; Android 15)"))
        })
        .expect("the entry records the client");
    assert_eq!(
        stored.chars().count(),
        200,
        "the column keeps 200 characters"
    );
    recompute_chain(&rows).expect("the chain recomputes over what is stored");
    let (v, ok, out) = service_verdict(&s.app);
    assert!(v.intact && ok, "{v:?} {out}");
    assert_eq!(v.entries, rows.len() as i64);
}

#[test]
fn deleting_an_audit_row_breaks_the_chain() {
    let (s, rows) = audited();
    let victim = rows[rows.len() / 2].0;
    tamper(&s.app, |c| {
        let n = diesel::delete(audit_log::table.filter(audit_log::seq.eq(victim)))
            .execute(c)
            .expect("delete");
        assert_eq!(n, 1);
    });
    let (v, ok, out) = service_verdict(&s.app);
    assert!(!v.intact && !ok, "{v:?} {out}");
    assert_eq!(v.first_broken, Some(victim));
    assert_eq!(v.reason.as_deref(), Some("an entry is missing"));
    assert!(out.contains(&format!("broken at entry {victim}")), "{out}");
    assert_eq!(
        recompute_chain(&audit_rows(&s.app)),
        Err((victim, "sequence gap"))
    );
}

#[test]
fn deleting_an_audit_row_and_renumbering_the_rest_breaks_the_chain() {
    let (s, rows) = audited();
    let victim = rows[rows.len() / 2].0;
    let last = rows.last().expect("rows").0;
    // A careful forger closes the gap so the numbering runs on.
    tamper(&s.app, |c| {
        diesel::delete(audit_log::table.filter(audit_log::seq.eq(victim)))
            .execute(c)
            .expect("delete");
        for seq in victim + 1..=last {
            diesel::update(audit_log::table.filter(audit_log::seq.eq(seq)))
                .set(audit_log::seq.eq(seq - 1))
                .execute(c)
                .expect("renumber");
        }
    });
    let (v, ok, out) = service_verdict(&s.app);
    assert!(!v.intact && !ok, "{v:?} {out}");
    assert_eq!(v.first_broken, Some(victim));
    assert_eq!(
        v.reason.as_deref(),
        Some("the link to the previous entry does not match")
    );
    assert_eq!(
        recompute_chain(&audit_rows(&s.app)),
        Err((victim, "link to the previous entry"))
    );
}

#[test]
fn reordering_two_audit_rows_breaks_the_chain() {
    let (s, rows) = audited();
    let a = rows[rows.len() / 2].0;
    let b = a + 1;
    // Swap the two rows' places in the sequence (through a free number: seq is the key).
    tamper(&s.app, |c| {
        for (from, to) in [(a, -1), (b, a), (-1, b)] {
            let n = diesel::update(audit_log::table.filter(audit_log::seq.eq(from)))
                .set(audit_log::seq.eq(to))
                .execute(c)
                .expect("swap");
            assert_eq!(n, 1);
        }
    });
    let swapped = audit_rows(&s.app);
    assert_eq!(swapped[(a - 1) as usize].10, rows[(b - 1) as usize].10);
    let (v, ok, out) = service_verdict(&s.app);
    assert!(!v.intact && !ok, "{v:?} {out}");
    assert_eq!(v.first_broken, Some(a));
    assert_eq!(
        v.reason.as_deref(),
        Some("the link to the previous entry does not match")
    );
    assert!(out.contains(&format!("broken at entry {a}")), "{out}");
    assert_eq!(
        recompute_chain(&swapped),
        Err((a, "link to the previous entry"))
    );
}

/// `eportfolio <args>` against the test app's database and data directory (whose key
/// file holds the master key): exit status and everything printed.
fn cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"))
        .args(args)
        .env("DATABASE_URL", &app.config.database_url)
        .env("EPORTFOLIO_DATA_DIR", &app.config.data_dir)
        .output()
        .expect("run eportfolio");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A checkpoint printed by `eportfolio audit checkpoint`, its signature checked here
/// with ed25519-dalek against the key `/dossier-keys` publishes, over the message
/// `src/audit/checkpoint.rs` documents.
pub(crate) fn take_checkpoint(app: &TestApp) -> Value {
    let (ok, out) = cli(app, &["audit", "checkpoint"]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no checkpoint printed: {out}"));
    let cp: Value = serde_json::from_str(line).expect("checkpoint json");
    assert_eq!(cp["type"], "eportfolio-audit-checkpoint");
    let keys = app.get("/dossier-keys", None).expect(200).body["items"].clone();
    let key = published_key(&keys, cp["key_id"].as_str().expect("key id")).expect("key");
    let message = format!(
        "eportfolio-audit-checkpoint/v1\nseq={}\nhash={}\nat={}\n",
        cp["seq"],
        cp["hash"].as_str().expect("hash"),
        cp["at"].as_str().expect("at")
    );
    ed25519_verify(
        &key,
        message.as_bytes(),
        cp["signature"].as_str().expect("sig"),
    )
    .expect("an authentic checkpoint");
    cp
}

/// `eportfolio audit verify --checkpoint FILE` with `lines` as the file.
pub(crate) fn verify_against(app: &TestApp, lines: &str) -> (bool, String) {
    let file = app
        .config
        .data_dir
        .join(format!("checkpoints-{}.txt", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, lines).expect("write checkpoints");
    cli(
        app,
        &[
            "audit",
            "verify",
            "--checkpoint",
            file.to_str().expect("path"),
        ],
    )
}

/// Rewrites every stored hash from entry `from` on, following the documented
/// construction, as an attacker who knows it would after editing an entry.
fn rehash_from(app: &TestApp, from: i64) {
    let rows = audit_rows(app);
    tamper(app, |c| {
        let mut prev = if from == 1 {
            "0".repeat(64)
        } else {
            rows[(from - 2) as usize].10.clone()
        };
        for r in rows.iter().filter(|r| r.0 >= from) {
            // A careful forger also recomputes the digest of the data it changed.
            let mut r = r.clone();
            if r.11 == 2 {
                r.12 = Some(sha256_hex(r.8.as_bytes()));
            }
            let hash = entry_hash(&prev, &r);
            diesel::update(audit_log::table.filter(audit_log::seq.eq(r.0)))
                .set((
                    audit_log::prev_hash.eq(&prev),
                    audit_log::hash.eq(&hash),
                    audit_log::data_digest.eq(&r.12),
                ))
                .execute(c)
                .expect("rehash");
            prev = hash;
        }
    });
}

/// The chain alone cannot show that its newest entries were cut off: the shorter chain
/// verifies, by the service and by a recomputation from the rows. A signed checkpoint
/// held outside the database (here a file, in production the log store or a monitoring
/// job) names the entry the chain must still hold, and `audit verify --checkpoint`
/// finds it gone.
#[test]
fn truncating_the_audit_tail_is_caught_against_a_checkpoint_held_outside() {
    let s = setup();
    let title = "Sista aktiviteten";
    let last = log_activity(&s, title);
    let cp = take_checkpoint(&s.app);
    let before = audit_rows(&s.app);
    let head = recompute_chain(&before).expect("intact before");
    assert_eq!(cp["seq"].as_i64(), Some(before.len() as i64));
    assert_eq!(cp["hash"].as_str(), Some(head.as_str()));
    let checkpoint_line = cp.to_string();
    let (ok, out) = verify_against(&s.app, &checkpoint_line);
    assert!(ok, "{out}");
    assert!(out.contains("1 checkpoint(s) hold"), "{out}");

    // Someone with database access cuts off the newest entries, from the last activity.
    let cut = before
        .iter()
        .find(|r| r.6 == last)
        .expect("the activity's entry")
        .0;
    tamper(&s.app, |c| {
        let n = diesel::delete(audit_log::table.filter(audit_log::seq.ge(cut)))
            .execute(c)
            .expect("truncate");
        assert_eq!(n, before.len() - cut as usize + 1);
    });
    // The chain alone still verifies, by the service and recomputed here.
    let (v, ok, out) = service_verdict(&s.app);
    assert!(v.intact && ok, "{v:?} {out}");
    recompute_chain(&audit_rows(&s.app)).expect("the rows alone recompute");
    // Against the checkpoint it does not.
    let (ok, out) = verify_against(&s.app, &checkpoint_line);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "the chain has no entry {} (it ends at entry {}): entries were cut off",
            before.len(),
            cut - 1
        )),
        "{out}"
    );

    // The service carries on and the next entries take over the freed numbers: the
    // checkpoint's entry exists again, but it is not the one it vouches for.
    log_activity(&s, "Efter avskärningen");
    log_activity(&s, "Och en till");
    assert!(audit_rows(&s.app).len() >= before.len());
    let (v, ok, out) = service_verdict(&s.app);
    assert!(v.intact && ok, "{v:?} {out}");
    let (ok, out) = verify_against(&s.app, &checkpoint_line);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "entry {} is not the entry the checkpoint vouches for",
            before.len()
        )),
        "{out}"
    );
}

/// Editing an old entry and rehashing every entry after it leaves a chain that verifies
/// link by link; a checkpoint taken before the edit catches it, and a checkpoint taken
/// before the edited entry does not blame the entries it vouches for.
#[test]
fn rewriting_and_rehashing_the_chain_is_caught_against_a_checkpoint() {
    let (s, rows) = audited();
    let early = take_checkpoint(&s.app);
    log_activity(&s, "Senare aktivitet");
    let late = take_checkpoint(&s.app);
    let target = rows
        .iter()
        // The update of "Etikseminarium" (entries hold no titles since plan step 2).
        .find(|r| r.5 == "activity" && r.4 == "updated")
        .expect("an entry to rewrite")
        .0;
    assert!(early["seq"].as_i64().expect("seq") >= target);
    tamper(&s.app, |c| {
        diesel::update(audit_log::table.filter(audit_log::seq.eq(target)))
            .set(audit_log::data.eq("{\"title\":\"Något annat\"}"))
            .execute(c)
            .expect("rewrite");
    });
    rehash_from(&s.app, target);
    let (v, ok, out) = service_verdict(&s.app);
    assert!(
        v.intact && ok,
        "the rehashed chain verifies link by link: {v:?} {out}"
    );
    recompute_chain(&audit_rows(&s.app)).expect("and recomputes");

    let both = format!("{early}\n{late}\n");
    let (ok, out) = verify_against(&s.app, &both);
    assert!(!ok, "{out}");
    for cp in [&early, &late] {
        assert!(
            out.contains(&format!(
                "checkpoint of entry {} ({}): FAILS: entry {} is not the entry",
                cp["seq"],
                cp["at"].as_str().expect("at"),
                cp["seq"]
            )),
            "{out}"
        );
    }
    assert!(out.contains("does not hold 2 of 2 checkpoint(s)"), "{out}");
}

/// A checkpoint is only as good as its signature: one whose number was changed, or
/// signed by a key the service never had, proves nothing and says so; a file with no
/// checkpoint in it is an error, not a pass.
#[test]
fn a_forged_or_missing_checkpoint_is_refused() {
    let s = setup();
    let cp = take_checkpoint(&s.app);
    let mut moved = cp.clone();
    moved["seq"] = json!(1);
    let (ok, out) = verify_against(&s.app, &moved.to_string());
    assert!(!ok, "{out}");
    assert!(
        out.contains("the signature does not match: the checkpoint is not authentic"),
        "{out}"
    );
    let mut stranger = cp.clone();
    stranger["key_id"] = json!("0000000000000000");
    let (ok, out) = verify_against(&s.app, &stranger.to_string());
    assert!(!ok, "{out}");
    assert!(
        out.contains("signed with key 0000000000000000, which is not one of this service's keys"),
        "{out}"
    );
    let (ok, out) = verify_against(&s.app, "nothing to see here\n");
    assert!(!ok, "{out}");
    assert!(
        out.contains("no audit checkpoint found in the file"),
        "{out}"
    );
}

/// The running server logs a signed checkpoint once the chain has grown, at its
/// housekeeping round: the line an operator's log store keeps is accepted as it is by
/// `audit verify --checkpoint`, and it holds.
#[test]
fn the_server_logs_checkpoints_that_audit_verify_accepts() {
    crate::support::log::capture();
    let s = setup_with(|c| {
        c.housekeeping_interval = std::time::Duration::from_millis(50);
    });
    let app = &s.app;
    let head = audit_rows(app).last().expect("entries").0;
    let needle = format!("{{\"type\":\"eportfolio-audit-checkpoint\",\"seq\":{head},");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let line = loop {
        let text = crate::support::log::text();
        // Servers of other tests log too: this one's chain is the one ending at `head`
        // whose hash matches.
        let hash = audit_rows(app).last().expect("entries").10.clone();
        if let Some(l) = text.lines().find(|l| {
            l.contains("audit_checkpoint") && l.contains(&needle) && l.contains(hash.as_str())
        }) {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint of entry {head} logged"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let (ok, out) = verify_against(app, &format!("unrelated line\n{line}\n"));
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("checkpoint of entry {head}")),
        "{out}"
    );
    assert!(out.contains("1 checkpoint(s) hold"), "{out}");
}
