//! Signing a delivery: Standard Webhooks (https://www.standardwebhooks.com), so that its
//! libraries (`standardwebhooks` on PyPI, npm, crates.io, ...) verify deliveries, and
//! the older `Eportfolio-Signature` for receivers written before it.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::DeliveryId;

fn mac(key: &[u8], content: &str) -> Option<Vec<u8>> {
    // HMAC accepts keys of any length; `None` cannot happen.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(content.as_bytes());
    Some(mac.finalize().into_bytes().to_vec())
}

/// A new subscription secret: `whsec_` and 32 random bytes in standard base64, the
/// form Standard Webhooks libraries take.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The HMAC key of a secret: the bytes that `whsec_<base64>` encodes. A secret made
/// before Standard Webhooks (`whsec_` and URL-safe base64) is not standard base64: its
/// text is the key, as for `Eportfolio-Signature` (rotating it gives a standard one).
fn key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
pub fn standard_signature(secret: &str, msg_id: &DeliveryId, timestamp: i64, body: &str) -> String {
    let sig = mac(&key(secret), &format!("{msg_id}.{timestamp}.{body}")).unwrap_or_default();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(sig)
    )
}

/// `Eportfolio-Signature`: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>`,
/// keyed with the secret's text.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let sig = mac(secret.as_bytes(), &format!("{timestamp}.{body}")).unwrap_or_default();
    format!("t={timestamp},v1={}", hex::encode(sig))
}
