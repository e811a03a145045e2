//! The server under test: a child process of this binary (`--serve`) that counts its SQL
//! statements, and the bench's handle on it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use eportfolio::clock::SystemClock;
use eportfolio::{AppState, Config};

pub(crate) fn peak_rss_mb(status: &str) -> f64 {
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
pub(crate) fn bench_config(dir: &Path, pool_size: Option<u32>) -> Config {
    let mut config = Config::defaults();
    config.data_dir = dir.to_path_buf();
    config.database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| dir.join("bench.sqlite3").to_string_lossy().into_owned());
    if let Some(n) = pool_size {
        config.db_pool_size = n;
    }
    config.mail = eportfolio::config::MailTransportConfig::Outbox(dir.join("outbox"));
    // `METRICS_BIND=127.0.0.1:9464 bench ...` measures the cost of recording metrics.
    config.metrics_bind = std::env::var("METRICS_BIND")
        .ok()
        .and_then(|v| v.parse().ok());
    config
}

/// SQL statements the server has run (its own process).
pub(crate) static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// Counts statements; with `BENCH_SQL_LOG=1` also prints each to stderr.
pub(crate) fn count_statements() -> Option<Box<dyn diesel::connection::Instrumentation>> {
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
pub(crate) fn serve(dir: &Path, pool_size: Option<u32>) -> ! {
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
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) stdin: ChildStdin,
    pub(crate) stdout: BufReader<ChildStdout>,
    pub(crate) base: String,
}

impl Server {
    pub(crate) fn start(dir: &Path, pool_size: Option<u32>) -> Result<Server, String> {
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

    pub(crate) fn statements(&mut self) -> u64 {
        let mut line = String::new();
        if writeln!(self.stdin, "count").is_err() || self.stdout.read_line(&mut line).is_err() {
            return 0;
        }
        line.trim().parse().unwrap_or(0)
    }

    /// CPU seconds the server has used (user + system), from /proc (clock ticks of 10 ms).
    pub(crate) fn cpu_seconds(&self) -> f64 {
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

    /// CPU seconds of the PostgreSQL server on this machine (every process named
    /// `postgres`: the backends serving the pool, the WAL writer, the checkpointer), so
    /// that a PostgreSQL run's cost per request counts the database's work too, as the
    /// SQLite run's `cpu ms` does (SQLite runs inside the server). 0 if none runs here.
    pub(crate) fn database_cpu_seconds() -> f64 {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return 0.0;
        };
        procs
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| stat.contains("(postgres)"))
            .map(|stat| {
                let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                (ticks(11) + ticks(12)) / 100.0
            })
            .sum()
    }

    /// Bytes the server has read from storage (`read_bytes` in /proc/PID/io): reads the
    /// page cache answered are not counted.
    pub(crate) fn disk_read_bytes(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/io", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("read_bytes:").map(|v| v.trim().to_string()))
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn peak_rss_mb(&self) -> f64 {
        peak_rss_mb(&format!("/proc/{}/status", self.child.id()))
    }

    /// Resident memory now (VmRSS), to see whether it grows with the dossiers served.
    pub(crate) fn rss_mb_now(&self) -> f64 {
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

    pub(crate) fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}
