#!/usr/bin/env bash
# Metrics checks (issue 22): the API test that scrapes /metrics after its traffic
# (tests/api/metrics.rs) writes the scrape to a file; promtool (Debian's prometheus
# package) and the prometheus-client PyPI parser must both read it; promtool checks the
# alert rules and the scrape config of deploy/prometheus. Usage: .ci/metrics.sh [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: a new release must not turn CI red (or green) on its own.
PROMETHEUS_DEB="2.42.0+ds-5+deb12u1"
PROMETHEUS_CLIENT="0.26.0"

if ! command -v promtool >/dev/null 2>&1; then
    apt-get update -qq
    # The pinned version when the archive still has it, else the archive's.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "prometheus=$PROMETHEUS_DEB" >/dev/null 2>&1 \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version | head -n 1

VENV="${1:-}"
if [ -z "$VENV" ]; then
    VENV=$(mktemp -d /tmp/eportfolio-metrics-venv.XXXXXX)
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "prometheus-client==$PROMETHEUS_CLIENT"

WORK=$(mktemp -d /tmp/eportfolio-metrics.XXXXXX)
SCRAPE="$WORK/scrape.txt"

echo "== the metrics test, keeping its scrape"
# The summary when it passes; everything (the panic and its scrape) when it does not.
if ! METRICS_SCRAPE_FILE="$SCRAPE" cargo test --locked --test api metrics:: > "$WORK/test.log" 2>&1; then
    cat "$WORK/test.log"
    exit 1
fi
tail -n 5 "$WORK/test.log"
test -s "$SCRAPE" || { echo "metrics: the test wrote no scrape to $SCRAPE" >&2; exit 1; }

echo "== promtool check metrics"
# promtool reports lint findings (such as a counter's name) on stdout and exits non-zero.
promtool check metrics < "$SCRAPE"

echo "== prometheus-client parser"
"$VENV/bin/python" - "$SCRAPE" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
families = {f.name: f for f in text_string_to_metric_families(text)}
expected = {
    "eportfolio_http_requests", "eportfolio_http_request_duration_seconds",
    "eportfolio_db_pool_connections", "eportfolio_db_pool_connections_in_use",
    "eportfolio_db_pool_max_connections", "eportfolio_db_pool_wait_seconds",
    "eportfolio_queue_depth", "eportfolio_queue_oldest_age_seconds",
    "eportfolio_deliveries", "eportfolio_logins", "eportfolio_second_factor",
    "eportfolio_security_events", "eportfolio_build_info",
}
missing = sorted(expected - set(families))
if missing:
    sys.exit(f"metrics: missing families {missing}")
print(f"prometheus-client read {len(families)} families, "
      f"{sum(len(f.samples) for f in families.values())} samples")
PY

echo "== promtool check rules / config"
promtool check rules deploy/prometheus/alerts.yml
promtool check config --syntax-only deploy/prometheus/prometheus.yml

echo "== Grafana dashboard is JSON"
python3 -m json.tool deploy/grafana/eportfolio.json >/dev/null
