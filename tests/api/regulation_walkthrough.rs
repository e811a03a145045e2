//! Issue 14, "Done when", for what exists so far: an ST 2015 trainee and an ST 2021
//! trainee with integrated BT get the right form set and signers per regulation (PDF text
//! via pdftotext, å ä ö intact), the ST minimum length counts the linked BT, the plans
//! warn until integrated BT's certificate is applied for, and a positive BT decision
//! completes the BT. Pace with leave and 75 % (`pace_extent.rs`), each supervisor's own
//! evidence (`certificates.rs`), the at-risk list (`pace_completion.rs`) and Swedish
//! midnight (`pace_dates.rs`) have their own tests; the supervision flags of item 11 are
//! not built yet. The test clock says 2026-11-24.

use serde_json::{json, Value};

use crate::certificates::{by_key, judged, lines, region, Region};
use crate::support::TestUser;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn codes(e: &Value) -> Vec<String> {
    e["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w["code"].as_str().expect("code").to_string())
        .collect()
}

fn keys(drafts: &[Value]) -> Vec<String> {
    drafts
        .iter()
        .map(|d| d["key"].as_str().expect("key").to_string())
        .collect()
}

fn get(r: &Region, enrolment: &str) -> Value {
    r.app
        .get(
            &format!("/enrolments/{enrolment}"),
            Some(&r.director.access),
        )
        .expect(200)
        .body
}

fn patch(r: &Region, enrolment: &str, body: Value) -> Value {
    let path = format!("/enrolments/{enrolment}");
    let current = r.app.get(&path, Some(&r.director.access)).expect(200);
    let etag = current.header("etag").expect("etag").to_string();
    r.app
        .patch(
            &path,
            Some(&r.director.access),
            body,
            &[("If-Match", &etag)],
        )
        .expect(200)
        .body
}

/// An ST enrolment of `template` with one placement at `unit`, supervised by `main`.
/// Enrols `trainee` under `main` for `[start, end]` with one placement at `unit`;
/// `fields` adds the enrolment's own (template, track, a BT enrolment).
fn enrol_st(
    r: &Region,
    trainee: &TestUser,
    main: &TestUser,
    [start, end]: [&str; 2],
    unit: &str,
    fields: Value,
) -> Value {
    let mut body = json!({"trainee_id": trainee.id,
                          "start_date": start, "planned_end": end, "main_supervisor_id": main.id,
                          "placements": [{"placement_type": "allmanmedicin", "start_date": start,
                                          "end_date": end, "unit_id": unit, "supervisor_id": main.id}]});
    if let (Some(b), Some(x)) = (body.as_object_mut(), fields.as_object()) {
        for (k, v) in x {
            b.insert(k.clone(), v.clone());
        }
    }
    r.app
        .post("/enrolments", Some(&r.director.access), body)
        .expect(201)
        .body
}

fn codes_of(prefix: &str, groups: &[(&str, u32)]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|(g, n)| (1..=*n).map(move |i| format!("{prefix}{g}{i}")))
        .collect()
}

#[test]
fn each_regulation_gets_its_forms_signers_and_st_rules() {
    let r = region();
    let app = &r.app;
    let unit = r.unit("Vårdcentral Årsta", &r.slso);
    let head = r.person("vc@sll.se", "supervisor", "Björn Älvdal");
    let assessor = r.person("spec@uu.se", "external_assessor", "Åke Ängård");

    // ST 2015: five years, no BT; the 2015 forms with the 2015 signers.
    let st15 = r.st_template("st-2015", "ST allmänmedicin 2015");
    let osten = r.person("osten@sll.se", "trainee", "Östen Åberg");
    let arla = r.person("arla@sll.se", "supervisor", "Ärla Öhman");
    let e15 = enrol_st(
        &r,
        &osten,
        &arla,
        ["2020-12-01", "2025-11-30"],
        &unit,
        json!({"template_id": st15, "track": "st_2015"}),
    );
    assert_eq!(codes(&e15), Vec::<String>::new(), "{e15}");
    let e15 = id(&e15);
    r.assign(&e15, &head, "head_of_department");
    r.assign(&e15, &assessor, "external_assessor");
    let fa15 = r.decide(
        &e15,
        &osten,
        &arla,
        &assessor,
        json!({"mode": "external_assessor", "decision": "achieved",
               "judgements": judged(&codes_of("", &[("a", 6), ("b", 5)]))}),
        &[&assessor, &arla],
    );
    let drafts = r.certificates(&fa15, &osten);
    assert!(drafts.iter().all(|d| d["statute"] == "SOSFS 2015:8"));
    let spec = by_key(&drafts, "specialistkompetens");
    assert_eq!(spec["appendix"], "2");
    assert_eq!(
        lines(spec)[0],
        (
            "verksamhetschef or appointed specialist".to_string(),
            Some("Björn Älvdal".to_string())
        )
    );
    let text = r.pdf_text(&fa15, "specialistkompetens", &osten);
    for needle in ["SOSFS 2015:8", "Östen Åberg", "Björn Älvdal", "Ärla Öhman"] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }

    // ST 2021 with integrated BT: the BT year, then ST linked to it.
    let asa = r.person("asa@sll.se", "trainee", "Åsa Ström");
    let goran = r.person("goran@sll.se", "supervisor", "Göran Källström");
    let bt_template = app.stockholm_bt_template(&r.director, &r.slso);
    let bt = app
        .post("/enrolments", Some(&r.director.access),
              json!({"trainee_id": asa.id, "template_id": bt_template, "track": "st_integrated_bt",
                     "start_date": "2024-09-01", "planned_end": "2025-08-31", "main_supervisor_id": goran.id,
                     "placements": [
                        {"placement_type": "allmanmedicin", "start_date": "2024-09-01", "end_date": "2024-12-31", "unit_id": unit, "supervisor_id": goran.id},
                        {"placement_type": "akut", "start_date": "2025-01-01", "end_date": "2025-04-30", "unit_id": unit, "supervisor_id": goran.id},
                        {"placement_type": "geriatrik", "start_date": "2025-05-01", "end_date": "2025-06-30", "unit_id": unit, "supervisor_id": goran.id},
                        {"placement_type": "psykiatri", "start_date": "2025-07-01", "end_date": "2025-08-31", "unit_id": unit, "supervisor_id": goran.id}]}))
        .expect(201)
        .body;
    let bt = id(&bt);
    let st21 = r.st_template("st-2021", "ST allmänmedicin 2021");
    let st = enrol_st(
        &r,
        &asa,
        &goran,
        ["2025-09-01", "2030-03-31"],
        &unit,
        json!({"template_id": st21, "track": "st_integrated_bt", "bt_enrolment_id": bt}),
    );
    // 55 months of ST and the 12 of the BT meet the 66 months; integrated BT's
    // certificate was due by 2026-08-31 and is not applied for.
    assert_eq!(codes(&st), ["bt_application_deadline"], "{st}");
    let st = id(&st);
    assert!(codes(&get(&r, &bt)).contains(&"bt_application_deadline".to_string()));
    patch(&r, &bt, json!({"applied_on": "2026-08-20"}));
    assert_eq!(codes(&get(&r, &st)), Vec::<String>::new());

    // The BT decided: the BT forms under HSLF-FS 2021:8, and the BT is completed.
    r.assign(&bt, &head, "head_of_department");
    r.assign(&bt, &assessor, "external_assessor");
    let bt_codes: Vec<String> = (1..=18).map(|n| format!("BT{n}")).collect();
    let fa_bt = r.decide(
        &bt,
        &asa,
        &goran,
        &assessor,
        json!({"mode": "external_assessor", "decision": "achieved", "judgements": judged(&bt_codes)}),
        &[&assessor, &goran],
    );
    let drafts = r.certificates(&fa_bt, &asa);
    let all = keys(&drafts);
    assert!(all.contains(&"baskompetens".to_string()), "{all:?}");
    assert!(all.contains(&"fullgjord-bt".to_string()), "{all:?}");
    assert!(drafts.iter().all(|d| d["statute"] == "HSLF-FS 2021:8"));
    assert_eq!(
        lines(by_key(&drafts, "fullgjord-bt")),
        [(
            "huvudansvarig verksamhetschef".to_string(),
            Some("Björn Älvdal".to_string())
        )]
    );
    let text = r.pdf_text(&fa_bt, "baskompetens", &asa);
    for needle in [
        "Intyg om uppnådd baskompetens",
        "Åsa Ström",
        "Åke Ängård",
        "Göran Källström",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert_eq!(get(&r, &bt)["status"], "completed");

    // The ST decided: the 2021 ST forms, and no BT form.
    r.assign(&st, &head, "head_of_department");
    r.assign(&st, &assessor, "external_assessor");
    let fa_st = r.decide(
        &st,
        &asa,
        &goran,
        &assessor,
        json!({"mode": "external_assessor", "decision": "achieved",
               "judgements": judged(&codes_of("ST", &[("a", 7), ("b", 4)]))}),
        &[&assessor, &goran],
    );
    let drafts = r.certificates(&fa_st, &asa);
    let all = keys(&drafts);
    assert!(
        !all.iter()
            .any(|k| k == "baskompetens" || k == "fullgjord-bt"),
        "{all:?}"
    );
    let spec = by_key(&drafts, "specialistkompetens");
    assert_eq!(spec["appendix"], "7");
    assert_eq!(spec["statute"], "HSLF-FS 2021:8");
    let text = r.pdf_text(&fa_st, "specialistkompetens", &asa);
    for needle in ["HSLF-FS 2021:8", "Åsa Ström", "Göran Källström"] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}
