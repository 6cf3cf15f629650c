"""Functions, consumers and suppliers running against a real broker through AppHarness."""
import dataclasses
import threading
import time

import pytest

from klog.functions import App, Message
from klog.testing import AppHarness

IO = {"emailsms-in-0": {"destination": "account-created"},
      "emailsms-out-0": {"destination": "communication-sent"}}


def message_app():
    app = App("message-service")

    @app.function
    def email(event: dict) -> dict:
        return {**event, "email_sent_to": event["email"]}

    @app.function
    def sms(event: dict) -> dict:
        return {**event, "sms_sent_to": event["phone"]}
    return app


def test_contract_compose_email_sms_keeps_key_and_headers(klog_broker):
    klog_broker.create_topic("account-created", 3)
    with AppHarness(message_app(), klog_broker, definition="email|sms", bindings=IO) as h:
        for i in range(30):
            h.send("account-created", {"id": i, "email": f"u{i}@x", "phone": f"+{i}"},
                   key=f"acct-{i}", headers={"trace": f"t{i}"})
        h.wait_idle()
        out = h.read("communication-sent")
    assert len(out) == 30
    for r in out:
        import json
        v = json.loads(r.value)
        assert v["email_sent_to"] == f"u{v['id']}@x" and v["sms_sent_to"] == f"+{v['id']}"
        assert r.key == f"acct-{v['id']}".encode()
        assert dict(r.headers)["trace"] == f"t{v['id']}".encode()
    # the group committed everything: a restart would process nothing again
    c = klog_broker.consumer("message-service", {"enable.auto.commit": False})
    assert sum(c.committed([("account-created", p) for p in range(3)]).values()) == 30
    c.close()


def test_outputs_none_list_generator_and_message(klog_broker):
    app = App("fanout")

    @app.function
    def split(event: dict):
        n = event["n"]
        if n == 0:
            return None                                          # nothing sent
        if n == 1:
            return [{"part": 1}, {"part": 2}]                    # several
        if n == 2:
            return (x for x in ({"g": 1}, {"g": 2}, {"g": 3}))   # a generator
        return Message({"routed": True}, key="k", headers={"h": "v"}, partition=1)

    klog_broker.create_topic("out", 2)
    with AppHarness(app, klog_broker, bindings={"split-in-0": {"destination": "in"},
                                               "split-out-0": {"destination": "out"}}) as h:
        for n in range(4):
            h.send("in", {"n": n}, partition=0)
        h.wait_idle()
        out = h.read("out")
    values = sorted(r.value for r in out)
    assert len(out) == 6
    routed = [r for r in out if b"routed" in r.value]
    assert routed[0].partition == 1 and routed[0].key == b"k" and dict(routed[0].headers) == {"h": b"v"}
    assert values.count(b'{"g":2}') == 1


def test_async_function_and_message_input(klog_broker):
    app = App("async-app")

    @app.function
    async def enrich(msg: Message[dict]) -> Message:
        return Message({**msg.value, "from": msg.topic, "offset": msg.offset, "key": msg.key.decode(),
                        "p": msg.received_partition})

    klog_broker.create_topic("in", 1)
    with AppHarness(app, klog_broker, bindings={"enrich-in-0": {"destination": "in"},
                                               "enrich-out-0": {"destination": "out"}}) as h:
        h.send("in", {"a": 1}, key="k1")
        h.wait_idle()
        assert h.values("out") == [{"a": 1, "from": "in", "offset": 0, "key": "k1", "p": 0}]


@dataclasses.dataclass
class Order:
    id: int
    amount: float


def test_dataclass_in_consumer_and_stream_bridge(klog_broker):
    app = App("orders")
    seen = []

    @app.consumer
    def audit(order: Order):
        seen.append(order)
        app.send("audited", {"id": order.id}, key=str(order.id)).get()

    with AppHarness(app, klog_broker, bindings={"audit-in-0": {"destination": "orders"}}) as h:
        h.send("orders", {"id": 7, "amount": 9.5})
        h.wait_idle()
        assert seen == [Order(7, 9.5)]
        assert h.values("audited") == [{"id": 7}]


def test_supplier_polled_on_an_interval(klog_broker):
    app = App("ticker")
    count = [0]
    done = threading.Event()

    @app.supplier(fixed_delay=1)
    def tick():
        count[0] += 1
        if count[0] >= 5:
            done.set()
        return {"n": count[0]} if count[0] <= 5 else None

    with AppHarness(app, klog_broker, bindings={"tick-out-0": {"destination": "ticks"}}) as h:
        assert done.wait(10)
        h.running.stop()
        assert h.values("ticks")[:5] == [{"n": i} for i in range(1, 6)]


def test_several_pipelines_and_partition_key(klog_broker):
    app = App("multi")

    @app.function
    def upper(s: str) -> str:
        return s.upper()

    @app.function
    def keyed(e: dict) -> dict:
        return e

    klog_broker.create_topic("keyed-out", 4)
    with AppHarness(app, klog_broker, definition="upper;keyed",
                    bindings={"upper-in-0": {"destination": "words", "content-type": "text/plain"},
                              "upper-out-0": {"destination": "loud", "content-type": "text/plain"},
                              "keyed-in-0": {"destination": "events"},
                              "keyed-out-0": {"destination": "keyed-out", "partition-key": "user"}}) as h:
        h._producer.send("words", b"hello").get()
        for i in range(8):
            h.send("events", {"user": f"u{i % 2}", "i": i})
        h.wait_idle()
        assert [r.value for r in h.read("loud")] == [b"HELLO"]
        out = h.read("keyed-out")
    by_key = {}
    for r in out:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert set(by_key) == {b"u0", b"u1"} and all(len(p) == 1 for p in by_key.values())


def test_start_creates_missing_topics_unless_auto_create_is_off(klog_broker):
    from klog.functions import BindingConfigError
    app = message_app()
    with pytest.raises(BindingConfigError, match="topic 'account-created' does not exist"):
        app.start(klog_broker, definition="email|sms", bindings=IO,
                  sets=["auto-create-topics=false"])
    running = app.start(klog_broker, definition="email|sms", bindings=IO)
    running.stop()
    assert {"account-created", "communication-sent"} <= set(klog_broker.list_topics())


def test_async_supplier_and_async_generator(klog_broker):
    app = App("async-gen")
    calls = [0]

    @app.supplier(fixed_delay=1)
    async def beat():
        calls[0] += 1
        return {"beat": calls[0]} if calls[0] == 1 else None

    @app.function
    async def explode(e: dict):
        for i in range(e["n"]):
            yield {"i": i}

    with AppHarness(app, klog_broker, definition="beat;explode",
                    bindings={"beat-out-0": {"destination": "beats"},
                              "explode-in-0": {"destination": "in"},
                              "explode-out-0": {"destination": "out"}}) as h:
        h.send("in", {"n": 3})
        h.wait_idle()
        assert h.values("out") == [{"i": 0}, {"i": 1}, {"i": 2}]
        deadline = time.monotonic() + 10
        while not h.read("beats"):      # the supplier's first call runs on its own thread
            assert time.monotonic() < deadline
        assert h.values("beats") == [{"beat": 1}]


def test_definition_and_bindings_from_file_and_environment(klog_broker, tmp_path):
    conf = tmp_path / "app.toml"
    conf.write_text('[bindings.emailsms-in-0]\ndestination = "from-file"\n'
                    '[bindings.emailsms-out-0]\ndestination = "file-out"\n')
    env = {"KLOG_FUNCTION_DEFINITION": "email|sms",
           "KLOG_BINDINGS_EMAILSMS_OUT_0_DESTINATION": "env-out"}
    with AppHarness(message_app(), klog_broker, config_file=str(conf), environ=env,
                    bindings={"emailsms-in-0": {"group": "from-code"}}) as h:
        assert h.running.bindings["emailsms-in-0"].group == "from-code"
        h.send("from-file", {"id": 1, "email": "e", "phone": "p"})
        h.wait_idle()
        assert h.values("env-out") == [{"id": 1, "email": "e", "phone": "p",
                                        "email_sent_to": "e", "sms_sent_to": "p"}]
        assert "file-out" not in klog_broker.list_topics()
