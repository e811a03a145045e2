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
