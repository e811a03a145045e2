//! Audit entries hold no record text (issue 17, docs/privacy.md "Audit entries without
//! record text", step 2): creates and changes record the record's facts as values and
//! its free text only as keyed digests (`text_digests`), each record under its own key
//! in `audit_text_keys`. An erasure deletes the erased records' keys with them; nothing
//! in `audit_log` ever holds their text, and the chain still verifies. (Retention:
//! `privacy_retention.rs` checks that a run deletes its enrolment's keys.)

use diesel::prelude::*;
use eportfolio::schema::{audit_log, audit_text_keys};
use serde_json::{json, Value};

use crate::support::ward::{db, ward};
use crate::support::TestApp;

/// Does any column of any audit entry hold `text`? Searched in the database, as
/// someone reading the table would.
fn log_holds(app: &TestApp, text: &str) -> bool {
    let pattern = format!("%{text}%");
    let n: i64 = audit_log::table
        .filter(
            audit_log::data
                .like(&pattern)
                .or(audit_log::client.like(&pattern))
                .or(audit_log::entity_id.like(&pattern)),
        )
        .count()
        .get_result(&mut *db(app))
        .expect("search");
    n > 0
}

fn keys_of(app: &TestApp, record: &str) -> i64 {
    audit_text_keys::table
        .filter(audit_text_keys::record_id.eq(record))
        .count()
        .get_result(&mut *db(app))
        .expect("keys")
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn entries_hold_digests_not_text_and_an_erasure_takes_the_keys_with_the_records() {
    let w = ward();
    let app = &w.app;
    // Free text in every kind of field: titles, reflections, file names, feedback, goals.
    let activity = id_of(
        &app.post(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
            json!({"kind": "course", "title": "Zebrakurs", "start_date": "2026-10-06",
                   "reflection": "Zebratanke ett"}),
        )
        .expect(201)
        .body,
    );
    app.patch(
        &format!("/activities/{activity}"),
        Some(&w.trainee.access),
        json!({"reflection": "Zebratanke två"}),
        &[],
    )
    .expect(200);
    let file = id_of(
        &app.send_raw(
            "POST",
            &format!("/activities/{activity}/attachments?filename=zebraintyg.pdf"),
            Some(&w.trainee.access),
            "application/pdf",
            b"%PDF-1.7\n%intyg\n",
        )
        .expect(201)
        .body,
    );
    let draft = id_of(
        &app.post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-14",
                   "assessor_id": w.supervisor.id, "delmal": ["BT1"],
                   "trainee_reflection": "Zebrareflektion utkast"}),
        )
        .expect(201)
        .body,
    );
    let signed = id_of(
        &app.post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-15",
                   "assessor_id": w.supervisor.id, "delmal": ["BT1"],
                   "trainee_reflection": "Zebrareflektion signerad"}),
        )
        .expect(201)
        .body,
    );
    app.post(
        &format!("/assessments/{signed}/sign"),
        Some(&w.supervisor.access),
        json!({"ratings": {"communication": 7}, "entrustment": 4,
               "feedback_strengths": "Zebrastyrka", "feedback_next_steps": "Zebrasteg"}),
    )
    .expect(200);
    let goal = id_of(
        &app.post(
            &format!("/enrolments/{}/study-plan-goals", w.enrolment),
            Some(&w.trainee.access),
            json!({"goal": "Zebramål", "delmal": ["BT9"]}),
        )
        .expect(201)
        .body,
    );

    // No entry holds any of the texts; each record has its key.
    let texts = [
        "Zebrakurs",
        "Zebratanke",
        "zebraintyg",
        "Zebrareflektion",
        "Zebrastyrka",
        "Zebrasteg",
        "Zebramål",
    ];
    for text in texts {
        assert!(!log_holds(app, text), "{text} is in the audit log");
    }
    for record in [&activity, &file, &draft, &signed, &goal] {
        assert_eq!(keys_of(app, record), 1, "{record}");
    }

    // The changes feed still says what changed: the facts as values, the text fields by
    // name with a digest; the reflection's change shows as a changed digest.
    let feed = app
        .get(
            &format!("/enrolments/{}/changes?limit=200", w.enrolment),
            Some(&w.trainee.access),
        )
        .expect(200);
    let items = feed.body["items"].as_array().expect("items");
    let of_activity: Vec<&Value> = items
        .iter()
        .filter(|c| c["entity_id"] == activity.as_str() && c["entity"] == "activity")
        .collect();
    assert_eq!(of_activity.len(), 2, "created, updated");
    let (created, updated) = (&of_activity[0]["data"], &of_activity[1]["data"]);
    assert_eq!(created["start_date"], "2026-10-06");
    assert_eq!(created["kind"], "course");
    let digest = |d: &Value, f: &str| d["text_digests"][f].as_str().expect("digest").to_string();
    assert_eq!(digest(created, "title"), digest(updated, "title"));
    assert_ne!(digest(created, "reflection"), digest(updated, "reflection"));
    assert!(items.iter().any(|c| c["entity"] == "study_plan_goal"
        && c["data"]["status"] == "planned"
        && c["data"]["text_digests"]["goal"].is_string()));

    // The erasure removes what no signed record depends on, and the keys with it.
    let answer = app
        .post(
            &format!("/enrolments/{}/erasure", w.enrolment),
            Some(&w.admin.access),
            json!({}),
        )
        .expect(200);
    assert_eq!(answer.body["erased"]["activities"], 1, "{}", answer.text);
    for record in [&activity, &file] {
        assert_eq!(keys_of(app, record), 0, "{record}'s key is gone");
    }
    // What stays keeps its key (its digests still match the stored text).
    assert_eq!(keys_of(app, &signed), 1);
    for text in texts {
        assert!(!log_holds(app, text), "{text} is in the audit log");
    }
    let v = eportfolio::audit::verify(&mut db(app)).expect("verify");
    assert!(v.intact, "{v:?}");
    assert!(v.data_erased >= 3, "{v:?}");
}
