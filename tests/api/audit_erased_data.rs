//! Audit entries without the erased text: entries written since migration 000039 hash a
//! digest of their data (version 2), so an erasure can empty the entries about the
//! records it removes and the chain still verifies, in the service and outside it. What
//! someone with database access might do to such an entry (change its digest, change
//! its data under the digest, empty it without the mark, or empty it with the mark but
//! without an erasure that accounts for it) fails verification.

use diesel::prelude::*;
use eportfolio::schema::audit_log;
use serde_json::{json, Value};

use crate::independent_verifiers::{audit_rows, recompute_chain};
use crate::support::ward::{db, ward, Ward};
use crate::support::TestApp;

fn verify(app: &TestApp) -> eportfolio::audit::Verification {
    eportfolio::audit::verify(&mut db(app)).expect("verify")
}

/// An activity with a reflection, changed once and with a PDF attached; its id.
fn activity(w: &Ward, title: &str) -> String {
    let id = w
        .app
        .post(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
            json!({"kind": "course", "title": title, "start_date": "2026-10-06",
                   "reflection": format!("{title}: första tanken")}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    w.app
        .patch(
            &format!("/activities/{id}"),
            Some(&w.trainee.access),
            json!({"reflection": format!("{title}: andra tanken")}),
            &[],
        )
        .expect(200);
    w.app
        .send_raw(
            "POST",
            &format!("/activities/{id}/attachments?filename={title}.pdf"),
            Some(&w.trainee.access),
            "application/pdf",
            b"%PDF-1.7\n%intyg\n",
        )
        .expect(201);
    id
}

fn signed_assessment(w: &Ward) -> String {
    let a = w
        .app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-14", "assessor_id": w.supervisor.id,
                   "context": {"setting (outpatient, inpatient, emergency)": "emergency"},
                   "delmal": ["BT1"], "trainee_reflection": "Signerad reflektion."}),
        )
        .expect(201);
    let id = a.body["id"].as_str().expect("id").to_string();
    w.app
        .post(
            &format!("/assessments/{id}/sign"),
            Some(&w.supervisor.access),
            json!({"ratings": {"communication": 7}, "entrustment": 4,
                   "feedback_strengths": "Bra.", "feedback_next_steps": "Öva status."}),
        )
        .expect(200);
    id
}

#[test]
fn an_erasure_empties_the_entries_about_what_it_erased_and_the_chain_still_verifies() {
    let w = ward();
    let app = &w.app;
    let gone = activity(&w, "Hjärtsviktskurs");
    let signed = signed_assessment(&w);
    let before = audit_rows(app);
    assert!(
        before.iter().all(|r| r.11 == 2),
        "new entries are version 2"
    );
    // Since plan step 2 no entry holds the text at all, only its keyed digest
    // (`text_digests`); `audit_text_free.rs` follows the digests' keys.
    assert!(before.iter().all(|r| !r.8.contains("Hjärtsviktskurs")));
    assert!(before
        .iter()
        .any(|r| r.6 == gone && r.8.contains("text_digests")));
    let intact = verify(app);
    assert!(intact.intact, "{intact:?}");
    assert_eq!(intact.data_erased, 0);

    let answer = app
        .post(
            &format!("/enrolments/{}/erasure", w.enrolment),
            Some(&w.admin.access),
            json!({}),
        )
        .expect(200);
    assert_eq!(answer.body["erased"]["activities"], 1, "{}", answer.text);

    // The entries about the activity and its file are emptied, marked, and counted by
    // the erasure's own entry; no entry holds the erased text any more.
    let rows = audit_rows(app);
    let emptied: Vec<_> = rows.iter().filter(|r| r.13.is_some()).collect();
    assert!(
        emptied.len() >= 3,
        "created, updated, attached: {}",
        emptied.len()
    );
    assert!(emptied.iter().all(|r| r.8 == "null"));
    assert!(
        rows.iter()
            .filter(|r| r.6 == gone)
            .all(|r| r.13.is_some() && r.8 == "null"),
        "every entry about the erased activity is emptied"
    );
    assert!(
        rows.iter().all(|r| !r.8.contains("Hjärtsviktskurs")),
        "the erased text is gone from the log"
    );
    // What stays keeps its entries whole.
    assert!(rows
        .iter()
        .filter(|r| r.6 == signed)
        .all(|r| r.13.is_none() && r.8 != "null"));
    let erased: Vec<_> = rows.iter().filter(|r| r.4 == "erased").collect();
    assert_eq!(erased.len(), 1);
    let data: Value = serde_json::from_str(&erased[0].8).expect("json");
    assert_eq!(data["audit_entries_emptied"], emptied.len() as i64);

    // The chain verifies, with the emptied entries counted apart; and outside the service.
    let v = verify(app);
    assert!(v.intact, "{v:?}");
    assert_eq!(v.data_erased, emptied.len() as i64);
    assert_eq!(v.entries, rows.len() as i64);
    recompute_chain(&rows).expect("the chain recomputes outside the service");
    // The auditor's command agrees.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eportfolio"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", &app.config.database_url)
        .env("EPORTFOLIO_DATA_DIR", &app.config.data_dir)
        .output()
        .expect("run eportfolio");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("content removed"), "{text}");

    // The enrolment's history still reads, the emptied entries with null data.
    let changes = app
        .get(
            &format!("/enrolments/{}/changes", w.enrolment),
            Some(&w.trainee.access),
        )
        .expect(200);
    assert!(changes.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|c| c["entity_id"] == gone.as_str() && c["data"].is_null()));
}

/// Sets `data` (`Some`) or `data_digest` of one audit row, as someone with database
/// access would.
fn set(app: &TestApp, seq: i64, column: &str, value: Option<&str>) {
    let row = audit_log::table.filter(audit_log::seq.eq(seq));
    let n = match (column, value) {
        ("data", Some(v)) => diesel::update(row)
            .set(audit_log::data.eq(v))
            .execute(&mut *db(app)),
        ("data_digest", v) => diesel::update(row)
            .set(audit_log::data_digest.eq(v))
            .execute(&mut *db(app)),
        _ => panic!("no such change: {column}"),
    }
    .expect("tamper");
    assert_eq!(n, 1);
}

fn set_erased_at(app: &TestApp, seq: i64, at: Option<chrono::NaiveDateTime>) {
    let n = diesel::update(audit_log::table.filter(audit_log::seq.eq(seq)))
        .set(audit_log::data_erased_at.eq(at))
        .execute(&mut *db(app))
        .expect("tamper");
    assert_eq!(n, 1);
}

#[test]
fn a_changed_digest_changed_data_or_unmarked_emptying_each_fail_verification() {
    let w = ward();
    let app = &w.app;
    activity(&w, "Etikseminarium");
    let rows = audit_rows(app);
    let victim = rows
        .iter()
        .find(|r| r.4 == "updated" && r.5 == "activity")
        .expect("the update's entry")
        .clone();
    let seq = victim.0;
    let (data, digest) = (victim.8.clone(), victim.12.clone().expect("digest"));
    let fails = |reason: &str, outside: &str| {
        let v = verify(app);
        assert!(!v.intact, "{v:?}");
        assert_eq!(v.first_broken, Some(seq), "{v:?}");
        assert_eq!(v.reason.as_deref(), Some(reason), "{v:?}");
        assert_eq!(recompute_chain(&audit_rows(app)), Err((seq, outside)));
    };
    let restore = || {
        set(app, seq, "data", Some(&data));
        set(app, seq, "data_digest", Some(&digest));
        set_erased_at(app, seq, None);
        assert!(verify(app).intact);
    };

    // The digest of other data, with that data: the entry's hash no longer matches.
    // (The data holds no text since plan step 2: the forgery changes a fact.)
    let forged = {
        let mut v: Value = serde_json::from_str(&data).expect("json");
        v["start_date"] = json!("2020-01-01");
        v.to_string()
    };
    assert_ne!(forged, data);
    let forged_digest = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(forged.as_bytes()))
    };
    set(app, seq, "data", Some(&forged));
    set(app, seq, "data_digest", Some(&forged_digest));
    fails(
        "the entry's content does not match its hash",
        "content hash",
    );
    restore();

    // The data changed under the intact digest.
    set(app, seq, "data", Some(&forged));
    fails("the entry's data does not match its digest", "data digest");
    restore();

    // The digest removed.
    set(app, seq, "data_digest", None);
    fails(
        "the entry's content does not match its hash",
        "content hash",
    );
    restore();

    // Emptied without the mark of an erasure.
    set(app, seq, "data", Some("null"));
    fails("the entry's data does not match its digest", "data digest");
    restore();

    // Marked as emptied, but the data still there.
    let now = chrono::Utc::now().naive_utc();
    set_erased_at(app, seq, Some(now));
    fails("an emptied entry still holds data", "data digest");
    restore();

    // Emptied and marked, but no erasure or retention run accounts for it.
    set(app, seq, "data", Some("null"));
    set_erased_at(app, seq, Some(now));
    let v = verify(app);
    assert!(!v.intact, "{v:?}");
    assert_eq!(v.first_broken, Some(seq));
    assert_eq!(v.data_erased, 1);
    assert_eq!(
        v.reason.as_deref(),
        Some("1 entries are emptied, but erasures and retention runs account for 0")
    );
    restore();

    // An unknown hash version is no version at all.
    let n = diesel::update(audit_log::table.filter(audit_log::seq.eq(seq)))
        .set(audit_log::hash_version.eq(3))
        .execute(&mut *db(app))
        .expect("tamper");
    assert_eq!(n, 1);
    fails("the entry's hash version is unknown", "hash version");
}
