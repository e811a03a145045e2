//! The export as a gzip-compressed tar archive, written while it is sent: a blocking
//! task writes the tar stream into a bounded channel that the response reads, so memory
//! holds the JSON documents and a few chunks, never the attachments. Each attachment is
//! checked against its SHA-256 before it goes in (damaged bytes are never served); an
//! error half-way ends the response with an error, so a client never takes a cut-off
//! archive for a whole one (gzip's trailer is missing too).

use std::io::{self, Read, Write};
use std::sync::Arc;

use actix_web::web::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::gather::{stamp, Export, FORMAT, FORMAT_VERSION};
use crate::error::AppError;
use crate::storage::BlobStore;

/// The size of the chunks handed to the response.
const CHUNK: usize = 64 * 1024;
/// Chunks written ahead of a slow client, at most.
const AHEAD: usize = 4;

/// A writer whose bytes go, in chunks, to the response.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        // The client went away: stop writing.
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The manifest: what the archive holds, each file with its size and SHA-256, and what
/// the service keeps that is left out, and why.
fn manifest(e: &Export) -> Result<Vec<u8>, AppError> {
    let files: Vec<_> = e
        .documents
        .iter()
        .map(|d| {
            json!({
                "path": d.path,
                "description": d.description,
                "media_type": "application/json",
                "size_bytes": d.bytes.len(),
                "sha256": hex::encode(Sha256::digest(&d.bytes)),
            })
        })
        .chain(e.attachments.iter().map(|a| {
            json!({
                "path": a.path,
                "description": "an attachment you uploaded",
                "attachment_id": a.id,
                "enrolment_id": a.enrolment_id,
                "filename": a.filename,
                "media_type": a.content_type,
                "size_bytes": a.size_bytes,
                "sha256": a.sha256,
            })
        }))
        .collect();
    serde_json::to_vec_pretty(&json!({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "user_id": e.user_id,
        "generated_at": stamp(e.generated_at),
        "legal_basis": "GDPR Art. 15 (right of access) and Art. 20 (data portability)",
        "files": files,
        "not_included": [
            {"what": "password hash, authenticator secret, recovery codes, passkey credentials, session and refresh tokens, link tokens",
             "why": "secrets that protect your account; they are never shown"},
            {"what": "the subject of a linked e-ID",
             "why": "the e-ID provider's identifier is never shown or logged"},
            {"what": "mail sent to you",
             "why": "its links carry single-use tokens"},
            {"what": "removed records and attachments",
             "why": "kept only for the audit log, which is included"},
        ],
    }))
    .map_err(AppError::internal)
}

fn header(size: u64, e: &Export) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(e.generated_at.timestamp().max(0) as u64);
    h
}

/// Writes the whole archive to `out`.
fn write_archive(out: impl Write, e: &Export, blobs: &dyn BlobStore) -> Result<(), AppError> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let io = |err: io::Error| AppError::internal(format!("export archive: {err}"));
    let m = manifest(e)?;
    tar.append_data(
        &mut header(m.len() as u64, e),
        "manifest.json",
        m.as_slice(),
    )
    .map_err(io)?;
    for d in &e.documents {
        tar.append_data(
            &mut header(d.bytes.len() as u64, e),
            &d.path,
            d.bytes.as_slice(),
        )
        .map_err(io)?;
    }
    for a in &e.attachments {
        crate::storage::check_blob(blobs, &a.storage_key, &a.sha256, a.size_bytes)?;
        let (reader, size) = blobs.open(&a.storage_key)?;
        // The size in the header is the one checked; reading stops there.
        tar.append_data(&mut header(size, e), &a.path, reader.take(size))
            .map_err(io)?;
    }
    let gz = tar.into_inner().map_err(io)?;
    let mut out = gz.finish().map_err(io)?;
    out.flush().map_err(io)?;
    Ok(())
}

/// Starts writing the archive; the receiver yields its bytes (or, at the end, the error
/// that cut it short).
pub fn stream(
    export: Export,
    blobs: Arc<dyn BlobStore>,
) -> mpsc::Receiver<Result<Bytes, io::Error>> {
    let (tx, rx) = mpsc::channel(AHEAD);
    let failed = tx.clone();
    actix_web::rt::task::spawn_blocking(move || {
        let out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = write_archive(out, &export, &*blobs) {
            tracing::error!(user = %export.user_id, error = %e, "personal data export cut short");
            let _ =
                failed.blocking_send(Err(io::Error::other("the export could not be completed")));
        }
    });
    rx
}
