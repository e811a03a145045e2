//! Benchmark: a realistic data set with a fixed seed, the real server on loopback, and
//! concurrent HTTP clients per scenario. Prints throughput and p50/p99 per scenario, as a
//! ratio of the server's ceiling (an endpoint that does no database work), SQL statements
//! per request, the raw insert speed of the database, and the server's peak resident
//! memory.
//!
//! The server runs as a child process (this binary with `--serve`), so its memory is
//! measured apart from the client threads, and it counts the SQL statements it runs
//! (diesel instrumentation), which the bench reads between scenarios.
//!
//!   cargo run --release --bin bench -- --trainees 2000
//!   DATABASE_URL=postgres://... cargo run --release --bin bench
//!
//! Not a test: figures vary with the machine; the README records them with the command.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Parser;
use eportfolio::clock::SystemClock;
use eportfolio::AppState;
use serde_json::json;

use crate::runner::*;
use crate::seed::*;
use crate::server::*;

mod client;
mod runner;
mod seed;
mod server;
mod soak;
mod two_nodes;
use client::{Pace, Req};

#[derive(Parser)]
#[command(about = "eportfolio benchmark")]
pub(crate) struct Args {
    /// Trainees in the data set (each with a year of records).
    #[arg(long, default_value_t = 2000)]
    trainees: usize,
    /// Concurrent HTTP clients per scenario.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Trainees per care provider, as one director's cohort (the cohort overview's size).
    #[arg(long, default_value_t = 500)]
    cohort: usize,
    /// Activities per trainee.
    #[arg(long, default_value_t = 300)]
    activities: usize,
    /// Database pool size of the server (default: the server's own default).
    #[arg(long)]
    pool_size: Option<u32>,
    /// Sequential requests per scenario to count SQL statements per request.
    #[arg(long, default_value_t = 20)]
    probe: usize,
    /// Total request rate of the open-loop runs (0: none). Each per-trainee scenario runs
    /// twice: saturated (every client sends again as soon as it has its answer) and at
    /// this offered rate, where latency counts from when a request was due.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds per step of the capacity search (0: none): for each per-trainee
    /// scenario with a latency objective, the highest offered rate (open loop) at which
    /// p99 stays under it.
    #[arg(long, default_value_t = 3)]
    capacity_seconds: u64,
    /// Run only the scenarios whose name contains this (and the ceiling).
    #[arg(long)]
    only: Option<String>,
    /// Keep the data set in this directory (created; not removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// With `--dir`: run against the data set a previous run left there (its tokens last
    /// an hour; earlier runs' writes stay in it), instead of seeding a new one.
    #[arg(long)]
    reuse: bool,
    /// Instead of the scenarios: the mixed scenarios (reads and writes of trainees and
    /// supervisors) at `--rate` requests/s for this many seconds, reporting the server's
    /// resident memory, the WAL's size and p99 every `--report-every` seconds, and at the
    /// end whether they stayed flat. Exits 1 if they did not.
    #[arg(long)]
    soak: Option<u64>,
    /// Instead of the scenarios: logging an activity split over two server processes on
    /// the data set for this many seconds, with retries sent to the other node; checks
    /// that the database holds every acknowledged activity once. Exits 1 if not.
    #[arg(long)]
    two_nodes: Option<u64>,
    /// Seconds per line of the soak's report.
    #[arg(long, default_value_t = 30)]
    report_every: u64,
    /// Internal: run as the server over the data set in this directory.
    #[arg(long, hide = true)]
    serve: Option<PathBuf>,
    /// Only render this dossier (its JSON, as `GET /enrolments/{id}/dossier` answers)
    /// as a PDF `--repeat` times in this process and print the time per render: the PDF
    /// writer alone, without HTTP, database or compression of the answer (for `perf`).
    #[arg(long)]
    render_pdf: Option<PathBuf>,
    /// Renders for `--render-pdf`.
    #[arg(long, default_value_t = 20)]
    repeat: usize,
}

/// `--render-pdf`: the PDF writer alone, timed (CPU of this thread, robust on a busy
/// machine) over `repeat` renders; writes the last one beside the JSON.
fn render_pdf(file: &std::path::Path, repeat: usize) -> ! {
    let dossier: serde_json::Value = match std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("bench: {}: {e}", file.display());
            std::process::exit(1);
        }
    };
    // This thread's time on a CPU in ns (`schedstat`, first field).
    let thread_cpu = || {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |ns| ns / 1e6)
    };
    // The API's answer wraps the dossier beside its signature.
    let dossier = dossier.get("dossier").cloned().unwrap_or(dossier);
    let mut bytes = Vec::new();
    let key_id = eportfolio::ids::SigningKeyId::from("bench");
    let (wall, cpu) = (Instant::now(), thread_cpu());
    for _ in 0..repeat.max(1) {
        bytes = match eportfolio::dossier::pdf::pdf(&dossier, "0".repeat(64).as_str(), &key_id) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("bench: render: {e}");
                std::process::exit(1);
            }
        };
    }
    let n = repeat.max(1) as f64;
    println!(
        "dossier PDF render: {:.1} ms cpu, {:.1} ms wall per render ({} renders), {} KB",
        (thread_cpu() - cpu) / n,
        wall.elapsed().as_secs_f64() * 1000.0 / n,
        repeat.max(1),
        bytes.len() / 1024
    );
    let out = file.with_extension("pdf");
    if let Err(e) = std::fs::write(&out, &bytes) {
        eprintln!("bench: {}: {e}", out.display());
    }
    std::process::exit(0);
}

fn main() {
    let args = Args::parse();
    if let Some(dir) = &args.serve {
        serve(dir, args.pool_size);
    }
    if let Some(file) = &args.render_pdf {
        render_pdf(file, args.repeat);
    }
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("eportfolio-bench-{}", std::process::id()))
    });
    let config = bench_config(&dir, args.pool_size);
    let backend = if config.is_postgres() {
        "postgresql"
    } else {
        "sqlite"
    };
    let pool_size = config.db_pool_size;
    println!(
        "eportfolio bench: {backend}, {} trainees x {} activities, {} clients, {} s per scenario, pool {pool_size}",
        args.trainees, args.activities, args.clients, args.seconds
    );
    let people_file = dir.join("bench-people.json");
    let reused = args
        .reuse
        .then(|| std::fs::read(&people_file).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice::<People>(&b).ok());
    let people = match reused {
        Some(p) => {
            println!(
                "reusing the data set in {} (not seeded again)",
                dir.display()
            );
            p
        }
        None => {
            let state = match AppState::new(config, Arc::new(SystemClock)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("bench: {e}");
                    std::process::exit(1);
                }
            };
            let rows = AtomicUsize::new(0);
            let t = Instant::now();
            let (trainees, supervisors, director) = match seed(&state, &args, &rows) {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("bench: seeding failed: {e}");
                    std::process::exit(1);
                }
            };
            // The server is another process: close this one's connections first.
            drop(state);
            let seeded = rows.load(Ordering::Relaxed);
            let insert_rate = seeded as f64 / t.elapsed().as_secs_f64();
            println!("seeded {seeded} rows in {:.1} s: raw database insert speed {insert_rate:.0} rows/s (diesel, one row per statement, outside the server)", t.elapsed().as_secs_f64());
            let people = People {
                trainees,
                supervisors,
                director,
                insert_rate,
            };
            if args.dir.is_some() {
                if let Ok(b) = serde_json::to_vec(&people) {
                    let _ = std::fs::write(&people_file, b);
                }
            }
            people
        }
    };
    let People {
        trainees,
        supervisors,
        director,
        insert_rate,
    } = people;

    let mut server = match Server::start(&dir, args.pool_size) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    let addr = server.base.trim_start_matches("http://").to_string();
    let ready = || {
        let m = client::drive(&addr, 1, 5.0, Pace::Saturate, 0, &|_, n| {
            (n == 0).then(|| Req::get("/ready"))
        });
        m.errors == 0 && !m.latencies_ms.is_empty()
    };
    while !ready() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The probe (client index `clients`) is one user making requests one after another.
    let clients = args.clients;
    let pick = |client: usize, n: usize| {
        if client >= clients {
            return &trainees[0];
        }
        &trainees[(client * 7919 + n * 31) % trainees.len()]
    };
    let mut run = Runner {
        clients: args.clients,
        seconds: args.seconds,
        probe: args.probe,
        server: &mut server,
        only: args.only.clone(),
        addr,
        postgres: backend == "postgresql",
    };
    let mut results = Vec::new();
    let mut paced = Vec::new();
    results.push(run.saturate("ceiling: GET /health (no database)", &|_, _| {
        Some(Req::get("/health"))
    }));
    // Idempotency keys unique to this run (a reused data set keeps earlier runs' keys).
    let nonce = format!("{}-{}", std::process::id(), Utc::now().timestamp_millis());
    let me = |cl, n| Some(Req::get("/api/v1/me").auth(&pick(cl, n).token));
    let log = |cl, n| {
        let t = pick(cl, n);
        Some(
            Req::post(&format!("/api/v1/enrolments/{}/activities", t.enrolment))
                .auth(&t.token)
                .header("Idempotency-Key", &format!("bench-{nonce}-{cl}-{n}"))
                .json(json!({"kind": "course", "title": format!("Kurs {cl}-{n}"), "start_date": "2026-10-06", "delmal": ["BT1", "BT7"]})),
        )
    };
    let list = |cl, n| {
        let t = pick(cl, n);
        Some(
            Req::get(&format!(
                "/api/v1/enrolments/{}/activities?delmal=BT7&limit=50",
                t.enrolment
            ))
            .auth(&t.token),
        )
    };
    let plan = |cl, n| {
        let t = pick(cl, n);
        Some(Req::get(&format!("/api/v1/enrolments/{}", t.enrolment)).auth(&t.token))
    };
    let queue = |cl: usize, n: usize| {
        let s = if cl >= clients {
            0
        } else {
            (cl + n) % supervisors.len()
        };
        Some(Req::get("/api/v1/me/signature-queue").auth(&supervisors[s].token))
    };
    let next = AtomicUsize::new(0);
    let to_sign: Vec<(String, String)> = supervisors
        .iter()
        .flat_map(|s| s.awaiting.iter().map(|a| (s.token.clone(), a.clone())))
        .collect();
    let sign = |_, _| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        to_sign.get(i).map(|(tok, a)| {
            Req::post(&format!("/api/v1/assessments/{a}/sign"))
                .auth(tok)
                .json(json!({"feedback_next_steps": "Fortsätt så."}))
        })
    };
    let progress = |cl, n| {
        let t = pick(cl, n);
        Some(Req::get(&format!("/api/v1/enrolments/{}/progress", t.enrolment)).auth(&t.token))
    };
    let rate = args.rate;
    if let Some(seconds) = args.soak {
        // Mostly reads, as the day goes: one write (an activity) in seven requests.
        let mixed = |cl: usize, n: usize| match n % 7 {
            0 => me(cl, n),
            1 | 4 => list(cl, n),
            2 => plan(cl, n),
            3 => log(cl, n),
            5 => queue(cl, n),
            _ => progress(cl, n),
        };
        let sqlite = !bench_config(&dir, args.pool_size).is_postgres();
        let wal = sqlite.then(|| {
            let db = bench_config(&dir, args.pool_size).database_url;
            PathBuf::from(format!("{db}-wal"))
        });
        let flat = soak::Soak {
            server: run.server,
            addr: run.addr.clone(),
            clients: args.clients,
            rate,
            seconds,
            every: args.report_every,
            wal,
        }
        .run(&mixed);
        server.stop();
        if args.dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::process::exit(if flat { 0 } else { 1 });
    }
    if let Some(seconds) = args.two_nodes {
        let ok = split_over_two_nodes(&dir, &args, run.server, &trainees, seconds);
        server.stop();
        if args.dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::process::exit(if ok { 0 } else { 1 });
    }
    let mut capacities = Vec::new();
    // The latency objectives of the capacity search (issue 19): p99 25 ms for a write,
    // 10 ms for a read of one user's data. Signing is left out: it uses up the finite
    // queue of assessments the data set holds.
    let mut both = |name: &'static str, objective_ms: Option<f64>, make: Make| {
        results.push(run.saturate(name, make));
        paced.push(run.at_rate(name, rate, make));
        if let Some(objective_ms) = objective_ms {
            capacities.push(run.capacity(name, objective_ms, args.capacity_seconds, make));
        }
    };
    both("authenticated read: GET /me", Some(10.0), &me);
    both(
        "log an activity (delmål, Idempotency-Key)",
        Some(25.0),
        &log,
    );
    both("list my records by delmål (phone)", Some(10.0), &list);
    both(
        "one trainee's plan: GET /enrolments/{id}",
        Some(10.0),
        &plan,
    );
    both("supervisor's signature queue", Some(10.0), &queue);
    both("sign an assessment", None, &sign);
    both(
        "trainee progress (delmål, checklist, pace)",
        Some(10.0),
        &progress,
    );
    // The heavy reads: a director or an assessor at a time, not 64 at once.
    run.clients = 2;
    let cohort = trainees.len().min(args.cohort.max(1));
    let cohort_name: &'static str =
        Box::leak(format!("cohort overview ({cohort} trainees), 2 clients").into_boxed_str());
    results.push(run.saturate(cohort_name, &|_, _| {
        Some(Req::get("/api/v1/cohort-overview").auth(&director))
    }));
    let rss_before = run.server.rss_mb_now();
    let t0 = &trainees[0];
    let dossier = |accept: &'static str| {
        move |_: usize, _: usize| {
            Some(
                Req::get(&format!("/api/v1/enrolments/{}/dossier", t0.enrolment))
                    .auth(&t0.token)
                    .header("Accept", accept),
            )
        }
    };
    results.push(run.saturate(
        "dossier JSON (1,000 records), 2 clients",
        &dossier("application/json"),
    ));
    results.push(
        run.saturate("dossier JSON uncompressed, 2 clients", &|c, n| {
            dossier("application/json")(c, n).map(Req::uncompressed)
        }),
    );
    results.push(run.saturate(
        "dossier PDF (1,000 records), 2 clients",
        &dossier("application/pdf"),
    ));
    let dossiers_served = results[results.len() - 3..]
        .iter()
        .map(|r| r.requests)
        .sum::<usize>();
    let rss_after = run.server.rss_mb_now();
    let ceiling = results[0].rate();
    println!();
    println!(
        "{:<46} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "ceiling",
        "errors",
        "SQL",
        "seq ms",
        "cpu ms",
        "db cpu",
        "disk KB",
        "KB"
    );
    for r in results.iter().filter(|r| r.requests > 0) {
        println!(
            "{:<46} {:>9.0} {:>8.2} {:>8.2} {:>7.0}% {:>7} {:>6.1} {:>8.2} {:>8.3} {:>8.3} {:>7.1} {:>7.1}",
            r.name,
            r.rate(),
            r.pct(0.5),
            r.pct(0.99),
            100.0 * r.rate() / ceiling,
            r.errors,
            r.statements,
            r.probe_ms,
            r.cpu_ms,
            r.db_cpu_ms,
            r.disk_kb,
            r.kb
        );
    }
    if paced.iter().any(|r| r.requests > 0) {
        println!();
        println!(
            "{:<46} {:>9} {:>9} {:>8} {:>8} {:>7} {:>8} {:>7}",
            "at an offered rate (open loop)",
            "offered",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "cpu ms",
            "disk KB"
        );
        for r in paced.iter().filter(|r| r.requests > 0) {
            println!(
                "{:<46} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>7} {:>8.3} {:>7.1}",
                r.name,
                rate,
                r.rate(),
                r.pct(0.5),
                r.pct(0.99),
                r.errors,
                r.cpu_ms,
                r.disk_kb
            );
        }
        println!("open loop: {} clients share a schedule of {rate:.0} requests/s; latency counts from when each request was due", args.clients);
    }
    if capacities
        .iter()
        .any(|c| c.kept.is_some() || c.missed.is_some())
    {
        println!();
        println!(
            "{:<46} {:>9} {:>9} {:>8} {:>8} {:>9} {:>8} {:>11}",
            "capacity at a latency objective (open loop)",
            "p99 goal",
            "capacity",
            "p99 ms",
            "cpu ms",
            "missed at",
            "p99 ms",
            "because"
        );
        for c in capacities
            .iter()
            .filter(|c| c.kept.is_some() || c.missed.is_some())
        {
            let (kept, kept_p99, kept_cpu) = c.kept.map_or(
                ("none".to_string(), String::new(), String::new()),
                |(r, p, cpu)| (format!("{r:.0}"), format!("{p:.2}"), format!("{cpu:.3}")),
            );
            let (missed, missed_p99, why) = c.missed.map_or(
                (
                    format!("> {:.0}", c.kept.map_or(0.0, |k| k.0)),
                    String::new(),
                    "",
                ),
                |(r, p, why)| (format!("{r:.0}"), format!("{p:.2}"), why),
            );
            println!(
                "{:<46} {:>9.0} {:>9} {:>8} {:>8} {:>9} {:>8} {:>11}",
                c.name, c.objective_ms, kept, kept_p99, kept_cpu, missed, missed_p99, why
            );
        }
        println!("capacity: the highest offered rate (requests/s, {} clients, {} s a step) at which p99 stayed within the goal, with no error and the server keeping up; rates double from 250, then the gap to the first missed rate is halved three times", args.clients, args.capacity_seconds);
    }
    println!();
    println!("SQL: statements per request (BEGIN/COMMIT included), counted by the server over {} sequential requests; seq ms: their mean latency; cpu ms: server CPU time per request under load; db cpu: PostgreSQL's CPU time per request (its processes on this machine; 0 on SQLite, which runs inside the server); disk KB: read from storage per request (not from the page cache); KB: response body", args.probe);
    println!("raw insert speed beside the write scenarios: {insert_rate:.0} rows/s");
    println!(
        "peak resident memory: server process {:.0} MB; bench process (seeding, {} client threads) {:.0} MB",
        server.peak_rss_mb(),
        args.clients,
        peak_rss_mb("/proc/self/status")
    );
    println!(
        "server resident memory before the dossier scenarios {rss_before:.0} MB, after {dossiers_served} dossiers {rss_after:.0} MB"
    );
    server.stop();
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `--two-nodes`: a second server on the same data set beside the first, both driven.
fn split_over_two_nodes(
    dir: &std::path::Path,
    args: &Args,
    first: &Server,
    trainees: &[Trainee],
    seconds: u64,
) -> bool {
    let second = match Server::start(dir, args.pool_size) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: the second node: {e}");
            return false;
        }
    };
    let state = match AppState::new(bench_config(dir, args.pool_size), Arc::new(SystemClock)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: {e}");
            second.stop();
            return false;
        }
    };
    println!(
        "two nodes: {} and {}, {} clients each, {seconds} s",
        first.base,
        second.base,
        (args.clients / 2).max(1)
    );
    let ok = two_nodes::TwoNodes {
        nodes: [first, &second],
        clients: args.clients,
        seconds,
        trainees,
        pool: &state.pool,
    }
    .run();
    second.stop();
    ok
}
