//! The OpenAPI document's top-level `webhooks` (OpenAPI 3.1): every event a subscription
//! may hear, with its payload and the Standard Webhooks headers; and event names as an
//! enum wherever the API takes or gives them.

use serde_json::{json, Value};

use super::EVENTS;

/// What each event's `data` holds, and what it means.
fn payload(event: &str) -> (&'static str, Value) {
    match event {
        "activity.created" => (
            "A learning activity was logged (by the trainee, or made from an xAPI statement).",
            json!({"type": "object", "required": ["activity"],
                   "properties": {"activity": {"$ref": "#/components/schemas/Activity"}}}),
        ),
        "assessment.signed" => (
            "An assessment was signed.",
            json!({"type": "object", "required": ["assessment"],
                   "properties": {"assessment": {"$ref": "#/components/schemas/Assessment"}}}),
        ),
        "final_assessment.decided" => (
            "A final assessment (slutbedömning) was decided.",
            json!({"type": "object",
                   "required": ["final_assessment_id", "enrolment_id", "trainee_id", "decision", "decided_at", "content_hash"],
                   "properties": {
                       "final_assessment_id": {"type": "string", "format": "uuid"},
                       "enrolment_id": {"type": "string", "format": "uuid"},
                       "trainee_id": {"type": "string", "format": "uuid"},
                       "decision": {"type": "string"},
                       "decided_at": {"type": "string", "format": "date-time"},
                       "content_hash": {"type": "string"}}}),
        ),
        "xapi.statement_unmatched" => (
            "An xAPI statement was kept for an administrator to map.",
            json!({"type": "object", "required": ["statement_id", "reason"],
                   "properties": {
                       "statement_id": {"type": "string", "format": "uuid"},
                       "reason": {"type": "string", "enum": ["unknown_learner", "unmapped_activity"]},
                       "detail": {"type": ["string", "null"]}}}),
        ),
        "enrolment.created" => (
            "A trainee was enrolled (in the service, or by an import).",
            json!({"type": "object", "required": ["enrolment"],
                   "properties": {"enrolment": {"$ref": "#/components/schemas/Enrolment"}}}),
        ),
        "webhook.test" => (
            "A test event (`POST /webhook-subscriptions/{id}/ping`).",
            json!({"type": "object"}),
        ),
        _ => ("An event of the service.", json!({"type": "object"})),
    }
}

/// Adds `WebhookEventName`, `WebhookEvent` and one `webhooks` entry per event to the
/// finished document, and makes the subscriptions' `events` lists of event names.
pub fn document(doc: &mut Value) {
    let mut names: Vec<&str> = EVENTS.to_vec();
    names.push("*");
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    schemas.insert(
        "WebhookEventName".into(),
        json!({"type": "string", "enum": names,
               "description": "An event a subscription may hear; `*` is every event, including ones added later."}),
    );
    schemas.insert(
        "WebhookEvent".into(),
        json!({"type": "object", "required": ["id", "type", "created_at", "organisation_id", "data"],
               "description": "The body of every delivery.",
               "properties": {
                   "id": {"type": "string", "format": "uuid", "description": "The event id (also `Eportfolio-Event-Id`)."},
                   "type": {"type": "string", "enum": EVENTS},
                   "created_at": {"type": "string", "format": "date-time"},
                   "organisation_id": {"type": ["string", "null"]},
                   "data": {"type": "object"}}}),
    );
    for (schema, field) in [
        ("NewWebhookSubscription", "events"),
        ("WebhookSubscription", "events"),
        ("WebhookSubscriptionPatch", "events"),
    ] {
        if let Some(items) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{field}/items")))
        {
            *items = json!({"$ref": "#/components/schemas/WebhookEventName"});
        }
    }
    let header = |name: &str, description: &str| {
        json!({"name": name, "in": "header", "required": true, "description": description,
               "schema": {"type": "string"}})
    };
    let mut hooks = serde_json::Map::new();
    for event in EVENTS {
        let (summary, data) = payload(event);
        hooks.insert(
            event.to_string(),
            json!({"post": {
                "summary": summary,
                "description": "Signed as Standard Webhooks specifies: verify with a Standard Webhooks library and the subscription's `whsec_…` secret. Answer 2xx within `WEBHOOK_TIMEOUT_SECONDS`; anything else is retried.",
                "operationId": format!("webhook_{}", event.replace('.', "_")),
                "parameters": [
                    header("webhook-id", "The delivery id, the same on every retry."),
                    header("webhook-timestamp", "Unix seconds of this attempt."),
                    header("webhook-signature", "`v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`."),
                    header("Eportfolio-Event", "The event name."),
                    header("Eportfolio-Event-Id", "The event id, the same on retries and replays."),
                ],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/WebhookEvent"},
                        {"type": "object", "properties": {"type": {"const": event}, "data": data}}
                    ]}}}},
                "security": [],
                "responses": {
                    "2XX": {"description": "Received"},
                    "4XX": {"description": "Refused (say, a signature that does not verify): retried with backoff"}
                }
            }}),
        );
    }
    if let Some(root) = doc.as_object_mut() {
        root.insert("webhooks".into(), Value::Object(hooks));
    }
}
