#!/usr/bin/env bash
# Property-based fuzzing of the running API from its own OpenAPI document (schemathesis):
# no 5xx, every status documented, every response matching its schema. Runs against the
# debug binary the test run built, on a throwaway SQLite database, signed in as an
# administrator (bootstrapped through the real invitation and TOTP flow).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$1"
WORK=$(mktemp -d /tmp/eportfolio-fuzz.XXXXXX)
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
export EPORTFOLIO_DATA_DIR="$WORK/data" EPORTFOLIO_BIND="127.0.0.1:$PORT" LOG_LEVEL=error \
    ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 \
    RATE_LIMIT_LOGIN_PER_ADDRESS=1000000 RATE_LIMIT_MAIL_PER_ADDRESS=1000000 RATE_LIMIT_MAIL_PER_ACCOUNT=1000000
BIN=target/debug/eportfolio
"$BIN" admin create --email fuzz@example.org > "$WORK/create.txt"
"$BIN" serve > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
TOKEN=$(python3 - "$WORK/create.txt" "$PORT" <<'PY'
import base64, hashlib, hmac, json, re, struct, sys, time, urllib.request
invite = re.search(r"token=([A-Za-z0-9_-]+)", open(sys.argv[1]).read()).group(1)
base = f"http://127.0.0.1:{sys.argv[2]}/api/v1"
def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
mfa = post(f"/auth/invitations/{invite}/accept", {"password": "fuzzing passphrase 1"})["mfa_token"]
secret = post("/auth/mfa/totp/setup", {"mfa_token": mfa})["secret"]
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
off = mac[-1] & 15
code = "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)
print(post("/auth/mfa/totp/confirm", {"mfa_token": mfa, "code": code})["access_token"])
PY
)
# Logout and password change would end the fuzzing session itself.
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/v1/openapi.json" --url "http://127.0.0.1:$PORT" \
    -H "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --phases examples,fuzzing --max-examples 15 --workers 2 --seed 20261124 \
    --exclude-path-regex '/auth/logout|/me/password'
