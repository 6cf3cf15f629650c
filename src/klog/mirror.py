"""``klog mirror``: copy topics from one target to another through the client API.

The path for an app that outgrows one machine: mirror the edge log (an embedded data directory,
or a cluster) into a Kafka-protocol cluster. Source and destination are anything
``klog.connect`` takes, so embedded -> klog serve, klog serve -> Kafka, ... all work.

What is copied: each record's key, value, headers and timestamp. A destination topic that does
not exist is created with the source's partition count; when the counts match, a record keeps
its partition, otherwise the destination's partitioner places it by key.

Where each copy came from: three headers are added, ``klog.mirror.topic``,
``klog.mirror.partition`` and ``klog.mirror.offset`` (ASCII decimal), so consumers can translate
positions (MirrorMaker 2 keeps an offset-sync topic instead; a header needs no second read).

Delivery and restarts: the source is read by a consumer group (``--group``, default
``klog-mirror``) whose offsets are committed only after the destination acknowledged every
record of the poll (idempotent producer, ``acks=all``). A mirror killed between the
acknowledgement and the commit reads those records again when it restarts. Before copying, it
reads the tail of every destination partition (the last ``2 x max.poll.records`` records: more
than one uncommitted poll can have written) and skips source records already there, by their
mirror headers: they are counted and reported as ``skipped``, never written twice.
"""
import re
import threading
import time
from dataclasses import dataclass, field

import klog
from klog.errors import KlogError, UnknownTopicOrPartitionError
from klog.structs import TopicPartition

H_TOPIC, H_PARTITION, H_OFFSET = "klog.mirror.topic", "klog.mirror.partition", "klog.mirror.offset"
MIRROR_HEADERS = frozenset((H_TOPIC, H_PARTITION, H_OFFSET))
POLL_RECORDS = 500


class MirrorError(KlogError):
    """The mirror cannot start or go on (no matching topic, a destination refusing records)."""


@dataclass
class MirrorReport:
    """What a run did. ``skipped``: source records found already at the destination (left by a
    run that stopped before committing) and not written again."""
    mirrored: int = 0
    skipped: int = 0
    topics: dict = field(default_factory=dict)   # topic -> "kept" | "by key" (partition mapping)

    def as_dict(self):
        return {"mirrored": self.mirrored, "skipped_duplicates": self.skipped,
                "topics": dict(sorted(self.topics.items()))}


class Mirror:
    """Copies topics matching ``topics`` (a regex, matched in full) from ``source`` to
    ``destination`` (klog.connect clients). ``run()`` until ``stop()`` or, with
    ``exit_at_end``, until the source has nothing more."""

    def __init__(self, source, destination, topics, group="klog-mirror", rate=None,
                 poll_records=POLL_RECORDS):
        self.source = source
        self.destination = destination
        try:
            self.pattern = re.compile(topics)
        except re.error as exc:
            raise MirrorError(f"--topics {topics!r} is not a valid regular expression: {exc}") from None
        self.group = group
        self.rate = rate
        self.poll_records = poll_records
        self.report = MirrorReport()
        self._stop = threading.Event()
        self._last_mirrored = {}   # (topic, partition) at the source -> highest offset at the destination
        self._keep = {}            # topic -> whether partitions are kept

    def stop(self):
        self._stop.set()

    # -- setup ----------------------------------------------------------------------------------------
    def _topics(self):
        names = [t for t in self.source.list_topics() if self.pattern.fullmatch(t)]
        if not names:
            raise MirrorError(f"no topic at the source matches {self.pattern.pattern!r}")
        for name in names:
            n = len(self.source.describe_topic(name).partitions)
            try:
                m = len(self.destination.describe_topic(name).partitions)
            except UnknownTopicOrPartitionError:
                self.destination.create_topic(name, n)
                m = n
            self._keep[name] = n == m
            self.report.topics[name] = "kept" if n == m else "by key"
        return names

    def _scan_destination(self, names):
        """The highest source offset already copied, per source partition, from the tail of
        every destination partition."""
        window = 2 * self.poll_records
        c = self.destination.consumer(None, {"enable.auto.commit": False,
                                             "auto.offset.reset": "earliest"})
        try:
            tps = [TopicPartition(t, p.partition) for t in names
                   for p in self.destination.describe_topic(t).partitions]
            ends = c.end_offsets(tps)
            starts = c.beginning_offsets(tps)
            tps = [tp for tp in tps if ends[tp] > starts[tp]]
            if not tps:
                return
            c.assign(tps)
            for tp in tps:
                c.seek(tp, max(starts[tp], ends[tp] - window))
            left = set(tps)
            deadline = time.monotonic() + 60
            while left:
                if time.monotonic() > deadline:
                    raise MirrorError("reading the destination's tail took over 60 s")
                for r in c.poll(200):
                    src = _source_of(r.headers)
                    if src is not None:
                        key = (src[0], src[1])
                        if src[2] > self._last_mirrored.get(key, -1):
                            self._last_mirrored[key] = src[2]
                    tp = TopicPartition(r.topic, r.partition)
                    if r.offset + 1 >= ends[tp]:
                        left.discard(tp)
                left = {tp for tp in left if c.position(tp) < ends[tp]}
        finally:
            c.close()

    # -- the copy loop -----------------------------------------------------------------------------------
    def run(self, exit_at_end=False):
        names = self._topics()
        self._scan_destination(names)
        # A static member (group.instance.id): a mirror restarted after a crash takes its
        # partitions back at once instead of waiting out the dead member's session timeout.
        consumer = self.source.consumer(self.group, {
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "max.poll.records": self.poll_records, "group.instance.id": f"{self.group}-mirror"})
        producer = self.destination.producer({"enable.idempotence": True, "acks": "all",
                                              "linger.ms": 5})
        started = time.monotonic()
        try:
            consumer.subscribe(names)
            idle_since = None
            while not self._stop.is_set():
                records = consumer.poll(200)
                if not records:
                    if exit_at_end and consumer.assignment() and \
                            all(v == 0 for v in consumer.lag().values()):
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > 0.3:   # assignment settled, nothing left
                            break
                    continue
                idle_since = None
                self._copy(records, producer, consumer, started)
        finally:
            try:
                producer.close()
            finally:
                consumer.close()
        return self.report

    def _copy(self, records, producer, consumer, started):
        futures = []
        commit = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            commit[tp] = r.offset + 1
            if r.offset <= self._last_mirrored.get((r.topic, r.partition), -1):
                self.report.skipped += 1
                continue
            headers = [h for h in r.headers if h[0] not in MIRROR_HEADERS]
            headers += [(H_TOPIC, r.topic.encode()), (H_PARTITION, b"%d" % r.partition),
                        (H_OFFSET, b"%d" % r.offset)]
            futures.append(producer.send(r.topic, r.value, key=r.key,
                                         partition=r.partition if self._keep[r.topic] else None,
                                         timestamp=r.timestamp, headers=headers))
        producer.flush()
        for f in futures:
            f.get()   # raises the destination's error: nothing is committed past a lost record
        self.report.mirrored += len(futures)
        if self.rate:   # throttled before the commit: the source only learns of what is paced
            ahead = self.report.mirrored / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        consumer.commit(commit)


def _source_of(headers):
    found = {}
    for k, v in headers:
        if k in MIRROR_HEADERS and v is not None:
            found[k] = v
    if len(found) != 3:
        return None
    try:
        return found[H_TOPIC].decode(), int(found[H_PARTITION]), int(found[H_OFFSET])
    except ValueError:
        return None


def connect_target(target):
    """A client for a mirror TARGET: a data directory, a file: URL or kafka://host:port."""
    return klog.connect(target)
