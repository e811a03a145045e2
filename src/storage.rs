//! Where attachment bytes live. Local disk under the data directory by default; the
//! trait is what an S3-compatible store would implement.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::AppError;

/// A blob store keyed by opaque keys. Writes go through `create` so that a half-written
/// upload never appears under its final key.
pub trait BlobStore: Send + Sync {
    /// Starts a new blob; bytes are appended with `BlobWriter::write` and published with
    /// `BlobWriter::commit`. Dropping an uncommitted writer discards the bytes.
    fn create(&self, key: &str) -> Result<Box<dyn BlobWriter>, AppError>;
    /// A local path to read the blob from (for streaming responses).
    fn path(&self, key: &str) -> Result<PathBuf, AppError>;
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
        std::fs::create_dir_all(root.join("tmp"))
            .map_err(|e| AppError::Config(format!("cannot create {}: {e}", root.display())))?;
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

struct LocalWriter {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<std::fs::File>,
}

impl BlobStore for LocalDisk {
    fn create(&self, key: &str) -> Result<Box<dyn BlobWriter>, AppError> {
        let target = self.final_path(key)?;
        let tmp = self.root.join("tmp").join(format!("{key}.part"));
        let file = std::fs::File::create(&tmp)
            .map_err(|e| AppError::internal(format!("blob create: {e}")))?;
        Ok(Box::new(LocalWriter {
            tmp,
            target,
            file: Some(file),
        }))
    }

    fn path(&self, key: &str) -> Result<PathBuf, AppError> {
        self.final_path(key)
    }
}

impl BlobWriter for LocalWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), AppError> {
        match self.file.as_mut() {
            Some(f) => f
                .write_all(bytes)
                .map_err(|e| AppError::internal(format!("blob write: {e}"))),
            None => Err(AppError::internal("blob already committed")),
        }
    }

    fn commit(mut self: Box<Self>) -> Result<(), AppError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| AppError::internal("blob already committed"))?;
        // On disk before the database says it exists.
        file.sync_all()
            .map_err(|e| AppError::internal(format!("blob sync: {e}")))?;
        drop(file);
        if let Some(dir) = self.target.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| AppError::internal(format!("blob dir: {e}")))?;
        }
        std::fs::rename(&self.tmp, &self.target)
            .map_err(|e| AppError::internal(format!("blob rename: {e}")))
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
