"""Run the accounts and message services: all in this process on an embedded log (the
default), or one service per process against ``klog serve`` / Kafka.

    python python/services.py --accounts 5000                     # embedded, one command
    klog serve --data-dir ./klog-data &                            # or separate processes:
    python python/services.py --role accounts --broker kafka://127.0.0.1:9092 --http-port 8080
    python python/services.py --role message  --broker kafka://127.0.0.1:9092
    curl -s -XPOST localhost:8080/accounts -d '{"id":"a1","email":"a@x","phone":"+1"}'
    curl -s localhost:8080/accounts/a1

``--broker`` (or ``KLOG_BROKER``): a data directory (embedded) or ``kafka://host:port``.
With ``--role all`` and ``--accounts N`` the accounts service creates N accounts, both services
run until every account is marked, and the run prints what happened and the events/s.
"""
import argparse
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import accounts_service  # noqa: E402
import message_service  # noqa: E402

from klog.functions.app import connect  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default=os.environ.get("KLOG_BROKER", "./klog-services-data"))
    ap.add_argument("--role", choices=("all", "accounts", "message"), default="all")
    ap.add_argument("--accounts", type=int, default=0, help="accounts to create (role all)")
    ap.add_argument("--http-port", type=int, default=None, help="accounts HTTP API port (0: any)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="binding settings for both services, e.g. "
                         "default.consumer.session.timeout.ms=6000")
    args = ap.parse_args(argv)

    client, _ = connect(args.broker)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    started = []
    try:
        if args.role in ("all", "accounts"):
            running, server = accounts_service.start(client, http_port=args.http_port,
                                                     sets=args.sets)
            started.append(running)
            if server is not None:
                print(f"accounts: HTTP API on http://127.0.0.1:{server.server_port}", flush=True)
        if args.role in ("all", "message"):
            started.append(message_service.start(client, sets=args.sets))
            print("message-service: running email|sms on account-created", flush=True)
        if args.role == "all" and args.accounts:
            return run_accounts(args.accounts, started)
        while not stop.is_set() and all(r.error is None for r in started):
            stop.wait(0.5)
        return 1 if any(r.error is not None for r in started) else 0
    finally:
        for r in started:
            r.stop()
        client.close()


def run_accounts(n, started):
    accounts = accounts_service.ACCOUNTS
    before = accounts.summary()
    t0 = time.perf_counter()
    created = sum(accounts.create(f"acct-{i:06d}", f"user{i}@example.com", f"+1555{i:07d}")
                  for i in range(n))
    t_created = time.perf_counter() - t0
    print(f"accounts: created {created} new account(s) in {t_created:.2f} s "
          f"({before['accounts']} existed), each published to account-created", flush=True)
    deadline = time.monotonic() + 300
    while True:   # the services feed each other: settle both, then check nothing is pending
        for r in started:
            r.wait_idle(max(1.0, deadline - time.monotonic()))
        if not accounts.summary()["pending"] or time.monotonic() > deadline:
            break
    elapsed = time.perf_counter() - t0
    s = accounts.summary()
    msg = started[-1].stats()["emailsms-in-0"]
    events = created + msg["records_out"]
    print(f"message-service: email|sms on {msg['records_in']} account-created event(s), "
          f"published {msg['records_out']} communication-sent")
    print(f"accounts: {s['marked']} of {s['accounts']} accounts marked, each once "
          f"(redeliveries ignored: {s['duplicates_ignored']})")
    print(f"{events} events in {elapsed:.2f} s: {events / elapsed:,.0f} events/s "
          "(account-created + communication-sent, each acknowledged, processed and committed)")
    return 0 if not s["pending"] else 1


if __name__ == "__main__":
    sys.exit(main())
