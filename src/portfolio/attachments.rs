//! Attachments: documents and photos uploaded from a phone, streamed to the blob store
//! (never held whole in memory), with a content hash. Readable by whoever may read the
//! record they belong to.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::web;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::principal::Principal;
use crate::clock::{from_db, to_db};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::enrolment::access::{self, Access};
use crate::error::AppError;
use crate::ids::EnrolmentId;
use crate::ids::{AttachmentId, UserId};
use crate::schema::attachments;
use crate::storage::BlobStore;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attachment {
    pub id: String,
    pub record_id: String,
    #[schema(example = "kursintyg.pdf")]
    pub filename: String,
    #[schema(example = "application/pdf")]
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Where to download it (same access rules as the record).
    #[schema(example = "/api/v1/attachments/6f1c…")]
    pub href: String,
    pub uploaded_by: String,
    #[serde(with = "crate::clock::millis")]
    pub created_at: DateTime<Utc>,
}

/// An attachment as stored (the storage key and enrolment are read where needed).
#[derive(Queryable, Selectable)]
#[diesel(table_name = attachments, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    id: AttachmentId,
    record_id: String,
    filename: String,
    content_type: String,
    size_bytes: i64,
    sha256: String,
    uploaded_by: UserId,
    created_at: NaiveDateTime,
}

fn from_row(r: Row) -> Attachment {
    Attachment {
        href: format!("/api/v1/attachments/{}", r.id),
        id: r.id.into_inner(),
        record_id: r.record_id,
        filename: r.filename,
        content_type: r.content_type,
        size_bytes: r.size_bytes,
        sha256: r.sha256,
        uploaded_by: r.uploaded_by.into_inner(),
        created_at: from_db(r.created_at),
    }
}

/// Attachments of several records at once, by record id.
/// Like [`of_records`], for records of one enrolment (`None`: no records). Most
/// enrolments have few attachments: one indexed look-up (a prepared statement) finds
/// whether there are any before the records are asked for one by one.
pub fn of_records_in(
    conn: &mut DbConn,
    enrolment_id: Option<&str>,
    record_ids: &[String],
) -> Result<HashMap<String, Vec<Attachment>>, AppError> {
    let Some(enrolment_id) = enrolment_id else {
        return Ok(HashMap::new());
    };
    let any = attachments::table
        .filter(attachments::enrolment_id.eq(enrolment_id))
        .filter(attachments::deleted_at.is_null())
        .select(attachments::id);
    let any: Option<String> = crate::on_backend!(conn, |c| any.first(c).optional())?;
    if any.is_none() {
        return Ok(HashMap::new());
    }
    of_records(conn, record_ids)
}

pub fn of_records(
    conn: &mut DbConn,
    record_ids: &[String],
) -> Result<HashMap<String, Vec<Attachment>>, AppError> {
    let query = attachments::table
        .filter(attachments::record_id.eq_any(record_ids))
        .filter(attachments::deleted_at.is_null())
        .order(attachments::created_at);
    // Selected inside `on_backend!`: a selection is typed by its backend.
    let rows: Vec<Row> = crate::on_backend!(conn, |c| query.select(Row::as_select()).load(c))?;
    let mut map: HashMap<String, Vec<Attachment>> = HashMap::new();
    for r in rows {
        let a = from_row(r);
        map.entry(a.record_id.clone()).or_default().push(a);
    }
    Ok(map)
}

/// A file name safe to store and to send back in Content-Disposition.
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    if cleaned.trim().is_empty() {
        "attachment".into()
    } else {
        cleaned.trim().to_string()
    }
}

/// The `Content-Disposition` of a download: the name as stored in `filename*` (RFC 6266,
/// UTF-8, percent-encoded), and an ASCII fallback in `filename` for old clients. Without
/// `filename*` a name with å, ä or ö arrives as mojibake (`fÃ¶rsÃ¤kring`).
pub fn content_disposition(filename: &str) -> actix_web::http::header::ContentDisposition {
    use actix_web::http::header::{
        Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
    };
    let mut parameters = vec![DispositionParam::Filename(ascii_fallback(filename))];
    if !filename.is_ascii() {
        parameters.push(DispositionParam::FilenameExt(ExtendedValue {
            charset: Charset::Ext("UTF-8".into()),
            language_tag: None,
            value: filename.as_bytes().to_vec(),
        }));
    }
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters,
    }
}

/// `name` in printable ASCII: Swedish letters lose their marks, anything else becomes
/// `_`, and the extension survives.
pub fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'å' | 'ä' | 'à' | 'á' | 'â' => 'a',
            'Å' | 'Ä' | 'À' | 'Á' | 'Â' => 'A',
            'ö' | 'ø' | 'ó' | 'ò' | 'ô' => 'o',
            'Ö' | 'Ø' | 'Ó' | 'Ò' | 'Ô' => 'O',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'É' | 'È' | 'Ê' | 'Ë' => 'E',
            'ü' | 'ú' => 'u',
            'Ü' | 'Ú' => 'U',
            c if c.is_ascii() && !c.is_ascii_control() && c != '\\' => c,
            _ => '_',
        })
        .collect()
}

/// How much of the start of a file the content check looks at.
const SNIFF_BYTES: usize = 8192;

/// Does a file starting with `head` (its first bytes, at most [`SNIFF_BYTES`]) have the
/// declared media type? The declared type is the client's word, and the download is
/// served with it: HTML declared as `application/pdf` must not be stored. Types with a
/// signature must have it; plain text must be UTF-8 without NULs and must not look like
/// anything with a signature (HTML, XML, scripts, binaries). A type the checker does not
/// know (an operator's addition to `ATTACHMENT_TYPES`) passes unless the content is
/// recognisably something else.
pub fn content_matches(declared: &str, head: &[u8]) -> bool {
    let detected = infer::get(head).map(|t| t.mime_type());
    match declared {
        "text/plain" => {
            let utf8 = match std::str::from_utf8(head) {
                Ok(_) => true,
                // Cut inside a character at the end of the sniffed part is fine.
                Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
            };
            detected.is_none() && utf8 && !head.contains(&0) && !starts_with_markup(head)
        }
        "image/heic" | "image/heif" => detected == Some("image/heif"),
        _ => match detected {
            Some(found) => found == declared,
            None => !infer::is_mime_supported(declared),
        },
    }
}

/// Does the text open with a tag, after any byte-order mark and white space? The
/// signature check knows only some tags, each ended by a space or `>`: `<html` and a
/// newline, `<svg onload=...>` or `<img onerror=...>` are pages to a browser all the
/// same. Plain text does not start with markup, so none is taken as plain text.
fn starts_with_markup(head: &[u8]) -> bool {
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    text.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

fn wrong_content(declared: &str) -> AppError {
    AppError::UnsupportedMediaType(format!(
        "the file's content is not {declared}; send it with its real media type"
    ))
}

/// Streams the request body into a new blob, hashing as it goes, and publishes it under
/// its content hash (`storage::content_key`: the same file uploaded twice is stored
/// once). Over `max` bytes, the partial blob is discarded and the answer is 413; content
/// that is not of the `declared` media type (see [`content_matches`]) is discarded with
/// 415. Returns the size and the SHA-256 (hex).
pub async fn stream_to_blob(
    blobs: Arc<dyn BlobStore>,
    declared: String,
    mut payload: web::Payload,
    max: u64,
) -> Result<(i64, String), AppError> {
    // `None` marks the end of a whole body: a channel closed without it (too large, the
    // client gone) is an abandoned upload, which the writer discards uncommitted.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<web::Bytes>>(8);
    // Disk writes happen on the blocking pool; the worker only moves chunks along.
    let writer = web::block(move || -> Result<(i64, String), AppError> {
        let mut blob = blobs.create()?;
        let mut hasher = Sha256::new();
        let mut size: i64 = 0;
        let mut head: Vec<u8> = Vec::new();
        loop {
            let chunk = match rx.blocking_recv() {
                Some(Some(chunk)) => chunk,
                Some(None) => break,
                None => return Err(AppError::Malformed("upload abandoned".into())),
            };
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            hasher.update(&chunk);
            size += chunk.len() as i64;
            blob.write(&chunk)?;
        }
        if size == 0 {
            return Err(AppError::validation("body", "the file is empty"));
        }
        // Checked once the whole upload is in, so an oversized upload is still 413;
        // returning drops the uncommitted blob.
        if !content_matches(&declared, &head) {
            return Err(wrong_content(&declared));
        }
        let sha256 = hex::encode(hasher.finalize());
        blob.commit(&crate::storage::content_key(&sha256)?)?;
        Ok((size, sha256))
    });
    let mut received: u64 = 0;
    let mut too_large = false;
    let mut writer_gone = false;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::Malformed(format!("upload interrupted: {e}")))?;
        received += chunk.len() as u64;
        if received > max {
            too_large = true;
            break;
        }
        // A writer that stopped (a full disk) has its answer; the rest of the body is
        // read and dropped so that the client hears it instead of a reset connection.
        if !writer_gone && tx.send(Some(chunk)).await.is_err() {
            writer_gone = true;
        }
    }
    if too_large {
        // Closing the channel without committing makes the writer discard the blob.
        drop(tx);
        let _ = writer.await;
        return Err(AppError::PayloadTooLarge(format!(
            "attachments are at most {max} bytes"
        )));
    }
    let _ = tx.send(None).await;
    drop(tx);
    writer.await?
}

pub struct NewAttachment {
    pub id: String,
    pub enrolment_id: String,
    pub record_id: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
}

/// What an audit entry keeps of an attachment as values; the file name only as a keyed
/// digest (`audit::text`, issue 17).
pub const AUDIT_FACTS: &[&str] = &[
    "id",
    "record_id",
    "content_type",
    "size_bytes",
    "sha256",
    "uploaded_by",
    "created_at",
];

/// The data of an audit entry about an attachment.
fn audit_data(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    enrolment_id: &EnrolmentId,
    a: &Attachment,
) -> Result<serde_json::Value, AppError> {
    audit::text::record_data(conn, now, &a.id, Some(enrolment_id), a, AUDIT_FACTS)
}

pub fn record(conn: &mut DbConn, ctx: &Ctx, n: NewAttachment) -> Result<Attachment, AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    diesel::insert_into(attachments::table)
        .values((
            attachments::id.eq(&n.id),
            attachments::enrolment_id.eq(&n.enrolment_id),
            attachments::record_id.eq(&n.record_id),
            attachments::filename.eq(&n.filename),
            attachments::content_type.eq(&n.content_type),
            attachments::size_bytes.eq(n.size_bytes),
            attachments::sha256.eq(&n.sha256),
            attachments::storage_key.eq(crate::storage::content_key(&n.sha256)?),
            attachments::uploaded_by.eq(&me.user_id),
            attachments::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let a = get(conn, &n.id)?.0;
    let data = audit_data(conn, now, &EnrolmentId::from(&n.enrolment_id), &a)?;
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client: client.user_agent.as_deref(),
            action: "created",
            entity: "attachment",
            entity_id: &a.id,
            enrolment_id: Some(&n.enrolment_id),
            data: &data,
        },
    )?;
    Ok(a)
}

/// An attachment with its enrolment and storage key.
pub fn get(conn: &mut DbConn, id: &str) -> Result<(Attachment, String, String), AppError> {
    let (row, enrolment, key): (Row, String, String) = attachments::table
        .find(id)
        .filter(attachments::deleted_at.is_null())
        .select((
            Row::as_select(),
            attachments::enrolment_id,
            attachments::storage_key,
        ))
        .first(conn)?;
    Ok((from_row(row), enrolment, key))
}

/// For a download: the attachment if the caller may read its record.
pub fn readable(
    conn: &mut DbConn,
    me: &Principal,
    id: &str,
    today: chrono::NaiveDate,
) -> Result<(Attachment, String), AppError> {
    let (a, enrolment, key) = get(conn, id)?;
    access::require(
        conn,
        me,
        &EnrolmentId::from(&enrolment),
        today,
        Access::Read,
    )?;
    Ok((a, key))
}

pub fn delete(conn: &mut DbConn, ctx: &Ctx, id: &str) -> Result<(), AppError> {
    let (now, me, client) = (ctx.now, &ctx.caller, &ctx.client);
    let (a, enrolment, _) = get(conn, id)?;
    crate::portfolio::activities::require_trainee(
        conn,
        me,
        &EnrolmentId::from(&enrolment),
        crate::clock::day_of(now),
    )?;
    crate::portfolio::transferred::refuse_if_transferred(conn, &a.record_id)?;
    diesel::update(attachments::table.find(id))
        .set(attachments::deleted_at.eq(to_db(now)))
        .execute(conn)?;
    let data = audit_data(conn, now, &EnrolmentId::from(&enrolment), &a)?;
    audit::append(
        conn,
        now,
        Event {
            actor_id: Some(&me.user_id),
            client: client.user_agent.as_deref(),
            action: "deleted",
            entity: "attachment",
            entity_id: id,
            enrolment_id: Some(&enrolment),
            data: &data,
        },
    )
}

pub fn new_id() -> String {
    Uuid::new_v4().to_string()
}
