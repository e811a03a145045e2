#!/usr/bin/env python3
"""Which operations of the OpenAPI document the test suite called with success, and
which it saw refused (403 or 404: the caller may not, or may not know it exists), and
by whom (the log's `caller=person|client|none`).

A refusal counts for a person only when a person's token was refused: the walk that
sends every operation with an API client's token is refused almost everywhere and says
nothing about people. Operations an API client was answered with success must also have
been refused to an API client (without the scope, or of another organisation).

Reads the servers' request log of a whole test run (ROUTE_COVERAGE_FILE; each line has
`method=... path=<route pattern> status=...`). Fails when an operation was never answered
with success, or when an operation that needs a token was never refused, unless the
operation is listed in the gaps file; and fails too when a listed gap has been closed,
so that the list only shrinks.

usage: route_coverage.py openapi.json requests.log gaps.txt
"""
import json
import re
import sys

spec_path, log_path, gaps_path = sys.argv[1:4]
spec = json.load(open(spec_path))
normal = lambda p: re.sub(r"\{[^}]*\}", "{}", p)

operations = {}
for path, item in spec["paths"].items():
    for method, op in item.items():
        if method not in ("get", "post", "put", "patch", "delete"):
            continue
        security = op.get("security", spec.get("security", []))
        public = security == [] or security == [{}]
        operations[(method.upper(), normal(path))] = public

line = re.compile(r'method=(\S+) path=(\S+) status=(\d+)(?: caller="?(\w+)"?)?')
seen = {}
for text in open(log_path, encoding="utf-8", errors="replace"):
    m = line.search(text)
    if not m:
        continue
    key = (m.group(1), normal(m.group(2)))
    if key in operations:
        seen.setdefault(key, set()).add((int(m.group(3)), m.group(4) or "none"))
if not seen:
    sys.exit("route coverage: the log holds no requests (was ROUTE_COVERAGE_FILE set?)")

gaps = set()
for text in open(gaps_path):
    text = text.split("#", 1)[0].strip()
    if text:
        kind, method, path = text.split()
        gaps.add((kind, method, normal(path)))

missing, closed = [], []
for (method, path), public in sorted(operations.items()):
    answers = seen.get((method, path), set())
    refused = lambda who: any(s in (403, 404) and c == who for s, c in answers)
    checks = [("success", any(200 <= s < 400 for s, _ in answers))]
    if not public:
        checks.append(("refusal", refused("person")))
        if any(200 <= s < 400 and c == "client" for s, c in answers):
            checks.append(("client-refusal", refused("client")))
    for kind, ok in checks:
        listed = (kind, method, path) in gaps
        if not ok and not listed:
            missing.append(f"{kind} {method} {path}")
        if ok and listed:
            closed.append(f"{kind} {method} {path}")

print(f"route coverage: {len(operations)} operations, {len(seen)} called, "
      f"{len(gaps)} known gaps")
if missing:
    print("never exercised (add a test, or list it in " + gaps_path + "):")
    print("\n".join("  " + m for m in missing))
if closed:
    print("covered now, remove from " + gaps_path + ":")
    print("\n".join("  " + c for c in closed))
sys.exit(1 if missing or closed else 0)
