//! Patient data stays out: free text holding a personnummer is refused unless the
//! trainee says it is not patient data, and that acknowledgement is audited without the
//! number. Learning platforms (xAPI) and bulk imports are refused outright.
//!
//! The numbers are test numbers: Skatteverket's 19121212-1212 and ones whose check
//! digit is computed (no real person's).

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::support::{TestApp, TestUser};

/// Skatteverket's published test personnummer, as a trainee might type it.
const TEST_NUMBER: &str = "19121212-1212";

struct Setup {
    app: TestApp,
    admin: TestUser,
    region: String,
    slso: String,
    trainee: TestUser,
    supervisor: TestUser,
    outsider: TestUser,
    enrolment: String,
}

fn setup() -> Setup {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let template = app.stockholm_bt_template(&admin, &slso);
    let trainee = app.join(&admin, "bt@sll.se", "trainee", &slso);
    let supervisor = app.join(&admin, "hhl@sll.se", "supervisor", &slso);
    let outsider = app.join(&admin, "annan.hl@sll.se", "supervisor", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&admin.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31",
                   "main_supervisor_id": supervisor.id}),
        )
        .expect(201);
    Setup {
        enrolment: e.body["id"].as_str().expect("id").to_string(),
        app,
        admin,
        region,
        slso,
        trainee,
        supervisor,
        outsider,
    }
}

fn db(app: &TestApp) -> eportfolio::db::PooledConn {
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    pool.get().expect("conn")
}

/// (action, entity_id, data) of every audit entry with `action`.
fn audited(app: &TestApp, action: &str) -> Vec<(String, String, String)> {
    use eportfolio::schema::audit_log;
    audit_log::table
        .filter(audit_log::action.eq(action))
        .order(audit_log::seq)
        .select((audit_log::action, audit_log::entity_id, audit_log::data))
        .load(&mut *db(app))
        .expect("audit")
}

/// Does any audit entry hold these digits (in any form)?
fn audit_holds(app: &TestApp, digits: &str) -> bool {
    use eportfolio::schema::audit_log;
    let all: Vec<String> = audit_log::table
        .select(audit_log::data)
        .load(&mut *db(app))
        .expect("audit");
    all.iter().any(|d| d.contains(digits))
}

fn field_errors(r: &Value) -> Vec<(String, u64)> {
    r["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().expect("field").to_string(),
                e["position"].as_u64().expect("position"),
            )
        })
        .collect()
}

#[test]
fn a_personnummer_in_a_reflection_is_refused_until_acknowledged_and_audited_without_it() {
    let s = setup();
    let path = format!("/enrolments/{}/activities", s.enrolment);
    let entry = json!({"kind": "course", "title": "Akutdag", "start_date": "2026-10-06",
                       "reflection": format!("Patienten {TEST_NUMBER} sökte för buksmärta")});
    let refused = s
        .app
        .post(&path, Some(&s.trainee.access), entry.clone())
        .expect_problem(422, "patient-data-suspected");
    assert_eq!(field_errors(&refused.body), vec![("reflection".into(), 10)]);
    // The answer names where, not what.
    assert!(!refused.text.contains("1212-1212"), "{}", refused.text);
    assert!(refused.body["detail"]
        .as_str()
        .expect("detail")
        .contains("acknowledge_patient_data_warning"));
    // Nothing was stored.
    let list = s.app.get(&path, Some(&s.trainee.access)).expect(200);
    assert_eq!(list.body["items"], json!([]));

    // Dates, a wrong check digit and digits inside longer numbers are not refused.
    let plain = s
        .app
        .post(
            &path,
            Some(&s.trainee.access),
            json!({"kind": "course", "title": "Kurs 2026-10-06, nr 19121212-1213",
                   "start_date": "2026-10-06", "reflection": "Beställning 3191212121212"}),
        )
        .expect(201);
    let plain_id = plain.body["id"].as_str().expect("id").to_string();

    // Someone else acknowledging on the trainee's enrolment: refused as before, and the
    // acknowledgement is not audited (it is written in the refused write).
    let mut acknowledged = entry.clone();
    acknowledged["acknowledge_patient_data_warning"] = json!(true);
    s.app
        .post(&path, Some(&s.outsider.access), acknowledged.clone())
        .expect_problem(404, "not-found");
    assert!(audited(&s.app, "patient_data_warning_acknowledged").is_empty());

    // "It is not patient data": stored as sent, the acknowledgement audited once, also
    // when the phone retries with the same Idempotency-Key.
    let key = [("Idempotency-Key", "ack-1")];
    let stored = s
        .app
        .send(
            "POST",
            &path,
            Some(&s.trainee.access),
            Some(&acknowledged),
            &key,
        )
        .expect(201);
    let replay = s
        .app
        .send(
            "POST",
            &path,
            Some(&s.trainee.access),
            Some(&acknowledged),
            &key,
        )
        .expect(201);
    assert_eq!(replay.body, stored.body);
    assert_eq!(stored.body["reflection"], entry["reflection"]);
    assert!(stored
        .body
        .get("acknowledge_patient_data_warning")
        .is_none());
    let entries = audited(&s.app, "patient_data_warning_acknowledged");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1, s.enrolment);
    let data: Value = serde_json::from_str(&entries[0].2).expect("json");
    assert_eq!(
        data,
        json!({"operation": "POST /api/v1/enrolments/{id}/activities",
               "findings": [{"field": "reflection", "position": 10, "kind": "personnummer"}]})
    );

    // An edit is guarded the same way, with the field it touches; a samordningsnummer
    // (day + 60) too.
    s.app
        .patch(
            &format!("/activities/{plain_id}"),
            Some(&s.trainee.access),
            json!({"title": "Samordningsnr 900161-2382"}),
            &[],
        )
        .expect_problem(422, "patient-data-suspected");
    s.app
        .patch(
            &format!("/activities/{plain_id}"),
            Some(&s.trainee.access),
            json!({"title": "Kursnummer 900161-2382", "acknowledge_patient_data_warning": true}),
            &[],
        )
        .expect(200);
    let entries = audited(&s.app, "patient_data_warning_acknowledged");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].1, plain_id);
    assert!(entries[1].2.contains("samordningsnummer"));
    // The log never holds the number itself (the activity's own audit entry does, as
    // the record does: that is what was acknowledged).
    assert!(!entries.iter().any(|e| e.2.contains("1212")));
    // An acknowledgement that is not a boolean is a validation problem.
    s.app
        .post(
            &path,
            Some(&s.trainee.access),
            json!({"kind": "course", "title": "x", "start_date": "2026-10-06",
                   "acknowledge_patient_data_warning": "yes"}),
        )
        .expect_problem(422, "validation");
    let mut conn = db(&s.app);
    assert!(eportfolio::audit::verify(&mut conn).expect("verify").intact);
}

#[test]
fn assessments_talks_and_attachment_names_are_guarded() {
    let s = setup();
    // An assessment's context (any key) and a supervision session's notes.
    let refused = s
        .app
        .post(
            &format!("/enrolments/{}/assessments", s.enrolment),
            Some(&s.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-14",
                   "assessor_id": s.supervisor.id,
                   "context": {"setting": "akuten", "patient": "pat 121212 1212"}}),
        )
        .expect_problem(422, "patient-data-suspected");
    assert_eq!(
        field_errors(&refused.body),
        vec![("context.patient".into(), 4)]
    );
    let refused = s
        .app
        .post(
            &format!("/enrolments/{}/supervision-sessions", s.enrolment),
            Some(&s.supervisor.access),
            json!({"held_on": "2026-10-20",
                   "notes": "Gick igenom 1212121212"}),
        )
        .expect_problem(422, "patient-data-suspected");
    assert_eq!(field_errors(&refused.body), vec![("notes".into(), 12)]);

    // Attachment file names: refused, then acknowledged in the query.
    let a = s
        .app
        .post(
            &format!("/enrolments/{}/activities", s.enrolment),
            Some(&s.trainee.access),
            json!({"kind": "course", "title": "Kurs", "start_date": "2026-10-06"}),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id");
    let pdf = b"%PDF-1.7\n%test\n".to_vec();
    let refused = s
        .app
        .send_raw(
            "POST",
            &format!("/activities/{id}/attachments?filename=remiss%20191212121212.pdf"),
            Some(&s.trainee.access),
            "application/pdf",
            &pdf,
        )
        .expect_problem(422, "patient-data-suspected");
    assert_eq!(field_errors(&refused.body), vec![("filename".into(), 7)]);
    s.app
        .send_raw(
            "POST",
            &format!(
                "/activities/{id}/attachments?filename=remiss%20191212121212.pdf\
                 &acknowledge_patient_data_warning=true"
            ),
            Some(&s.trainee.access),
            "application/pdf",
            &pdf,
        )
        .expect(201);
    let entries = audited(&s.app, "patient_data_warning_acknowledged");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1, id);
    assert!(entries[0].2.contains("\"filename\""));
    assert!(!entries[0].2.contains("1212"));
}

#[test]
fn xapi_statements_and_imports_holding_a_personnummer_are_refused_and_not_stored() {
    let s = setup();
    let (id, secret) =
        crate::integrations::client(&s.app, &s.admin, &s.region, &["activities:write"]);
    let access = crate::integrations::token(&s.app, &id, &secret);
    let course = "https://lms.regionstockholm.se/course/akut";
    let statement = |id: &str, description: &str| {
        json!({
            "id": id,
            "actor": {"mbox": "mailto:bt@sll.se"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
            "object": {"id": course, "definition": {"name": {"sv-SE": "Akutkurs"},
                                                  "description": {"sv-SE": description}}},
            "timestamp": "2026-11-20T13:00:00Z"
        })
    };
    let dirty = "5b1f0c3e-7d2a-4c1b-9e8f-0a1b2c3d4e5f";
    let clean = "6c2a1d4f-8e3b-4d2c-8f90-1b2c3d4e5f60";
    let r = s
        .app
        .send(
            "POST",
            "/xapi/statements",
            Some(&access),
            Some(&json!([
                statement(dirty, &format!("Fallet {TEST_NUMBER}")),
                statement(clean, "Fallbaserad kurs")
            ])),
            &[("X-Experience-API-Version", "1.0.3")],
        )
        .expect(400);
    // The LRS refuses the whole batch (xAPI: 400 for a statement it will not store),
    // naming the statement, the field and the position, never the number.
    let detail = r.body["detail"].as_str().expect("detail");
    assert!(detail.contains("statement 0"), "{detail}");
    assert!(detail.contains("patient_data"), "{detail}");
    assert!(
        detail.contains("object.definition.description.sv-SE"),
        "{detail}"
    );
    assert!(!detail.contains("1212-1212"), "{detail}");
    use eportfolio::schema::xapi_statements;
    let stored: Vec<String> = xapi_statements::table
        .select(xapi_statements::id)
        .load(&mut *db(&s.app))
        .expect("statements");
    assert!(stored.is_empty(), "{stored:?}");
    // The clean statement, sent again on its own, is stored.
    s.app
        .send(
            "POST",
            "/xapi/statements",
            Some(&access),
            Some(&statement(clean, "Fallbaserad kurs")),
            &[("X-Experience-API-Version", "1.0.3")],
        )
        .expect(200);
    let stored: Vec<String> = xapi_statements::table
        .select(xapi_statements::id)
        .load(&mut *db(&s.app))
        .expect("statements");
    assert_eq!(stored, vec![clean.to_string()]);
    assert!(!audit_holds(&s.app, "1212-1212"));

    // A bulk import: refused with the row and field, nothing imported.
    let r = s
        .app
        .post(
            "/imports/users",
            Some(&s.admin.access),
            json!([
                {"email": "ny.ett@sll.se", "organisation_id": s.slso},
                {"email": "ny.tva@sll.se", "organisation_id": s.slso,
                 "display_name": "Ny 121212-1212"}
            ]),
        )
        .expect_problem(422, "patient-data-suspected");
    assert_eq!(
        field_errors(&r.body),
        vec![("rows[1].display_name".into(), 3)]
    );
    assert_eq!(s.app.mails_queued_to("ny.ett@sll.se"), 0);
}
