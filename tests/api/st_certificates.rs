//! Issue 14 item 9: the ST certificate set. An ST 2021 trainee's course, auskultation,
//! quality-improvement work and scientific work each get their certificate with the
//! catalogue's variant and signer (scientific work through STa3, bilaga 12), before any
//! final assessment; the application summary (bilaga 5; bilaga 1 for BT) lists what is
//! drafted, signed and missing, as JSON and as PDF (pdftotext, å ä ö intact); an ST 2015
//! trainee gets the 2015 set; and no one outside the enrolment reads any of it.
//! The test clock says 2026-11-24.

use serde_json::{json, Value};

use crate::certificates::{by_key, judged, lines, region, Region};
use crate::support::{pdf, TestUser};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// An ST enrolment of `template` with one placement supervised by `placement_sup`,
/// `main` as main supervisor; returns (enrolment, placement).
fn enrol(
    r: &Region,
    trainee: &TestUser,
    main: &TestUser,
    placement_sup: &TestUser,
    template: &str,
    track: &str,
    unit: &str,
) -> (String, String) {
    let e = r
        .app
        .post("/enrolments", Some(&r.director.access),
              json!({"trainee_id": trainee.id, "template_id": template, "track": track,
                     "start_date": "2021-06-01", "planned_end": "2026-11-30", "main_supervisor_id": main.id,
                     "placements": [{"placement_type": "allmanmedicin", "start_date": "2021-06-01",
                                     "end_date": "2026-11-30", "unit_id": unit, "supervisor_id": placement_sup.id}]}))
        .expect(201)
        .body;
    (id(&e), id(&e["placements"][0]))
}

fn activity(r: &Region, e: &str, trainee: &TestUser, body: Value) -> String {
    id(&r
        .app
        .post(
            &format!("/enrolments/{e}/activities"),
            Some(&trainee.access),
            body,
        )
        .expect(201)
        .body)
}

fn summary(r: &Region, e: &str, user: &TestUser) -> Value {
    r.app
        .get(
            &format!("/enrolments/{e}/application-summary"),
            Some(&user.access),
        )
        .expect(200)
        .body
}

fn entries(s: &Value) -> Vec<Value> {
    s["certificates"].as_array().expect("certificates").clone()
}

fn missing_appendices(s: &Value) -> Vec<String> {
    entries(s)
        .iter()
        .filter(|c| c["status"] == "missing")
        .map(|c| c["appendix"].as_str().expect("appendix").to_string())
        .collect()
}

fn entry<'a>(cs: &'a [Value], key: &str) -> &'a Value {
    cs.iter()
        .find(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("no {key}: {cs:?}"))
}

fn summary_pdf(r: &Region, e: &str, user: &TestUser) -> String {
    let resp = r
        .app
        .send(
            "GET",
            &format!("/enrolments/{e}/application-summary"),
            Some(&user.access),
            None,
            &[("Accept", "application/pdf")],
        )
        .expect(200);
    assert_eq!(resp.header("content-type"), Some("application/pdf"));
    // Table cells wrap: words joined by single spaces, whatever the line breaks.
    pdf::text(&resp.bytes)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn st_2021_activities_get_their_variant_signer_sta3_and_a_complete_summary() {
    let r = region();
    let app = &r.app;
    let unit = r.unit("Vårdcentral Årsta", &r.slso);
    let head = r.person("vc@sll.se", "supervisor", "Björn Älvdal");
    let assessor = r.person("spec@uu.se", "external_assessor", "Åke Ängård");
    let asa = r.person("asa@sll.se", "trainee", "Åsa Ström");
    let goran = r.person("goran@sll.se", "supervisor", "Göran Källström");
    let marta = r.person("marta@sll.se", "supervisor", "Märta Åkesson");
    let st21 = r.st_template("st-2021", "ST allmänmedicin 2021");
    let (e, placement) = enrol(&r, &asa, &goran, &marta, &st21, "st_2021", &unit);

    // Nothing yet: no decision and no STa3 work; the application is incomplete.
    let s = summary(&r, &e, &asa);
    assert_eq!(s["statute"], "HSLF-FS 2021:8");
    assert_eq!(s["application"]["appendix"], "5");
    assert_eq!(
        s["application"]["title_sv"],
        "Ansökan om bevis om specialistkompetens"
    );
    assert_eq!(s["complete"], false);
    assert_eq!(missing_appendices(&s), ["7", "12"], "{s}");
    assert_eq!(s["trainee_name"], "Åsa Ström");

    let course = activity(
        &r,
        &e,
        &asa,
        json!({"kind": "course", "title": "Kurs i kommunikation", "start_date": "2026-03-02",
               "end_date": "2026-03-04", "placement_id": placement, "delmal": ["STb1"]}),
    );
    let ausk = activity(
        &r,
        &e,
        &asa,
        json!({"kind": "observership", "title": "Auskultation på barnakuten", "start_date": "2026-04-06",
               "end_date": "2026-04-10", "delmal": ["STb2"]}),
    );
    let qi = activity(
        &r,
        &e,
        &asa,
        json!({"kind": "quality_improvement", "title": "Förbättringsarbete: läkemedelsgenomgångar",
               "start_date": "2025-09-01", "end_date": "2026-02-28", "placement_id": placement,
               "delmal": ["STa2", "STa3"]}),
    );
    let sci = activity(
        &r,
        &e,
        &asa,
        json!({"kind": "scientific_work", "title": "Vetenskapligt arbete om förmaksflimmer i primärvård",
               "start_date": "2024-01-15", "end_date": "2025-06-30", "delmal": ["STa3"]}),
    );
    // Märta's signed Mini-CEX during the course shows its kompetenskrav met.
    let a = app
        .post(
            &format!("/enrolments/{e}/assessments"),
            Some(&asa.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-03-03", "assessor_id": marta.id,
                     "placement_id": placement, "delmal": ["STb1"]}),
        )
        .expect(201);
    app.post(&format!("/assessments/{}/sign", id(&a.body)), Some(&marta.access),
             json!({"entrustment": 4, "feedback_strengths": "Tydlig.", "feedback_next_steps": "Fortsätt."}))
        .expect(200);

    let s = summary(&r, &e, &goran);
    let cs = entries(&s);
    let course_cert = entry(&cs, &format!("utbildningsaktivitet-{course}"));
    assert_eq!(course_cert["appendix"], "8-11");
    assert_eq!(course_cert["variant"], "kurs");
    assert_eq!(course_cert["status"], "drafted");
    assert_eq!(
        course_cert["signatures"][0]["role"],
        "kursledare eller handledare"
    );
    assert_eq!(course_cert["signatures"][0]["name"], "Märta Åkesson");
    let ausk_cert = entry(&cs, &format!("utbildningsaktivitet-{ausk}"));
    assert_eq!(ausk_cert["variant"], "auskultation");
    // Outside any placement: the main supervisor signs.
    assert_eq!(ausk_cert["signatures"][0]["role"], "handledare");
    assert_eq!(ausk_cert["signatures"][0]["name"], "Göran Källström");
    let qi_cert = entry(&cs, &format!("utbildningsaktivitet-{qi}"));
    assert_eq!(qi_cert["variant"], "deltagande i utvecklingsarbete");
    assert_eq!(qi_cert["signatures"][0]["name"], "Märta Åkesson");
    // Scientific work has no variant of bilagor 8-11 in 2021: it is STa3's.
    assert!(
        !cs.iter()
            .any(|c| c["key"] == format!("utbildningsaktivitet-{sci}")),
        "{cs:?}"
    );
    let sta3 = entry(&cs, "sta3");
    assert_eq!(sta3["appendix"], "12");
    assert_eq!(sta3["title_sv"], "Intyg delmål STa3 Medicinsk vetenskap");
    assert_eq!(sta3["signatures"][0]["role"], "handledare");
    assert_eq!(sta3["signatures"][0]["name"], "Göran Källström");
    // The placement's own form, and the service certificate.
    assert_eq!(
        entry(&cs, &format!("utbildningsaktivitet-{placement}"))["variant"],
        "klinisk tjänstgöring"
    );
    assert_eq!(entry(&cs, "fullgjord-st")["status"], "drafted");
    assert_eq!(missing_appendices(&s), ["7"], "{s}");
    assert_eq!(s["complete"], false);

    // The decision: the competence certificate is signed, nothing is missing.
    r.assign(&e, &head, "head_of_department");
    r.assign(&e, &assessor, "external_assessor");
    let codes: Vec<String> = [
        "a1", "a2", "a3", "a4", "a5", "a6", "a7", "b1", "b2", "b3", "b4",
    ]
    .iter()
    .map(|c| format!("ST{c}"))
    .collect();
    let fa = r.decide(
        &e,
        &asa,
        &goran,
        &assessor,
        json!({"mode": "external_assessor", "decision": "achieved", "judgements": judged(&codes)}),
        &[&assessor, &goran],
    );
    let s = summary(&r, &e, &asa);
    assert_eq!(s["complete"], true, "{s}");
    assert_eq!(
        entry(&entries(&s), "specialistkompetens")["status"],
        "signed"
    );

    // The drafts themselves, after the decision: fields, evidence and signers.
    let drafts = r.certificates(&fa, &asa);
    let c = by_key(&drafts, &format!("utbildningsaktivitet-{course}"));
    let row = &c["tables"][0]["rows"][0];
    assert_eq!(row[0], "STb1");
    assert_eq!(row[2], "Mini-CEX 2026-03-03 (Märta Åkesson)", "{c}");
    let sta3 = by_key(&drafts, "sta3");
    let work: Vec<&str> = sta3["tables"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_str().expect("kind"))
        .collect();
    assert_eq!(
        work,
        ["vetenskapligt arbete", "kvalitets- och förbättringsarbete"]
    );
    assert_eq!(
        lines(sta3),
        [(
            "handledare".to_string(),
            Some("Göran Källström".to_string())
        )]
    );
    let text = r.pdf_text(&fa, "sta3", &asa);
    for needle in [
        "Intyg delmål STa3 Medicinsk vetenskap",
        "Åsa Ström",
        "förmaksflimmer",
        "Göran Källström",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }

    // The summary as PDF, å ä ö intact.
    let text = summary_pdf(&r, &e, &asa);
    for needle in [
        "Ansökan om bevis om specialistkompetens",
        "Åsa Ström",
        "Märta Åkesson",
        "komplett",
        "Intyg delmål STa3 Medicinsk vetenskap",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn st_2015_gets_the_2015_set_and_a_kursledare_line_left_to_sign_by_hand() {
    let r = region();
    let unit = r.unit("Vårdcentral Årsta", &r.slso);
    let osten = r.person("osten@sll.se", "trainee", "Östen Åberg");
    let arla = r.person("arla@sll.se", "supervisor", "Ärla Öhman");
    let st15 = r.st_template("st-2015", "ST allmänmedicin 2015");
    let (e, _) = enrol(&r, &osten, &arla, &arla, &st15, "st_2015", &unit);
    let course = activity(
        &r,
        &e,
        &osten,
        json!({"kind": "course", "title": "Kurs i handledning", "start_date": "2025-02-03", "delmal": ["a1"]}),
    );
    let sci = activity(
        &r,
        &e,
        &osten,
        json!({"kind": "scientific_work", "title": "Skriftligt arbete om hypertoni", "start_date": "2024-02-01",
               "end_date": "2024-12-20", "delmal": ["a2"]}),
    );
    let qi = activity(
        &r,
        &e,
        &osten,
        json!({"kind": "quality_improvement", "title": "Kvalitetsarbete: remisser", "start_date": "2023-03-01",
               "delmal": ["a3"]}),
    );

    let s = summary(&r, &e, &arla);
    assert_eq!(s["statute"], "SOSFS 2015:8");
    // The catalogue names no 2015 application form, and 2015 has no STa3 form.
    assert_eq!(s["application"], Value::Null);
    let cs = entries(&s);
    assert!(cs
        .iter()
        .all(|c| c["appendix"] != "12" && c["appendix"] != "8-11"));
    let c = entry(&cs, &format!("utbildningsaktivitet-{course}"));
    assert_eq!(c["appendix"], "3-7");
    assert_eq!(c["variant"], "kurs");
    assert_eq!(c["signatures"][0]["role"], "kursledare");
    assert_eq!(c["signatures"][0]["name"], Value::Null);
    let w = entry(&cs, &format!("utbildningsaktivitet-{sci}"));
    assert_eq!(w["variant"], "självständigt skriftligt arbete");
    assert_eq!(w["signatures"][0]["name"], "Ärla Öhman");
    assert_eq!(
        entry(&cs, &format!("utbildningsaktivitet-{qi}"))["variant"],
        "kvalitets- och utvecklingsarbete"
    );
    assert_eq!(missing_appendices(&s), ["2"]);
    let text = summary_pdf(&r, &e, &osten);
    for needle in [
        "SOSFS 2015:8",
        "Östen Åberg",
        "självständigt skriftligt arbete",
        "saknas",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn a_bt_summary_lists_bilaga_1s_certificates_and_the_delmal_no_one_certified() {
    let r = region();
    let app = &r.app;
    let unit = r.unit("Vårdcentral Årsta", &r.slso);
    let bt = app.stockholm_bt_template(&r.director, &r.slso);
    let t = r.person("bt@sll.se", "trainee", "Åsa Öberg");
    let main = r.person("hhl@sll.se", "supervisor", "Örjan Ärlebäck");
    let (e, _) = enrol(&r, &t, &main, &main, &bt, "bt_standalone", &unit);
    let s = summary(&r, &e, &t);
    assert_eq!(s["application"]["appendix"], "1");
    assert_eq!(
        s["application"]["title_sv"],
        "Ansökan om intyg om godkänd bastjänstgöring"
    );
    assert_eq!(s["complete"], false);
    let cs = entries(&s);
    assert_eq!(entry(&cs, "fullgjord-bt")["status"], "drafted");
    let bt1 = cs
        .iter()
        .find(|c| c["appendix"] == "2" && c["subject"] == "BT1")
        .unwrap_or_else(|| panic!("BT1 not missing: {cs:?}"));
    assert_eq!(bt1["status"], "missing");
}

#[test]
fn no_one_outside_the_enrolment_reads_its_application_summary() {
    let r = region();
    let unit = r.unit("Vårdcentral Årsta", &r.slso);
    let asa = r.person("asa@sll.se", "trainee", "Åsa Ström");
    let goran = r.person("goran@sll.se", "supervisor", "Göran Källström");
    let other = r.person("annan@sll.se", "trainee", "Annan Läkare");
    let stranger = r.person("okand@sll.se", "supervisor", "Okänd Handledare");
    let st21 = r.st_template("st-2021", "ST allmänmedicin 2021");
    let (e, _) = enrol(&r, &asa, &goran, &goran, &st21, "st_2021", &unit);
    let path = format!("/enrolments/{e}/application-summary");
    for who in [&other, &stranger] {
        r.app
            .get(&path, Some(&who.access))
            .expect_problem(404, "not-found");
        r.app
            .send(
                "GET",
                &path,
                Some(&who.access),
                None,
                &[("Accept", "application/pdf")],
            )
            .expect(404);
    }
    r.app.get(&path, None).expect(401);
    // Unknown enrolment: the same answer as someone else's.
    r.app
        .get(
            "/enrolments/00000000-0000-0000-0000-000000000000/application-summary",
            Some(&asa.access),
        )
        .expect(404);
    // Neither JSON nor PDF acceptable.
    r.app
        .send(
            "GET",
            &path,
            Some(&asa.access),
            None,
            &[("Accept", "text/csv")],
        )
        .expect(406);
    // The director of studies and the supervisors read it.
    summary(&r, &e, &r.director);
    summary(&r, &e, &goran);
}
