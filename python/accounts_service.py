"""The accounts service: a small HTTP API over accounts whose state lives in the compacted
topic ``accounts``; it publishes ``account-created`` and, as the consumer ``mark``, takes
``communication-sent`` events to mark the account's communication done.

    POST /accounts {"id": ..., "email": ..., "phone": ...}   -> 201 (200 if it exists)
    GET  /accounts/<id>                                        -> the account, 404 if unknown
    GET  /accounts                                             -> {"accounts": n, "marked": m, ...}

Marking is idempotent: ``communication-sent`` arrives at least once (a message service killed
between publishing and committing publishes again), and an account already marked stays as it
is, so every account is marked exactly once (``marks`` counts it).
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from klog.functions import App
from klog.functions.replay import read_topic

app = App("accounts-service")

BINDINGS = {"mark-in-0": {"destination": "communication-sent", "enable-dlq": True}}
DEFINITION = "mark"
STATE_TOPIC = "accounts"
TOPICS = {"account-created": 3, "communication-sent": 3}


class Accounts:
    """The accounts, read back from the compacted topic at start and written through to it
    (acknowledged) before any event about them is published."""

    def __init__(self):
        self.state = {}
        self.lock = threading.Lock()
        self.duplicates = 0

    def load(self, client):
        existing = client.list_topics()
        if STATE_TOPIC not in existing:
            client.create_topic(STATE_TOPIC, 1, {"cleanup.policy": "compact"})
        for name, parts in TOPICS.items():
            if name not in existing:
                client.create_topic(name, parts)
        for r in read_topic(client, STATE_TOPIC):
            if r.value is None:
                self.state.pop(r.key.decode(), None)
            else:
                self.state[r.key.decode()] = json.loads(r.value)
        return self

    def _save(self, account):
        app.send(STATE_TOPIC, account, key=account["id"]).get(30)
        self.state[account["id"]] = account

    def create(self, account_id, email, phone):
        with self.lock:
            if account_id in self.state:
                return False
            account = {"id": account_id, "email": email, "phone": phone,
                       "communication": "pending", "marks": 0}
            self._save(account)
        app.send("account-created", account, key=account_id).get(30)
        return True

    def mark(self, account_id):
        with self.lock:
            account = self.state.get(account_id)
            if account is None:
                raise KeyError(f"communication-sent for unknown account {account_id!r}")
            if account["communication"] == "done":
                self.duplicates += 1   # a redelivery: already marked
                return False
            self._save({**account, "communication": "done", "marks": account["marks"] + 1})
            return True

    def summary(self):
        with self.lock:
            marked = sum(1 for a in self.state.values() if a["communication"] == "done")
            return {"accounts": len(self.state), "marked": marked,
                    "pending": len(self.state) - marked, "duplicates_ignored": self.duplicates}


ACCOUNTS = Accounts()


@app.consumer
def mark(event: dict):
    ACCOUNTS.mark(event["id"])


class Handler(BaseHTTPRequestHandler):
    def _reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path.rstrip("/") != "/accounts":
            return self._reply(404, {"error": f"no such resource {self.path}"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            account_id, email, phone = str(body["id"]), body["email"], body["phone"]
        except (ValueError, KeyError, TypeError) as e:
            return self._reply(400, {"error": f"expected JSON with id, email and phone: {e}"})
        created = ACCOUNTS.create(account_id, email, phone)
        self._reply(201 if created else 200, ACCOUNTS.state[account_id])

    def do_GET(self):
        parts = [p for p in self.path.split("/") if p]
        if parts == ["accounts"]:
            return self._reply(200, ACCOUNTS.summary())
        if len(parts) == 2 and parts[0] == "accounts":
            account = ACCOUNTS.state.get(parts[1])
            if account is None:
                return self._reply(404, {"error": f"unknown account {parts[1]!r}"})
            return self._reply(200, account)
        self._reply(404, {"error": f"no such resource {self.path}"})

    def log_message(self, *args):  # quiet
        pass


def start(client, http_port=None, **kwargs):
    """Load the state, start the consumer and (with ``http_port``) the HTTP API.
    Returns (running, http server or None)."""
    ACCOUNTS.load(client)
    running = app.start(client, definition=DEFINITION, bindings=BINDINGS, **kwargs)
    server = None
    if http_port is not None:
        server = ThreadingHTTPServer(("127.0.0.1", http_port), Handler)
        threading.Thread(target=server.serve_forever, name="accounts-http", daemon=True).start()
    return running, server
