"""Threshold alerts as signed webhooks: a daily cap alerts at 80% and 100%, credits alert
below an amount; a local receiver checks each signature with ``quota.webhooks.verify``.

uv run python examples/webhooks.py
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import quota
from quota.webhooks import SIGNATURE, TIMESTAMP, WebhookSender, verify

SECRET = "whsec-demo"  # shared by the sender and the receiver
received: list[dict[str, object]] = []


class Receiver(BaseHTTPRequestHandler):
    """What your endpoint does: read the raw body, verify, then act on the event."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not verify(SECRET, body, self.headers[TIMESTAMP], self.headers[SIGNATURE]):
            self.send_response(401)  # not signed by our sender, or stale
        else:
            received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/quota-alerts"

catalog = quota.Catalog.load(
    {
        "alerts": {"used": [80, 100], "balance_below": 1_000},
        "plans": {
            "go": {
                "limits": [
                    {"name": "rpd", "meter": "requests", "algorithm": "calendar", "rate": "10/day"},
                    {"name": "credits", "meter": "credits", "algorithm": "balance", "grant": 5_000},
                ]
            }
        },
    }
)
now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
sender = WebhookSender(url, SECRET, queue_size=1000, retries=5, backoff=0.5)
with quota.Limiter(catalog, "memory://", clock=lambda: now, alerts=sender) as limiter:
    who = quota.Principal(account="acct_42", plan="go")
    for i in range(1, 12):
        d = limiter.acquire(who, {"requests": 1, "credits": 450})
        crossed = ", ".join(f"{a.limit} {a.kind} {a.threshold}" for a in d.alerts) or "-"
        print(f"request {i}: {'allowed' if d.allowed else d.status}, alerts: {crossed}")

sender.close()  # delivers what is queued (alerts never wait on the request path)
for event in received:
    print(f"webhook: {event['account']} {event['limit']} {event['kind']} {event['threshold']}")
print(f"sender: {sender.stats.as_dict()}")
server.shutdown()
