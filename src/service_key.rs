//! The service's own Ed25519 key pair: made at the first start, rotated by an
//! administrator, its private half sealed under the master key in the shared database
//! (so every node signs with the same key). Dossiers, transfer bundles and audit
//! checkpoints are signed with it; it sits below the features so that the audit log
//! (a checkpoint before a redaction) can use it without naming the dossier.

use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::SigningKeyId;
use crate::schema::service_keys;
use crate::secrets::Keyring;

pub const ALGORITHM: &str = "Ed25519";
const PURPOSE: &str = "dossier";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

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
    hex::encode(Sha256::digest(public))[..16].to_string()
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
