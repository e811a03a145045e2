//! The SQLite writer: one thread, one connection, every write in arrival order, grouped
//! into shared commits; and the checkpointer beside it. Split from `db` (the pool and
//! the transaction helpers) so each file holds one concern.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::{Connection, RunQueryDsl};

use super::{sqlite_path, ConnectionSetup, DbConn};
use crate::error::AppError;

// ---- The SQLite writer --------------------------------------------------------------
//
// SQLite has one writer at a time. Writers on many connections find each other through
// `busy_timeout`, which sleeps and polls (1, 2, 5, 10 ... 100 ms): under load most of a
// write's latency was those sleeps. Instead every `write` goes to one thread that owns
// one connection and takes the jobs in arrival order. What is waiting when it gets to
// them runs as one group: one `BEGIN IMMEDIATE`, each job in its own savepoint (a job
// that fails is rolled back alone, with its own error), one `COMMIT`; every job's answer
// is sent only after that commit, so nothing is acknowledged before it is durable.

/// Most jobs committed together.
const GROUP_MAX: usize = 64;

/// Runs a job on the writer connection (`Ok`, with whether it needs a savepoint of its
/// own) or tells it the group could not start (`Err`); returns whether the job
/// succeeded and what to do once the group's commit is known.
type Job = Box<dyn FnOnce(Result<(&mut DbConn, bool), &str>) -> (bool, Deliver) + Send>;
type Deliver = Box<dyn FnOnce(Result<(), &str>) + Send>;

pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Cleared when the pool goes: the checkpointer stops.
    alive: Arc<AtomicBool>,
    /// Jobs sent and not yet taken into a group (the write queue's depth, for metrics).
    pub(super) queued: Arc<AtomicUsize>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.alive
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL frames (pages) beyond which the writer finishes a checkpoint itself, so that
/// the WAL starts over from its beginning. About 64 MB.
///
/// SQLite reuses the WAL from its start only when a write begins while every frame in
/// it has been copied back. Under a steady stream of writes the background checkpoint
/// never catches up with the frames appended meanwhile, so the WAL grew without bound
/// (1.4 GB after a few minutes of the bench). Between two groups no frame is appended,
/// so a checkpoint run there by the writer completes (unless a reader still needs old
/// frames, when it is tried again at the next group).
///
/// That checkpoint holds up every write queued behind it for two `fsync`s at least
/// (the WAL, then the database file), 10 to 130 ms each on the bench's virtual disk:
/// the tail of the write latency (issue 19). A logged activity appends about 33 frames
/// when writes are not grouped, so at 4,096 frames the writer stopped about every 125
/// writes (twice a second at 250 writes/s); at 16,384 about every 500. The WAL is not
/// searched beyond what the checkpoints have copied (a read starts after the frames
/// already in the database file), so a longer one costs disk, not reads.
pub(super) const WAL_RESTART_FRAMES: i64 = 16_384;

/// The WAL file's size after a restart (`journal_size_limit`), above what
/// [`WAL_RESTART_FRAMES`] lets it reach (frames of a 4 KiB page and their 24-byte
/// headers, with room for as many frames again appended while the restart waits for a
/// reader): a restart then reuses the file instead of truncating it, which cost the
/// writer another 10 to 15 ms.
pub(crate) const WAL_SIZE_LIMIT_BYTES: i64 = 256 * 1024 * 1024;

impl Writer {
    pub(super) fn start(url: &str) -> Result<Writer, AppError> {
        let open = {
            let url = url.to_string();
            move || -> Result<DbConn, AppError> {
                let mut conn = DbConn::establish(&url)
                    .map_err(|e| AppError::Config(format!("cannot open database {url}: {e}")))?;
                ConnectionSetup
                    .setup(&mut conn)
                    .map_err(|e| AppError::Config(format!("database setup: {e}")))?;
                Ok(conn)
            }
        };
        let mut conn = open()?;
        // The writer does not checkpoint on commit (an automatic checkpoint copies up to
        // 1,000 pages and syncs, stalling every write waiting behind it); a thread of its
        // own checkpoints passively beside it. A larger page cache keeps the indexes'
        // upper levels of a growing database in memory.
        conn.batch_execute("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -8000;")
            .map_err(|e| AppError::Config(format!("database setup: {e}")))?;
        let mut checkpointer = open()?;
        let alive = Arc::new(AtomicBool::new(true));
        let wal_long = Arc::new(AtomicBool::new(false));
        let (jobs, queue) = mpsc::channel::<Job>();
        let restart = wal_long.clone();
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = queued.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                writer_loop(conn, queue, restart, &taken, move || {
                    let mut c = open()?;
                    c.batch_execute("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -8000;")
                        .map_err(|e| AppError::Config(format!("database setup: {e}")))?;
                    Ok(c)
                })
            })
            .map_err(|e| AppError::Config(format!("cannot start the database writer: {e}")))?;
        let running = alive.clone();
        let file = sqlite_path(url).to_path_buf();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut synced = Checkpointed::default();
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    match checkpoint(&mut checkpointer) {
                        Ok(done) => {
                            if done != synced && done.checkpointed > 0 {
                                sync_database_file(&file);
                                synced = done;
                            }
                            wal_long.store(done.log > WAL_RESTART_FRAMES, Ordering::Relaxed)
                        }
                        Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
                    }
                }
            })
            .map_err(|e| AppError::Config(format!("cannot start the checkpointer: {e}")))?;
        Ok(Writer {
            jobs,
            alive,
            queued,
        })
    }
}

/// What a passive checkpoint reports: frames in the WAL, and how many of them are in the
/// database file now.
#[derive(diesel::QueryableByName, Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Checkpointed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    log: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    checkpointed: i64,
}

/// Flushes the pages the checkpoints copied into the database file to disk, here on the
/// checkpointer's thread rather than in the writer's checkpoint.
///
/// A passive checkpoint that did not reach the end of the WAL (writes went on meanwhile,
/// as they do under load) copies pages without syncing the file: SQLite syncs it only
/// when a checkpoint completes. The one that completes is the writer's (see
/// [`WAL_RESTART_FRAMES`]), so it paid for every page copied since the last sync: 15 to
/// 70 ms with a restart every 4,096 frames, 0.3 s with one every 65,536, every write
/// waiting behind it. `fdatasync` on a descriptor of our own flushes the file's pages
/// whichever descriptor wrote them; failing here costs nothing but that head start.
fn sync_database_file(path: &std::path::Path) {
    match std::fs::File::open(path).and_then(|f| f.sync_data()) {
        Ok(()) => {}
        Err(e) => tracing::warn!(error = %e, "syncing the database file failed"),
    }
}

/// A passive checkpoint (copies what no reader still needs, waits for nobody).
fn checkpoint(conn: &mut DbConn) -> Result<Checkpointed, AppError> {
    let DbConn::Sqlite(c) = conn else {
        return Ok(Checkpointed::default());
    };
    Ok(diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(c)?)
}

fn writer_loop(
    mut conn: DbConn,
    queue: mpsc::Receiver<Job>,
    wal_long: Arc<AtomicBool>,
    queued: &AtomicUsize,
    open: impl Fn() -> Result<DbConn, AppError>,
) {
    // Ends when every pool (and so every sender) is gone.
    while let Ok(first) = queue.recv() {
        if wal_long.swap(false, Ordering::Relaxed) {
            // See WAL_RESTART_FRAMES; the next group's first write starts the WAL over.
            if let Err(e) = checkpoint(&mut conn) {
                tracing::warn!(error = %e, "checkpoint failed");
            }
        }
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        queued.fetch_sub(group.len(), Ordering::Relaxed);
        crate::telemetry::metrics::group_commit(group.len());
        let healthy =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_group(&mut conn, group)))
                .unwrap_or(false);
        if !healthy {
            // A job panicked or the transaction state is unknown: start afresh.
            match open() {
                Ok(fresh) => conn = fresh,
                Err(e) => tracing::error!(error = %e, "database writer cannot reconnect"),
            }
        }
    }
}

/// Runs one group in one transaction; false if the connection should be replaced.
fn run_group(conn: &mut DbConn, group: Vec<Job>) -> bool {
    if let Err(e) = begin_write(conn) {
        let msg = e.to_string();
        for job in group {
            job(Err(&msg)).1(Err(&msg));
        }
        return false;
    }
    // A job alone needs no savepoint: if it fails, the whole transaction is rolled back.
    let alone = group.len() == 1;
    let mut failed = false;
    let delivers: Vec<Deliver> = group
        .into_iter()
        .map(|job| {
            let (ok, deliver) = job(Ok((&mut *conn, !alone)));
            failed |= !ok;
            deliver
        })
        .collect();
    if alone && failed {
        let rolled_back =
            <DbConn as Connection>::TransactionManager::rollback_transaction(conn).is_ok();
        for deliver in delivers {
            deliver(Err("rolled back"));
        }
        return rolled_back;
    }
    let committed = <DbConn as Connection>::TransactionManager::commit_transaction(conn);
    let healthy = match &committed {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            <DbConn as Connection>::TransactionManager::rollback_transaction(conn).is_ok()
        }
    };
    let outcome = committed.map_err(|e| e.to_string());
    for deliver in delivers {
        deliver(outcome.as_ref().map(|_| ()).map_err(String::as_str));
    }
    healthy
}

pub(super) fn begin_write(conn: &mut DbConn) -> Result<(), AppError> {
    match conn {
        DbConn::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        DbConn::Pg(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    Ok(())
}

impl Writer {
    /// Queues `f` without waiting for it; a failure is logged.
    pub(super) fn submit_detached<F>(&self, f: F) -> Result<(), AppError>
    where
        F: FnOnce(&mut DbConn) -> Result<(), AppError> + Send + 'static,
    {
        self.submit(f, |answer| {
            if let Err(e) = answer {
                tracing::error!(error = %e, "a queued write failed");
            }
        })
    }

    /// Queues `f`; `answer` gets its result once its group has committed.
    pub(super) fn submit<T, F, A>(&self, f: F, answer: A) -> Result<(), AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
        A: FnOnce(Result<T, AppError>) + Send + 'static,
    {
        let job: Job = Box::new(move |conn| {
            // In a group, its own savepoint: a failing job is rolled back alone.
            let result = match conn {
                Ok((conn, true)) => conn.transaction(f),
                Ok((conn, false)) => f(conn),
                Err(e) => Err(AppError::Unavailable(format!("database: {e}"))),
            };
            let ok = result.is_ok();
            let deliver: Deliver = Box::new(move |commit| {
                answer(match (result, commit) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(AppError::Internal(format!("database commit: {e}"))),
                })
            });
            (ok, deliver)
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            AppError::Unavailable("the database writer has stopped".into())
        })
    }
}
