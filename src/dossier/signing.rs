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
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::crypto::sha256_hex;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::SigningKeyId;

/// The signature algorithm: the one of the service key that signs (one definition).
pub use crate::service_key::ALGORITHM;
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
pub use crate::service_key::{
    current_key, ensure_key, key_id, parse_public_key, pem, public_keys, rotate_key, PublicKey,
};

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
