//! The regulation catalogue and programme templates, as administrators maintain them.

use serde_json::json;

use crate::support::{stockholm_bt, TestApp};

#[test]
fn the_shipped_catalogue_is_there_and_reseeding_changes_nothing() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let regs = app.get("/regulations", Some(&admin.access)).expect(200);
    let codes: Vec<&str> = regs.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["code"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, ["at", "bt-2021", "st-2015", "st-2021"]);
    assert!(regs.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|r| r["version"] == 1 && r["latest"] == true));

    let bt = app.regulation_id(&admin, "bt-2021");
    let delmal = app
        .get(&format!("/regulations/{bt}/delmal"), Some(&admin.access))
        .expect(200);
    let items = delmal.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 18);
    assert_eq!(items[6]["code"], "BT7");
    assert_eq!(items[6]["title_sv"], "Vetenskapligt förhållningssätt");
    assert_eq!(items[6]["title_en"], "Scientific approach");
    let rules = app
        .get(&format!("/regulations/{bt}"), Some(&admin.access))
        .expect(200);
    assert_eq!(rules.body["statute"], "HSLF-FS 2021:8");
    assert_eq!(rules.body["rules"]["minimum_months_in"]["akut sjukvård"], 3);

    // Search in either language.
    let found = app
        .get(
            &format!("/regulations/{bt}/delmal?q=palliativ"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(found.body["items"][0]["code"], "BT17");
    let found = app
        .get(
            &format!("/regulations/{bt}/delmal?q=death"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(found.body["items"][0]["code"], "BT18");

    // Seeding again (what every restart does) neither duplicates nor changes anything.
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let later = chrono::Utc::now();
    let created = eportfolio::db::write_tx(&mut conn, |c| {
        eportfolio::curriculum::catalogue::seed(c, later)
    })
    .expect("seed");
    assert!(created.is_empty(), "re-seed created {created:?}");
    let again = app
        .get(&format!("/regulations/{bt}/delmal"), Some(&admin.access))
        .expect(200);
    assert_eq!(again.body, delmal.body);
    assert_eq!(
        app.get("/regulations", Some(&admin.access))
            .expect(200)
            .body,
        regs.body
    );
}

#[test]
fn a_changed_regulation_becomes_a_new_version_and_the_old_one_stays() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let old = app.regulation_id(&admin, "bt-2021");
    let old_delmal = app
        .get(&format!("/regulations/{old}/delmal"), Some(&admin.access))
        .expect(200);
    let mut delmal: Vec<serde_json::Value> = old_delmal.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| json!({"code": d["code"], "title_sv": d["title_sv"], "title_en": d["title_en"]}))
        .collect();
    delmal[6]["title_sv"] = json!("Vetenskapligt förhållningssätt och evidensbaserad medicin");
    let body = json!({"code": "bt-2021", "name_sv": "Bastjänstgöring", "statute": "HSLF-FS 2021:8", "delmal": delmal});
    let v2 = app
        .post("/regulations", Some(&admin.access), body.clone())
        .expect(201);
    assert_eq!(v2.body["version"], 2);
    assert_eq!(v2.body["latest"], true);
    // The same content again is not a third version.
    app.post("/regulations", Some(&admin.access), body)
        .expect_problem(409, "conflict");

    let v1 = app
        .get(&format!("/regulations/{old}"), Some(&admin.access))
        .expect(200);
    assert_eq!(v1.body["latest"], false);
    assert_eq!(
        app.get(&format!("/regulations/{old}/delmal"), Some(&admin.access))
            .expect(200)
            .body,
        old_delmal.body
    );
    let listed = app
        .get("/regulations?code=bt-2021", Some(&admin.access))
        .expect(200);
    assert_eq!(listed.body["items"].as_array().expect("items").len(), 2);
    let only_v2 = app
        .get("/regulations?code=bt-2021&version=2", Some(&admin.access))
        .expect(200);
    assert_eq!(only_v2.body["items"][0]["id"], v2.body["id"]);

    // Invalid versions name every bad field.
    let bad = app
        .post(
            "/regulations",
            Some(&admin.access),
            json!({"code": "BT 2030", "name_sv": "", "statute": "x", "delmal": [{"code": "A", "title_sv": ""}, {"code": "A", "title_sv": "dubbel"}]}),
        )
        .expect_problem(422, "validation");
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(
        fields,
        ["code", "name_sv", "delmal[0].title_sv", "delmal[1].code"]
    );
}

#[test]
fn administrators_add_specialty_delmal_one_by_one_and_in_bulk() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let st = app.regulation_id(&admin, "st-2021");
    let one = app
        .post(
            &format!("/regulations/{st}/delmal"),
            Some(&admin.access),
            json!({"code": "STc1", "specialty": "allmänmedicin", "group": "STc", "title_sv": "Allmänmedicinsk konsultation"}),
        )
        .expect(201);
    assert_eq!(one.body["specialty"], "allmänmedicin");
    // A common delmål cannot be slipped into an existing version.
    app.post(
        &format!("/regulations/{st}/delmal"),
        Some(&admin.access),
        json!({"code": "STa8", "title_sv": "Nytt"}),
    )
    .expect_problem(422, "validation");
    app.post(
        &format!("/regulations/{st}/delmal"),
        Some(&admin.access),
        json!({"code": "STc1", "specialty": "allmänmedicin", "title_sv": "Igen"}),
    )
    .expect_problem(422, "validation");

    // CSV with two bad rows: nothing is imported, both rows are reported by number.
    let csv = "code,specialty,title_sv,title_en\n\
               STc2,allmänmedicin,Kroniska sjukdomar,Chronic disease\n\
               STc3,allmänmedicin,,Missing Swedish title\n\
               STc1,allmänmedicin,Dubblett,Duplicate of an existing one\n\
               STc4,allmänmedicin,Barn och ungdomar,Children\n";
    let bad = app
        .send_raw(
            "POST",
            &format!("/regulations/{st}/delmal/import"),
            Some(&admin.access),
            "text/csv; charset=utf-8",
            csv.as_bytes(),
        )
        .expect_problem(422, "validation");
    let errors = bad.body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{}", bad.text);
    assert_eq!(errors[0]["field"], "rows[1].title_sv");
    assert!(errors[0]["message"]
        .as_str()
        .expect("message")
        .starts_with("row 3:"));
    assert_eq!(errors[1]["field"], "rows[2].code");
    assert!(errors[1]["message"]
        .as_str()
        .expect("message")
        .starts_with("row 4:"));
    let common_and_one = app
        .get(
            &format!("/regulations/{st}/delmal?specialty=allmänmedicin"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(
        common_and_one.body["items"]
            .as_array()
            .expect("items")
            .len(),
        12
    );

    // Fixed, the same file goes in whole.
    let good = "code,specialty,title_sv,title_en,group\n\
                STc2,allmänmedicin,Kroniska sjukdomar,Chronic disease,STc\n\
                STc3,allmänmedicin,Multisjuklighet,,STc\n\
                STc4,allmänmedicin,Barn och ungdomar,Children,STc\n";
    let ok = app
        .send_raw(
            "POST",
            &format!("/regulations/{st}/delmal/import"),
            Some(&admin.access),
            "text/csv",
            good.as_bytes(),
        )
        .expect(201);
    assert_eq!(ok.body["items"].as_array().expect("items").len(), 3);

    // JSON import behaves the same.
    let json_rows = json!([
        {"code": "STc1", "specialty": "kirurgi", "title_sv": "Kirurgisk bedömning"},
        {"code": "STc2", "specialty": "kirurgi", "title_sv": ""}
    ]);
    app.send_raw(
        "POST",
        &format!("/regulations/{st}/delmal/import"),
        Some(&admin.access),
        "application/json",
        json_rows.to_string().as_bytes(),
    )
    .expect_problem(422, "validation");
    app.send_raw(
        "POST",
        &format!("/regulations/{st}/delmal/import"),
        Some(&admin.access),
        "application/xml",
        b"<x/>",
    )
    .expect_problem(415, "unsupported-media-type");

    let gp = app
        .get(
            &format!("/regulations/{st}/delmal?specialty=allmänmedicin&group=STc"),
            Some(&admin.access),
        )
        .expect(200);
    let codes: Vec<&str> = gp.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["code"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, ["STc1", "STc2", "STc3", "STc4"]);
    let surgery = app
        .get(
            &format!("/regulations/{st}/delmal?specialty=kirurgi&group=STc"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(surgery.body["items"].as_array().expect("items").len(), 0);
}

#[test]
fn a_programme_template_is_versioned_and_each_version_kept() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let bt = app.regulation_id(&admin, "bt-2021");
    let created = app
        .post(
            "/programme-templates",
            Some(&admin.access),
            stockholm_bt(&slso, &bt),
        )
        .expect(201);
    let id = created.body["id"].as_str().expect("id").to_string();
    assert_eq!(created.body["version"], 1);
    let types = created.body["placement_types"].as_array().expect("types");
    assert_eq!(types.len(), 4);
    assert_eq!(types[0]["supervision_every_days"], 7);
    let item_id = types[0]["checklist"][0]["id"]
        .as_str()
        .expect("item id")
        .to_string();
    let etag = created.header("etag").expect("etag").to_string();

    // Unknown delmål and bad numbers are refused with the field named.
    let mut bad = stockholm_bt(&slso, &bt);
    bad["placement_types"][1]["checklist"][0]["delmal"] = json!(["BT99"]);
    bad["placement_types"][2]["months"] = json!(0);
    bad["placement_types"][3]["checklist"][0]["assessment_type"] = serde_json::Value::Null;
    let refused = app
        .post("/programme-templates", Some(&admin.access), bad)
        .expect_problem(422, "validation");
    let fields: Vec<&str> = refused.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    assert_eq!(
        fields,
        [
            "placement_types[1].checklist[0].delmal",
            "placement_types[2].months",
            "placement_types[3].checklist[0].assessment_type"
        ]
    );

    // Mid-year change: the geriatrics placement gets a DOPS too. Keeping item ids keeps
    // their meaning across versions.
    let mut v2 = stockholm_bt(&slso, &bt);
    v2.as_object_mut()
        .expect("object")
        .remove("organisation_id");
    v2["placement_types"] = created.body["placement_types"].clone();
    v2["placement_types"][2]["checklist"]
        .as_array_mut()
        .expect("checklist")
        .push(json!({"kind": "assessment", "title": "DOPS", "assessment_type": "dops", "count": 1, "delmal": ["BT15"]}));
    let path = format!("/programme-templates/{id}/versions");
    let second = app
        .send(
            "POST",
            &path,
            Some(&admin.access),
            Some(&v2),
            &[("If-Match", &etag)],
        )
        .expect(201);
    assert_eq!(second.body["version"], 2);
    assert_eq!(
        second.body["placement_types"][0]["checklist"][0]["id"],
        item_id.as_str()
    );
    // Someone editing from version 1 is told it changed.
    app.send(
        "POST",
        &path,
        Some(&admin.access),
        Some(&v2),
        &[("If-Match", &etag)],
    )
    .expect_problem(412, "precondition-failed");

    let latest = app
        .get(&format!("/programme-templates/{id}"), Some(&admin.access))
        .expect(200);
    assert_eq!(latest.body["version"], 2);
    assert_eq!(
        latest.body["placement_types"][2]["checklist"]
            .as_array()
            .expect("c")
            .len(),
        2
    );
    let first = app
        .get(
            &format!("/programme-templates/{id}/versions/1"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(
        first.body["placement_types"][2]["checklist"]
            .as_array()
            .expect("c")
            .len(),
        1
    );
    assert_eq!(first.body["latest"], false);
    let versions = app.get(&path, Some(&admin.access)).expect(200);
    assert_eq!(versions.body["items"].as_array().expect("items").len(), 2);
    let listed = app
        .get(
            &format!("/programme-templates?organisation_id={slso}"),
            Some(&admin.access),
        )
        .expect(200);
    assert_eq!(listed.body["items"].as_array().expect("items").len(), 1);
    assert_eq!(listed.body["items"][0]["version"], 2);
    app.get(
        &format!("/programme-templates/{id}/versions/7"),
        Some(&admin.access),
    )
    .expect_problem(404, "not-found");
}
