"""Prepares a running server for the integration checks (.ci/integrations.sh): an
administrator, a care provider with an enrolled trainee, the course mapped, an API client
(the LMS's LRS key and secret), and a webhook subscription to a loopback receiver.
Writes what the checks need to <work>/env.json."""
import base64, email, email.policy, glob, hashlib, hmac, json, re, struct, sys, time, urllib.request

work, port, hook_port = sys.argv[1], sys.argv[2], sys.argv[3]
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
    mfa = call("POST", f"/auth/invitations/{invite}/accept", {"password": "integration passphrase 1"})["mfa_token"]
    secret = call("POST", "/auth/mfa/totp/setup", {"mfa_token": mfa})["secret"]
    return call("POST", "/auth/mfa/totp/confirm", {"mfa_token": mfa, "code": totp(secret)})["access_token"]


def mailed_invitation(to):
    for _ in range(100):
        for path in glob.glob(f"{work}/data/outbox/*"):
            msg = email.message_from_binary_file(open(path, "rb"), policy=email.policy.default)
            if to in str(msg["To"]):
                text = msg.get_body(preferencelist=("plain", "html")).get_content()
                return re.search(r"token=([A-Za-z0-9_-]+)", text).group(1)
        time.sleep(0.1)
    sys.exit(f"integrations: no invitation mail to {to} in the outbox")


admin = onboard(re.search(r"token=([A-Za-z0-9_-]+)", open(f"{work}/create.txt").read()).group(1))
region = call("GET", "/me", token=admin)["roles"][0]["organisation_id"]
provider = call("POST", "/organisations", {"kind": "care_provider", "name": "LMS provider", "parent_id": region}, admin)["id"]
regulation = call("GET", "/regulations?code=bt-2021&latest=true", token=admin)["items"][0]["id"]
template = json.load(open("src/demo_template.json"))
template.update(organisation_id=provider, regulation_id=regulation)
template_id = call("POST", "/programme-templates", template, admin)["id"]
call("POST", "/invitations", {"email": "bt@example.org", "role": "trainee", "organisation_id": provider}, admin)
trainee = onboard(mailed_invitation("bt@example.org"))
trainee_id = call("GET", "/me", token=trainee)["id"]
enrolment = call("POST", "/enrolments", {"trainee_id": trainee_id, "template_id": template_id, "track": "bt_standalone",
                                         "start_date": "2026-09-01", "planned_end": "2027-08-31"}, admin)["id"]
course = "https://moodle.example.org/course/view.php?id=7"
call("POST", "/xapi/activity-mappings", {"organisation_id": region, "xapi_activity_id": course, "kind": "course",
                                         "title": "Försäkringsmedicinsk dag", "delmal": ["BT16"]}, admin)
client = call("POST", "/api-clients", {"organisation_id": region, "name": "Moodle",
                                       "scopes": ["activities:write"]}, admin)
hook = call("POST", "/webhook-subscriptions", {"organisation_id": region, "url": f"http://127.0.0.1:{hook_port}/hook",
                                               "events": ["*"]}, admin)
json.dump({
    "base": base, "endpoint": f"{base}/xapi/", "key": client["client_id"], "secret": client["client_secret"],
    "admin": admin, "trainee": trainee, "enrolment": enrolment, "course": course,
    "learner": "mailto:bt@example.org", "webhook_secret": hook["secret"], "subscription": hook["id"],
}, open(f"{work}/env.json", "w"))
