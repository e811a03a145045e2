//! Swedish calendar days of UTC instants: around midnight, and across the changes to
//! and from summer time (2026-03-29 and 2026-10-25).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::{day_of, local_hour, start_of_day, to_millis, Clock, SystemClock};

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("a valid test instant")
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("a valid test date")
}

#[test]
fn half_past_midnight_in_winter_is_the_next_swedish_day() {
    // 23:30 UTC on 14 January is 00:30 on 15 January in Stockholm (UTC+1).
    assert_eq!(day_of(utc(2026, 1, 14, 23, 30)), d(2026, 1, 15));
    assert_eq!(day_of(utc(2026, 1, 14, 22, 59)), d(2026, 1, 14));
    assert_eq!(day_of(utc(2026, 1, 14, 23, 0)), d(2026, 1, 15));
}

#[test]
fn half_past_midnight_in_summer_is_the_next_swedish_day() {
    // 22:30 UTC on 14 June is 00:30 on 15 June (UTC+2).
    assert_eq!(day_of(utc(2026, 6, 14, 22, 30)), d(2026, 6, 15));
    assert_eq!(day_of(utc(2026, 6, 14, 21, 59)), d(2026, 6, 14));
}

#[test]
fn the_day_summer_time_begins_has_23_hours() {
    let start = start_of_day(d(2026, 3, 29));
    let next = start_of_day(d(2026, 3, 30));
    assert_eq!(start, utc(2026, 3, 28, 23, 0));
    assert_eq!(next, utc(2026, 3, 29, 22, 0));
    assert_eq!((next - start).num_hours(), 23);
    // 01:30 UTC is 03:30 summer time: still 29 March.
    assert_eq!(day_of(utc(2026, 3, 29, 1, 30)), d(2026, 3, 29));
    assert_eq!(local_hour(utc(2026, 3, 29, 0, 59)), 1);
    assert_eq!(local_hour(utc(2026, 3, 29, 1, 0)), 3);
}

#[test]
fn the_day_summer_time_ends_has_25_hours() {
    let start = start_of_day(d(2026, 10, 25));
    let next = start_of_day(d(2026, 10, 26));
    assert_eq!(start, utc(2026, 10, 24, 22, 0));
    assert_eq!(next, utc(2026, 10, 25, 23, 0));
    assert_eq!((next - start).num_hours(), 25);
    assert_eq!(day_of(utc(2026, 10, 25, 22, 59)), d(2026, 10, 25));
    assert_eq!(day_of(utc(2026, 10, 25, 23, 0)), d(2026, 10, 26));
}

#[test]
fn every_day_of_a_year_starts_at_its_own_swedish_midnight() {
    let mut day = d(2026, 1, 1);
    while day <= d(2026, 12, 31) {
        let s = start_of_day(day);
        assert_eq!(day_of(s), day);
        assert_eq!(
            day_of(s - chrono::Duration::seconds(1)),
            day.pred_opt().expect("a day")
        );
        day = day.succ_opt().expect("a day");
    }
}

#[test]
fn the_system_clock_counts_whole_milliseconds_and_timestamps_serialise_with_three_digits() {
    use chrono::Timelike;
    let t = SystemClock.now();
    assert_eq!(t.nanosecond() % 1_000_000, 0);
    let precise = Utc
        .with_ymd_and_hms(2026, 10, 14, 8, 30, 12)
        .single()
        .expect("a valid test instant")
        + chrono::Duration::nanoseconds(345_678_901);
    #[derive(serde::Serialize)]
    struct Stamped {
        #[serde(with = "super::millis")]
        at: DateTime<Utc>,
        #[serde(with = "super::millis_opt")]
        whole: Option<DateTime<Utc>>,
        #[serde(with = "super::millis_opt")]
        none: Option<DateTime<Utc>>,
    }
    let json = serde_json::to_value(Stamped {
        at: to_millis(precise),
        whole: Some(utc(2026, 10, 14, 8, 30)),
        none: None,
    })
    .expect("json");
    assert_eq!(
        json,
        serde_json::json!({"at": "2026-10-14T08:30:12.345Z",
                           "whole": "2026-10-14T08:30:00.000Z", "none": null})
    );
}
