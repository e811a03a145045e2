//! The patient data guard: free text (titles, reflections, notes, comments, attachment
//! file names) that holds something that looks like a personnummer or samordningsnummer
//! with a valid check digit is refused with a 422 (`patient-data-suspected`) naming the
//! field and where in it the number starts.
//!
//! A trainee may have a good reason (a course code that happens to look like one); the
//! request then carries `"acknowledge_patient_data_warning": true` and goes through, and
//! the audit log records that the warning was acknowledged: field, position and kind,
//! never the matched text, so the log does not become the place the number is kept.
//!
//! xAPI statements and bulk imports have no one to acknowledge: they are refused.
//!
//! Only numbers that validate are matched (the date of birth exists and is not in the
//! future, the Luhn check digit is right), and only whole digit groups: digits inside a
//! longer run of digits never match, so order numbers and phone numbers mostly pass.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::accounts::personal_number::{self, NumberKind};
use crate::app::AppState;
use crate::audit::{self, Event};
use crate::context::Ctx;
use crate::db::DbConn;
use crate::error::{AppError, FieldError};

/// The request field that acknowledges the warning.
pub const ACKNOWLEDGE: &str = "acknowledge_patient_data_warning";

/// Fields of request bodies that hold free text (anything under them is screened, e.g.
/// every value of an assessment's `context`, every `comment` of a handover talk's
/// delmål). Ids, dates, codes and e-mail addresses are not free text.
pub const FREE_TEXT_FIELDS: &[&str] = &[
    "title",
    "reflection",
    "trainee_reflection",
    "notes",
    "comment",
    "agreed_actions",
    "topics",
    "feedback_strengths",
    "feedback_next_steps",
    "context",
    "strengths",
    "areas_to_develop",
    "plan_next_placement",
    "overall",
    "reason",
];

/// A number found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Where it starts, in characters from 0.
    pub position: usize,
    /// How many characters it spans (with its separator).
    pub length: usize,
    pub kind: NumberKind,
}

/// Every personnummer or samordningsnummer with a valid check digit in `text`, in the
/// forms `YYYYMMDDNNNN`, `YYYYMMDD-NNNN`, `YYMMDDNNNN`, `YYMMDD-NNNN`, `YYMMDD+NNNN` (and
/// with a space for the separator, as people type them). A match must stand alone: no
/// digit right before or after it. `today` decides the century of ten-digit forms and
/// that no date of birth lies ahead.
pub fn find_personal_numbers(text: &str, today: NaiveDate) -> Vec<Found> {
    let chars: Vec<char> = text.chars().collect();
    let digit_run = |from: usize| {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let first = digit_run(i);
        let head: String = chars[i..i + first].iter().collect();
        let mut candidate: Option<(String, usize)> = match first {
            10 | 12 => Some((head.clone(), first)),
            _ => None,
        };
        if candidate.is_none() && (first == 6 || first == 8) {
            let sep = i + first;
            if let Some(&s) = chars.get(sep) {
                if (s == '-' || s == '+' || s == ' ') && digit_run(sep + 1) == 4 {
                    let tail: String = chars[sep + 1..sep + 5].iter().collect();
                    // The long form is read without separator, the short one with its
                    // own (`+`: a hundred years more); a space reads as `-`.
                    let text = match (first, s) {
                        (8, _) => format!("{head}{tail}"),
                        (_, '+') => format!("{head}+{tail}"),
                        _ => format!("{head}-{tail}"),
                    };
                    candidate = Some((text, first + 5));
                }
            }
        }
        if let Some((text, length)) = candidate {
            if let Ok(n) = personal_number::parse(&text, today) {
                found.push(Found {
                    position: i,
                    length,
                    kind: n.kind(),
                });
                i += length;
                continue;
            }
        }
        i += first;
    }
    found
}

/// One finding in a request: the field (a JSON path) and the number's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub field: String,
    pub position: usize,
    pub kind: NumberKind,
}

impl Finding {
    fn problem(&self) -> FieldError {
        FieldError {
            field: self.field.clone(),
            message: format!(
                "looks like it holds a {} (valid check digit) at character {}; patient data \
                 does not belong here",
                self.kind.as_str(),
                self.position
            ),
            position: Some(self.position),
        }
    }

    fn audit(&self) -> Value {
        json!({"field": self.field, "position": self.position, "kind": self.kind.as_str()})
    }
}

/// Screens one text; `field` names it in the findings.
pub fn screen_text(field: &str, text: &str, today: NaiveDate) -> Vec<Finding> {
    find_personal_numbers(text, today)
        .into_iter()
        .map(|f| Finding {
            field: field.to_string(),
            position: f.position,
            kind: f.kind,
        })
        .collect()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Every string under `value`, with its JSON path; `all` screens every string (but
/// UUIDs), otherwise only those under a free-text field.
fn walk(value: &Value, path: &str, all: bool, today: NaiveDate, out: &mut Vec<Finding>) {
    match value {
        // A UUID's last group can be twelve digits that happen to validate.
        Value::String(s) if all && uuid::Uuid::parse_str(s).is_err() => {
            out.extend(screen_text(path, s, today))
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{path}[{i}]"), all, today, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let free = all || FREE_TEXT_FIELDS.contains(&k.as_str());
                walk(v, &join(path, k), free, today, out);
            }
        }
        _ => {}
    }
}

/// The free-text fields of a request body that hold a number.
pub fn screen_body(body: &Value, today: NaiveDate) -> Vec<Finding> {
    let mut out = Vec::new();
    walk(body, "", false, today, &mut out);
    out
}

/// Refuses findings that were not acknowledged; acknowledged ones go on to be recorded.
pub fn refuse_unless(findings: Vec<Finding>, acknowledged: bool) -> Result<Acknowledged, AppError> {
    if !findings.is_empty() && !acknowledged {
        return Err(AppError::PatientDataSuspected(
            findings.iter().map(Finding::problem).collect(),
        ));
    }
    Ok(Acknowledged {
        findings,
        operation: String::new(),
        target: None,
    })
}

/// Screens one field that does not come in a JSON body (an attachment's file name in
/// the query), acknowledged by a query parameter of the same name.
pub fn screen_field(
    req: &HttpRequest,
    field: &str,
    text: &str,
    today: NaiveDate,
    acknowledged: bool,
) -> Result<Acknowledged, AppError> {
    let mut ack = refuse_unless(screen_text(field, text, today), acknowledged)?;
    ack.operation = operation_of(req);
    ack.target = req.match_info().get("id").map(str::to_string);
    Ok(ack)
}

fn operation_of(req: &HttpRequest) -> String {
    format!(
        "{} {}",
        req.method(),
        req.match_pattern().unwrap_or_default()
    )
}

/// Takes the acknowledgement out of a JSON object body (it is not part of the record).
pub fn take_acknowledgement(body: &mut Value) -> Result<bool, AppError> {
    let Some(map) = body.as_object_mut() else {
        return Ok(false);
    };
    match map.remove(ACKNOWLEDGE) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err(AppError::validation(ACKNOWLEDGE, "must be true or false")),
    }
}

/// Findings a client acknowledged, to be written to the audit log in the request's
/// write transaction (so only when the write itself happens).
#[derive(Debug, Clone, Default)]
pub struct Acknowledged {
    findings: Vec<Finding>,
    /// `POST /enrolments/{id}/activities`: the route, not the path with its ids.
    operation: String,
    /// The `{id}` of the path, if any (the record, or the enrolment of a new record).
    target: Option<String>,
}

impl Acknowledged {
    /// Records the acknowledgement (nothing when there was nothing to acknowledge):
    /// field, position and kind of each number, never the text.
    pub fn record(&self, conn: &mut DbConn, ctx: &Ctx) -> Result<(), AppError> {
        self.record_for(
            conn,
            ctx.now,
            Some(&ctx.caller.user_id),
            ctx.client.user_agent.as_deref(),
        )
    }

    /// As `record`, for a caller who is not signed in (a signing link's holder).
    pub fn record_for(
        &self,
        conn: &mut DbConn,
        now: chrono::DateTime<chrono::Utc>,
        actor: Option<&str>,
        client: Option<&str>,
    ) -> Result<(), AppError> {
        if self.findings.is_empty() {
            return Ok(());
        }
        let data = json!({
            "operation": self.operation,
            "findings": self.findings.iter().map(Finding::audit).collect::<Vec<_>>(),
        });
        audit::append(
            conn,
            now,
            Event {
                actor_id: actor,
                client,
                action: "patient_data_warning_acknowledged",
                entity: "request",
                entity_id: self.target.as_deref().unwrap_or(""),
                enrolment_id: None,
                data: &data,
            },
        )
    }

    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A JSON request body whose free text passed the guard (or whose findings the client
/// acknowledged): use it instead of `web::Json<T>`. `T` never sees the acknowledgement
/// field, so request types keep `deny_unknown_fields`.
pub struct Guarded<T> {
    body: T,
    acknowledged: Acknowledged,
}

impl<T> Guarded<T> {
    /// The body, and what to record in the write.
    pub fn into_parts(self) -> (T, Acknowledged) {
        (self.body, self.acknowledged)
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Guarded<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // No body at all, for a body that is optional (`Guarded<Option<T>>`): nothing to
        // screen.
        if no_body(req) {
            if let Ok(body) = serde_json::from_value::<T>(Value::Null) {
                return Box::pin(async move {
                    Ok(Guarded {
                        body,
                        acknowledged: Acknowledged::default(),
                    })
                });
            }
        }
        // The JSON extractor keeps the service's limits and its problem answers.
        let json = web::Json::<Value>::from_request(req, payload);
        let today = req
            .app_data::<web::Data<AppState>>()
            .map(|s| crate::clock::day_of(s.clock.now()));
        let operation = operation_of(req);
        let target = req.match_info().get("id").map(str::to_string);
        Box::pin(async move {
            let mut value = json.await?.into_inner();
            let today = today
                .ok_or_else(|| AppError::internal("the application state is not registered"))?;
            let acknowledged = take_acknowledgement(&mut value)?;
            let mut ack = refuse_unless(screen_body(&value, today), acknowledged)?;
            ack.operation = operation;
            ack.target = target;
            let body = serde_json::from_value::<T>(value).map_err(|e| {
                AppError::Malformed(format!("the JSON does not fit the schema: {e}"))
            })?;
            Ok(Guarded {
                body,
                acknowledged: ack,
            })
        })
    }
}

fn no_body(req: &HttpRequest) -> bool {
    let headers = req.headers();
    match headers.get(actix_web::http::header::CONTENT_LENGTH) {
        Some(v) => v.as_bytes() == b"0",
        None => !headers.contains_key(actix_web::http::header::TRANSFER_ENCODING),
    }
}

/// Request bodies read through `Guarded` (their schemas in the OpenAPI document).
const GUARDED_SCHEMAS: &[&str] = &[
    "NewActivity",
    "ActivityPatch",
    "NewAssessment",
    "AssessmentContent",
    "DeclineRequest",
    "CoSignRequest",
    "NewSupervisionSession",
    "NewHandoverTalk",
    "NewFinalCheckIn",
    "NewSupervisorCheckIn",
    "TalkContent",
    "NewSummary",
    "SummaryPatch",
];

/// Adds the acknowledgement to the guarded request schemas of the OpenAPI document (the
/// request types never see it, so utoipa cannot), and the 422 to their operations.
pub fn document(doc: &mut Value) {
    let property = json!({
        "type": "boolean",
        "description": "Send `true` when the request was refused as `patient-data-suspected` \
                        and the text is not patient data (a course code that looks like a \
                        personnummer). Recorded in the audit log, without the text."
    });
    for name in GUARDED_SCHEMAS {
        if let Some(Value::Object(props)) =
            doc.pointer_mut(&format!("/components/schemas/{name}/properties"))
        {
            props.insert(ACKNOWLEDGE.to_string(), property.clone());
        }
    }
    let refs: Vec<String> = GUARDED_SCHEMAS
        .iter()
        .map(|n| format!("#/components/schemas/{n}"))
        .collect();
    let Some(Value::Object(paths)) = doc.get_mut("paths") else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let guarded = op
                .pointer("/requestBody/content/application~1json/schema/$ref")
                .and_then(Value::as_str)
                .is_some_and(|r| refs.iter().any(|g| g == r));
            let Some(Value::Object(responses)) = op.get_mut("responses") else {
                continue;
            };
            if !guarded {
                continue;
            }
            let description = "Invalid (`validation`), or free text that looks like it holds a \
                               personnummer (`patient-data-suspected`: field and position in \
                               `errors`; resend with `acknowledge_patient_data_warning`)";
            let problem = json!({
                "description": description,
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            });
            match responses.get_mut("422") {
                Some(existing) => existing["description"] = json!(description),
                None => {
                    responses.insert("422".into(), problem);
                }
            }
        }
    }
}

/// Refuses rows of a bulk import holding a number anywhere (no one acknowledges a
/// row): 422 naming `rows[i].field`.
pub fn screen_import_rows(rows: &[Value], today: NaiveDate) -> Result<(), AppError> {
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        walk(row, &format!("rows[{i}]"), true, today, &mut out);
    }
    refuse_unless(out, false).map(|_| ())
}

/// Why an xAPI statement is rejected for holding a number, if it does: every string but
/// the actor (the learner's own identity) and ids that are UUIDs.
pub fn statement_finding(statement: &Value, today: NaiveDate) -> Option<String> {
    let mut stripped: Map<String, Value> = statement.as_object()?.clone();
    stripped.remove("actor");
    stripped.remove("authority");
    let mut out = Vec::new();
    walk(&Value::Object(stripped), "", true, today, &mut out);
    out.first().map(|f| {
        format!(
            "{} looks like it holds a {} at character {}; patient data is not recorded",
            f.field,
            f.kind.as_str(),
            f.position
        )
    })
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
