//! Issue 14 item 13, AT: the placement minimums of the `at` regulation (with the 9 months
//! of invärtesmedicinska and opererande specialiteter counted together) warn in the plan,
//! and Region Jönköping's rule "four approved sit-ins, one in each main placement, before
//! the AT exam" is a checklist rule of its template (`catalog/jonkoping-at-programme.json`)
//! that progress reports as a prerequisite with what is missing. The test clock says
//! 2026-11-24.

use serde_json::{json, Value};

use crate::certificates::{region, Region};
use crate::support::TestUser;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// Region Jönköping's AT template from the catalogue, created in `r`'s care provider.
fn jonkoping_template(r: &Region) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/catalog/jonkoping-at-programme.json"
    );
    let text = std::fs::read_to_string(path).expect("the catalogue file");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let mut body = doc["template"].clone();
    body["organisation_id"] = json!(r.slso);
    body["regulation_id"] = json!(r.app.regulation_id(&r.director, "at"));
    id(&r
        .app
        .post("/programme-templates", Some(&r.director.access), body)
        .expect(201)
        .body)
}

fn warnings(e: &Value) -> Vec<(String, String)> {
    e["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| {
            (
                w["code"].as_str().expect("code").to_string(),
                w["message"].as_str().expect("message").to_string(),
            )
        })
        .collect()
}

/// An AT enrolment of `template` with one placement per `(type, start, end, supervisor)`.
fn enrol(
    r: &Region,
    template: &str,
    trainee: &TestUser,
    main: &TestUser,
    unit: &str,
    placements: &[(&str, &str, &str, &TestUser)],
) -> Value {
    let start = placements[0].1;
    let end = placements[placements.len() - 1].2;
    let placements: Vec<Value> = placements
        .iter()
        .map(|(kind, from, to, who)| {
            json!({"placement_type": kind, "start_date": from, "end_date": to,
                   "unit_id": unit, "supervisor_id": who.id})
        })
        .collect();
    r.app
        .post(
            "/enrolments",
            Some(&r.director.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "at",
                     "start_date": start, "planned_end": end, "main_supervisor_id": main.id,
                     "placements": placements}),
        )
        .expect(201)
        .body
}

/// The AT exam's prerequisite in `enrolment`'s progress, as the trainee sees it.
fn exam(r: &Region, enrolment: &str, trainee: &TestUser) -> Value {
    let p = r
        .app
        .get(
            &format!("/enrolments/{enrolment}/progress"),
            Some(&trainee.access),
        )
        .expect(200);
    let steps = p.body["prerequisites"].as_array().expect("prerequisites");
    assert_eq!(steps.len(), 1, "{}", p.body);
    assert_eq!(steps[0]["step"], "AT-tentamen");
    steps[0].clone()
}

fn missing(step: &Value) -> Vec<String> {
    step["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["complete"] == false)
        .map(|i| i["placement_name"].as_str().expect("name").to_string())
        .collect()
}

/// A sit-in in `placement` asked of `assessor`; signed unless `sign` is false.
fn sit_in(
    r: &Region,
    enrolment: &str,
    trainee: &TestUser,
    assessor: &TestUser,
    placement: &str,
    on: &str,
    sign: bool,
) {
    let a = r
        .app
        .post(
            &format!("/enrolments/{enrolment}/assessments"),
            Some(&trainee.access),
            json!({"instrument": "sit_in", "performed_on": on, "assessor_id": assessor.id,
                     "placement_id": placement}),
        )
        .expect(201);
    if sign {
        r.app
            .post(
                &format!("/assessments/{}/sign", id(&a.body)),
                Some(&assessor.access),
                json!({"entrustment": 4, "feedback_strengths": "Strukturerad anamnes.",
                         "feedback_next_steps": "Öva på att sammanfatta för patienten."}),
            )
            .expect(200);
    }
}

#[test]
fn at_placement_minimums_count_the_medical_and_surgical_blocks_together() {
    let r = region();
    let template = jonkoping_template(&r);
    let unit = r.unit("Länssjukhuset Ryhov", &r.slso);
    let main = r.person("atchef@rjl.se", "supervisor", "Märta Öhrn");
    let ada = r.person("ada@rjl.se", "trainee", "Ada Ålund");
    let bo = r.person("bo@rjl.se", "trainee", "Bo Ängqvist");

    // Jönköping's 21 months: 6 + 6 + 3 + 6, every minimum met.
    let full = enrol(
        &r,
        &template,
        &ada,
        &main,
        &unit,
        &[
            ("internmedicin", "2025-03-01", "2025-08-31", &main),
            ("kirurgi-ortopedi", "2025-09-01", "2026-02-28", &main),
            ("psykiatri", "2026-03-01", "2026-05-31", &main),
            ("allmanmedicin", "2026-06-01", "2026-11-30", &main),
        ],
    );
    assert_eq!(warnings(&full), vec![], "{full}");

    // Six months of medicine and two of surgery: surgery under its 3 months, the two
    // together under 9, and 17 months in all.
    let short = enrol(
        &r,
        &template,
        &bo,
        &main,
        &unit,
        &[
            ("internmedicin", "2025-03-01", "2025-08-31", &main),
            ("kirurgi-ortopedi", "2025-09-01", "2025-10-31", &main),
            ("psykiatri", "2025-11-01", "2026-01-31", &main),
            ("allmanmedicin", "2026-02-01", "2026-07-31", &main),
        ],
    );
    let w = warnings(&short);
    let about = |needle: &str| w.iter().filter(|(_, m)| m.contains(needle)).count();
    assert_eq!(
        about("at least 3 months in opererande specialiteter;"),
        1,
        "{w:?}"
    );
    assert_eq!(about("at least 9 months in invärtesmedicinska specialiteter and opererande specialiteter together"), 1, "{w:?}");
    assert_eq!(about("at least 18 months in all"), 1, "{w:?}");
    assert_eq!(about("invärtesmedicinska specialiteter;"), 0, "{w:?}");
    assert_eq!(about("psykiatri"), 0, "{w:?}");
    assert!(
        w.iter()
            .all(|(c, _)| c == "minimum_months_in" || c == "minimum_months"),
        "{w:?}"
    );

    // The regulation's rules name where each value comes from.
    let at = r.app.regulation_id(&r.director, "at");
    let reg = r
        .app
        .get(&format!("/regulations/{at}"), Some(&r.director.access))
        .expect(200);
    let sources = &reg.body["rules"]["sources"];
    assert!(
        sources["placements_minimum_months"]
            .as_str()
            .expect("source")
            .contains("seed 001"),
        "{sources}"
    );
}

#[test]
fn the_at_exam_waits_for_an_approved_sit_in_in_each_main_placement() {
    let r = region();
    let template = jonkoping_template(&r);
    // The template keeps the rule as written.
    let t = r
        .app
        .get(
            &format!("/programme-templates/{template}"),
            Some(&r.director.access),
        )
        .expect(200);
    assert_eq!(
        t.body["placement_types"][2]["checklist"][0]["prerequisite_for"], "AT-tentamen",
        "{}",
        t.body
    );

    let unit = r.unit("Länssjukhuset Ryhov", &r.slso);
    let main = r.person("atchef@rjl.se", "supervisor", "Märta Öhrn");
    let med = r.person("med@rjl.se", "supervisor", "Åsa Medin");
    let kir = r.person("kir@rjl.se", "supervisor", "Örjan Kirsten");
    let psyk = r.person("psyk@rjl.se", "supervisor", "Lena Psykén");
    let trainee = r.person("at@rjl.se", "trainee", "Ella Östgöta");
    let e = enrol(
        &r,
        &template,
        &trainee,
        &main,
        &unit,
        &[
            ("internmedicin", "2025-03-01", "2025-08-31", &med),
            ("kirurgi-ortopedi", "2025-09-01", "2026-02-28", &kir),
            ("psykiatri", "2026-03-01", "2026-05-31", &psyk),
            ("allmanmedicin", "2026-06-01", "2026-11-30", &main),
        ],
    );
    let enrolment = id(&e);
    let placement: Vec<String> = e["placements"]
        .as_array()
        .expect("placements")
        .iter()
        .map(id)
        .collect();

    let before = exam(&r, &enrolment, &trainee);
    assert_eq!(before["met"], false);
    assert_eq!(
        missing(&before),
        [
            "Internmedicin",
            "Kirurgi/ortopedi",
            "Psykiatri",
            "Allmänmedicin"
        ]
    );

    // Two in surgery, one each in medicine and general practice, and one in psychiatry
    // that its assessor has not signed yet: psychiatry is still missing.
    sit_in(
        &r,
        &enrolment,
        &trainee,
        &med,
        &placement[0],
        "2025-06-10",
        true,
    );
    sit_in(
        &r,
        &enrolment,
        &trainee,
        &kir,
        &placement[1],
        "2025-11-12",
        true,
    );
    sit_in(
        &r,
        &enrolment,
        &trainee,
        &kir,
        &placement[1],
        "2026-01-20",
        true,
    );
    sit_in(
        &r,
        &enrolment,
        &trainee,
        &main,
        &placement[3],
        "2026-09-03",
        true,
    );
    sit_in(
        &r,
        &enrolment,
        &trainee,
        &psyk,
        &placement[2],
        "2026-04-15",
        false,
    );
    let waiting = exam(&r, &enrolment, &trainee);
    assert_eq!(waiting["met"], false);
    assert_eq!(missing(&waiting), ["Psykiatri"]);
    let surgery = &waiting["items"][1];
    assert_eq!(
        (surgery["required"].as_i64(), surgery["done"].as_i64()),
        (Some(1), Some(2))
    );

    sit_in(
        &r,
        &enrolment,
        &trainee,
        &psyk,
        &placement[2],
        "2026-05-06",
        true,
    );
    let ready = exam(&r, &enrolment, &trainee);
    assert_eq!(ready["met"], true, "{ready}");
    assert_eq!(missing(&ready), Vec::<String>::new());

    // The director following the cohort sees the same; another trainee sees nothing.
    let seen = r
        .app
        .get(
            &format!("/enrolments/{enrolment}/progress"),
            Some(&r.director.access),
        )
        .expect(200);
    assert_eq!(seen.body["prerequisites"][0]["met"], true);
    let other = r.person("annan@rjl.se", "trainee", "Annan Åkare");
    r.app
        .get(
            &format!("/enrolments/{enrolment}/progress"),
            Some(&other.access),
        )
        .expect_problem(404, "not-found");
}
