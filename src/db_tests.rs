//! Unit tests of the migration folders. diesel embeds `migrations/sqlite` and
//! `migrations/postgresql` separately (see `migrations/README.md` for why there are two):
//! a migration written for one backend only would leave the other's schema behind
//! without any error until a query failed in production.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::sqlite::Sqlite;

use super::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// The migration directories under `dir`, by name.
fn migration_names(dir: &Path) -> BTreeSet<String> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries
        .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Everything wrong with a pair of backend folders: a migration present for one backend
/// only, or a migration directory without its `up.sql` or `down.sql`.
fn migration_problems(sqlite: &Path, postgresql: &Path) -> Vec<String> {
    let s = migration_names(sqlite);
    let p = migration_names(postgresql);
    let mut problems = Vec::new();
    for name in s.difference(&p) {
        problems.push(format!("{name} exists for SQLite only"));
    }
    for name in p.difference(&s) {
        problems.push(format!("{name} exists for PostgreSQL only"));
    }
    for (backend, dir, names) in [("sqlite", sqlite, &s), ("postgresql", postgresql, &p)] {
        for name in names {
            for file in ["up.sql", "down.sql"] {
                if !dir.join(name).join(file).is_file() {
                    problems.push(format!("{backend}/{name} has no {file}"));
                }
            }
        }
    }
    problems
}

#[test]
fn every_migration_exists_for_both_backends_with_up_and_down_sql() {
    let dir = migrations_dir();
    let problems = migration_problems(&dir.join("sqlite"), &dir.join("postgresql"));
    assert!(problems.is_empty(), "migrations: {problems:#?}");
    assert!(migration_names(&dir.join("sqlite")).len() >= 15);
}

#[test]
fn both_backends_embed_the_same_migration_versions() {
    let versions = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .map(|n| n.split('_').next().unwrap_or_default().to_string())
            .collect()
    };
    let sqlite: Vec<String> = MigrationSource::<Sqlite>::migrations(&SQLITE_MIGRATIONS)
        .unwrap_or_else(|e| panic!("embedded SQLite migrations: {e}"))
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let postgresql: Vec<String> = MigrationSource::<Pg>::migrations(&POSTGRES_MIGRATIONS)
        .unwrap_or_else(|e| panic!("embedded PostgreSQL migrations: {e}"))
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    assert_eq!(
        sqlite.len(),
        migration_names(&migrations_dir().join("sqlite")).len()
    );
    assert_eq!(versions(sqlite), versions(postgresql));
}

/// A scratch copy of a pair of backend folders, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "eportfolio-migrations-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        for backend in ["sqlite", "postgresql"] {
            std::fs::create_dir_all(dir.join(backend)).unwrap_or_else(|e| panic!("{e}"));
        }
        Scratch(dir)
    }

    fn migration(&self, backend: &str, name: &str, files: &[&str]) {
        let dir = self.0.join(backend).join(name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        for f in files {
            std::fs::write(dir.join(f), "SELECT 1;\n").unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn problems(&self) -> Vec<String> {
        migration_problems(&self.0.join("sqlite"), &self.0.join("postgresql"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_check_finds_a_migration_written_for_one_backend_only() {
    let s = Scratch::new("one-sided");
    s.migration("sqlite", "2026-01-01-000001_a", &["up.sql", "down.sql"]);
    s.migration("postgresql", "2026-01-01-000001_a", &["up.sql", "down.sql"]);
    assert_eq!(s.problems(), Vec::<String>::new());
    s.migration("sqlite", "2026-01-01-000002_b", &["up.sql", "down.sql"]);
    s.migration("postgresql", "2026-01-01-000003_c", &["up.sql", "down.sql"]);
    assert_eq!(
        s.problems(),
        [
            "2026-01-01-000002_b exists for SQLite only",
            "2026-01-01-000003_c exists for PostgreSQL only",
        ]
    );
}

#[test]
fn the_check_finds_a_migration_without_up_or_down_sql() {
    let s = Scratch::new("missing-file");
    s.migration("sqlite", "2026-01-01-000001_a", &["up.sql"]);
    s.migration("postgresql", "2026-01-01-000001_a", &["down.sql"]);
    assert_eq!(
        s.problems(),
        [
            "sqlite/2026-01-01-000001_a has no down.sql",
            "postgresql/2026-01-01-000001_a has no up.sql",
        ]
    );
}

#[test]
fn a_restarted_wal_is_reused_not_truncated() {
    // A frame is a 4 KiB page and its 24-byte header; the WAL reaches the restart
    // threshold plus what is appended until the restart happens.
    let frame = 4096 + 24;
    assert!(
        2 * super::writer::WAL_RESTART_FRAMES * frame <= super::WAL_SIZE_LIMIT_BYTES,
        "a WAL at twice the restart threshold would be truncated on restart"
    );
}

#[test]
fn every_sqlite_connection_keeps_the_wal_size_limit() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Limit {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        journal_size_limit: i64,
    }
    let dir = std::env::temp_dir().join(format!("eportfolio-wal-{}", uuid::Uuid::new_v4()));
    let url = dir.join("db.sqlite3");
    let pool = super::connect(url.to_str().expect("utf-8 path"), 2).expect("pool");
    let mut conn = pool.get().expect("connection");
    let got: Limit = diesel::sql_query("PRAGMA journal_size_limit")
        .get_result::<Limit>(&mut *conn)
        .expect("pragma");
    assert_eq!(got.journal_size_limit, super::WAL_SIZE_LIMIT_BYTES);
    drop(conn);
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
}
