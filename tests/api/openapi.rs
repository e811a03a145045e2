//! The committed spec is the generated one. Regenerate with
//! `UPDATE_OPENAPI=1 cargo test --test api openapi` (or `cargo run -- openapi`).

#[test]
fn committed_openapi_matches_the_code() {
    let generated = eportfolio::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi")).expect("dir");
        std::fs::write(path, &generated).expect("write spec");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );
}

#[test]
fn every_operation_has_summary_security_and_problem_responses() {
    let spec: serde_json::Value = serde_json::from_str(&eportfolio::openapi_json()).expect("json");
    assert!(spec["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3.1"));
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() > 20, "only {} paths", paths.len());
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("item") {
            let name = format!("{method} {path}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: no summary"
            );
            assert!(op["security"].is_array(), "{name}: no security requirement");
            let responses = op["responses"].as_object().expect("responses");
            for code in ["400", "429", "500"] {
                let r = &responses[code];
                assert!(
                    r["content"]["application/problem+json"].is_object(),
                    "{name}: no problem response {code}"
                );
            }
            let public = op["security"]
                .as_array()
                .expect("security")
                .iter()
                .all(|s| s.as_object().is_some_and(|o| o.is_empty()));
            if !public {
                assert!(responses.contains_key("401"), "{name}: secured but no 401");
            }
        }
    }
}

#[test]
fn curriculum_and_enrolment_schemas_carry_examples() {
    let spec: serde_json::Value = serde_json::from_str(&eportfolio::openapi_json()).expect("json");
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Regulation",
        "Delmal",
        "DelmalInput",
        "RegulationInput",
        "ChecklistItem",
        "PlacementType",
        "TemplateContent",
        "Enrolment",
        "Placement",
        "LeavePeriod",
        "Assignment",
        "CreditedService",
        "PlanWarning",
        "TimeServed",
        "Change",
        "StudyPlanGoal",
        "PlacementInput",
        "LeaveInput",
        "CreditedServiceInput",
    ] {
        let schema = schemas
            .get(name)
            .unwrap_or_else(|| panic!("schema {name} missing"));
        let text = schema.to_string();
        assert!(text.contains("\"example\""), "schema {name} has no example");
    }
    // Creating operations show a whole request example.
    for (path, method) in [
        ("/api/v1/regulations", "post"),
        ("/api/v1/programme-templates", "post"),
        ("/api/v1/enrolments", "post"),
        ("/api/v1/enrolments/{id}/assignments", "post"),
        ("/api/v1/enrolments/{id}/study-plan-goals", "post"),
    ] {
        let body = &spec["paths"][path][method]["requestBody"]["content"]["application/json"];
        assert!(
            body["example"].is_object(),
            "{method} {path} has no request example"
        );
    }
}

fn spec() -> serde_json::Value {
    serde_json::from_str(&eportfolio::openapi_json()).expect("json")
}

/// The `a`, `b` of a description.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn is_string(schema: &serde_json::Value) -> bool {
    schema["type"] == "string"
        || schema["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "string"))
}

/// Every string field (component property or query parameter) with its name and schema.
fn string_fields(spec: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for (name, schema) in spec["components"]["schemas"].as_object().expect("schemas") {
        for (prop, s) in schema["properties"].as_object().into_iter().flatten() {
            if is_string(s) {
                out.push((format!("{name}.{prop}"), s.clone()));
            }
        }
    }
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "query" && is_string(&p["schema"]) {
                    let mut s = p["schema"].clone();
                    s["description"] = p["description"].clone();
                    out.push((
                        format!("{method} {path} ?{}", p["name"].as_str().unwrap_or("")),
                        s,
                    ));
                }
            }
        }
    }
    out
}

/// Fields whose description lists values that are not a closed set: composed values,
/// sets that grow (second-factor methods).
const OPEN_SETS: &[&str] = &[
    "CertificateDraft.key",
    "Participant.role",
    "FinalSigner.signature_method",
    "ImportedUser.user_id",
    "NewAssessment.assessor_email",
    "OidcAuthorization.authorization_url",
    "PersonalIdentityPatch.personal_identity_number",
    "Delmal.group",
    "Signature.method",
    "MfaRequiredResponse.mfa_token",
    "MfaEnrolmentRequiredResponse.mfa_token",
];

#[test]
fn closed_sets_are_enums_naming_the_values_their_descriptions_list() {
    let spec = spec();
    let mut missing = Vec::new();
    for (name, schema) in string_fields(&spec) {
        let description = schema["description"].as_str().unwrap_or("");
        let values: Vec<&str> = backticked(description)
            .into_iter()
            .filter(|v| v.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        match schema["enum"].as_array() {
            Some(listed) => {
                // A description that lists values lists the enum's.
                for v in listed.iter().filter_map(|v| v.as_str()) {
                    assert!(
                        values.len() < 2 || description.contains(&format!("`{v}`")),
                        "{name}: `{v}` is not in its description {description:?}"
                    );
                }
            }
            None => {
                let open = description.contains("e.g.") || OPEN_SETS.contains(&name.as_str());
                if values.len() >= 2 && !open {
                    missing.push(format!("{name}: {description}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "closed sets without an enum:\n{}",
        missing.join("\n")
    );
    // A few by name: the examples.
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["WebhookDelivery"]["properties"]["status"]["enum"],
        serde_json::json!(["pending", "delivered", "failed"])
    );
    assert_eq!(
        schemas["Progress"]["properties"]["final_decision"]["enum"],
        serde_json::json!(["achieved", "not_yet", null])
    );
}

#[test]
fn a_sign_in_step_is_one_of_three_shapes_told_apart_by_status() {
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let auth = &schemas["AuthResponse"];
    assert_eq!(auth["discriminator"]["propertyName"], "status", "{auth}");
    let mapping = auth["discriminator"]["mapping"]
        .as_object()
        .expect("mapping");
    let mut statuses: Vec<&str> = mapping.keys().map(String::as_str).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        ["authenticated", "mfa_enrolment_required", "mfa_required"]
    );
    assert_eq!(auth["oneOf"].as_array().expect("oneOf").len(), 3);
    for (status, reference) in mapping {
        let name = reference
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .expect("a component");
        let shape = &schemas[name];
        assert_eq!(
            shape["properties"]["status"]["enum"],
            serde_json::json!([status])
        );
        let required = shape["required"].as_array().expect("required");
        assert!(required.contains(&serde_json::json!("status")));
        let needs = if status == "authenticated" {
            "access_token"
        } else {
            "mfa_token"
        };
        assert!(
            required.contains(&serde_json::json!(needs)),
            "{name}: {shape}"
        );
        assert_eq!(
            shape["properties"][needs]["type"], "string",
            "{name}: not nullable"
        );
    }
}

#[test]
fn created_resources_are_located_and_rate_limits_say_when_to_retry() {
    let spec = spec();
    let paths = &spec["paths"];
    // `/a/{id}/b/{version}` as `/a/{}/b/{}`: the table names body fields, the document
    // path parameters.
    let shape = |p: &str| {
        p.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    let readable: Vec<String> = paths
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(_, item)| item["get"].is_object())
        .map(|(p, _)| shape(p))
        .collect();
    for (post, at) in eportfolio::http::CREATED_AT {
        let created = &paths[*post]["post"]["responses"]["201"];
        assert!(
            created["headers"]["Location"]["schema"].is_object(),
            "POST {post}: 201 without Location"
        );
        assert!(
            readable.contains(&shape(at)),
            "{at} (from POST {post}) cannot be read"
        );
    }
    // Every other 201 says why it has no `Location`.
    for (path, item) in paths.as_object().expect("paths") {
        if item["post"]["responses"]["201"].is_object() {
            let located = eportfolio::http::created_at(path).is_some();
            let excused = eportfolio::http::UNLOCATED.iter().any(|(p, _)| p == path);
            assert!(
                located != excused,
                "POST {path}: a 201 needs a Location (CREATED_AT) or a reason (UNLOCATED), not {}",
                if located { "both" } else { "neither" }
            );
        }
    }
    for (path, item) in paths.as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let limited = &op["responses"]["429"];
            assert!(
                limited["headers"]["Retry-After"].is_object(),
                "{method} {path}: 429 without Retry-After"
            );
            // A 415 names what the body may be.
            let unsupported = op["responses"]["415"]["description"].as_str();
            if let Some(types) = op["requestBody"]["content"].as_object() {
                if let Some(text) = unsupported.filter(|t| t.starts_with("Request body is not")) {
                    for t in types.keys() {
                        assert!(text.contains(t.as_str()), "{method} {path}: 415 {text:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn api_clients_have_a_client_credentials_scheme_and_rfc_6749_token_errors() {
    let spec = spec();
    let oauth = &spec["components"]["securitySchemes"]["oauth2"];
    let flow = &oauth["flows"]["clientCredentials"];
    assert_eq!(flow["tokenUrl"], "/api/v1/oauth/token");
    let scopes = flow["scopes"].as_object().expect("scopes");
    for scope in eportfolio::auth::client_tokens::SCOPES {
        assert!(scopes.contains_key(scope), "scope {scope}");
    }
    for (method, path, scope) in eportfolio::auth::client_tokens::CLIENT_ROUTES {
        let security = &spec["paths"][*path][method.to_ascii_lowercase()]["security"];
        assert!(
            security
                .as_array()
                .is_some_and(|s| s.contains(&serde_json::json!({"oauth2": [scope]}))),
            "{method} {path}: {security}"
        );
    }
    let token = &spec["paths"]["/api/v1/oauth/token"]["post"]["responses"];
    for code in ["400", "401"] {
        assert_eq!(
            token[code]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/OAuthError"
        );
    }
    let error = &spec["components"]["schemas"]["OAuthError"];
    assert!(error["required"]
        .as_array()
        .is_some_and(|r| r.contains(&serde_json::json!("error_description"))));
    assert_eq!(
        token["415"]["description"],
        "Request body is not application/x-www-form-urlencoded"
    );
}

#[test]
fn every_list_is_a_page_with_bounded_limit_and_files_are_binary() {
    let spec = spec();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let ok = &op["responses"]["200"]["content"];
            let json = &ok["application/json"]["schema"];
            // xAPI fixes its own shapes: a POST of statements answers the array of ids.
            if !path.starts_with("/api/v1/xapi/") {
                assert_ne!(json["type"], "array", "{method} {path}: a bare array");
            }
            let paged = json["$ref"]
                .as_str()
                .is_some_and(|r| r.starts_with("#/components/schemas/Page_"));
            let params: Vec<&serde_json::Value> =
                op["parameters"].as_array().into_iter().flatten().collect();
            let limit = params.iter().find(|p| p["name"] == "limit");
            if paged {
                assert!(
                    params.iter().any(|p| p["name"] == "cursor"),
                    "{method} {path}: a page without cursor"
                );
                let limit = limit.unwrap_or_else(|| panic!("{method} {path}: no limit"));
                assert_eq!(limit["schema"]["minimum"], 1);
                assert_eq!(limit["schema"]["maximum"], 200);
            }
            for (media, c) in ok.as_object().into_iter().flatten() {
                if media.starts_with("application/pdf") || media.starts_with("image/png") {
                    assert_eq!(
                        c["schema"]["$ref"], "#/components/schemas/FileBody",
                        "{path}"
                    );
                }
            }
        }
    }
    // The upload lists every type the server accepts by default.
    let upload = spec["paths"]["/api/v1/activities/{id}/attachments"]["post"]["requestBody"]
        ["content"]
        .as_object()
        .expect("upload types")
        .keys()
        .cloned()
        .collect::<std::collections::BTreeSet<String>>();
    let accepted = eportfolio::Config::defaults()
        .attachment_types
        .into_iter()
        .collect::<std::collections::BTreeSet<String>>();
    assert_eq!(upload, accepted);
    assert_eq!(
        spec["components"]["schemas"]["FileBody"],
        serde_json::json!({"description": "A file's raw bytes: a binary string in the OpenAPI document.",
                           "format": "binary", "type": "string"})
    );
}

#[test]
fn ids_the_server_makes_are_uuids_and_ids_it_takes_are_as_parsed() {
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let format = |schema: &str, prop: &str| schemas[schema]["properties"][prop]["format"].clone();
    for (schema, prop) in [
        ("Activity", "id"),
        ("Activity", "enrolment_id"),
        ("Activity", "placement_id"),
        ("Enrolment", "trainee_id"),
        ("Assessment", "assessor_id"),
        ("StoredStatement", "id"),
        ("WebhookDelivery", "event_id"),
    ] {
        assert_eq!(format(schema, prop), "uuid", "{schema}.{prop}");
    }
    // Requests name records by the same UUIDs (generated clients pass an id from an
    // answer to a request unchanged); caller-chosen offline ids are parsed as UUIDs.
    assert_eq!(
        schemas["NewSupervisionSession"]["properties"]["participant_ids"]["items"]["format"],
        "uuid"
    );
    for (schema, prop) in [
        ("NewActivity", "id"),
        ("NewActivity", "placement_id"),
        ("NewEnrolment", "trainee_id"),
        ("NewAssessment", "assessor_id"),
    ] {
        assert_eq!(format(schema, prop), "uuid", "{schema}.{prop}");
    }
    // Not a UUID at all: no format claimed.
    for (schema, prop) in [
        ("ChecklistItem", "id"),
        ("Activity", "checklist_item_id"),
        ("Change", "actor_id"),
        ("Verification", "dossier_id"),
        ("Problem", "request_id"),
        ("PublicKey", "key_id"),
    ] {
        assert_eq!(
            format(schema, prop),
            serde_json::Value::Null,
            "{schema}.{prop}"
        );
    }
}

/// The lists that were one whole page now page like the others: `limit` bounded, the
/// cursor from `next_cursor`, a bad one refused.
#[test]
fn lists_that_were_whole_page_with_limit_and_cursor() {
    let app = crate::support::TestApp::start();
    let (admin, _region) = app.admin();
    let t = Some(admin.access.as_str());
    let mut seen = Vec::new();
    let mut page = app.get("/regulations?limit=1", t).expect(200);
    loop {
        let items = page.body["items"].as_array().expect("items").clone();
        assert_eq!(items.len(), 1, "{}", page.text);
        seen.push(items[0]["id"].as_str().expect("id").to_string());
        match page.body["next_cursor"].as_str() {
            None => break,
            Some(c) => {
                page = app
                    .get(&format!("/regulations?limit=1&cursor={c}"), t)
                    .expect(200)
            }
        }
    }
    let all = app.get("/regulations", t).expect(200);
    let whole: Vec<String> = all.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    assert!(whole.len() > 1, "{}", all.text);
    assert_eq!(seen, whole);
    assert_eq!(all.body["next_cursor"], serde_json::Value::Null);
    // The filters stay as they were beside the paging parameters.
    let latest = app
        .get("/regulations?code=bt-2021&latest=true&limit=1", t)
        .expect(200);
    assert_eq!(latest.body["items"][0]["code"], "bt-2021");
    for bad in [
        "/regulations?limit=0",
        "/regulations?limit=201",
        "/regulations?cursor=bm8",
        "/assessment-instruments?limit=0",
        "/me/passkeys?limit=0",
        "/me/devices?limit=201",
        "/me/signature-queue?limit=0",
    ] {
        app.get(bad, t).expect_problem(422, "validation");
    }
    let forms = app.get("/assessment-instruments?limit=2", t).expect(200);
    assert_eq!(forms.body["items"].as_array().map(Vec::len), Some(2));
    let next = forms.body["next_cursor"].as_str().expect("more forms");
    let rest = app
        .get(&format!("/assessment-instruments?limit=2&cursor={next}"), t)
        .expect(200);
    assert_ne!(rest.body["items"][0], forms.body["items"][0]);
}
