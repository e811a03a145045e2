#!/usr/bin/env bash
# The upgrade test: every fixture database of an earlier schema (fixtures/, one per
# backend, see fixtures/README.md) is loaded, upgraded with `eportfolio migrate`, and
# must keep every row of every table it had (same count, same ids) and a verifying
# audit chain.
# Usage: upgrade.sh EPORTFOLIO_BINARY POSTGRES_URL WORK_DIR
set -euo pipefail
cd "$(dirname "$0")"
BIN=$1
PG_URL=$2
WORK=$3
mkdir -p "$WORK"

# "table rows id-digest" per table, diesel's own bookkeeping left out (it grows).
rows_sqlite() {
    python3 - "$1" <<'EOF'
import hashlib, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
tables = [r[0] for r in db.execute(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    " AND name <> '__diesel_schema_migrations' ORDER BY name")]
for t in tables:
    cols = [r[1] for r in db.execute(f'PRAGMA table_info("{t}")')]
    n = db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
    digest = "-"
    if "id" in cols:
        ids = sorted(str(r[0]) for r in db.execute(f'SELECT id FROM "{t}"'))
        digest = hashlib.md5(",".join(ids).encode()).hexdigest()
    print(t, n, digest)
EOF
}
rows_pg() {
    psql "$1" -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 <<'EOF'
SELECT t.table_name,
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', t.table_name), false, true, '')))[1]::text,
       COALESCE((xpath('/row/d/text()', query_to_xml(
           CASE WHEN EXISTS (SELECT 1 FROM information_schema.columns c
                             WHERE c.table_schema = 'public' AND c.table_name = t.table_name AND c.column_name = 'id')
                THEN format('SELECT md5(COALESCE(string_agg(id::text, '','' ORDER BY id::text COLLATE "C"), '''')) AS d FROM %I', t.table_name)
                ELSE 'SELECT ''-'' AS d' END, false, true, '')))[1]::text, '-')
FROM information_schema.tables t
WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'
  AND t.table_name <> '__diesel_schema_migrations'
ORDER BY t.table_name COLLATE "C";
EOF
}
# Every table of the fixture, with the same rows, is still there after the upgrade.
compare() {
    local name=$1 before=$2 after=$3
    local missing
    missing=$(comm -23 <(sort "$before") <(sort "$after"))
    if [ -n "$missing" ]; then
        echo "upgrade $name: rows lost or changed (table count id-digest, before):" >&2
        echo "$missing" >&2
        exit 1
    fi
    echo "upgrade $name: $(wc -l <"$before") tables, $(awk '{s += $2} END {print s}' "$before") rows kept"
}
migrate() {
    DATABASE_URL=$1 EPORTFOLIO_DATA_DIR="$WORK/data" "$BIN" migrate
    DATABASE_URL=$1 EPORTFOLIO_DATA_DIR="$WORK/data" "$BIN" audit verify
}

shopt -s nullglob
found=0
for fixture in fixtures/*.sqlite.sql.gz; do
    found=1
    name=$(basename "$fixture" .sql.gz)
    db="$WORK/$name.sqlite3"
    gunzip -c "$fixture" | python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).executescript(sys.stdin.read())" "$db"
    rows_sqlite "$db" >"$WORK/$name.before"
    migrate "$db"
    rows_sqlite "$db" >"$WORK/$name.after"
    compare "$name" "$WORK/$name.before" "$WORK/$name.after"
done
for fixture in fixtures/*.postgresql.sql.gz; do
    found=1
    name=$(basename "$fixture" .sql.gz)
    dbname="ep_upgrade_$(date +%s)_$$"
    psql "$PG_URL" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $dbname" >/dev/null
    url="${PG_URL%/*}/$dbname"
    gunzip -c "$fixture" | psql "$url" -X -q -v ON_ERROR_STOP=1 >/dev/null
    rows_pg "$url" >"$WORK/$name.before"
    migrate "$url"
    rows_pg "$url" >"$WORK/$name.after"
    compare "$name" "$WORK/$name.before" "$WORK/$name.after"
    psql "$PG_URL" -X -q -c "DROP DATABASE $dbname WITH (FORCE)" >/dev/null
done
[ "$found" = 1 ] || { echo "upgrade: no fixtures in .ci/deploy/fixtures" >&2; exit 1; }
