"""Consumer groups against ``klog serve`` with real clients: two members of one group split the
partitions of a topic, and the partitions move to the survivor when a member leaves
(LeaveGroup) or dies (SIGKILL: only the session timeout tells the coordinator).

Every member polls on its own thread (or in its own process) and records, under a lock, its
assignment as its rebalance listener sees it (revocations before the rejoin, so two members
never look like they own a partition at once), each record it consumed, and each offset it
committed. Members commit synchronously after each record whose offset is below
``commit_below`` (all of them when None), so a test can leave records consumed but not
committed and check exactly where the next owner resumes.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

import confluent_kafka as ck
from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.structs import OffsetAndMetadata

pytestmark = pytest.mark.timeout(60)

PARTITIONS = 4
ALL = frozenset(range(PARTITIONS))
HEARTBEAT_MS = 500
# Long enough that a partition move seen within the deadlines below cannot have come from a
# session expiry: only a JoinGroup or a LeaveGroup can have caused it.
LIVE_SESSION_MS = 30000
# The member killed in test_dead_member_expires...: the broker's group.min.session.timeout.ms
# defaults to 6000, so this is the smallest session it accepts.
DEAD_SESSION_MS = 6000


def _topic(server, name):
    topic = f"{name}-{uuid.uuid4().hex[:6]}"
    server.broker.create_topic(topic, PARTITIONS)
    return topic


def _seed_offsets(server, group, topic):
    """Commit offset 0 on every partition before any member joins, so that no member ever
    falls back to auto.offset.reset. librdkafka (confluent-kafka 2.16.1) has a race there: a
    partition revoked while its auto.offset.reset lookup (ListOffsets) is still pending gets
    that stale reset applied when the same consumer is assigned it again later, and then
    starts it from the beginning instead of at the committed offset (seen on a loaded 2-core
    VM: the broker's OffsetFetch answer was right, the client sent ListOffsets afterwards)."""
    errors = server.broker.group_coordinator.commit_offsets(
        group, "", -1, {(topic, p): 0 for p in ALL})
    assert set(errors.values()) == {0}, errors


def _value(partition, offset):
    return f"{partition}:{offset}"


def _produce(server, topic, start, count):
    """``count`` records to every partition; on a fresh topic record i of partition p sits at
    offset i and its value is ``_value(p, i)``."""
    p = ck.Producer({"bootstrap.servers": server.address, "linger.ms": 5})
    for part in range(PARTITIONS):
        for i in range(start, start + count):
            p.produce(topic, value=_value(part, i).encode(), partition=part)
    assert p.flush(15) == 0


def _server_committed(server, group, topic):
    """{partition: offset} the coordinator holds for the group."""
    r = server.broker.group_coordinator.fetch_offsets(group)
    assert r.error == 0
    return {tp.partition: c.offset for tp, c in r.offsets.items() if tp.topic == topic}


def _wait_for(cond, timeout, what, members):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            m.check()
        if cond():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {members}")


def _offsets(records):
    return sorted((p, off) for p, off, _ in records)


def _check_values(records):
    bad = [r for r in records if r[2] != _value(r[0], r[1])]
    assert not bad, f"records with a value that does not match their partition/offset: {bad}"


def _check_resumed(server, group, topic, survivor, before, resume_at, end):
    """After a takeover: the survivor's records past index ``before`` are exactly offsets
    ``resume_at[p]``..``end - 1`` of every partition p (nothing twice, nothing skipped), and the
    group's committed offset reaches ``end`` everywhere."""
    expected = sorted((p, i) for p, first in resume_at.items() for i in range(first, end))
    _wait_for(lambda: len(survivor.records()) - before >= len(expected), 20,
              f"{len(expected)} records after the takeover", [survivor])
    after = survivor.records()[before:]
    _check_values(after)
    assert _offsets(after) == expected
    _wait_for(lambda: _server_committed(server, group, topic) == dict.fromkeys(ALL, end), 10,
              f"offset {end} committed on every partition", [survivor])
    assert len(survivor.records()) - before == len(expected)   # nothing late either


def _consume_then_leave(server, group, topic, stay, go, count):
    """``count`` records to every partition, consumed by the two members with their commits
    in; then ``go`` closes and ``stay`` must own every partition well before a session could
    expire. Returns where ``stay`` must resume each partition, and how many records it had."""
    stay_parts = stay.assigned
    _produce(server, topic, 0, count)
    _consume_all([stay, go], [(p, i) for p in ALL for i in range(count)])
    resume_at = {p: count if p in stay_parts else go.commit_below for p in ALL}
    _wait_for(lambda: _server_committed(server, group, topic) == resume_at, 10,
              f"commits {resume_at}", [stay, go])
    before = len(stay.records())
    t0 = time.monotonic()
    go.leave()
    t1 = _wait_for(lambda: stay.assigned == ALL, 15, f"{stay.name} to own every partition", [stay])
    assert t1 - t0 < LIVE_SESSION_MS / 1000 / 2     # the LeaveGroup did it, not an expiry
    return resume_at, before


def _check_split(members, server, group):
    """Both members hold partitions: they must be disjoint, cover the topic, 2 each."""
    a, b = (m.assigned for m in members)
    assert a & b == set(), f"both members own {sorted(a & b)}: {members}"
    assert a | b == ALL, f"partitions {sorted(ALL - (a | b))} unassigned: {members}"
    assert len(a) == len(b) == PARTITIONS // 2, members
    state, _, _, member_ids = server.broker.group_coordinator.group_state(group)
    assert state == "Stable" and len(member_ids) == 2, (state, member_ids)


class _Member:
    """A group member polling on its own thread; subclasses wrap one client library."""

    def __init__(self, name, server, group, topic, commit_below=None):
        self.name = name
        self.server = server
        self.group = group
        self.topic = topic
        self.commit_below = commit_below
        self._lock = threading.Lock()
        self._assigned = frozenset()
        self._assignments = 0
        self._records = []          # (partition, offset, value) in the order consumed
        self._committed = {}        # partition -> offset this member committed
        self.error = None
        self._stop = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"member-{name}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    # -- what the test reads ----------------------------------------------------------------------
    @property
    def assigned(self):
        with self._lock:
            return self._assigned

    @property
    def assignments(self):
        """How many assignments the listener has seen."""
        with self._lock:
            return self._assignments

    def records(self):
        with self._lock:
            return list(self._records)

    def committed(self):
        with self._lock:
            return dict(self._committed)

    def check(self):
        if self.error is not None:
            raise AssertionError(f"member {self.name} failed: {self.error!r}") from self.error

    def __repr__(self):
        with self._lock:
            return (f"<{self.name} assigned={sorted(self._assigned)} consumed={len(self._records)}"
                    f" committed={self._committed} error={self.error!r}>")

    # -- called on the member's thread ------------------------------------------------------------
    def _on_assign(self, partitions):
        with self._lock:
            self._assigned = self._assigned | frozenset(partitions)
            self._assignments += 1

    def _on_revoke(self, partitions):
        with self._lock:
            self._assigned = self._assigned - frozenset(partitions)

    def _run(self):
        consumer = None
        try:
            consumer = self._open()
            while not self._stop.is_set():
                for part, offset, value in self._poll(consumer):
                    with self._lock:
                        self._records.append((part, offset, value))
                    if self.commit_below is None or offset < self.commit_below:
                        self._commit(consumer, part, offset + 1)
                        with self._lock:
                            self._committed[part] = offset + 1
        except BaseException as exc:  # noqa: BLE001  (reported by check())
            self.error = exc
        finally:
            try:
                if consumer is not None:
                    consumer.close()    # LeaveGroup
            except BaseException as exc:  # noqa: BLE001
                self.error = self.error or exc
            self._closed.set()

    def leave(self, timeout=20):
        """Stop polling and close the consumer (which sends LeaveGroup)."""
        self._stop.set()
        assert self._closed.wait(timeout), f"{self.name} did not close within {timeout}s"
        self.check()

    def stop(self):
        """Cleanup: stop polling and close, if started."""
        self._stop.set()
        if self._thread.ident is not None:
            self._closed.wait(20)


class _Confluent(_Member):
    def _open(self):
        c = ck.Consumer({"bootstrap.servers": self.server.address, "group.id": self.group,
                         "client.id": self.name, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": LIVE_SESSION_MS,
                         "heartbeat.interval.ms": HEARTBEAT_MS})
        c.subscribe([self.topic],
                    on_assign=lambda _c, ps: self._on_assign(p.partition for p in ps),
                    on_revoke=lambda _c, ps: self._on_revoke(p.partition for p in ps))
        return c

    def _poll(self, c):
        m = c.poll(0.1)
        if m is None:
            return []
        if m.error() is not None:
            raise AssertionError(f"{self.name}: {m.error()}")
        return [(m.partition(), m.offset(), m.value().decode())]

    def _commit(self, c, part, offset):
        for tp in c.commit(offsets=[ck.TopicPartition(self.topic, part, offset)],
                           asynchronous=False):
            if tp.error is not None:
                raise AssertionError(f"{self.name}: commit of {tp} failed: {tp.error}")


class _KafkaPython(_Member):
    def _open(self):
        c = KafkaConsumer(bootstrap_servers=self.server.address, group_id=self.group,
                          client_id=self.name, enable_auto_commit=False,
                          auto_offset_reset="earliest", session_timeout_ms=LIVE_SESSION_MS,
                          heartbeat_interval_ms=HEARTBEAT_MS)
        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                member._on_revoke(tp.partition for tp in revoked)

            def on_partitions_assigned(self, assigned):
                member._on_assign(tp.partition for tp in assigned)

        c.subscribe([self.topic], listener=Listener())
        # Fetch the topic's metadata before the first poll joins the group. Otherwise, on a
        # loaded machine, kafka-python 3.0.12 can join before its first metadata response,
        # assign nothing as leader ("No partition metadata for topic"), rejoin when the
        # metadata arrives and, if that poll() times out before the SyncGroup answer, never
        # apply the assignment it computed (need_rejoin() is already False on the next poll):
        # the member stays Stable with no partitions. A client bug; the broker answers right.
        assert c.partitions_for_topic(self.topic) == ALL
        return c

    def _poll(self, c):
        return [(r.partition, r.offset, r.value.decode())
                for records in c.poll(timeout_ms=100).values() for r in records]

    def _commit(self, c, part, offset):
        c.commit({KpTopicPartition(self.topic, part): OffsetAndMetadata(offset, "", -1)})


# A member in a process of its own, to be killed: JSON lines on stdout for each assignment,
# revocation, consumed record and synchronous commit.
CHILD = r"""
import json, sys
import confluent_kafka as ck

bootstrap, group, topic, commit_below, session_ms, heartbeat_ms = sys.argv[1:]
commit_below = int(commit_below)

def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()

c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "child",
                 "enable.auto.commit": False, "auto.offset.reset": "earliest",
                 "session.timeout.ms": int(session_ms), "heartbeat.interval.ms": int(heartbeat_ms)})
c.subscribe([topic],
            on_assign=lambda _c, ps: emit(assigned=[p.partition for p in ps]),
            on_revoke=lambda _c, ps: emit(revoked=[p.partition for p in ps]))
while True:
    m = c.poll(0.1)
    if m is None:
        continue
    if m.error() is not None:
        emit(error=str(m.error()))
        continue
    emit(consumed=[m.partition(), m.offset(), m.value().decode()])
    if m.offset() < commit_below:
        for tp in c.commit(message=m, asynchronous=False):
            if tp.error is not None:
                emit(error="commit: " + str(tp.error))
        emit(committed=[m.partition(), m.offset() + 1])
"""


class _Child(_Member):
    """A confluent-kafka member in a subprocess, read through its stdout."""

    def __init__(self, name, server, group, topic, commit_below, stderr_path):
        super().__init__(name, server, group, topic, commit_below)
        self.stderr_path = stderr_path
        self.proc = None

    def start(self):
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, self.server.address, self.group, self.topic,
                 str(self.commit_below), str(DEAD_SESSION_MS), str(HEARTBEAT_MS)],
                stdout=subprocess.PIPE, stderr=err)
        self._thread = threading.Thread(target=self._read, name="child-reader", daemon=True)
        self._thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self._lock:
                if "error" in ev and self.error is None:
                    self.error = RuntimeError(ev["error"])
                if "consumed" in ev:
                    self._records.append(tuple(ev["consumed"]))
                if "committed" in ev:
                    part, offset = ev["committed"]
                    self._committed[part] = offset
            if "assigned" in ev:
                self._on_assign(ev["assigned"])
            if "revoked" in ev:
                self._on_revoke(ev["revoked"])

    def check(self):
        super().check()
        if self.proc.poll() is not None and not self._stop.is_set():
            with open(self.stderr_path, "rb") as f:
                err = f.read()[-2000:].decode(errors="replace")
            raise AssertionError(f"child exited with {self.proc.returncode}: {err}")

    def kill(self):
        self._stop.set()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._thread.join(10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def _stop_all(members):
    for m in members:
        m._stop.set()
    for m in members:
        m.stop()


def _split(server, group, first, second):
    """Start ``first``, let it take every partition, then ``second``: the group rebalances and
    the two share the partitions. Returns once both hold some."""
    first.start()
    _wait_for(lambda: first.assigned == ALL, 20, f"{first.name} to own every partition", [first])
    second.start()
    _wait_for(lambda: first.assigned and second.assigned, 20,
              "both members to hold partitions", [first, second])
    _check_split([first, second], server, group)


def _consume_all(members, expected, timeout=20):
    """Wait until the members consumed ``len(expected)`` records between them; the (partition,
    offset) pairs must be exactly ``expected``: nothing missing, nothing twice."""
    _wait_for(lambda: sum(len(m.records()) for m in members) >= len(expected), timeout,
              f"{len(expected)} records", members)
    got = [r for m in members for r in m.records()]
    _check_values(got)
    assert _offsets(got) == sorted(expected), members
    for m in members:
        stray = {p for p, _, _ in m.records()} - m.assigned
        assert not stray, f"{m.name} consumed from partitions {stray} it does not own: {members}"


def test_two_confluent_consumers_split_partitions(server):
    """Two confluent-kafka consumers in one group split a 4-partition topic: after the second
    joins (the first must rejoin) they own 2 disjoint partitions each, covering the topic, and
    the group is Stable with 2 members. Records produced to every partition are consumed
    exactly once across the two, each by the owner of its partition, and the commits land
    on the coordinator."""
    topic, group = _topic(server, "split"), "rb-" + uuid.uuid4().hex[:6]
    _seed_offsets(server, group, topic)
    a, b = _Confluent("a", server, group, topic), _Confluent("b", server, group, topic)
    try:
        _split(server, group, a, b)
        assert a.assignments == 2 and b.assignments == 1   # a: all four, then its share
        _produce(server, topic, 0, 10)
        _consume_all([a, b], [(p, i) for p in ALL for i in range(10)])
        # Each member committed offset 10 on its own partitions, and the coordinator has them.
        _wait_for(lambda: a.committed() == dict.fromkeys(a.assigned, 10)
                  and b.committed() == dict.fromkeys(b.assigned, 10)
                  and _server_committed(server, group, topic) == dict.fromkeys(ALL, 10),
                  10, "offset 10 committed on every partition", [a, b])
        # Once every commit landed: still the same split and no record delivered twice.
        _check_split([a, b], server, group)
        assert len(a.records()) + len(b.records()) == 40
    finally:
        _stop_all([a, b])
    a.check()
    b.check()


def test_leaving_consumer_hands_partitions_over(server):
    """When one of two confluent-kafka consumers closes (LeaveGroup), the other owns all 4
    partitions well before any session could expire, and resumes every partition at the
    committed offset: the leaver's records past its last commit (consumed, not committed) are
    delivered again, records before it are not, and records produced after the leave arrive
    from every partition."""
    topic, group = _topic(server, "leave"), "rb-" + uuid.uuid4().hex[:6]
    _seed_offsets(server, group, topic)
    a = _Confluent("a", server, group, topic)
    b = _Confluent("b", server, group, topic, commit_below=7)   # commits up to offset 7 of 10
    try:
        _split(server, group, a, b)
        resume_at, before = _consume_then_leave(server, group, topic, a, b, 10)
        assert b.assigned == frozenset()                  # b's on_revoke ran on close
        _produce(server, topic, 10, 5)
        _check_resumed(server, group, topic, a, before, resume_at, 15)
        state, _, _, member_ids = server.broker.group_coordinator.group_state(group)
        assert state == "Stable" and len(member_ids) == 1
    finally:
        _stop_all([a, b])
    a.check()


def test_dead_member_expires_and_survivor_takes_over(server, tmp_path):
    """A confluent-kafka member in a subprocess shares the topic with one in this process.
    While it heartbeats it keeps its partitions past its session timeout (6 s), the group
    unchanged. After it has consumed its partitions and committed part of them it is
    SIGKILLed (no LeaveGroup): the survivor gets all 4 partitions only once the dead member's
    session expires, then consumes the dead member's partitions from its committed offsets
    (the records it consumed without committing come again, the committed ones do not) and
    everything produced after the kill. Every record is seen at least once in all."""
    topic, group = _topic(server, "dead"), "rb-" + uuid.uuid4().hex[:6]
    _seed_offsets(server, group, topic)
    a = _Confluent("a", server, group, topic)
    child = _Child("child", server, group, topic, 5, tmp_path / "child.stderr")
    try:
        _split(server, group, a, child)
        split_at = time.monotonic()
        a_parts, dead_parts = a.assigned, child.assigned
        _produce(server, topic, 0, 10)
        _consume_all([a, child], [(p, i) for p in ALL for i in range(10)])
        want = {p: 10 if p in a_parts else 5 for p in ALL}
        _wait_for(lambda: child.committed() == dict.fromkeys(dead_parts, 5)
                  and _server_committed(server, group, topic) == want, 10,
                  f"commits {want}", [a, child])
        before = len(a.records())
        # While it heartbeats, the child outlives its session timeout with the group unchanged.
        while time.monotonic() < split_at + DEAD_SESSION_MS / 1000 + 1:
            a.check()
            child.check()
            assert (a.assigned, a.assignments, child.assigned, child.assignments) == \
                (a_parts, 2, dead_parts, 1), [a, child]
            time.sleep(0.1)

        t0 = time.monotonic()
        child.kill()
        _produce(server, topic, 10, 5)
        t1 = _wait_for(lambda: a.assigned == ALL, DEAD_SESSION_MS / 1000 + 12,
                       "a to own every partition", [a])
        # The connection drop is no LeaveGroup: the partitions stay with the dead member until
        # its session times out (its last heartbeat was at most 0.5 s before the kill).
        assert t1 - t0 > DEAD_SESSION_MS / 1000 - 2, t1 - t0

        _check_resumed(server, group, topic, a, before,
                       {p: 10 if p in a_parts else 5 for p in ALL}, 15)
        seen = {(p, off) for p, off, _ in a.records() + child.records()}
        assert seen == {(p, i) for p in ALL for i in range(15)}
    finally:
        _stop_all([a, child])
    a.check()


def test_kafka_python_and_confluent_share_group(server):
    """A kafka-python consumer (first, so the group leader that computes the assignment) and
    a confluent-kafka consumer in one group: both offer range and roundrobin, the group
    settles on range and the two split the 4 partitions 2/2 as the range assignor does;
    records are consumed exactly once.
    When the confluent-kafka member closes, the kafka-python one owns all 4 partitions and
    resumes each at the committed offset."""
    topic, group = _topic(server, "mixed"), "rb-" + uuid.uuid4().hex[:6]
    _seed_offsets(server, group, topic)
    k = _KafkaPython("kp", server, group, topic)
    c = _Confluent("ck", server, group, topic, commit_below=5)
    try:
        _split(server, group, k, c)
        desc = server.broker.group_coordinator.describe_groups([group])[0]
        # Both clients list range first, so range wins the vote; kafka-python, the leader
        # (member ids start with the client id), computed the assignment librdkafka follows.
        assert (desc.protocol_type, desc.protocol) == ("consumer", "range")
        assert server.broker.group_coordinator.group_state(group)[2].startswith("kp-")
        assert {k.assigned, c.assigned} == {frozenset({0, 1}), frozenset({2, 3})}   # range
        resume_at, before = _consume_then_leave(server, group, topic, k, c, 8)
        _produce(server, topic, 8, 4)
        _check_resumed(server, group, topic, k, before, resume_at, 12)
    finally:
        _stop_all([k, c])
    k.check()
