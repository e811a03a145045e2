//! Provenance of imported records (`transferred_records`): what the portfolio, progress
//! and the dossier show ("signed on service X by Y on date Z"), and the guard that keeps
//! imported records read-only.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::from_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::ids::{Day, EnrolmentId, TransferredRecordType};
use crate::schema::{transfer_imports, transferred_records};

/// The record is a row of its own table here (an activity, an assessment, and the plan:
/// a placement, leave, an extent period, credited service).
pub const KEPT_AS_RECORD: &str = "record";
/// Only the sending service's content is kept (talks, summaries, final assessments).
pub const KEPT_AS_EVIDENCE: &str = "evidence";
/// The role a record's provenance names when the trainee logged it there (an activity):
/// nobody else signed it.
pub const LOGGED_BY_TRAINEE: &str = "trainee";

impl TransferProvenance {
    /// Signed there by someone other than the trainee (an assessor, a supervisor, a
    /// kursledare), with the time of the signature.
    pub fn signed_by_another(&self) -> bool {
        self.signed_by.is_some()
            && self.signed_at.is_some()
            && self.signed_role.as_deref() != Some(LOGGED_BY_TRAINEE)
    }
}

/// Where an imported record came from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferProvenance {
    /// The sending service as the receiving region's administrator trusted it.
    #[schema(example = "eportfolio Region Uppsala")]
    pub service_name: String,
    /// The sending service's own id (from the bundle).
    #[schema(example = "eportfolio-uppsala")]
    pub service_id: String,
    #[schema(example = "https://eportfolio.regionuppsala.se")]
    pub service_url: String,
    /// The record's id on the sending service.
    pub original_id: String,
    /// Who signed (or logged) it there; null when nobody signed.
    #[schema(example = "Nora Handledare")]
    pub signed_by: Option<String>,
    /// Their role there, as the sending service named it (an assessor, a supervisor,
    /// the trainee for what they logged themselves, and so on).
    #[schema(example = "assessor")]
    pub signed_role: Option<String>,
    #[serde(with = "crate::clock::millis_opt")]
    pub signed_at: Option<DateTime<Utc>>,
    /// When it was imported here.
    #[serde(with = "crate::clock::millis")]
    pub imported_at: DateTime<Utc>,
    /// Delmål codes the record had there that the receiving template does not know:
    /// kept here as unmapped evidence, never dropped.
    pub unmapped_delmal: Vec<String>,
}

/// An imported record as progress and the dossier list it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferredRecord {
    /// The record's id here.
    pub id: String,
    /// The kind of record, named as in progress evidence (activity, assessment,
    /// supervision session, summary assessment, placement and so on).
    #[schema(value_type = String, example = "assessment")]
    pub record_type: TransferredRecordType,
    /// `record` (a row of its own, e.g. under /activities, or the enrolment's placements,
    /// leave, extent periods and credited service) or `evidence` (the sending service's
    /// content only).
    #[schema(example = "record")]
    pub kept_as: String,
    #[schema(example = "mini_cex")]
    pub title: String,
    pub date: Option<NaiveDate>,
    /// Delmål codes mapped onto the receiving template.
    pub delmal: Vec<String>,
    pub provenance: TransferProvenance,
    /// The record as the sending service wrote it (for `evidence`).
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = transferred_records, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Row {
    id: String,
    import_id: String,
    record_type: TransferredRecordType,
    original_id: String,
    kept_as: String,
    title: String,
    record_date: Option<Day>,
    signed_by_name: Option<String>,
    signed_by_role: Option<String>,
    signed_at: Option<NaiveDateTime>,
    delmal: String,
    unmapped_delmal: String,
    content: String,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = transfer_imports, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ImportRow {
    id: String,
    service_name: String,
    sending_service_id: String,
    sending_base_url: String,
    imported_at: NaiveDateTime,
}

fn codes(id: &str, field: &str, text: &str) -> Result<Vec<String>, AppError> {
    serde_json::from_str(text)
        .map_err(|e| AppError::unreadable("transferred_records", id, field, e))
}

fn enrich(conn: &mut DbConn, rows: Vec<Row>) -> Result<Vec<TransferredRecord>, AppError> {
    // Most enrolments have no imported records: no imports to read for them.
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut import_ids: Vec<String> = rows.iter().map(|r| r.import_id.clone()).collect();
    import_ids.sort();
    import_ids.dedup();
    let imports: HashMap<String, ImportRow> = transfer_imports::table
        .filter(transfer_imports::id.eq_any(&import_ids))
        .select(ImportRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|i: ImportRow| (i.id.clone(), i))
        .collect();
    rows.into_iter()
        .map(|r| {
            let i = imports.get(&r.import_id).ok_or_else(|| {
                AppError::unreadable("transferred_records", &r.id, "import_id", "no such import")
            })?;
            let content = serde_json::from_str(&r.content)
                .map_err(|e| AppError::unreadable("transferred_records", &r.id, "content", e))?;
            Ok(TransferredRecord {
                delmal: codes(&r.id, "delmal", &r.delmal)?,
                provenance: TransferProvenance {
                    service_name: i.service_name.clone(),
                    service_id: i.sending_service_id.clone(),
                    service_url: i.sending_base_url.clone(),
                    original_id: r.original_id,
                    signed_by: r.signed_by_name,
                    signed_role: r.signed_by_role,
                    signed_at: r.signed_at.map(from_db),
                    imported_at: from_db(i.imported_at),
                    unmapped_delmal: codes(&r.id, "unmapped_delmal", &r.unmapped_delmal)?,
                },
                id: r.id,
                record_type: r.record_type,
                kept_as: r.kept_as,
                title: r.title,
                date: r.record_date.map(Day::date),
                content,
            })
        })
        .collect()
}

/// Every imported record of an enrolment, oldest first (empty when nothing was imported).
pub fn of_enrolment(
    conn: &mut DbConn,
    enrolment_id: &EnrolmentId,
) -> Result<Vec<TransferredRecord>, AppError> {
    let rows: Vec<Row> = transferred_records::table
        .filter(transferred_records::enrolment_id.eq(enrolment_id))
        .order((transferred_records::record_date, transferred_records::id))
        .select(Row::as_select())
        .load(conn)?;
    enrich(conn, rows)
}

/// The provenance of those of `ids` that were imported, by id.
pub fn of_records(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<HashMap<String, TransferProvenance>, AppError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<Row> = transferred_records::table
        .filter(transferred_records::id.eq_any(ids))
        .select(Row::as_select())
        .load(conn)?;
    Ok(enrich(conn, rows)?
        .into_iter()
        .map(|r| (r.id, r.provenance))
        .collect())
}

/// Imported records are read-only (409 `transferred-read-only`); the guard is with the
/// plan's records, which are imported too.
pub use crate::enrolment::imported::refuse_if_transferred;
