//! Issue 14, item 11: the supervision the pilot asked for (seed 002, figur 3). The
//! mid-placement talk with the main supervisor, the handover at a placement change and
//! the summary assessment after a placement are flagged when missing, by Swedish days;
//! supervisors check in without the trainee, who never sees it; the daily digest
//! reminds of overdue supervision, signatures waiting more than 7 days and a placement
//! change within 14 days without a planned handover.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::pace_world::{id, utc, World};
use crate::support::TestUser;

struct Bt {
    w: World,
    trainee: TestUser,
    main: TestUser,
    tjg: TestUser,
    enrolment: String,
    first: String,
    second: String,
}

/// A BT year: allmänmedicin 5 January - 4 May with the main supervisor as placement
/// supervisor, akut 5 May - 4 September (midpoint 5 July) with another. No timer of the
/// app's own: the digest rounds below are the only ones.
fn bt(tag: &str) -> Bt {
    let w = crate::pace_world::world_with(|c| {
        c.access_token_ttl = std::time::Duration::from_secs(400 * 24 * 3600);
        c.housekeeping_interval = std::time::Duration::ZERO;
    });
    let trainee = w.person(&format!("bt.{tag}@sll.se"), "trainee");
    let main = w.person(&format!("hhl.{tag}@sll.se"), "supervisor");
    let tjg = w.person(&format!("tjg.{tag}@sll.se"), "supervisor");
    let e = w.enrol(
        &trainee,
        &main,
        "2026-01-05",
        "2027-01-04",
        json!({"placements": [
            {"placement_type": "allmanmedicin", "start_date": "2026-01-05", "end_date": "2026-05-04", "supervisor_id": main.id},
            {"placement_type": "akut", "start_date": "2026-05-05", "end_date": "2026-09-04", "supervisor_id": tjg.id}
        ]}),
    );
    Bt {
        enrolment: id(&e),
        first: id(&e["placements"][0]),
        second: id(&e["placements"][1]),
        w,
        trainee,
        main,
        tjg,
    }
}

fn flags(b: &Bt) -> Vec<(String, String)> {
    let p = b.w.progress(&b.enrolment, &b.trainee);
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

fn flagged(b: &Bt, code: &str, placement: &str) -> bool {
    flags(b).contains(&(code.to_string(), placement.to_string()))
}

#[test]
fn missing_talks_and_summaries_are_flagged_by_swedish_days_until_recorded() {
    let b = bt("flag");
    // 23:59 on 4 May in Stockholm: placement 1 has not ended, placement 2 not begun.
    b.w.app.clock.set(utc(2026, 5, 4, 21, 59));
    assert!(flags(&b).is_empty(), "{:?}", flags(&b));
    // 00:30 on 5 May (22:30 UTC on the 4th): the change has happened without a handover,
    // and placement 1 has ended without a summary assessment.
    b.w.app.clock.set(utc(2026, 5, 4, 22, 30));
    assert!(
        flagged(&b, "handover_missing", &b.second),
        "{:?}",
        flags(&b)
    );
    assert!(flagged(&b, "summary_assessment_missing", &b.first));
    let p = b.w.progress(&b.enrolment, &b.trainee);
    let f = &p["pace"]["supervision_flags"][0];
    assert_eq!(f["since"], "2026-05-05", "{p}");
    // Visible to the director in the cohort overview, and filterable there.
    assert_eq!(
        b.w.cohort("?supervision_flags=true"),
        vec![b.enrolment.clone()]
    );
    assert!(b.w.cohort("?supervision_flags=false").is_empty());
    let rows =
        b.w.app
            .get("/cohort-overview", Some(&b.w.director.access))
            .expect(200)
            .body;
    let codes = &rows["items"][0]["supervision_flags"];
    assert!(
        codes
            .as_array()
            .expect("codes")
            .contains(&json!("handover_missing")),
        "{rows}"
    );

    // The trainee records the handover (held 6 May) and the main supervisor, placement
    // 1's supervisor, signs the summary assessment.
    b.w.app.clock.set(utc(2026, 5, 6, 12, 0));
    b.w.app
        .post(
            &format!("/enrolments/{}/handover-talks", b.enrolment),
            Some(&b.trainee.access),
            json!({"held_on": "2026-05-06", "placement_id": b.first, "next_placement_id": b.second,
                   "outgoing_supervisor_id": b.main.id, "incoming_supervisor_id": b.tjg.id}),
        )
        .expect(201);
    let s =
        b.w.app
            .post(
                &format!("/enrolments/{}/summary-assessments", b.enrolment),
                Some(&b.main.access),
                json!({"placement_id": b.first,
                   "judgements": [{"code": "BT1", "judgement": "progressing"}]}),
            )
            .expect(201);
    b.w.app
        .patch(
            &format!("/summary-assessments/{}", id(&s.body)),
            Some(&b.main.access),
            json!({"overall": "Trygg i allmänmedicin."}),
            &[],
        )
        .expect(200);
    b.w.app
        .post(
            &format!("/summary-assessments/{}/sign", id(&s.body)),
            Some(&b.main.access),
            json!({}),
        )
        .expect(200);
    assert!(flags(&b).is_empty(), "{:?}", flags(&b));

    // Placement 2's midpoint is 5 July: at 23:59 that day nothing is missing yet, at
    // 00:30 on the 6th the talk with the main supervisor is.
    b.w.app.clock.set(utc(2026, 7, 5, 21, 59));
    assert!(!flagged(&b, "mid_placement_talk_missing", &b.second));
    b.w.app.clock.set(utc(2026, 7, 5, 22, 30));
    assert!(flagged(&b, "mid_placement_talk_missing", &b.second));
    // A session with the placement supervisor alone is not that talk.
    b.w.app
        .post(
            &format!("/enrolments/{}/supervision-sessions", b.enrolment),
            Some(&b.tjg.access),
            json!({"held_on": "2026-07-06", "placement_id": b.second, "topics": ["Akuta flöden"]}),
        )
        .expect(201);
    assert!(flagged(&b, "mid_placement_talk_missing", &b.second));
    // With the main supervisor, it is.
    b.w.app
        .post(
            &format!("/enrolments/{}/supervision-sessions", b.enrolment),
            Some(&b.main.access),
            json!({"held_on": "2026-07-06", "placement_id": b.second, "topics": ["Halvtid på akuten"]}),
        )
        .expect(201);
    assert!(!flagged(&b, "mid_placement_talk_missing", &b.second));
    // The flags stand beside the pace; the supervision sessions' own rule is unchanged.
    let p = b.w.progress(&b.enrolment, &b.trainee);
    assert!(p["pace"]["supervision_flags"]
        .as_array()
        .expect("flags")
        .is_empty());
}

#[test]
fn supervisors_check_in_without_the_trainee_who_never_sees_it() {
    let b = bt("avst");
    let outsider = b.w.person("annan.avst@sll.se", "supervisor");
    b.w.app.clock.set(utc(2026, 6, 1, 8, 0));
    let path = format!("/enrolments/{}/supervisor-check-ins", b.enrolment);
    let body = json!({"held_on": "2026-06-01", "with_supervisor_id": b.main.id,
                      "notes": "Behöver mer stöd i prioritering.", "agreed_actions": "Extra medsittning."});
    // Not the trainee, not a supervisor of someone else's trainee.
    b.w.app
        .post(&path, Some(&b.trainee.access), body.clone())
        .expect_problem(403, "forbidden");
    b.w.app
        .post(&path, Some(&outsider.access), body.clone())
        .expect_problem(404, "not-found");
    // It is no evidence: it links to no delmål.
    let mut with_delmal = body.clone();
    with_delmal["delmal"] = json!(["BT1"]);
    b.w.app
        .post(&path, Some(&b.tjg.access), with_delmal)
        .expect_problem(422, "validation");
    // Two placement supervisors alone do not make one: the main supervisor takes part.
    b.w.app
        .post(
            &path,
            Some(&b.tjg.access),
            json!({"held_on": "2026-06-01", "with_supervisor_id": b.trainee.id}),
        )
        .expect_problem(422, "validation");
    let c =
        b.w.app
            .post(&path, Some(&b.tjg.access), body)
            .expect(201)
            .body;
    let check_in = id(&c);
    assert_eq!(c["kind"], "supervisor_check_in");
    assert_eq!(c["participants"].as_array().expect("p").len(), 2, "{c}");
    assert!(!c["participants"]
        .as_array()
        .expect("p")
        .iter()
        .any(|p| p["user_id"] == b.trainee.id.as_str()));
    // The trainee: not found, not listed, not in the changes feed.
    let one = format!("/supervisor-check-ins/{check_in}");
    b.w.app
        .get(&one, Some(&b.trainee.access))
        .expect_problem(404, "not-found");
    b.w.app
        .post(
            &format!("{one}/confirm"),
            Some(&b.trainee.access),
            json!({}),
        )
        .expect_problem(404, "not-found");
    b.w.app
        .get(&path, Some(&b.trainee.access))
        .expect_problem(403, "forbidden");
    let changes =
        b.w.app
            .get(
                &format!("/enrolments/{}/changes", b.enrolment),
                Some(&b.trainee.access),
            )
            .expect(200)
            .text;
    assert!(!changes.contains(&check_in), "{changes}");
    assert!(!changes.contains("prioritering"), "{changes}");
    // Nor in the progress evidence or the checklist's supervision count.
    let p = b.w.progress(&b.enrolment, &b.trainee);
    assert_eq!(p["pace"]["supervision_held"], 0, "{p}");
    // An outsider: not found.
    b.w.app
        .get(&one, Some(&outsider.access))
        .expect_problem(404, "not-found");
    b.w.app
        .get(&path, Some(&outsider.access))
        .expect_problem(404, "not-found");
    // The main supervisor reads and confirms; the director lists it.
    b.w.app.get(&one, Some(&b.main.access)).expect(200);
    let done =
        b.w.app
            .post(&format!("{one}/confirm"), Some(&b.main.access), json!({}))
            .expect(200)
            .body;
    assert_eq!(done["status"], "confirmed");
    let listed =
        b.w.app
            .get(&path, Some(&b.w.director.access))
            .expect(200)
            .body;
    assert_eq!(listed["items"][0]["id"], check_in.as_str(), "{listed}");
}

/// One digest round of the server's housekeeping at `now`; how many digests it queued.
fn digest_round(w: &World, now: DateTime<Utc>) -> usize {
    let keyring =
        std::sync::Arc::new(eportfolio::secrets::Keyring::load(&w.app.dir).expect("keys"));
    let pool = eportfolio::db::connect(&w.app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    eportfolio::db::write_tx(&mut conn, |c| {
        eportfolio::progress::reminders::queue_due(c, now)?;
        eportfolio::notifications::send_due_digests(c, &keyring, now)
    })
    .expect("digest round")
}

/// A digest round at `now` (the app's clock moved there, so the outbox sends what it
/// queues); how many digests it queued, and the bodies of the new mails to each of
/// `whom` (empty when none came).
fn round(w: &World, now: DateTime<Utc>, whom: &[&TestUser]) -> (usize, Vec<String>) {
    w.app.clock.set(now);
    let before: Vec<usize> = whom.iter().map(|u| w.app.smtp.count_to(&u.email)).collect();
    let n = digest_round(w, now);
    let bodies = whom
        .iter()
        .zip(before)
        .map(|(u, k)| {
            if n == 0 {
                return String::new();
            }
            w.app.smtp.wait_for(&u.email, k).body_text()
        })
        .collect();
    (n, bodies)
}

fn digest_mode(w: &World, who: &TestUser) {
    w.app
        .patch(
            "/me",
            Some(&who.access),
            json!({"notification_mode": "daily_digest"}),
            &[],
        )
        .expect(200);
}

#[test]
fn the_digest_reminds_of_overdue_supervision_waiting_signatures_and_unplanned_handovers() {
    let b = bt("pmn");
    digest_mode(&b.w, &b.trainee);
    digest_mode(&b.w, &b.main);
    // 9 April: a signature request to the main supervisor, and a supervision session.
    b.w.app.clock.set(utc(2026, 4, 9, 8, 0));
    let asked: Value =
        b.w.app
            .post(
                &format!("/enrolments/{}/assessments", b.enrolment),
                Some(&b.trainee.access),
                json!({"instrument": "mini_cex", "performed_on": "2026-04-09",
                   "assessor_id": b.main.id, "delmal": ["BT1"]}),
            )
            .expect(201)
            .body;
    assert_eq!(asked["status"], "awaiting_signature", "{asked}");
    b.w.app
        .post(
            &format!("/enrolments/{}/supervision-sessions", b.enrolment),
            Some(&b.main.access),
            json!({"held_on": "2026-04-09", "placement_id": b.first, "topics": ["Veckan"]}),
        )
        .expect(201);
    // 06:30 on 16 April: seven days, not more; allmänmedicin's 7-day cadence is not yet
    // passed; the change on 5 May is 19 days ahead. The request itself is in the main
    // supervisor's digest, the session to confirm in the trainee's.
    let (n, bodies) = round(&b.w, utc(2026, 4, 16, 4, 30), &[&b.main, &b.trainee]);
    assert_eq!(n, 2);
    assert!(!bodies[0].contains("more than 7 days"), "{bodies:?}");
    assert!(!bodies[0].contains("No supervision session"), "{bodies:?}");
    assert!(!bodies[1].contains("changes placement"), "{bodies:?}");
    // 06:30 on 21 April: all three. The signature has waited 12 days, supervision is 12
    // days old, and the change is 14 days ahead with no handover planned.
    let (n, bodies) = round(&b.w, utc(2026, 4, 21, 4, 30), &[&b.main, &b.trainee]);
    assert_eq!(n, 2);
    let body = &bodies[0];
    assert!(body.contains("for more than 7 days"), "{body}");
    assert!(
        body.contains("No supervision session for 12 days"),
        "{body}"
    );
    assert!(body.contains("changes placement on 2026-05-05"), "{body}");
    let body = &bodies[1];
    assert!(body.contains("changes placement on 2026-05-05"), "{body}");
    assert!(
        body.contains("No supervision session for 12 days"),
        "{body}"
    );
    assert!(!body.contains("your signature"), "{body}");
    // Once a Swedish day: a later round the same day queues nothing more.
    assert_eq!(digest_round(&b.w, utc(2026, 4, 21, 20, 0)), 0);
    // The handover planned (to be held 4 May) and the assessment signed: the next day
    // reminds only of the supervision.
    b.w.app.clock.set(utc(2026, 4, 21, 21, 0));
    b.w.app
        .post(
            &format!("/enrolments/{}/handover-talks", b.enrolment),
            Some(&b.trainee.access),
            json!({"held_on": "2026-05-04", "placement_id": b.first, "next_placement_id": b.second,
                   "outgoing_supervisor_id": b.main.id, "incoming_supervisor_id": b.tjg.id}),
        )
        .expect(201);
    b.w.app
        .post(
            &format!("/assessments/{}/sign", id(&asked)),
            Some(&b.main.access),
            json!({"ratings": {"communication": 7}, "entrustment": 4,
                   "feedback_strengths": "Strukturerad.", "feedback_next_steps": "Status."}),
        )
        .expect(200);
    let (n, bodies) = round(&b.w, utc(2026, 4, 22, 4, 30), &[&b.main, &b.trainee]);
    assert_eq!(n, 2);
    let body = &bodies[0];
    assert!(
        body.contains("No supervision session for 13 days"),
        "{body}"
    );
    assert!(!body.contains("changes placement"), "{body}");
    assert!(!body.contains("more than 7 days"), "{body}");
    // The placement supervisor reads mail at once: no digest, no reminders.
    assert!(b
        .w
        .app
        .smtp
        .messages()
        .iter()
        .filter(|m| m.to.contains(&b.tjg.email))
        .all(|m| !m.body_text().contains("changes placement")));
}
