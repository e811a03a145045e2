//! HTTP handlers of the xAPI Statements resource an LMS talks to (the LRS: post, put,
//! list, about, and the middleware with its version and authentication headers). The
//! administrators' handlers (a statement's fate, mappings, account links) are in
//! `http_admin`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{get, post, put, web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::context::{Context, Ctx};
use crate::error::{AppError, Problem};
use crate::http::{media_type, read_body, Page};
use crate::integrations::shared::{require_admin, ListParams, PROBLEM};
use crate::integrations::xapi;

/// The xAPI version of a request to the Statements resource: 400 without a supported one.
fn version(req: &HttpRequest) -> Result<&'static str, AppError> {
    xapi::negotiate(
        req.headers()
            .get(XAPI_VERSION)
            .and_then(|v| v.to_str().ok()),
    )
}

const XAPI_VERSION: &str = "X-Experience-API-Version";

/// The statements of a request body: one statement object or an array of them.
async fn read_statements(
    ctx: &Ctx,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Vec<serde_json::Value>, AppError> {
    if media_type(req) != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "send statements as application/json".into(),
        ));
    }
    let body = read_body(payload, ctx.config.max_json_body.max(1024 * 1024)).await?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::Malformed(format!("the body is not JSON: {e}")))?;
    let statements = match value {
        serde_json::Value::Array(v) => v,
        v @ serde_json::Value::Object(_) => vec![v],
        _ => {
            return Err(AppError::Malformed(
                "send a statement object or an array of statements".into(),
            ))
        }
    };
    if statements.len() > xapi::MAX_BATCH {
        return Err(AppError::validation(
            "statements",
            "at most 500 statements per request",
        ));
    }
    Ok(statements)
}

/// Store xAPI statements (the LRS Statements resource)
///
/// xAPI 1.0.3 Communication 2.1.2 (2.0.0 where it agrees): one statement or an array;
/// the answer is the array of their ids, in order, ids assigned to statements sent
/// without one. API clients with the scope `activities:write`, authenticated with a
/// client-credentials token or with HTTP Basic (`client_id:client_secret`), as an LMS
/// configured with an LRS endpoint, key and secret sends. Send `X-Experience-API-Version`
/// (`1.0.3`; `1.0.x` and `2.0.x` are accepted); every answer carries it.
///
/// The batch is stored whole or refused whole: 400 when a statement is invalid (the
/// detail names it) or two share an id, 409 when an id was stored before with other
/// content (the same statement again changes nothing). What became of each statement
/// (an activity of the trainee, `unmatched` in the administrators' work list, `ignored`)
/// is the administrators' to read (`GET /xapi/statements/{id}`): a platform learns
/// nothing about which learners have accounts. A voiding statement
/// (`http://adlnet.gov/expapi/verbs/voided`) voids the activity made from its target:
/// it leaves the portfolio and progress, and stays in the audit log.
#[utoipa::path(
    tag = "integrations",
    params(
        ("X-Experience-API-Version" = String, Header, description = "`1.0.3` (any `1.0.x` or `2.0.x`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional; statement ids already make resends safe"),
    ),
    request_body(content = serde_json::Value, content_type = "application/json", example = json!([{
        "actor": {"objectType": "Agent", "mbox": "mailto:bt.lakare@regionstockholm.se"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": "https://lms.regionstockholm.se/courses/forsakringsmedicin"},
        "timestamp": "2026-11-20T13:00:00Z"
    }])),
    responses(
        (status = 200, description = "Stored: the statements' ids, in order", body = Vec<String>, headers(("X-Experience-API-Version" = String))),
        (status = 400, description = "No or an unsupported version header, an invalid statement, an id twice in the batch", body = Problem, content_type = PROBLEM),
        (status = 409, description = "An id stored before with other content", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[post("/xapi/statements")]
pub async fn post_statements(
    ctx: Ctx,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    version(&req)?;
    let statements = read_statements(&ctx, &req, payload).await?;
    let ids = ctx
        .write(move |c, ctx| xapi::ingest(c, ctx, statements))
        .await?;
    Ok(HttpResponse::Ok().json(ids))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// The statement's id (a UUID).
    #[serde(rename = "statementId")]
    #[param(rename = "statementId")]
    pub statement_id: String,
}

/// Store one xAPI statement under an id (the LRS Statements resource)
///
/// xAPI 1.0.3 Communication 2.1.1: the body is one statement; its `id`, when sent, must
/// be `statementId`. 204 when stored, or when this very statement was stored before;
/// 409 when the id was stored with other content. Who may call it, authentication and
/// version rules as for `POST /xapi/statements`.
#[utoipa::path(
    tag = "integrations",
    params(
        PutParams,
        ("X-Experience-API-Version" = String, Header, description = "`1.0.3` (any `1.0.x` or `2.0.x`)"),
    ),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses(
        (status = 204, description = "Stored", headers(("X-Experience-API-Version" = String))),
        (status = 400, description = "No or an unsupported version header, an invalid statement, an id other than statementId", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The id was stored before with other content", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[put("/xapi/statements")]
pub async fn put_statement(
    ctx: Ctx,
    req: HttpRequest,
    query: web::Query<PutParams>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    version(&req)?;
    let id = uuid::Uuid::parse_str(&query.statement_id)
        .map_err(|_| AppError::Malformed("statementId: not a UUID".into()))?
        .to_string();
    let mut statements = read_statements(&ctx, &req, payload).await?;
    let st = match statements.as_mut_slice() {
        [serde_json::Value::Object(o)] => o,
        _ => {
            return Err(AppError::Malformed(
                "send one statement object to PUT".into(),
            ))
        }
    };
    match st.get("id").and_then(|v| v.as_str()) {
        None if !st.contains_key("id") => {
            st.insert("id".into(), serde_json::Value::String(id));
        }
        Some(sent) if uuid::Uuid::parse_str(sent).is_ok_and(|u| u.to_string() == id) => {}
        _ => {
            return Err(AppError::Malformed(
                "the statement's id is not the statementId of the request".into(),
            ))
        }
    }
    ctx.write(move |c, ctx| xapi::ingest(c, ctx, statements))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementFilter {
    /// Administrators: `unmatched`, `created`, `ignored` or `dismissed`.
    pub status: Option<String>,
    /// Administrators: statements one client sent.
    pub client_id: Option<String>,
    /// Administrators: page size. LRS clients: at most this many statements per page
    /// (0: the server's maximum, 500).
    pub limit: Option<i64>,
    /// The next page: administrators pass the previous page's `next_cursor`; LRS
    /// clients follow the StatementResult's more, which carries it.
    pub cursor: Option<String>,
    /// LRS clients: one statement (404 when voided).
    #[serde(rename = "statementId")]
    #[param(rename = "statementId")]
    pub statement_id: Option<String>,
    /// LRS clients: one voided statement.
    #[serde(rename = "voidedStatementId")]
    #[param(rename = "voidedStatementId")]
    pub voided_statement_id: Option<String>,
    /// LRS clients: statements with this verb IRI.
    pub verb: Option<String>,
    /// LRS clients: statements whose actor is this Agent (JSON, with one inverse
    /// functional identifier: mbox, mbox_sha1sum, openid or account).
    pub agent: Option<String>,
    /// LRS clients: statements about this Activity (its IRI, `object.id`).
    pub activity: Option<String>,
    /// LRS clients: statements of this registration (`context.registration`, a UUID).
    pub registration: Option<String>,
    /// LRS clients: `false` (related agents are not searched).
    pub related_agents: Option<bool>,
    /// LRS clients: `false` (related activities are not searched).
    pub related_activities: Option<bool>,
    /// LRS clients: statements stored after this instant.
    pub since: Option<String>,
    /// LRS clients: statements stored at or before this instant.
    pub until: Option<String>,
    /// LRS clients: oldest first.
    pub ascending: Option<bool>,
    /// LRS clients: `ids`, `exact` or `canonical` (statements are returned as stored
    /// whichever is asked for).
    pub format: Option<String>,
    /// LRS clients: `false` (attachments are not stored).
    pub attachments: Option<bool>,
}

fn instant(field: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, AppError> {
    v.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| AppError::validation(field, "an ISO 8601 / RFC 3339 time"))
    })
    .transpose()
}

/// Read xAPI statements (LRS clients), or list received ones (administrators)
///
/// **LRS clients** (xAPI 1.0.3 Communication 2.1.3, with `X-Experience-API-Version`):
/// `?statementId=` returns the statement as stored (with `stored`, `authority`,
/// `version`), 404 when voided; `?voidedStatementId=` returns a voided one; otherwise a
/// StatementResult of the client's statements that are not voided, newest first (or
/// `ascending`), filtered by `agent`, `verb`, `activity`, `registration`, `since`,
/// `until`, at most `limit` a page; `more` is the IRL of the next page (empty on the
/// last). A client reads the statements it sent.
///
/// **Administrators**: statements received by the clients of their organisations,
/// newest first, with what became of each. `status=unmatched` is the work list.
#[utoipa::path(
    tag = "integrations",
    params(StatementFilter),
    responses(
        (status = 200, description = "Administrators: a page of statements. LRS clients: one statement, or a StatementResult", body = xapi::StatementsAnswer),
        (status = 400, description = "An LRS client: no or an unsupported version header, or statementId with filters", body = Problem, content_type = PROBLEM),
        (status = 404, description = "An LRS client: no such statement of this client (or voided, or not voided)", body = Problem, content_type = PROBLEM),
    ),
    security(("bearer" = []), ("basic" = []))
)]
#[get("/xapi/statements")]
pub async fn list_statements(
    ctx: Ctx,
    req: HttpRequest,
    query: web::Query<StatementFilter>,
) -> Result<HttpResponse, AppError> {
    let q = query.into_inner();
    if ctx.caller.is_client() {
        return lrs_get(ctx, &req, q).await;
    }
    require_admin(&ctx.caller)?;
    if q.statement_id.is_some() || q.voided_statement_id.is_some() {
        return Err(AppError::validation(
            "statementId",
            "administrators read a statement at /xapi/statements/{id}",
        ));
    }
    if let Some(s) = &q.status {
        if !["unmatched", "created", "ignored", "dismissed"].contains(&s.as_str()) {
            return Err(AppError::validation(
                "status",
                "unmatched, created, ignored or dismissed",
            ));
        }
    }
    let (limit, after) = ListParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let (status, client_id) = (q.status, q.client_id);
    let rows = ctx
        .read(move |c, ctx| {
            xapi::list_statements(
                c,
                &ctx.caller,
                status.as_deref(),
                client_id.as_deref(),
                after.as_deref(),
                limit,
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, |s| {
        format!("{}|{}", s.received_at.to_rfc3339(), s.id)
    })))
}

/// `GET /xapi/statements` of an LRS client.
async fn lrs_get(
    ctx: Ctx,
    req: &HttpRequest,
    q: StatementFilter,
) -> Result<HttpResponse, AppError> {
    version(req)?;
    ctx.caller
        .require_scope(crate::integrations::clients::SCOPE_ACTIVITIES_WRITE)?;
    let client = ctx
        .caller
        .client
        .clone()
        .ok_or_else(|| AppError::internal("a client without its client"))?;
    if q.status.is_some() || q.client_id.is_some() {
        return Err(AppError::Malformed(
            "status and client_id are the administrators' list parameters".into(),
        ));
    }
    if q.related_agents == Some(true) || q.related_activities == Some(true) {
        return Err(AppError::validation(
            "related_agents",
            "related agents and activities are not searched: send false or leave it out",
        ));
    }
    let consistent = ctx.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let public_url = ctx.config.public_url.clone();
    let single = match (&q.statement_id, &q.voided_statement_id) {
        (Some(_), Some(_)) => {
            return Err(AppError::Malformed(
                "send statementId or voidedStatementId, not both".into(),
            ))
        }
        (Some(id), None) => Some((id.clone(), false)),
        (None, Some(id)) => Some((id.clone(), true)),
        (None, None) => None,
    };
    let body = if let Some((id, voided)) = single {
        // Communication 2.1.3: with an id, only `attachments` and `format` may come along.
        if q.verb.is_some()
            || q.agent.is_some()
            || q.activity.is_some()
            || q.registration.is_some()
            || q.cursor.is_some()
            || q.since.is_some()
            || q.until.is_some()
            || q.ascending.is_some()
            || q.limit.is_some()
        {
            return Err(AppError::Malformed(
                "statementId and voidedStatementId come without other filters".into(),
            ));
        }
        ctx.read(move |c, _| xapi::statement_by_id(c, &client, &public_url, &id, voided))
            .await?
    } else {
        let limit = match q.limit {
            None | Some(0) => xapi::MAX_BATCH as i64,
            Some(n) if n > 0 => n.min(xapi::MAX_BATCH as i64),
            Some(_) => return Err(AppError::validation("limit", "0 or more")),
        };
        let filter = xapi::Query {
            verb: q.verb.clone(),
            agent: q.agent.as_deref().map(agent).transpose()?,
            activity: q
                .activity
                .clone()
                .map(|a| {
                    xapi::is_iri(&a)
                        .then_some(a)
                        .ok_or_else(|| AppError::validation("activity", "an Activity's IRI"))
                })
                .transpose()?,
            registration: q
                .registration
                .as_deref()
                .map(|r| {
                    uuid::Uuid::parse_str(r)
                        .map(|u| u.to_string())
                        .map_err(|_| AppError::validation("registration", "a UUID"))
                })
                .transpose()?,
            since: instant("since", q.since.as_deref())?,
            until: instant("until", q.until.as_deref())?,
            ascending: q.ascending.unwrap_or(false),
            limit,
            after: q
                .cursor
                .as_deref()
                .map(|c| {
                    xapi::parse_cursor(c).ok_or_else(|| {
                        AppError::validation("cursor", "is not from this LRS's `more`")
                    })
                })
                .transpose()?,
        };
        let (statements, next) = ctx
            .read(move |c, _| xapi::statements(c, &client, &public_url, &filter))
            .await?;
        let more = next.map(|cursor| more_irl(&q, &cursor)).unwrap_or_default();
        serde_json::to_value(xapi::StatementResult { statements, more })
            .map_err(|e| AppError::internal(e.to_string()))?
    };
    Ok(HttpResponse::Ok()
        .insert_header(("X-Experience-API-Consistent-Through", consistent))
        .json(body))
}

/// The learner an `agent` filter names, as statements' learners are stored.
fn agent(text: &str) -> Result<String, AppError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| AppError::validation("agent", "an Agent object as JSON"))?;
    let object = value
        .as_object()
        .filter(|o| o.get("objectType").and_then(|t| t.as_str()) != Some("Group"))
        .ok_or_else(|| AppError::validation("agent", "an Agent object as JSON"))?;
    xapi::learner(object, "agent")
        .map(|l| l.describe())
        .map_err(|e| AppError::validation("agent", &e))
}

/// The IRL of the page after `cursor` (Data 2.5 `more`): this resource's path with the
/// same filters and the cursor, relative to the server as the spec asks.
fn more_irl(q: &StatementFilter, cursor: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let texts = [
        ("agent", &q.agent),
        ("verb", &q.verb),
        ("activity", &q.activity),
        ("registration", &q.registration),
        ("since", &q.since),
        ("until", &q.until),
        ("format", &q.format),
    ];
    for (name, value) in texts {
        if let Some(v) = value {
            query.append_pair(name, v);
        }
    }
    if let Some(l) = q.limit {
        query.append_pair("limit", &l.to_string());
    }
    if let Some(a) = q.ascending {
        query.append_pair("ascending", &a.to_string());
    }
    query.append_pair("cursor", cursor);
    format!("/api/v1/xapi/statements?{}", query.finish())
}

/// The xAPI About resource
///
/// The xAPI versions this LRS speaks: 1.0.3 and 2.0.0; a request naming a 1.0.x version
/// hears of 1.0.3 only (1.0 libraries refuse versions they do not know). No
/// authentication, no version header needed.
#[utoipa::path(
    tag = "integrations",
    responses((status = 200, description = "Versions", body = xapi::About, headers(("X-Experience-API-Version" = String)))),
    security(())
)]
#[get("/xapi/about")]
pub async fn about(_ctx: Context<()>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let asked = req
        .headers()
        .get(XAPI_VERSION)
        .and_then(|v| v.to_str().ok());
    Ok(HttpResponse::Ok().json(xapi::about(asked)))
}

/// Around the LRS resources (`/xapi/statements`, `/xapi/about`): HTTP Basic
/// authentication of API clients by id and secret (what LMSs configured with an LRS
/// key and secret send), and the `X-Experience-API-Version` header on every answer,
/// refusals included (Communication 3.3). Runs outside the idempotency middleware,
/// which reuses the principal found here.
pub async fn lrs_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path();
    let statements = path == "/api/v1/xapi/statements";
    if !(statements || path == "/api/v1/xapi/about") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let answer_version = xapi::negotiate(
        req.headers()
            .get(XAPI_VERSION)
            .and_then(|v| v.to_str().ok()),
    )
    .unwrap_or(xapi::VERSIONS[0]);
    let basic = crate::integrations::clients::http::basic_credentials(req.request());
    if let (true, Some((id, secret))) = (statements, basic) {
        let state = req
            .app_data::<web::Data<crate::app::AppState>>()
            .cloned()
            .ok_or_else(|| AppError::internal("state missing"))?;
        let (now, cfg) = (state.clock.now(), state.config.clone());
        let found = crate::db::write(&state.pool, move |c| {
            crate::integrations::clients::basic_principal(
                c,
                &cfg,
                now,
                &crate::ids::ClientId::new(id),
                &secret,
            )
        })
        .await;
        let refusal = match found {
            Ok(Some(p)) => {
                req.extensions_mut().insert(p);
                None
            }
            Ok(None) => Some(AppError::Unauthenticated(
                "unknown client, wrong secret or revoked client".into(),
            )),
            Err(e) => Some(e),
        };
        if let Some(e) = refusal {
            let mut res = req.into_response(e.error_response());
            lrs_headers(&mut res, answer_version);
            return Ok(res);
        }
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    lrs_headers(&mut res, answer_version);
    Ok(res)
}

fn lrs_headers(res: &mut ServiceResponse<BoxBody>, version: &'static str) {
    use actix_web::http::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
    let unauthenticated = res.status() == actix_web::http::StatusCode::UNAUTHORIZED;
    let h = res.headers_mut();
    h.insert(
        HeaderName::from_static("x-experience-api-version"),
        HeaderValue::from_static(version),
    );
    // LRS clients answer a Basic challenge with their key and secret (beside the
    // Bearer challenge, for token clients).
    let has_basic = h
        .get_all(WWW_AUTHENTICATE)
        .any(|v| v.as_bytes().starts_with(b"Basic"));
    if unauthenticated && !has_basic {
        // One header, both challenges (RFC 9110 11.6.1), Basic first.
        let others = h
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(|v| format!(", {v}"))
            .unwrap_or_default();
        if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"eportfolio xAPI\"{others}")) {
            h.insert(WWW_AUTHENTICATE, v);
        }
    }
}
