//! The service's signature on dossiers: Ed25519 over a canonical JSON form, so anyone
//! holding a dossier (JSON or PDF) and the published public key can tell that it is
//! authentic and unchanged, also offline.
//!
//! - JSON: `{"dossier": {...}, "signature": {...}}`; the signature covers the canonical
//!   form of `dossier` (object keys sorted, no whitespace).
//! - PDF: after `%%EOF` one comment line `%eportfolio-signature <base64url(manifest)>`;
//!   the manifest names the dossier, its content hash, the SHA-256 of every byte before
//!   that line and the records covered, and is itself signed. PDF readers ignore it.

use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::crypto::sha256_hex;
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::SigningKeyId;
use crate::schema::service_keys;
use crate::secrets::Keyring;

pub const ALGORITHM: &str = "Ed25519";
const PURPOSE: &str = "dossier";
pub const PDF_MARKER: &[u8] = b"%eportfolio-signature ";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// JSON with object keys sorted and no insignificant whitespace (numbers and strings as
/// serde_json writes them), so the same content always gives the same bytes.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, k) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = map.get(k) {
                    write_canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, x) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A published verification key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicKey {
    #[schema(example = "3f2a9c0d5e6b7a81")]
    pub key_id: String,
    #[schema(example = "Ed25519")]
    pub algorithm: String,
    /// The raw 32-byte key, base64.
    pub public_key: String,
    /// The same key as SubjectPublicKeyInfo PEM, for `openssl pkeyutl -verify`.
    pub public_key_pem: String,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
    /// Retired keys sign nothing new but still verify what they signed.
    #[serde(default, with = "crate::clock::millis_opt")]
    pub retired_at: Option<DateTime<Utc>>,
}

/// A key's id: the first 16 hex digits of the SHA-256 of its raw bytes.
pub fn key_id(public: &[u8]) -> String {
    sha256_hex(public)[..16].to_string()
}

/// SubjectPublicKeyInfo for Ed25519 (RFC 8410): a fixed prefix and the key.
pub fn pem(public: &[u8; 32]) -> String {
    const PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(public);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        B64.encode(der)
    )
}

/// Reads a public key from PEM (SubjectPublicKeyInfo) or raw base64.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, AppError> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let bytes = B64
        .decode(body.trim())
        .map_err(|_| AppError::validation("public_key", "not base64 or PEM"))?;
    let raw: &[u8] = if bytes.len() == 44 {
        &bytes[12..]
    } else {
        &bytes
    };
    let arr: [u8; 32] = raw
        .try_into()
        .map_err(|_| AppError::validation("public_key", "not an Ed25519 public key"))?;
    VerifyingKey::from_bytes(&arr)
        .map_err(|_| AppError::validation("public_key", "not an Ed25519 public key"))
}

/// The current signing key, created at the first start. Every node of a multi-node
/// install reads the same key from the shared database, where the private half is
/// sealed under the master key (see `crate::secrets`).
pub fn ensure_key(
    conn: &mut DbConn,
    keys: &Keyring,
    now: DateTime<Utc>,
) -> Result<(SigningKeyId, SigningKey), AppError> {
    if let Some(found) = find_key(conn, keys)? {
        return Ok(found);
    }
    new_key(conn, keys, now)
}

/// Retires the current signing key (it keeps verifying what it signed, and stays
/// published) and makes a new one; returns the new key's id. Part of `keys rotate`: a
/// master key that may have leaked may have opened the signing key too.
pub fn rotate_key(
    conn: &mut DbConn,
    keys: &Keyring,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    diesel::update(
        service_keys::table
            .filter(service_keys::purpose.eq(PURPOSE))
            .filter(service_keys::retired_at.is_null()),
    )
    .set(service_keys::retired_at.eq(Some(to_db(now))))
    .execute(conn)?;
    Ok(new_key(conn, keys, now)?.0.into_inner())
}

fn new_key(
    conn: &mut DbConn,
    keys: &Keyring,
    now: DateTime<Utc>,
) -> Result<(SigningKeyId, SigningKey), AppError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key().to_bytes();
    let id = SigningKeyId::new(key_id(&public));
    diesel::insert_into(service_keys::table)
        .values((
            service_keys::id.eq(&id),
            service_keys::purpose.eq(PURPOSE),
            service_keys::algorithm.eq(ALGORITHM),
            service_keys::public_key.eq(B64.encode(public)),
            service_keys::private_key
                .eq(keys.seal(&crate::secrets::signing_key_aad(&id), &B64.encode(seed))?),
            service_keys::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok((id, key))
}

/// The current signing key (made at start-up by [`ensure_key`]).
pub fn current_key(
    conn: &mut DbConn,
    keys: &Keyring,
) -> Result<(SigningKeyId, SigningKey), AppError> {
    find_key(conn, keys)?.ok_or_else(|| AppError::Internal("no dossier signing key".into()))
}

fn find_key(
    conn: &mut DbConn,
    keys: &Keyring,
) -> Result<Option<(SigningKeyId, SigningKey)>, AppError> {
    let found: Option<(SigningKeyId, String)> = service_keys::table
        .filter(service_keys::purpose.eq(PURPOSE))
        .filter(service_keys::retired_at.is_null())
        .order((service_keys::created_at.desc(), service_keys::id))
        .select((service_keys::id, service_keys::private_key))
        .first(conn)
        .optional()?;
    if let Some((id, sealed)) = found {
        let private = keys.open(&crate::secrets::signing_key_aad(&id), &sealed)?;
        let seed: [u8; 32] = B64
            .decode(private)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| AppError::Internal("stored signing key is damaged".into()))?;
        return Ok(Some((id, SigningKey::from_bytes(&seed))));
    }
    Ok(None)
}

pub fn public_keys(conn: &mut DbConn) -> Result<Vec<PublicKey>, AppError> {
    /// A dossier key as stored (its public half; the seed is not read here).
    #[derive(Queryable, Selectable)]
    #[diesel(table_name = service_keys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
    struct Row {
        id: String,
        algorithm: String,
        public_key: String,
        created_at: chrono::NaiveDateTime,
        retired_at: Option<chrono::NaiveDateTime>,
    }
    let rows: Vec<Row> = service_keys::table
        .filter(service_keys::purpose.eq(PURPOSE))
        .order(service_keys::created_at)
        .select(Row::as_select())
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            // A stored key that is not 32 bytes of base64 is an error, not a zero key.
            let raw: [u8; 32] = B64
                .decode(&r.public_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    AppError::internal(format!(
                        "dossier key {}: stored public key unreadable",
                        r.id
                    ))
                })?;
            Ok(PublicKey {
                key_id: r.id,
                algorithm: r.algorithm,
                public_key: r.public_key,
                public_key_pem: pem(&raw),
                created_at: from_db(r.created_at),
                retired_at: r.retired_at.map(from_db),
            })
        })
        .collect()
}

/// The signature block of a JSON dossier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DossierSignature {
    #[schema(example = "Ed25519")]
    pub algorithm: String,
    pub key_id: String,
    /// `sha256:` and the hex digest of the canonical dossier.
    pub content_hash: String,
    /// Base64 signature over the canonical dossier's bytes.
    pub value: String,
}

/// A dossier as issued in JSON.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignedDossier {
    /// The content; see the example of a real dossier in the README.
    #[schema(value_type = Object)]
    pub dossier: Value,
    pub signature: DossierSignature,
}

pub fn sign_dossier(key_id: &SigningKeyId, key: &SigningKey, dossier: &Value) -> DossierSignature {
    let bytes = canonical(dossier).into_bytes();
    DossierSignature {
        algorithm: ALGORITHM.into(),
        key_id: key_id.to_string(),
        content_hash: format!("sha256:{}", sha256_hex(&bytes)),
        value: B64.encode(key.sign(&bytes).to_bytes()),
    }
}

/// Appends the signed manifest to a finished PDF.
pub fn seal_pdf(
    key_id: &SigningKeyId,
    key: &SigningKey,
    mut pdf: Vec<u8>,
    dossier: &Value,
    content_hash: &str,
) -> Vec<u8> {
    if !pdf.ends_with(b"\n") {
        pdf.push(b'\n');
    }
    let mut manifest = json!({
        "format": "eportfolio-dossier-pdf/1",
        "algorithm": ALGORITHM,
        "key_id": key_id,
        "dossier_id": dossier.get("dossier_id"),
        "enrolment_id": dossier.pointer("/enrolment/id"),
        "trainee": dossier.get("trainee"),
        "generated_at": dossier.get("generated_at"),
        "content_hash": content_hash,
        "pdf_sha256": sha256_hex(&pdf),
        "records": dossier.get("records"),
    });
    let signature = key.sign(canonical(&manifest).as_bytes());
    if let Some(m) = manifest.as_object_mut() {
        m.insert(
            "signature".into(),
            Value::String(B64.encode(signature.to_bytes())),
        );
    }
    pdf.extend_from_slice(PDF_MARKER);
    pdf.extend_from_slice(B64URL.encode(canonical(&manifest)).as_bytes());
    pdf.push(b'\n');
    pdf
}

/// The result of checking a dossier file.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Verification {
    /// Signed by this service's key and unchanged since.
    pub authentic: bool,
    /// `json` or `pdf`.
    pub format: String,
    pub key_id: Option<String>,
    pub content_hash: Option<String>,
    pub dossier_id: Option<String>,
    pub enrolment_id: Option<String>,
    pub trainee: Option<Value>,
    pub generated_at: Option<String>,
    /// The records the dossier covers: type, id and version.
    pub records: Vec<Value>,
    /// Why it is not authentic.
    pub reason: Option<String>,
}

impl Verification {
    fn fail(format: &str, reason: &str) -> Verification {
        Verification {
            authentic: false,
            format: format.into(),
            key_id: None,
            content_hash: None,
            dossier_id: None,
            enrolment_id: None,
            trainee: None,
            generated_at: None,
            records: Vec::new(),
            reason: Some(reason.into()),
        }
    }
}

fn key_for<'a>(keys: &'a [(String, VerifyingKey)], id: &str) -> Option<&'a VerifyingKey> {
    keys.iter().find(|(k, _)| k == id).map(|(_, v)| v)
}

fn signature_of(text: &str) -> Option<Signature> {
    let bytes: [u8; 64] = B64.decode(text).ok()?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

/// Checks a dossier file, JSON or PDF, against the given keys.
pub fn verify(bytes: &[u8], keys: &[(String, VerifyingKey)]) -> Verification {
    if bytes.starts_with(b"%PDF-") {
        verify_pdf(bytes, keys)
    } else {
        verify_json(bytes, keys)
    }
}

fn verify_json(bytes: &[u8], keys: &[(String, VerifyingKey)]) -> Verification {
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
        return Verification::fail("json", "not JSON or PDF");
    };
    let (Some(dossier), Some(sig)) = (doc.get("dossier"), doc.get("signature")) else {
        return Verification::fail("json", "no dossier and signature in this document");
    };
    let Ok(sig) = serde_json::from_value::<DossierSignature>(sig.clone()) else {
        return Verification::fail("json", "the signature block is malformed");
    };
    let mut v = described(dossier, "json");
    v.key_id = Some(sig.key_id.clone());
    let canonical = canonical(dossier);
    let hash = format!("sha256:{}", sha256_hex(canonical.as_bytes()));
    v.content_hash = Some(hash.clone());
    if sig.algorithm != ALGORITHM {
        v.reason = Some(format!("unknown algorithm {}", sig.algorithm));
        return v;
    }
    let Some(key) = key_for(keys, &sig.key_id) else {
        v.reason = Some("signed with a key this service does not know".into());
        return v;
    };
    if hash != sig.content_hash {
        v.reason = Some("the content was changed after signing".into());
        return v;
    }
    match signature_of(&sig.value) {
        Some(s) if key.verify(canonical.as_bytes(), &s).is_ok() => {
            v.authentic = true;
            v.reason = None;
        }
        _ => v.reason = Some("the signature does not match".into()),
    }
    v
}

fn described(dossier: &Value, format: &str) -> Verification {
    let text = |p: &str| {
        dossier
            .pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Verification {
        authentic: false,
        format: format.into(),
        key_id: None,
        content_hash: None,
        dossier_id: text("/dossier_id"),
        enrolment_id: text("/enrolment_id").or_else(|| text("/enrolment/id")),
        trainee: dossier.get("trainee").cloned(),
        generated_at: text("/generated_at"),
        records: dossier
            .get("records")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        reason: None,
    }
}

fn verify_pdf(bytes: &[u8], keys: &[(String, VerifyingKey)]) -> Verification {
    // The manifest line is the last one starting with the marker.
    let Some(at) = bytes
        .windows(PDF_MARKER.len())
        .rposition(|w| w == PDF_MARKER)
    else {
        return Verification::fail("pdf", "this PDF carries no signature of this service");
    };
    let (body, rest) = bytes.split_at(at);
    let line = &rest[PDF_MARKER.len()..];
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let Some(mut manifest) = B64URL
        .decode(line)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return Verification::fail("pdf", "the signature line is damaged");
    };
    let signature = manifest
        .as_object_mut()
        .and_then(|m| m.remove("signature"))
        .and_then(|s| s.as_str().map(str::to_string));
    let mut v = described(&manifest, "pdf");
    let text = |p: &str| {
        manifest
            .pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    v.key_id = text("/key_id");
    v.content_hash = text("/content_hash");
    let Some(key) = v.key_id.as_deref().and_then(|k| key_for(keys, k)) else {
        v.reason = Some("signed with a key this service does not know".into());
        return v;
    };
    let Some(sig) = signature.as_deref().and_then(signature_of) else {
        v.reason = Some("the signature is missing or malformed".into());
        return v;
    };
    if key.verify(canonical(&manifest).as_bytes(), &sig).is_err() {
        v.reason = Some("the signature does not match".into());
        return v;
    }
    if text("/pdf_sha256").as_deref() != Some(sha256_hex(body).as_str()) {
        v.reason = Some("the PDF was changed after signing".into());
        return v;
    }
    v.authentic = true;
    v
}

/// Keys from the database, as the verifier wants them.
pub fn verifying_keys(conn: &mut DbConn) -> Result<Vec<(String, VerifyingKey)>, AppError> {
    Ok(public_keys(conn)?
        .into_iter()
        .filter_map(|k| parse_public_key(&k.public_key).ok().map(|v| (k.key_id, v)))
        .collect())
}

#[cfg(test)]
#[path = "signing_tests.rs"]
mod tests;
