//! Secrets: password hashing (argon2id), opaque tokens (stored as SHA-256), recovery
//! codes, e-mailed codes and the JWT access token.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Argon2Params;
use crate::error::AppError;
use crate::ids::{SessionId, UserId};

pub fn argon2(params: Argon2Params) -> Result<Argon2<'static>, AppError> {
    let p = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| AppError::Config(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

pub fn hash_password(params: Argon2Params, password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(params)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hashing: {e}")))
}

/// Verifies against the stored hash; the hash carries its own parameters, so raising
/// the configured cost does not lock out existing users.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the account does not exist, so that the response time
/// does not tell whether an e-mail address has an account.
pub fn dummy_hash(params: Argon2Params) -> String {
    // Of a random password nobody knows: a fixed one would be a password, known from the
    // source, of every account without one (an undo leaves the account so).
    hash_password(params, &random_token()).unwrap_or_default()
}

/// 256 random bits, URL-safe; sent to the client once and stored only as a hash.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256_hex(value: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(value.as_ref()))
}

const CODE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Recovery code like `k7pq-x3mz-a9tb-e2wr`: 16 characters from a 31-letter alphabet
/// (about 79 bits), so a plain SHA-256 is a sufficient hash.
pub fn recovery_code() -> String {
    let mut rng = OsRng;
    let chars: Vec<char> = (0..16)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Recovery codes are compared without case, spaces or dashes: people type them.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub fn six_digit_code() -> String {
    format!("{:06}", OsRng.gen_range(0..1_000_000u32))
}

/// Claims of the access token. `sid` ties it to a session so logout and reuse
/// detection take effect at once, not when the token expires.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

pub const ISSUER: &str = "eportfolio";

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    pub fn from_secret(secret: &[u8]) -> JwtKeys {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    pub fn issue(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<String, AppError> {
        let claims = AccessClaims {
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            iat: now.timestamp(),
            exp: now.timestamp() + ttl.as_secs() as i64,
            iss: ISSUER.into(),
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(format!("jwt: {e}")))
    }

    /// Checks signature and issuer; expiry is checked against the injected clock by the
    /// caller, not against the system time inside jsonwebtoken.
    pub fn decode(&self, token: &str) -> Option<AccessClaims> {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[ISSUER]);
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// The signing secret: from config, else generated once and kept in the data directory
/// so that restarts do not log everybody out.
pub fn load_or_create_secret(
    configured: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<Vec<u8>, AppError> {
    if let Some(s) = configured {
        if s.len() < 32 {
            return Err(AppError::Config(
                "JWT_SECRET must be at least 32 characters".into(),
            ));
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    if path.exists() {
        crate::storage::check_private_file(&path)?;
    }
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 32 {
            return Ok(existing.as_bytes().to_vec());
        }
    }
    crate::storage::create_private_dir(data_dir)?;
    let secret = random_token();
    crate::storage::create_private_file(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, secret.as_bytes()))
        .map_err(|e| AppError::Config(format!("cannot write {}: {e}", path.display())))?;
    // A file left over with wider permissions keeps them through the truncation.
    crate::storage::set_mode(&path, 0o600)?;
    Ok(secret.into_bytes())
}
