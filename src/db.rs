//! One diesel `MultiConnection` over SQLite (embedded default) and PostgreSQL, picked by
//! the URL scheme; migrations for both under `migrations/{sqlite,postgresql}`.
//!
//! Only plain SQL types cross this boundary: Text ids, Timestamp in UTC, JSON as Text.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::r2d2::{
    ConnectionManager, CustomizeConnection, ManageConnection, Pool, PooledConnection,
};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::error::AppError;

mod writer;
pub(crate) use writer::WAL_SIZE_LIMIT_BYTES;
use writer::{begin_write, Writer};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgresql");

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// The connection pool, and on SQLite the one writer connection that every
/// [`write`] goes through (see [`Writer`]). Dereferences to the r2d2 pool.
#[derive(Clone)]
pub struct DbPool {
    pool: Pool<Manager>,
    writer: Option<Arc<Writer>>,
    /// When a connection was last found gone (see [`Manager`]).
    lost: Arc<LostConnections>,
    /// The master keys of secrets at rest; work that seals or opens takes them from
    /// here (`Context::keyring`, `secrets::required`).
    keyring: Option<Arc<crate::secrets::Keyring>>,
}

impl DbPool {
    pub fn set_keyring(&mut self, keyring: Arc<crate::secrets::Keyring>) {
        self.keyring = Some(keyring);
    }

    pub fn keyring(&self) -> Option<&Arc<crate::secrets::Keyring>> {
        self.keyring.as_ref()
    }

    /// A connection from the pool, checked first when [`Manager`] says so.
    pub fn get(&self) -> Result<PooledConn, diesel::r2d2::PoolError> {
        self.pool.get().map(PooledConn)
    }

    /// Writes waiting for the SQLite writer (None on PostgreSQL), for `/metrics`.
    pub fn write_queue_depth(&self) -> Option<usize> {
        self.writer
            .as_ref()
            .map(|w| w.queued.load(Ordering::Relaxed))
    }
}

impl Deref for DbPool {
    type Target = Pool<Manager>;
    fn deref(&self) -> &Self::Target {
        &self.pool
    }
}

/// A connection taken from the pool ([`DbPool::get`]); dereferences to the [`DbConn`].
pub struct PooledConn(PooledConnection<Manager>);

impl Deref for PooledConn {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.0.conn
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.0.conn
    }
}

/// How long a connection handed back healthy is taken on trust: used again within this,
/// it is not checked first.
const TRUSTED_FOR: Duration = Duration::from_secs(5);

/// How long after a connection was found gone every connection is checked before use.
const SUSPECT_FOR: Duration = Duration::from_secs(30);

/// r2d2's connection manager, checking a connection before handing it out (`SELECT 1`,
/// on PostgreSQL) only when that can find something: when it has been idle for more than
/// [`TRUSTED_FOR`], or while the database is suspect, for [`SUSPECT_FOR`] after a request
/// found a connection gone ([`run`] tells [`LostConnections`]).
///
/// Checking every checkout cost a round trip per transaction, two of a logged
/// activity's eighteen statements (issue 19). A database restarted under a busy server
/// now costs the requests that were using a connection at that moment, and at most one
/// more per connection used within the last [`TRUSTED_FOR`]: they get 503 with
/// `Retry-After`, as during the outage itself; the connections after them are checked.
#[derive(Debug)]
pub struct Manager {
    inner: ConnectionManager<DbConn>,
    lost: Arc<LostConnections>,
}

/// A pooled connection, with when it was last handed back healthy.
pub struct Tracked {
    conn: DbConn,
    returned: Instant,
}

/// When a connection of the pool was last found gone.
#[derive(Debug, Default)]
pub struct LostConnections(std::sync::Mutex<Option<Instant>>);

impl LostConnections {
    fn found(&self) {
        if let Ok(mut at) = self.0.lock() {
            *at = Some(Instant::now());
        }
    }

    fn suspect(&self) -> bool {
        self.0
            .lock()
            .map(|at| at.is_some_and(|t| t.elapsed() < SUSPECT_FOR))
            .unwrap_or(true)
    }
}

impl ManageConnection for Manager {
    type Connection = Tracked;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Tracked, Self::Error> {
        Ok(Tracked {
            conn: self.inner.connect()?,
            returned: Instant::now(),
        })
    }

    fn is_valid(&self, conn: &mut Tracked) -> Result<(), Self::Error> {
        if conn.returned.elapsed() < TRUSTED_FOR && !self.lost.suspect() {
            return Ok(());
        }
        self.inner.is_valid(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut Tracked) -> bool {
        conn.returned = Instant::now();
        self.inner.has_broken(&mut conn.conn)
    }
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file of a SQLite URL.
pub(super) fn sqlite_path(url: &str) -> &std::path::Path {
    std::path::Path::new(url.strip_prefix("sqlite://").unwrap_or(url))
}

/// Runs a diesel query on the backend's own connection instead of through the
/// multi-backend layer, which re-serialises and walks every query several times (about
/// twice the CPU of the statement itself on SQLite). The body is compiled once per
/// backend; use it on hot paths.
///
/// `on_backend!(conn, |c| query.first::<T>(c))`
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Pg($c) => $body,
        }
    };
}

/// Per-connection settings. SQLite needs them on every connection, not once per file.
#[derive(Debug)]
pub(super) struct ConnectionSetup;

impl CustomizeConnection<Tracked, diesel::r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut Tracked) -> Result<(), diesel::r2d2::Error> {
        ConnectionSetup.setup(&mut conn.conn)
    }
}

impl ConnectionSetup {
    pub(super) fn setup(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        let sql = match conn {
            // WAL lets readers run beside the single writer; busy_timeout makes a second
            // writer wait instead of failing with "database is locked". It comes first:
            // switching to WAL itself needs a lock, and must wait for it too.
            DbConn::Sqlite(_) => format!(
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                 PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                 PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES};"
            ),
            DbConn::Pg(_) => "SET TIME ZONE 'UTC';".to_string(),
        };
        conn.batch_execute(&sql)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens the pool, creating the SQLite file's directory if needed.
pub fn connect(url: &str, pool_size: u32) -> Result<DbPool, AppError> {
    connect_waiting(url, pool_size, Duration::from_secs(10))
}

/// [`connect`], where taking a connection waits at most `wait` (then 503: the database
/// is unreachable or every connection busy). r2d2 keeps trying to connect meanwhile, and
/// checks each connection it hands out, so a database that comes back is used again
/// without a restart.
pub fn connect_waiting(url: &str, pool_size: u32, wait: Duration) -> Result<DbPool, AppError> {
    if !is_postgres_url(url) {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        if path.contains(":memory:") {
            // Each pooled connection would get its own empty database.
            return Err(AppError::Config(
                "DATABASE_URL: in-memory SQLite cannot be shared by a pool; use a file".into(),
            ));
        }
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                crate::storage::create_private_dir(dir)?;
            }
        }
    }
    let sqlite = !is_postgres_url(url);
    let lost = Arc::new(LostConnections::default());
    let manager = Manager {
        inner: ConnectionManager::<DbConn>::new(url),
        lost: lost.clone(),
    };
    let pool = Pool::builder()
        .max_size(pool_size.max(1))
        .connection_timeout(wait.max(Duration::from_millis(100)))
        // A SQLite file does not go away under an open connection: checking a
        // connection with `SELECT 1` would only add a statement to every request. On
        // PostgreSQL, `Manager` decides which checkouts are checked.
        .test_on_check_out(!sqlite)
        .connection_customizer(Box::new(ConnectionSetup))
        .build(manager)
        .map_err(|e| AppError::Config(format!("cannot open database {url}: {e}")))?;
    if sqlite {
        // The file holds TOTP secrets. Files of older versions were 0644; SQLite gives
        // -wal and -shm the database file's mode, so these cover them too.
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{path}{suffix}"));
            if file.exists() {
                crate::storage::set_mode(&file, 0o600)?;
            }
        }
    }
    let writer = if sqlite {
        Some(Arc::new(Writer::start(url)?))
    } else {
        None
    };
    Ok(DbPool {
        pool,
        writer,
        lost,
        keyring: None,
    })
}

/// Applies pending migrations; returns the versions applied.
pub fn migrate(conn: &mut DbConn) -> Result<Vec<String>, AppError> {
    let applied = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        DbConn::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| AppError::Internal(format!("migration failed: {e}")))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// A write transaction. On SQLite it starts with `BEGIN IMMEDIATE`, so a transaction that
/// reads and then writes takes the write lock up front and waits (busy_timeout) instead of
/// failing halfway with SQLITE_BUSY.
pub fn write_tx<T, F>(conn: &mut DbConn, f: F) -> Result<T, AppError>
where
    F: FnOnce(&mut DbConn) -> Result<T, AppError>,
{
    begin_write(conn)?;
    let result = match f(conn) {
        Ok(value) => <DbConn as Connection>::TransactionManager::commit_transaction(conn)
            .map(|()| value)
            .map_err(AppError::from),
        Err(e) => {
            if let Err(rollback) =
                <DbConn as Connection>::TransactionManager::rollback_transaction(conn)
            {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    };
    result
}

/// Runs blocking database work on actix's blocking pool (the pool `get` included).
pub async fn run<T, F>(pool: &DbPool, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
{
    let pool = pool.clone();
    web::block(move || {
        let waiting = crate::telemetry::metrics::enabled().then(std::time::Instant::now);
        let mut conn = pool.get()?;
        if let Some(since) = waiting {
            crate::telemetry::metrics::pool_wait(since.elapsed());
        }
        let result = f(&mut conn);
        if let Err(AppError::Unavailable(_)) = &result {
            // Before the connection goes back: the next checkouts are checked.
            pool.lost.found();
        }
        result
    })
    .await?
}

/// Like [`run`], inside a write transaction. On SQLite the work goes to the writer
/// thread and may share its commit with other writes (each in its own savepoint); the
/// answer comes once that commit is done.
///
/// A request's writes go through [`crate::context::Context::write`], which reserves the
/// request's `Idempotency-Key` in the same transaction ([`write_reserving`]); this one
/// is for work that is no request's effect (workers, housekeeping, counting an attempt).
pub async fn write<T, F>(pool: &DbPool, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
{
    let Some(writer) = &pool.writer else {
        return run(pool, move |conn| write_tx(conn, f)).await;
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, AppError>>();
    writer.submit(f, move |answer| {
        let _ = tx.send(answer);
    })?;
    rx.await
        .map_err(|_| AppError::internal("the database writer dropped a write"))?
}

/// [`write`], reserving an `Idempotency-Key` first in the same transaction: the key and
/// the effect commit together, or neither does.
pub(crate) async fn write_reserving<T, F>(
    pool: &DbPool,
    reservation: Option<crate::idempotency::Reservation>,
    f: F,
) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
{
    write(pool, move |conn: &mut DbConn| {
        if let Some(r) = &reservation {
            r.reserve(conn)?;
        }
        f(conn)
    })
    .await
}

/// A write whose answer the caller does not wait for on SQLite: it is queued on the
/// writer, so every write queued after it runs after it (and sees it). On PostgreSQL it
/// is an ordinary [`write`].
pub async fn write_detached<F>(pool: &DbPool, f: F) -> Result<(), AppError>
where
    F: FnOnce(&mut DbConn) -> Result<(), AppError> + Send + 'static,
{
    let Some(writer) = &pool.writer else {
        return run(pool, move |conn| write_tx(conn, f)).await;
    };
    writer.submit_detached(f)
}

/// [`write_detached`] for work of a single statement, which is atomic by itself: on
/// PostgreSQL it runs without a transaction around it, one round trip (and one commit)
/// instead of three statements (`BEGIN`, it, `COMMIT`).
pub async fn write_statement_detached<F>(pool: &DbPool, f: F) -> Result<(), AppError>
where
    F: FnOnce(&mut DbConn) -> Result<(), AppError> + Send + 'static,
{
    let Some(writer) = &pool.writer else {
        return run(pool, f).await;
    };
    writer.submit_detached(f)
}

/// Is the database reachable? (`/ready`)
pub fn ping(conn: &mut DbConn) -> Result<(), AppError> {
    conn.batch_execute("SELECT 1").map_err(AppError::from)
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
