//! The attachment store of a test, whichever it is: the data directory's `attachments`,
//! or (when the suite runs with `ATTACHMENT_STORE`, as .ci/objectstore.sh does) a prefix
//! of its own in that bucket, named after the test's data directory so that the
//! command-line runs of a test find the same objects as its server.

use std::path::Path;
use std::sync::Arc;

use eportfolio::storage::{BlobStore, ObjectStoreConfig};

/// The bucket settings for the data directory `dir`; `None`: the local disk.
pub fn store_config(dir: &Path) -> Option<ObjectStoreConfig> {
    let mut config = ObjectStoreConfig::from_env().expect("ATTACHMENT_STORE")?;
    // /tmp/eportfolio-test-<uuid>/restored -> <prefix>/eportfolio-test-<uuid>/restored
    let tmp = std::env::temp_dir();
    let own = dir.strip_prefix(&tmp).unwrap_or(dir);
    let own: Vec<String> = own
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .filter(|c| *c != "/")
        .map(|c| c.replace(|ch: char| !ch.is_ascii_alphanumeric() && ch != '-', "-"))
        .collect();
    config.prefix = [config.prefix.clone()]
        .into_iter()
        .chain(own)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    Some(config)
}

/// Whether the suite runs against an object store.
pub fn object_store() -> bool {
    std::env::var("ATTACHMENT_STORE").is_ok_and(|v| !v.trim().is_empty())
}

/// Sets `ATTACHMENT_STORE` of a command-line run on `dir` (the `AWS_*` variables are
/// inherited); nothing for the local disk.
pub fn cli_env(cmd: &mut std::process::Command, dir: &Path) {
    match store_config(dir) {
        Some(c) => cmd.env(
            "ATTACHMENT_STORE",
            format!("s3://{}/{}", c.bucket, c.prefix),
        ),
        None => cmd.env_remove("ATTACHMENT_STORE"),
    };
}

/// The store of the data directory `dir`.
pub fn open(dir: &Path) -> Arc<dyn BlobStore> {
    match store_config(dir) {
        Some(c) => Arc::new(eportfolio::storage::S3Store::open(&c).expect("object store")),
        None => Arc::new(
            eportfolio::storage::LocalDisk::new(&dir.join("attachments")).expect("local store"),
        ),
    }
}

/// The bytes of blob `key`, `None` when it is not there.
pub fn read(dir: &Path, key: &str) -> Option<Vec<u8>> {
    let (mut r, _) = open(dir).open(key).ok()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut bytes).ok()?;
    Some(bytes)
}

/// Replaces blob `key` with `bytes` (a damaged copy, an orphan of a test's making).
pub fn put(dir: &Path, key: &str, bytes: &[u8]) {
    let store = open(dir);
    let mut w = store.create().expect("create");
    w.write(bytes).expect("write");
    w.commit(key).expect("commit");
}

/// Removes blob `key`.
pub fn remove(dir: &Path, key: &str) {
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    open(dir).remove(key, later).expect("remove");
}

/// The storage key of an uploaded attachment (as the API shows it): its content hash.
pub fn key_of(attachment: &serde_json::Value) -> String {
    eportfolio::storage::content_key(attachment["sha256"].as_str().expect("sha256"))
        .expect("content key")
}
