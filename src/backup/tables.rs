//! The database as rows: every table dumped as JSON lines (one object per row, keyed by
//! column), and loaded back into either backend. A logical dump rather than a file copy
//! or `pg_dump`, so that a SQLite backup restores into PostgreSQL (how a region moves
//! up) and no client program of a matching version is needed.
//!
//! The schema holds only text, integers and timestamps (see `schema.rs`), which JSON
//! carries as they are; timestamps are written `YYYY-MM-DD HH:MM:SS.f` on SQLite and
//! with a `T` by PostgreSQL, which both read back.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};

use diesel::connection::DefaultLoadingMode;
use diesel::pg::PgRowByRowLoadingMode;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::MigrationHarness;

use crate::db::{DbConn, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
use crate::error::AppError;

/// Rows inserted per statement on restore.
const BATCH: usize = 500;

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    row: String,
}

#[derive(QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = Text)]
    child: String,
    #[diesel(sql_type = Text)]
    parent: String,
    #[diesel(sql_type = Text)]
    column: String,
    #[diesel(sql_type = Text)]
    referenced: String,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn names(
    conn: &mut DbConn,
    sqlite: &str,
    pg: &str,
    bind: Option<&str>,
) -> QueryResult<Vec<String>> {
    let rows: Vec<Name> = match (conn, bind) {
        (DbConn::Sqlite(c), None) => diesel::sql_query(sqlite).load(c)?,
        (DbConn::Sqlite(c), Some(b)) => diesel::sql_query(sqlite).bind::<Text, _>(b).load(c)?,
        (DbConn::Pg(c), None) => diesel::sql_query(pg).load(c)?,
        (DbConn::Pg(c), Some(b)) => diesel::sql_query(pg).bind::<Text, _>(b).load(c)?,
    };
    Ok(rows.into_iter().map(|n| n.name).collect())
}

/// The application's tables (not the migration bookkeeping), by name.
pub fn tables(conn: &mut DbConn) -> Result<Vec<String>, AppError> {
    Ok(names(
        conn,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '__diesel_schema_migrations' ORDER BY name",
        "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = current_schema() \
         AND tablename <> '__diesel_schema_migrations' ORDER BY tablename",
        None,
    )?)
}

/// The columns of `table`, in their order.
pub fn columns(conn: &mut DbConn, table: &str) -> Result<Vec<String>, AppError> {
    Ok(names(
        conn,
        "SELECT name FROM pragma_table_info(?) ORDER BY cid",
        "SELECT column_name::text AS name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        Some(table),
    )?)
}

/// The migrations applied to this database, oldest first.
pub fn migrations(conn: &mut DbConn) -> Result<Vec<String>, AppError> {
    let sql = "SELECT version AS name FROM __diesel_schema_migrations ORDER BY version";
    Ok(names(conn, sql, sql, None)?)
}

/// Does the database hold no tables at all (a new file, a new PostgreSQL database)?
pub fn is_empty(conn: &mut DbConn) -> Result<bool, AppError> {
    let any = names(
        conn,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = current_schema()",
        None,
    )?;
    Ok(any.is_empty())
}

/// Writes every row of `table` to `out` as a JSON object per line; returns the count.
/// Runs inside the caller's snapshot transaction and streams (never the whole table in
/// memory).
pub fn dump(conn: &mut DbConn, table: &str, out: &mut dyn Write) -> Result<u64, AppError> {
    let mut count = 0u64;
    let mut emit = |row: QueryResult<JsonRow>| -> Result<(), AppError> {
        let row = row?;
        out.write_all(row.row.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| AppError::Config(format!("cannot write the backup: {e}")))?;
        count += 1;
        Ok(())
    };
    match conn {
        DbConn::Sqlite(c) => {
            let cols = columns_sqlite(c, table)?;
            let pairs: Vec<String> = cols
                .iter()
                .map(|col| format!("'{}', {}", col.replace('\'', "''"), quote(col)))
                .collect();
            let sql = format!(
                "SELECT json_object({}) AS row FROM {}",
                pairs.join(", "),
                quote(table)
            );
            for row in diesel::sql_query(sql).load_iter::<JsonRow, DefaultLoadingMode>(c)? {
                emit(row)?;
            }
        }
        DbConn::Pg(c) => {
            let sql = format!("SELECT row_to_json(t)::text AS row FROM {} t", quote(table));
            for row in diesel::sql_query(sql).load_iter::<JsonRow, PgRowByRowLoadingMode>(c)? {
                emit(row)?;
            }
        }
    }
    Ok(count)
}

fn columns_sqlite(c: &mut SqliteConnection, table: &str) -> QueryResult<Vec<String>> {
    let rows: Vec<Name> = diesel::sql_query("SELECT name FROM pragma_table_info(?) ORDER BY cid")
        .bind::<Text, _>(table)
        .load(c)?;
    Ok(rows.into_iter().map(|n| n.name).collect())
}

/// Applies the first `versions.len()` migrations of this build, which must be exactly
/// `versions`: the backup's rows then load into the schema they were taken from, and
/// later migrations (run by the caller afterwards) convert them like any other data.
pub fn migrate_to(conn: &mut DbConn, versions: &[String]) -> Result<(), AppError> {
    fn run<DB, C>(
        c: &mut C,
        source: diesel_migrations::EmbeddedMigrations,
        versions: &[String],
    ) -> Result<(), AppError>
    where
        DB: diesel::backend::Backend,
        C: MigrationHarness<DB> + diesel::migration::MigrationConnection,
        diesel_migrations::EmbeddedMigrations: diesel::migration::MigrationSource<DB>,
    {
        let mut all = diesel::migration::MigrationSource::<DB>::migrations(&source)
            .map_err(|e| AppError::Internal(format!("migrations: {e}")))?;
        all.sort_by_key(|m| m.name().version().to_string());
        let known: Vec<String> = all.iter().map(|m| m.name().version().to_string()).collect();
        if !known.starts_with(versions) {
            return Err(AppError::Config(format!(
                "the backup's schema ({} migrations, the last {}) is not one this version \
                 knows: restore it with the eportfolio version that made it, or a newer one",
                versions.len(),
                versions.last().map(String::as_str).unwrap_or("none")
            )));
        }
        // What `run_pending_migrations` does first: the table that records them.
        c.setup()
            .map_err(|e| AppError::Internal(format!("migrations: {e}")))?;
        for m in all.iter().take(versions.len()) {
            c.run_migration(m.as_ref())
                .map_err(|e| AppError::Internal(format!("migration failed: {e}")))?;
        }
        Ok(())
    }
    match conn {
        DbConn::Sqlite(c) => run(c, SQLITE_MIGRATIONS, versions),
        DbConn::Pg(c) => run(c, POSTGRES_MIGRATIONS, versions),
    }
}

/// Each table's references to itself: (column, referenced column).
pub type SelfReferences = HashMap<String, Vec<(String, String)>>;

/// The order to load tables in so that every row's references exist before it (on
/// PostgreSQL, whose foreign keys are checked per statement; SQLite defers them to the
/// commit), and each table's references to itself as (column, referenced column).
pub fn load_order(
    conn: &mut DbConn,
    tables: &[String],
) -> Result<(Vec<String>, SelfReferences), AppError> {
    let keys: Vec<ForeignKey> = match conn {
        DbConn::Sqlite(_) => Vec::new(),
        DbConn::Pg(c) => diesel::sql_query(
            "SELECT ch.relname::text AS child, pa.relname::text AS parent, \
                    a.attname::text AS column, ra.attname::text AS referenced \
             FROM pg_constraint k \
             JOIN pg_class ch ON ch.oid = k.conrelid \
             JOIN pg_class pa ON pa.oid = k.confrelid \
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] \
             JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = k.confkey[1] \
             WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace",
        )
        .load(c)?,
    };
    let mut parents: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut own = SelfReferences::new();
    for k in &keys {
        if k.child == k.parent {
            own.entry(k.child.clone())
                .or_default()
                .push((k.column.clone(), k.referenced.clone()));
        } else {
            parents.entry(&k.child).or_default().insert(&k.parent);
        }
    }
    let mut order: Vec<String> = Vec::new();
    let mut placed: HashSet<&str> = HashSet::new();
    while order.len() < tables.len() {
        let before = order.len();
        for t in tables {
            let ready = parents.get(t.as_str()).is_none_or(|ps| {
                ps.iter()
                    .all(|p| placed.contains(p) || !tables.contains(&p.to_string()))
            });
            if !placed.contains(t.as_str()) && ready {
                placed.insert(t);
                order.push(t.clone());
            }
        }
        if order.len() == before {
            // A cycle between tables: load the rest as they come (the commit decides).
            for t in tables {
                if placed.insert(t) {
                    order.push(t.clone());
                }
            }
        }
    }
    Ok((order, own))
}

/// Loads the rows of one table (JSON lines from `rows`) into the empty table of the
/// same name; returns the count. `own` are the table's references to itself: its rows
/// then go in parents first. Runs inside the caller's transaction.
pub fn load(
    conn: &mut DbConn,
    table: &str,
    rows: &mut dyn BufRead,
    own: &[(String, String)],
) -> Result<u64, AppError> {
    let columns = columns(conn, table)?;
    if columns.is_empty() {
        return Err(AppError::Config(format!(
            "the backup holds table {table}, which this schema does not have"
        )));
    }
    let sql = match conn {
        DbConn::Sqlite(_) => format!(
            "INSERT INTO {} ({}) SELECT {} FROM json_each(?)",
            quote(table),
            columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            columns
                .iter()
                .map(|c| format!("json_extract(value, '$.\"{}\"')", c.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DbConn::Pg(_) => format!(
            "INSERT INTO {t} SELECT * FROM json_populate_recordset(NULL::{t}, $1::json)",
            t = quote(table)
        ),
    };
    let mut insert = |batch: &[String]| -> Result<(), AppError> {
        let json = format!("[{}]", batch.join(","));
        let q = diesel::sql_query(&sql).bind::<Text, _>(json);
        match conn {
            DbConn::Sqlite(c) => q.execute(c)?,
            DbConn::Pg(c) => q.execute(c)?,
        };
        Ok(())
    };
    let mut count = 0u64;
    let mut batch: Vec<String> = Vec::with_capacity(BATCH);
    let mut lines = rows.lines();
    if own.is_empty() {
        for line in lines.by_ref() {
            let line = line.map_err(|e| AppError::Config(format!("{table}: {e}")))?;
            batch.push(line);
            count += 1;
            if batch.len() == BATCH {
                insert(&batch)?;
                batch.clear();
            }
        }
    } else {
        let all: Vec<String> = lines
            .collect::<Result<_, _>>()
            .map_err(|e| AppError::Config(format!("{table}: {e}")))?;
        count = all.len() as u64;
        for chunk in parents_first(table, all, own)?.chunks(BATCH) {
            insert(chunk)?;
        }
    }
    if !batch.is_empty() {
        insert(&batch)?;
    }
    Ok(count)
}

/// Orders rows so that a row another one of the same table refers to comes first
/// (organisations under their region, corrections after what they correct).
fn parents_first(
    table: &str,
    rows: Vec<String>,
    own: &[(String, String)],
) -> Result<Vec<String>, AppError> {
    let parsed: Vec<serde_json::Map<String, serde_json::Value>> = rows
        .iter()
        .map(|r| serde_json::from_str(r))
        .collect::<Result<_, _>>()
        .map_err(|e| AppError::Config(format!("{table}: a row is not JSON: {e}")))?;
    let mut placed: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut done = vec![false; rows.len()];
    let mut out = Vec::with_capacity(rows.len());
    loop {
        let before = out.len();
        for (i, row) in parsed.iter().enumerate() {
            if done[i] {
                continue;
            }
            let ready = own.iter().all(|(col, referenced)| match row.get(col) {
                None | Some(serde_json::Value::Null) => true,
                Some(v) => placed
                    .get(referenced.as_str())
                    .is_some_and(|s| s.contains(&v.to_string())),
            });
            if ready {
                done[i] = true;
                for (_, referenced) in own {
                    if let Some(v) = row.get(referenced) {
                        placed.entry(referenced).or_default().insert(v.to_string());
                    }
                }
                out.push(rows[i].clone());
            }
        }
        if out.len() == rows.len() {
            return Ok(out);
        }
        if out.len() == before {
            // References to rows that are not there: let the database say which.
            out.extend(
                rows.iter()
                    .zip(&done)
                    .filter(|(_, d)| !**d)
                    .map(|(r, _)| r.clone()),
            );
            return Ok(out);
        }
    }
}

/// Rows per table, for the report and the check against the manifest.
pub fn count(conn: &mut DbConn, table: &str) -> Result<u64, AppError> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM {}", quote(table));
    let n: N = match conn {
        DbConn::Sqlite(c) => diesel::sql_query(sql).get_result(c)?,
        DbConn::Pg(c) => diesel::sql_query(sql).get_result(c)?,
    };
    Ok(n.n.max(0) as u64)
}
