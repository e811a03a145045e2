//! Provenance of activities a system made: which learning platform (API client) sent
//! the xAPI statement an activity was made from, the statement's id, and when it came.
//! Read from the stored statements (`xapi_statements.activity_id`, indexed), so that
//! the portfolio shows it without knowing the integrations that write it.

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
}

/// Where an activity a system made came from (null for activities people logged).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivitySource {
    pub kind: SourceKind,
    /// The API client (learning platform) that sent the statement.
    #[schema(format = Uuid)]
    pub client_id: String,
    #[schema(example = "Moodle")]
    pub client_name: String,
    /// The xAPI statement's id.
    #[schema(format = Uuid)]
    pub statement_id: String,
    /// When the statement arrived (xAPI `stored`).
    #[serde(with = "crate::clock::millis")]
    pub received_at: DateTime<Utc>,
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
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let activity = r.activity_id?;
            Some((
                activity,
                ActivitySource {
                    kind: SourceKind::Xapi,
                    client_id: r.client_id,
                    client_name: r.client_name,
                    statement_id: r.statement_id,
                    received_at: from_db(r.received_at),
                },
            ))
        })
        .collect())
}
