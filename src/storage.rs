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

/// A blob store keyed by opaque keys. Writes go through `create` so that a half-written
/// upload never appears under its final key.
pub trait BlobStore: Send + Sync {
    /// Starts a new blob; bytes are appended with `BlobWriter::write` and published with
    /// `BlobWriter::commit`. Dropping an uncommitted writer discards the bytes.
    fn create(&self, key: &str) -> Result<Box<dyn BlobWriter>, AppError>;
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
    /// Removes a committed blob (one no attachment names: see `sweep`).
    fn remove(&self, key: &str) -> Result<(), AppError>;
}

pub use sweep::{sweep, Swept, GRACE};

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
    fn commit(self: Box<Self>) -> Result<(), AppError>;
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

    fn final_path(&self, key: &str) -> Result<PathBuf, AppError> {
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(AppError::internal(format!("bad blob key {key:?}")));
        }
        Ok(self.root.join(&key[..2.min(key.len())]).join(key))
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
    tmp: PathBuf,
    target: PathBuf,
    file: Option<std::fs::File>,
}

impl BlobStore for LocalDisk {
    fn create(&self, key: &str) -> Result<Box<dyn BlobWriter>, AppError> {
        let target = self.final_path(key)?;
        let tmp = self.root.join("tmp").join(format!("{key}.part"));
        let file = create_private_file(&tmp).map_err(|e| write_error("blob create", e))?;
        Ok(Box::new(LocalWriter {
            tmp,
            target,
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
        let mut keys = Vec::new();
        let dirs = std::fs::read_dir(&self.root)
            .map_err(|e| AppError::internal(format!("{}: {e}", self.root.display())))?;
        for dir in dirs {
            let dir = dir.map_err(|e| AppError::internal(format!("blob store: {e}")))?;
            if dir.file_name() == "tmp" || !dir.path().is_dir() {
                continue;
            }
            for path in files_before(&dir.path(), before)? {
                if let Some(key) = path.file_name().and_then(|n| n.to_str()) {
                    if self.final_path(key).is_ok_and(|p| p == path) {
                        keys.push(key.to_string());
                    }
                }
            }
        }
        Ok(keys)
    }

    fn remove(&self, key: &str) -> Result<(), AppError> {
        let path = self.final_path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AppError::internal(format!("blob remove {key}: {e}"))),
        }
    }

    fn is_empty(&self) -> Result<bool, AppError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(AppError::Config(format!("{}: {e}", self.root.display()))),
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| AppError::Config(format!("{}: {e}", self.root.display())))?;
            if entry.file_name() == "tmp" {
                continue;
            }
            let path = entry.path();
            let empty_dir = path.is_dir()
                && std::fs::read_dir(&path)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
            if !empty_dir {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl BlobWriter for LocalWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), AppError> {
        match self.file.as_mut() {
            Some(f) => f.write_all(bytes).map_err(|e| write_error("blob write", e)),
            None => Err(AppError::internal("blob already committed")),
        }
    }

    fn commit(mut self: Box<Self>) -> Result<(), AppError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| AppError::internal("blob already committed"))?;
        // On disk before the database says it exists.
        let synced = file.sync_all().map_err(|e| write_error("blob sync", e));
        drop(file);
        let result = synced.and_then(|()| {
            if let Some(dir) = self.target.parent() {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder
                    .create(dir)
                    .map_err(|e| write_error("blob dir", e))?;
            }
            std::fs::rename(&self.tmp, &self.target).map_err(|e| write_error("blob rename", e))
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
