//! Supervision sessions and handover talks, confirmed by everyone who took part.

use serde_json::json;

use crate::support::{TestApp, TestUser};

struct Year {
    app: TestApp,
    trainee: TestUser,
    main: TestUser,
    outgoing: TestUser,
    incoming: TestUser,
    outsider: TestUser,
    enrolment: String,
    first: String,
    second: String,
}

fn year() -> Year {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let director = app.join(&admin, "studierektor@sll.se", "director_of_studies", &slso);
    let template = app.stockholm_bt_template(&director, &slso);
    let trainee = app.join(&director, "bt@sll.se", "trainee", &slso);
    let main = app.join(&director, "hhl@sll.se", "supervisor", &slso);
    let outgoing = app.join(&director, "tjg.akut@sll.se", "supervisor", &slso);
    let incoming = app.join(&director, "tjg.geri@gmail.com", "supervisor", &slso);
    let outsider = app.join(&director, "annan@sll.se", "supervisor", &slso);
    let e = app
        .post(
            "/enrolments",
            Some(&director.access),
            json!({"trainee_id": trainee.id, "template_id": template, "track": "bt_standalone",
                   "start_date": "2026-09-01", "planned_end": "2027-08-31", "main_supervisor_id": main.id,
                   "placements": [
                       {"placement_type": "akut", "start_date": "2026-09-01", "end_date": "2026-12-31", "supervisor_id": outgoing.id},
                       {"placement_type": "geriatrik", "start_date": "2027-01-01", "end_date": "2027-02-28", "supervisor_id": incoming.id}
                   ]}),
        )
        .expect(201);
    Year {
        enrolment: e.body["id"].as_str().expect("id").to_string(),
        first: e.body["placements"][0]["id"]
            .as_str()
            .expect("p")
            .to_string(),
        second: e.body["placements"][1]["id"]
            .as_str()
            .expect("p")
            .to_string(),
        app,
        trainee,
        main,
        outgoing,
        incoming,
        outsider,
    }
}

#[test]
fn an_ad_hoc_supervision_session_is_confirmed_by_both() {
    let y = year();
    let path = format!("/enrolments/{}/supervision-sessions", y.enrolment);
    let before = y.app.smtp.count_to(&y.outgoing.email);
    let s = y
        .app
        .post(
            &path,
            Some(&y.trainee.access),
            json!({"held_on": "2026-10-20", "participant_ids": [y.outgoing.id], "placement_id": y.first,
                   "topics": ["Bemötande i svåra samtal"], "notes": "Ett svårt besked på akuten.",
                   "agreed_actions": "Medsittning nästa vecka.", "delmal": ["BT9"]}),
        )
        .expect(201);
    let id = s.body["id"].as_str().expect("id").to_string();
    assert_eq!(s.body["status"], "awaiting_confirmation");
    let me = s.body["participants"]
        .as_array()
        .expect("p")
        .iter()
        .find(|p| p["user_id"] == y.trainee.id.as_str())
        .expect("trainee")
        .clone();
    assert!(
        me["confirmed_at"].is_string(),
        "the creator has confirmed what they wrote"
    );
    let mail = y.app.smtp.wait_for(&y.outgoing.email, before);
    assert!(mail
        .body_text()
        .contains(&format!("https://app.example/supervision-sessions/{id}")));

    // A supervisor who was not there neither sees nor confirms it.
    y.app
        .get(
            &format!("/supervision-sessions/{id}"),
            Some(&y.outsider.access),
        )
        .expect_problem(404, "not-found");
    // The trainee adds a line before the supervisor confirms: the supervisor is asked again.
    let etag = s.header("etag").expect("etag").to_string();
    let edited = y
        .app
        .patch(
            &format!("/supervision-sessions/{id}"),
            Some(&y.trainee.access),
            json!({"agreed_actions": "Medsittning tisdag."}),
            &[("If-Match", &etag)],
        )
        .expect(200);
    assert_eq!(edited.body["version"], 2);
    y.app
        .patch(
            &format!("/supervision-sessions/{id}"),
            Some(&y.trainee.access),
            json!({"notes": "x"}),
            &[("If-Match", &etag)],
        )
        .expect_problem(412, "precondition-failed");
    let done = y
        .app
        .post(
            &format!("/supervision-sessions/{id}/confirm"),
            Some(&y.outgoing.access),
            json!({}),
        )
        .expect(200);
    assert_eq!(done.body["status"], "confirmed");
    assert_eq!(done.body["agreed_actions"], "Medsittning tisdag.");
    y.app
        .post(
            &format!("/supervision-sessions/{id}/confirm"),
            Some(&y.outgoing.access),
            json!({}),
        )
        .expect_problem(409, "conflict");
    y.app
        .patch(
            &format!("/supervision-sessions/{id}"),
            Some(&y.outgoing.access),
            json!({"notes": "i efterhand"}),
            &[],
        )
        .expect_problem(409, "conflict");
    // The same id is not a handover talk.
    y.app
        .get(&format!("/handover-talks/{id}"), Some(&y.trainee.access))
        .expect_problem(404, "not-found");
    let listed = y.app.get(&path, Some(&y.main.access)).expect(200);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());

    // Supervisors start sessions too; an unassigned one cannot.
    y.app
        .post(
            &path,
            Some(&y.main.access),
            json!({"held_on": "2026-10-27", "topics": ["Mål för placeringen"]}),
        )
        .expect(201);
    y.app
        .post(
            &path,
            Some(&y.outsider.access),
            json!({"held_on": "2026-10-27"}),
        )
        .expect_problem(404, "not-found");
}

#[test]
fn a_handover_talk_is_final_when_all_four_have_confirmed() {
    let y = year();
    let path = format!("/enrolments/{}/handover-talks", y.enrolment);
    let body = json!({
        "held_on": "2026-12-28", "placement_id": y.first, "next_placement_id": y.second,
        "outgoing_supervisor_id": y.outgoing.id, "incoming_supervisor_id": y.incoming.id,
        "handover": {"delmal_status": [{"code": "BT1", "status": "in_progress", "comment": "Två Mini-CEX"}],
                     "strengths": "Trygg i akuta bedömningar.", "areas_to_develop": "Prioritering.",
                     "plan_next_placement": "CbD om palliativ vård."}
    });
    // The trainee leads it; a supervisor cannot record it for them.
    y.app
        .post(&path, Some(&y.main.access), body.clone())
        .expect_problem(403, "forbidden");
    let mut bad = body.clone();
    bad["handover"]["delmal_status"][0]["status"] = json!("klar");
    y.app
        .post(&path, Some(&y.trainee.access), bad)
        .expect_problem(422, "validation");

    let counts: Vec<usize> = [&y.main, &y.outgoing, &y.incoming]
        .iter()
        .map(|u| y.app.smtp.count_to(&u.email))
        .collect();
    let t = y.app.post(&path, Some(&y.trainee.access), body).expect(201);
    let id = t.body["id"].as_str().expect("id").to_string();
    let roles: Vec<&str> = t.body["participants"]
        .as_array()
        .expect("p")
        .iter()
        .map(|p| p["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles.len(), 4);
    for role in [
        "trainee",
        "main_supervisor",
        "outgoing_supervisor",
        "incoming_supervisor",
    ] {
        assert!(roles.contains(&role), "{roles:?}");
    }
    for (u, before) in [&y.main, &y.outgoing, &y.incoming].iter().zip(counts) {
        let mail = y.app.smtp.wait_for(&u.email, before);
        assert!(
            mail.subject().contains("Överlämningssamtal"),
            "{}",
            mail.subject()
        );
    }
    // The incoming supervisor (external address) reads it before the placement starts.
    let got = y
        .app
        .get(&format!("/handover-talks/{id}"), Some(&y.incoming.access))
        .expect(200);
    assert_eq!(
        got.body["handover"]["plan_next_placement"],
        "CbD om palliativ vård."
    );

    for (i, u) in [&y.main, &y.outgoing, &y.incoming].iter().enumerate() {
        let r = y
            .app
            .post(
                &format!("/handover-talks/{id}/confirm"),
                Some(&u.access),
                json!({}),
            )
            .expect(200);
        let expected = if i == 2 {
            "confirmed"
        } else {
            "awaiting_confirmation"
        };
        assert_eq!(r.body["status"], expected);
    }
    y.app
        .post(
            &format!("/handover-talks/{id}/confirm"),
            Some(&y.outsider.access),
            json!({}),
        )
        .expect_problem(404, "not-found");
    y.app
        .patch(
            &format!("/handover-talks/{id}"),
            Some(&y.trainee.access),
            json!({"notes": "sent"}),
            &[],
        )
        .expect_problem(409, "conflict");
    let all = y.app.get(&path, Some(&y.trainee.access)).expect(200);
    let items = all.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", all.text);
    assert_eq!(items[0]["id"], id.as_str());
    // All four, so that an empty list of participants cannot pass the check.
    let participants = items[0]["participants"].as_array().expect("participants");
    assert_eq!(participants.len(), 4, "{}", all.text);
    assert!(
        participants
            .iter()
            .all(|p| p["confirmation_method"] == "totp"),
        "{}",
        all.text
    );
}

#[test]
fn the_placement_supervisor_writes_and_signs_the_summary_assessment() {
    let y = year();
    let path = format!("/enrolments/{}/summary-assessments", y.enrolment);
    let body = json!({"placement_id": y.first, "judgements": [{"code": "BT1", "judgement": "progressing", "comment": "Fler sepsisfall."}]});
    // Only that placement's supervisor (or the main supervisor) writes it.
    y.app
        .post(&path, Some(&y.trainee.access), body.clone())
        .expect_problem(403, "forbidden");
    y.app
        .post(&path, Some(&y.incoming.access), body.clone())
        .expect_problem(403, "forbidden");
    let draft = y
        .app
        .post(&path, Some(&y.outgoing.access), body)
        .expect(201);
    let id = draft.body["id"].as_str().expect("id").to_string();
    // Not signable without an overall assessment; unknown judgements are refused.
    y.app
        .post(
            &format!("/summary-assessments/{id}/sign"),
            Some(&y.outgoing.access),
            json!({}),
        )
        .expect_problem(422, "validation");
    y.app
        .patch(
            &format!("/summary-assessments/{id}"),
            Some(&y.outgoing.access),
            json!({"judgements": [{"code": "BT1", "judgement": "bra"}]}),
            &[],
        )
        .expect_problem(422, "validation");
    y.app
        .patch(
            &format!("/summary-assessments/{id}"),
            Some(&y.outgoing.access),
            json!({"overall": "En trygg BT-läkare."}),
            &[],
        )
        .expect(200);
    let before = y.app.smtp.count_to(&y.trainee.email);
    let signed = y
        .app
        .post(
            &format!("/summary-assessments/{id}/sign"),
            Some(&y.outgoing.access),
            json!({}),
        )
        .expect(200);
    assert_eq!(signed.body["status"], "signed");
    assert_eq!(
        signed.body["signature"]["signed_by"],
        y.outgoing.id.as_str()
    );
    assert_eq!(signed.body["overall"], "En trygg BT-läkare.");
    // The hash is recomputed from the signed content the answer shows.
    let content = json!({
        "id": signed.body["id"], "enrolment_id": signed.body["enrolment_id"],
        "placement_id": signed.body["placement_id"], "author_id": signed.body["author_id"],
        "judgements": signed.body["judgements"], "overall": signed.body["overall"],
        "supersedes_id": signed.body["supersedes_id"],
    });
    assert_eq!(signed.body["author_id"], y.outgoing.id.as_str());
    assert_eq!(
        signed.body["judgements"].as_array().map(Vec::len),
        Some(1),
        "{}",
        signed.text
    );
    {
        use sha2::Digest;
        assert_eq!(
            signed.body["signature"]["content_hash"],
            hex::encode(sha2::Sha256::digest(content.to_string())),
            "{}",
            signed.text
        );
    }
    assert!(y
        .app
        .smtp
        .wait_for(&y.trainee.email, before)
        .subject()
        .contains("Sammantagen bedömning"));
    y.app
        .patch(
            &format!("/summary-assessments/{id}"),
            Some(&y.outgoing.access),
            json!({"overall": "x"}),
            &[],
        )
        .expect_problem(409, "conflict");
    // Corrected as a new version; both stay visible.
    let fix = y
        .app
        .post(
            &format!("/summary-assessments/{id}/corrections"),
            Some(&y.outgoing.access),
            json!({"overall": "En trygg och engagerad BT-läkare."}),
        )
        .expect(201);
    let fid = fix.body["id"].as_str().expect("id");
    y.app
        .post(
            &format!("/summary-assessments/{fid}/sign"),
            Some(&y.outgoing.access),
            json!({}),
        )
        .expect(200);
    let all = y.app.get(&path, Some(&y.main.access)).expect(200);
    let items = all.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["superseded_by"], fid);
    assert_eq!(items[0]["overall"], "En trygg BT-läkare.");
    y.app
        .get(
            &format!("/summary-assessments/{id}"),
            Some(&y.outsider.access),
        )
        .expect_problem(404, "not-found");
}

/// Sets a talk's stored handover content, as someone with database access would (or as
/// rows written before the content was required look).
fn store_content(app: &TestApp, talk: &str, content: &str) {
    use diesel::prelude::*;
    use eportfolio::schema::talks;
    let pool = eportfolio::db::connect(&app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    diesel::update(talks::table.find(talk))
        .set(talks::content.eq(content))
        .execute(&mut *conn)
        .expect("update");
}

#[test]
fn a_handover_talk_stored_without_content_reads_as_none_and_garbage_is_an_error() {
    let y = year();
    let path = format!("/enrolments/{}/handover-talks", y.enrolment);
    let body = json!({
        "held_on": "2026-12-28", "placement_id": y.first, "next_placement_id": y.second,
        "outgoing_supervisor_id": y.outgoing.id, "incoming_supervisor_id": y.incoming.id,
        "handover": {"delmal_status": [{"code": "BT1", "status": "in_progress", "comment": "Två Mini-CEX"}],
                     "strengths": "Trygg.", "areas_to_develop": "Prioritering.",
                     "plan_next_placement": "CbD."}
    });
    let t = y.app.post(&path, Some(&y.trainee.access), body).expect(201);
    let id = t.body["id"].as_str().expect("id").to_string();

    // JSON null is what the service stores for a talk without handover content.
    store_content(&y.app, &id, "null");
    let read = y
        .app
        .get(&format!("/handover-talks/{id}"), Some(&y.trainee.access))
        .expect(200);
    assert_eq!(read.body["id"], id.as_str());
    assert_eq!(read.body["handover"], serde_json::Value::Null);

    // Anything else that does not parse is an error, never an empty default.
    store_content(&y.app, &id, "{\"delmal_status\": 7");
    y.app
        .get(&format!("/handover-talks/{id}"), Some(&y.trainee.access))
        .expect_problem(500, "internal");
}
