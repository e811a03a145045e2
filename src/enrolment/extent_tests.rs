//! Unit tests of the extent history: which period holds on a day, and periods cut to a
//! certificate's dates.

use chrono::{NaiveDate, TimeZone, Utc};

use super::{cut, percent_on, ExtentPeriod};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("a valid test date")
}

fn period(from: NaiveDate, to: Option<NaiveDate>, percent: i32) -> ExtentPeriod {
    ExtentPeriod {
        id: format!("p{percent}"),
        valid_from: from,
        valid_to: to,
        extent_percent: percent,
        created_by: None,
        created_at: Utc.timestamp_opt(0, 0).single().expect("epoch"),
    }
}

#[test]
fn each_day_has_the_extent_of_the_period_it_falls_in() {
    let changes = [
        (d(2026, 1, 1), 100),
        (d(2026, 3, 1), 75),
        (d(2026, 9, 1), 100),
    ];
    assert_eq!(percent_on(&changes, d(2026, 1, 1)), Some(100));
    assert_eq!(percent_on(&changes, d(2026, 2, 28)), Some(100));
    assert_eq!(percent_on(&changes, d(2026, 3, 1)), Some(75));
    assert_eq!(percent_on(&changes, d(2026, 8, 31)), Some(75));
    assert_eq!(percent_on(&changes, d(2027, 1, 1)), Some(100));
    // Before the first period: the first.
    assert_eq!(percent_on(&changes, d(2025, 12, 31)), Some(100));
    assert_eq!(percent_on(&[], d(2026, 1, 1)), None);
}

#[test]
fn periods_are_cut_to_the_dates_asked_for() {
    let all = vec![
        period(d(2026, 1, 1), Some(d(2026, 2, 28)), 100),
        period(d(2026, 3, 1), Some(d(2026, 8, 31)), 75),
        period(d(2026, 9, 1), None, 100),
    ];
    let feb_to_apr = cut(all.clone(), d(2026, 2, 1), d(2026, 4, 30));
    let spans: Vec<_> = feb_to_apr
        .iter()
        .map(|p| (p.valid_from, p.valid_to, p.extent_percent))
        .collect();
    assert_eq!(
        spans,
        [
            (d(2026, 2, 1), Some(d(2026, 2, 28)), 100),
            (d(2026, 3, 1), Some(d(2026, 4, 30)), 75)
        ]
    );
    let autumn = cut(all.clone(), d(2026, 10, 1), d(2026, 12, 31));
    assert_eq!(autumn.len(), 1);
    assert_eq!(autumn[0].extent_percent, 100);
    assert_eq!(autumn[0].valid_to, Some(d(2026, 12, 31)));
    // Days before the first period have the first period's extent.
    let early = cut(all, d(2025, 12, 1), d(2025, 12, 31));
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].extent_percent, 100);
}
