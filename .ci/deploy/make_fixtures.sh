#!/usr/bin/env bash
# Makes the upgrade test's fixture databases (fixtures/README.md): `eportfolio demo`
# (a demo region through the real API) on a new SQLite file and a new PostgreSQL
# database, dumped as SQL. Run it with the binary of the release whose schema the
# fixtures should hold, and commit the two files it writes.
# Usage: make_fixtures.sh EPORTFOLIO_BINARY POSTGRES_URL
set -euo pipefail
BIN=$(realpath "$1")
cd "$(dirname "$0")"
PG_URL=$2
WORK=$(mktemp -d /tmp/eportfolio-fixtures.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
demo() {
    env -u SMTP_HOST DATABASE_URL=$1 EPORTFOLIO_DATA_DIR="$WORK/data-$2" "$BIN" demo >/dev/null
}

demo "$WORK/demo.sqlite3" sqlite
version=$(python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT max(version) FROM __diesel_schema_migrations').fetchone()[0][-6:])" "$WORK/demo.sqlite3")
python3 -c "
import sqlite3, sys
for line in sqlite3.connect(sys.argv[1]).iterdump():
    print(line)" "$WORK/demo.sqlite3" | gzip -9n >"fixtures/schema-$version.sqlite.sql.gz"

db="ep_fixture_$$"
psql "$PG_URL" -X -q -c "CREATE DATABASE $db"
trap 'psql "$PG_URL" -X -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$WORK"' EXIT
demo "${PG_URL%/*}/$db" pg
pg_dump --no-owner --no-privileges --format=plain "${PG_URL%/*}/$db" | gzip -9n >"fixtures/schema-$version.postgresql.sql.gz"
ls -l fixtures/schema-"$version".*
