use serde_json::json;

use super::*;

#[test]
fn an_all_of_with_a_property_defined_twice_becomes_one_object_the_outer_part_winning() {
    let mut doc = json!({
        "paths": {},
        "components": {"schemas": {
            "Content": {"type": "object", "properties": {
                "performed_on": {"type": ["string", "null"], "format": "date"},
                "notes": {"type": "string"}}},
            "New": {"description": "A new one", "allOf": [
                {"$ref": "#/components/schemas/Content"},
                {"type": "object", "required": ["performed_on"], "properties": {
                    "performed_on": {"type": "string", "format": "date"}}}]}
        }}
    });
    finish(&mut doc);
    assert_eq!(
        doc["components"]["schemas"]["New"],
        json!({"type": "object", "description": "A new one", "required": ["performed_on"],
               "properties": {"performed_on": {"type": "string", "format": "date"},
                              "notes": {"type": "string"}}})
    );
}

#[test]
fn inline_copies_of_a_component_become_references() {
    let item = json!({"type": "object", "properties": {"title": {"type": "string"}}});
    let mut doc = json!({
        "paths": {"/x": {"get": {"responses": {"200": {"content": {"application/json": {
            "schema": {"type": "object", "properties": {"items": {"type": "array", "items": item}}}
        }}}}}}},
        "components": {"schemas": {"Item": item, "Other": {"type": "object", "properties": {
            "one": item}}}}
    });
    finish(&mut doc);
    let r = json!({"$ref": "#/components/schemas/Item"});
    assert_eq!(
        doc.pointer(
            "/paths/~1x/get/responses/200/content/application~1json/schema/properties/items/items"
        ),
        Some(&r)
    );
    assert_eq!(
        doc["components"]["schemas"]["Other"]["properties"]["one"],
        r
    );
    // The component itself stays a definition, not a reference to itself.
    assert_eq!(doc["components"]["schemas"]["Item"], item);
}

#[test]
fn an_optional_requirement_becomes_no_requirement_and_real_ones_stay() {
    let mut doc = json!({"paths": {"/login": {"post": {"security": [{}]}},
                                   "/me": {"get": {"security": [{"bearer": []}]}}}});
    finish(&mut doc);
    assert_eq!(doc["paths"]["/login"]["post"]["security"], json!([]));
    assert_eq!(
        doc["paths"]["/me"]["get"]["security"],
        json!([{"bearer": []}])
    );
}

#[test]
fn a_nullable_closed_set_lists_null_among_its_values() {
    let mut field = json!({"type": ["string", "null"]});
    set_enum(&mut field, &["achieved", "not_yet"]);
    assert_eq!(field["enum"], json!(["achieved", "not_yet", null]));
    let mut field = json!({"type": "string"});
    set_enum(&mut field, &["a"]);
    assert_eq!(field["enum"], json!(["a"]));
}

#[test]
fn the_sign_in_answer_becomes_three_shapes_with_their_fields_required() {
    let opt = |t: &str| json!({"type": [t, "null"]});
    let mut doc = json!({"paths": {}, "components": {"schemas": {"AuthResponse": {
        "type": "object", "description": "A step", "required": ["status"],
        "properties": {"status": {"type": "string"}, "access_token": opt("string"),
            "token_type": opt("string"), "expires_in": opt("integer"),
            "refresh_token": opt("string"), "mfa_token": opt("string"),
            "mfa_token_expires_at": opt("string"), "methods": opt("array")}}}}});
    split_auth_response(&mut doc);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["AuthResponse"]["discriminator"]["mapping"]["mfa_required"],
        "#/components/schemas/MfaRequiredResponse"
    );
    let done = &schemas["AuthenticatedResponse"];
    assert_eq!(
        done["properties"]["status"]["enum"],
        json!(["authenticated"])
    );
    assert_eq!(done["properties"]["access_token"]["type"], "string");
    assert!(done["properties"].get("mfa_token").is_none());
    assert_eq!(
        schemas["MfaEnrolmentRequiredResponse"]["required"],
        json!(["status", "mfa_token", "mfa_token_expires_at"])
    );
}

#[test]
fn a_location_is_made_from_the_created_fields_and_only_from_safe_ones() {
    use crate::http::location;
    let t = "/api/v1/programme-templates/{id}/versions/{version}";
    assert_eq!(
        location(t, &json!({"id": "abc-1", "version": 3})).as_deref(),
        Some("/api/v1/programme-templates/abc-1/versions/3")
    );
    assert_eq!(location(t, &json!({"id": "abc-1"})), None);
    assert_eq!(location(t, &json!({"id": "../x", "version": 3})), None);
    assert_eq!(location(t, &json!({"id": "", "version": 3})), None);
}

#[test]
fn limits_are_bounded_rate_limits_say_when_and_a_form_body_gets_its_415_text() {
    let problem = |d: &str| json!({"description": d});
    let mut doc = json!({"paths": {"/api/v1/oauth/token": {"post": {
        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
        "requestBody": {"content": {"application/x-www-form-urlencoded": {}}},
        "responses": {"415": problem("Request body is not application/json"),
                      "429": problem("Too many")}}}}});
    bound_limits(&mut doc);
    declare_headers(&mut doc);
    let op = &doc["paths"]["/api/v1/oauth/token"]["post"];
    assert_eq!(
        op["parameters"][0]["schema"],
        json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50})
    );
    assert_eq!(
        op["responses"]["415"]["description"],
        "Request body is not application/x-www-form-urlencoded"
    );
    assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object());
}
