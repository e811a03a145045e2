//! Unit tests of time served: calendar days in placements, employment extent, leave,
//! credited service, the projected end; month ends and leap years.

use chrono::NaiveDate;

use super::{planned_months, Plan, DAYS_PER_MONTH};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).expect("a valid test date")
}

/// Full time, one placement, no leave, nothing credited, a year's programme.
fn plan(start: NaiveDate, end: NaiveDate) -> Plan {
    Plan {
        start,
        extent_percent: 100,
        extent_changes: Vec::new(),
        placements: vec![(start, end)],
        leave: Vec::new(),
        credited_days: 0,
        nominal_months: 12,
    }
}

#[test]
fn an_average_month_is_a_twelfth_of_a_julian_year() {
    assert_eq!(DAYS_PER_MONTH * 12.0, 365.25);
}

#[test]
fn the_first_day_counts_as_a_whole_day() {
    let t = plan(d(2026, 3, 15), d(2026, 3, 15)).time_served(d(2026, 3, 15));
    assert_eq!(t.calendar_days, 1);
    assert_eq!(t.served_days, 1.0);
    assert_eq!(t.leave_days, 0.0);
}

#[test]
fn nothing_is_served_before_the_start() {
    let t = plan(d(2026, 3, 15), d(2026, 12, 31)).time_served(d(2026, 3, 14));
    assert_eq!(t.calendar_days, 0);
    assert_eq!(t.served_days, 0.0);
    assert_eq!(t.served_months, 0.0);
    assert_eq!(t.fraction_done, 0.0);
    assert_eq!(t.as_of, d(2026, 3, 14));
}

#[test]
fn placement_days_before_the_enrolment_start_do_not_count() {
    let mut p = plan(d(2026, 1, 1), d(2026, 1, 10));
    p.placements = vec![(d(2025, 12, 1), d(2026, 1, 10))];
    assert_eq!(p.time_served(d(2026, 1, 31)).calendar_days, 10);
}

#[test]
fn days_after_as_of_do_not_count() {
    let t = plan(d(2026, 1, 1), d(2026, 12, 31)).time_served(d(2026, 1, 31));
    assert_eq!(t.calendar_days, 31);
    assert_eq!(t.served_days, 31.0);
}

#[test]
fn month_ends_are_counted_inclusively_across_the_turn_of_the_month() {
    let t = plan(d(2026, 1, 31), d(2026, 2, 1)).time_served(d(2026, 2, 1));
    assert_eq!(t.calendar_days, 2);
    let t = plan(d(2026, 4, 30), d(2026, 5, 1)).time_served(d(2026, 12, 31));
    assert_eq!(t.calendar_days, 2);
    let t = plan(d(2026, 12, 31), d(2027, 1, 1)).time_served(d(2027, 1, 1));
    assert_eq!(t.calendar_days, 2);
}

#[test]
fn february_has_29_days_in_a_leap_year_and_28_otherwise() {
    let as_of = |y| d(y, 12, 31);
    assert_eq!(
        plan(d(2028, 2, 1), d(2028, 2, 29))
            .time_served(as_of(2028))
            .calendar_days,
        29
    );
    assert_eq!(
        plan(d(2027, 2, 1), d(2027, 3, 1))
            .time_served(as_of(2027))
            .calendar_days,
        29,
        "28 February days and 1 March"
    );
    assert_eq!(
        plan(d(2028, 2, 28), d(2028, 3, 1))
            .time_served(as_of(2028))
            .calendar_days,
        3
    );
    // 2100 is divisible by 100 and not by 400: no 29 February.
    assert_eq!(
        plan(d(2100, 2, 28), d(2100, 3, 1))
            .time_served(as_of(2100))
            .calendar_days,
        2
    );
}

#[test]
fn a_leap_year_is_366_days_and_just_over_twelve_average_months() {
    let t = plan(d(2028, 1, 1), d(2028, 12, 31)).time_served(d(2028, 12, 31));
    assert_eq!(t.calendar_days, 366);
    assert_eq!(t.served_days, 366.0);
    // 366 / 30.4375 = 12.02
    assert_eq!(t.served_months, 12.0);
    assert_eq!(t.fraction_done, 1.0, "capped at the nominal length");
}

#[test]
fn part_time_counts_the_extent_of_each_day() {
    // 2026-01-01 to 2026-04-10 is 100 days.
    let mut p = plan(d(2026, 1, 1), d(2026, 4, 10));
    p.extent_percent = 75;
    let t = p.time_served(d(2026, 4, 10));
    assert_eq!(t.calendar_days, 100);
    assert_eq!(t.served_days, 75.0);
    // 75 / 30.4375 = 2.46
    assert_eq!(t.served_months, 2.5);
    assert_eq!(t.total_months, 2.5);
}

#[test]
fn full_leave_removes_its_days_and_is_reported_as_leave() {
    let mut p = plan(d(2026, 1, 1), d(2026, 4, 10));
    // 28 February days and 2 March days.
    p.leave = vec![(d(2026, 2, 1), d(2026, 3, 2), 100)];
    let t = p.time_served(d(2026, 4, 10));
    assert_eq!(t.calendar_days, 100);
    assert_eq!(t.leave_days, 30.0);
    assert_eq!(t.served_days, 70.0);
}

#[test]
fn partial_leave_and_part_time_multiply() {
    // 80 % employment, half of it on leave for 30 days: 70 x 0.8 + 30 x 0.8 x 0.5.
    let mut p = plan(d(2026, 1, 1), d(2026, 4, 10));
    p.extent_percent = 80;
    p.leave = vec![(d(2026, 2, 1), d(2026, 3, 2), 50)];
    let t = p.time_served(d(2026, 4, 10));
    assert_eq!(t.leave_days, 15.0);
    assert_eq!(t.served_days, 68.0);
}

#[test]
fn overlapping_leave_counts_the_larger_share_not_the_sum() {
    let mut p = plan(d(2026, 1, 1), d(2026, 1, 10));
    p.leave = vec![
        (d(2026, 1, 1), d(2026, 1, 10), 50),
        (d(2026, 1, 6), d(2026, 1, 10), 100),
    ];
    let t = p.time_served(d(2026, 1, 10));
    // Five days at 0.5 and five at 1.0.
    assert_eq!(t.leave_days, 7.5);
    assert_eq!(t.served_days, 2.5);
}

#[test]
fn leave_between_placements_changes_nothing_and_the_gap_is_not_served() {
    let mut p = plan(d(2026, 1, 1), d(2026, 1, 10));
    p.placements = vec![
        (d(2026, 1, 1), d(2026, 1, 10)),
        (d(2026, 1, 21), d(2026, 1, 30)),
    ];
    p.leave = vec![(d(2026, 1, 11), d(2026, 1, 20), 100)];
    let t = p.time_served(d(2026, 1, 31));
    assert_eq!(t.calendar_days, 20);
    assert_eq!(t.leave_days, 0.0);
    assert_eq!(t.served_days, 20.0);
}

#[test]
fn extent_and_leave_outside_0_to_100_percent_are_clamped() {
    let mut p = plan(d(2026, 1, 1), d(2026, 1, 10));
    p.extent_percent = 150;
    assert_eq!(p.time_served(d(2026, 1, 10)).served_days, 10.0);
    p.extent_percent = 100;
    p.leave = vec![(d(2026, 1, 1), d(2026, 1, 10), 120)];
    let t = p.time_served(d(2026, 1, 10));
    assert_eq!(t.leave_days, 10.0);
    assert_eq!(t.served_days, 0.0);
    p.leave = vec![(d(2026, 1, 1), d(2026, 1, 10), -20)];
    assert_eq!(p.time_served(d(2026, 1, 10)).served_days, 10.0);
}

#[test]
fn credited_service_is_added_to_the_total_but_not_to_time_served() {
    let mut p = plan(d(2026, 1, 1), d(2026, 4, 10));
    p.credited_days = 61;
    let t = p.time_served(d(2026, 4, 10));
    assert_eq!(t.credited_days, 61);
    // 100 / 30.4375 = 3.29; 161 / 30.4375 = 5.29; 161 / 365.25 = 0.44
    assert_eq!(t.served_months, 3.3);
    assert_eq!(t.total_months, 5.3);
    assert_eq!(t.fraction_done, 0.44);
}

#[test]
fn a_programme_without_a_nominal_length_reports_no_fraction() {
    let mut p = plan(d(2026, 1, 1), d(2026, 1, 31));
    p.nominal_months = 0;
    let t = p.time_served(d(2026, 1, 31));
    assert_eq!(t.fraction_done, 0.0);
    assert_eq!(t.projected_end, Some(d(2026, 1, 1)));
}

// ---- Projected end --------------------------------------------------------------------

#[test]
fn a_full_time_year_ends_when_365_and_a_quarter_days_are_served() {
    // The 366th day reaches 365.25.
    let p = plan(d(2026, 1, 1), d(2026, 12, 31));
    assert_eq!(
        p.time_served(d(2026, 1, 1)).projected_end,
        Some(d(2027, 1, 1))
    );
}

#[test]
fn half_time_doubles_the_calendar_length() {
    let mut p = plan(d(2026, 1, 1), d(2028, 12, 31));
    p.extent_percent = 50;
    // 730.5 calendar days: the 731st day, 2026 and 2027 having 365 days each.
    assert_eq!(
        p.time_served(d(2026, 1, 1)).projected_end,
        Some(d(2028, 1, 1))
    );
}

#[test]
fn credited_service_brings_the_end_forward() {
    let mut p = plan(d(2026, 1, 1), d(2026, 12, 31));
    p.credited_days = 61;
    // 365.25 - 61 = 304.25: the 305th day, 1 November.
    assert_eq!(
        p.time_served(d(2026, 1, 1)).projected_end,
        Some(d(2026, 11, 1))
    );
}

#[test]
fn planned_leave_pushes_the_projected_end_back() {
    let mut p = plan(d(2026, 1, 1), d(2027, 12, 31));
    p.leave = vec![(d(2026, 6, 1), d(2026, 6, 30), 100)];
    assert_eq!(
        p.time_served(d(2026, 1, 1)).projected_end,
        Some(d(2027, 1, 31))
    );
}

#[test]
fn after_the_last_placement_the_plan_continues_at_the_same_extent() {
    // January in a placement (31 days), then 30 more days: 60.875 days for two months.
    let mut p = plan(d(2026, 1, 1), d(2026, 1, 31));
    p.nominal_months = 2;
    assert_eq!(
        p.time_served(d(2026, 1, 1)).projected_end,
        Some(d(2026, 3, 2))
    );
}

#[test]
fn a_gap_between_planned_placements_does_not_count_towards_the_end() {
    let mut p = plan(d(2026, 1, 1), d(2026, 1, 31));
    p.placements = vec![
        (d(2026, 1, 1), d(2026, 1, 31)),
        (d(2026, 3, 1), d(2026, 3, 31)),
    ];
    p.nominal_months = 2;
    // 31 January days, February skipped, 30 March days.
    assert_eq!(
        p.time_served(d(2026, 1, 1)).projected_end,
        Some(d(2026, 3, 30))
    );
}

#[test]
fn no_projection_without_employment_or_beyond_twenty_years() {
    let mut p = plan(d(2026, 1, 1), d(2026, 12, 31));
    p.extent_percent = 0;
    assert_eq!(p.time_served(d(2026, 6, 1)).projected_end, None);
    let mut p = plan(d(2026, 1, 1), d(2026, 12, 31));
    p.nominal_months = 12 * 25;
    assert_eq!(p.time_served(d(2026, 6, 1)).projected_end, None);
}

// ---- Planned months -------------------------------------------------------------------

#[test]
fn planned_months_are_not_rounded_up_to_the_regulations_minimum() {
    // January to March 2026: 90 days, 2.957 average months, less than 3.
    let m = planned_months(&[(d(2026, 1, 1), d(2026, 3, 31))], 100);
    assert!(m < 3.0);
    assert!((m - 90.0 / 30.4375).abs() < 1e-12);
    // The same in a leap year is 91 days.
    let leap = planned_months(&[(d(2028, 1, 1), d(2028, 3, 31))], 100);
    assert!((leap - 91.0 / 30.4375).abs() < 1e-12);
}

#[test]
fn planned_months_add_placements_and_scale_by_extent() {
    let m = planned_months(
        &[
            (d(2026, 1, 1), d(2026, 1, 10)),
            (d(2026, 2, 1), d(2026, 2, 10)),
        ],
        50,
    );
    assert!((m - 10.0 / 30.4375).abs() < 1e-12);
    assert_eq!(planned_months(&[], 100), 0.0);
    assert_eq!(
        planned_months(&[(d(2026, 1, 1), d(2026, 1, 10))], 200),
        planned_months(&[(d(2026, 1, 1), d(2026, 1, 10))], 100)
    );
}

#[test]
fn a_move_to_part_time_counts_from_its_day_and_does_not_rewrite_the_months_before() {
    // Full time from 1 January, 75 % from 1 March.
    let mut p = plan(d(2026, 1, 1), d(2026, 12, 31));
    p.extent_changes = vec![(d(2026, 1, 1), 100), (d(2026, 3, 1), 75)];
    let jan_feb = p.time_served(d(2026, 2, 28));
    assert_eq!(
        jan_feb.served_days, 59.0,
        "January and February at full time"
    );
    let march = p.time_served(d(2026, 3, 31));
    assert_eq!(march.served_days, 59.0 + 31.0 * 0.75);
    assert_eq!(p.extent_on(d(2026, 2, 28)), 100);
    assert_eq!(p.extent_on(d(2026, 3, 1)), 75);
}

#[test]
fn the_projected_end_follows_the_extent_history_and_leave() {
    // A year's programme. Full time throughout: 365.25 days, so 1 January 2027.
    let full = plan(d(2026, 1, 1), d(2026, 12, 31));
    assert_eq!(
        full.time_served(d(2026, 1, 1)).projected_end,
        Some(d(2027, 1, 1))
    );
    // 75 % from 1 July: the second half-year's 184 days give 138, and the rest
    // (365.25 - 181 - 138 = 46.25 days) at 75 % takes 62 more days from 1 January.
    let mut part = full.clone();
    part.extent_changes = vec![(d(2026, 1, 1), 100), (d(2026, 7, 1), 75)];
    assert_eq!(
        part.time_served(d(2026, 1, 1)).projected_end,
        Some(d(2027, 3, 3))
    );
    // A month of parental leave in March on top: 31 full-time days to make up at 75 %,
    // 41 more days.
    part.leave = vec![(d(2026, 3, 1), d(2026, 3, 31), 100)];
    let end = part
        .time_served(d(2026, 1, 1))
        .projected_end
        .expect("an end");
    assert_eq!(end, d(2027, 3, 3) + chrono::Duration::days(41));
}

#[test]
fn the_share_of_a_placement_served_skips_leave_and_weighs_the_extent() {
    let mut p = plan(d(2026, 1, 1), d(2026, 4, 30));
    // Without leave and at one extent, the share is the calendar's.
    assert_eq!(
        p.served_share(d(2026, 1, 1), d(2026, 1, 10), d(2026, 1, 5)),
        0.5
    );
    // Ten days, the first five on full leave: after those five nothing is due yet.
    p.leave = vec![(d(2026, 1, 1), d(2026, 1, 5), 100)];
    assert_eq!(
        p.served_share(d(2026, 1, 1), d(2026, 1, 10), d(2026, 1, 5)),
        0.0
    );
    assert_eq!(
        p.served_share(d(2026, 1, 1), d(2026, 1, 10), d(2026, 1, 10)),
        1.0
    );
    // All on leave: nothing is due at all.
    assert_eq!(
        p.served_share(d(2026, 1, 1), d(2026, 1, 5), d(2026, 1, 5)),
        0.0
    );
    assert_eq!(p.days_present(d(2026, 1, 1), d(2026, 1, 10)), 5.0);
}
