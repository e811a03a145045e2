//! A whole BT year: four placements, activities for all 18 delmål, assessments, supervision,
//! handovers and summaries; progress and pace; the refusal of an ineligible assessor; the
//! final check-in and the two-signature final assessment; certificates; and the signed
//! dossier as JSON and PDF, verified and tampered with.

use serde_json::{json, Value};

use crate::support::{pdf, TestApp, TestUser};

/// Region, care provider, director and the Stockholm BT template.
struct Programme {
    app: TestApp,
    admin: TestUser,
    director: TestUser,
    slso: String,
    template: Value,
}

/// SHA-256 (hex) of what a final assessment's signers sign, computed from the API's view:
/// the decision, the judgements, and who decides in which role.
fn final_content_hash(f: &Value) -> String {
    use sha2::Digest;
    let field = |k: &str| {
        f.get(k)
            .unwrap_or_else(|| panic!("final assessment without {k}: {f}"))
            .clone()
    };
    let signers: Vec<Value> = f["signers"]
        .as_array()
        .expect("signers")
        .iter()
        .map(|s| json!({"user_id": s["user_id"], "role": s["role"]}))
        .collect();
    assert!(!signers.is_empty(), "a decision without signers: {f}");
    let content = json!({"id": field("id"), "enrolment_id": field("enrolment_id"), "mode": field("mode"),
        "decision": field("decision"), "judgements": field("judgements"), "missing": field("missing"),
        "rationale": field("rationale"), "signers": signers});
    hex::encode(sha2::Sha256::digest(content.to_string()))
}

/// Who has signed a two-signer final assessment (the list of signers must be whole).
fn signed_by(f: &Value) -> Vec<String> {
    let signers = f["signers"].as_array().expect("signers");
    assert_eq!(signers.len(), 2, "{f}");
    signers
        .iter()
        .filter(|s| !s["signed_at"].is_null())
        .map(|s| s["user_id"].as_str().expect("user_id").to_string())
        .collect()
}

fn programme() -> Programme {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    let template_id = app.stockholm_bt_template(&director, &slso);
    let template = app
        .get(
            &format!("/programme-templates/{template_id}"),
            Some(&director.access),
        )
        .expect(200)
        .body;
    Programme {
        app,
        admin,
        director,
        slso,
        template,
    }
}

impl Programme {
    fn person(&self, email: &str, role: &str, name: &str) -> TestUser {
        let u = self.app.join(&self.director, email, role, &self.slso);
        self.app
            .patch("/me", Some(&u.access), json!({"display_name": name}), &[])
            .expect(200);
        u
    }

    /// The id of the checklist item titled `title`.
    fn item(&self, title: &str) -> String {
        let t = &self.template;
        let mut all: Vec<&Value> = t["programme_items"]
            .as_array()
            .expect("items")
            .iter()
            .collect();
        for p in t["placement_types"].as_array().expect("types") {
            all.extend(p["checklist"].as_array().expect("checklist"));
        }
        all.into_iter()
            .find(|i| i["title"] == title)
            .and_then(|i| i["id"].as_str())
            .unwrap_or_else(|| panic!("no item {title}"))
            .to_string()
    }

    fn enrol(
        &self,
        trainee: &TestUser,
        main: &TestUser,
        start: &str,
        end: &str,
        placements: Value,
    ) -> Value {
        self.app
            .post(
                "/enrolments",
                Some(&self.director.access),
                json!({"trainee_id": trainee.id, "template_id": self.template["id"], "track": "bt_standalone",
                       "start_date": start, "planned_end": end, "main_supervisor_id": main.id,
                       "placements": placements}),
            )
            .expect(201)
            .body
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// Creates an assessment as the trainee (`fields`: instrument, day, placement, delmål)
/// and has the assessor sign it.
fn signed_assessment(
    app: &TestApp,
    enrolment: &str,
    trainee: &TestUser,
    assessor: &TestUser,
    mut fields: Value,
) {
    fields["assessor_id"] = json!(assessor.id);
    let a = app
        .post(
            &format!("/enrolments/{enrolment}/assessments"),
            Some(&trainee.access),
            fields,
        )
        .expect(201);
    app.post(
        &format!("/assessments/{}/sign", id(&a.body)),
        Some(&assessor.access),
        json!({"entrustment": 4, "feedback_strengths": "Trygg och strukturerad.",
               "feedback_next_steps": "Fortsätt öva prioritering på akuten."}),
    )
    .expect(200);
}

fn day(start: &str, plus: i64) -> String {
    let d = chrono::NaiveDate::parse_from_str(start, "%Y-%m-%d").expect("date");
    (d + chrono::Duration::days(plus)).to_string()
}

#[test]
fn a_whole_bt_year_is_assessed_decided_and_compiled_into_a_signed_dossier() {
    let p = programme();
    let app = &p.app;
    let trainee = p.person("bt@sll.se", "trainee", "Åsa Öberg");
    let main = p.person("hhl@sll.se", "supervisor", "Örjan Ärlebäck");
    let akut = p.person("akut@sll.se", "supervisor", "Märta Åkesson");
    let geri = p.person("geriatrik@outlook.com", "supervisor", "Göran Ek");
    let psyk = p.person("psyk@sll.se", "supervisor", "Lena Öst");
    let extern_ = p.person("extern@uu.se", "external_assessor", "Karin Ödmark");
    let e = p.enrol(
        &trainee,
        &main,
        "2025-11-01",
        "2026-10-31",
        json!([
            {"placement_type": "allmanmedicin", "start_date": "2025-11-01", "end_date": "2026-02-28", "supervisor_id": main.id},
            {"placement_type": "akut", "start_date": "2026-03-01", "end_date": "2026-06-30", "supervisor_id": akut.id},
            {"placement_type": "geriatrik", "start_date": "2026-07-01", "end_date": "2026-08-31", "supervisor_id": geri.id},
            {"placement_type": "psykiatri", "start_date": "2026-09-01", "end_date": "2026-10-31", "supervisor_id": psyk.id}]),
    );
    let enrolment = id(&e);
    let placement: Vec<String> = e["placements"]
        .as_array()
        .expect("placements")
        .iter()
        .map(id)
        .collect();
    let supervisors = [&main, &akut, &geri, &psyk];
    let starts = ["2025-11-01", "2026-03-01", "2026-07-01", "2026-09-01"];
    let t = Some(trainee.access.as_str());
    let activities = format!("/enrolments/{enrolment}/activities");

    // Activities: one per delmål, spread over the placements, and the checklist items.
    let codes: Vec<String> = (1..=18).map(|n| format!("BT{n}")).collect();
    for (n, code) in codes.iter().enumerate() {
        let k = n % 4;
        app.post(&activities, t, json!({"kind": "clinical_work", "title": format!("Patientarbete för {code}: åtgärder på vårdavdelningen"),
                 "start_date": day(starts[k], 10 + n as i64), "placement_id": placement[k], "delmal": [code]}))
            .expect(201);
    }
    app.post(&activities, t, json!({"kind": "clinical_work", "title": "Hembesök med distriktssköterska", "start_date": "2025-11-20",
             "placement_id": placement[0], "checklist_item_id": p.item("Hembesök med distriktssköterska"), "delmal": ["BT10"]}))
        .expect(201);
    app.post(&activities, t, json!({"kind": "self_study", "title": "Fördjupning: sepsis", "start_date": "2026-04-10",
             "placement_id": placement[1], "checklist_item_id": p.item("Sepsis"), "delmal": ["BT1", "BT15"]}))
        .expect(201);
    let teaching = p.item("Regional utbildningsdag (första tisdagen)");
    for m in 0..10 {
        app.post(&activities, t, json!({"kind": "regional_teaching", "title": format!("Regional utbildningsdag {}", m + 1),
                 "start_date": day("2025-12-02", 28 * m), "checklist_item_id": teaching, "delmal": ["BT3", "BT4"]}))
            .expect(201);
    }
    app.post(
        &activities,
        t,
        json!({"kind": "course", "title": "Försäkringsmedicinsk dag", "start_date": "2026-05-05",
             "checklist_item_id": p.item("Försäkringsmedicinsk dag"), "delmal": ["BT16"]}),
    )
    .expect(201);

    // Assessments the checklists ask for, each signed by the placement's supervisor.
    for (k, instrument, count, on, delmal) in [
        (0, "mini_cex", 2, "2025-12-10", vec!["BT1", "BT9"]),
        (1, "dops", 2, "2026-04-15", vec!["BT1"]),
        (2, "cbd", 1, "2026-07-20", vec!["BT17"]),
        (3, "sit_in", 1, "2026-09-20", vec!["BT2"]),
    ] {
        for c in 0..count {
            signed_assessment(
                app,
                &enrolment,
                &trainee,
                supervisors[k],
                json!({"instrument": instrument, "performed_on": day(on, c * 7),
                       "placement_id": placement[k], "delmal": delmal}),
            );
        }
    }

    // Supervision at each placement's cadence: weekly in allmänmedicin, else fortnightly.
    let sessions = format!("/enrolments/{enrolment}/supervision-sessions");
    for (k, every, n) in [(0, 7, 17), (1, 14, 9), (2, 14, 4), (3, 14, 4)] {
        for s in 0..n {
            let topics = if k == 0 && s == 0 {
                json!(["Bemötande i svåra samtal"])
            } else {
                json!(["Veckans fall"])
            };
            let with: Vec<&str> = if supervisors[k].id == main.id {
                vec![]
            } else {
                vec![&supervisors[k].id]
            };
            let body = json!({"held_on": day(starts[k], 3 + every * s), "placement_id": placement[k], "topics": topics,
                              "participant_ids": if with.is_empty() { vec![main.id.as_str()] } else { with },
                              "notes": "Genomgång av fall och mål.", "delmal": [codes[(s as usize) % 18]]});
            app.post(&sessions, t, body).expect(201);
        }
    }

    // Handover talks at each change, confirmed by all four.
    for k in 0..3 {
        let h = app
            .post(&format!("/enrolments/{enrolment}/handover-talks"), t,
                  json!({"held_on": day(starts[k + 1], -3), "placement_id": placement[k], "next_placement_id": placement[k + 1],
                         "outgoing_supervisor_id": supervisors[k].id, "incoming_supervisor_id": supervisors[k + 1].id,
                         "handover": {"delmal_status": [{"code": "BT1", "status": "in_progress"}], "strengths": "Trygg i akuta lägen.",
                                      "areas_to_develop": "Prioritering.", "plan_next_placement": "Fler DOPS."}}))
            .expect(201);
        let mut who: Vec<&TestUser> = vec![&main, supervisors[k], supervisors[k + 1]];
        who.sort_by(|a, b| a.id.cmp(&b.id));
        who.dedup_by(|a, b| a.id == b.id);
        for u in who {
            app.post(
                &format!("/handover-talks/{}/confirm", id(&h.body)),
                Some(&u.access),
                json!({}),
            )
            .expect(200);
        }
    }

    // Summary assessments: progressing in the first three, achieved in the last.
    for k in 0..4 {
        let judgement = if k == 3 { "achieved" } else { "progressing" };
        let js: Vec<Value> = codes
            .iter()
            .map(|c| json!({"code": c, "judgement": judgement, "comment": "Väl underbyggt."}))
            .collect();
        let s = app
            .post(&format!("/enrolments/{enrolment}/summary-assessments"), Some(&supervisors[k].access),
                  json!({"placement_id": placement[k], "judgements": js, "overall": "En trygg BT-läkare som utvecklas väl."}))
            .expect(201);
        app.post(
            &format!("/summary-assessments/{}/sign", id(&s.body)),
            Some(&supervisors[k].access),
            json!({}),
        )
        .expect(200);
    }

    // Progress: every delmål ready for the final assessment, the checklists done, on pace.
    let progress = app
        .get(&format!("/enrolments/{enrolment}/progress?items=true"), t)
        .expect(200)
        .body;
    let delmal = progress["delmal"].as_array().expect("delmal");
    assert_eq!(delmal.len(), 18);
    for d in delmal {
        assert_eq!(d["state"], "ready_for_final_assessment", "{d}");
        assert!(!d["items"].as_array().expect("items").is_empty());
    }
    let bt1 = delmal.iter().find(|d| d["code"] == "BT1").expect("BT1");
    assert_eq!(bt1["evidence"]["assessments"]["mini_cex"], 2);
    assert_eq!(bt1["evidence"]["assessments"]["dops"], 2);
    assert_eq!(progress["pace"]["flag"], "on_pace", "{}", progress["pace"]);
    assert_eq!(progress["pace"]["supervision_held"], 34);
    // Without `items` the same figures come without the record lists.
    let counts = app
        .get(&format!("/enrolments/{enrolment}/progress"), t)
        .expect(200)
        .body;
    assert_eq!(
        counts["delmal"][0]["evidence"],
        progress["delmal"][0]["evidence"]
    );
    assert!(counts["delmal"][0]["items"]
        .as_array()
        .expect("items")
        .is_empty());
    assert_eq!(progress["time_served"]["fraction_done"], 1.0);
    // One checklist per placement (four) and the programme's own; each is checked to hold
    // items, so a missing or empty checklist cannot pass as "all done" (0 of 0).
    let checklists = progress["checklist"].as_array().expect("checklist");
    assert_eq!(checklists.len(), 5, "{}", progress["checklist"]);
    for c in checklists {
        let items = c["items"].as_array().expect("items");
        assert!(!items.is_empty(), "{c}");
        assert_eq!(c["total_items"], items.len(), "{c}");
        assert_eq!(c["complete_items"], c["total_items"], "{c}");
    }

    // The external assessor must never have been involved: one who signed is refused.
    let assign = format!("/enrolments/{enrolment}/assignments");
    let refused = app
        .post(
            &assign,
            Some(&p.director.access),
            json!({"user_id": akut.id, "role": "external_assessor", "valid_from": "2026-11-24"}),
        )
        .expect_problem(422, "validation");
    assert!(
        refused.text.contains("never have been involved"),
        "{}",
        refused.text
    );
    // ... and so is a supervisor who only took part in supervision sessions.
    let stranger = p.person("annan@sll.se", "supervisor", "Nils Nyman");
    app.post(&sessions, t, json!({"held_on": "2026-10-20", "placement_id": placement[3], "participant_ids": [stranger.id], "notes": "Extra samtal."}))
        .expect(201);
    app.post(
        &assign,
        Some(&p.director.access),
        json!({"user_id": stranger.id, "role": "external_assessor", "valid_from": "2026-11-24"}),
    )
    .expect_problem(422, "validation");
    app.post(&assign, Some(&p.director.access), json!({"user_id": extern_.id, "role": "external_assessor", "valid_from": "2026-11-24", "valid_to": "2027-02-01"}))
        .expect(201);
    // The assessor reads this dossier, read-only.
    app.get(
        &format!("/enrolments/{enrolment}/dossier"),
        Some(&extern_.access),
    )
    .expect(200);
    app.post(
        &activities,
        Some(&extern_.access),
        json!({"kind": "other", "title": "x", "start_date": "2026-11-24"}),
    )
    .expect_problem(403, "forbidden");

    // The final assessment: drafted by the assessor, judged per delmål, both sign.
    let all_achieved: Vec<Value> = codes.iter().map(|c| json!({"code": c, "judgement": "achieved", "comment": "Uppnått enligt underlagen."})).collect();
    let fa = app
        .post(&format!("/enrolments/{enrolment}/final-assessments"), Some(&extern_.access),
              json!({"mode": "external_assessor", "judgements": all_achieved[..17], "decision": "achieved"}))
        .expect(201)
        .body;
    let fa_id = id(&fa);
    assert_eq!(fa["signers"].as_array().expect("signers").len(), 2);
    let sign = format!("/final-assessments/{fa_id}/sign");
    // Not every delmål judged yet.
    app.post(&sign, Some(&extern_.access), json!({}))
        .expect_problem(422, "validation");
    let judged = app
        .patch(
            &format!("/final-assessments/{fa_id}"),
            Some(&extern_.access),
            json!({"judgements": all_achieved}),
            &[],
        )
        .expect(200)
        .body;
    assert_eq!(judged["judgements"], json!(all_achieved), "{judged}");
    // No final check-in yet.
    app.post(&sign, Some(&extern_.access), json!({}))
        .expect_problem(422, "unprocessable");
    let check_in = app
        .post(&format!("/enrolments/{enrolment}/final-check-ins"), t,
              json!({"held_on": "2026-11-20", "notes": "Alla delmål genomgångna inför slutbedömningen.", "agreed_actions": "Portföljen till extern bedömare."}))
        .expect(201);
    app.post(
        &format!("/final-check-ins/{}/confirm", id(&check_in.body)),
        Some(&main.access),
        json!({}),
    )
    .expect(200);
    // The trainee never signs their own final assessment.
    app.post(&sign, t, json!({}))
        .expect_problem(403, "forbidden");
    let after_one = app
        .post(&sign, Some(&extern_.access), json!({}))
        .expect(200)
        .body;
    assert_eq!(after_one["status"], "awaiting_signatures");
    assert_eq!(signed_by(&after_one), [extern_.id.as_str()]);
    // An edit withdraws the signature given: it was for other content.
    let edited = app
        .patch(
            &format!("/final-assessments/{fa_id}"),
            Some(&main.access),
            json!({"rationale": "Samstämmiga underlag från alla placeringar."}),
            &[],
        )
        .expect(200)
        .body;
    assert_eq!(
        edited["rationale"],
        "Samstämmiga underlag från alla placeringar."
    );
    assert!(signed_by(&edited).is_empty(), "{edited}");
    let resigned = app
        .post(&sign, Some(&extern_.access), json!({}))
        .expect(200)
        .body;
    assert_eq!(resigned["status"], "awaiting_signatures", "{resigned}");
    assert_eq!(signed_by(&resigned), [extern_.id.as_str()]);
    // A wrong code fails; the main supervisor steps up with a fresh TOTP code.
    app.post(&sign, Some(&main.access), json!({"totp_code": "000000"}))
        .expect_problem(401, "invalid-second-factor");
    let secret = main.totp_secret.clone().expect("totp");
    app.advance(30);
    let decided = app
        .post(
            &sign,
            Some(&main.access),
            json!({"totp_code": app.totp(&secret)}),
        )
        .expect(200)
        .body;
    assert_eq!(decided["status"], "decided");
    assert_eq!(decided["decision"], "achieved", "{decided}");
    assert_eq!(decided["judgements"], json!(all_achieved), "{decided}");
    assert_eq!(signed_by(&decided).len(), 2, "{decided}");
    // The hash is recomputed from the decision the response shows, so a hash over the
    // wrong content (or a constant) fails, not only a missing one.
    assert_eq!(
        decided["content_hash"].as_str().expect("content_hash"),
        final_content_hash(&decided),
        "{decided}"
    );
    let methods: Vec<&str> = decided["signers"]
        .as_array()
        .expect("s")
        .iter()
        .filter_map(|s| s["signature_method"].as_str())
        .collect();
    assert_eq!(methods.len(), 2, "both signers' methods: {decided}");
    assert!(methods.contains(&"step_up_totp"), "{methods:?}");
    app.patch(
        &format!("/final-assessments/{fa_id}"),
        Some(&main.access),
        json!({"rationale": "x"}),
        &[],
    )
    .expect_problem(409, "conflict");
    app.post(&sign, Some(&main.access), json!({}))
        .expect_problem(409, "conflict");
    let progress = app
        .get(&format!("/enrolments/{enrolment}/progress"), t)
        .expect(200)
        .body;
    assert_eq!(progress["final_decision"], "achieved");
    let delmal = progress["delmal"].as_array().expect("delmal");
    assert_eq!(delmal.len(), 18, "{progress}");
    assert!(
        delmal.iter().all(|d| d["state"] == "achieved"),
        "{progress}"
    );

    // Certificates: baskompetens, fullgjord BT, and delmål per supervisor.
    let certs = app
        .get(&format!("/final-assessments/{fa_id}/certificates"), t)
        .expect(200)
        .body;
    let keys: Vec<&str> = certs["items"]
        .as_array()
        .expect("certs")
        .iter()
        .filter_map(|c| c["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"baskompetens") && keys.contains(&"fullgjord-bt"),
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("delmal-")).count(),
        4,
        "{keys:?}"
    );
    let bas = certs["items"]
        .as_array()
        .expect("c")
        .iter()
        .find(|c| c["key"] == "baskompetens")
        .expect("bas");
    let signers: Vec<&str> = bas["signatures"]
        .as_array()
        .expect("s")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(signers, ["Örjan Ärlebäck", "Karin Ödmark"]);
    let pdf_cert = app
        .send(
            "GET",
            &format!("/final-assessments/{fa_id}/certificates/baskompetens"),
            t,
            None,
            &[("Accept", "application/pdf")],
        )
        .expect(200);
    assert_eq!(pdf_cert.header("content-type"), Some("application/pdf"));
    // Certificates need a decided final assessment, which only this walk reaches.
    crate::render_pdf::assert_accessible_pdf(&pdf_cert.bytes, &["Intyg om uppnådd baskompetens"]);
    let text = pdf::text(&pdf_cert.bytes);
    for needle in [
        "Intyg om uppnådd baskompetens",
        "Åsa Öberg",
        "Örjan Ärlebäck",
        "Karin Ödmark",
        "BT18",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from the certificate:\n{text}"
        );
    }

    // The dossier as JSON: complete, signed, verifiable; a changed copy is not.
    let dossier = app
        .get(&format!("/enrolments/{enrolment}/dossier"), t)
        .expect(200);
    let d = &dossier.body["dossier"];
    assert_eq!(d["progress"]["delmal"].as_array().expect("d").len(), 18);
    assert_eq!(d["assessments"].as_array().expect("a").len(), 6);
    assert_eq!(d["summary_assessments"].as_array().expect("s").len(), 4);
    assert_eq!(d["supervision_sessions"].as_array().expect("s").len(), 35);
    assert_eq!(d["handover_talks"].as_array().expect("h").len(), 3);
    assert_eq!(d["final_check_ins"].as_array().expect("f").len(), 1);
    assert_eq!(d["activities"].as_array().expect("a").len(), 31);
    let records = d["records"].as_array().expect("records").len();
    assert_eq!(records, 31 + 6 + 4 + 35 + 3 + 1 + 1);
    assert!(d["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .any(|a| a["action"] == "decided"));
    let v = app
        .send_raw(
            "POST",
            "/dossier-verifications",
            None,
            "application/json",
            dossier.text.as_bytes(),
        )
        .expect(200)
        .body;
    assert_eq!(v["authentic"], true, "{v}");
    assert_eq!(v["records"].as_array().expect("r").len(), records);
    assert_eq!(v["enrolment_id"], enrolment.as_str());
    let tampered =
        dossier
            .text
            .replacen("Försäkringsmedicinsk dag", "Försäkringsmedicinsk vecka", 1);
    let v = app
        .send_raw(
            "POST",
            "/dossier-verifications",
            None,
            "application/json",
            tampered.as_bytes(),
        )
        .expect(200)
        .body;
    assert_eq!(v["authentic"], false);
    assert_eq!(v["reason"], "the content was changed after signing");

    // The same dossier as PDF: every delmål and signature, Swedish letters intact.
    let pdf_dossier = app
        .send(
            "GET",
            &format!("/enrolments/{enrolment}/dossier"),
            Some(&extern_.access),
            None,
            &[("Accept", "application/pdf")],
        )
        .expect(200);
    assert_eq!(pdf_dossier.header("content-type"), Some("application/pdf"));
    // The same content at the same moment renders to the same bytes (and signature).
    let again = app
        .send(
            "GET",
            &format!("/enrolments/{enrolment}/dossier"),
            Some(&extern_.access),
            None,
            &[("Accept", "application/pdf")],
        )
        .expect(200);
    assert_eq!(again.bytes, pdf_dossier.bytes);
    let text = pdf::text(&pdf_dossier.bytes);
    for code in &codes {
        assert!(
            text.contains(&format!("{code} ")),
            "{code} missing from the dossier PDF"
        );
    }
    for needle in [
        "Portfölj för Åsa Öberg",
        "Örjan Ärlebäck",
        "Märta Åkesson",
        "Göran Ek",
        "Lena Öst",
        "Karin Ödmark",
        "Signerade bedömningar",
        "Sammantagna bedömningar",
        "Överlämningssamtal",
        "Slutavstämning",
        "kompetensen uppnådd",
        "signerat",
        "Försäkringsmedicinsk dag",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from the dossier PDF"
        );
    }
    let v = app
        .send_raw(
            "POST",
            "/dossier-verifications",
            None,
            "application/pdf",
            &pdf_dossier.bytes,
        )
        .expect(200)
        .body;
    assert_eq!(v["authentic"], true, "{v}");
    assert_eq!(v["format"], "pdf");
    let mut changed = pdf_dossier.bytes.clone();
    let at = changed
        .windows(5)
        .position(|w| w == b"/Type")
        .expect("an object");
    changed[at + 1] = b'X';
    let v = app
        .send_raw(
            "POST",
            "/dossier-verifications",
            None,
            "application/pdf",
            &changed,
        )
        .expect(200)
        .body;
    assert_eq!(v["authentic"], false);
    app.send_raw(
        "POST",
        "/dossier-verifications",
        None,
        "text/plain",
        b"hello",
    )
    .expect_problem(415, "unsupported-media-type");

    // Offline: the published public key and the CLI, with no database at hand.
    let keys = app.get("/dossier-keys", None).expect(200).body;
    let pem = keys["items"][0]["public_key_pem"].as_str().expect("pem");
    let dir = tempdir();
    std::fs::write(dir.join("key.pem"), pem).expect("key");
    std::fs::write(dir.join("dossier.pdf"), &pdf_dossier.bytes).expect("pdf");
    std::fs::write(dir.join("changed.pdf"), &changed).expect("pdf");
    let cli = |file: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"))
            .args(["dossier", "verify", file, "--public-key"])
            .arg(dir.join("key.pem"))
            .current_dir(&dir)
            .output()
            .expect("cli runs")
    };
    let ok = cli("dossier.pdf");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"authentic\": true"));
    assert!(!cli("changed.pdf").status.success());
    let _ = std::fs::remove_dir_all(&dir);

    // Every dossier issued is in the audit log, with who pulled it.
    let mut issued = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(
                &format!("/enrolments/{enrolment}/changes?limit=200{cursor}"),
                Some(&p.director.access),
            )
            .expect(200)
            .body;
        issued.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter(|c| c["entity"] == "dossier")
                .cloned(),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(issued.len(), 4, "{issued:?}");
    assert!(issued
        .iter()
        .any(|c| c["actor_id"] == extern_.id.as_str() && c["data"]["format"] == "pdf"));
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("eportfolio-dossier-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

const YEAR: [(&str, &str, &str); 4] = [
    ("allmanmedicin", "2026-09-01", "2026-12-31"),
    ("akut", "2027-01-01", "2027-04-30"),
    ("geriatrik", "2027-05-01", "2027-06-30"),
    ("psykiatri", "2027-07-01", "2027-08-31"),
];

fn placements(first_supervisor: &TestUser) -> Value {
    Value::Array(
        YEAR.iter()
            .enumerate()
            .map(|(n, (kind, from, to))| {
                let mut p = json!({"placement_type": kind, "start_date": from, "end_date": to});
                if n == 0 {
                    p["supervisor_id"] = json!(first_supervisor.id);
                }
                p
            })
            .collect(),
    )
}

#[test]
fn pace_flags_and_the_cohort_overview_show_who_needs_attention() {
    let p = programme();
    let app = &p.app;
    let on_pace = p.person("bjorn@sll.se", "trainee", "Björn Ärlig");
    // A name a spreadsheet would run as a formula.
    let lagging = p.person("cecilia@sll.se", "trainee", "=SUM(A1:A9)");
    let hhl_b = p.person("hhl.b@sll.se", "supervisor", "Ingrid Åhs");
    let hhl_c = p.person("hhl.c@sll.se", "supervisor", "Per Öhman");
    let b = p.enrol(
        &on_pace,
        &hhl_b,
        "2026-09-01",
        "2027-08-31",
        placements(&hhl_b),
    );
    let c = p.enrol(
        &lagging,
        &hhl_c,
        "2026-09-01",
        "2027-08-31",
        placements(&hhl_c),
    );
    let (b_id, c_id) = (id(&b), id(&c));
    let am_b = id(&b["placements"][0]);
    let am_c = id(&c["placements"][0]);

    // Björn: weekly supervision, the home visit, a signed Mini-CEX, two teaching days.
    let tb = Some(on_pace.access.as_str());
    for w in 0..12 {
        app.post(&format!("/enrolments/{b_id}/supervision-sessions"), Some(&hhl_b.access),
                 json!({"held_on": day("2026-09-04", 7 * w), "placement_id": am_b,
                        "topics": if w == 0 { json!(["Bemötande i svåra samtal"]) } else { json!(["Veckans patienter"]) }}))
            .expect(201);
    }
    app.post(&format!("/enrolments/{b_id}/activities"), tb, json!({"kind": "clinical_work", "title": "Hembesök med distriktssköterska",
             "start_date": "2026-09-20", "placement_id": am_b, "checklist_item_id": p.item("Hembesök med distriktssköterska"), "delmal": ["BT10"]}))
        .expect(201);
    for d in ["2026-10-06", "2026-11-03"] {
        app.post(&format!("/enrolments/{b_id}/activities"), tb, json!({"kind": "regional_teaching", "title": "Regional utbildningsdag",
                 "start_date": d, "checklist_item_id": p.item("Regional utbildningsdag (första tisdagen)"), "delmal": ["BT3"]}))
            .expect(201);
    }
    signed_assessment(
        app,
        &b_id,
        &on_pace,
        &hhl_b,
        json!({"instrument": "mini_cex", "performed_on": "2026-10-14", "placement_id": am_b,
               "delmal": ["BT1"]}),
    );

    // Cecilia: one session in early September, one assessment waiting for a signature.
    app.post(
        &format!("/enrolments/{c_id}/supervision-sessions"),
        Some(&hhl_c.access),
        json!({"held_on": "2026-09-05", "placement_id": am_c, "topics": ["Introduktion"]}),
    )
    .expect(201);
    app.post(&format!("/enrolments/{c_id}/assessments"), Some(&lagging.access),
             json!({"instrument": "mini_cex", "performed_on": "2026-11-10", "assessor_id": hhl_c.id, "placement_id": am_c, "delmal": ["BT1"]}))
        .expect(201);

    let pb = app
        .get(&format!("/enrolments/{b_id}/progress"), tb)
        .expect(200)
        .body;
    assert_eq!(pb["pace"]["flag"], "on_pace", "{}", pb["pace"]);
    assert_eq!(pb["pace"]["supervision_overdue"], false);
    assert_eq!(pb["pace"]["days_since_supervision"], 4);
    let am = &pb["checklist"][0];
    assert_eq!(am["placement_type"], "allmanmedicin");
    let topic = am["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["kind"] == "supervision_topic")
        .expect("topic");
    assert_eq!(topic["complete"], true);
    let pc = app
        .get(
            &format!("/enrolments/{c_id}/progress"),
            Some(&lagging.access),
        )
        .expect(200)
        .body;
    assert_eq!(pc["pace"]["flag"], "at_risk", "{}", pc["pace"]);
    let reasons: Vec<&str> = pc["pace"]["reasons"]
        .as_array()
        .expect("r")
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    for r in [
        "supervision_overdue",
        "supervision_sessions_behind",
        "checklist_behind",
    ] {
        assert!(reasons.contains(&r), "{r} not in {reasons:?}");
    }
    assert_eq!(pc["pace"]["days_since_supervision"], 80);
    assert_eq!(pc["pace"]["assessments_awaiting_signature"], 1);
    // Supervisors see only their own trainees' progress.
    app.get(&format!("/enrolments/{b_id}/progress"), Some(&hhl_c.access))
        .expect_problem(404, "not-found");

    // The director's cohort overview, filtered, sorted and as CSV.
    let dir = Some(p.director.access.as_str());
    let page = app.get("/cohort-overview", dir).expect(200).body;
    assert!(page["next_cursor"].is_null(), "{page}");
    let rows = page["items"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    // Paged like every list: one row a page, the cursor leads to the other.
    let first = app.get("/cohort-overview?limit=1", dir).expect(200).body;
    assert_eq!(first["items"].as_array().expect("rows").len(), 1);
    let cursor = first["next_cursor"].as_str().expect("more");
    let second = app
        .get(&format!("/cohort-overview?limit=1&cursor={cursor}"), dir)
        .expect(200)
        .body;
    assert_eq!(second["items"].as_array().expect("rows").len(), 1);
    assert!(second["next_cursor"].is_null());
    assert_ne!(
        first["items"][0]["enrolment_id"],
        second["items"][0]["enrolment_id"]
    );
    app.get("/cohort-overview?limit=0", dir)
        .expect_problem(422, "validation");
    let row_c = rows
        .iter()
        .find(|r| r["enrolment_id"] == c_id.as_str())
        .expect("c");
    assert_eq!(row_c["pace"], "at_risk");
    assert_eq!(row_c["supervision_overdue"], true);
    assert_eq!(row_c["assessments_awaiting_signature"], 1);
    assert_eq!(
        row_c["delmal_without_evidence"]
            .as_array()
            .expect("d")
            .len(),
        18
    );
    let row_b = rows
        .iter()
        .find(|r| r["enrolment_id"] == b_id.as_str())
        .expect("b");
    assert_eq!(row_b["pace"], "on_pace");
    assert_eq!(row_b["assessments_signed"], 1);
    let risky = app
        .get("/cohort-overview?pace=at_risk", dir)
        .expect(200)
        .body;
    assert_eq!(risky["items"].as_array().expect("rows").len(), 1);
    assert_eq!(risky["items"][0]["trainee_name"], "=SUM(A1:A9)");
    let sorted = app
        .get("/cohort-overview?sort=pace&order=desc", dir)
        .expect(200)
        .body;
    assert_eq!(sorted["items"][0]["enrolment_id"], c_id.as_str());
    let overdue = app
        .get("/cohort-overview?supervision_overdue=false&q=bj", dir)
        .expect(200)
        .body;
    assert_eq!(overdue["items"].as_array().expect("rows").len(), 1);
    app.get("/cohort-overview?pace=fast", dir)
        .expect_problem(422, "validation");
    let csv = app
        .send(
            "GET",
            "/cohort-overview?sort=name",
            dir,
            None,
            &[("Accept", "text/csv")],
        )
        .expect(200);
    assert!(csv
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert!(lines[0].starts_with("enrolment_id,trainee_name"));
    assert!(
        csv.text.contains("Björn Ärlig") && csv.text.contains("'=SUM(A1:A9)"),
        "{}",
        csv.text
    );
    app.send(
        "GET",
        "/cohort-overview",
        dir,
        None,
        &[("Accept", "application/xml")],
    )
    .expect_problem(406, "not-acceptable");
    // Trainees and supervisors have no cohort.
    app.get("/cohort-overview", tb)
        .expect_problem(403, "forbidden");
    app.get("/cohort-overview", Some(&hhl_b.access))
        .expect_problem(403, "forbidden");

    // A learning platform reads the same overview and progress with progress:read only.
    let (cid, secret) = crate::integrations::client(app, &p.admin, &p.slso, &["progress:read"]);
    let platform = crate::integrations::token(app, &cid, &secret);
    let seen = app
        .get("/cohort-overview", Some(&platform))
        .expect(200)
        .body;
    assert_eq!(seen["items"].as_array().expect("rows").len(), 2);
    app.get(&format!("/enrolments/{c_id}/progress"), Some(&platform))
        .expect(200);
    app.get(&format!("/enrolments/{c_id}/dossier"), Some(&platform))
        .expect_problem(403, "forbidden");
    let (cid, secret) = crate::integrations::client(app, &p.admin, &p.slso, &["catalog:read"]);
    let catalog_only = crate::integrations::token(app, &cid, &secret);
    app.get("/cohort-overview", Some(&catalog_only))
        .expect_problem(403, "insufficient-scope");

    // The chart, as SVG by default and as PNG on request.
    let chart = format!("/enrolments/{b_id}/progress/chart");
    let svg = app.get(&chart, tb).expect(200);
    assert!(svg
        .header("content-type")
        .unwrap_or("")
        .starts_with("image/svg+xml"));
    assert!(
        svg.text.contains("<svg") && svg.text.contains("BT18") && svg.text.contains("Björn Ärlig")
    );
    let png = app
        .send("GET", &chart, tb, None, &[("Accept", "image/png")])
        .expect(200);
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert!(png.bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    app.send("GET", &chart, tb, None, &[("Accept", "text/html")])
        .expect_problem(406, "not-acceptable");
    app.get(&chart, Some(&hhl_c.access))
        .expect_problem(404, "not-found");
}

#[test]
fn a_clinical_competence_committee_decides_not_yet_and_a_new_assessment_follows() {
    let p = programme();
    let app = &p.app;
    let trainee = p.person("dana@sll.se", "trainee", "Dana Ångström");
    let main = p.person("hhl.d@sll.se", "supervisor", "Eva Öqvist");
    let m1 = p.person("kkk1@sll.se", "supervisor", "Karl Ärnlöv");
    let m2 = p.person("kkk2@sll.se", "supervisor", "Sofia Ådén");
    let outsider = p.person("annan@sll.se", "supervisor", "Olle Utan");
    let e = p.enrol(&trainee, &main, "2025-11-01", "2026-10-31", json!([
        {"placement_type": "allmanmedicin", "start_date": "2025-11-01", "end_date": "2026-02-28", "supervisor_id": main.id}]));
    let enrolment = id(&e);
    let t = Some(trainee.access.as_str());
    let create = format!("/enrolments/{enrolment}/final-assessments");
    // Only a director convenes a committee; the trainee never sits on it.
    app.post(
        &create,
        Some(&main.access),
        json!({"mode": "committee", "committee_member_ids": [m1.id, m2.id]}),
    )
    .expect_problem(403, "forbidden");
    app.post(
        &create,
        Some(&p.director.access),
        json!({"mode": "committee", "committee_member_ids": [m1.id, trainee.id]}),
    )
    .expect_problem(422, "validation");
    // Without an external assessor the assessor mode cannot start.
    app.post(
        &create,
        Some(&main.access),
        json!({"mode": "external_assessor"}),
    )
    .expect_problem(422, "unprocessable");

    let codes: Vec<String> = (1..=18).map(|n| format!("BT{n}")).collect();
    let judgements: Vec<Value> = codes
        .iter()
        .map(|c| json!({"code": c, "judgement": if c == "BT1" || c == "BT7" { "not_yet" } else { "achieved" }}))
        .collect();
    let fa = app
        .post(&create, Some(&p.director.access),
              json!({"mode": "committee", "committee_member_ids": [m1.id, m2.id], "judgements": judgements, "decision": "achieved"}))
        .expect(201)
        .body;
    let fa_id = id(&fa);
    app.post(
        &create,
        Some(&p.director.access),
        json!({"mode": "committee", "committee_member_ids": [m1.id, m2.id]}),
    )
    .expect_problem(409, "conflict");
    // Members read what they decide on, the dossier included; others do not.
    app.get(&format!("/final-assessments/{fa_id}"), Some(&m1.access))
        .expect(200);
    app.get(
        &format!("/enrolments/{enrolment}/dossier"),
        Some(&m1.access),
    )
    .expect(200);
    app.get(
        &format!("/final-assessments/{fa_id}"),
        Some(&outsider.access),
    )
    .expect_problem(404, "not-found");
    app.get(
        &format!("/enrolments/{enrolment}/dossier"),
        Some(&outsider.access),
    )
    .expect_problem(404, "not-found");

    let sign = format!("/final-assessments/{fa_id}/sign");
    // "Achieved" with delmål not yet achieved does not add up.
    let check_in = app
        .post(
            &format!("/enrolments/{enrolment}/final-check-ins"),
            Some(&main.access),
            json!({"held_on": "2026-11-01", "notes": "Genomgång."}),
        )
        .expect(201);
    app.post(
        &format!("/final-check-ins/{}/confirm", id(&check_in.body)),
        t,
        json!({}),
    )
    .expect(200);
    app.post(&sign, Some(&m1.access), json!({}))
        .expect_problem(422, "validation");
    let changed = app
        .patch(
            &format!("/final-assessments/{fa_id}"),
            Some(&m1.access),
            json!({"decision": "not_yet"}),
            &[],
        )
        .expect(200)
        .body;
    assert_eq!(changed["decision"], "not_yet", "{changed}");
    app.post(&sign, Some(&m1.access), json!({}))
        .expect_problem(422, "validation");
    let missing = "Fler observerade bedömningar i akut sjukvård (BT1) och ledarskap (BT7).";
    let changed = app
        .patch(
            &format!("/final-assessments/{fa_id}"),
            Some(&m1.access),
            json!({ "missing": missing }),
            &[],
        )
        .expect(200)
        .body;
    assert_eq!(changed["missing"], missing, "{changed}");
    assert_eq!(changed["decision"], "not_yet", "{changed}");
    let first = app
        .post(&sign, Some(&m1.access), json!({}))
        .expect(200)
        .body;
    assert_eq!(first["status"], "awaiting_signatures", "{first}");
    assert!(first["content_hash"].is_null(), "not decided yet: {first}");
    app.post(&sign, Some(&outsider.access), json!({}))
        .expect_problem(404, "not-found");
    let decided = app
        .post(&sign, Some(&m2.access), json!({}))
        .expect(200)
        .body;
    assert_eq!(decided["status"], "decided");
    assert_eq!(decided["decision"], "not_yet");
    assert_eq!(decided["missing"], missing, "{decided}");
    assert_eq!(
        decided["content_hash"].as_str().expect("content_hash"),
        final_content_hash(&decided),
        "{decided}"
    );
    app.get(&format!("/final-assessments/{fa_id}/certificates"), t)
        .expect_problem(409, "conflict");
    let progress = app
        .get(&format!("/enrolments/{enrolment}/progress"), t)
        .expect(200)
        .body;
    assert_eq!(progress["final_decision"], "not_yet");
    let bt1 = progress["delmal"]
        .as_array()
        .expect("d")
        .iter()
        .find(|d| d["code"] == "BT1")
        .expect("BT1");
    assert_ne!(bt1["state"], "achieved");
    // After "not yet", a new final assessment can follow.
    app.post(
        &create,
        Some(&p.director.access),
        json!({"mode": "committee", "committee_member_ids": [m1.id, m2.id]}),
    )
    .expect(201);
    let list = app.get(&create, t).expect(200).body;
    assert_eq!(list["items"].as_array().expect("items").len(), 2);
}

#[test]
fn the_demo_command_seeds_a_living_region_once() {
    let dir = tempdir();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"))
            .arg("demo")
            .current_dir(&dir)
            .env("EPORTFOLIO_DATA_DIR", dir.join("data"))
            .env_remove("DATABASE_URL")
            .env("ARGON2_MEMORY_KIB", "1024")
            .env("ARGON2_ITERATIONS", "1")
            .output()
            .expect("demo runs")
    };
    let first = run();
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}\n{}",
        out,
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("TOTP ")).count(),
        13,
        "{out}"
    );
    for who in [
        "trainee",
        "main supervisor",
        "director of studies",
        "external assessor",
        "on pace",
        "behind",
        "ready for the final assessment",
    ] {
        assert!(out.contains(who), "{who} missing:\n{out}");
    }
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let _ = std::fs::remove_dir_all(&dir);
}
