use chrono::NaiveDate;

use super::{application_due, application_warning, IntegratedBt};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a test date")
}

fn bt(applied: Option<&str>, planned_end: &str) -> IntegratedBt {
    IntegratedBt {
        st_start: d("2024-09-01"),
        bt_start: d("2024-09-01"),
        bt_planned_end: d(planned_end),
        bt_applied_on: applied.map(d),
        within_months: 24,
    }
}

#[test]
fn the_last_day_is_the_day_before_the_start_plus_the_period_counted_from_the_earlier_start() {
    assert_eq!(
        application_due(&bt(None, "2025-08-31")),
        Some(d("2026-08-31"))
    );
    // ST registered after the BT began: ST began with the BT.
    let mut later = bt(None, "2025-08-31");
    later.st_start = d("2025-09-01");
    assert_eq!(application_due(&later), Some(d("2026-08-31")));
    // A month-end start (31 January + 24 months is 31 January; chrono clamps others).
    let mut jan = bt(None, "2025-08-31");
    jan.st_start = d("2024-02-29");
    jan.bt_start = d("2024-02-29");
    assert_eq!(application_due(&jan), Some(d("2026-02-27")));
}

#[test]
fn applied_in_time_gives_no_warning_and_late_names_the_day() {
    let today = d("2027-01-01");
    assert!(application_warning(
        &bt(Some("2026-08-31"), "2025-08-31"),
        today,
        "HSLF-FS 2021:8"
    )
    .is_none());
    let late = application_warning(
        &bt(Some("2026-09-01"), "2025-08-31"),
        today,
        "HSLF-FS 2021:8",
    )
    .expect("late");
    assert_eq!(late.code, "bt_application_deadline");
    assert!(
        late.message.contains("2026-09-01") && late.message.contains("2026-08-31"),
        "{}",
        late.message
    );
}

#[test]
fn not_applied_warns_when_overdue_or_when_the_bt_is_planned_past_the_last_day() {
    let plan = bt(None, "2025-08-31");
    assert!(application_warning(&plan, d("2026-08-31"), "HSLF-FS 2021:8").is_none());
    let overdue = application_warning(&plan, d("2026-09-01"), "HSLF-FS 2021:8").expect("overdue");
    assert!(
        overdue.message.contains("has not been applied for"),
        "{}",
        overdue.message
    );
    let long = application_warning(&bt(None, "2026-09-30"), d("2025-01-01"), "HSLF-FS 2021:8")
        .expect("planned past the last day");
    assert!(
        long.message.contains("planned to end on 2026-09-30"),
        "{}",
        long.message
    );
}
