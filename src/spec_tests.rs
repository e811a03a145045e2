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
    let item = json!({"type": "object", "properties": {"id": {"type": "string"}}});
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
