//! Counting the SQL statements a test app runs (issue 19): diesel's instrumentation on
//! the connections of the databases a test watches, so a test can pin how many
//! statements one request costs. Connections of other databases (the other tests of
//! the process) are not counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent};

/// The watched databases (their URLs) and their statement counts.
static WATCHED: Mutex<Vec<(String, Arc<AtomicU64>)>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// One connection's counter: set when the connection is opened, if its database is
/// watched.
struct Counter(Option<Arc<AtomicU64>>);

impl Instrumentation for Counter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                let watched = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
                self.0 = watched
                    .iter()
                    .find(|(u, _)| u == url)
                    .map(|(_, n)| n.clone());
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                if let Some(n) = &self.0 {
                    // SQLite's checkpointer thread and the connection set-up run
                    // PRAGMAs beside the requests; no request runs one.
                    if !query.to_string().starts_with("PRAGMA") {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
    }
}

fn counter() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(Counter(None)))
}

/// Counts the statements of every connection to `database_url` opened from now on
/// (call it from `TestApp::start_with`'s closure, before the app opens its pool).
pub fn watch(database_url: &str) {
    INSTALL.call_once(|| {
        diesel::connection::set_default_instrumentation(counter).expect("instrumentation");
    });
    WATCHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((database_url.to_string(), Arc::new(AtomicU64::new(0))));
}

/// Statements run so far on the watched database.
pub fn total(database_url: &str) -> u64 {
    let watched = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    watched
        .iter()
        .find(|(u, _)| u == database_url)
        .map(|(_, n)| n.load(Ordering::Relaxed))
        .expect("the database is watched")
}

/// Waits until no statement has run for 100 ms (at most 5 s): the work a response
/// leaves behind (its stored idempotent answer) has been done.
fn settle(database_url: &str) -> u64 {
    let end = Instant::now() + Duration::from_secs(5);
    let mut last = total(database_url);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = total(database_url);
        if now == last || Instant::now() > end {
            return now;
        }
        last = now;
    }
}

/// The fewest statements `request` ran in `tries` tries: the server's background tasks
/// (the outbox's poll) may add theirs to a try, never take any away.
pub fn fewest(database_url: &str, tries: usize, mut request: impl FnMut(usize)) -> u64 {
    (0..tries)
        .map(|n| {
            let before = settle(database_url);
            request(n);
            settle(database_url) - before
        })
        .min()
        .expect("at least one try")
}
