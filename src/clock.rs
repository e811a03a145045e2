//! Time as a parameter: domain code asks the clock, so tests can move time forward.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub type SharedClock = Arc<dyn Clock>;

/// Wall-clock time, in whole milliseconds: every timestamp the service makes is stored
/// and served with millisecond precision (`2026-10-14T08:30:12.345Z`), which JavaScript's
/// `Date` and Python's `datetime` read without losing anything, so a timestamp a client
/// got back compares equal to the stored one.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_millis(Utc::now())
    }
}

/// `t` without its sub-millisecond part.
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// A clock that only moves when told to (tests, benchmarks with synthetic years).
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: Mutex::new(start),
        })
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    /// In whole milliseconds, as the system clock: tests see what production stores.
    fn now(&self) -> DateTime<Utc> {
        to_millis(*self.now.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The service's time zone. Its users are Swedish doctors and their supervisors, so
/// "today", deadlines and the daily digest follow Swedish calendar days; timestamps stay
/// UTC in storage and in the API.
pub const ZONE: Tz = chrono_tz::Europe::Stockholm;

/// The Swedish calendar day of an instant: a record made at 00:30 Swedish time (22:30 or
/// 23:30 UTC the evening before) belongs to that Swedish day.
pub fn day_of(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&ZONE).date_naive()
}

/// The instant a Swedish calendar day begins. Sweden changes clocks at 02:00 and 03:00,
/// so midnight always exists and is unambiguous; should a rule ever move the change to
/// midnight, the first instant of the day that exists is taken.
pub fn start_of_day(day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    match ZONE.from_local_datetime(&midnight).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // In a gap: the day begins when the clocks jump, at most a few hours later.
        None => (1..=6)
            .filter_map(|h| {
                ZONE.from_local_datetime(&(midnight + Duration::hours(h)))
                    .earliest()
            })
            .next()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| midnight.and_utc()),
    }
}

/// The local hour (0 to 23) of an instant, in the service's time zone.
pub fn local_hour(t: DateTime<Utc>) -> u32 {
    use chrono::Timelike;
    t.with_timezone(&ZONE).hour()
}

/// `#[serde(with = "crate::clock::millis")]` on a timestamp field: written as RFC 3339 in
/// UTC with exactly three fractional digits (`2026-10-14T08:30:12.000Z`), the one form of
/// every timestamp in the API, so a client can parse them all with one fixed format (as
/// phones' date formatters want); read as any RFC 3339 timestamp.
pub mod millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format(FORMAT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }
}

/// [`millis`] for an optional timestamp (null when absent).
pub mod millis_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&t.format(super::millis::FORMAT)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(d)
    }
}

/// Timestamps are stored as naive UTC (the one timestamp type both backends share).
pub fn to_db(t: DateTime<Utc>) -> chrono::NaiveDateTime {
    t.naive_utc()
}

pub fn from_db(t: chrono::NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

pub fn dur(d: std::time::Duration) -> Duration {
    Duration::seconds(d.as_secs() as i64)
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
