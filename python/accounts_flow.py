"""The event-driven flow klog exists for, embedded in one process.

    python python/accounts_flow.py [--data-dir DIR] [--accounts N] [--crash-after K]

1. The accounts service creates accounts and publishes ``account-created`` events (key: the
   account id). Its own state lives in the compacted topic ``accounts`` (latest state per id).
2. The message service, consumer group ``message-service``, runs ``email`` then ``sms`` on each
   event (composed as "email|sms") and publishes ``communication-sent``; it commits its offsets
   only after publishing, so a crash repeats at most the events since the last commit.
3. The accounts service, group ``accounts-service``, consumes ``communication-sent`` and marks the
   account's communication as done.

Run it twice: the second run picks up where the first stopped. ``--crash-after K`` makes the
message service die (without committing) after K events, to show at-least-once delivery.
"""
import argparse
import json
import os
import sys
import time

import klog

TOPICS = {"account-created": 3, "communication-sent": 3, "accounts": 1}


# -- the functions the message service composes ("email|sms") ---------------------------------
def email(event):
    return {**event, "email_sent_to": event["email"]}


def sms(event):
    return {**event, "sms_sent_to": event["phone"]}


def compose(definition, functions):
    """"email|sms" → one function that runs email, then sms on its result."""
    chain = [functions[name.strip()] for name in definition.split("|")]

    def run(event):
        for fn in chain:
            event = fn(event)
        return event
    return run


class AccountsService:
    def __init__(self, broker):
        self.broker = broker
        self.producer = broker.producer({"linger.ms": 0})
        self.consumer = broker.consumer("accounts-service", {"auto.offset.reset": "earliest",
                                                             "enable.auto.commit": False})
        self.consumer.subscribe(["communication-sent"])
        self.state = self._load_state()

    def _load_state(self):
        """The latest state of every account, read back from the compacted ``accounts`` topic."""
        state = {}
        log = self.broker.log("accounts", 0)
        for r in log.records():
            if r.value is None:
                state.pop(r.key.decode(), None)
            else:
                state[r.key.decode()] = json.loads(r.value)
        return state

    def _save(self, account):
        self.producer.send("accounts", json.dumps(account).encode(), key=account["id"].encode()).get()
        self.state[account["id"]] = account

    def create(self, account_id, email_address, phone):
        if account_id in self.state:
            return False
        account = {"id": account_id, "email": email_address, "phone": phone, "communication": "pending"}
        self._save(account)
        self.producer.send("account-created", json.dumps(account).encode(), key=account_id.encode()).get()
        return True

    def handle_replies(self, timeout_ms=100):
        done = 0
        for r in self.consumer.poll(timeout_ms):
            event = json.loads(r.value)
            account = self.state.get(event["id"])
            if account is not None and account["communication"] != "done":
                self._save({**account, "communication": "done"})
                done += 1
        self.consumer.commit()
        return done

    def close(self):
        self.consumer.close()
        self.producer.close()


class MessageService:
    def __init__(self, broker, crash_after=None):
        self.producer = broker.producer({"linger.ms": 0})
        self.consumer = broker.consumer("message-service", {"auto.offset.reset": "earliest",
                                                            "enable.auto.commit": False})
        self.consumer.subscribe(["account-created"])
        self.handle = compose("email|sms", {"email": email, "sms": sms})
        self.crash_after = crash_after
        self.handled = 0

    def step(self, timeout_ms=100):
        records = self.consumer.poll(timeout_ms)
        for r in records:
            result = self.handle(json.loads(r.value))
            self.producer.send("communication-sent", json.dumps(result).encode(), key=r.key).get()
            self.handled += 1
            if self.crash_after is not None and self.handled >= self.crash_after:
                print(f"message-service: crashing after {self.handled} event(s), offsets not committed",
                      flush=True)
                os._exit(3)  # like kill -9: no close, no commit, no flush
        if records:
            self.consumer.commit()  # after publishing: at-least-once
        return len(records)

    def close(self):
        self.consumer.close()
        self.producer.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="./klog-example-data")
    ap.add_argument("--accounts", type=int, default=10)
    ap.add_argument("--crash-after", type=int, default=None)
    args = ap.parse_args(argv)

    with klog.open(args.data_dir) as broker:
        for name, parts in TOPICS.items():
            if name not in broker.list_topics():
                config = {"cleanup.policy": "compact"} if name == "accounts" else None
                broker.create_topic(name, parts, config)
        accounts = AccountsService(broker)
        messages = MessageService(broker, args.crash_after)
        created = sum(accounts.create(f"acct-{i:04d}", f"user{i}@example.com", f"+1555{i:07d}")
                      for i in range(args.accounts))
        print(f"accounts: created {created} new account(s), {len(accounts.state)} known")
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                handled = messages.step()
                done = accounts.handle_replies()
                if handled or done:
                    print(f"message-service: sent email+sms for {handled} event(s); "
                          f"accounts: {done} marked done")
                pending = [a for a in accounts.state.values() if a["communication"] != "done"]
                if not pending:
                    break
        finally:
            messages.close()
            accounts.close()
        pending = sorted(a["id"] for a in accounts.state.values() if a["communication"] != "done")
        print(f"done: {len(accounts.state) - len(pending)} of {len(accounts.state)} accounts have "
              f"their communication sent" + (f"; pending: {', '.join(pending)}" if pending else ""))
        return 0 if not pending else 1


if __name__ == "__main__":
    sys.exit(main())
