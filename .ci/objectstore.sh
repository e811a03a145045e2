#!/usr/bin/env bash
# Attachments in an S3-compatible bucket: starts moto's S3 server (pinned, from PyPI) on
# a free loopback port, creates a bucket, and runs the tests that store, serve, verify,
# sweep, back up and restore attachments with ATTACHMENT_STORE pointing at it, on SQLite
# and (given its URL) on PostgreSQL. Each test keeps to a prefix of its own in the bucket
# (tests/api/support/blobs.rs).
#
# Usage: .ci/objectstore.sh VENV [POSTGRES_URL]
#
# The tests (libtest name filters, any match runs):
#   storage_objects::   bucket refused at start-up; multipart up, whole down; sweep
#   storage_faults::    damaged object never served, `attachments verify` names it
#                       (the full-disk and file-ageing tests say "skipped" here)
#   storage_keys::      objects under their SHA-256, stored once, kept while named;
#                       objects under the keys of before still served and backed up
#   storage_outage::    (a stand-in of its own, not moto) 503 while the store is away,
#                       refused credentials stop the start
#   backup::            backup and restore, with the objects
#   backup_archive::    under writes, SQLite to the suite's backend, damaged archives,
#                       keys without a passphrase
#   portfolio::a_course_certificate_is_attached_from_the_phone_and_read_by_the_supervisor
#   portfolio::a_swedish_file_name_downloads_intact
#   fuzz_findings::a_downloaded_attachment_has_a_media_type_the_document_names
#   portfolio_access::learning_activities_and_attachments_are_written_by_the_trainee_alone
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$1
PG_URL=${2:-}
# Pinned, so that a new release can't turn CI red (or green) on its own.
"$VENV/bin/pip" install -q 'moto[server]==5.2.5'

PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
LOG=$(mktemp /tmp/eportfolio-ci-moto.XXXXXX)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO=$!
trap 'kill "$MOTO" 2>/dev/null || true; rm -f "$LOG"' EXIT
ENDPOINT="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
    curl -fsS "$ENDPOINT/moto-api/" >/dev/null 2>&1 && break
    sleep 0.2
done
BUCKET=eportfolio-ci
# CreateBucket is a plain PUT; moto takes any credentials.
curl -fsS -X PUT "$ENDPOINT/$BUCKET" >/dev/null

export ATTACHMENT_STORE="s3://$BUCKET/ci"
export AWS_ENDPOINT_URL="$ENDPOINT"
export AWS_ALLOW_HTTP=true
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=ci-access-key
export AWS_SECRET_ACCESS_KEY=ci-secret-key
TESTS=(
    storage_objects:: storage_faults:: storage_keys:: storage_outage::
    backup:: backup_archive::
    portfolio::a_course_certificate_is_attached_from_the_phone_and_read_by_the_supervisor
    portfolio::a_swedish_file_name_downloads_intact
    fuzz_findings::a_downloaded_attachment_has_a_media_type_the_document_names
    portfolio_access::learning_activities_and_attachments_are_written_by_the_trainee_alone
)
echo "== attachments in an object store (moto on $ENDPOINT), SQLite"
env -u TEST_DATABASE_URL cargo test --locked --test api -- "${TESTS[@]}"
if [ -n "$PG_URL" ]; then
    echo "== attachments in an object store (moto on $ENDPOINT), PostgreSQL"
    TEST_DATABASE_URL="$PG_URL" cargo test --locked --test api -- "${TESTS[@]}"
fi
