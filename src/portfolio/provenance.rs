//! Provenance of activities a system made: which learning platform (API client) sent
//! the xAPI statement an activity was made from, the statement's id, and when it came.
//! Read from the stored statements (`xapi_statements.activity_id`, indexed), so that
//! the portfolio shows it without knowing the integrations that write it. Activities
//! imported from another service (issue 17) carry that service's provenance instead
//! (`transferred`).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::from_db;
use crate::db::DbConn;
use crate::error::AppError;
use crate::schema::{api_clients, xapi_statements};

/// How a system made the activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// From an xAPI statement a learning platform sent.
    Xapi,
    /// Imported from another service with a transfer bundle (`transfer` says which).
    Transfer,
}

/// Where an activity a system made came from (null for activities people logged).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivitySource {
    pub kind: SourceKind,
    /// `xapi`: the API client (learning platform) that sent the statement.
    #[schema(format = Uuid)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[schema(example = "Moodle")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// `xapi`: the statement's id.
    #[schema(format = Uuid)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement_id: Option<String>,
    /// When the statement arrived (xAPI `stored`), or when the record was imported.
    #[serde(with = "crate::clock::millis")]
    pub received_at: DateTime<Utc>,
    /// `transfer`: the sending service, who signed there and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<super::transferred::TransferProvenance>,
}

#[derive(Queryable)]
struct SourceRow {
    activity_id: Option<String>,
    client_id: String,
    client_name: String,
    statement_id: String,
    received_at: NaiveDateTime,
}

/// The sources of those of `activity_ids` that a statement made, by activity id.
pub fn of(
    conn: &mut DbConn,
    activity_ids: &[String],
) -> Result<HashMap<String, ActivitySource>, AppError> {
    if activity_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let query = xapi_statements::table
        .inner_join(api_clients::table.on(api_clients::id.eq(xapi_statements::client_id)))
        .filter(xapi_statements::activity_id.eq_any(activity_ids))
        .select((
            xapi_statements::activity_id,
            xapi_statements::client_id,
            api_clients::name,
            xapi_statements::id,
            xapi_statements::received_at,
        ));
    let rows: Vec<SourceRow> = crate::on_backend!(conn, |c| query.load(c))?;
    let mut out: HashMap<String, ActivitySource> =
        super::transferred::of_records(conn, activity_ids)?
            .into_iter()
            .map(|(id, p)| {
                let source = ActivitySource {
                    kind: SourceKind::Transfer,
                    client_id: None,
                    client_name: None,
                    statement_id: None,
                    received_at: p.imported_at,
                    transfer: Some(p),
                };
                (id, source)
            })
            .collect();
    out.extend(rows.into_iter().filter_map(|r| {
        let activity = r.activity_id?;
        Some((
            activity,
            ActivitySource {
                kind: SourceKind::Xapi,
                client_id: Some(r.client_id),
                client_name: Some(r.client_name),
                statement_id: Some(r.statement_id),
                received_at: from_db(r.received_at),
                transfer: None,
            },
        ))
    }));
    Ok(out)
}
