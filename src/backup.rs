//! Online backup and restore of everything: one archive (tar, gzip) with the database
//! as rows (`tables`), every attachment, and a manifest (each file's SHA-256, row counts,
//! the audit chain's head); the data directory's keys only when asked, sealed with a
//! passphrase (`sealed_keys`).
//!
//! Consistency: the rows come from one snapshot (PostgreSQL: one REPEATABLE READ, READ
//! ONLY transaction; SQLite: one read transaction, which WAL mode keeps at its start
//! while writers go on). Attachments are written and synced before the commit that
//! names them and never change after, so every attachment the snapshot names is there
//! to copy. A restore refuses a target that holds anything, checks every file against
//! the manifest before it touches the database, loads the rows in one transaction,
//! and ends with every attachment and the audit chain verified.
//!
//! Longer than the ~600-line target: backup and restore are the two sides of one
//! archive format, kept in one file so that a change to one is seen in the other.

mod sealed_keys;
mod tables;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::{self, DbConn};
use crate::error::AppError;
use crate::schema::{attachments, audit_log};
use crate::storage::BlobStore;

pub use sealed_keys::PASSPHRASE_VAR;

const FORMAT: &str = "eportfolio-backup";
const VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";
const KEYS: &str = "keys.sealed";

#[derive(Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `sqlite` or `postgresql`: where it was taken (it restores into either).
    pub source: String,
    pub migrations: Vec<String>,
    pub tables: Vec<TableEntry>,
    pub attachments: Vec<AttachmentEntry>,
    pub audit: AuditHead,
    pub keys: bool,
}

#[derive(Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub rows: u64,
    pub sha256: String,
}

#[derive(Serialize, Deserialize, Queryable)]
pub struct AttachmentEntry {
    pub id: String,
    pub storage_key: String,
    pub sha256: String,
    pub size_bytes: i64,
}

#[derive(Serialize, Deserialize, Default, PartialEq, Debug)]
pub struct AuditHead {
    pub entries: i64,
    /// The newest entry's hash (`None` for an empty log).
    pub head: Option<String>,
}

/// What a backup or restore holds, for the operator.
pub struct Summary {
    pub tables: usize,
    pub rows: u64,
    pub attachments: usize,
    pub attachment_bytes: i64,
    pub audit_entries: i64,
    pub keys: bool,
}

impl Summary {
    fn of(m: &Manifest) -> Summary {
        Summary {
            tables: m.tables.len(),
            rows: m.tables.iter().map(|t| t.rows).sum(),
            attachments: m.attachments.len(),
            attachment_bytes: m.attachments.iter().map(|a| a.size_bytes).sum(),
            audit_entries: m.audit.entries,
            keys: m.keys,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows in {} tables, {} attachments ({} bytes), {} audit entries{}",
            self.rows,
            self.tables,
            self.attachments,
            self.attachment_bytes,
            self.audit_entries,
            if self.keys { ", keys (sealed)" } else { "" }
        )
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> AppError + '_ {
    move |e| AppError::Config(format!("{what}: {e}"))
}

fn hex_sha(h: Sha256) -> String {
    hex::encode(h.finalize())
}

/// A writer that hashes what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// A directory removed when dropped (the staging area of a backup or restore).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_beside(path: &Path, what: &str) -> Result<Scratch, AppError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let scratch = dir.join(format!(
        ".eportfolio-{what}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    crate::storage::create_private_dir(&scratch)?;
    Ok(Scratch(scratch))
}

/// The rows of the snapshot: dumped into `dir`, with what the manifest says of them.
struct Snapshot {
    source: String,
    migrations: Vec<String>,
    tables: Vec<TableEntry>,
    attachments: Vec<AttachmentEntry>,
    audit: AuditHead,
}

fn audit_head(conn: &mut DbConn) -> Result<AuditHead, AppError> {
    let head: Option<(i64, String)> = audit_log::table
        .order(audit_log::seq.desc())
        .select((audit_log::seq, audit_log::hash))
        .first(conn)
        .optional()?;
    Ok(match head {
        Some((seq, hash)) => AuditHead {
            entries: seq,
            head: Some(hash),
        },
        None => AuditHead::default(),
    })
}

fn take_snapshot(conn: &mut DbConn, dir: &Path) -> Result<Snapshot, AppError> {
    let inner = |conn: &mut DbConn| -> Result<Snapshot, AppError> {
        // The first read fixes the snapshot; everything below sees the same moment.
        let migrations = tables::migrations(conn)?;
        let mut entries = Vec::new();
        for name in tables::tables(conn)? {
            let file = crate::storage::create_private_file(&dir.join(format!("{name}.jsonl")))
                .map_err(io("cannot write the backup"))?;
            let mut out = Hashing {
                inner: std::io::BufWriter::new(file),
                hash: Sha256::new(),
            };
            let rows = tables::dump(conn, &name, &mut out)?;
            out.flush().map_err(io("cannot write the backup"))?;
            entries.push(TableEntry {
                name,
                rows,
                sha256: hex_sha(out.hash),
            });
        }
        let attachments = attachments::table
            .order(attachments::id)
            .select((
                attachments::id,
                attachments::storage_key,
                attachments::sha256,
                attachments::size_bytes,
            ))
            .load::<AttachmentEntry>(conn)?;
        Ok(Snapshot {
            source: String::new(),
            migrations,
            tables: entries,
            attachments,
            audit: audit_head(conn)?,
        })
    };
    // Plain statements rather than diesel's transaction manager: this connection does
    // nothing else, and the options differ per backend.
    let (begin, source) = match conn {
        DbConn::Pg(_) => (
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "postgresql",
        ),
        DbConn::Sqlite(_) => ("BEGIN DEFERRED", "sqlite"),
    };
    diesel::sql_query(begin).execute(conn)?;
    let r = inner(conn);
    diesel::sql_query(if r.is_ok() { "COMMIT" } else { "ROLLBACK" }).execute(conn)?;
    Ok(Snapshot {
        source: source.into(),
        ..r?
    })
}

/// What `backup` needs: the database, the attachments and the data directory's keys.
pub struct Source<'a> {
    pub database_url: &'a str,
    pub blobs: &'a dyn BlobStore,
    pub data_dir: &'a Path,
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<(), AppError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
        .map_err(io("cannot write the backup"))
}

/// Writes a backup of everything to `to`, a new file; with `include_keys`, the data
/// directory's keys too, sealed with the passphrase in [`PASSPHRASE_VAR`].
pub fn backup(source: &Source, to: &Path, include_keys: bool) -> Result<Summary, AppError> {
    if to.exists() {
        return Err(AppError::Config(format!(
            "{} exists; choose a new file",
            to.display()
        )));
    }
    let passphrase = if include_keys {
        Some(sealed_keys::passphrase()?.ok_or_else(|| {
            AppError::Config(format!(
                "--include-keys needs a passphrase in {PASSPHRASE_VAR} (12 characters or more)"
            ))
        })?)
    } else {
        None
    };
    // A backup holds everything the database does: created under the private umask,
    // and 0600 whatever wrote it.
    crate::storage::restrict_new_files();
    let scratch = scratch_beside(to, "backup")?;
    let pool = db::connect(source.database_url, 1)?;
    let mut conn = pool.get()?;
    let snap = take_snapshot(&mut conn, &scratch.0)?;
    drop(conn);

    // Written under a temporary name and renamed when complete: a backup that stopped
    // half-way never looks like one.
    let partial = scratch.0.join("archive.partial");
    let file =
        crate::storage::create_private_file(&partial).map_err(io("cannot write the backup"))?;
    let gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for t in &snap.tables {
        let path = scratch.0.join(format!("{}.jsonl", t.name));
        let size = std::fs::metadata(&path).map_err(io("backup"))?.len();
        let f = std::fs::File::open(&path).map_err(io("backup"))?;
        append_file(&mut tar, &format!("database/{}.jsonl", t.name), size, f)?;
        std::fs::remove_file(&path).map_err(io("backup"))?;
    }
    let mut damaged = Vec::new();
    let mut archived = std::collections::HashSet::new();
    for a in &snap.attachments {
        // Rows of the same content name one blob: it goes in once.
        if !archived.insert(a.storage_key.as_str()) {
            continue;
        }
        let (reader, size) = source.blobs.open(&a.storage_key)?;
        let mut reader = HashingReader {
            inner: reader,
            hash: Sha256::new(),
        };
        append_file(&mut tar, &archive_name(&a.storage_key), size, &mut reader)?;
        if hex_sha(reader.hash) != a.sha256 || size != a.size_bytes as u64 {
            damaged.push(a.id.clone());
        }
    }
    if !damaged.is_empty() {
        return Err(AppError::Config(format!(
            "{} attachment(s) no longer match their hash: {}; no backup was written. \
             Run `eportfolio attachments verify` and restore them from an earlier backup",
            damaged.len(),
            damaged.join(", ")
        )));
    }
    if let Some(passphrase) = &passphrase {
        let mut files = BTreeMap::new();
        for name in sealed_keys::KEY_FILES {
            let path = source.data_dir.join(name);
            if path.exists() {
                files.insert(name.to_string(), std::fs::read(&path).map_err(io("keys"))?);
            }
        }
        let sealed = sealed_keys::seal(&files, passphrase)?;
        append_file(&mut tar, KEYS, sealed.len() as u64, sealed.as_slice())?;
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        created_at: chrono::Utc::now(),
        source: snap.source,
        migrations: snap.migrations,
        tables: snap.tables,
        attachments: snap.attachments,
        audit: snap.audit,
        keys: passphrase.is_some(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(AppError::internal)?;
    append_file(&mut tar, MANIFEST, json.len() as u64, json.as_slice())?;
    let file = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(io("cannot write the backup"))?;
    file.sync_all().map_err(io("cannot write the backup"))?;
    if to.exists() {
        return Err(AppError::Config(format!(
            "{} appeared meanwhile",
            to.display()
        )));
    }
    std::fs::rename(&partial, to).map_err(io("cannot write the backup"))?;
    crate::storage::set_mode(to, 0o600)?;
    Ok(Summary::of(&manifest))
}

/// Where `restore` puts things: an empty database, an empty attachment store, and the
/// data directory for the keys.
pub struct Target<'a> {
    pub database_url: &'a str,
    pub blobs: &'a dyn BlobStore,
    pub data_dir: &'a Path,
}

fn damaged(detail: impl std::fmt::Display) -> AppError {
    AppError::Config(format!(
        "the archive is damaged or not an eportfolio backup ({detail}); nothing was restored"
    ))
}

/// A file name inside the archive that is one of ours (no paths of the archive's
/// choosing reach the file system).
/// The name of a blob in the archive: `attachments/` and its key with `/` as `_` (keys
/// of the first layout have no `_`, so names do not collide), one flat directory as
/// archives made before content keys have.
fn archive_name(storage_key: &str) -> String {
    format!("attachments/{}", storage_key.replace('/', "_"))
}

fn staged_name(path: &str) -> Option<String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !s.starts_with('.')
    };
    match path.split_once('/') {
        Some(("database", rest)) | Some(("attachments", rest)) if plain(rest) => {
            Some(path.replace('/', "__"))
        }
        None if path == MANIFEST || path == KEYS => Some(path.to_string()),
        _ => None,
    }
}

/// Each file of an unpacked archive (by name in it): its SHA-256 and size.
type Hashes = HashMap<String, (String, u64)>;

/// Unpacks the archive into `dir`, hashing every file; returns the manifest and the
/// hashes (by name in the archive).
fn unpack(from: &Path, dir: &Path) -> Result<(Manifest, Hashes), AppError> {
    let file = std::fs::File::open(from)
        .map_err(|e| AppError::Config(format!("cannot read {}: {e}", from.display())))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut seen = HashMap::new();
    for entry in tar.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let name = entry
            .path()
            .map_err(damaged)?
            .to_string_lossy()
            .into_owned();
        let staged =
            staged_name(&name).ok_or_else(|| damaged(format!("unexpected entry {name:?}")))?;
        if seen.contains_key(&name) {
            return Err(damaged(format!("{name} twice")));
        }
        let out = crate::storage::create_private_file(&dir.join(&staged)).map_err(io("restore"))?;
        let mut out = Hashing {
            inner: std::io::BufWriter::new(out),
            hash: Sha256::new(),
        };
        let size = std::io::copy(&mut entry, &mut out).map_err(damaged)?;
        out.flush().map_err(io("restore"))?;
        seen.insert(name, (hex_sha(out.hash), size));
    }
    let text = std::fs::read(dir.join(MANIFEST)).map_err(|_| damaged("no manifest"))?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| damaged(format!("manifest: {e}")))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(damaged(format!(
            "format {} version {}",
            manifest.format, manifest.version
        )));
    }
    Ok((manifest, seen))
}

/// Every file the manifest names is there with its hash, and nothing else is.
fn check_against_manifest(
    m: &Manifest,
    seen: &HashMap<String, (String, u64)>,
) -> Result<(), AppError> {
    let mut expected: HashMap<String, (&str, Option<u64>)> = HashMap::new();
    for t in &m.tables {
        expected.insert(format!("database/{}.jsonl", t.name), (&t.sha256, None));
    }
    for a in &m.attachments {
        expected.insert(
            archive_name(&a.storage_key),
            (&a.sha256, Some(a.size_bytes.max(0) as u64)),
        );
    }
    for (name, (sha, size)) in &expected {
        match seen.get(name) {
            None => return Err(damaged(format!("{name} is missing"))),
            Some((got, got_size)) if got != sha || size.is_some_and(|s| s != *got_size) => {
                return Err(damaged(format!("{name} does not match its SHA-256")))
            }
            Some(_) => {}
        }
    }
    if m.keys != seen.contains_key(KEYS) {
        return Err(damaged("the keys the manifest announces are not there"));
    }
    let extra = seen
        .keys()
        .filter(|n| *n != MANIFEST && *n != KEYS && !expected.contains_key(*n))
        .count();
    if extra > 0 {
        return Err(damaged(format!(
            "{extra} file(s) the manifest does not name"
        )));
    }
    Ok(())
}

/// Restores the archive `from` into `target`, which must be empty. Everything in the
/// archive is checked before the database is touched; the rows go in in one
/// transaction; the attachments and the audit chain are verified at the end.
pub fn restore(target: &Target, from: &Path) -> Result<Summary, AppError> {
    crate::storage::restrict_new_files();
    if !from.is_file() {
        return Err(AppError::Config(format!(
            "{} does not exist",
            from.display()
        )));
    }
    if !target.blobs.is_empty()? {
        return Err(AppError::Config(
            "the attachment store of the target is not empty; restore into a fresh data \
             directory (or an empty bucket prefix)"
                .into(),
        ));
    }
    let keys_present: Vec<&str> = sealed_keys::KEY_FILES
        .iter()
        .copied()
        .filter(|k| target.data_dir.join(k).exists())
        .collect();
    crate::storage::create_private_dir(target.data_dir)?;
    let scratch = scratch_beside(&target.data_dir.join("restore"), "restore")?;
    let (manifest, seen) = unpack(from, &scratch.0)?;
    check_against_manifest(&manifest, &seen)?;
    let keys = match (manifest.keys, sealed_keys::passphrase()?) {
        (true, Some(passphrase)) => {
            if !keys_present.is_empty() {
                return Err(AppError::Config(format!(
                    "the target data directory already holds {}; restore into a fresh one",
                    keys_present.join(", ")
                )));
            }
            let sealed = std::fs::read(scratch.0.join(KEYS)).map_err(io("restore"))?;
            Some(sealed_keys::open(&sealed, &passphrase)?)
        }
        // Skipping them would restore data whose sealed secrets nothing can open.
        (true, None) => {
            return Err(AppError::Config(format!(
                "this archive holds the keys, sealed with a passphrase (it was made with \
                 --include-keys): set {PASSPHRASE_VAR} to that passphrase to restore it"
            )))
        }
        (false, _) => None,
    };

    let pool = db::connect(target.database_url, 1)?;
    let mut conn = pool.get()?;
    if !tables::is_empty(&mut conn)? {
        return Err(AppError::Config(
            "the target database is not empty; restore into a new database (or a new \
             SQLite path)"
                .into(),
        ));
    }
    tables::migrate_to(&mut conn, &manifest.migrations)?;
    load_rows(&mut conn, &manifest, &scratch.0)?;
    db::migrate(&mut conn)?;

    let mut restored = std::collections::HashSet::new();
    for a in &manifest.attachments {
        if !restored.insert(a.storage_key.as_str()) {
            continue;
        }
        let staged = scratch.0.join(
            staged_name(&archive_name(&a.storage_key))
                .ok_or_else(|| damaged(format!("storage key {:?}", a.storage_key)))?,
        );
        let mut file = std::fs::File::open(&staged).map_err(io("restore"))?;
        let mut blob = target.blobs.create()?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io("restore"))?;
            if n == 0 {
                break;
            }
            blob.write(&buf[..n])?;
        }
        blob.commit(&a.storage_key)?;
    }
    if let Some(keys) = &keys {
        for (name, bytes) in keys {
            if !sealed_keys::KEY_FILES.contains(&name.as_str()) {
                continue;
            }
            let path = target.data_dir.join(name);
            crate::storage::create_private_file(&path)
                .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
                .map_err(io("cannot write the keys"))?;
        }
    }

    // What came back is what went in: attachments re-read against the database's own
    // hashes, and the audit chain whole up to the head the backup recorded.
    let problems = crate::storage::verify_attachments(&mut conn, target.blobs)?;
    if let Some(first) = problems.first() {
        return Err(AppError::Internal(format!(
            "restored, but {} attachment(s) do not verify (the first: {} {})",
            problems.len(),
            first.id,
            first.problem
        )));
    }
    let v = crate::audit::verify(&mut conn)?;
    if !v.intact {
        return Err(AppError::Internal(format!(
            "restored, but the audit log is broken at entry {}: {}",
            v.first_broken.unwrap_or_default(),
            v.reason.unwrap_or_default()
        )));
    }
    let head = audit_head(&mut conn)?;
    if head != manifest.audit {
        return Err(AppError::Internal(format!(
            "restored, but the audit log's head is {head:?}, not the backup's {:?}",
            manifest.audit
        )));
    }
    let mut summary = Summary::of(&manifest);
    summary.keys = keys.is_some();
    Ok(summary)
}

/// Loads every table's rows in one transaction and checks the counts.
fn load_rows(conn: &mut DbConn, manifest: &Manifest, dir: &Path) -> Result<(), AppError> {
    let names: Vec<String> = manifest.tables.iter().map(|t| t.name.clone()).collect();
    let (order, own) = tables::load_order(conn, &names)?;
    let expected: HashMap<&str, u64> = manifest
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.rows))
        .collect();
    db::write_tx(conn, |c| {
        if let DbConn::Sqlite(_) = c {
            // References are checked at the commit, whatever order the rows come in.
            diesel::sql_query("PRAGMA defer_foreign_keys = ON").execute(c)?;
        }
        for table in &order {
            let file = std::fs::File::open(dir.join(format!("database__{table}.jsonl")))
                .map_err(io("restore"))?;
            let own = own.get(table).map(Vec::as_slice).unwrap_or(&[]);
            let loaded = tables::load(c, table, &mut BufReader::new(file), own)?;
            let counted = tables::count(c, table)?;
            let want = expected.get(table.as_str()).copied().unwrap_or_default();
            if loaded != want || counted != want {
                return Err(damaged(format!(
                    "{table}: {want} rows in the manifest, {loaded} in the archive, {counted} stored"
                )));
            }
        }
        Ok(())
    })
    .map_err(|e| match e {
        AppError::Config(_) => e,
        other => AppError::Config(format!(
            "the rows did not load ({other}); the target database was left as it was"
        )),
    })
}
