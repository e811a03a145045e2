#!/usr/bin/env bash
# Off-the-shelf tools take the committed OpenAPI document as it is (issue 16):
# - openapi-python-client generates a client with no warning (none of its "endpoint will
#   not be generated" or "unable to process schema"),
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
OUT=$("$VENV/bin/openapi-python-client" generate --path "$SPEC" --output-path "$WORK/python" \
    --config .ci/openapi-python-client.yaml 2>&1)
echo "$OUT"
if grep -qiE "warning|unable|error|will not be generated" <<<"$OUT"; then
    echo "clients: openapi-python-client did not take the document cleanly" >&2
    exit 1
fi

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
echo "clients: the Python client generates cleanly, the TypeScript app compiles, the lint is clean"
