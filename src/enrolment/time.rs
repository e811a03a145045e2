//! Time served: from placements, employment extent and leave, plus credited service.
//! Pure functions, so the arithmetic is easy to check.

use chrono::{Duration, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

/// Days in an average month (365.25 / 12).
pub const DAYS_PER_MONTH: f64 = 30.4375;

#[derive(Debug, Clone)]
pub struct Plan {
    pub start: NaiveDate,
    /// The extent before the first of `extent_changes` (or throughout, without any).
    pub extent_percent: i32,
    /// Changes of employment extent: `(first day, percent)`, in order of the day. A change
    /// holds until the next one; the days before keep the extent they had.
    pub extent_changes: Vec<(NaiveDate, i32)>,
    /// Placement periods, inclusive.
    pub placements: Vec<(NaiveDate, NaiveDate)>,
    /// Leave periods, inclusive, with the share of time on leave (100 = full leave).
    pub leave: Vec<(NaiveDate, NaiveDate, i32)>,
    pub credited_days: i32,
    pub nominal_months: i32,
}

/// Progress in time, in full-time equivalents.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct TimeServed {
    #[schema(example = "2026-06-30")]
    pub as_of: NaiveDate,
    /// Calendar days in placements from the start up to `as_of`.
    #[schema(example = 177)]
    pub calendar_days: i64,
    /// Of those, days on leave (weighted by the leave's share).
    #[schema(example = 30.0)]
    pub leave_days: f64,
    /// Full-time-equivalent days served: calendar days x extent x (1 - leave share).
    #[schema(example = 110.25)]
    pub served_days: f64,
    #[schema(example = 3.6)]
    pub served_months: f64,
    /// Credited service before licence, in days.
    #[schema(example = 0)]
    pub credited_days: i32,
    /// Served plus credited, in months.
    #[schema(example = 3.6)]
    pub total_months: f64,
    /// The programme's nominal length at full time.
    #[schema(example = 12)]
    pub nominal_months: i32,
    /// Share of the nominal length done, 0 to 1.
    #[schema(example = 0.3)]
    pub fraction_done: f64,
    /// When the nominal length is reached if the plan continues as now: the planned
    /// placements at each day's extent and leave, then the last extent recorded.
    #[schema(example = "2027-06-05")]
    pub projected_end: Option<NaiveDate>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Plan {
    fn in_placement(&self, day: NaiveDate) -> bool {
        self.placements.iter().any(|(s, e)| *s <= day && day <= *e)
    }

    fn leave_share(&self, day: NaiveDate) -> f64 {
        self.leave
            .iter()
            .filter(|(s, e, _)| *s <= day && day <= *e)
            .map(|(_, _, p)| (*p).clamp(0, 100) as f64 / 100.0)
            .fold(0.0, f64::max)
    }

    /// The employment extent on `day`, in per cent (0 to 100).
    pub fn extent_on(&self, day: NaiveDate) -> i32 {
        self.extent_changes
            .iter()
            .take_while(|(from, _)| *from <= day)
            .last()
            .map_or(self.extent_percent, |(_, p)| *p)
            .clamp(0, 100)
    }

    /// The extent the plan ends with (what a projection continues at).
    fn last_extent(&self) -> i32 {
        self.extent_changes
            .last()
            .map_or(self.extent_percent, |(_, p)| *p)
    }

    /// Full-time-equivalent months of `placements` at each day's extent (leave not
    /// counted: the regulation's minimum months are about the plan). Not rounded.
    pub fn planned_months(&self, placements: &[(NaiveDate, NaiveDate)]) -> f64 {
        let mut days = 0.0;
        for (s, e) in placements {
            let mut day = *s;
            while day <= *e {
                days += self.extent_on(day) as f64 / 100.0;
                day += Duration::days(1);
            }
        }
        days / DAYS_PER_MONTH
    }

    /// The share of `start..=end`'s working time (each day's extent, less leave) that lies
    /// on or before `today`: how far into a placement the trainee has come in time served,
    /// not in calendar days, so a doctor on parental leave is not expected to have done
    /// what the days on leave would have brought. A period with no working time at all
    /// (all on leave) expects nothing: 0.
    pub fn served_share(&self, start: NaiveDate, end: NaiveDate, today: NaiveDate) -> f64 {
        let (mut total, mut done) = (0.0, 0.0);
        let mut day = start;
        while day <= end {
            let w = self.extent_on(day) as f64 / 100.0 * (1.0 - self.leave_share(day));
            total += w;
            if day <= today {
                done += w;
            }
            day += Duration::days(1);
        }
        if total <= 0.0 {
            return 0.0;
        }
        (done / total).clamp(0.0, 1.0)
    }

    /// Days of `from..=to` not on leave (a half day of leave counts half): the days on
    /// which supervision is due. Part time does not thin out supervision; leave does.
    pub fn days_present(&self, from: NaiveDate, to: NaiveDate) -> f64 {
        let mut n = 0.0;
        let mut day = from;
        while day <= to {
            n += 1.0 - self.leave_share(day);
            day += Duration::days(1);
        }
        n
    }

    fn last_placement_day(&self) -> Option<NaiveDate> {
        self.placements.iter().map(|(_, e)| *e).max()
    }

    /// A day's worth of full-time service; after the last planned placement the plan is
    /// assumed to continue at the same extent (for projections only).
    fn weight(&self, day: NaiveDate, project: bool) -> f64 {
        let counted = self.in_placement(day)
            || (project && self.last_placement_day().is_none_or(|l| day > l));
        if !counted || day < self.start {
            return 0.0;
        }
        self.extent_on(day) as f64 / 100.0 * (1.0 - self.leave_share(day))
    }

    pub fn time_served(&self, as_of: NaiveDate) -> TimeServed {
        let mut calendar_days = 0;
        let mut leave_days = 0.0;
        let mut served = 0.0;
        let mut day = self.start;
        while day <= as_of {
            if self.in_placement(day) {
                calendar_days += 1;
                leave_days += self.leave_share(day);
                served += self.weight(day, false);
            }
            day += Duration::days(1);
        }
        let nominal_days = self.nominal_months as f64 * DAYS_PER_MONTH;
        let total = served + self.credited_days as f64;
        TimeServed {
            as_of,
            calendar_days,
            leave_days: round2(leave_days),
            served_days: round2(served),
            served_months: round1(served / DAYS_PER_MONTH),
            credited_days: self.credited_days,
            total_months: round1(total / DAYS_PER_MONTH),
            nominal_months: self.nominal_months,
            fraction_done: if nominal_days > 0.0 {
                round2((total / nominal_days).min(1.0))
            } else {
                0.0
            },
            projected_end: self.projected_end(nominal_days),
        }
    }

    /// First day on which served plus credited time reaches the nominal length.
    fn projected_end(&self, nominal_days: f64) -> Option<NaiveDate> {
        if self.last_extent() <= 0 {
            return None;
        }
        let mut total = self.credited_days as f64;
        let mut day = self.start;
        // Twenty years is beyond any real plan; stop there rather than loop forever.
        let limit = self.start + Duration::days(366 * 20);
        while day < limit {
            total += self.weight(day, true);
            if total + 1e-9 >= nominal_days {
                return Some(day);
            }
            day += Duration::days(1);
        }
        None
    }
}

/// Full-time-equivalent months of planned placements (for the regulation's minimum
/// months). Not rounded: 2.96 months is less than 3.
pub fn planned_months(placements: &[(NaiveDate, NaiveDate)], extent_percent: i32) -> f64 {
    let days: i64 = placements
        .iter()
        .map(|(s, e)| (*e - *s).num_days() + 1)
        .sum();
    days as f64 * extent_percent.clamp(0, 100) as f64 / 100.0 / DAYS_PER_MONTH
}

#[cfg(test)]
#[path = "time_tests.rs"]
mod tests;
