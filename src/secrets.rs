//! Secrets at rest: TOTP secrets, webhook signing secrets, the dossier signing key,
//! personal identity numbers and
//! the bodies of mail waiting to be sent (sign-in links, codes) are stored sealed (XChaCha20-Poly1305) under a master key that never enters the database,
//! so a copy of the database or of a backup alone gives none of them away.
//!
//! - The master key comes from `EPORTFOLIO_MASTER_KEY` (32 bytes, base64 or hex; older
//!   keys still to be read in `EPORTFOLIO_RETIRED_MASTER_KEYS`, comma-separated), or else
//!   from the file `master-keys` in the data directory, created 0600 at the first start
//!   (one `id base64` line per key, the last one current).
//! - A sealed value reads `sealed:v1:<key id>:<base64(nonce || ciphertext)>`. The key id
//!   names the master key, so `eportfolio keys rotate` can find what is still sealed
//!   under an older one. The associated data binds a value to what it is (and for TOTP to
//!   whose it is): a sealed secret copied into another row does not open there.
//! - Every master key that sealed something is registered in `sealing_keys` with a check
//!   value; at start a key that is missing or does not open its check value stops the
//!   server with a message saying which, instead of failing later at every login.
//! - Plaintext left from before is sealed at start ([`seal_everything`]) rather than read
//!   as legacy plaintext: reading plaintext would let anyone who can write one database
//!   row plant a TOTP secret they know, and lazy rewriting would leave the secrets of
//!   people who never sign in in plaintext (and in every backup) for good.
//!
//! The keyring is passed to whatever seals or opens: a request's domain code takes it
//! from its context (`ctx.keyring()`, the pool's keyring), workers and commands from the
//! pool they opened (`secrets::required(pool.keyring())`). Nothing keeps an "active"
//! keyring on a thread: one process may hold several pools with different keys (the
//! test suite starts many servers, and `eportfolio keys rotate` opens the database
//! with old and new keys), and which one a piece of work uses is visible in its call.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rand::RngCore;

use crate::clock::to_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{MailStatus, SigningKeyId, UserId};
use crate::schema::{
    mail_outbox, personal_identities, sealing_keys, service_keys, totp_credentials,
    webhook_subscriptions,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const PREFIX: &str = "sealed:v1:";
const KEY_FILE: &str = "master-keys";
/// What the check value of a key seals.
const CHECK: &str = "eportfolio master key check";
const CHECK_AAD: &str = "sealing_keys.check_value";

/// Associated data of a webhook subscription's secret.
pub const WEBHOOK_AAD: &str = "webhook_subscriptions.secret";

/// Associated data of a user's TOTP secret (pending or active: confirming moves the
/// sealed value from one column to the other).
pub fn totp_aad(user_id: &UserId) -> String {
    format!("totp_credentials.secret:{user_id}")
}

/// Associated data of a queued mail's body (it holds sign-in links and codes until it is
/// sent): a sealed body opens only in its own row.
pub fn outbox_body_aad(id: &str) -> String {
    format!("mail_outbox.body:{id}")
}

/// Associated data of a dossier signing key.
pub fn signing_key_aad(key_id: &SigningKeyId) -> String {
    format!("service_keys.private_key:{key_id}")
}

/// Associated data of a person's personnummer or samordningsnummer (issue 15): a sealed
/// number opens only in its own row.
pub fn personal_number_aad(user_id: &UserId) -> String {
    format!("personal_identities.number:{user_id}")
}

/// What the keyed hash beside a sealed personal number is for (its subkey derives from
/// this). The hash is keyed by the current master key, so rotation recomputes it.
pub const PERSONAL_NUMBER_MAC: &str = "personal_identities.number_mac";

/// Where the keys come from.
#[derive(Debug, Clone)]
enum Source {
    Env,
    File(PathBuf),
}

#[derive(Clone)]
struct Keys {
    current: String,
    by_id: HashMap<String, [u8; 32]>,
}

/// The master keys: the current one seals, every one opens.
pub struct Keyring {
    keys: RwLock<Keys>,
    source: Source,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("Keyring")
            .field("current", &self.current_id())
            .field("source", &self.source)
            .finish()
    }
}

/// A key's id: 16 hex digits of a hash of it (stable, so the same key from the
/// environment always has the same id, and it reveals nothing usable about the key).
fn key_id(key: &[u8; 32]) -> String {
    let mut input = b"eportfolio master key id:".to_vec();
    input.extend_from_slice(key);
    // sha2 directly rather than `auth::crypto::sha256_hex`: secrets sits below the
    // features and must not import one.
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(input))[..16].to_string()
}

fn parse_key(text: &str, what: &str) -> Result<[u8; 32], AppError> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        B64.decode(text).ok()
    };
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            AppError::Config(format!(
                "{what}: a master key is 32 random bytes, base64 or hex \
                 (e.g. `openssl rand -base64 32`)"
            ))
        })
}

fn new_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

fn read_file(path: &Path) -> Result<Option<Keys>, AppError> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(AppError::Config(format!(
                "{} is readable by other users (mode {mode:o}); refusing to start: \
                 `chmod 600` it (and consider the key exposed: `eportfolio keys rotate`)",
                path.display()
            )));
        }
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AppError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let mut by_id = HashMap::new();
    let mut current = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let key = parse_key(
            line.rsplit(' ').next().unwrap_or(line),
            &path.display().to_string(),
        )?;
        let id = key_id(&key);
        by_id.insert(id.clone(), key);
        current = Some(id);
    }
    Ok(current.map(|current| Keys { current, by_id }))
}

/// Appends a key to the key file (created 0600, never readable by others).
fn append_key(path: &Path, key: &[u8; 32]) -> Result<(), AppError> {
    let fail =
        |e: std::io::Error| AppError::Config(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    writeln!(file, "{} {}", key_id(key), B64.encode(key)).map_err(fail)?;
    file.sync_all().map_err(fail)
}

impl Keyring {
    /// The keys from `EPORTFOLIO_MASTER_KEY`, or from the data directory's key file
    /// (created with a new key if there is none).
    pub fn load(data_dir: &Path) -> Result<Keyring, AppError> {
        let env = std::env::var("EPORTFOLIO_MASTER_KEY").ok();
        let retired = std::env::var("EPORTFOLIO_RETIRED_MASTER_KEYS").ok();
        Keyring::from_sources(env.as_deref(), retired.as_deref(), data_dir)
    }

    fn from_sources(
        env: Option<&str>,
        retired: Option<&str>,
        data_dir: &Path,
    ) -> Result<Keyring, AppError> {
        if let Some(text) = env.filter(|t| !t.trim().is_empty()) {
            let key = parse_key(text, "EPORTFOLIO_MASTER_KEY")?;
            let current = key_id(&key);
            let mut by_id = HashMap::from([(current.clone(), key)]);
            for old in retired
                .unwrap_or("")
                .split(',')
                .filter(|t| !t.trim().is_empty())
            {
                let key = parse_key(old, "EPORTFOLIO_RETIRED_MASTER_KEYS")?;
                by_id.entry(key_id(&key)).or_insert(key);
            }
            return Ok(Keyring {
                keys: RwLock::new(Keys { current, by_id }),
                source: Source::Env,
            });
        }
        let path = data_dir.join(KEY_FILE);
        let keys = match read_file(&path)? {
            Some(keys) => keys,
            None => {
                append_key(&path, &new_key())?;
                read_file(&path)?
                    .ok_or_else(|| AppError::Config(format!("{} holds no key", path.display())))?
            }
        };
        Ok(Keyring {
            keys: RwLock::new(keys),
            source: Source::File(path),
        })
    }

    /// A keyring of one given key (tools and tests).
    pub fn from_key(key: [u8; 32]) -> Keyring {
        let current = key_id(&key);
        Keyring {
            keys: RwLock::new(Keys {
                by_id: HashMap::from([(current.clone(), key)]),
                current,
            }),
            source: Source::Env,
        }
    }

    fn snapshot(&self) -> Keys {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn current_id(&self) -> String {
        self.snapshot().current
    }

    /// Re-reads the key file: `keys rotate`, run beside a server, adds a key there.
    fn reload(&self) -> Result<(), AppError> {
        let Source::File(path) = &self.source else {
            return Ok(());
        };
        if let Some(fresh) = read_file(path)? {
            if let Ok(mut keys) = self.keys.write() {
                *keys = fresh;
            }
        }
        Ok(())
    }

    /// Makes a new current key (in the key file; from the environment the operator sets
    /// `EPORTFOLIO_MASTER_KEY` to the new key and lists the old one as retired instead).
    pub fn add_key(&self) -> Result<String, AppError> {
        let Source::File(path) = &self.source else {
            return Err(AppError::Config(
                "the master key comes from EPORTFOLIO_MASTER_KEY: set it to a new key, list \
                 the old one in EPORTFOLIO_RETIRED_MASTER_KEYS and run `keys rotate` again"
                    .into(),
            ));
        };
        append_key(path, &new_key())?;
        self.reload()?;
        Ok(self.current_id())
    }

    pub fn seal(&self, aad: &str, plaintext: &str) -> Result<String, AppError> {
        let keys = self.snapshot();
        let key = keys
            .by_id
            .get(&keys.current)
            .ok_or_else(|| AppError::internal("the current master key is missing"))?;
        let cipher = XChaCha20Poly1305::new(key.into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| AppError::internal("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", keys.current, B64.encode(out)))
    }

    /// A keyed hash (HMAC-SHA-256, hex) of `data`, under a key derived for `purpose` from
    /// the current master key: a copy of the database alone can neither compute nor test
    /// guesses against it. After `keys rotate` the same data hashes differently.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> Result<String, AppError> {
        use hmac::{Hmac, Mac};
        type HmacSha256 = Hmac<sha2::Sha256>;
        let keys = self.snapshot();
        let key = keys
            .by_id
            .get(&keys.current)
            .ok_or_else(|| AppError::internal("the current master key is missing"))?;
        // A subkey per purpose, so the master key itself only ever keys the AEAD and this
        // derivation.
        let mut derive =
            <HmacSha256 as Mac>::new_from_slice(key).map_err(|_| AppError::internal("mac key"))?;
        derive.update(b"eportfolio mac subkey: ");
        derive.update(purpose.as_bytes());
        let subkey = derive.finalize().into_bytes();
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&subkey)
            .map_err(|_| AppError::internal("mac key"))?;
        mac.update(data);
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    pub fn open(&self, aad: &str, stored: &str) -> Result<String, AppError> {
        let (id, data) = split(stored)
            .ok_or_else(|| AppError::internal("a secret in the database is not sealed"))?;
        let key =
            match self.snapshot().by_id.get(id) {
                Some(k) => *k,
                None => {
                    self.reload()?;
                    *self.snapshot().by_id.get(id).ok_or_else(|| {
                        AppError::internal(format!("master key {id} is not loaded"))
                    })?
                }
            };
        let bytes = B64
            .decode(data)
            .map_err(|_| AppError::internal("a sealed secret is damaged"))?;
        if bytes.len() < 24 {
            return Err(AppError::internal("a sealed secret is damaged"));
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce
            .try_into()
            .map_err(|_| AppError::internal("a sealed secret is damaged"))?;
        let plain = XChaCha20Poly1305::new((&key).into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| AppError::internal("a sealed secret does not open (wrong key or row)"))?;
        String::from_utf8(plain).map_err(|_| AppError::internal("a sealed secret is damaged"))
    }
}

/// The key id and data of a sealed value; None for anything else (plaintext).
fn split(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(PREFIX)?.split_once(':')
}

/// The id of the key that sealed `stored`, if it is sealed.
pub fn sealed_with(stored: &str) -> Option<&str> {
    split(stored).map(|(id, _)| id)
}

// ---- The keyring a piece of work uses ------------------------------------------------

/// The keyring of a pool (`DbPool::keyring`), or the error a seal or open without one
/// has always been: a pool opened without keys (a tool, a test) cannot touch secrets.
pub fn required(keyring: Option<&Arc<Keyring>>) -> Result<&Keyring, AppError> {
    keyring
        .map(|k| &**k)
        .ok_or_else(|| AppError::internal("no master key is loaded for this work"))
}

impl Keyring {
    /// A keyed hash under the master key the database is sealed under now, for hashes
    /// that are compared with stored ones (the personal number's uniqueness). A server
    /// started before `keys rotate` still holds the old key as its current one: it
    /// reloads its keys first (from the key file; a key from the environment needs the
    /// restart that rotation asks for anyway).
    pub fn mac_current(
        &self,
        conn: &mut DbConn,
        purpose: &str,
        data: &[u8],
    ) -> Result<String, AppError> {
        let registered: Vec<String> = sealing_keys::table.select(sealing_keys::id).load(conn)?;
        if !registered.is_empty() && !registered.contains(&self.current_id()) {
            self.reload()?;
        }
        self.mac(purpose, data)
    }
}

// ---- Start and rotation ---------------------------------------------------------------

/// Refuses a keyring that lacks a key the database was sealed with (or whose key does
/// not open its check value), then registers the current key.
pub fn check_keys(
    conn: &mut DbConn,
    keyring: &Keyring,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let registered: Vec<(String, String)> = sealing_keys::table
        .select((sealing_keys::id, sealing_keys::check_value))
        .load(conn)?;
    let keys = keyring.snapshot();
    let source = match &keyring.source {
        Source::Env => "EPORTFOLIO_MASTER_KEY / EPORTFOLIO_RETIRED_MASTER_KEYS".to_string(),
        Source::File(p) => p.display().to_string(),
    };
    for (id, check) in &registered {
        if !keys.by_id.contains_key(id) {
            return Err(AppError::Config(format!(
                "wrong master key: secrets in this database are sealed under master key {id}, \
                 which {source} does not hold (loaded: {}); refusing to start",
                keys.by_id.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if keyring.open(CHECK_AAD, check).ok().as_deref() != Some(CHECK) {
            return Err(AppError::Config(format!(
                "wrong master key: master key {id} from {source} does not open its check \
                 value; refusing to start"
            )));
        }
    }
    if !registered.iter().any(|(id, _)| *id == keys.current) {
        // Another node starting at the same time may register it first.
        let insert = diesel::insert_into(sealing_keys::table)
            .values((
                sealing_keys::id.eq(&keys.current),
                sealing_keys::check_value.eq(keyring.seal(CHECK_AAD, CHECK)?),
                sealing_keys::created_at.eq(to_db(now)),
            ))
            .on_conflict_do_nothing();
        crate::on_backend!(conn, |c| insert.execute(c))?;
    }
    Ok(())
}

/// Seals every secret that is plaintext (from before sealing) or sealed under a key other
/// than the current one, then forgets the registration of keys nothing is sealed under
/// any more. Returns how many values were (re)sealed. Idempotent; run at every start and
/// by `keys rotate`, in one transaction.
pub fn seal_everything(conn: &mut DbConn, keyring: &Keyring) -> Result<usize, AppError> {
    let current = keyring.current_id();
    let stale = |v: &str| sealed_with(v) != Some(current.as_str());
    let reseal = |aad: &str, v: &str| -> Result<String, AppError> {
        let plain = match sealed_with(v) {
            Some(_) => keyring.open(aad, v)?,
            None => v.to_string(),
        };
        keyring.seal(aad, &plain)
    };
    let mut count = 0;
    // Only rows with something to do are read: at an ordinary start, none.
    let sealed_now = format!("{PREFIX}{current}:%");

    #[derive(Queryable, Selectable)]
    #[diesel(table_name = totp_credentials, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
    struct Totp {
        user_id: UserId,
        secret: Option<String>,
        pending_secret: Option<String>,
    }
    let rows: Vec<Totp> = totp_credentials::table
        .filter(
            totp_credentials::secret
                .not_like(&sealed_now)
                .or(totp_credentials::pending_secret.not_like(&sealed_now)),
        )
        .select(Totp::as_select())
        .load(conn)?;
    for Totp {
        user_id,
        secret,
        pending_secret: pending,
    } in rows
    {
        let aad = totp_aad(&user_id);
        if let Some(s) = secret.filter(|s| stale(s)) {
            diesel::update(totp_credentials::table.find(&user_id))
                .set(totp_credentials::secret.eq(reseal(&aad, &s)?))
                .execute(conn)?;
            count += 1;
        }
        if let Some(s) = pending.filter(|s| stale(s)) {
            diesel::update(totp_credentials::table.find(&user_id))
                .set(totp_credentials::pending_secret.eq(reseal(&aad, &s)?))
                .execute(conn)?;
            count += 1;
        }
    }

    let rows: Vec<(String, String)> = webhook_subscriptions::table
        .filter(webhook_subscriptions::secret.not_like(&sealed_now))
        .select((webhook_subscriptions::id, webhook_subscriptions::secret))
        .load(conn)?;
    for (id, secret) in rows.into_iter().filter(|(_, s)| stale(s)) {
        diesel::update(webhook_subscriptions::table.find(&id))
            .set(webhook_subscriptions::secret.eq(reseal(WEBHOOK_AAD, &secret)?))
            .execute(conn)?;
        count += 1;
    }

    let rows: Vec<(SigningKeyId, String)> = service_keys::table
        .filter(service_keys::private_key.not_like(&sealed_now))
        .select((service_keys::id, service_keys::private_key))
        .load(conn)?;
    for (id, private) in rows.into_iter().filter(|(_, s)| stale(s)) {
        diesel::update(service_keys::table.find(&id))
            .set(service_keys::private_key.eq(reseal(&signing_key_aad(&id), &private)?))
            .execute(conn)?;
        count += 1;
    }

    // Mail waiting to be sent (sent and given-up mail keeps no body).
    let rows: Vec<(String, String)> = mail_outbox::table
        .filter(mail_outbox::status.eq(MailStatus::Pending))
        .filter(mail_outbox::body.ne(""))
        .filter(mail_outbox::body.not_like(&sealed_now))
        .select((mail_outbox::id, mail_outbox::body))
        .load(conn)?;
    for (id, body) in rows.into_iter().filter(|(_, b)| stale(b)) {
        diesel::update(mail_outbox::table.find(&id))
            .set(mail_outbox::body.eq(reseal(&outbox_body_aad(&id), &body)?))
            .execute(conn)?;
        count += 1;
    }

    // Personal identity numbers, with their keyed hashes (which change with the key).
    let rows: Vec<(UserId, Option<String>)> = personal_identities::table
        .filter(personal_identities::number_sealed.not_like(&sealed_now))
        .select((
            personal_identities::user_id,
            personal_identities::number_sealed,
        ))
        .load(conn)?;
    for (user_id, sealed) in rows {
        let Some(sealed) = sealed.filter(|s| stale(s)) else {
            continue;
        };
        let aad = personal_number_aad(&user_id);
        let digits = match sealed_with(&sealed) {
            Some(_) => keyring.open(&aad, &sealed)?,
            None => sealed,
        };
        diesel::update(personal_identities::table.find(&user_id))
            .set((
                personal_identities::number_sealed.eq(keyring.seal(&aad, &digits)?),
                personal_identities::number_mac
                    .eq(keyring.mac(PERSONAL_NUMBER_MAC, digits.as_bytes())?),
            ))
            .execute(conn)?;
        count += 1;
    }

    diesel::delete(sealing_keys::table.filter(sealing_keys::id.ne(&current))).execute(conn)?;
    Ok(count)
}
