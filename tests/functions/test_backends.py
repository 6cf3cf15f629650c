"""The same apps on both backends (embedded and klog serve over the Kafka protocol), and
partitions rebalancing between two instances of one app through the consumer group."""
import json

from klog.functions import App
from klog.testing import AppHarness, read_topic

IO = {"emailsms-in-0": {"destination": "account-created", "enable-dlq": True,
                        "back-off-initial-interval": 5},
      "emailsms-out-0": {"destination": "communication-sent"}}


def message_app():
    app = App("message-service")

    @app.function
    def email(event: dict) -> dict:
        if event["id"] == 13:
            raise ValueError("unlucky")
        return {**event, "email": True}

    @app.function
    def sms(event: dict) -> dict:
        return {**event, "sms": True}
    return app


def test_contract_on_both_backends(klog_client):
    klog_client.create_topic("account-created", 3)
    with AppHarness(message_app(), klog_client, definition="email|sms", bindings=IO) as h:
        for i in range(40):
            h.send("account-created", {"id": i}, key=f"a{i}", headers={"trace": str(i)})
        h.wait_idle(60)
        out = h.read("communication-sent")
        dlq = h.read("error.account-created.message-service")
    assert sorted(json.loads(r.value)["id"] for r in out) == [i for i in range(40) if i != 13]
    assert all(dict(r.headers)["trace"] == str(json.loads(r.value)["id"]).encode() and
               r.key == b"a%d" % json.loads(r.value)["id"] for r in out)
    assert [json.loads(r.value) for r in dlq] == [{"id": 13}]
    assert dict(dlq[0].headers)["x-original-topic"] == b"account-created"


def test_two_instances_split_partitions_and_take_over(klog_server):
    import klog
    addr = f"kafka://{klog_server.address}"
    admin = klog.connect(addr)
    admin.create_topic("in", 4)
    seen = {}

    def make(name):
        app = App("workers")

        @app.function
        def work(e: dict) -> dict:
            seen.setdefault(name, set()).add(e["n"])
            return e
        return app

    bindings = {"work-in-0": {"destination": "in",
                              "consumer": {"session.timeout.ms": 6000,
                                           "heartbeat.interval.ms": 500}},
                "work-out-0": {"destination": "out"}}
    c1, c2 = klog.connect(addr), klog.connect(addr)
    r1 = make("one").start(c1, bindings=bindings)
    r2 = make("two").start(c2, bindings=bindings)
    try:
        p = admin.producer()
        for n in range(200):
            p.send("in", json.dumps({"n": n}).encode(), partition=n % 4)
        p.flush()
        r1.wait_idle(60, partial=True)
        r2.wait_idle(60, partial=True)
        a1, a2 = r1.inputs[0].assigned, r2.inputs[0].assigned
        assert len(a1) == 2 and len(a2) == 2 and not set(a1) & set(a2)
        r1.stop()                                   # leaves the group: two takes everything
        for n in range(200, 300):
            p.send("in", json.dumps({"n": n}).encode(), partition=n % 4)
        p.flush()
        r2.wait_idle(60)
        assert len(r2.inputs[0].assigned) == 4
        assert set(range(200, 300)) <= seen["two"]
        out = {json.loads(r.value)["n"] for r in read_topic(admin, "out")}
        assert out == set(range(300))
    finally:
        r1.stop()
        r2.stop()
        c1.close()
        c2.close()
        admin.close()


def test_broker_goes_away_and_comes_back(tmp_path):
    """klog serve stops with records in flight and restarts on the same port: the app retries
    its sends and commits and ends with every record processed (duplicates allowed)."""
    import socket

    import klog
    from klog.server import ServerThread

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = {"group.initial.rebalance.delay.ms": 0}
    server = ServerThread(str(tmp_path / "data"), conf, port=port).start()
    app = App("restarts")

    @app.function
    def work(e: dict) -> dict:
        return e

    client = klog.connect(f"kafka://127.0.0.1:{port}")
    running = None
    try:
        client.create_topic("in", 2)
        running = app.start(client, bindings={
            "work-in-0": {"destination": "in", "back-off-initial-interval": 50,
                          "max-attempts": 100},
            "work-out-0": {"destination": "out"}})
        p = client.producer()
        for n in range(50):
            p.send("in", json.dumps({"n": n}).encode())
        p.flush()
        running.wait_idle(60)
        server.stop()
        server = ServerThread(str(tmp_path / "data"), conf, port=port).start()
        for n in range(50, 100):
            p.send("in", json.dumps({"n": n}).encode())
        p.flush(60)
        running.wait_idle(120)
        out = {json.loads(r.value)["n"] for r in read_topic(client, "out", timeout=60)}
        assert out == set(range(100))
        assert running.error is None
    finally:
        if running is not None:
            running.stop()
        client.close()
        server.stop()
