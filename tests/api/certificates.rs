//! The certificates (intyg) after a positive final assessment, per regulation: what each
//! supervisor's delmål certificate may list, the service certificate's periods, units,
//! care providers, extent and verksamhetschef, a committee's names on the signature
//! lines, and the 2015 and 2021 ST form sets with their signers. PDF text is read with
//! pdftotext, å ä ö included.

use serde_json::{json, Value};

use crate::support::{pdf, TestApp, TestUser};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

pub(crate) struct Region {
    pub(crate) app: TestApp,
    pub(crate) admin: TestUser,
    pub(crate) director: TestUser,
    pub(crate) slso: String,
    sos: String,
}

pub(crate) fn region() -> Region {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let sos = app.create_org(&admin, "care_provider", "Södersjukhuset AB", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    Region {
        app,
        admin,
        director,
        slso,
        sos,
    }
}

impl Region {
    pub(crate) fn person(&self, email: &str, role: &str, name: &str) -> TestUser {
        let u = self.app.join(&self.director, email, role, &self.slso);
        self.app
            .patch("/me", Some(&u.access), json!({"display_name": name}), &[])
            .expect(200);
        u
    }

    pub(crate) fn unit(&self, name: &str, provider: &str) -> String {
        let r = self
            .app
            .post(
                "/organisations",
                Some(&self.admin.access),
                json!({"kind": "unit", "name": name, "parent_id": provider}),
            )
            .expect(201);
        id(&r.body)
    }

    /// A one-placement ST template of `regulation` (a catalogue code).
    pub(crate) fn st_template(&self, regulation: &str, name: &str) -> String {
        let reg = self.app.regulation_id(&self.director, regulation);
        let r = self
            .app
            .post(
                "/programme-templates",
                Some(&self.director.access),
                json!({"organisation_id": self.slso, "regulation_id": reg, "name": name,
                       "duration_months": 60, "supervision_every_days": 14,
                       "placement_types": [{"key": "allmanmedicin", "name": "Allmänmedicin", "months": 60,
                                            "supervision_every_days": 14, "checklist": []}],
                       "programme_items": []}),
            )
            .expect(201);
        id(&r.body)
    }

    pub(crate) fn assign(&self, enrolment: &str, user: &TestUser, role: &str) {
        self.app
            .post(
                &format!("/enrolments/{enrolment}/assignments"),
                Some(&self.director.access),
                json!({"user_id": user.id, "role": role}),
            )
            .expect(201);
    }

    /// The final check-in confirmed, then `body` created by `by` and signed by each of
    /// `signers`: a decided final assessment; returns its id.
    pub(crate) fn decide(
        &self,
        enrolment: &str,
        trainee: &TestUser,
        main: &TestUser,
        by: &TestUser,
        body: Value,
        signers: &[&TestUser],
    ) -> String {
        let app = &self.app;
        let check_in = app
            .post(&format!("/enrolments/{enrolment}/final-check-ins"), Some(&trainee.access),
                  json!({"held_on": "2026-11-20", "notes": "Alla delmål genomgångna inför slutbedömningen."}))
            .expect(201);
        app.post(
            &format!("/final-check-ins/{}/confirm", id(&check_in.body)),
            Some(&main.access),
            json!({}),
        )
        .expect(200);
        let fa = app
            .post(
                &format!("/enrolments/{enrolment}/final-assessments"),
                Some(&by.access),
                body,
            )
            .expect(201);
        let fa = id(&fa.body);
        let mut last = Value::Null;
        for s in signers {
            last = app
                .post(
                    &format!("/final-assessments/{fa}/sign"),
                    Some(&s.access),
                    json!({}),
                )
                .expect(200)
                .body;
        }
        assert_eq!(last["status"], "decided", "{last}");
        fa
    }

    pub(crate) fn certificates(&self, fa: &str, user: &TestUser) -> Vec<Value> {
        self.app
            .get(
                &format!("/final-assessments/{fa}/certificates"),
                Some(&user.access),
            )
            .expect(200)
            .body["items"]
            .as_array()
            .expect("drafts")
            .clone()
    }

    pub(crate) fn pdf_text(&self, fa: &str, key: &str, user: &TestUser) -> String {
        let r = self
            .app
            .send(
                "GET",
                &format!("/final-assessments/{fa}/certificates/{key}"),
                Some(&user.access),
                None,
                &[("Accept", "application/pdf")],
            )
            .expect(200);
        pdf::text(&r.bytes)
    }
}

pub(crate) fn judged(codes: &[String]) -> Vec<Value> {
    codes
        .iter()
        .map(|c| json!({"code": c, "judgement": "achieved"}))
        .collect()
}

pub(crate) fn by_key<'a>(drafts: &'a [Value], key: &str) -> &'a Value {
    drafts
        .iter()
        .find(|d| d["key"] == key)
        .unwrap_or_else(|| panic!("no certificate {key}: {drafts:?}"))
}

/// The table row whose first cell starts with `code ` (a delmål), as text cells.
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

/// (role, name) of each signature line.
pub(crate) fn lines(draft: &Value) -> Vec<(String, Option<String>)> {
    draft["signatures"]
        .as_array()
        .expect("signatures")
        .iter()
        .map(|s| {
            (
                s["role"].as_str().expect("role").to_string(),
                s["name"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// A BT year in two placements at two care providers, at 75 %, with a verksamhetschef.
struct Bt {
    r: Region,
    trainee: TestUser,
    main: TestUser,
    akut: TestUser,
    assessor: TestUser,
    head: TestUser,
    enrolment: String,
    placements: Vec<String>,
}

fn bt() -> Bt {
    let r = region();
    let app = &r.app;
    let template = app.stockholm_bt_template(&r.director, &r.slso);
    let trainee = r.person("bt@sll.se", "trainee", "Åsa Öberg");
    let main = r.person("hhl@sll.se", "supervisor", "Örjan Ärlebäck");
    let akut = r.person("akut@sll.se", "supervisor", "Märta Åkesson");
    let assessor = r.person("extern@uu.se", "external_assessor", "Karin Ödmark");
    let head = r.person("vc@sll.se", "supervisor", "Björn Älvdal");
    let vc = r.unit("Vårdcentral Årsta", &r.slso);
    let akm = r.unit("Akutmottagningen Södersjukhuset", &r.sos);
    let e = app
        .post("/enrolments", Some(&r.director.access),
              json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                     "start_date": "2025-12-01", "planned_end": "2026-11-30", "extent_percent": 75,
                     "main_supervisor_id": main.id,
                     "placements": [
                        {"placement_type": "allmanmedicin", "start_date": "2025-12-01", "end_date": "2026-03-31",
                         "unit_id": vc, "supervisor_id": main.id},
                        {"placement_type": "akut", "start_date": "2026-04-01", "end_date": "2026-07-31",
                         "unit_id": akm, "supervisor_id": akut.id}]}))
        .expect(201)
        .body;
    let enrolment = id(&e);
    let placements: Vec<String> = e["placements"]
        .as_array()
        .expect("placements")
        .iter()
        .map(id)
        .collect();
    Bt {
        r,
        trainee,
        main,
        akut,
        assessor,
        head,
        enrolment,
        placements,
    }
}

impl Bt {
    fn activity(&self, title: &str, on: &str, placement: usize, delmal: &[&str]) {
        self.r
            .app
            .post(
                &format!("/enrolments/{}/activities", self.enrolment),
                Some(&self.trainee.access),
                json!({"kind": "clinical_work", "title": title, "start_date": on,
                       "placement_id": self.placements[placement], "delmal": delmal}),
            )
            .expect(201);
    }

    fn assessment(
        &self,
        by: &TestUser,
        instrument: &str,
        on: &str,
        placement: usize,
        delmal: &[&str],
    ) {
        let app = &self.r.app;
        let a = app
            .post(
                &format!("/enrolments/{}/assessments", self.enrolment),
                Some(&self.trainee.access),
                json!({"instrument": instrument, "performed_on": on, "assessor_id": by.id,
                       "placement_id": self.placements[placement], "delmal": delmal}),
            )
            .expect(201);
        app.post(
            &format!("/assessments/{}/sign", id(&a.body)),
            Some(&by.access),
            json!({"entrustment": 4, "feedback_strengths": "Trygg.", "feedback_next_steps": "Öva mer."}),
        )
        .expect(200);
    }

    fn decided(&self) -> String {
        self.r
            .assign(&self.enrolment, &self.assessor, "external_assessor");
        let codes: Vec<String> = (1..=18).map(|n| format!("BT{n}")).collect();
        self.r.decide(
            &self.enrolment,
            &self.trainee,
            &self.main,
            &self.assessor,
            json!({"mode": "external_assessor", "judgements": judged(&codes), "decision": "achieved"}),
            &[&self.assessor, &self.main],
        )
    }
}

#[test]
fn each_supervisors_delmal_certificate_lists_only_what_they_saw_in_their_own_period() {
    let t = bt();
    let app = &t.r.app;
    // Placement 1 (main supervisor), placement 2 (akut); the same delmål in both.
    t.activity(
        "Hembesök i hemsjukvården",
        "2026-01-10",
        0,
        &["BT1", "BT10"],
    );
    t.activity("Traumalarm på akuten", "2026-05-10", 1, &["BT1"]);
    t.assessment(&t.main, "mini_cex", "2026-01-15", 0, &["BT1"]);
    t.assessment(&t.akut, "dops", "2026-05-15", 1, &["BT1"]);
    // A supervision session in the akut placement, confirmed by its supervisor.
    let s = app
        .post(&format!("/enrolments/{}/supervision-sessions", t.enrolment), Some(&t.trainee.access),
              json!({"held_on": "2026-05-20", "placement_id": t.placements[1], "topics": ["Samarbete i teamet"],
                     "participant_ids": [t.akut.id], "notes": "Ledde teamet vid larm.", "delmal": ["BT10"]}))
        .expect(201);
    app.post(
        &format!("/supervision-sessions/{}/confirm", id(&s.body)),
        Some(&t.akut.access),
        json!({}),
    )
    .expect(200);
    let fa = t.decided();
    let drafts = t.r.certificates(&fa, &t.trainee);

    let akut = by_key(&drafts, &format!("delmal-{}", t.akut.id));
    assert_eq!(akut["appendix"], "2");
    assert_eq!(akut["title_sv"], "Intyg om delmål i bastjänstgöringen");
    let bt1 = row(akut, "BT1");
    assert_eq!(
        bt1[1], "Traumalarm på akuten",
        "only the akut placement's activity"
    );
    assert_eq!(bt1[2], "DOPS", "only the assessment this supervisor signed");
    let bt10 = row(akut, "BT10");
    assert_eq!(
        bt10[1], "",
        "the home visit was not under this supervisor: {bt10:?}"
    );
    assert_eq!(bt10[2], "handledarsamtal");
    assert!(
        akut["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .any(|f| f["label"] == "Handledd under" && f["value"] == "2026-04-01 – 2026-07-31"),
        "{akut}"
    );
    assert_eq!(
        lines(akut),
        [("handledare".to_string(), Some("Märta Åkesson".to_string()))]
    );

    let main = by_key(&drafts, &format!("delmal-{}", t.main.id));
    let bt1 = row(main, "BT1");
    assert_eq!(bt1[1], "Hembesök i hemsjukvården");
    assert_eq!(bt1[2], "Mini-CEX");
    // The main supervisor confirmed nothing about BT10 and assessed nothing of it.
    assert!(!main.to_string().contains("BT10 "), "{main}");

    let text =
        t.r.pdf_text(&fa, &format!("delmal-{}", t.akut.id), &t.trainee);
    for needle in [
        "Intyg om delmål i bastjänstgöringen",
        "Traumalarm på akuten",
        "Märta Åkesson",
        "Åsa Öberg",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(!text.contains("Hembesök"), "{text}");
}

#[test]
fn the_bt_service_certificate_names_units_care_providers_extent_and_the_head_of_department() {
    let t = bt();
    let app = &t.r.app;
    // A verksamhetschef is assigned like the others, and reads the plan but changes nothing.
    t.r.assign(&t.enrolment, &t.head, "head_of_department");
    app.get(
        &format!("/enrolments/{}", t.enrolment),
        Some(&t.head.access),
    )
    .expect(200);
    app.post(
        &format!("/enrolments/{}/leave-periods", t.enrolment),
        Some(&t.head.access),
        json!({"kind": "other", "start_date": "2026-06-01", "end_date": "2026-06-05", "percent": 100}),
    )
    .expect_problem(403, "forbidden");
    // The role needs a person with a supervisor account, not a trainee.
    app.post(
        &format!("/enrolments/{}/assignments", t.enrolment),
        Some(&t.r.director.access),
        json!({"user_id": t.trainee.id, "role": "head_of_department"}),
    )
    .expect_problem(422, "validation");
    t.assessment(&t.main, "mini_cex", "2026-01-15", 0, &["BT1"]);
    // The verksamhetschef states specialty and tjänsteställe once; the form prints them.
    let profile = format!("/users/{}/signer-profile", t.head.id);
    let tag = app
        .get(&profile, Some(&t.head.access))
        .expect(200)
        .header("etag")
        .expect("etag")
        .to_string();
    app.send(
        "PUT",
        &profile,
        Some(&t.head.access),
        Some(&json!({"specialty": "Allmänmedicin", "workplace": "Vårdcentral Årsta, SLSO"})),
        &[("If-Match", &tag)],
    )
    .expect(200);
    let fa = t.decided();
    let drafts = t.r.certificates(&fa, &t.trainee);
    let bt = by_key(&drafts, "fullgjord-bt");
    assert_eq!(bt["signatures"][0]["specialty"], "Allmänmedicin", "{bt}");
    assert_eq!(bt["signatures"][0]["workplace"], "Vårdcentral Årsta, SLSO");
    // A signer who stated nothing gets nothing printed beside the name.
    let competence = by_key(&drafts, "baskompetens");
    assert!(
        competence["signatures"]
            .as_array()
            .expect("signatures")
            .iter()
            .all(|l| l["specialty"].is_null() && l["workplace"].is_null()),
        "{competence}"
    );
    assert_eq!(bt["appendix"], "3");
    assert_eq!(bt["statute"], "HSLF-FS 2021:8");
    assert!(bt["personnummer"].is_null(), "{bt}");
    assert_eq!(
        bt["tables"][0]["headers"],
        json!([
            "Tjänsteställe",
            "Vårdgivare",
            "Period",
            "Omfattning",
            "Räknas som"
        ])
    );
    assert_eq!(
        bt["tables"][0]["rows"],
        json!([
            [
                "Vårdcentral Årsta (Allmänmedicin)",
                "SLSO",
                "2025-12-01 – 2026-03-31",
                "75 %",
                "primärvård"
            ],
            [
                "Akutmottagningen Södersjukhuset (Akut sjukvård)",
                "Södersjukhuset AB",
                "2026-04-01 – 2026-07-31",
                "75 %",
                "akut sjukvård"
            ]
        ])
    );
    assert_eq!(
        lines(bt),
        [(
            "huvudansvarig verksamhetschef".to_string(),
            Some("Björn Älvdal".to_string())
        )]
    );
    let text = t.r.pdf_text(&fa, "fullgjord-bt", &t.trainee);
    for needle in [
        "Intyg om fullgjord bastjänstgöring",
        "Vårdcentral Årsta",
        "Södersjukhuset AB",
        "75 %",
        "Björn Älvdal",
        "Specialitet: Allmänmedicin",
        "Tjänsteställe: Vårdcentral Årsta, SLSO",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn a_committee_fills_the_signature_lines_with_its_chair_and_lists_its_members() {
    let t = bt();
    let app = &t.r.app;
    let m1 = t.r.person("kkk1@sll.se", "supervisor", "Karl Ärnlöv");
    let m2 = t.r.person("kkk2@sll.se", "supervisor", "Sofia Ådén");
    let create = format!("/enrolments/{}/final-assessments", t.enrolment);
    // The chair is one of the members, and only a committee has one.
    let bad = app
        .post(&create, Some(&t.r.director.access),
              json!({"mode": "committee", "committee_member_ids": [m1.id, m2.id], "committee_chair_id": t.main.id}))
        .expect_problem(422, "validation");
    assert!(bad.text.contains("committee_chair_id"), "{}", bad.text);
    t.r.assign(&t.enrolment, &t.assessor, "external_assessor");
    app.post(
        &create,
        Some(&t.assessor.access),
        json!({"mode": "external_assessor", "committee_chair_id": m1.id}),
    )
    .expect_problem(422, "validation");
    let codes: Vec<String> = (1..=18).map(|n| format!("BT{n}")).collect();
    let fa = t.r.decide(
        &t.enrolment,
        &t.trainee,
        &t.main,
        &t.r.director,
        json!({"mode": "committee", "committee_member_ids": [m1.id, m2.id], "committee_chair_id": m2.id,
               "judgements": judged(&codes), "decision": "achieved"}),
        &[&m1, &m2],
    );
    let decided = app
        .get(&format!("/final-assessments/{fa}"), Some(&t.trainee.access))
        .expect(200)
        .body;
    let roles: Vec<(&str, &str)> = decided["signers"]
        .as_array()
        .expect("signers")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("n"),
                s["role"].as_str().expect("r"),
            )
        })
        .collect();
    assert!(
        roles.contains(&("Sofia Ådén", "committee_chair")),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("Karl Ärnlöv", "committee_member")),
        "{roles:?}"
    );

    let drafts = t.r.certificates(&fa, &t.trainee);
    let bas = by_key(&drafts, "baskompetens");
    assert_eq!(
        lines(bas),
        [
            (
                "huvudansvarig handledare".to_string(),
                Some("Örjan Ärlebäck".to_string())
            ),
            (
                "extern bedömare (kompetenskommitténs ordförande)".to_string(),
                Some("Sofia Ådén".to_string())
            ),
        ]
    );
    // No form of the set leaves a line without a name the portfolio has.
    t.r.assign(&t.enrolment, &t.head, "head_of_department");
    for d in t.r.certificates(&fa, &t.trainee) {
        for (role, name) in lines(&d) {
            assert!(name.is_some(), "{} {role} blank", d["key"]);
        }
    }
    let text = t.r.pdf_text(&fa, "baskompetens", &t.trainee);
    for needle in [
        "Kompetenskommitté",
        "Sofia Ådén (ordförande); ledamöter: Karl Ärnlöv",
        "Örjan Ärlebäck",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

/// An ST trainee of `regulation` on `track`, with a course and an observership, decided.
struct St {
    r: Region,
    trainee: TestUser,
    fa: String,
    course: String,
    placement: String,
}

fn st(regulation: &str, track: &str, codes: &[&str]) -> St {
    let r = region();
    let app = &r.app;
    let template = r.st_template(regulation, "ST allmänmedicin");
    let trainee = r.person("st@sll.se", "trainee", "Östen Åberg");
    let main = r.person("hhl@sll.se", "supervisor", "Ärla Öhman");
    let assessor = r.person("spec@uu.se", "external_assessor", "Åke Ängård");
    let head = r.person("vc@sll.se", "supervisor", "Björn Älvdal");
    let unit = r.unit("Vårdcentral Årsta", &r.slso);
    let e = app
        .post("/enrolments", Some(&r.director.access),
              json!({"trainee_id": trainee.id, "template_id": template, "track": track,
                     "start_date": "2021-06-01", "planned_end": "2026-11-30", "main_supervisor_id": main.id,
                     "placements": [{"placement_type": "allmanmedicin", "start_date": "2021-06-01",
                                     "end_date": "2026-11-30", "unit_id": unit, "supervisor_id": main.id}]}))
        .expect(201)
        .body;
    // The track reads back as it was given (and as it is stored).
    assert_eq!(e["track"], track, "{e}");
    let enrolment = id(&e);
    let placement = id(&e["placements"][0]);
    let course = app
        .post(&format!("/enrolments/{enrolment}/activities"), Some(&trainee.access),
              json!({"kind": "course", "title": "Kurs i läkemedelsförskrivning", "start_date": "2024-03-04",
                     "end_date": "2024-03-08", "delmal": [codes[0]]}))
        .expect(201);
    app.post(&format!("/enrolments/{enrolment}/activities"), Some(&trainee.access),
             json!({"kind": "observership", "title": "Auskultation på barnavårdscentral", "start_date": "2023-09-11",
                    "placement_id": placement, "delmal": [codes[1]]}))
        .expect(201);
    r.assign(&enrolment, &head, "head_of_department");
    r.assign(&enrolment, &assessor, "external_assessor");
    let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
    let fa = r.decide(
        &enrolment,
        &trainee,
        &main,
        &assessor,
        json!({"mode": "external_assessor", "judgements": judged(&codes), "decision": "achieved"}),
        &[&assessor, &main],
    );
    St {
        r,
        trainee,
        fa,
        course: id(&course.body),
        placement,
    }
}

fn keys(drafts: &[Value]) -> Vec<String> {
    drafts
        .iter()
        .map(|d| d["key"].as_str().expect("key").to_string())
        .collect()
}

#[test]
fn an_st_2015_trainee_gets_the_2015_forms_with_the_2015_signers() {
    let codes = [
        "a1", "a2", "a3", "a4", "a5", "a6", "b1", "b2", "b3", "b4", "b5",
    ];
    let t = st("st-2015", "st_2015", &codes);
    let drafts = t.r.certificates(&t.fa, &t.trainee);
    let course = format!("utbildningsaktivitet-{}", t.course);
    let placement = format!("utbildningsaktivitet-{}", t.placement);
    let mut all = keys(&drafts);
    all.sort();
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.contains(&"specialistkompetens".to_string()), "{all:?}");
    assert!(all.contains(&course) && all.contains(&placement), "{all:?}");
    for d in &drafts {
        assert_eq!(d["statute"], "SOSFS 2015:8", "{d}");
    }
    let spec = by_key(&drafts, "specialistkompetens");
    assert_eq!(spec["appendix"], "2");
    assert_eq!(spec["title_sv"], "Intyg om uppnådd specialistkompetens");
    assert_eq!(
        lines(spec),
        [
            (
                "verksamhetschef or appointed specialist".to_string(),
                Some("Björn Älvdal".to_string())
            ),
            (
                "huvudansvarig handledare".to_string(),
                Some("Ärla Öhman".to_string())
            ),
        ]
    );
    let c = by_key(&drafts, &course);
    assert_eq!(c["appendix"], "3-7");
    assert_eq!(
        c["title_sv"],
        "Intyg om genomförd utbildningsaktivitet och uppfyllt kompetenskrav"
    );
    // A kursledare is not recorded in the portfolio: the line is left to sign by hand.
    assert_eq!(lines(c), [("kursledare".to_string(), None)]);
    assert_eq!(c["tables"][0]["rows"][0][0], "a1");
    let p = by_key(&drafts, &placement);
    assert_eq!(
        lines(p),
        [("handledare".to_string(), Some("Ärla Öhman".to_string()))]
    );
    assert_eq!(p["tables"][0]["rows"][0][0], "a2", "the observership in it");
    let text = t.r.pdf_text(&t.fa, "specialistkompetens", &t.trainee);
    for needle in [
        "Intyg om uppnådd specialistkompetens",
        "SOSFS 2015:8",
        "Östen Åberg",
        "Björn Älvdal",
        "Ärla Öhman",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn an_st_2021_trainee_gets_the_2021_st_forms_and_no_bt_form() {
    let codes = [
        "STa1", "STa2", "STa3", "STa4", "STa5", "STa6", "STa7", "STb1", "STb2", "STb3", "STb4",
    ];
    let t = st("st-2021", "st_2021", &codes);
    let drafts = t.r.certificates(&t.fa, &t.trainee);
    let all = keys(&drafts);
    assert!(
        !all.iter()
            .any(|k| k == "baskompetens" || k == "fullgjord-bt" || k.starts_with("delmal-")),
        "{all:?}"
    );
    let spec = by_key(&drafts, "specialistkompetens");
    assert_eq!(spec["appendix"], "7");
    assert_eq!(spec["statute"], "HSLF-FS 2021:8");
    assert_eq!(
        lines(spec),
        [
            (
                "huvudansvarig handledare".to_string(),
                Some("Ärla Öhman".to_string())
            ),
            (
                "one more specialist".to_string(),
                Some("Åke Ängård".to_string())
            ),
        ]
    );
    let service = by_key(&drafts, "fullgjord-st");
    assert_eq!(service["appendix"], "6");
    assert_eq!(
        service["title_sv"],
        "Intyg om fullgjord specialiseringstjänstgöring"
    );
    assert_eq!(
        lines(service),
        [(
            "huvudansvarig verksamhetschef".to_string(),
            Some("Björn Älvdal".to_string())
        )]
    );
    let course = by_key(&drafts, &format!("utbildningsaktivitet-{}", t.course));
    assert_eq!(course["appendix"], "8-11");
    assert_eq!(
        lines(course)[0].0,
        "kursledare eller handledare",
        "{course}"
    );
    let text = t.r.pdf_text(&t.fa, "fullgjord-st", &t.trainee);
    for needle in [
        "Intyg om fullgjord specialiseringstjänstgöring",
        "Vårdcentral Årsta",
        "Björn Älvdal",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}
