//! What the servers of this test process log, as production logs it (the servers run on
//! their own threads, so the subscriber is the global one). Tests that read the log call
//! [`capture`]; with `ROUTE_COVERAGE_FILE` set, every test app captures from its start
//! and the log also goes to that file, from which CI tells which operations the suite
//! called with success and refused (`.ci/route_coverage.py`).

use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, Once};

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static FILE: Mutex<Option<File>> = Mutex::new(None);
static CAPTURE: Once = Once::new();

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = LOG.lock() {
            log.extend_from_slice(buf);
        }
        if let Ok(mut file) = FILE.lock() {
            if let Some(f) = file.as_mut() {
                // One write per event: lines of parallel tests do not interleave.
                f.write_all(buf)?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// From now on everything the servers of this process log also lands in [`text`].
pub fn capture() {
    CAPTURE.call_once(|| {
        if let Some(path) = std::env::var_os("ROUTE_COVERAGE_FILE") {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("ROUTE_COVERAGE_FILE {path:?}: {e}"));
            *FILE.lock().expect("file") = Some(file);
        }
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(|| LogWriter)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("global subscriber");
    });
}

/// Called by every test app: records routes when CI asks for it.
pub fn capture_if_recording() {
    if std::env::var_os("ROUTE_COVERAGE_FILE").is_some() {
        capture();
    }
}

/// Everything captured so far.
pub fn text() -> String {
    String::from_utf8_lossy(&LOG.lock().expect("log")).into_owned()
}
