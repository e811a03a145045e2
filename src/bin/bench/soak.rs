//! `--soak SECONDS`: the mixed scenarios at an offered rate (open loop) for a long
//! time, reporting every `--report-every` seconds the server's resident memory (VmRSS),
//! the SQLite WAL file's size and the window's p99; at the end, whether they stayed
//! flat (the last third of the windows against the first).

use std::path::PathBuf;

use crate::client::{self, Pace};
use crate::runner::{Make, AT_RATE_OFFSET};
use crate::server::Server;

/// One reporting window.
struct Sample {
    at_s: f64,
    requests: usize,
    errors: usize,
    p99_ms: f64,
    rss_mb: f64,
    wal_mb: Option<f64>,
}

pub(crate) struct Soak<'a> {
    pub(crate) server: &'a Server,
    pub(crate) addr: String,
    pub(crate) clients: usize,
    pub(crate) rate: f64,
    pub(crate) seconds: u64,
    pub(crate) every: u64,
    /// The SQLite database's `-wal` file (`None`: PostgreSQL).
    pub(crate) wal: Option<PathBuf>,
}

fn p99(sorted: &[f64]) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * 0.99).round() as usize]
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Whether the last third stayed within `ratio` of the first third, plus `slack` (small
/// absolute changes are noise, not growth). Returns the verdict line and whether flat.
fn compare(
    name: &str,
    unit: &str,
    first: f64,
    last: f64,
    ratio: f64,
    slack: f64,
) -> (String, bool) {
    let flat = last <= first * ratio + slack;
    let change = if first > 0.0 {
        format!("{:+.0}%", 100.0 * (last - first) / first)
    } else {
        "n/a".into()
    };
    (
        format!(
            "  {name:<16} first third {first:>9.1} {unit}, last third {last:>9.1} {unit} ({change}): {}",
            if flat { "flat" } else { "GREW" }
        ),
        flat,
    )
}

impl Soak<'_> {
    /// Runs the soak; returns whether memory, WAL and p99 stayed flat.
    pub(crate) fn run(&self, make: Make) -> bool {
        let every = self.every.clamp(1, self.seconds.max(1));
        let windows = (self.seconds / every).max(1);
        println!(
            "soak: {} s at {:.0} requests/s offered (open loop, {} clients), a line every {every} s",
            windows * every,
            self.rate,
            self.clients
        );
        println!(
            "{:>7} {:>9} {:>7} {:>9} {:>9} {:>9}",
            "t s", "req/s", "errors", "p99 ms", "RSS MB", "WAL MB"
        );
        let per_window = (self.rate * every as f64).ceil() as usize;
        let mut samples = Vec::new();
        let started = std::time::Instant::now();
        for w in 0..windows as usize {
            // Request numbers (and so idempotency keys and titles) unique over the soak.
            let first = 2 * AT_RATE_OFFSET + w * per_window;
            let m = client::drive(
                &self.addr,
                self.clients,
                every as f64,
                Pace::Rate(self.rate),
                first,
                make,
            );
            let s = Sample {
                at_s: started.elapsed().as_secs_f64(),
                requests: m.latencies_ms.len(),
                errors: m.errors,
                p99_ms: p99(&m.latencies_ms),
                rss_mb: self.server.rss_mb_now(),
                wal_mb: self
                    .wal
                    .as_ref()
                    .map(|p| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6)),
            };
            println!(
                "{:>7.0} {:>9.0} {:>7} {:>9.2} {:>9.1} {:>9}",
                s.at_s,
                s.requests as f64 / m.seconds.max(0.001),
                s.errors,
                s.p99_ms,
                s.rss_mb,
                s.wal_mb.map_or("n/a".into(), |w| format!("{w:.1}"))
            );
            samples.push(s);
        }
        let third = (samples.len() / 3).max(1);
        let (head, tail) = (&samples[..third], &samples[samples.len() - third..]);
        let errors: usize = samples.iter().map(|s| s.errors).sum();
        let requests: usize = samples.iter().map(|s| s.requests).sum();
        println!(
            "soak over: {requests} requests, {errors} errors; first third vs last third ({third} window(s) each):"
        );
        let mut flat = true;
        let mut report = |line: (String, bool)| {
            println!("{}", line.0);
            flat &= line.1;
        };
        // Memory: within 10% + 16 MB (allocator arenas settle in the first minutes).
        report(compare(
            "resident memory",
            "MB",
            mean(head.iter().map(|s| s.rss_mb)),
            mean(tail.iter().map(|s| s.rss_mb)),
            1.10,
            16.0,
        ));
        if head.iter().all(|s| s.wal_mb.is_some()) {
            // The WAL is reset at each checkpoint and reused: bounded, not growing.
            report(compare(
                "WAL file",
                "MB",
                mean(head.iter().filter_map(|s| s.wal_mb)),
                mean(tail.iter().filter_map(|s| s.wal_mb)),
                1.25,
                4.0,
            ));
        }
        // p99 on a shared machine is noisy: within 50% + 10 ms.
        report(compare(
            "p99 latency",
            "ms",
            mean(head.iter().map(|s| s.p99_ms)),
            mean(tail.iter().map(|s| s.p99_ms)),
            1.5,
            10.0,
        ));
        println!(
            "soak verdict: {}",
            if flat && errors == 0 {
                "flat"
            } else if flat {
                "flat, but with errors"
            } else {
                "NOT flat"
            }
        );
        flat && errors == 0
    }
}
