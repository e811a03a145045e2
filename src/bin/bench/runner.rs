//! How the scenarios run and what each one measured.

use crate::client::{self, Pace, Req};
use crate::server::*;

/// Records of the trainee whose dossier is built.
pub(crate) const DOSSIER_RECORDS: usize = 1000;

pub(crate) struct Outcome {
    pub(crate) name: &'static str,
    pub(crate) requests: usize,
    pub(crate) errors: usize,
    pub(crate) seconds: f64,
    pub(crate) latencies_ms: Vec<f64>,
    /// SQL statements per request, from sequential probe requests.
    pub(crate) statements: f64,
    /// Mean latency of the sequential probe requests (no concurrency).
    pub(crate) probe_ms: f64,
    /// Server CPU time per request during the timed run (robust on a shared machine).
    pub(crate) cpu_ms: f64,
    /// PostgreSQL's CPU time per request during the timed run (0 on SQLite).
    pub(crate) db_cpu_ms: f64,
    /// Bytes the server read from storage per request during the timed run (pages the
    /// operating system no longer had cached), in KB.
    pub(crate) disk_kb: f64,
    /// Mean response body size of the probe requests.
    pub(crate) kb: f64,
}

impl Outcome {
    pub(crate) fn empty(name: &'static str) -> Outcome {
        Outcome {
            name,
            requests: 0,
            errors: 0,
            seconds: 0.0,
            latencies_ms: Vec::new(),
            statements: 0.0,
            probe_ms: 0.0,
            cpu_ms: 0.0,
            db_cpu_ms: 0.0,
            disk_kb: 0.0,
            kb: 0.0,
        }
    }
    pub(crate) fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    pub(crate) fn pct(&self, p: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_ms.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_ms[i]
    }
}

/// How the scenarios run: concurrency, duration, and the sequential probe that counts the
/// server's SQL statements per request.
pub(crate) struct Runner<'a> {
    pub(crate) only: Option<String>,
    pub(crate) clients: usize,
    pub(crate) seconds: u64,
    pub(crate) probe: usize,
    pub(crate) server: &'a mut Server,
    /// host:port of the server.
    pub(crate) addr: String,
    /// The data set is in PostgreSQL: its processes' CPU is measured too.
    pub(crate) postgres: bool,
}

pub(crate) type Make<'a> = &'a (dyn Fn(usize, usize) -> Option<Req> + Sync);

impl Runner<'_> {
    pub(crate) fn skip(&self, name: &str) -> bool {
        self.only
            .as_deref()
            .is_some_and(|o| !name.contains(o) && !name.starts_with("ceiling"))
    }

    /// First `probe` sequential requests (one user, one connection) to count the
    /// server's statements per request, then `make(client, n)` from `clients`
    /// connections for `seconds` (or until it returns None), each sending again as soon
    /// as it has its answer: the most the server can do.
    pub(crate) fn saturate(&mut self, name: &'static str, make: Make) -> Outcome {
        if self.skip(name) {
            return Outcome::empty(name);
        }
        let (clients, probe) = (self.clients, self.probe);
        let before = self.server.statements();
        let probed = client::drive(&self.addr, 1, 3600.0, Pace::Saturate, 0, &|_, n| {
            (n < probe).then(|| make(clients, n)).flatten()
        });
        let n = probed.latencies_ms.len().max(1) as f64;
        let statements = (self.server.statements() - before) as f64 / n;
        let timed = self.timed(name, Pace::Saturate, probe, make);
        Outcome {
            errors: timed.errors + probed.errors,
            statements,
            probe_ms: probed.seconds * 1000.0 / n,
            kb: probed.bytes as f64 / 1024.0 / n,
            ..timed
        }
    }

    /// The same requests offered at `rate` per second in all (open loop, as users
    /// arrive); latency counts from when each request was due.
    pub(crate) fn at_rate(&mut self, name: &'static str, rate: f64, make: Make) -> Outcome {
        if self.skip(name) || rate <= 0.0 {
            return Outcome::empty(name);
        }
        self.timed(name, Pace::Rate(rate), AT_RATE_OFFSET, make)
    }

    /// `make` from `clients` connections for `seconds`, with the server's CPU time and
    /// storage reads over that time.
    pub(crate) fn timed(
        &mut self,
        name: &'static str,
        pace: Pace,
        first: usize,
        make: Make,
    ) -> Outcome {
        let cpu_before = self.server.cpu_seconds();
        let db_cpu_before = self.postgres.then(Server::database_cpu_seconds);
        let disk_before = self.server.disk_read_bytes();
        let m = client::drive(
            &self.addr,
            self.clients,
            self.seconds as f64,
            pace,
            first,
            make,
        );
        let requests = m.latencies_ms.len().max(1) as f64;
        Outcome {
            requests: m.latencies_ms.len(),
            errors: m.errors,
            seconds: m.seconds,
            latencies_ms: m.latencies_ms,
            cpu_ms: (self.server.cpu_seconds() - cpu_before) * 1000.0 / requests,
            db_cpu_ms: db_cpu_before.map_or(0.0, |before| {
                (Server::database_cpu_seconds() - before) * 1000.0 / requests
            }),
            disk_kb: self.server.disk_read_bytes().saturating_sub(disk_before) as f64
                / 1024.0
                / requests,
            ..Outcome::empty(name)
        }
    }
}

/// Request numbers of the open-loop runs start here, so their idempotency keys and
/// titles differ from the closed loop's.
pub(crate) const AT_RATE_OFFSET: usize = 10_000_000;

/// What the capacity search found for one scenario: the highest offered rate at which
/// the open loop kept its latency objective, and the first rate at which it did not.
pub(crate) struct Capacity {
    pub(crate) name: &'static str,
    pub(crate) objective_ms: f64,
    /// The highest rate that kept the objective, with its p99 and server CPU per request.
    pub(crate) kept: Option<(f64, f64, f64)>,
    /// The lowest rate that missed it, with its p99 and why.
    pub(crate) missed: Option<(f64, f64, &'static str)>,
}

/// Rates tried first, doubling; then halved intervals between the last kept and the
/// first missed rate, `CAPACITY_REFINE` times (about 10 % resolution).
const CAPACITY_START: f64 = 250.0;
const CAPACITY_MAX: f64 = 32_000.0;
const CAPACITY_REFINE: usize = 3;
/// Request numbers of the capacity runs start here, a new block per step, so that their
/// idempotency keys and titles differ from every other run's.
const CAPACITY_OFFSET: usize = 20_000_000;

impl Runner<'_> {
    /// The open-loop capacity at a latency objective: offered rates double from
    /// `CAPACITY_START` until one misses (p99 over `objective_ms`, any error, or the
    /// server answering under 95 % of the offered rate), then the gap is halved.
    /// Each step runs `seconds` (`--capacity-seconds`).
    pub(crate) fn capacity(
        &mut self,
        name: &'static str,
        objective_ms: f64,
        seconds: u64,
        make: Make,
    ) -> Capacity {
        let mut found = Capacity {
            name,
            objective_ms,
            kept: None,
            missed: None,
        };
        if self.skip(name) || seconds == 0 {
            return found;
        }
        let saved = std::mem::replace(&mut self.seconds, seconds);
        let mut step = 0;
        let mut try_rate = |run: &mut Self, rate: f64| {
            step += 1;
            let m = run.timed(
                name,
                Pace::Rate(rate),
                CAPACITY_OFFSET + step * 1_000_000,
                make,
            );
            let p99 = m.pct(0.99);
            let why = if m.errors > 0 {
                Some("errors")
            } else if m.rate() < 0.95 * rate {
                Some("fell behind")
            } else if p99 > objective_ms {
                Some("p99")
            } else {
                None
            };
            match why {
                None => Ok((rate, p99, m.cpu_ms)),
                Some(why) => Err((rate, p99, why)),
            }
        };
        let mut rate = CAPACITY_START;
        while rate <= CAPACITY_MAX {
            match try_rate(self, rate) {
                Ok(k) => found.kept = Some(k),
                Err(e) => {
                    found.missed = Some(e);
                    break;
                }
            }
            rate *= 2.0;
        }
        for _ in 0..CAPACITY_REFINE {
            let (Some(low), Some(high)) = (found.kept.map(|k| k.0), found.missed.map(|m| m.0))
            else {
                break;
            };
            match try_rate(self, ((low + high) / 2.0).round()) {
                Ok(k) => found.kept = Some(k),
                Err(e) => found.missed = Some(e),
            }
        }
        self.seconds = saved;
        found
    }
}
