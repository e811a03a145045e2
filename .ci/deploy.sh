#!/usr/bin/env bash
# CI: the deployment files of deploy/ checked as far as a machine without a container
# runtime allows (issue 20):
#   - the crate compiles from exactly the Docker build context (.dockerignore);
#   - `nginx -t` (Debian's nginx) passes on deploy/nginx.conf, and nginx in front of the
#     binary answers over TLS with HSTS and refuses bodies above the limit;
#   - deploy/compose.yaml parses and its services, networks and secrets check out;
#   - the systemd unit verifies, carries the hardening, and the binary starts and
#     serves with the unit's umask and no capabilities (the Dockerfile's HEALTHCHECK);
#   - `eportfolio migrate` upgrades databases of the previous schema (SQLite and
#     PostgreSQL fixtures) and keeps every row.
# Usage: .ci/deploy.sh POSTGRES_URL   (a server this script may create databases on)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PG_URL=${1:?usage: .ci/deploy.sh POSTGRES_URL}
WORK=$(mktemp -d /tmp/eportfolio-deploy.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
    echo "deploy: $*" >&2
    exit 1
}
free_port() {
    python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

# Pinned, so that a new release can't turn CI red (or green) on its own. docker: the
# Docker SDK's own .dockerignore matcher; PyYAML: the compose file.
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q docker==7.1.0 PyYAML==6.0.2
PY="$WORK/venv/bin/python"

echo "== build from exactly the Docker build context"
# The Dockerfile must send the whole context to the build, or this check proves nothing.
grep -qx 'COPY \. \.' deploy/Dockerfile || fail "deploy/Dockerfile no longer copies the whole context (COPY . .)"
"$PY" .ci/deploy/build_context.py "$ROOT" "$WORK/context"
# The Dockerfile's build command, offline against the registry cache the test runs
# filled, as `cargo check`: it expands every include_bytes!/include_str!, embeds the
# migrations and runs build.rs with .cargo/config.toml's environment, so a path the
# build needs but the context leaves out fails here. A full build would compile the
# dependencies a second time (a binary builds without the dev-dependencies' features)
# and write gigabytes the CI machine may not have: a run died of a full disk here.
# The binary served below is the one the test runs built from the same commit.
(cd "$WORK/context" && CARGO_TARGET_DIR="$ROOT/target" cargo check --locked --offline --bin eportfolio)
BIN="$ROOT/target/debug/eportfolio"
[ -x "$BIN" ] || fail "$BIN missing: run cargo test first (.ci/run does)"

echo "== nginx -t on deploy/nginx.conf (Debian's nginx, throwaway certificate)"
NGINX=$(command -v nginx || true)
if [ -z "$NGINX" ]; then
    # The binary only: installing the package would start a system nginx.
    (cd "$WORK" && { apt-get download -q nginx >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get download -q nginx >/dev/null; }; } \
        && dpkg-deb -x nginx_*.deb nginx-root)
    NGINX="$WORK/nginx-root/usr/sbin/nginx"
fi
"$NGINX" -v
mkdir -p "$WORK/nginx/tls" "$WORK/nginx/logs"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=portfolio.example.se \
    -keyout "$WORK/nginx/tls/privkey.pem" -out "$WORK/nginx/tls/fullchain.pem" 2>/dev/null
# What the issue asks of the file itself.
conf=deploy/nginx.conf
grep -Eq 'add_header Strict-Transport-Security "max-age=[0-9]{8,}[^"]*" always;' $conf || fail "nginx.conf: no HSTS header (max-age of a year or more, always)"
grep -Eq 'proxy_set_header X-Forwarded-For \$remote_addr;' $conf || fail "nginx.conf: X-Forwarded-For must be overwritten with \$remote_addr"
! grep -q 'proxy_add_x_forwarded_for' $conf || fail "nginx.conf: X-Forwarded-For appended to, not overwritten"
grep -Eq 'proxy_http_version 1\.1;' $conf || fail "nginx.conf: no HTTP/1.1 to the upstream (keep-alive)"
grep -Eq 'proxy_set_header Connection "";' $conf || fail "nginx.conf: Connection header passed on (keep-alive, no upgrade)"
grep -Eq '^\s*keepalive [0-9]+;' $conf || fail "nginx.conf: no upstream keepalive"
limit=$(sed -nE 's/^\s*client_max_body_size ([0-9]+)m;.*/\1/p' $conf)
[ -n "$limit" ] && [ "$((limit * 1024 * 1024))" -ge 20971520 ] || fail "nginx.conf: client_max_body_size below the attachment limit (20 MiB)"
# The compose names (upstream host, certificate paths, ports) replaced by this
# machine's; everything else is the committed file.
APP_PORT=$(free_port)
HTTP_PORT=$(free_port)
HTTPS_PORT=$(free_port)
sed -e "s#server api:8080;#server 127.0.0.1:$APP_PORT;#" \
    -e "s#/etc/nginx/tls/#$WORK/nginx/tls/#" \
    -e "s#listen 80;#listen 127.0.0.1:$HTTP_PORT;#" \
    -e "s#listen 443 ssl#listen 127.0.0.1:$HTTPS_PORT ssl#" \
    $conf >"$WORK/nginx/site.conf"
cat >"$WORK/nginx/nginx.conf" <<EOF
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    include $WORK/nginx/site.conf;
}
EOF
"$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" \
    || fail "nginx -t failed on deploy/nginx.conf"

echo "== deploy/compose.yaml"
"$PY" .ci/deploy/compose_check.py "$ROOT"

echo "== systemd unit"
unit=deploy/eportfolio.service
for setting in UMask=0077 CapabilityBoundingSet= AmbientCapabilities= \
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' SystemCallFilter=@system-service \
    SystemCallArchitectures=native MemoryDenyWriteExecute=yes LockPersonality=yes \
    RestrictNamespaces=yes PrivateDevices=yes ProtectKernelTunables=yes \
    ProtectKernelModules=yes ProtectKernelLogs=yes ProtectControlGroups=yes ProtectClock=yes \
    ProtectHostname=yes RestrictRealtime=yes RestrictSUIDSGID=yes NoNewPrivileges=yes \
    ProtectSystem=strict; do
    grep -qxF "$setting" $unit || fail "$unit: missing $setting"
done
# The unit as installed, but with this build's binary and an optional environment file.
sed -e "s#^ExecStart=/usr/local/bin/eportfolio#ExecStart=$BIN#" \
    -e 's#^EnvironmentFile=/etc/#EnvironmentFile=-/etc/#' $unit >"$WORK/eportfolio.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$WORK/eportfolio.service"
    # Exposure 0 (best) to 10; the unit scores 1.5. Fails above 2.0.
    systemd-analyze security --offline=true --threshold=20 "$WORK/eportfolio.service" | tail -n 1
else
    # No systemd here: at least every line is a section, a comment or Key=value of a
    # known section.
    "$PY" - "$unit" <<'EOF'
import re, sys
section = None
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    if re.fullmatch(r"\[(Unit|Service|Install)\]", line):
        section = line
    elif section and re.fullmatch(r"[A-Z][A-Za-z]+=.*", line):
        continue
    else:
        sys.exit(f"{sys.argv[1]}:{n}: not a unit file line: {line}")
EOF
fi

echo "== the binary serves under the unit's settings, behind nginx"
# What this machine allows of the unit: its umask, no capabilities, no new privileges,
# the environment file's settings (SMTP replaced by the mail outbox).
STATE="$WORK/state"
mkdir -m 0700 "$STATE"
# The environment file as systemd reads it (one KEY=value a line, values may hold
# spaces), with this machine's address, directory and no SMTP relay.
ENVV=()
while IFS= read -r line; do
    case "$line" in
    '' | '#'*) continue ;;
    SMTP_* | EPORTFOLIO_BIND=* | EPORTFOLIO_DATA_DIR=*) continue ;;
    esac
    ENVV+=("$line")
done <deploy/eportfolio.env
PRIV=(setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all)
if [ "$(id -u)" = 0 ]; then
    # As an unprivileged user, as the unit's User= would, with an empty bounding set.
    chmod 0711 "$WORK"
    chown 65534:65534 "$STATE"
    PRIV+=(--reuid=65534 --regid=65534 --clear-groups --bounding-set=-all)
fi
env -i PATH="$PATH" "${ENVV[@]}" EPORTFOLIO_BIND="127.0.0.1:$APP_PORT" EPORTFOLIO_DATA_DIR="$STATE" \
    bash -c 'umask 0077; exec "$@"' _ "${PRIV[@]}" "$BIN" serve >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
# The Dockerfile's own HEALTHCHECK command, pointed at this port.
health=$("$PY" -c '
import json, re, sys
line = next(l for l in open("deploy/Dockerfile") if l.startswith("HEALTHCHECK CMD "))
print(json.loads(line[len("HEALTHCHECK CMD "):])[2])')
for _ in $(seq 1 100); do
    if bash -c "${health//8080/$APP_PORT}" 2>/dev/null; then break; fi
    sleep 0.2
done
bash -c "${health//8080/$APP_PORT}" || { cat "$WORK/serve.log"; fail "the service did not become ready"; }
loose=$(find "$STATE" -mindepth 1 \( -type f -perm /077 -o -type d -perm /077 \) -print)
[ -z "$loose" ] || fail "readable by others under UMask=0077: $loose"
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf"
PIDS+=("$(cat "$WORK/nginx/nginx.pid")")
headers=$(curl -sS -k -D - -o /dev/null "https://127.0.0.1:$HTTPS_PORT/ready")
grep -q '^HTTP/[0-9.]* 200' <<<"$headers" || fail "GET /ready through nginx: $headers"
grep -qi '^strict-transport-security: max-age=' <<<"$headers" || fail "no HSTS through nginx"
status=$(curl -sS -k -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/ready")
[ "$status" = 301 ] || fail "plain http answered $status, not a redirect to https"
status=$(head -c 23000000 /dev/zero | curl -sS -k -o /dev/null -w '%{http_code}' \
    -H 'Content-Type: application/octet-stream' --data-binary @- "https://127.0.0.1:$HTTPS_PORT/ready")
[ "$status" = 413 ] || fail "a body above client_max_body_size answered $status, not 413"
kill "$(cat "$WORK/nginx/nginx.pid")" "${PIDS[0]}"
PIDS=()

echo "== upgrade: eportfolio migrate on databases of the previous schema"
bash .ci/deploy/upgrade.sh "$BIN" "$PG_URL" "$WORK/upgrade"

echo "deploy: all checks passed"
