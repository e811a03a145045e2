#!/usr/bin/env bash
# Property-based fuzzing of the running API from its own OpenAPI document (schemathesis):
# no 5xx, every status documented, every response matching its schema. Runs against the
# debug binary the test run built, on a throwaway SQLite database, three times: signed in
# as an administrator, as an enrolled trainee, and as an API client (client-credentials
# token). All three are made through the real API (invitation, TOTP, enrolment on a
# template, client registration), so each run sees what that kind of caller sees: an
# administrator reaches the handlers' bodies, a trainee and a client mostly the access
# checks and the 403/404 paths, which must be documented too.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$1"
WORK=$(mktemp -d /tmp/eportfolio-fuzz.XXXXXX)
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
# The public URL names localhost, the one http origin passkeys accept, so that the
# passkey operations run as configured in production instead of answering 503.
export EPORTFOLIO_DATA_DIR="$WORK/data" EPORTFOLIO_BIND="127.0.0.1:$PORT" LOG_LEVEL=error \
    EPORTFOLIO_PUBLIC_URL="http://localhost:$PORT" \
    ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 \
    RATE_LIMIT_LOGIN_PER_ADDRESS=1000000 RATE_LIMIT_MAIL_PER_ADDRESS=1000000 RATE_LIMIT_MAIL_PER_ACCOUNT=1000000
BIN=target/debug/eportfolio
"$BIN" admin create --email fuzz@example.org > "$WORK/create.txt"
"$BIN" serve > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
# Writes the three bearer tokens to $WORK/admin.token, trainee.token and client.token, and
# $WORK/schemathesis.toml.
python3 - "$WORK" "$PORT" <<'PY'
import base64, email, email.policy, glob, hashlib, hmac, json, re, struct, sys, time, urllib.request
work, port = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}/api/v1"

def call(method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    return json.load(urllib.request.urlopen(req))

def totp(secret):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    off = mac[-1] & 15
    return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)

def onboard(invite):
    """Accepts an invitation and enrols TOTP; returns the access token."""
    mfa = call("POST", f"/auth/invitations/{invite}/accept", {"password": "fuzzing passphrase 1"})["mfa_token"]
    secret = call("POST", "/auth/mfa/totp/setup", {"mfa_token": mfa})["secret"]
    return call("POST", "/auth/mfa/totp/confirm", {"mfa_token": mfa, "code": totp(secret)})["access_token"]

def mailed_invitation(to):
    """The invitation token of the mail to `to` in the outbox (quick-start mail transport)."""
    for _ in range(100):
        for path in glob.glob(f"{work}/data/outbox/*"):
            msg = email.message_from_binary_file(open(path, "rb"), policy=email.policy.default)
            if to in str(msg["To"]):
                text = msg.get_body(preferencelist=("plain", "html")).get_content()
                return re.search(r"token=([A-Za-z0-9_-]+)", text).group(1)
        time.sleep(0.1)
    sys.exit(f"fuzz: no invitation mail to {to} in the outbox")

admin = onboard(re.search(r"token=([A-Za-z0-9_-]+)", open(f"{work}/create.txt").read()).group(1))
region = call("GET", "/me", token=admin)["roles"][0]["organisation_id"]
provider = call("POST", "/organisations", {"kind": "care_provider", "name": "Fuzz provider", "parent_id": region}, admin)["id"]

# A trainee enrolled on the demo's BT template.
regulation = call("GET", "/regulations?code=bt-2021&latest=true", token=admin)["items"][0]["id"]
template = json.load(open("src/demo_template.json"))
template.update(organisation_id=provider, regulation_id=regulation)
template_id = call("POST", "/programme-templates", template, admin)["id"]
call("POST", "/invitations", {"email": "trainee@example.org", "role": "trainee", "organisation_id": provider}, admin)
trainee = onboard(mailed_invitation("trainee@example.org"))
trainee_id = call("GET", "/me", token=trainee)["id"]
enrolment = call("POST", "/enrolments", {"trainee_id": trainee_id, "template_id": template_id, "track": "bt_standalone",
                             "start_date": "2026-09-01", "planned_end": "2027-08-31"}, admin)["id"]

# An API client of the provider with every scope, signed in by the client-credentials grant.
client = call("POST", "/api-clients", {"organisation_id": provider, "name": "Fuzz LMS",
                                       "scopes": ["activities:write", "progress:read", "catalog:read"]}, admin)
basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
req = urllib.request.Request(base + "/oauth/token", data=b"grant_type=client_credentials",
                             headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"})
client_token = json.load(urllib.request.urlopen(req))["access_token"]

for name, token in (("admin", admin), ("trainee", trainee), ("client", client_token)):
    open(f"{work}/{name}.token", "w").write(token)
# Random ids only ever reach the 404 path: the enrolment's own operations get its real id,
# so the trainee's and the client's runs reach the handlers behind the access check.
open(f"{work}/schemathesis.toml", "w").write(f"""
[[operations]]
include-path-regex = '^/api/v1/enrolments/\\{{id\\}}'
parameters = {{ "path.id" = "{enrolment}" }}
""")
PY
fuzz() {
    local who=$1 examples=$2 exclude=$3
    echo "== schemathesis as $who"
    "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "http://127.0.0.1:$PORT/api/v1/openapi.json" --url "http://127.0.0.1:$PORT" \
        -H "Authorization: Bearer $(cat "$WORK/$who.token")" \
        --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
        --phases examples,fuzzing --max-examples "$examples" --workers 2 --seed 20261124 \
        --exclude-path-regex "$exclude"
}
# Logout and password change would end the fuzzing session itself. The trainee and the
# client runs skip the unauthenticated /auth/ and /oauth/ operations (the bearer token
# changes nothing there; the administrator's run covers them) and take fewer examples:
# most of what they reach is the access check.
fuzz trainee 8 '/auth/|/oauth/|/me/password'
fuzz client 5 '/auth/|/oauth/|/me/password'
fuzz admin 15 '/auth/logout|/me/password'
