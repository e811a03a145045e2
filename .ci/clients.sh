#!/usr/bin/env bash
# Off-the-shelf tools take the committed OpenAPI document as it is (issue 16):
# - openapi-python-client generates a client with no warning (none of its "endpoint will
#   not be generated" or "unable to process schema"), and a phone's workflow written with
#   that client alone (.ci/clients/phone.py) runs against a server seeded by `demo`,
# - openapi-typescript's types and openapi-fetch compile a phone app's calls
#   (.ci/clients/app.ts) under `strict`,
# - redocly lints it with its recommended rules: no error, no warning.
# Versions are pinned, so that a new release can't turn CI red (or green) on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$1"
SPEC="$PWD/openapi/openapi.json"
WORK=$(mktemp -d /tmp/eportfolio-clients.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "== openapi-python-client"
"$VENV/bin/pip" install -q openapi-python-client==0.29.1
# The template sends a file with the media type its `File` names: the stock one sends
# every upload as the last type the operation lists (see python-templates/).
OUT=$("$VENV/bin/openapi-python-client" generate --path "$SPEC" --output-path "$WORK/python" \
    --config .ci/openapi-python-client.yaml --custom-template-path .ci/clients/python-templates 2>&1)
echo "$OUT"
if grep -qiE "warning|unable|error|will not be generated" <<<"$OUT"; then
    echo "clients: openapi-python-client did not take the document cleanly" >&2
    exit 1
fi

echo "== the phone's workflow through the generated Python client"
# Its own environment, with the client's dependencies pinned.
python3 -m venv "$WORK/phone"
"$WORK/phone/bin/pip" install -q httpx==0.28.1 attrs==26.1.0 python-dateutil==2.9.0.post0
"$WORK/phone/bin/pip" install -q --no-deps "$WORK/python"
PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
(
    export EPORTFOLIO_DATA_DIR="$WORK/data" EPORTFOLIO_BIND="127.0.0.1:$PORT" LOG_LEVEL=error \
        ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1
    BIN=target/debug/eportfolio
    "$BIN" demo > "$WORK/demo.txt"
    "$BIN" serve > "$WORK/serve.log" 2>&1 &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
    # The first trainee of the demo's report: "  trainee  Name  email  TOTP SECRET  note".
    read -r EMAIL SECRET < <(python3 -c '
import re, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("  trainee "):
        print(re.search(r"\S+@\S+", line).group(0), re.search(r"TOTP (\S+)", line).group(1))
        break' "$WORK/demo.txt")
    PASSWORD=$(sed -nE 's/.*password is ([^;]+);.*/\1/p' "$WORK/demo.txt")
    "$WORK/phone/bin/python" .ci/clients/phone.py "http://127.0.0.1:$PORT" "$EMAIL" "$PASSWORD" "$SECRET"
)

echo "== npm tools"
(cd "$WORK" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
    @redocly/cli@2.77.0 openapi-typescript@7.13.0 openapi-fetch@0.17.0 typescript@5.9.3 >/dev/null)
BIN="$WORK/node_modules/.bin"

echo "== redocly lint (recommended rules)"
OUT=$("$BIN/redocly" lint "$SPEC" 2>&1) || { echo "$OUT"; exit 1; }
echo "$OUT" | tail -n 3
if ! grep -q "Your API description is valid" <<<"$OUT" || grep -qE "You have [0-9]+ warning" <<<"$OUT"; then
    echo "$OUT"
    echo "clients: redocly reports warnings" >&2
    exit 1
fi

echo "== openapi-typescript + openapi-fetch under tsc --strict"
mkdir -p "$WORK/ts"
cp .ci/clients/app.ts .ci/clients/tsconfig.json "$WORK/ts/"
ln -s "$WORK/node_modules" "$WORK/ts/node_modules"
"$BIN/openapi-typescript" "$SPEC" -o "$WORK/ts/schema.d.ts"
"$BIN/tsc" -p "$WORK/ts/tsconfig.json"
echo "clients: the Python client generates cleanly and runs the phone's workflow, the TypeScript app compiles, the lint is clean"
