//! Where attachment bytes live. Local disk under the data directory by default, or an
//! S3-compatible bucket (`ATTACHMENT_STORE`, `s3`). Also: files that only this
//! service's user may read, and the check that stored attachments still match their
//! hash (`verify`).

mod s3;
mod sweep;
mod verify;

pub use s3::{ObjectStoreConfig, S3Store};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::AppError;

// ---- Private files --------------------------------------------------------------------
//
// The data directory holds the JWT secret, the SQLite database (with TOTP secrets), the
// mail outbox, attachments and backups: nothing in it is for other local users. The
// directory is 0700 and every file the process creates 0600: the umask makes that true
// for files created by libraries (SQLite and its -wal/-shm, the mail outbox, backups),
// and our own files are also created with explicit modes.

/// Makes every file and directory this process creates private to its user (umask 077).
pub fn restrict_new_files() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (and its parents) if missing and makes it 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), AppError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| AppError::Config(format!("cannot create {}: {e}", dir.display())))?;
    set_mode(dir, 0o700)
}

/// Sets the permission bits of an existing file or directory (nothing off Unix).
pub fn set_mode(path: &Path, mode: u32) -> Result<(), AppError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| AppError::Config(format!("cannot restrict {}: {e}", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Opens a new file for writing, readable and writable by this user only.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Refuses a secret file that other local users can read (or write): whoever reads it
/// can forge tokens. The message says how to fix it.
pub fn check_private_file(path: &Path) -> Result<(), AppError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| AppError::Config(format!("cannot read {}: {e}", path.display())))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(AppError::Config(format!(
                "{} is readable by other users (mode {mode:04o}); it holds a secret: \
                 run `chmod 600 {}` (and check who may have read it) before starting",
                path.display(),
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A blob store keyed by storage keys (see [`content_key`]). Writes go through `create`
/// to a temporary name and are published under their key by `commit`, so a half-written
/// upload never appears under a key, and the key can be the content's hash, known only
/// once the last byte is in.
pub trait BlobStore: Send + Sync {
    /// Starts a new blob under a temporary name; bytes are appended with
    /// `BlobWriter::write` and published with `BlobWriter::commit`. Dropping an
    /// uncommitted writer discards the bytes.
    fn create(&self) -> Result<Box<dyn BlobWriter>, AppError>;
    /// A local path to read the blob from (served as a file), if the store has one.
    fn path(&self, key: &str) -> Result<Option<PathBuf>, AppError>;
    /// Opens a committed blob for reading, with its size.
    fn open(&self, key: &str) -> Result<(Box<dyn Read + Send>, u64), AppError>;
    /// Whether the store holds no committed blob (a restore wants an empty one).
    fn is_empty(&self) -> Result<bool, AppError>;
    /// Removes unfinished uploads last written before `before`; returns how many.
    fn remove_parts(&self, before: std::time::SystemTime) -> Result<usize, AppError>;
    /// The keys of committed blobs last written before `before`.
    fn committed_before(&self, before: std::time::SystemTime) -> Result<Vec<String>, AppError>;
    /// Removes a committed blob if it was last written before `before` (one no
    /// attachment names: see `sweep`); returns whether it did. A blob written since is
    /// kept: an upload of the same content published it again, and its row is on its way.
    fn remove(&self, key: &str, before: std::time::SystemTime) -> Result<bool, AppError>;
}

/// The key content with this SHA-256 (hex) is stored under: `sha256/ab/cd/<hex>`, two
/// levels of fan-out so that no directory (or listing page) grows without bound.
/// Identical content has one key, so it is stored once.
pub fn content_key(sha256_hex: &str) -> Result<String, AppError> {
    let ok = sha256_hex.len() == 64
        && sha256_hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !ok {
        return Err(AppError::internal(format!("not a SHA-256: {sha256_hex:?}")));
    }
    Ok(format!(
        "sha256/{}/{}/{sha256_hex}",
        &sha256_hex[..2],
        &sha256_hex[2..4]
    ))
}

/// Whether `key` is a storage key: a content key, or a key of the first layout (the
/// attachment's id, `[0-9a-z-]`) that rows written before content keys still name.
pub fn valid_key(key: &str) -> bool {
    if let Some(hex) = key
        .rsplit('/')
        .next()
        .filter(|_| key.starts_with("sha256/"))
    {
        return content_key(hex).is_ok_and(|k| k == key);
    }
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn check_key(key: &str) -> Result<(), AppError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(AppError::internal(format!("bad blob key {key:?}")))
    }
}

pub use sweep::{remove_released, remove_unnamed, sweep, Swept, GRACE};

pub use verify::{check_blob, verify_attachments, Finding};

/// The attachment store the configuration names: a bucket (`ATTACHMENT_STORE`), checked
/// to answer, or else the data directory's `attachments`. Blocks while it checks.
pub fn open_store(
    config: &crate::config::Config,
) -> Result<std::sync::Arc<dyn BlobStore>, AppError> {
    Ok(match &config.attachment_store {
        Some(s3) => std::sync::Arc::new(S3Store::open(s3)?),
        None => std::sync::Arc::new(LocalDisk::new(&config.data_dir.join("attachments"))?),
    })
}

/// A failed write to the store: a full disk (or quota) is the client's 507, anything
/// else a 500.
fn write_error(what: &str, e: std::io::Error) -> AppError {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            AppError::InsufficientStorage(
                "the attachment store is full; nothing of this upload was kept. Try again later"
                    .into(),
            )
        }
        _ => AppError::internal(format!("{what}: {e}")),
    }
}

pub trait BlobWriter: Send {
    fn write(&mut self, bytes: &[u8]) -> Result<(), AppError>;
    /// Publishes the bytes under `key`. A blob already there has the same content (keys
    /// are content hashes) and is replaced, which also marks it as just written.
    fn commit(self: Box<Self>, key: &str) -> Result<(), AppError>;
}

pub struct LocalDisk {
    root: PathBuf,
}

impl LocalDisk {
    pub fn new(root: &Path) -> Result<LocalDisk, AppError> {
        create_private_dir(root)?;
        create_private_dir(&root.join("tmp"))?;
        Ok(LocalDisk {
            root: root.to_path_buf(),
        })
    }

    /// `sha256/ab/cd/<hex>` is that path under the root; a key of the first layout `k`
    /// is `<k[..2]>/k`.
    fn final_path(&self, key: &str) -> Result<PathBuf, AppError> {
        check_key(key)?;
        if key.starts_with("sha256/") {
            return Ok(key.split('/').fold(self.root.clone(), |p, s| p.join(s)));
        }
        Ok(self.root.join(&key[..2.min(key.len())]).join(key))
    }

    /// The key a file under the root would be stored under, if it is one of ours.
    fn key_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<&str> = rel
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<_>>()?;
        let key = match parts.as_slice() {
            [_, key] => key.to_string(),
            ["sha256", ..] => parts.join("/"),
            _ => return None,
        };
        self.final_path(&key)
            .is_ok_and(|p| p == path)
            .then_some(key)
    }
}

/// The files directly in `dir` last modified before `before`.
fn files_before(dir: &Path, before: std::time::SystemTime) -> Result<Vec<PathBuf>, AppError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AppError::internal(format!("{}: {e}", dir.display()))),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AppError::internal(format!("{}: {e}", dir.display())))?;
        let meta = entry
            .metadata()
            .map_err(|e| AppError::internal(format!("{}: {e}", dir.display())))?;
        if meta.is_file() && meta.modified().is_ok_and(|m| m < before) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

struct LocalWriter {
    root: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
}

/// The files under `dir`, at any depth.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), AppError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AppError::internal(format!("{}: {e}", dir.display()))),
    };
    for entry in entries {
        let entry = entry.map_err(|e| AppError::internal(format!("{}: {e}", dir.display())))?;
        let kind = entry
            .file_type()
            .map_err(|e| AppError::internal(format!("{}: {e}", dir.display())))?;
        if kind.is_dir() {
            files_under(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// When a file was last written; `None` when it is not there.
fn modified(path: &Path) -> Result<Option<std::time::SystemTime>, AppError> {
    match std::fs::metadata(path) {
        Ok(meta) => meta
            .modified()
            .map(Some)
            .map_err(|e| AppError::internal(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AppError::internal(format!("{}: {e}", path.display()))),
    }
}

impl BlobStore for LocalDisk {
    fn create(&self) -> Result<Box<dyn BlobWriter>, AppError> {
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = create_private_file(&tmp).map_err(|e| write_error("blob create", e))?;
        Ok(Box::new(LocalWriter {
            root: self.root.clone(),
            tmp,
            file: Some(file),
        }))
    }

    fn path(&self, key: &str) -> Result<Option<PathBuf>, AppError> {
        self.final_path(key).map(Some)
    }

    fn open(&self, key: &str) -> Result<(Box<dyn Read + Send>, u64), AppError> {
        let path = self.final_path(key)?;
        let file = std::fs::File::open(&path)
            .map_err(|e| AppError::AttachmentDamaged(format!("blob {key}: {e}")))?;
        let size = file
            .metadata()
            .map_err(|e| AppError::internal(format!("blob {key}: {e}")))?
            .len();
        Ok((Box::new(file), size))
    }

    fn remove_parts(&self, before: std::time::SystemTime) -> Result<usize, AppError> {
        let mut removed = 0;
        for path in files_before(&self.root.join("tmp"), before)? {
            std::fs::remove_file(&path)
                .map_err(|e| AppError::internal(format!("{}: {e}", path.display())))?;
            removed += 1;
        }
        Ok(removed)
    }

    fn committed_before(&self, before: std::time::SystemTime) -> Result<Vec<String>, AppError> {
        let mut files = Vec::new();
        files_under(&self.root, &mut files)?;
        let tmp = self.root.join("tmp");
        let mut keys = Vec::new();
        for path in files.iter().filter(|p| !p.starts_with(&tmp)) {
            if let Some(key) = self.key_of(path) {
                if modified(path)?.is_some_and(|m| m < before) {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }

    fn remove(&self, key: &str, before: std::time::SystemTime) -> Result<bool, AppError> {
        let path = self.final_path(key)?;
        // Written again since (the same content uploaded anew): kept for its new row.
        if modified(&path)?.is_none_or(|m| m >= before) {
            return Ok(false);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AppError::internal(format!("blob remove {key}: {e}"))),
        }
    }

    fn is_empty(&self) -> Result<bool, AppError> {
        let mut files = Vec::new();
        files_under(&self.root, &mut files).map_err(|e| AppError::Config(e.to_string()))?;
        let tmp = self.root.join("tmp");
        Ok(files.iter().all(|p| p.starts_with(&tmp)))
    }
}

impl BlobWriter for LocalWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), AppError> {
        match self.file.as_mut() {
            Some(f) => f.write_all(bytes).map_err(|e| write_error("blob write", e)),
            None => Err(AppError::internal("blob already committed")),
        }
    }

    fn commit(mut self: Box<Self>, key: &str) -> Result<(), AppError> {
        let target = LocalDisk {
            root: self.root.clone(),
        }
        .final_path(key)?;
        let file = self
            .file
            .take()
            .ok_or_else(|| AppError::internal("blob already committed"))?;
        // On disk before the database says it exists.
        let synced = file.sync_all().map_err(|e| write_error("blob sync", e));
        drop(file);
        let result = synced.and_then(|()| {
            if let Some(dir) = target.parent() {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder
                    .create(dir)
                    .map_err(|e| write_error("blob dir", e))?;
            }
            // Over an existing blob of the same content: atomic, and its time is now, so
            // the sweep does not take it from the row this upload is about to write.
            std::fs::rename(&self.tmp, &target).map_err(|e| write_error("blob rename", e))
        });
        if result.is_err() {
            // A full disk can fail the sync: no partial file stays behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
