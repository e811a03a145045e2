//! The data directory's keys (master keys, JWT secret) in a backup, sealed with a
//! passphrase: Argon2id derives the key, XChaCha20-Poly1305 seals the files. Whoever
//! holds the archive but not the passphrase learns nothing of them; a wrong passphrase
//! or a changed byte fails the tag.

use std::collections::BTreeMap;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The files of the data directory that hold keys.
pub const KEY_FILES: &[&str] = &["master-keys", "jwt-secret"];

/// The variable that gives the passphrase (never a command-line argument: those show
/// in the process list).
pub const PASSPHRASE_VAR: &str = "EPORTFOLIO_BACKUP_PASSPHRASE";

const MIN_PASSPHRASE: usize = 12;

/// Argon2id parameters: 64 MiB, 3 passes (OWASP's recommendation for Argon2id).
const MEMORY_KIB: u32 = 65536;
const PASSES: u32 = 3;

#[derive(Serialize, Deserialize)]
pub struct Sealed {
    kdf: String,
    memory_kib: u32,
    passes: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The passphrase from the environment, checked for length.
pub fn passphrase() -> Result<Option<String>, AppError> {
    match std::env::var(PASSPHRASE_VAR) {
        Ok(p) if p.chars().count() >= MIN_PASSPHRASE => Ok(Some(p)),
        Ok(p) if p.is_empty() => Ok(None),
        Ok(_) => Err(AppError::Config(format!(
            "{PASSPHRASE_VAR} must be at least {MIN_PASSPHRASE} characters"
        ))),
        Err(_) => Ok(None),
    }
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    memory_kib: u32,
    passes: u32,
) -> Result<[u8; 32], AppError> {
    let params = argon2::Params::new(memory_kib, passes, 1, Some(32))
        .map_err(|e| AppError::Config(format!("backup key parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| AppError::Config(format!("backup key: {e}")))?;
    Ok(key)
}

/// Seals the files (name -> content) under the passphrase.
pub fn seal(files: &BTreeMap<String, Vec<u8>>, passphrase: &str) -> Result<Vec<u8>, AppError> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let key = derive(passphrase, &salt, MEMORY_KIB, PASSES)?;
    let plain: BTreeMap<&String, String> =
        files.iter().map(|(k, v)| (k, b64().encode(v))).collect();
    let plain = serde_json::to_vec(&plain).map_err(AppError::internal)?;
    let ciphertext = XChaCha20Poly1305::new((&key).into())
        .encrypt(&XNonce::from(nonce), plain.as_slice())
        .map_err(|_| AppError::internal("sealing the keys failed"))?;
    serde_json::to_vec_pretty(&Sealed {
        kdf: "argon2id".into(),
        memory_kib: MEMORY_KIB,
        passes: PASSES,
        salt: b64().encode(salt),
        nonce: b64().encode(nonce),
        ciphertext: b64().encode(ciphertext),
    })
    .map_err(AppError::internal)
}

/// Opens sealed keys; a wrong passphrase (or a changed byte) is refused.
pub fn open(sealed: &[u8], passphrase: &str) -> Result<BTreeMap<String, Vec<u8>>, AppError> {
    let damaged =
        |what: &str| AppError::Config(format!("the backup's sealed keys are damaged ({what})"));
    let s: Sealed = serde_json::from_slice(sealed).map_err(|_| damaged("not JSON"))?;
    if s.kdf != "argon2id" || s.memory_kib > 4 * 1024 * 1024 || s.passes > 100 {
        return Err(damaged("unknown key derivation"));
    }
    let salt = b64().decode(&s.salt).map_err(|_| damaged("salt"))?;
    let nonce = b64().decode(&s.nonce).map_err(|_| damaged("nonce"))?;
    let ciphertext = b64()
        .decode(&s.ciphertext)
        .map_err(|_| damaged("ciphertext"))?;
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| damaged("nonce"))?;
    let key = derive(passphrase, &salt, s.memory_kib, s.passes)?;
    let plain = XChaCha20Poly1305::new((&key).into())
        .decrypt(&XNonce::from(nonce), ciphertext.as_slice())
        .map_err(|_| {
            AppError::Config(format!(
                "the keys in the backup do not open with this passphrase ({PASSPHRASE_VAR})"
            ))
        })?;
    let files: BTreeMap<String, String> =
        serde_json::from_slice(&plain).map_err(|_| damaged("contents"))?;
    files
        .into_iter()
        .map(|(k, v)| Ok((k, b64().decode(v).map_err(|_| damaged("contents"))?)))
        .collect()
}
