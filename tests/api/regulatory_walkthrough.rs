//! Issue 14, "Done when", as one story. A region runs three trainings side by side:
//!
//! - Åsa, a BT doctor (HSLF-FS 2021:8) from 1 January 2026, moves to 75 % in March and
//!   takes parental leave in May and June. Her pace and projected end follow the time she
//!   serves; the missing mid-placement talk and handover are flagged from Swedish
//!   midnight; each supervisor's delmål certificate lists only their own evidence; once
//!   the final assessment says achieved she is completed and off the at-risk list.
//! - Östen, an ST 2015 trainee (SOSFS 2015:8): the 2015 forms with the 2015 signers.
//! - Åke, an ST 2021 trainee with integrated BT: the BT forms for the BT, the ST forms
//!   for the ST, the ST minimum length counting the BT, and the warning until the BT
//!   certificate is applied for.
//!
//! PDF text is read with pdftotext (å ä ö intact). The test clock starts on 2026-11-24;
//! the story moves it.

use serde_json::{json, Value};

use crate::certificates::{by_key, judged, lines};
use crate::pace_world::utc;
use crate::support::{pdf, TestApp, TestUser};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

struct Region {
    app: TestApp,
    admin: TestUser,
    director: TestUser,
    slso: String,
    bt_template: String,
}

impl Region {
    fn start() -> Region {
        // Sign-ins outlast the clock's moves by months.
        let app = TestApp::start_with(|c| {
            c.access_token_ttl = std::time::Duration::from_secs(400 * 24 * 3600);
            c.refresh_token_ttl = std::time::Duration::from_secs(400 * 24 * 3600);
        });
        let (admin, region) = app.admin();
        let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
        let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
        let bt_template = app.stockholm_bt_template(&director, &slso);
        Region {
            app,
            admin,
            director,
            slso,
            bt_template,
        }
    }

    fn person(&self, email: &str, role: &str, name: &str) -> TestUser {
        let u = self.app.join(&self.director, email, role, &self.slso);
        self.app
            .patch("/me", Some(&u.access), json!({"display_name": name}), &[])
            .expect(200);
        u
    }

    fn unit(&self, name: &str) -> String {
        let r = self
            .app
            .post(
                "/organisations",
                Some(&self.admin.access),
                json!({"kind": "unit", "name": name, "parent_id": self.slso}),
            )
            .expect(201);
        id(&r.body)
    }

    fn enrol(&self, body: Value) -> Value {
        self.app
            .post("/enrolments", Some(&self.director.access), body)
            .expect(201)
            .body
    }

    fn get(&self, path: &str, who: &TestUser) -> Value {
        self.app.get(path, Some(&who.access)).expect(200).body
    }

    fn post(&self, path: &str, who: &TestUser, body: Value, status: u16) -> Value {
        self.app
            .post(path, Some(&who.access), body)
            .expect(status)
            .body
    }

    fn assign(&self, enrolment: &str, user: &TestUser, role: &str) -> Value {
        self.post(
            &format!("/enrolments/{enrolment}/assignments"),
            &self.director,
            json!({"user_id": user.id, "role": role}),
            201,
        )
    }

    fn warnings(&self, enrolment: &str) -> Vec<String> {
        self.get(&format!("/enrolments/{enrolment}"), &self.director)["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .map(|w| w["code"].as_str().expect("code").to_string())
            .collect()
    }

    /// A one-placement ST template of `regulation` (a catalogue code).
    fn st_template(&self, regulation: &str, name: &str) -> String {
        let reg = self.app.regulation_id(&self.director, regulation);
        id(&self.post(
            "/programme-templates",
            &self.director,
            json!({"organisation_id": self.slso, "regulation_id": reg, "name": name,
                   "duration_months": 60, "supervision_every_days": 14,
                   "placement_types": [{"key": "allmanmedicin", "name": "Allmänmedicin", "months": 60,
                                        "supervision_every_days": 14, "checklist": []}],
                   "programme_items": []}),
            201,
        ))
    }

    /// The final check-in, then a final assessment by the external assessor and the main
    /// supervisor judging every code achieved, signed by both: its id.
    fn decide(
        &self,
        enrolment: &str,
        trainee: &TestUser,
        main: &TestUser,
        assessor: &TestUser,
        codes: &[String],
    ) -> String {
        let check_in = self.post(
            &format!("/enrolments/{enrolment}/final-check-ins"),
            trainee,
            json!({"held_on": "2026-11-20", "notes": "Alla delmål genomgångna inför slutbedömningen."}),
            201,
        );
        self.post(
            &format!("/final-check-ins/{}/confirm", id(&check_in)),
            main,
            json!({}),
            200,
        );
        let f = self.post(
            &format!("/enrolments/{enrolment}/final-assessments"),
            assessor,
            json!({"mode": "external_assessor", "decision": "achieved", "judgements": judged(codes)}),
            201,
        );
        // The assessor was never involved: the final assessment shows it.
        assert_eq!(f["independence"]["involved"], false, "{f}");
        let fa = id(&f);
        let mut last = Value::Null;
        for s in [assessor, main] {
            last = self.post(&format!("/final-assessments/{fa}/sign"), s, json!({}), 200);
        }
        assert_eq!(last["status"], "decided", "{last}");
        fa
    }

    fn certificates(&self, fa: &str, who: &TestUser) -> Vec<Value> {
        self.get(&format!("/final-assessments/{fa}/certificates"), who)["items"]
            .as_array()
            .expect("drafts")
            .clone()
    }

    fn pdf_text(&self, fa: &str, key: &str, who: &TestUser) -> String {
        let r = self
            .app
            .send(
                "GET",
                &format!("/final-assessments/{fa}/certificates/{key}"),
                Some(&who.access),
                None,
                &[("Accept", "application/pdf")],
            )
            .expect(200);
        pdf::text(&r.bytes)
    }

    /// The enrolment ids on the director's cohort overview for `query`.
    fn cohort(&self, query: &str) -> Vec<String> {
        self.get(&format!("/cohort-overview{query}"), &self.director)["items"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["enrolment_id"].as_str().expect("id").to_string())
            .collect()
    }
}

fn keys(drafts: &[Value]) -> Vec<String> {
    drafts
        .iter()
        .map(|d| d["key"].as_str().expect("key").to_string())
        .collect()
}

/// The delmål row `code` of a delmål certificate, as text cells.
fn row(draft: &Value, code: &str) -> Vec<String> {
    draft["tables"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| {
            r[0].as_str()
                .is_some_and(|c| c.starts_with(&format!("{code} ")))
        })
        .unwrap_or_else(|| panic!("no row {code}: {draft}"))
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| c.as_str().expect("cell").to_string())
        .collect()
}

fn codes_of(prefix: &str, groups: &[(&str, u32)]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|(g, n)| (1..=*n).map(move |i| format!("{prefix}{g}{i}")))
        .collect()
}

/// (code, placement) of the supervision flags on the trainee's progress.
fn flags(r: &Region, enrolment: &str, who: &TestUser) -> Vec<(String, String)> {
    let p = r.get(&format!("/enrolments/{enrolment}/progress"), who);
    p["pace"]["supervision_flags"]
        .as_array()
        .unwrap_or_else(|| panic!("{p}"))
        .iter()
        .map(|f| {
            (
                f["code"].as_str().expect("code").to_string(),
                f["placement_id"].as_str().expect("placement").to_string(),
            )
        })
        .collect()
}

fn has(flags: &[(String, String)], code: &str, placement: &str) -> bool {
    flags.contains(&(code.to_string(), placement.to_string()))
}

#[test]
fn three_trainings_under_two_regulations_from_plan_to_certificates() {
    let r = Region::start();
    let app = &r.app;
    let vc = r.unit("Vårdcentral Årsta");
    let head = r.person("vc@sll.se", "supervisor", "Björn Älvdal");
    let assessor = r.person("spec@uu.se", "external_assessor", "Karin Ödmark");
    let bt_codes: Vec<String> = (1..=18).map(|n| format!("BT{n}")).collect();

    // ---- Åsa's BT year: four placements, two placement supervisors. ----
    let asa = r.person("asa@sll.se", "trainee", "Åsa Öberg");
    let hhl = r.person("hhl@sll.se", "supervisor", "Örjan Ärlebäck");
    let marta = r.person("akut@sll.se", "supervisor", "Märta Åkesson");
    let e = r.enrol(json!({
        "trainee_id": asa.id, "template_id": r.bt_template, "track": "bt_standalone",
        "start_date": "2026-01-01", "planned_end": "2026-12-31", "main_supervisor_id": hhl.id,
        "placements": [
            {"placement_type": "allmanmedicin", "start_date": "2026-01-01", "end_date": "2026-04-30", "unit_id": vc, "supervisor_id": hhl.id},
            {"placement_type": "akut", "start_date": "2026-05-01", "end_date": "2026-08-31", "unit_id": vc, "supervisor_id": marta.id},
            {"placement_type": "geriatrik", "start_date": "2026-09-01", "end_date": "2026-10-31", "unit_id": vc, "supervisor_id": marta.id},
            {"placement_type": "psykiatri", "start_date": "2026-11-01", "end_date": "2026-12-31", "unit_id": vc, "supervisor_id": hhl.id}]}));
    let bt = id(&e);
    let placement: Vec<String> = e["placements"]
        .as_array()
        .expect("placements")
        .iter()
        .map(id)
        .collect();
    // Parental leave in May and June; from 1 March at 75 %.
    r.post(
        &format!("/enrolments/{bt}/leave-periods"),
        &r.director,
        json!({"kind": "parental", "start_date": "2026-05-01", "end_date": "2026-06-30"}),
        201,
    );
    r.post(
        &format!("/enrolments/{bt}/extent-changes"),
        &r.director,
        json!({"valid_from": "2026-03-01", "extent_percent": 75}),
        201,
    );

    // Pace and projected end: January and February at full time (59 days), March and
    // April at 75 % (45.75), nothing on leave, July to December at 75 % (138): 242.75
    // days of the 365.25 a year needs by New Year, so the BT ends on 13 June 2027.
    let served = |as_of: &str| r.get(&format!("/enrolments/{bt}/time-served?as_of={as_of}"), &asa);
    assert_eq!(served("2026-02-28")["served_days"], 59.0);
    assert_eq!(served("2026-06-30")["served_days"], 104.75);
    assert_eq!(served("2026-06-30")["leave_days"], 61.0);
    let year_end = served("2026-12-31");
    assert_eq!(year_end["served_days"], 242.75, "{year_end}");
    assert_eq!(year_end["projected_end"], "2027-06-13", "{year_end}");
    // On leave nobody is behind: at the end of June the akut placement expects nothing.
    app.clock.set(utc(2026, 6, 30, 10, 0));
    let p = r.get(&format!("/enrolments/{bt}/progress"), &asa);
    let akut = p["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .find(|c| c["placement_type"] == "akut")
        .expect("akut");
    assert_eq!(akut["elapsed"], 0.0, "{akut}");
    assert_eq!(p["pace"]["supervision_overdue"], false, "{p}");

    // Swedish midnight at the change to psykiatri on 1 November (winter time, UTC+1).
    // At 23:59 on 31 October it is still October, and the handover is not missing yet.
    app.clock.set(utc(2026, 10, 31, 22, 59));
    assert_eq!(served("2026-10-31")["as_of"], "2026-10-31");
    let before = flags(&r, &bt, &asa);
    assert!(
        !has(&before, "handover_missing", &placement[3]),
        "{before:?}"
    );
    // The geriatrik placement's midpoint has passed without the main supervisor's talk.
    assert!(
        has(&before, "mid_placement_talk_missing", &placement[2]),
        "{before:?}"
    );
    // At 00:30 on 1 November (23:30 UTC the day before) it is November in Stockholm:
    // today is the 1st, the handover is missing, and so is geriatrik's summary.
    app.clock.set(utc(2026, 10, 31, 23, 30));
    let today = r.get(&format!("/enrolments/{bt}/time-served"), &asa);
    assert_eq!(today["as_of"], "2026-11-01", "{today}");
    let after = flags(&r, &bt, &asa);
    assert!(has(&after, "handover_missing", &placement[3]), "{after:?}");
    assert!(
        has(&after, "summary_assessment_missing", &placement[2]),
        "{after:?}"
    );
    assert!(r.cohort("?supervision_flags=true").contains(&bt));
    // The handover at 00:30 is held "today", 1 November; the main supervisor's talk in
    // geriatrik is recorded afterwards. Both flags go.
    r.post(
        &format!("/enrolments/{bt}/handover-talks"),
        &asa,
        json!({"held_on": "2026-11-01", "placement_id": placement[2], "next_placement_id": placement[3],
               "outgoing_supervisor_id": marta.id, "incoming_supervisor_id": hhl.id}),
        201,
    );
    r.post(
        &format!("/enrolments/{bt}/supervision-sessions"),
        &hhl,
        json!({"held_on": "2026-10-01", "placement_id": placement[2], "topics": ["Halvtid i geriatriken"]}),
        201,
    );
    let now = flags(&r, &bt, &asa);
    assert!(!has(&now, "handover_missing", &placement[3]), "{now:?}");
    assert!(
        !has(&now, "mid_placement_talk_missing", &placement[2]),
        "{now:?}"
    );

    // Evidence, each piece under one supervisor: a home visit and a Mini-CEX in
    // allmänmedicin (the main supervisor), a trauma call and a DOPS on the akut
    // (Märta), all for BT1.
    app.clock.set(utc(2026, 11, 24, 10, 0));
    for (title, on, p) in [
        ("Hembesök i hemsjukvården", "2026-01-10", &placement[0]),
        ("Traumalarm på akuten", "2026-08-10", &placement[1]),
    ] {
        r.post(
            &format!("/enrolments/{bt}/activities"),
            &asa,
            json!({"kind": "clinical_work", "title": title, "start_date": on, "placement_id": p, "delmal": ["BT1"]}),
            201,
        );
    }
    for (by, instrument, on, p) in [
        (&hhl, "mini_cex", "2026-01-15", &placement[0]),
        (&marta, "dops", "2026-08-15", &placement[1]),
    ] {
        let a = r.post(
            &format!("/enrolments/{bt}/assessments"),
            &asa,
            json!({"instrument": instrument, "performed_on": on, "assessor_id": by.id,
                   "placement_id": p, "delmal": ["BT1"]}),
            201,
        );
        r.post(
            &format!("/assessments/{}/sign", id(&a)),
            by,
            json!({"entrustment": 4, "feedback_strengths": "Trygg.", "feedback_next_steps": "Öva mer."}),
            200,
        );
    }

    // Past the planned end with two pieces of evidence for eighteen delmål: at risk.
    app.clock.set(utc(2027, 1, 15, 10, 0));
    let p = r.get(&format!("/enrolments/{bt}/progress"), &asa);
    assert_eq!(p["pace"]["flag"], "at_risk", "{p}");
    assert!(r.cohort("?pace=at_risk").contains(&bt));

    // The external assessor is checked for independence before the director assigns.
    let check = r.get(
        &format!(
            "/enrolments/{bt}/external-assessor-independence?user_id={}",
            assessor.id
        ),
        &r.director,
    );
    assert_eq!(check["involved"], false, "{check}");
    r.assign(&bt, &head, "head_of_department");
    r.assign(&bt, &assessor, "external_assessor");
    let fa = r.decide(&bt, &asa, &hhl, &assessor, &bt_codes);

    // Completed, and off the at-risk list.
    assert_eq!(
        r.get(&format!("/enrolments/{bt}"), &asa)["status"],
        "completed"
    );
    let p = r.get(&format!("/enrolments/{bt}/progress"), &asa);
    assert_eq!(p["pace"]["flag"], "on_pace", "{p}");
    assert!(!r.cohort("?pace=at_risk").contains(&bt));
    assert!(r.cohort("?status=completed").contains(&bt));

    // The BT forms under HSLF-FS 2021:8, each supervisor's delmål certificate with only
    // their own evidence, and the verksamhetschef on "fullgjord bastjänstgöring".
    let drafts = r.certificates(&fa, &asa);
    assert!(drafts.iter().all(|d| d["statute"] == "HSLF-FS 2021:8"));
    let all = keys(&drafts);
    for key in ["baskompetens", "fullgjord-bt"] {
        assert!(all.contains(&key.to_string()), "{key}: {all:?}");
    }
    assert_eq!(
        lines(by_key(&drafts, "fullgjord-bt")),
        [(
            "huvudansvarig verksamhetschef".to_string(),
            Some("Björn Älvdal".to_string())
        )]
    );
    // "Intyg om fullgjord bastjänstgöring": tjänsteställe, vårdgivare and the extent of
    // each period, the move to 75 % in March inside the first placement.
    let service = &by_key(&drafts, "fullgjord-bt")["tables"][0]["rows"];
    assert_eq!(
        service[0][0], "Vårdcentral Årsta (Allmänmedicin)",
        "{service}"
    );
    assert_eq!(service[0][1], "SLSO");
    assert_eq!(
        service[0][3],
        "100 % (2026-01-01 – 2026-02-28); 75 % (2026-03-01 – 2026-04-30)"
    );
    assert_eq!(service[1][3], "75 %");
    let of_hhl = by_key(&drafts, &format!("delmal-{}", hhl.id));
    let bt1 = row(of_hhl, "BT1");
    assert_eq!(bt1[1], "Hembesök i hemsjukvården", "{bt1:?}");
    assert_eq!(bt1[2], "Mini-CEX", "{bt1:?}");
    let of_marta = by_key(&drafts, &format!("delmal-{}", marta.id));
    assert_eq!(of_marta["title_sv"], "Intyg om delmål i bastjänstgöringen");
    let bt1 = row(of_marta, "BT1");
    assert_eq!(bt1[1], "Traumalarm på akuten", "{bt1:?}");
    assert_eq!(bt1[2], "DOPS", "{bt1:?}");
    assert_eq!(
        lines(of_marta),
        [("handledare".to_string(), Some("Märta Åkesson".to_string()))]
    );
    let text = r.pdf_text(&fa, &format!("delmal-{}", marta.id), &asa);
    for needle in [
        "Intyg om delmål i bastjänstgöringen",
        "Traumalarm på akuten",
        "Märta Åkesson",
        "Åsa Öberg",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(!text.contains("Hembesök"), "{text}");
    let text = r.pdf_text(&fa, &format!("delmal-{}", hhl.id), &asa);
    assert!(text.contains("Hembesök i hemsjukvården"), "{text}");
    assert!(!text.contains("Traumalarm"), "{text}");
    let text = r.pdf_text(&fa, "fullgjord-bt", &asa);
    for needle in ["Björn Älvdal", "Vårdcentral Årsta", "Åsa Öberg"] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }

    // ---- Östen, ST 2015: five years, no BT; the 2015 forms with the 2015 signers. ----
    let st15 = r.st_template("st-2015", "ST allmänmedicin 2015");
    let osten = r.person("osten@sll.se", "trainee", "Östen Åberg");
    let arla = r.person("arla@sll.se", "supervisor", "Ärla Öhman");
    let e15 = id(&r.enrol(json!({
        "trainee_id": osten.id, "template_id": st15, "track": "st_2015",
        "start_date": "2020-12-01", "planned_end": "2025-11-30", "main_supervisor_id": arla.id,
        "placements": [{"placement_type": "allmanmedicin", "start_date": "2020-12-01",
                        "end_date": "2025-11-30", "unit_id": vc, "supervisor_id": arla.id}]})));
    assert_eq!(r.warnings(&e15), Vec::<String>::new());
    r.assign(&e15, &head, "head_of_department");
    r.assign(&e15, &assessor, "external_assessor");
    let fa15 = r.decide(
        &e15,
        &osten,
        &arla,
        &assessor,
        &codes_of("", &[("a", 6), ("b", 5)]),
    );
    let drafts = r.certificates(&fa15, &osten);
    assert!(drafts.iter().all(|d| d["statute"] == "SOSFS 2015:8"));
    let all = keys(&drafts);
    assert!(
        !all.iter()
            .any(|k| k == "baskompetens" || k == "fullgjord-bt"),
        "no BT under SOSFS 2015:8: {all:?}"
    );
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

    // ---- Åke, ST 2021 with integrated BT: the BT year, then the ST linked to it. ----
    let ake = r.person("ake@sll.se", "trainee", "Åke Ström");
    let goran = r.person("goran@sll.se", "supervisor", "Göran Källström");
    let ibt = id(&r.enrol(json!({
        "trainee_id": ake.id, "template_id": r.bt_template, "track": "st_integrated_bt",
        "start_date": "2024-09-01", "planned_end": "2025-08-31", "main_supervisor_id": goran.id,
        "placements": [
            {"placement_type": "allmanmedicin", "start_date": "2024-09-01", "end_date": "2024-12-31", "unit_id": vc, "supervisor_id": goran.id},
            {"placement_type": "akut", "start_date": "2025-01-01", "end_date": "2025-04-30", "unit_id": vc, "supervisor_id": goran.id},
            {"placement_type": "geriatrik", "start_date": "2025-05-01", "end_date": "2025-06-30", "unit_id": vc, "supervisor_id": goran.id},
            {"placement_type": "psykiatri", "start_date": "2025-07-01", "end_date": "2025-08-31", "unit_id": vc, "supervisor_id": goran.id}]})));
    let st21 = r.st_template("st-2021", "ST allmänmedicin 2021");
    let st = id(&r.enrol(json!({
        "trainee_id": ake.id, "template_id": st21, "track": "st_integrated_bt",
        "start_date": "2025-09-01", "planned_end": "2030-03-31", "main_supervisor_id": goran.id,
        "bt_enrolment_id": ibt,
        "placements": [{"placement_type": "allmanmedicin", "start_date": "2025-09-01",
                        "end_date": "2030-03-31", "unit_id": vc, "supervisor_id": goran.id}]})));
    // 55 months of ST and the 12 of the BT meet the 66 months; integrated BT's
    // certificate was due by 2026-08-31 and is not applied for.
    assert_eq!(r.warnings(&st), ["bt_application_deadline"]);
    assert!(r
        .warnings(&ibt)
        .contains(&"bt_application_deadline".to_string()));
    let path = format!("/enrolments/{ibt}");
    let etag = app
        .get(&path, Some(&r.director.access))
        .expect(200)
        .header("etag")
        .expect("etag")
        .to_string();
    app.patch(
        &path,
        Some(&r.director.access),
        json!({"applied_on": "2026-08-20"}),
        &[("If-Match", &etag)],
    )
    .expect(200);
    assert_eq!(r.warnings(&st), Vec::<String>::new());

    // The integrated BT decided: the BT forms, and the BT is completed.
    r.assign(&ibt, &head, "head_of_department");
    r.assign(&ibt, &assessor, "external_assessor");
    let fa_bt = r.decide(&ibt, &ake, &goran, &assessor, &bt_codes);
    let drafts = r.certificates(&fa_bt, &ake);
    assert!(drafts.iter().all(|d| d["statute"] == "HSLF-FS 2021:8"));
    let all = keys(&drafts);
    assert!(all.contains(&"baskompetens".to_string()), "{all:?}");
    assert!(all.contains(&"fullgjord-bt".to_string()), "{all:?}");
    let text = r.pdf_text(&fa_bt, "baskompetens", &ake);
    for needle in [
        "Intyg om uppnådd baskompetens",
        "Åke Ström",
        "Karin Ödmark",
        "Göran Källström",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert_eq!(r.get(&path, &r.director)["status"], "completed");

    // The ST decided: the 2021 ST forms, no BT form.
    r.assign(&st, &head, "head_of_department");
    r.assign(&st, &assessor, "external_assessor");
    let fa_st = r.decide(
        &st,
        &ake,
        &goran,
        &assessor,
        &codes_of("ST", &[("a", 7), ("b", 4)]),
    );
    let drafts = r.certificates(&fa_st, &ake);
    let all = keys(&drafts);
    assert!(
        !all.iter()
            .any(|k| k == "baskompetens" || k == "fullgjord-bt"),
        "{all:?}"
    );
    let spec = by_key(&drafts, "specialistkompetens");
    assert_eq!(spec["appendix"], "7");
    assert_eq!(spec["statute"], "HSLF-FS 2021:8");
    let text = r.pdf_text(&fa_st, "specialistkompetens", &ake);
    for needle in ["HSLF-FS 2021:8", "Åke Ström", "Göran Källström"] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}
