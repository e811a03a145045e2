"""What Moodle's logstore_xapi sends (HTTP Basic with the LRS key and secret, version
1.0.0, a batch of statements without ids, learners by mbox or by Moodle account), then
the checks: every statement of a learning verb is an activity of the trainee or in the
administrators' unmatched list, the voided ones are gone from the portfolio, and every
webhook delivery was verified by the Standard Webhooks receiver."""
import base64, json, sys, time, urllib.error, urllib.request

env = json.load(open(sys.argv[1]))
sent = [json.load(open(p)) for p in sys.argv[3:]]
receiver_log = sys.argv[2]
base = env["base"]


def call(method, path, token=None, body=None, headers=None):
    h = {"Content-Type": "application/json", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers=h, method=method)
    return json.load(urllib.request.urlopen(req))


moodle = "https://moodle.example.org"
verb = lambda v: {"id": f"http://adlnet.gov/expapi/verbs/{v}", "display": {"en": v}}
ctx = {"platform": "Moodle", "language": "en",
       "contextActivities": {"grouping": [{"id": moodle, "definition": {"type": "http://id.tincanapi.com/activitytype/lms"}}],
                             "category": [{"id": "http://moodle.org", "definition": {"type": "http://id.tincanapi.com/activitytype/source"}}]},
       "extensions": {"http://lrs.learninglocker.net/define/extensions/info": {"https://moodle.org/": "4.3"}}}
course = {"id": env["course"], "definition": {"type": "http://id.tincanapi.com/activitytype/lms/course",
                                             "name": {"en": "Försäkringsmedicinsk dag"}}}
module = {"id": f"{moodle}/mod/quiz/view.php?id=12", "definition": {"type": "http://adlnet.gov/expapi/activities/assessment"}}
mbox = {"objectType": "Agent", "name": "BT läkare", "mbox": env["learner"]}
account = {"objectType": "Agent", "name": "BT läkare", "account": {"homePage": moodle, "name": "42"}}
stranger = {"objectType": "Agent", "name": "Okänd", "mbox": "mailto:nobody@example.org"}
batch = [
    {"actor": mbox, "verb": verb("completed"), "object": course, "context": ctx, "timestamp": "2026-11-20T13:00:00+00:00"},
    {"actor": account, "verb": verb("completed"), "object": course, "context": ctx, "timestamp": "2026-11-20T13:00:00+00:00"},
    {"actor": mbox, "verb": verb("passed"), "object": module, "context": ctx, "timestamp": "2026-11-20T13:05:00+00:00",
     "result": {"score": {"raw": 9, "min": 0, "max": 10, "scaled": 0.9}, "completion": True, "success": True}},
    {"actor": stranger, "verb": verb("completed"), "object": course, "context": ctx, "timestamp": "2026-11-20T13:00:00+00:00"},
]
auth = base64.b64encode(f"{env['key']}:{env['secret']}".encode()).decode()
ids = call("POST", "/xapi/statements", body=batch,
           headers={"Authorization": f"Basic {auth}", "X-Experience-API-Version": "1.0.0"})
assert len(ids) == len(batch), ids

voided = {s["voided"] for s in sent}
recorded = [i for s in sent for i in s["ids"] if i not in voided] + ids
unmatched = set()
cursor = ""
while True:
    page = call("GET", f"/xapi/statements?status=unmatched&limit=200{cursor}", env["admin"])
    unmatched |= {s["id"] for s in page["items"]}
    if not page.get("next_cursor"):
        break
    cursor = "&cursor=" + urllib.request.quote(page["next_cursor"])
activity_ids = set()
for i in recorded:
    s = call("GET", f"/xapi/statements/{i}", env["admin"])
    if s["status"] == "created":
        activity_ids.add(s["activity_id"])
    elif i not in unmatched:
        sys.exit(f"integrations: statement {i} is {s['status']}, neither an activity nor unmatched")
portfolio = {a["id"] for a in call("GET", f"/enrolments/{env['enrolment']}/activities?limit=200", env["trainee"])["items"]}
missing = activity_ids - portfolio
assert not missing, f"activities not in the portfolio: {missing}"
for v in voided:
    s = call("GET", f"/xapi/statements/{v}", env["admin"])
    assert s["activity_id"] not in portfolio, f"the voided {v} is still in the portfolio"
print(f"moodle: {len(ids)} statements; {len(recorded)} in all, {len(activity_ids)} activities, "
      f"{len(unmatched & set(recorded))} unmatched, {len(voided)} voided")

# Every webhook delivery of the subscription was verified by the receiver.
deadline = time.time() + 60
while True:
    items = call("GET", f"/webhook-subscriptions/{env['subscription']}/deliveries?limit=200", env["admin"])["items"]
    pending = [d for d in items if d["status"] not in ("delivered", "failed")]
    if items and not pending:
        break
    if time.time() > deadline:
        sys.exit(f"integrations: deliveries still pending: {pending}")
    time.sleep(0.5)
failed = [d for d in items if d["status"] != "delivered"]
assert not failed, f"deliveries the receiver did not verify: {failed}"
log = [json.loads(line) for line in open(receiver_log)]
assert log and all(e["verified"] for e in log), log
first = next(e for e in log if "tampered_refused" in e)
assert first["tampered_refused"] and first["stale_refused"], first
print(f"webhooks: {len(items)} deliveries, all verified by standardwebhooks; "
      "a tampered body and a stale timestamp were refused")
