//! Issue 14, item 6: "today" is the Swedish calendar day (Europe/Stockholm). A request at
//! 00:30 Swedish time belongs to that day, not to the UTC day before; supervision is
//! overdue by Swedish days; the daily digest goes out from 06:00 Swedish time, once a
//! Swedish day, also on the days the clocks change (2026-03-29 and 2026-10-25).

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::pace_world::{id, long_world, utc, World};
use crate::support::TestUser;

fn as_of(w: &World, enrolment: &str, who: &TestUser) -> String {
    let t = w
        .app
        .get(
            &format!("/enrolments/{enrolment}/time-served"),
            Some(&who.access),
        )
        .expect(200)
        .body;
    t["as_of"]
        .as_str()
        .unwrap_or_else(|| panic!("{t}"))
        .to_string()
}

#[test]
fn today_is_the_swedish_day_around_midnight_and_across_the_clock_changes() {
    let w = long_world();
    let trainee = w.person("natt@sll.se", "trainee");
    let main = w.person("hhl.natt@sll.se", "supervisor");
    let e = w.enrol(
        &trainee,
        &main,
        "2026-01-01",
        "2026-12-31",
        json!({
        "placements": [{"placement_type": "allmanmedicin", "start_date": "2026-01-01",
                        "end_date": "2026-04-30", "supervisor_id": main.id}]}),
    );
    let enrolment = id(&e);
    let cases = [
        // Winter (UTC+1): 23:30 UTC is 00:30 the next Swedish day.
        (utc(2026, 1, 14, 22, 59), "2026-01-14"),
        (utc(2026, 1, 14, 23, 30), "2026-01-15"),
        // Summer time begins on 29 March at 02:00 (01:00 UTC).
        (utc(2026, 3, 28, 23, 30), "2026-03-29"),
        (utc(2026, 3, 29, 21, 59), "2026-03-29"),
        (utc(2026, 3, 29, 22, 30), "2026-03-30"),
        // Summer (UTC+2): 22:30 UTC is 00:30 the next Swedish day.
        (utc(2026, 6, 14, 22, 30), "2026-06-15"),
        // Summer time ends on 25 October at 03:00 (01:00 UTC): that day has 25 hours.
        (utc(2026, 10, 24, 22, 30), "2026-10-25"),
        (utc(2026, 10, 25, 22, 59), "2026-10-25"),
        (utc(2026, 10, 25, 23, 0), "2026-10-26"),
    ];
    for (now, day) in cases {
        w.app.clock.set(now);
        assert_eq!(as_of(&w, &enrolment, &trainee), day, "at {now}");
    }
}

#[test]
fn a_session_at_half_past_midnight_counts_that_day_and_supervision_is_overdue_by_swedish_days() {
    let w = long_world();
    let trainee = w.person("tidig@sll.se", "trainee");
    let main = w.person("hhl.tidig@sll.se", "supervisor");
    let e = w.enrol(
        &trainee,
        &main,
        "2026-01-01",
        "2026-12-31",
        json!({
        "placements": [{"placement_type": "allmanmedicin", "start_date": "2026-01-01",
                        "end_date": "2026-04-30", "supervisor_id": main.id}]}),
    );
    let enrolment = id(&e);
    let placement = id(&e["placements"][0]);
    // 00:30 on 15 January in Stockholm: the session held "today" is held.
    w.app.clock.set(utc(2026, 1, 14, 23, 30));
    w.app
        .post(
            &format!("/enrolments/{enrolment}/supervision-sessions"),
            Some(&main.access),
            json!({"held_on": "2026-01-15", "placement_id": placement, "topics": ["Veckans patienter"]}),
        )
        .expect(201);
    let p = w.progress(&enrolment, &trainee);
    assert_eq!(p["as_of"], "2026-01-15", "{p}");
    assert_eq!(p["pace"]["last_supervision_on"], "2026-01-15", "{p}");
    assert_eq!(p["pace"]["days_since_supervision"], 0, "{p}");
    // Allmänmedicin wants a session every 7 days: at 00:30 on 23 January (23:30 UTC on
    // the 22nd) eight Swedish days have passed, and the session is overdue.
    w.app.clock.set(utc(2026, 1, 22, 22, 30));
    let p = w.progress(&enrolment, &trainee);
    assert_eq!(p["pace"]["supervision_overdue"], false, "{p}");
    w.app.clock.set(utc(2026, 1, 22, 23, 30));
    let p = w.progress(&enrolment, &trainee);
    assert_eq!(p["pace"]["days_since_supervision"], 8, "{p}");
    assert_eq!(p["pace"]["supervision_overdue"], true, "{p}");
}

/// One digest round of the server's housekeeping at `now`; how many digests it queued.
fn digest_round(w: &World, now: DateTime<Utc>) -> usize {
    let keyring =
        std::sync::Arc::new(eportfolio::secrets::Keyring::load(&w.app.dir).expect("keys"));
    let pool = eportfolio::db::connect(&w.app.config.database_url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    eportfolio::db::write_tx(&mut conn, |c| {
        eportfolio::notifications::send_due_digests(c, &keyring, now)
    })
    .expect("digest round")
}

#[test]
fn the_daily_digest_goes_out_from_six_swedish_time_once_a_swedish_day() {
    let w = long_world_without_housekeeping();
    let trainee = w.person("digest.st@sll.se", "trainee");
    let main = w.person("hhl.digest@sll.se", "supervisor");
    w.app
        .patch(
            "/me",
            Some(&main.access),
            json!({"notification_mode": "daily_digest"}),
            &[],
        )
        .expect(200);
    let e = w.enrol(&trainee, &main, "2026-01-01", "2026-12-31", json!({}));
    let enrolment = id(&e);
    // A signature request: a notification to the supervisor, held for the digest.
    let ask = |w: &World| {
        w.app
            .post(
                &format!("/enrolments/{enrolment}/assessments"),
                Some(&trainee.access),
                json!({"instrument": "mini_cex", "performed_on": "2026-01-10",
                       "assessor_id": main.id, "delmal": ["BT1"]}),
            )
            .expect(201);
    };
    ask(&w);
    let queued = w.app.mails_queued_to(&main.email);
    // The day summer time begins: 04:30 UTC is 06:30 Swedish time, past the digest hour
    // (in UTC it is not yet six).
    assert_eq!(
        digest_round(&w, utc(2026, 3, 29, 3, 50)),
        0,
        "05:50 Swedish time"
    );
    assert_eq!(
        digest_round(&w, utc(2026, 3, 29, 4, 30)),
        1,
        "06:30 Swedish time"
    );
    assert_eq!(w.app.mails_queued_to(&main.email), queued + 1);
    ask(&w);
    // Later the same Swedish day, and after midnight before six: nothing.
    assert_eq!(
        digest_round(&w, utc(2026, 3, 29, 21, 30)),
        0,
        "23:30 on the 29th"
    );
    assert_eq!(
        digest_round(&w, utc(2026, 3, 29, 22, 30)),
        0,
        "00:30 on the 30th"
    );
    assert_eq!(
        digest_round(&w, utc(2026, 3, 30, 4, 5)),
        1,
        "06:05 on the 30th"
    );
    // The day summer time ends (25 hours): one digest, from 06:00 CET (05:00 UTC).
    ask(&w);
    assert_eq!(
        digest_round(&w, utc(2026, 10, 25, 4, 30)),
        0,
        "05:30 Swedish time"
    );
    assert_eq!(
        digest_round(&w, utc(2026, 10, 25, 5, 0)),
        1,
        "06:00 Swedish time"
    );
    ask(&w);
    assert_eq!(
        digest_round(&w, utc(2026, 10, 25, 22, 59)),
        0,
        "23:59 on the 25th"
    );
    assert_eq!(
        digest_round(&w, utc(2026, 10, 26, 5, 0)),
        1,
        "06:00 on the 26th"
    );
}

fn long_world_without_housekeeping() -> World {
    crate::pace_world::world_with(|c| {
        c.access_token_ttl = std::time::Duration::from_secs(400 * 24 * 3600);
        c.housekeeping_interval = std::time::Duration::ZERO;
    })
}
