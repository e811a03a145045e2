"""A webhook receiver on loopback that verifies every delivery with the
`standardwebhooks` library and answers 204 only to verified ones. For the first
delivery it also checks that the library refuses the same delivery with a tampered body
and with a stale timestamp. Appends one JSON line per delivery to <log>."""
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

port, secret, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
hook = Webhook(secret)
checked_refusals = False


def refused(body, headers):
    try:
        hook.verify(body, headers)
    except WebhookVerificationError:
        return True
    return False


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global checked_refusals
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {"id": headers.get("webhook-id"), "event": headers.get("eportfolio-event")}
        try:
            hook.verify(body, headers)
            entry["verified"] = True
        except WebhookVerificationError as e:
            entry["verified"], entry["error"] = False, str(e)
        if entry["verified"] and not checked_refusals:
            tampered = body.replace(b"}", b',"x":1}', 1)
            stale_ts = int(time.time()) - 3600
            stale = dict(headers, **{"webhook-timestamp": str(stale_ts),
                                     "webhook-signature": hook.sign(headers["webhook-id"], _dt(stale_ts), body.decode())})
            entry["tampered_refused"] = refused(tampered, headers)
            entry["stale_refused"] = refused(body, stale)
            checked_refusals = True
        with open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.send_response(204 if entry["verified"] else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


def _dt(ts):
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, tz=timezone.utc)


HTTPServer(("127.0.0.1", port), Handler).serve_forever()
