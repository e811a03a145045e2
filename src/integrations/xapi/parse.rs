//! Parsing a statement: learner, verb, object, time.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::crypto::sha256_hex;
use crate::ids::StatementId;

/// The verb of a voiding statement (xAPI 1.0.3 Data 2.3.2).
pub const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

#[derive(Debug, Clone, PartialEq)]
pub enum Learner {
    Mbox(String),
    Account {
        home_page: String,
        name: String,
    },
    /// Identified in a way that cannot be matched (mbox_sha1sum, openid).
    Other(String),
}

impl Learner {
    pub(super) fn describe(&self) -> String {
        match self {
            Learner::Mbox(e) => format!("mailto:{e}"),
            Learner::Account { home_page, name } => format!("account {name} at {home_page}"),
            Learner::Other(d) => d.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Parsed {
    pub id: StatementId,
    pub verb: String,
    /// The object's id: an activity's IRI, a referenced statement's id, an agent's
    /// identifier (only activities are recorded).
    pub activity_iri: String,
    /// Whether the object is an Activity (only those are recorded as learning).
    pub is_activity: bool,
    /// For a voiding statement (`verb.id` = [`VOIDED`]): the id of the voided statement.
    pub voids: Option<StatementId>,
    pub learner: Learner,
    /// `context.registration` (lower case).
    pub registration: Option<String>,
    pub date: Option<NaiveDate>,
    pub hash: String,
    pub canonical: String,
}

pub(super) fn is_iri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && !rest.is_empty()
        && !s.chars().any(char::is_whitespace)
}

/// The learner an Agent (`what`: `actor`, or the `agent` filter) names, by its one
/// inverse functional identifier; a Group is stored like any statement, but it is no
/// trainee, so nothing is recorded for it.
pub fn learner(actor: &serde_json::Map<String, Value>, what: &str) -> Result<Learner, String> {
    let is_group = actor.get("objectType").and_then(Value::as_str) == Some("Group");
    let ifis = ["mbox", "mbox_sha1sum", "openid", "account"]
        .iter()
        .filter(|k| actor.contains_key(**k))
        .count();
    // An anonymous Group (members only) has no identifier; an Agent needs exactly one.
    if ifis > 1 || (ifis == 0 && !is_group) {
        return Err(format!(
            "{what}: exactly one of mbox, mbox_sha1sum, openid, account (inverse functional identifier)"
        ));
    }
    Ok(if is_group {
        Learner::Other("a Group".into())
    } else if let Some(m) = actor.get("mbox") {
        let email = m
            .as_str()
            .and_then(|m| m.strip_prefix("mailto:"))
            .filter(|e| e.contains('@') && !e.contains(char::is_whitespace))
            .ok_or(format!("{what}.mbox: a mailto: IRI"))?;
        Learner::Mbox(email.trim().to_lowercase())
    } else if let Some(a) = actor.get("account") {
        let home = a.get("homePage").and_then(Value::as_str);
        let name = a.get("name").and_then(Value::as_str);
        match (home, name) {
            (Some(h), Some(n)) if is_iri(h) && !n.is_empty() => Learner::Account {
                home_page: h.to_string(),
                name: n.to_string(),
            },
            _ => {
                return Err(format!(
                    "{what}.account: homePage (an IRL) and name are required"
                ))
            }
        }
    } else if let Some(s) = actor.get("mbox_sha1sum").and_then(Value::as_str) {
        Learner::Other(format!("mbox_sha1sum {s}"))
    } else {
        Learner::Other(format!(
            "openid {}",
            actor.get("openid").and_then(Value::as_str).unwrap_or("")
        ))
    })
}

/// The statement's `context.registration`, a UUID (lower case); `Err` when it is not one.
fn registration(obj: &serde_json::Map<String, Value>) -> Result<Option<String>, String> {
    match obj.get("context").and_then(|c| c.get("registration")) {
        None => Ok(None),
        Some(Value::String(r)) => Uuid::parse_str(r)
            .map(|u| Some(u.to_string()))
            .map_err(|_| "context.registration: not a UUID".to_string()),
        Some(_) => Err("context.registration: not a UUID".into()),
    }
}

/// Checks the parts of a statement this service relies on; `Err` is the reason it is
/// rejected.
pub fn parse(statement: &Value) -> Result<Parsed, String> {
    let obj = statement
        .as_object()
        .ok_or("a statement must be a JSON object")?;
    let id = match obj.get("id") {
        Some(Value::String(s)) => Uuid::parse_str(s)
            .map(|u| StatementId::new(u.to_string()))
            .map_err(|_| "id: not a UUID".to_string())?,
        Some(_) => return Err("id: not a UUID".into()),
        // `ingest` gives statements without an id one before parsing them.
        None => return Err("id: required".into()),
    };
    let actor = obj
        .get("actor")
        .and_then(Value::as_object)
        .ok_or("actor: required, an Agent object")?;
    let learner = learner(actor, "actor")?;
    let registration = registration(obj)?;
    let verb = obj
        .get("verb")
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .filter(|v| is_iri(v))
        .ok_or("verb.id: required, an IRI")?
        .to_string();
    let object = obj
        .get("object")
        .and_then(Value::as_object)
        .ok_or("object: required")?;
    let object_type = object
        .get("objectType")
        .and_then(Value::as_str)
        .unwrap_or("Activity");
    let is_activity = object_type == "Activity";
    let activity_iri = match object_type {
        "Activity" => object
            .get("id")
            .and_then(Value::as_str)
            .filter(|v| is_iri(v))
            .ok_or("object.id: required, an IRI")?
            .to_string(),
        "StatementRef" => object
            .get("id")
            .and_then(Value::as_str)
            .and_then(|v| Uuid::parse_str(v).ok())
            .ok_or("object.id: a StatementRef's id is a UUID")?
            .to_string(),
        "Agent" | "Group" | "SubStatement" => object_type.to_string(),
        other => {
            return Err(format!(
                "object.objectType: {other} is not an xAPI object type"
            ))
        }
    };
    let voids = if verb == VOIDED {
        if object_type != "StatementRef" {
            return Err("object: a voiding statement's object is a StatementRef".into());
        }
        Some(StatementId::new(activity_iri.clone()))
    } else {
        None
    };
    let date = match obj.get("timestamp") {
        None => None,
        // The Swedish calendar day of the instant, as for records made in the service.
        Some(Value::String(t)) => Some(crate::clock::day_of(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| "timestamp: not an ISO 8601 / RFC 3339 time".to_string())?
                .with_timezone(&Utc),
        )),
        Some(_) => return Err("timestamp: not an ISO 8601 / RFC 3339 time".into()),
    };
    if let Some(v) = obj.get("version").and_then(Value::as_str) {
        if !(v.starts_with("1.0") || v.starts_with("2.0")) {
            return Err(format!("version: {v} is not supported (1.0.x, 2.0.x)"));
        }
    }
    // Fields a forwarding LRS sets itself do not make the statement different.
    let mut canonical = obj.clone();
    for k in ["stored", "authority", "version"] {
        canonical.remove(k);
    }
    let canonical = Value::Object(canonical).to_string();
    Ok(Parsed {
        id,
        verb,
        activity_iri,
        is_activity,
        voids,
        learner,
        registration,
        date,
        hash: sha256_hex(&canonical),
        canonical,
    })
}
