//! The last touches to the generated OpenAPI document, for what utoipa's derives cannot
//! say, so that off-the-shelf generators (openapi-python-client, openapi-typescript)
//! and linters (redocly) take the document as it is:
//!
//! - A type that flattens another (`#[serde(flatten)]`) comes out as `allOf` of the two;
//!   when both define a property (`performed_on`: optional when correcting, required
//!   when creating) generators cannot merge them and drop the operation. The parts are
//!   merged into one object, the outer definition winning: one definition per property.
//! - Generic pages (`Page<T>`) and vectors repeat their item schema inline; an inline
//!   schema identical to a named component becomes a `$ref` to it.
//! - Operations that need no token say `security: []` (no requirement), not `[{}]`
//!   (an optional one), which some generators read as "a token is needed".
//! - 201 responses of operations whose new resource has its own URL declare the
//!   `Location` header the server sends (`http::CREATED_AT`, sent by `http::request_id_and_log`);
//!   429 responses and the database's 503 declare `Retry-After`; 415 says which media types the body may have.
//! - API clients authenticate with the OAuth 2.0 client-credentials flow (opaque
//!   tokens); the operations they may call (`auth::client_tokens::CLIENT_ROUTES`) accept
//!   that scheme with the scope each needs. The token endpoint's errors carry RFC 6749's
//!   `error` and `error_description` (`OAuthError`).
//! - Closed sets of values kept as strings in the code are `enum`s (`closed_sets`).
//! - Ids are UUIDs (`format: uuid`), in answers and requests alike: the server makes
//!   them so and takes caller-chosen ones only as UUIDs (`uuid_ids`); the few id fields
//!   that hold something else are named in `NOT_UUID`.
//! - A sign-in step's answer (`AuthResponse`) is one of three shapes told apart by
//!   `status`: a `oneOf` with a discriminator, so that a client narrows on `status` and
//!   finds the tokens (or the `mfa_token`) required, not optional.
//!
//! It works on the JSON form: the transformations are structural and read more plainly
//! there than on utoipa's builders.
//!
//! Longer than the ~600-line target: each transformation is small and independent; one
//! file keeps their order (`finish`) in view.

use serde_json::{Map, Value};

/// Applies every touch to `doc` (the whole document).
pub fn finish(doc: &mut Value) {
    flatten_all_of(doc);
    reference_inline_copies(doc);
    no_requirement_for_open_operations(doc);
    declare_closed_sets(doc);
    uuid_ids(doc);
    bound_limits(doc);
    split_auth_response(doc);
    declare_headers(doc);
    client_credentials(doc);
    token_errors(doc);
}

/// The `oauth2` scheme (client credentials, with every scope) beside `bearer` (a
/// person's JWT), and `oauth2` with its scope as an alternative on each operation open
/// to API clients.
fn client_credentials(doc: &mut Value) {
    use crate::auth::client_tokens::{
        CLIENT_ROUTES, SCOPE_ACTIVITIES_WRITE, SCOPE_CATALOG_READ, SCOPE_PROGRESS_READ,
    };
    if let Some(schemes) = doc
        .pointer_mut("/components/securitySchemes")
        .and_then(Value::as_object_mut)
    {
        if let Some(bearer) = schemes.get_mut("bearer").and_then(Value::as_object_mut) {
            bearer.insert(
                "description".into(),
                Value::from("A person's access token (a JWT from `/api/v1/auth/login` and the second factor)."),
            );
        }
        schemes.insert(
            "oauth2".into(),
            serde_json::json!({
                "type": "oauth2",
                "description": "API clients (learning platforms, HR systems): the client-credentials grant at `/api/v1/oauth/token`. The access tokens are opaque (`epc_…`), not JWTs.",
                "flows": {"clientCredentials": {
                    "tokenUrl": "/api/v1/oauth/token",
                    "scopes": {
                        SCOPE_ACTIVITIES_WRITE: "Send learning records (xAPI statements)",
                        SCOPE_PROGRESS_READ: "Read enrolments, records and progress of the client's organisation",
                        SCOPE_CATALOG_READ: "Read regulations, programme templates and assessment instruments",
                    }
                }}
            }),
        );
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (method, path, scope) in CLIENT_ROUTES {
        let method = method.to_ascii_lowercase();
        let Some(security) = paths
            .get_mut(*path)
            .and_then(|i| i.get_mut(&method))
            .and_then(|o| o.get_mut("security"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let requirement = serde_json::json!({"oauth2": [scope]});
        if !security.contains(&requirement) {
            security.push(requirement);
        }
    }
}

/// The codes of RFC 6749 section 5.2 the token endpoint answers with.
const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_scope",
    "unsupported_grant_type",
];

/// `OAuthError`: a problem document with RFC 6749's `error` and `error_description`,
/// the token endpoint's 400 and 401.
fn token_errors(doc: &mut Value) {
    let Some(problem) = doc.pointer("/components/schemas/Problem").cloned() else {
        return;
    };
    let mut error = problem;
    if let Some(props) = error.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "error".into(),
            serde_json::json!({"type": "string", "enum": OAUTH_ERRORS,
                "description": format!("The error code of RFC 6749 section 5.2: {}.",
                    or_list(&OAUTH_ERRORS.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>()))}),
        );
        props.insert(
            "error_description".into(),
            serde_json::json!({"type": "string", "description": "What went wrong, for the developer."}),
        );
    }
    if let Some(required) = error.get_mut("required").and_then(Value::as_array_mut) {
        required.push(Value::from("error"));
        required.push(Value::from("error_description"));
    }
    error["description"] = Value::from(
        "An error of the token endpoint: RFC 6749's `error` and `error_description` beside the problem fields.",
    );
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert("OAuthError".into(), error);
    }
    for code in ["400", "401"] {
        let pointer = format!(
            "/paths/~1api~1v1~1oauth~1token/post/responses/{code}/content/application~1problem+json/schema"
        );
        if let Some(schema) = doc.pointer_mut(&pointer) {
            *schema = serde_json::json!({"$ref": "#/components/schemas/OAuthError"});
        }
    }
}

/// `Location` on the 201 of each `http::CREATED_AT` operation, `Retry-After` on every 429
/// and on the database's 503, and
/// a 415 text naming the media types the operation's body may have.
fn declare_headers(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let types: Vec<String> = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default();
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            if method == "post" {
                if let (Some(at), Some(created)) =
                    (crate::http::created_at(path), responses.get_mut("201"))
                {
                    add_header(
                        created,
                        "Location",
                        &format!("The new resource's URL (`{at}`)."),
                        serde_json::json!({"type": "string", "format": "uri-reference"}),
                    );
                }
            }
            if let Some(limited) = responses.get_mut("429") {
                add_header(
                    limited,
                    "Retry-After",
                    "Seconds to wait before trying again.",
                    serde_json::json!({"type": "integer", "minimum": 1}),
                );
            }
            if let Some(away) = responses.get_mut("503") {
                let unavailable = away
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.starts_with("`unavailable`"));
                if unavailable {
                    add_header(
                        away,
                        "Retry-After",
                        "Seconds to wait before trying again.",
                        serde_json::json!({"type": "integer", "minimum": 1}),
                    );
                }
            }
            if let Some(unsupported) = responses.get_mut("415") {
                let default = unsupported.get("description").and_then(Value::as_str)
                    == Some("Request body is not application/json");
                if default && !types.is_empty() && types != ["application/json"] {
                    unsupported["description"] =
                        Value::from(format!("Request body is not {}", or_list(&types)));
                }
            }
        }
    }
}

fn add_header(response: &mut Value, name: &str, description: &str, schema: Value) {
    let Some(response) = response.as_object_mut() else {
        return;
    };
    let headers = response
        .entry("headers")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(headers) = headers.as_object_mut() {
        headers.insert(
            name.into(),
            serde_json::json!({"description": description, "schema": schema}),
        );
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[path = "spec_closed_sets.rs"]
mod closed_sets;

/// Gives each property and query parameter of `closed_sets` its `enum` (with `null` in
/// it when the field is nullable, as JSON Schema wants).
fn declare_closed_sets(doc: &mut Value) {
    for (schema, property, values) in closed_sets::PROPERTIES {
        let pointer = format!("/components/schemas/{schema}/properties/{property}");
        if let Some(field) = doc.pointer_mut(&pointer) {
            set_enum(field, values);
        }
    }
    for (path, method, name, values) in closed_sets::PARAMETERS {
        let Some(parameters) = doc
            .get_mut("paths")
            .and_then(|p| p.get_mut(*path))
            .and_then(|i| i.get_mut(*method))
            .and_then(|o| o.get_mut("parameters"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for p in parameters {
            if p.get("name").and_then(Value::as_str) == Some(*name)
                && p.get("in").and_then(Value::as_str) == Some("query")
            {
                if let Some(schema) = p.get_mut("schema") {
                    set_enum(schema, values);
                }
            }
        }
    }
}

/// Id fields whose values are not UUIDs (or not always): catalogue items keep ids chosen
/// by the template's author, dossier ids and signing-key ids are derived from content,
/// request ids may be the caller's `X-Request-Id`, services name themselves (`SERVICE_ID`), audit actors may be API clients
/// (`client:…`) and audit entities dossiers, and an import's result rows echo what the
/// file said. `(schema, property)`, `*` for any schema.
const NOT_UUID: &[(&str, &str)] = &[
    ("*", "checklist_item_id"),
    ("*", "xapi_activity_id"),
    ("*", "hsa_id"),
    ("*", "key_id"),
    ("*", "request_id"),
    ("*", "dossier_id"),
    // A service's own name for itself in transfer bundles (`SERVICE_ID`), not a UUID.
    ("*", "service_id"),
    ("*", "sending_service_id"),
    ("ChecklistItem", "id"),
    ("ChecklistItemProgress", "item_id"),
    ("Change", "actor_id"),
    ("Change", "entity_id"),
    ("ImportedUser", "*"),
    ("EnrolmentImportResult", "*"),
    ("Verification", "*"),
    // The OAuth client id of a form: whatever the caller sent is checked, not typed.
    ("TokenRequest", "client_id"),
];

/// `format: uuid` on the ids (`id`, `…_id`, `…_ids`) of every schema but [`NOT_UUID`]:
/// the server makes its ids as UUIDs (`Uuid::new_v4`) and takes caller-chosen ones only
/// as UUIDs, so an id in an answer is one, and an id in a request names a record only if
/// it is one (anything else is refused as unknown). Generated clients then type an id
/// the same in answers and requests, and pass one from the other unchanged.
fn uuid_ids(doc: &mut Value) {
    in_examples(doc, false);
    let Some(target) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in target.iter_mut() {
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (prop, field) in props.iter_mut() {
            let skip = NOT_UUID
                .iter()
                .any(|(s, p)| (*s == "*" || s == name) && (*p == "*" || p == prop));
            if skip {
                continue;
            }
            if prop == "id" || prop.ends_with("_id") {
                mark_uuid(field);
            } else if prop.ends_with("_ids") {
                if let Some(items) = field.get_mut("items") {
                    mark_uuid(items);
                }
            }
        }
    }
}

/// A string (or nullable string) schema becomes `format: uuid`.
fn mark_uuid(field: &mut Value) {
    let string = match field.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(t)) => t.iter().any(|t| t == "string"),
        _ => false,
    };
    if let Some(map) = field.as_object_mut().filter(|_| string) {
        map.insert("format".into(), Value::from("uuid"));
    }
}

/// Every `limit` query parameter says what `http::PageParams` accepts.
fn bound_limits(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
    {
        let Some(parameters) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        for p in parameters {
            let is_limit = p.get("name").and_then(Value::as_str) == Some("limit")
                && p.get("in").and_then(Value::as_str) == Some("query");
            if let Some(schema) = p
                .get_mut("schema")
                .filter(|_| is_limit)
                .and_then(Value::as_object_mut)
            {
                schema.insert("minimum".into(), Value::from(1));
                schema.insert("maximum".into(), Value::from(crate::http::MAX_LIMIT));
                schema.insert("default".into(), Value::from(crate::http::DEFAULT_LIMIT));
            }
        }
    }
}

fn set_enum(field: &mut Value, values: &[&str]) {
    let nullable = field
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t == "null"));
    let mut list: Vec<Value> = values.iter().map(|v| Value::from(*v)).collect();
    if nullable {
        list.push(Value::Null);
    }
    if let Some(map) = field.as_object_mut() {
        map.insert("enum".into(), Value::Array(list));
    }
}

/// The shapes of a sign-in step: `(component, status, required, optional properties)`,
/// as `auth::http::sign_in` answers them.
const AUTH_STEPS: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "AuthenticatedResponse",
        "authenticated",
        &["access_token", "token_type", "expires_in", "refresh_token"],
        &["device_token", "recovery_codes", "recovery_codes_remaining"],
    ),
    (
        "MfaRequiredResponse",
        "mfa_required",
        &["mfa_token", "mfa_token_expires_at", "methods"],
        &[],
    ),
    (
        "MfaEnrolmentRequiredResponse",
        "mfa_enrolment_required",
        &["mfa_token", "mfa_token_expires_at"],
        &[],
    ),
];

/// Replaces `AuthResponse` (one object with every property optional) by a `oneOf` of
/// its three shapes, each with its own properties required and never null (the server
/// leaves absent ones out).
fn split_auth_response(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(whole) = schemas.get("AuthResponse").cloned() else {
        return;
    };
    let Some(properties) = whole.get("properties").and_then(Value::as_object) else {
        return;
    };
    let mut mapping = Map::new();
    let mut one_of = Vec::new();
    for (name, status, required, optional) in AUTH_STEPS {
        let mut props = Map::new();
        props.insert(
            "status".into(),
            serde_json::json!({"type": "string", "enum": [status]}),
        );
        for p in required.iter().chain(optional.iter()) {
            if let Some(schema) = properties.get(*p) {
                props.insert((*p).into(), not_null(schema.clone()));
            }
        }
        let mut req = vec![Value::from("status")];
        req.extend(required.iter().map(|r| Value::from(*r)));
        let reference = format!("#/components/schemas/{name}");
        schemas.insert(
            (*name).into(),
            serde_json::json!({
                "type": "object",
                "description": format!("A sign-in step that ended with `{status}`."),
                "required": req,
                "properties": props,
            }),
        );
        mapping.insert((*status).into(), Value::from(reference.clone()));
        one_of.push(serde_json::json!({"$ref": reference}));
    }
    let mut out = Map::new();
    if let Some(d) = whole.get("description") {
        out.insert("description".into(), d.clone());
    }
    out.insert("oneOf".into(), Value::Array(one_of));
    out.insert(
        "discriminator".into(),
        serde_json::json!({"propertyName": "status", "mapping": mapping}),
    );
    schemas.insert("AuthResponse".into(), Value::Object(out));
}

/// `type: [T, "null"]` becomes `type: T`.
fn not_null(mut schema: Value) -> Value {
    if let Some(types) = schema.get("type").and_then(Value::as_array) {
        let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if kept.len() == 1 {
            schema["type"] = kept[0].clone();
        }
    }
    schema
}

/// Merges each component schema that is an `allOf` of objects (named or inline) into one
/// object schema.
fn flatten_all_of(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let mut merged = Vec::new();
    for (name, schema) in &schemas {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
            continue;
        };
        let mut properties = Map::new();
        let mut required: Vec<Value> = Vec::new();
        let mut ok = true;
        for part in parts {
            let resolved = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => r
                    .strip_prefix("#/components/schemas/")
                    .and_then(|n| schemas.get(n)),
                None => Some(part),
            };
            let Some(object) = resolved.filter(|p| p.get("allOf").is_none()) else {
                ok = false;
                break;
            };
            if let Some(props) = object.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    properties.insert(k.clone(), v.clone());
                }
            }
            for r in object
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !required.contains(r) {
                    required.push(r.clone());
                }
            }
        }
        if !ok {
            continue;
        }
        let mut out = Map::new();
        out.insert("type".into(), Value::from("object"));
        for key in ["description", "title", "example"] {
            if let Some(v) = schema.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        if !required.is_empty() {
            out.insert("required".into(), Value::Array(required));
        }
        out.insert("properties".into(), Value::Object(properties));
        merged.push((name.clone(), Value::Object(out)));
    }
    if let Some(target) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in merged {
            target.insert(name, schema);
        }
    }
}

/// Replaces inline schemas that equal a named component by a `$ref` to it, everywhere
/// but in the component's own definition.
fn reference_inline_copies(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    // Only objects: a component that is a bare string or enum may be equal to an
    // unrelated inline field by chance.
    let named: Vec<(String, Value)> = schemas
        .into_iter()
        .filter(|(_, s)| s.get("properties").is_some())
        .collect();
    if let Some(paths) = doc.get_mut("paths") {
        replace_copies(paths, &named, None);
    }
    if let Some(components) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in components.iter_mut() {
            replace_children(schema, &named, Some(name));
        }
    }
}

fn replace_copies(v: &mut Value, named: &[(String, Value)], own: Option<&str>) {
    if let Some((name, _)) = named
        .iter()
        .find(|(n, s)| Some(n.as_str()) != own && s == v)
    {
        *v = serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
        return;
    }
    replace_children(v, named, own);
}

fn replace_children(v: &mut Value, named: &[(String, Value)], own: Option<&str>) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                replace_copies(child, named, own);
            }
        }
        Value::Array(items) => {
            for child in items {
                replace_copies(child, named, own);
            }
        }
        _ => {}
    }
}

/// `security: [{}]` (an optional requirement) becomes `security: []` (none).
fn no_requirement_for_open_operations(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(security) = op.get_mut("security").and_then(Value::as_array_mut) else {
                continue;
            };
            if security
                .iter()
                .all(|r| r.as_object().is_some_and(Map::is_empty))
            {
                security.clear();
            }
        }
    }
}

/// Examples name ids as `…` (any record): as UUIDs now, so that they fit their schema.
const EXAMPLE_UUID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

/// Replaces the `…` of id fields inside every `example` with [`EXAMPLE_UUID`].
fn in_examples(v: &mut Value, inside: bool) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let id = key == "id" || key.ends_with("_id");
                if inside && id && child.as_str() == Some("…") {
                    *child = Value::from(EXAMPLE_UUID);
                } else {
                    in_examples(child, inside || key == "example");
                }
            }
        }
        Value::Array(items) => {
            for child in items {
                in_examples(child, inside);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
