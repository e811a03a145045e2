use chrono::NaiveDate;

use super::is_past;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

#[test]
fn kept_through_the_last_day_of_the_period() {
    assert!(!is_past(d("2026-03-31"), 24, d("2028-03-31")).expect("date"));
    assert!(is_past(d("2026-03-31"), 24, d("2028-04-01")).expect("date"));
}

#[test]
fn a_month_end_clamps_to_the_shorter_month() {
    // 31 January plus one month is 28 February (2027 is no leap year).
    assert!(!is_past(d("2027-01-31"), 1, d("2027-02-28")).expect("date"));
    assert!(is_past(d("2027-01-31"), 1, d("2027-03-01")).expect("date"));
}
