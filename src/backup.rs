//! Online backup and restore. SQLite: `VACUUM INTO` writes a consistent copy while the
//! service runs. PostgreSQL: `pg_dump`/`pg_restore` (custom format). A restore ends
//! with the audit chain verified.

use std::path::Path;
use std::process::Command;

use diesel::RunQueryDsl;

use crate::db::{self, DbConn};
use crate::error::AppError;

/// Writes a backup of the database at `url` to `to`.
pub fn backup(url: &str, to: &Path) -> Result<(), AppError> {
    if to.exists() {
        return Err(AppError::Config(format!(
            "{} exists; choose a new file",
            to.display()
        )));
    }
    // A backup holds everything the database does (TOTP secrets included): created
    // under the private umask, and 0600 whatever wrote it.
    crate::storage::restrict_new_files();
    if db::is_postgres_url(url) {
        run(Command::new("pg_dump")
            .arg("--format=custom")
            .arg("--no-owner")
            .arg("--file")
            .arg(to)
            .arg(url))?;
        return crate::storage::set_mode(to, 0o600);
    }
    let pool = db::connect(url, 1)?;
    let mut conn = pool.get()?;
    let target = to.to_string_lossy().replace('\'', "''");
    match &mut *conn {
        DbConn::Sqlite(c) => {
            diesel::sql_query(format!("VACUUM INTO '{target}'")).execute(c)?;
            crate::storage::set_mode(to, 0o600)
        }
        DbConn::Pg(_) => Err(AppError::internal("unexpected PostgreSQL connection")),
    }
}

/// Restores a backup into the database at `url`, which must be empty (a new SQLite
/// path, or a new PostgreSQL database), then verifies the audit chain.
pub fn restore(url: &str, from: &Path) -> Result<crate::audit::Verification, AppError> {
    if !from.exists() {
        return Err(AppError::Config(format!(
            "{} does not exist",
            from.display()
        )));
    }
    if db::is_postgres_url(url) {
        run(Command::new("pg_restore")
            .arg("--no-owner")
            .arg("--exit-on-error")
            .arg("--dbname")
            .arg(url)
            .arg(from))?;
    } else {
        let path = Path::new(url.strip_prefix("sqlite://").unwrap_or(url));
        if path.exists() {
            return Err(AppError::Config(format!(
                "{} exists; restore into a new path (stop the service, restore, then point DATABASE_URL at it)",
                path.display()
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| AppError::Config(format!("{}: {e}", dir.display())))?;
        }
        std::fs::copy(from, path).map_err(|e| AppError::Config(format!("copy: {e}")))?;
    }
    let pool = db::connect(url, 1)?;
    let mut conn = pool.get()?;
    db::migrate(&mut conn)?;
    crate::audit::verify(&mut conn)
}

fn run(cmd: &mut Command) -> Result<(), AppError> {
    let out = cmd
        .output()
        .map_err(|e| AppError::Config(format!("cannot run {:?}: {e}", cmd.get_program())))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(AppError::Config(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
