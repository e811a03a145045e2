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

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Parser;
use diesel::prelude::*;
use eportfolio::auth::service::{create_session, ClientInfo};
use eportfolio::clock::{to_db, SystemClock};
use eportfolio::curriculum::templates::{
    ChecklistItem, ChecklistKind, PlacementType, TemplateContent,
};
use eportfolio::db::{self, DbConn};
use eportfolio::schema::*;
use eportfolio::{AppState, Config};
use serde_json::json;

mod client;
use client::{Pace, Req};

#[derive(Parser)]
#[command(about = "eportfolio benchmark")]
struct Args {
    /// Trainees in the data set (each with a year of records).
    #[arg(long, default_value_t = 2000)]
    trainees: usize,
    /// Concurrent HTTP clients per scenario.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
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
    /// Internal: run as the server over the data set in this directory.
    #[arg(long, hide = true)]
    serve: Option<PathBuf>,
}

/// xorshift64*: a fixed seed gives the same data set every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn id(rng: &mut Rng) -> String {
    uuid::Builder::from_random_bytes(
        ((rng.next() as u128) << 64 | rng.next() as u128).to_le_bytes(),
    )
    .into_uuid()
    .to_string()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Trainee {
    enrolment: String,
    token: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Supervisor {
    token: String,
    awaiting: Vec<String>,
}

/// Who the scenarios act as, kept beside a data set so `--reuse` can skip seeding.
#[derive(serde::Serialize, serde::Deserialize)]
struct People {
    trainees: Vec<Trainee>,
    supervisors: Vec<Supervisor>,
    director: String,
    insert_rate: f64,
}

fn item(kind: ChecklistKind, title: &str, delmal: &[&str]) -> ChecklistItem {
    ChecklistItem {
        id: None,
        kind,
        title: title.into(),
        description: None,
        assessment_type: None,
        count: None,
        delmal: delmal.iter().map(|d| d.to_string()).collect(),
    }
}

/// Inserts the data set directly (the API is what is measured, not the seeding), and
/// returns tokens for the people the scenarios act as. Counts rows for the raw speed.
fn seed(
    state: &AppState,
    args: &Args,
    rows: &AtomicUsize,
) -> Result<(Vec<Trainee>, Vec<Supervisor>, String), eportfolio::error::AppError> {
    let mut rng = Rng(0x5EED_2026_1124);
    let now = Utc::now();
    let at = to_db(now);
    let mut conn = state.pool.get()?;
    let conn: &mut DbConn = &mut conn;
    let regulation: String = regulations::table
        .filter(regulations::code.eq("bt-2021"))
        .select(regulations::id)
        .first(conn)?;
    let org = id(&mut rng);
    diesel::insert_into(organisations::table)
        .values((
            organisations::id.eq(&org),
            organisations::kind.eq("region"),
            organisations::name.eq("Bench Region"),
            organisations::version.eq(1),
            organisations::created_at.eq(at),
            organisations::updated_at.eq(at),
        ))
        .execute(conn)?;
    // Care providers of 500 trainees each: a director follows one (the cohort overview).
    let mut providers = Vec::new();
    for p in 0..args.trainees.div_ceil(COHORT).max(1) {
        let pid = id(&mut rng);
        diesel::insert_into(organisations::table)
            .values((
                organisations::id.eq(&pid),
                organisations::parent_id.eq(Some(&org)),
                organisations::kind.eq("care_provider"),
                organisations::name.eq(format!("Vårdgivare {p}")),
                organisations::version.eq(1),
                organisations::created_at.eq(at),
                organisations::updated_at.eq(at),
            ))
            .execute(conn)?;
        providers.push(pid);
    }
    let content = TemplateContent {
        name: "BT".into(),
        specialty: None,
        duration_months: 12,
        supervision_every_days: 14,
        placement_types: ["allmanmedicin", "akut", "geriatrik", "psykiatri"]
            .iter()
            .map(|k| PlacementType {
                key: k.to_string(),
                name: k.to_string(),
                months: 3,
                supervision_every_days: 14,
                counts_as: vec![],
                checklist: vec![item(ChecklistKind::LearningActivity, "Aktivitet", &["BT1"])],
            })
            .collect(),
        programme_items: vec![],
    };
    let template = id(&mut rng);
    diesel::insert_into(programme_templates::table)
        .values((
            programme_templates::id.eq(id(&mut rng)),
            programme_templates::template_id.eq(&template),
            programme_templates::version.eq(1),
            programme_templates::organisation_id.eq(&org),
            programme_templates::regulation_id.eq(&regulation),
            programme_templates::name.eq("BT"),
            programme_templates::content.eq(serde_json::to_string(&content).unwrap_or_default()),
            programme_templates::created_at.eq(at),
        ))
        .execute(conn)?;
    let user = |conn: &mut DbConn,
                rng: &mut Rng,
                email: String,
                role: &str|
     -> Result<String, eportfolio::error::AppError> {
        let uid = id(rng);
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&uid),
                users::email.eq(email),
                users::display_name.eq("Bench"),
                users::email_mfa_enabled.eq(0),
                users::status.eq("active"),
                users::version.eq(1),
                users::created_at.eq(at),
                users::updated_at.eq(at),
                users::notification_mode.eq("immediate"),
            ))
            .execute(conn)?;
        diesel::insert_into(user_roles::table)
            .values((
                user_roles::id.eq(id(rng)),
                user_roles::user_id.eq(&uid),
                user_roles::role.eq(role),
                user_roles::organisation_id.eq(&org),
                user_roles::created_at.eq(at),
            ))
            .execute(conn)?;
        Ok(uid)
    };
    let token = |conn: &mut DbConn, uid: &str| -> Result<String, eportfolio::error::AppError> {
        let s = create_session(
            conn,
            &state.config,
            now,
            uid,
            "totp",
            &ClientInfo::default(),
        )?;
        state
            .jwt
            .issue(uid, &s.session_id, now, Duration::from_secs(3600))
    };
    let supervisors_n = (args.trainees / 8).max(1);
    let mut supervisors = Vec::new();
    let mut sup_ids = Vec::new();
    db::write_tx(conn, |conn| {
        for s in 0..supervisors_n {
            let uid = user(
                conn,
                &mut rng,
                format!("handledare{s}@bench.example"),
                "supervisor",
            )?;
            supervisors.push(Supervisor {
                token: token(conn, &uid)?,
                awaiting: Vec::new(),
            });
            sup_ids.push(uid);
        }
        Ok(())
    })?;
    let director = db::write_tx(conn, |conn| {
        let uid = user(
            conn,
            &mut rng,
            "studierektor@bench.example".into(),
            "supervisor",
        )?;
        diesel::insert_into(user_roles::table)
            .values((
                user_roles::id.eq(id(&mut rng)),
                user_roles::user_id.eq(&uid),
                user_roles::role.eq("director_of_studies"),
                user_roles::organisation_id.eq(&providers[0]),
                user_roles::created_at.eq(at),
            ))
            .execute(conn)?;
        token(conn, &uid)
    })?;
    let codes: Vec<String> = (1..=18).map(|i| format!("BT{i}")).collect();
    let judgements = serde_json::to_string(
        &codes
            .iter()
            .map(|c| json!({"code": c, "judgement": "progressing", "comment": ""}))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let mut trainees = Vec::new();
    for t in 0..args.trainees {
        db::write_tx(conn, |conn| {
            let uid = user(conn, &mut rng, format!("bt{t}@bench.example"), "trainee")?;
            let enrolment = id(&mut rng);
            diesel::insert_into(enrolments::table)
                .values((
                    enrolments::id.eq(&enrolment),
                    enrolments::trainee_id.eq(&uid),
                    enrolments::organisation_id.eq(&providers[t / COHORT]),
                    enrolments::template_id.eq(&template),
                    enrolments::template_version.eq(1),
                    enrolments::track.eq("bt_standalone"),
                    enrolments::start_date.eq("2026-01-05"),
                    enrolments::planned_end.eq("2026-12-31"),
                    enrolments::extent_percent.eq(100),
                    enrolments::status.eq("active"),
                    enrolments::version.eq(1),
                    enrolments::created_at.eq(at),
                    enrolments::updated_at.eq(at),
                ))
                .execute(conn)?;
            let sup = t % supervisors_n;
            diesel::insert_into(assignments::table)
                .values((
                    assignments::id.eq(id(&mut rng)),
                    assignments::enrolment_id.eq(&enrolment),
                    assignments::user_id.eq(&sup_ids[sup]),
                    assignments::role.eq("main_supervisor"),
                    assignments::valid_from.eq("2026-01-05"),
                    assignments::created_at.eq(at),
                    assignments::updated_at.eq(at),
                ))
                .execute(conn)?;
            rows.fetch_add(3, Ordering::Relaxed);
            // Four placements of three months, each ended one with a signed summary.
            let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default();
            for (k, kind) in ["allmanmedicin", "akut", "geriatrik", "psykiatri"]
                .iter()
                .enumerate()
            {
                let pid = id(&mut rng);
                let from = start + chrono::Months::new(3 * k as u32);
                let to =
                    start + chrono::Months::new(3 * (k as u32 + 1)) - chrono::Duration::days(1);
                diesel::insert_into(placements::table)
                    .values((
                        placements::id.eq(&pid),
                        placements::enrolment_id.eq(&enrolment),
                        placements::placement_type.eq(kind),
                        placements::start_date.eq(from.to_string()),
                        placements::end_date.eq(to.to_string()),
                        placements::version.eq(1),
                        placements::created_at.eq(at),
                        placements::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                if k < 3 {
                    diesel::insert_into(summary_assessments::table)
                        .values((
                            summary_assessments::id.eq(id(&mut rng)),
                            summary_assessments::enrolment_id.eq(&enrolment),
                            summary_assessments::placement_id.eq(&pid),
                            summary_assessments::author_id.eq(&sup_ids[sup]),
                            summary_assessments::judgements.eq(&judgements),
                            summary_assessments::overall.eq("Utvecklas väl."),
                            summary_assessments::status.eq("signed"),
                            summary_assessments::signed_at.eq(Some(at)),
                            summary_assessments::signature_method.eq(Some("totp")),
                            summary_assessments::content_hash.eq(Some("bench")),
                            summary_assessments::version.eq(1),
                            summary_assessments::created_at.eq(at),
                            summary_assessments::updated_at.eq(at),
                        ))
                        .execute(conn)?;
                    rows.fetch_add(1, Ordering::Relaxed);
                }
                rows.fetch_add(1, Ordering::Relaxed);
            }
            // The first trainee has a dossier of 1,000 records.
            let activities_n = if t == 0 {
                DOSSIER_RECORDS - 40 - 29 - 3
            } else {
                args.activities
            };
            for a in 0..activities_n {
                let aid = id(&mut rng);
                let day = 1 + rng.below(360);
                let date = (chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap_or_default()
                    + chrono::Duration::days(day as i64))
                .to_string();
                diesel::insert_into(activities::table)
                    .values((
                        activities::id.eq(&aid),
                        activities::enrolment_id.eq(&enrolment),
                        activities::kind.eq("clinical_work"),
                        activities::title
                            .eq(format!("Aktivitet {a}: patientarbete på vårdavdelningen")),
                        activities::start_date.eq(date),
                        activities::template_version.eq(1),
                        activities::reflection
                            .eq("Reflektion över dagens patienter och vad jag lärde mig."),
                        activities::version.eq(1),
                        activities::created_by.eq(&uid),
                        activities::created_at.eq(at),
                        activities::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                // One or two distinct delmål (a repeated link would abort the whole
                // transaction on PostgreSQL).
                let first = rng.below(codes.len() as u64) as usize;
                let mut picked = vec![first];
                if rng.below(2) == 1 {
                    picked.push(
                        (first + 1 + rng.below(codes.len() as u64 - 1) as usize) % codes.len(),
                    );
                }
                for c in picked {
                    diesel::insert_into(record_delmal::table)
                        .values((
                            record_delmal::record_id.eq(&aid),
                            record_delmal::code.eq(&codes[c]),
                            record_delmal::enrolment_id.eq(&enrolment),
                            record_delmal::record_type.eq("activity"),
                        ))
                        .execute(conn)?;
                    rows.fetch_add(1, Ordering::Relaxed);
                }
                rows.fetch_add(1, Ordering::Relaxed);
            }
            for a in 0..40 {
                let aid = id(&mut rng);
                let status = if a < 30 {
                    "signed"
                } else {
                    "awaiting_signature"
                };
                diesel::insert_into(assessments::table)
                    .values((
                        assessments::id.eq(&aid),
                        assessments::enrolment_id.eq(&enrolment),
                        assessments::instrument.eq(if a % 2 == 0 { "mini_cex" } else { "dops" }),
                        assessments::status.eq(status),
                        assessments::assessor_id.eq(&sup_ids[sup]),
                        assessments::performed_on.eq("2026-06-01"),
                        assessments::context.eq("{}"),
                        assessments::ratings.eq(r#"{"communication": 6}"#),
                        assessments::feedback_strengths.eq(""),
                        assessments::feedback_next_steps.eq("Fortsätt."),
                        assessments::trainee_reflection.eq(""),
                        assessments::created_by.eq(&uid),
                        assessments::requested_at.eq(at),
                        assessments::version.eq(1),
                        assessments::created_at.eq(at),
                        assessments::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                rows.fetch_add(1, Ordering::Relaxed);
                if status == "awaiting_signature" {
                    supervisors[sup].awaiting.push(aid);
                }
            }
            for s in 0..29 {
                let tid = id(&mut rng);
                diesel::insert_into(talks::table)
                    .values((
                        talks::id.eq(&tid),
                        talks::enrolment_id.eq(&enrolment),
                        talks::kind.eq(if s < 26 { "supervision" } else { "handover" }),
                        talks::held_on.eq("2026-05-01"),
                        talks::topics.eq(r#"["Handledning"]"#),
                        talks::notes.eq("Anteckningar."),
                        talks::agreed_actions.eq(""),
                        talks::content.eq("null"),
                        talks::status.eq("confirmed"),
                        talks::created_by.eq(&uid),
                        talks::version.eq(1),
                        talks::created_at.eq(at),
                        talks::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                for (u, role) in [(&uid, "trainee"), (&sup_ids[sup], "supervisor")] {
                    diesel::insert_into(talk_participants::table)
                        .values((
                            talk_participants::talk_id.eq(&tid),
                            talk_participants::user_id.eq(u),
                            talk_participants::role.eq(role),
                            talk_participants::confirmed_at.eq(at),
                        ))
                        .execute(conn)?;
                }
                rows.fetch_add(3, Ordering::Relaxed);
            }
            trainees.push(Trainee {
                enrolment,
                token: token(conn, &uid)?,
            });
            Ok(())
        })?;
    }
    Ok((trainees, supervisors, director))
}

/// Trainees per care provider, as one director's cohort.
const COHORT: usize = 500;
/// Records of the trainee whose dossier is built.
const DOSSIER_RECORDS: usize = 1000;

struct Outcome {
    name: &'static str,
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
    /// SQL statements per request, from sequential probe requests.
    statements: f64,
    /// Mean latency of the sequential probe requests (no concurrency).
    probe_ms: f64,
    /// Server CPU time per request during the timed run (robust on a shared machine).
    cpu_ms: f64,
    /// Bytes the server read from storage per request during the timed run (pages the
    /// operating system no longer had cached), in KB.
    disk_kb: f64,
    /// Mean response body size of the probe requests.
    kb: f64,
}

impl Outcome {
    fn empty(name: &'static str) -> Outcome {
        Outcome {
            name,
            requests: 0,
            errors: 0,
            seconds: 0.0,
            latencies_ms: Vec::new(),
            statements: 0.0,
            probe_ms: 0.0,
            cpu_ms: 0.0,
            disk_kb: 0.0,
            kb: 0.0,
        }
    }
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_ms.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_ms[i]
    }
}

/// How the scenarios run: concurrency, duration, and the sequential probe that counts the
/// server's SQL statements per request.
struct Runner<'a> {
    only: Option<String>,
    clients: usize,
    seconds: u64,
    probe: usize,
    server: &'a mut Server,
    /// host:port of the server.
    addr: String,
}

type Make<'a> = &'a (dyn Fn(usize, usize) -> Option<Req> + Sync);

impl Runner<'_> {
    fn skip(&self, name: &str) -> bool {
        self.only
            .as_deref()
            .is_some_and(|o| !name.contains(o) && !name.starts_with("ceiling"))
    }

    /// First `probe` sequential requests (one user, one connection) to count the
    /// server's statements per request, then `make(client, n)` from `clients`
    /// connections for `seconds` (or until it returns None), each sending again as soon
    /// as it has its answer: the most the server can do.
    fn saturate(&mut self, name: &'static str, make: Make) -> Outcome {
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
    fn at_rate(&mut self, name: &'static str, rate: f64, make: Make) -> Outcome {
        if self.skip(name) || rate <= 0.0 {
            return Outcome::empty(name);
        }
        self.timed(name, Pace::Rate(rate), AT_RATE_OFFSET, make)
    }

    /// `make` from `clients` connections for `seconds`, with the server's CPU time and
    /// storage reads over that time.
    fn timed(&mut self, name: &'static str, pace: Pace, first: usize, make: Make) -> Outcome {
        let cpu_before = self.server.cpu_seconds();
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
            disk_kb: self.server.disk_read_bytes().saturating_sub(disk_before) as f64
                / 1024.0
                / requests,
            ..Outcome::empty(name)
        }
    }
}

/// Request numbers of the open-loop runs start here, so their idempotency keys and
/// titles differ from the closed loop's.
const AT_RATE_OFFSET: usize = 10_000_000;

fn peak_rss_mb(status: &str) -> f64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The server's configuration: its own defaults, with the bench's directory and database.
fn bench_config(dir: &Path, pool_size: Option<u32>) -> Config {
    let mut config = Config::defaults();
    config.data_dir = dir.to_path_buf();
    config.database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| dir.join("bench.sqlite3").to_string_lossy().into_owned());
    if let Some(n) = pool_size {
        config.db_pool_size = n;
    }
    config.mail = eportfolio::config::MailTransportConfig::Outbox(dir.join("outbox"));
    config
}

/// SQL statements the server has run (its own process).
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// Counts statements; with `BENCH_SQL_LOG=1` also prints each to stderr.
fn count_statements() -> Option<Box<dyn diesel::connection::Instrumentation>> {
    let log = std::env::var_os("BENCH_SQL_LOG").is_some();
    Some(Box::new(
        move |event: diesel::connection::InstrumentationEvent<'_>| {
            if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event {
                STATEMENTS.fetch_add(1, Ordering::Relaxed);
                if log {
                    eprintln!("sql: {query}");
                }
            }
        },
    ))
}

/// Child mode: serve the data set on a loopback port, print the address, answer
/// `count` on stdin with the statements run so far, and exit when stdin closes.
fn serve(dir: &Path, pool_size: Option<u32>) -> ! {
    eportfolio::limit_malloc_arenas();
    if let Err(e) = diesel::connection::set_default_instrumentation(count_statements) {
        eprintln!("bench server: {e}");
    }
    let state = match AppState::new(bench_config(dir, pool_size), Arc::new(SystemClock)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench server: {e}");
            std::process::exit(1);
        }
    };
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench server: {e}");
            std::process::exit(1);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("http://{addr}");
    let _ = std::io::stdout().flush();
    std::thread::spawn(|| {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin.lock().read_line(&mut line).unwrap_or(0) > 0 {
            println!("{}", STATEMENTS.load(Ordering::Relaxed));
            let _ = std::io::stdout().flush();
            line.clear();
        }
        std::process::exit(0);
    });
    let result = actix_web::rt::System::new().block_on(async move {
        match eportfolio::server(state, listener) {
            Ok(server) => server.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    if let Err(e) = result {
        eprintln!("bench server: {e}");
    }
    std::process::exit(1);
}

/// The server child process and the pipes to ask it for its statement count.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    base: String,
}

impl Server {
    fn start(dir: &Path, pool_size: Option<u32>) -> Result<Server, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // BENCH_SERVER_WRAPPER="valgrind --tool=callgrind" profiles the server.
        let wrapper = std::env::var("BENCH_SERVER_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.arg("--serve").arg(dir);
        if let Some(n) = pool_size {
            cmd.arg("--pool-size").arg(n.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("no pipes to the server".into());
        };
        let mut stdout = BufReader::new(stdout);
        let mut base = String::new();
        stdout.read_line(&mut base).map_err(|e| e.to_string())?;
        let base = base.trim().to_string();
        if base.is_empty() {
            return Err("the server did not start".into());
        }
        Ok(Server {
            child,
            stdin,
            stdout,
            base,
        })
    }

    fn statements(&mut self) -> u64 {
        let mut line = String::new();
        if writeln!(self.stdin, "count").is_err() || self.stdout.read_line(&mut line).is_err() {
            return 0;
        }
        line.trim().parse().unwrap_or(0)
    }

    /// CPU seconds the server has used (user + system), from /proc (clock ticks of 10 ms).
    fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())) else {
            return 0.0;
        };
        // Fields after the command name (which is in parentheses): state is field 3,
        // utime field 14, stime field 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Bytes the server has read from storage (`read_bytes` in /proc/PID/io): reads the
    /// page cache answered are not counted.
    fn disk_read_bytes(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/io", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("read_bytes:").map(|v| v.trim().to_string()))
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn peak_rss_mb(&self) -> f64 {
        peak_rss_mb(&format!("/proc/{}/status", self.child.id()))
    }

    /// Resident memory now (VmRSS), to see whether it grows with the dossiers served.
    fn rss_mb_now(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
            })
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }

    fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

fn main() {
    let args = Args::parse();
    if let Some(dir) = &args.serve {
        serve(dir, args.pool_size);
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
    let mut both = |name: &'static str, make: Make| {
        results.push(run.saturate(name, make));
        paced.push(run.at_rate(name, rate, make));
    };
    both("authenticated read: GET /me", &me);
    both("log an activity (delmål, Idempotency-Key)", &log);
    both("list my records by delmål (phone)", &list);
    both("one trainee's plan: GET /enrolments/{id}", &plan);
    both("supervisor's signature queue", &queue);
    both("sign an assessment", &sign);
    both("trainee progress (delmål, checklist, pace)", &progress);
    // The heavy reads: a director or an assessor at a time, not 64 at once.
    run.clients = 2;
    let cohort = trainees.len().min(COHORT);
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
        "{:<46} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6} {:>8} {:>8} {:>7} {:>7}",
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "ceiling",
        "errors",
        "SQL",
        "seq ms",
        "cpu ms",
        "disk KB",
        "KB"
    );
    for r in results.iter().filter(|r| r.requests > 0) {
        println!(
            "{:<46} {:>9.0} {:>8.2} {:>8.2} {:>7.0}% {:>7} {:>6.1} {:>8.2} {:>8.3} {:>7.1} {:>7.1}",
            r.name,
            r.rate(),
            r.pct(0.5),
            r.pct(0.99),
            100.0 * r.rate() / ceiling,
            r.errors,
            r.statements,
            r.probe_ms,
            r.cpu_ms,
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
    println!();
    println!("SQL: statements per request (BEGIN/COMMIT included), counted by the server over {} sequential requests; seq ms: their mean latency; cpu ms: server CPU time per request under load; disk KB: read from storage per request (not from the page cache); KB: response body", args.probe);
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
