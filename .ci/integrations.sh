#!/usr/bin/env bash
# Integrations as integrators use them, with their own tools against a running server
# (issue 16), on a throwaway SQLite database with the debug binary the test run built:
# - the `tincan` PyPI library and the `@xapi/xapi` npm library each store statements
#   (single, batch, without ids, a voiding statement) with the LRS key and secret (HTTP
#   Basic) and read them back through their own APIs;
# - a raw client sends what Moodle's logstore_xapi sends (Basic auth, xAPI 1.0.0, a
#   batch without ids), and every statement of a learning verb ends up as an activity of
#   the trainee or in the administrators' unmatched list;
# - a loopback receiver verifies every webhook delivery with the `standardwebhooks` PyPI
#   library, and checks that the library refuses a tampered body and a stale timestamp.
# Versions are pinned, so that a new release can't turn CI red (or green) on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$1"
WORK=$(mktemp -d /tmp/eportfolio-integrations.XXXXXX)
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
PORT=$(free_port)
HOOK_PORT=$(free_port)

echo "== pinned tools: tincan, standardwebhooks (PyPI), @xapi/xapi (npm)"
"$VENV/bin/pip" install -q tincan==1.0.0 standardwebhooks==1.1.0
(cd "$WORK" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund @xapi/xapi@3.0.3 >/dev/null)

# Loopback webhooks are allowed here only (production refuses private addresses).
export EPORTFOLIO_DATA_DIR="$WORK/data" EPORTFOLIO_BIND="127.0.0.1:$PORT" LOG_LEVEL=error \
    EPORTFOLIO_PUBLIC_URL="http://localhost:$PORT" \
    ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 \
    WEBHOOK_ALLOW_HTTP=true WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8 WEBHOOK_POLL_MILLIS=200 \
    RATE_LIMIT_LOGIN_PER_ADDRESS=1000000 RATE_LIMIT_MAIL_PER_ADDRESS=1000000 RATE_LIMIT_MAIL_PER_ACCOUNT=1000000
BIN=target/debug/eportfolio
"$BIN" admin create --email integrations@example.org > "$WORK/create.txt"
"$BIN" serve > "$WORK/serve.log" 2>&1 &
SERVER=$!
RECEIVER=""
trap 'kill $SERVER $RECEIVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done

python3 .ci/integrations/setup.py "$WORK" "$PORT" "$HOOK_PORT"
WEBHOOK_SECRET=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['webhook_secret'])" "$WORK/env.json")
"$VENV/bin/python" .ci/integrations/receiver.py "$HOOK_PORT" "$WEBHOOK_SECRET" "$WORK/deliveries.log" &
RECEIVER=$!
trap 'kill $SERVER $RECEIVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "== tincan (PyPI)"
"$VENV/bin/python" .ci/integrations/tincan_client.py "$WORK/env.json" "$WORK/tincan.json"
echo "== @xapi/xapi (npm)"
cp .ci/integrations/xapi_client.mjs "$WORK/"
(cd "$WORK" && node xapi_client.mjs env.json xapi.json)
echo "== Moodle's logstore_xapi (raw), the unmatched list, webhooks (standardwebhooks)"
"$VENV/bin/python" .ci/integrations/moodle_and_check.py "$WORK/env.json" "$WORK/deliveries.log" \
    "$WORK/tincan.json" "$WORK/xapi.json" || { tail -n 30 "$WORK/serve.log"; exit 1; }
echo "integrations: the xAPI libraries, Moodle's batch and the webhook receiver all agree"
