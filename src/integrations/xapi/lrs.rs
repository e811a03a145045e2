//! The Statements resource as an LRS client reads it (xAPI 1.0.3 Communication 2.1.3):
//! one statement by id (voided or not), or a StatementResult; and the version rules.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::principal::ClientPrincipal;
use crate::clock::{from_db, to_db};
use crate::db::DbConn;
use crate::error::AppError;
use crate::integrations::JsonText;
use crate::schema::xapi_statements;

/// The versions of xAPI this LRS speaks, newest patch of each (the About resource).
pub const VERSIONS: [&str; 2] = ["1.0.3", "2.0.0"];

/// The version to answer a request with (Communication 3.3): `1.0` and `1.0.x` are
/// answered as 1.0.3, `2.0.x` as 2.0.0; anything else, or no header, is refused (400).
pub fn negotiate(header: Option<&str>) -> Result<&'static str, AppError> {
    let v = header.map(str::trim).unwrap_or("");
    if v == "1.0" || v.starts_with("1.0.") {
        Ok(VERSIONS[0])
    } else if v == "2.0" || v.starts_with("2.0.") {
        Ok(VERSIONS[1])
    } else if v.is_empty() {
        Err(AppError::Malformed(
            "send the header X-Experience-API-Version: 1.0.3 (or 2.0.0)".into(),
        ))
    } else {
        Err(AppError::Malformed(format!(
            "X-Experience-API-Version {v} is not supported: 1.0.x or 2.0.x"
        )))
    }
}

/// The About resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct About {
    /// The xAPI versions supported.
    #[schema(example = json!(["1.0.3", "2.0.0"]))]
    pub version: Vec<String>,
    pub extensions: Value,
}

/// The About resource for a request of `version`: 1.0 clients are told of 1.0.3 only,
/// because 1.0 libraries refuse an About naming a version they do not know
/// (TinCanPython raises on `2.0.0`); a 2.0 client (or one naming none) hears both.
pub fn about(version: Option<&str>) -> About {
    let only_1_0 = version.is_some_and(|v| v.trim().starts_with("1.0"));
    About {
        version: VERSIONS
            .iter()
            .filter(|v| !only_1_0 || v.starts_with("1.0"))
            .map(|v| v.to_string())
            .collect(),
        extensions: json!({}),
    }
}

/// A page of statements (Data 2.5).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementResult {
    #[schema(value_type = Vec<Object>)]
    pub statements: Vec<Value>,
    /// The IRL of the next page (a path with its query, relative to the server: GET it
    /// with the same credentials and version header), or empty on the last page.
    #[schema(
        example = "/api/v1/xapi/statements?limit=2&cursor=MjAyNi0xMS0yMFQxMzowMDowMC4wMDB8YjE"
    )]
    pub more: String,
}

/// A statement as the LRS returns it (the schema of the answer to `?statementId=`; the
/// statement has every property it was sent with).
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredStatement {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(value_type = Object)]
    pub actor: Value,
    #[schema(value_type = Object)]
    pub verb: Value,
    #[schema(value_type = Object)]
    pub object: Value,
    /// When the LRS stored it.
    pub stored: String,
    pub timestamp: String,
    /// The API client that sent it.
    #[schema(value_type = Object)]
    pub authority: Value,
    pub version: String,
}

/// What `GET /xapi/statements` answers: administrators a page of received statements,
/// LRS clients a StatementResult or one statement.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StatementsAnswer {
    Page(crate::http::Page<super::XapiStatement>),
    Result(StatementResult),
    Statement(StoredStatement),
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = xapi_statements, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct Stored {
    id: String,
    #[diesel(deserialize_as = String)]
    statement: JsonText,
    received_at: NaiveDateTime,
    voided_by: Option<String>,
}

/// A stored statement as the LRS returns it: with `stored`, `authority` (the client that
/// sent it), `version` and `timestamp` set as Data 2.4 asks of an LRS.
fn render(s: Stored, client: &ClientPrincipal, public_url: &str) -> Value {
    let stored = from_db(s.received_at).to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut v = s.statement.0;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("stored".into(), Value::String(stored.clone()));
        obj.entry("timestamp").or_insert(Value::String(stored));
        obj.entry("version")
            .or_insert(Value::String("1.0.0".into()));
        obj.insert(
            "authority".into(),
            json!({"objectType": "Agent", "name": client.name,
                   "account": {"homePage": public_url, "name": client.client_id}}),
        );
    }
    v
}

/// One of the client's statements by id: `voided` false for `?statementId=` (a voided
/// statement is then 404), true for `?voidedStatementId=` (only a voided one is found).
/// A client reads the statements it sent, nobody else's.
pub fn statement_by_id(
    conn: &mut DbConn,
    client: &ClientPrincipal,
    public_url: &str,
    id: &str,
    voided: bool,
) -> Result<Value, AppError> {
    let s: Stored = xapi_statements::table
        .find((&client.organisation_id, id))
        .filter(xapi_statements::client_id.eq(&client.client_id))
        .select(Stored::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    if s.voided_by.is_some() != voided {
        return Err(AppError::NotFound);
    }
    Ok(render(s, client, public_url))
}

/// Filters of a StatementResult this LRS applies.
#[derive(Debug, Default)]
pub struct Query {
    pub verb: Option<String>,
    /// The learner as stored (`Learner::describe`): statements whose actor is this Agent.
    pub agent: Option<String>,
    /// Statements about this Activity (`object.id`).
    pub activity: Option<String>,
    /// `context.registration` (lower case).
    pub registration: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub ascending: bool,
    pub limit: i64,
    /// The last statement of the previous page: its `stored` and id.
    pub after: Option<(NaiveDateTime, String)>,
}

/// A page's continuation (`more`): the last statement's `stored` (as stored, to the
/// digit) and id.
pub fn cursor_of(received_at: NaiveDateTime, id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}|{id}",
        received_at.format("%Y-%m-%dT%H:%M:%S%.f")
    ))
}

/// The position a cursor of [`cursor_of`] names; `None` for anything else.
pub fn parse_cursor(cursor: &str) -> Option<(NaiveDateTime, String)> {
    use base64::Engine;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    let (at, id) = text.split_once('|')?;
    let at = NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some((at, id.to_string()))
}

/// The client's statements that are not voided, newest stored first (Communication
/// 2.1.3), at most `limit`, after the cursor's position; the second value is the cursor
/// of the next page when there is one.
pub fn statements(
    conn: &mut DbConn,
    client: &ClientPrincipal,
    public_url: &str,
    q: &Query,
) -> Result<(Vec<Value>, Option<String>), AppError> {
    let mut query = xapi_statements::table
        .filter(xapi_statements::organisation_id.eq(&client.organisation_id))
        .filter(xapi_statements::client_id.eq(&client.client_id))
        .filter(xapi_statements::voided_by.is_null())
        .select(Stored::as_select())
        .into_boxed();
    if let Some(v) = &q.verb {
        query = query.filter(xapi_statements::verb.eq(v.clone()));
    }
    if let Some(a) = &q.agent {
        query = query.filter(xapi_statements::learner.eq(a.clone()));
    }
    if let Some(a) = &q.activity {
        // `activity_iri` also holds a StatementRef's target id or an object type: only
        // Activities have an IRI with a scheme, which the filter must be.
        query = query.filter(xapi_statements::activity_iri.eq(a.clone()));
    }
    if let Some(r) = &q.registration {
        query = query.filter(xapi_statements::registration.eq(r.clone()));
    }
    if let Some((at, id)) = &q.after {
        query = if q.ascending {
            query.filter(
                xapi_statements::received_at
                    .gt(*at)
                    .or(xapi_statements::received_at
                        .eq(*at)
                        .and(xapi_statements::id.gt(id.clone()))),
            )
        } else {
            query.filter(
                xapi_statements::received_at
                    .lt(*at)
                    .or(xapi_statements::received_at
                        .eq(*at)
                        .and(xapi_statements::id.lt(id.clone()))),
            )
        };
    }
    if let Some(t) = q.since {
        query = query.filter(xapi_statements::received_at.gt(to_db(t)));
    }
    if let Some(t) = q.until {
        query = query.filter(xapi_statements::received_at.le(to_db(t)));
    }
    query = if q.ascending {
        query.order((
            xapi_statements::received_at.asc(),
            xapi_statements::id.asc(),
        ))
    } else {
        query.order((
            xapi_statements::received_at.desc(),
            xapi_statements::id.desc(),
        ))
    };
    let mut rows = query.limit(q.limit + 1).load::<Stored>(conn)?;
    let more = rows.len() as i64 > q.limit;
    rows.truncate(q.limit as usize);
    let next = rows
        .last()
        .filter(|_| more)
        .map(|s| cursor_of(s.received_at, &s.id));
    Ok((
        rows.into_iter()
            .map(|s| render(s, client, public_url))
            .collect(),
        next,
    ))
}
