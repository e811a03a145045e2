//! Version-1 entries (written before migration 000039, hashing their data) of an erased
//! record: redacted as docs/privacy.md step 4 says. A signed checkpoint is logged first;
//! the entry keeps its hash and link, its data goes; a version-2 `redacted` entry names
//! its seq, hash and the SHA-256 of its data as it was. The chain verifies, in the
//! service and recomputed outside it, with the redacted entries counted apart ("content
//! removed, link verified"); a checkpoint taken before still verifies; an entry emptied
//! without a redaction naming it fails.

use diesel::prelude::*;
use eportfolio::schema::audit_log;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::independent_verifiers::{
    audit_rows, entry_hash, recompute_chain, take_checkpoint, verify_against,
};
use crate::support::ward::{db, ward};
use crate::support::TestApp;

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Rewrites the whole chain as it stood before migration 000039: every entry version 1,
/// hashing its data, and the entries about `record` holding its text as they did then.
fn make_version_one(app: &TestApp, record: &str, old_text: &str) {
    let rows = audit_rows(app);
    let mut conn = db(app);
    let mut prev = "0".repeat(64);
    for r in rows {
        let mut r = r.clone();
        r.9 = prev.clone();
        r.11 = 1;
        r.12 = None;
        if r.6 == record {
            let mut data: Value = serde_json::from_str(&r.8).expect("json");
            data["title"] = json!(old_text);
            r.8 = data.to_string();
        }
        r.10 = entry_hash(&prev, &r);
        diesel::update(audit_log::table.filter(audit_log::seq.eq(r.0)))
            .set((
                audit_log::data.eq(&r.8),
                audit_log::prev_hash.eq(&r.9),
                audit_log::hash.eq(&r.10),
                audit_log::hash_version.eq(1),
                audit_log::data_digest.eq(None::<String>),
            ))
            .execute(&mut *conn)
            .expect("rewrite as version 1");
        prev = r.10;
    }
}

#[test]
fn version_one_entries_of_an_erased_record_are_redacted_and_the_chain_still_verifies() {
    let w = ward();
    let app = &w.app;
    let gone = app
        .post(
            &format!("/enrolments/{}/activities", w.enrolment),
            Some(&w.trainee.access),
            json!({"kind": "course", "title": "Kurs", "start_date": "2026-10-06"}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    app.patch(
        &format!("/activities/{gone}"),
        Some(&w.trainee.access),
        json!({"reflection": "Senare"}),
        &[],
    )
    .expect(200);
    let kept = app
        .post(
            &format!("/enrolments/{}/assessments", w.enrolment),
            Some(&w.trainee.access),
            json!({"instrument": "mini_cex", "performed_on": "2026-10-14",
                   "assessor_id": w.supervisor.id, "delmal": ["BT1"]}),
        )
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_string();
    app.post(
        &format!("/assessments/{kept}/sign"),
        Some(&w.supervisor.access),
        json!({"ratings": {"communication": 7}, "entrustment": 4,
               "feedback_strengths": "Bra.", "feedback_next_steps": "Öva."}),
    )
    .expect(200);

    // The history as an old installation holds it: version 1, with the text.
    make_version_one(app, &gone, "Gammal kurstext");
    let before = audit_rows(app);
    assert!(before.iter().all(|r| r.11 == 1));
    let old: Vec<_> = before.iter().filter(|r| r.6 == gone).cloned().collect();
    assert_eq!(old.len(), 2, "created, updated");
    assert!(old.iter().all(|r| r.8.contains("Gammal kurstext")));
    recompute_chain(&before).expect("the version-1 chain recomputes");
    let v = eportfolio::audit::verify(&mut db(app)).expect("verify");
    assert!(v.intact && v.content_removed == 0, "{v:?}");
    // A checkpoint held outside, from before the erasure.
    let old_checkpoint = take_checkpoint(app).to_string();

    app.post(
        &format!("/enrolments/{}/erasure", w.enrolment),
        Some(&w.admin.access),
        json!({}),
    )
    .expect(200);

    // The old entries keep their hash and link, lose their data, and each has a
    // `redacted` entry naming it, with the SHA-256 of the data as it was and the
    // checkpoint taken first (of the head before the redaction).
    let rows = audit_rows(app);
    assert!(rows.iter().all(|r| !r.8.contains("Gammal kurstext")));
    let redactions: Vec<Value> = rows
        .iter()
        .filter(|r| r.4 == "redacted")
        .map(|r| {
            assert_eq!((r.11, r.5.as_str()), (2, "audit_entry"));
            serde_json::from_str(&r.8).expect("json")
        })
        .collect();
    assert_eq!(redactions.len(), 2, "{redactions:?}");
    for o in &old {
        let now = &rows[(o.0 - 1) as usize];
        assert_eq!((&now.9, &now.10), (&o.9, &o.10), "link and hash kept");
        assert_eq!(now.8, "null");
        assert!(now.13.is_some());
        let named = redactions
            .iter()
            .find(|d| d["seq"] == o.0)
            .expect("a redaction naming it");
        assert_eq!(named["hash"], o.10.as_str());
        assert_eq!(named["data_sha256"], sha256_hex(&o.8));
        assert_eq!(named["checkpoint"]["seq"], before.len() as i64);
        assert_eq!(
            named["checkpoint"]["hash"],
            before.last().expect("head").10.as_str()
        );
    }
    // The signed assessment stays, its entries whole.
    assert!(rows
        .iter()
        .filter(|r| r.6 == kept)
        .all(|r| r.13.is_none() && r.8 != "null"));

    // Verified by the service, counted apart, and outside it.
    let v = eportfolio::audit::verify(&mut db(app)).expect("verify");
    assert!(v.intact, "{v:?}");
    assert_eq!(v.content_removed, 2, "{v:?}");
    assert_eq!(v.data_erased, 0, "{v:?}");
    recompute_chain(&rows).expect("the redacted chain recomputes outside the service");
    // The checkpoint from before the redaction still holds.
    let (ok, out) = verify_against(app, &old_checkpoint);
    assert!(ok, "{out}");
    assert!(out.contains("holds"), "{out}");
    assert!(out.contains("content removed, link verified"), "{out}");

    // An old entry emptied without a redaction naming it fails.
    let victim = rows
        .iter()
        .find(|r| r.6 == kept && r.11 == 1)
        .expect("an entry of the kept assessment")
        .0;
    let n = diesel::update(audit_log::table.filter(audit_log::seq.eq(victim)))
        .set((
            audit_log::data.eq("null"),
            audit_log::data_erased_at.eq(Some(chrono::Utc::now().naive_utc())),
        ))
        .execute(&mut *db(app))
        .expect("tamper");
    assert_eq!(n, 1);
    let v = eportfolio::audit::verify(&mut db(app)).expect("verify");
    assert!(!v.intact, "{v:?}");
    assert_eq!(v.first_broken, Some(victim));
    assert_eq!(
        v.reason.as_deref(),
        Some("a version-1 entry was emptied, but no redaction names it")
    );
    assert_eq!(
        recompute_chain(&audit_rows(app)),
        Err((victim, "redaction"))
    );
}
