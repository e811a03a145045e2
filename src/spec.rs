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
//!
//! It works on the JSON form: the transformations are structural and read more plainly
//! there than on utoipa's builders.

use serde_json::{Map, Value};

/// Applies every touch to `doc` (the whole document).
pub fn finish(doc: &mut Value) {
    flatten_all_of(doc);
    reference_inline_copies(doc);
    no_requirement_for_open_operations(doc);
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

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
