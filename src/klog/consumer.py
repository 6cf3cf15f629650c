"""Consumer for the embedded broker: Kafka's consumer model in-process.

Two ways to get partitions, as in Kafka: ``subscribe`` (topics or a pattern; the partitions come
from the consumer group ``group.id``, rebalanced as members come and go) or ``assign`` (an
explicit list; no group membership, though offsets can still be committed to ``group.id``).

``poll`` returns up to ``max.poll.records`` records. It reads each partition from its position
with the native RecordReader, at most one ``max.partition.fetch.bytes`` chunk per partition per
call, starting each call after the partition that filled the previous one, so no partition
starves another. With nothing to return it sleeps on the broker's append notification (no busy
loop) until data arrives or the timeout passes. Group work happens inside ``poll`` as in the
Java consumer: joining and rebalancing, rebalance callbacks, auto-commit.

Positions: a newly assigned partition starts at the group's committed offset, else where
``auto.offset.reset`` says (``earliest``, ``latest``, or ``none``: NoOffsetForPartitionError).
A position outside the log (retention removed it, or a bad seek) is reset the same way; with
``none`` poll raises OffsetOutOfRangeError. ``seek_to_beginning``/``seek_to_end`` take effect at
the next ``poll`` or ``position`` (lazily, as in Java).

Delivery: at least once. Auto-commit (``enable.auto.commit``, every ``auto.commit.interval.ms``)
commits the positions of records already returned, at the start of a poll, before a rebalance
and on close; records returned after the last commit are delivered again after a crash.

Concurrency: like Java's KafkaConsumer, a consumer is used by one thread at a time. A subscribed
consumer also runs a heartbeat thread (klog.group.membership) that keeps its membership alive
between polls and leaves the group when ``poll`` is not called for ``max.poll.interval.ms``.
"""
import logging
import re
import time
from itertools import islice

from klog._native.batch import RecordReader
from klog.clientconfig import CONSUMER, parse
from klog.codec import decompress
from klog.errors import (
    ConfigError, KlogError, LogClosedError, OffsetOutOfRangeError, UnknownTopicOrPartitionError,
)
from klog.group import errors as E
from klog.group.assignors import COOPERATIVE, assignors_from_config
from klog.group.errors import (
    CommitFailedError, IllegalStateError, InvalidGroupIdError, NoOffsetForPartitionError,
    RebalanceInProgressError,
)
from klog.group.membership import GroupMember
from klog.group.protocol import (
    PROTOCOL_TYPE, ProtocolDecodeError, Subscription, decode_assignment, decode_subscription,
    encode_assignment, encode_subscription,
)
from klog.metadata import validate_topic_name
from klog.structs import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition, as_topic_partition

log = logging.getLogger("klog.consumer")

# How often a subscribed consumer re-reads topic metadata: pattern matches, and (the leader)
# partition counts of the group's topics. Java waits metadata.max.age.ms (5 min); in-process the
# check is a dict lookup per topic, so new topics are noticed within half a second.
METADATA_REFRESH_S = 0.5
MAX_WAIT_S = 60.0   # longest single wait (poll(float("inf")) must not overflow the lock timeout)
NO_GROUP_MESSAGE = ("{what} needs a consumer group: give broker.consumer() a group_id (or set "
                    "group.id in its config)")


class _PartitionState:
    """An assigned partition: its position (next offset to return) and its reader. Reads stop
    at the partition's limit for the consumer's isolation level (the high watermark)."""
    __slots__ = ("tp", "partition", "isolation", "position", "reset", "reader", "budget",
                 "max_bytes", "paused", "fetched")

    def __init__(self, tp, partition, max_bytes, isolation):
        self.tp = tp
        self.partition = partition
        self.isolation = isolation
        self.position = None   # unknown until committed offset / reset policy / seek decide
        self.reset = None      # a pending seek_to_beginning ("earliest") / seek_to_end ("latest")
        self.reader = None
        self.budget = 0        # chunks the reader may still fetch in this poll
        self.max_bytes = max_bytes
        self.paused = False
        self.fetched = 0       # bytes read in this poll (for fetch.max.bytes)

    def seek(self, offset):
        self.position = offset
        self.reset = None
        self.reader = None

    def read(self, offset):
        """RecordReader's source: one chunk of at most max.partition.fetch.bytes per poll."""
        if self.budget <= 0:
            return None
        self.budget -= 1
        part = self.partition
        if offset >= part.offset_limit(self.isolation):
            end = part.log_end_offset
            if offset > end:
                raise OffsetOutOfRangeError(
                    f"offset {offset} is outside the log [{part.log_start_offset}, {end}]")
            return None
        view = part.read(offset, self.max_bytes, self.isolation)
        self.fetched += view.nbytes
        return view


class Consumer:
    """Create with ``broker.consumer(group_id, config)``; Kafka consumer config names apply
    (``auto.offset.reset``, ``enable.auto.commit``, ``max.poll.records``, ...).

    Concurrency: not thread-safe, like Java's KafkaConsumer: use it from one thread at a time
    (rebalance callbacks run on that thread, inside ``poll``). Its heartbeat thread only touches
    the group membership, never positions or the assignment."""

    def __init__(self, broker, group_id=None, config=None):
        config = dict(config) if isinstance(config, dict) else config
        if group_id is not None and isinstance(config, dict):
            config["group.id"] = group_id
        elif group_id is not None and config is None:
            config = {"group.id": group_id}
        self.config = parse(config, CONSUMER, "consumer")
        c = self.config
        self.group_id = c["group.id"] or None
        if self.group_id is None and isinstance(config, dict) and config.get("enable.auto.commit") \
                in (True, "true", "True"):
            raise ConfigError("enable.auto.commit: cannot be true without a group.id "
                              "(offsets are committed to a consumer group)")
        if c["heartbeat.interval.ms"] >= c["session.timeout.ms"]:
            raise ConfigError(
                f"heartbeat.interval.ms ({c['heartbeat.interval.ms']}) must be lower than "
                f"session.timeout.ms ({c['session.timeout.ms']})")
        self._assignors = assignors_from_config(c["partition.assignment.strategy"])
        # Java: the cooperative protocol only when every configured assignor supports it.
        self._cooperative = all(a.rebalance_protocol == COOPERATIVE for a in self._assignors)
        self._broker = broker
        self._coordinator = broker.group_coordinator if self.group_id else None
        self._auto_commit = bool(self.group_id) and c["enable.auto.commit"]
        self._auto_commit_s = c["auto.commit.interval.ms"] / 1000.0
        self._next_auto_commit = time.monotonic() + self._auto_commit_s
        self._committed = {}           # tp -> offset last committed by auto-commit
        self._reset_policy = c["auto.offset.reset"]
        self._max_poll_records = c["max.poll.records"]
        self._max_partition_bytes = c["max.partition.fetch.bytes"]
        self._isolation = c["isolation.level"]   # klog.partition's names are Kafka's
        self._max_fetch_bytes = c["fetch.max.bytes"]
        self._parts = {}               # TopicPartition -> _PartitionState, sorted
        self._order = []               # the same states, in fetch order
        self._next_index = 0           # where the next fetch round starts (fairness)
        self._need_positions = False
        self._refetch = False          # a fetch reset a position; fetch again before waiting
        self._mode = None              # None, "subscribe" or "assign"
        self._subscription = frozenset()
        self._pattern = None
        self._on_assign = self._on_revoke = None
        self._member = None
        self._group_snapshot = None    # leader: {topic: partition count} it assigned from
        self._next_metadata_check = 0.0
        self._closed = False
        broker.register_service(self)

    # -- subscribing and assigning ----------------------------------------------------------------
    def subscribe(self, topics, on_assign=None, on_revoke=None):
        """Join ``group.id`` for ``topics``: a list of names, or a regular expression (a str or
        re.Pattern, matched in full against non-internal topic names and re-evaluated as topics
        appear). ``on_assign(partitions)`` / ``on_revoke(partitions)`` run inside ``poll`` (and
        ``on_revoke`` on close/unsubscribe); with the eager protocols they get the whole
        assignment, with cooperative-sticky only what changed. Partitions lost without a chance
        to commit (membership expired) are passed to ``on_revoke`` too."""
        self._check_open()
        if self.group_id is None:
            raise InvalidGroupIdError(NO_GROUP_MESSAGE.format(what="subscribe()"))
        if self._mode == "assign":
            raise IllegalStateError("subscribe() after assign(): subscribing to topics and "
                                    "assigning partitions are mutually exclusive; unsubscribe() first")
        for name, cb in (("on_assign", on_assign), ("on_revoke", on_revoke)):
            if cb is not None and not callable(cb):
                raise TypeError(f"{name} must be callable, not {type(cb).__name__}")
        if isinstance(topics, (str, re.Pattern)):
            try:
                pattern = re.compile(topics) if isinstance(topics, str) else topics
            except re.error as exc:
                raise ValueError(f"subscribe(): {topics!r} is not a valid regular expression: {exc}") from None
            self._pattern = pattern
            wanted = self._match_pattern()
        else:
            if topics is None or isinstance(topics, (bytes, dict)):
                raise TypeError("subscribe() takes a list of topic names or a pattern")
            names = list(topics)
            if not names:
                self.unsubscribe()
                return
            for name in names:
                validate_topic_name(name)
            self._pattern = None
            wanted = frozenset(names)
            if self.config["allow.auto.create.topics"]:
                for name in names:
                    try:
                        self._broker.ensure_topic(name)
                    except UnknownTopicOrPartitionError:
                        pass   # auto-creation is off at the broker: assigned once it exists
        changed = wanted != self._subscription
        self._subscription = wanted
        self._on_assign, self._on_revoke = on_assign, on_revoke
        self._mode = "subscribe"
        if self._member is None:
            c = self.config
            self._member = GroupMember(
                self._coordinator, self.group_id, _ConsumerGroupProtocol(self),
                session_timeout_ms=c["session.timeout.ms"],
                rebalance_timeout_ms=c["max.poll.interval.ms"],
                heartbeat_interval_ms=c["heartbeat.interval.ms"],
                max_poll_interval_ms=c["max.poll.interval.ms"], client_id=c["client.id"],
                group_instance_id=c["group.instance.id"] or None)
        elif changed:
            self._member.request_rejoin("subscription changed")

    def _match_pattern(self):
        topics = self._broker.list_topics(internal=not self.config["exclude.internal.topics"])
        return frozenset(t for t in topics if self._pattern.fullmatch(t))

    def assign(self, partitions):
        """Read exactly ``partitions`` (TopicPartitions or (topic, partition) pairs), outside any
        group rebalancing. An empty list is ``unsubscribe()``."""
        self._check_open()
        if self._mode == "subscribe":
            raise IllegalStateError("assign() after subscribe(): subscribing to topics and "
                                    "assigning partitions are mutually exclusive; unsubscribe() first")
        if isinstance(partitions, (str, bytes)) or not hasattr(partitions, "__iter__"):
            raise TypeError("assign() takes a list of TopicPartition or (topic, partition) pairs")
        tps = [as_topic_partition(tp) for tp in partitions]
        for tp in tps:
            self._broker.partition(tp.topic, tp.partition)   # UnknownTopicOrPartitionError, clearly
        if not tps:
            self.unsubscribe()
            return
        removed = [tp for tp in self._parts if tp not in set(tps)]
        if removed and self._auto_commit:
            self._commit_quietly({tp: self._parts[tp].position for tp in removed
                                  if self._parts[tp].position is not None})
        self._set_assignment(tps)
        self._mode = "assign"

    def unsubscribe(self):
        """Leave the group (committing first if auto-commit is on) or drop the assignment."""
        self._check_open()
        if self._member is not None:
            self._leave_group()
        elif self._auto_commit and self._parts:
            self._commit_quietly()
        self._set_assignment(())
        self._mode = None
        self._subscription = frozenset()
        self._pattern = None

    def assignment(self):
        """The partitions this consumer reads now: a set of TopicPartition."""
        return set(self._parts)

    def subscription(self):
        """The topics subscribed to (for a pattern: those matching now)."""
        return set(self._subscription)

    def _set_assignment(self, tps):
        parts = {}
        for tp in sorted(set(tps)):
            ps = self._parts.get(tp)
            if ps is None:
                try:
                    part = self._broker.partition(tp.topic, tp.partition)
                except UnknownTopicOrPartitionError:
                    log.warning("assigned %s-%d, which does not exist; skipping it", *tp)
                    continue
                ps = _PartitionState(tp, part, self._max_partition_bytes, self._isolation)
                self._need_positions = True
            parts[tp] = ps
        self._parts = parts
        self._order = list(parts.values())
        self._next_index = 0
        for tp in list(self._committed):
            if tp not in parts:
                del self._committed[tp]

    # -- polling -----------------------------------------------------------------------------------
    def poll(self, timeout_ms=0, max_records=None):
        """Up to ``max_records`` (default ``max.poll.records``) records, waiting up to
        ``timeout_ms`` for some to arrive. Returns a list of ConsumerRecord (empty on timeout)."""
        self._check_open()
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or \
                not timeout_ms >= 0:
            raise ValueError(f"poll(): timeout_ms must be a number >= 0, not {timeout_ms!r}")
        if max_records is None:
            max_records = self._max_poll_records
        elif isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise ValueError(f"poll(): max_records must be an integer >= 1, not {max_records!r}")
        if self._mode is None:
            raise IllegalStateError("poll(): this consumer is not subscribed to any topics or "
                                    "assigned any partitions")
        broker = self._broker
        deadline = time.monotonic() + timeout_ms / 1000.0
        while True:
            seq = broker.append_seq   # read first: an append after it ends the wait below at once
            member = self._member     # (a rebalance callback may have unsubscribed)
            if member is not None:
                self._poll_group(member, deadline)
            if self._auto_commit and time.monotonic() >= self._next_auto_commit:
                self._maybe_auto_commit()
            if self._need_positions:
                self._update_positions()
            records = self._fetch(max_records)
            if records:
                return records
            if self._refetch:          # a position was reset: read from there, don't wait
                self._refetch = False
                continue
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return records
            # Wake for group work too: a rebalance the heartbeat thread learned of, new topics.
            remaining = min(remaining, MAX_WAIT_S if member is None else
                            min(member.heartbeat_interval_s, METADATA_REFRESH_S))
            if self._auto_commit:
                remaining = min(remaining, max(self._next_auto_commit - now, 0.001))
            broker.wait_for_append(seq, remaining)

    def _fetch(self, max_records):
        order = self._order
        n = len(order)
        out = []
        if not n:
            return out
        start = self._next_index % n
        fetched_bytes = 0
        for i in range(n):
            ps = order[(start + i) % n]
            if ps.position is None or ps.paused or \
                    ps.position == ps.partition.offset_limit(ps.isolation):
                continue   # (the last: caught up, so the reader has nothing buffered either)
            reader = ps.reader
            if reader is None:
                reader = ps.reader = RecordReader(ps.read, ps.position, decompress,
                                                  ps.tp.topic, ps.tp.partition)
            ps.budget = 1
            ps.fetched = 0
            before = len(out)
            try:
                out.extend(islice(reader, max_records - before))
            except OffsetOutOfRangeError as exc:
                if len(out) > before:
                    ps.position = out[-1].offset + 1
                ps.reader = None
                self._out_of_range(ps, exc, bool(out))
                continue
            except LogClosedError:
                if len(out) > before:
                    ps.position = out[-1].offset + 1
                ps.reader = None
                self._log_gone(ps)
                continue
            if len(out) > before:
                ps.position = out[-1].offset + 1
                if len(out) >= max_records:
                    self._next_index = (start + i + 1) % n
                    return out
                fetched_bytes += ps.fetched
                if fetched_bytes >= self._max_fetch_bytes:
                    self._next_index = (start + i + 1) % n
                    return out
            else:
                ps.position = reader.next_offset   # past control batches and compacted gaps
        self._next_index = (start + 1) % n
        return out

    def _out_of_range(self, ps, exc, have_records):
        part = ps.partition
        tp = ps.tp
        if self._reset_policy == "none":
            if have_records:
                return   # hand out what we have; the next poll raises for this partition
            raise OffsetOutOfRangeError(
                f"{tp.topic}-{tp.partition}: position {ps.position} is outside the log "
                f"[{part.log_start_offset}, {part.log_end_offset}] and auto.offset.reset is "
                "'none'; seek() to a valid offset") from exc
        target = part.log_start_offset if self._reset_policy == "earliest" else \
            part.offset_limit(self._isolation)
        log.info("%s-%d: position %d out of range; reset to %s offset %d", tp.topic, tp.partition,
                 ps.position, self._reset_policy, target)
        ps.seek(target)
        self._refetch = True

    def _log_gone(self, ps):
        """The partition's log was closed: the broker closed, or the topic was deleted."""
        if self._broker.closed:
            raise LogClosedError(f"broker {self._broker.data_dir} is closed")
        try:
            ps.partition = self._broker.partition(ps.tp.topic, ps.tp.partition)   # re-created?
            self._refetch = True
        except UnknownTopicOrPartitionError:
            if self._mode == "assign":
                raise UnknownTopicOrPartitionError(
                    f"assigned partition {ps.tp.topic}-{ps.tp.partition} no longer exists "
                    "(its topic was deleted)") from None
            ps.paused = True   # the next metadata check rebalances it away
            if self._member is not None:
                self._member.request_rejoin(f"topic {ps.tp.topic!r} was deleted")

    def _update_positions(self):
        """Give every partition without a position one: committed offset, pending
        seek_to_beginning/end, or the reset policy."""
        missing = [ps for ps in self._order if ps.position is None]
        committed = {}
        need_committed = [ps.tp for ps in missing if ps.reset is None]
        if need_committed and self.group_id is not None:
            result = self._coordinator.fetch_offsets(self.group_id, need_committed)
            if result.error:
                raise E.error_for(result.error, f"fetching committed offsets of group "
                                                f"{self.group_id!r}: {E.error_name(result.error)}")
            committed = result.offsets
        no_offset = []
        for ps in missing:
            strategy = ps.reset
            if strategy is None:
                c = committed.get(ps.tp)
                if c is not None and c.offset >= 0:
                    ps.seek(c.offset)
                    self._committed[ps.tp] = c.offset
                    continue
                strategy = self._reset_policy
            if strategy == "earliest":
                ps.seek(ps.partition.log_start_offset)
            elif strategy == "latest":
                ps.seek(ps.partition.offset_limit(ps.isolation))
            else:
                no_offset.append(ps.tp)
        self._need_positions = bool(no_offset)
        if no_offset:
            raise NoOffsetForPartitionError(no_offset)

    # -- group work inside poll ---------------------------------------------------------------------
    def _poll_group(self, member, deadline):
        now = time.monotonic()
        if now >= self._next_metadata_check:
            self._next_metadata_check = now + METADATA_REFRESH_S
            self._check_metadata(member)
        member.poll(deadline)

    def _check_metadata(self, member):
        if self._pattern is not None:
            matched = self._match_pattern()
            if matched != self._subscription:
                self._subscription = matched
                member.request_rejoin("topics matching the subscribed pattern changed")
        if self._group_snapshot is not None and member.is_leader and not member.rebalancing:
            if self._topic_counts(self._group_snapshot) != self._group_snapshot:
                # Java's leader does the same: new partitions or topics need a new assignment.
                member.request_rejoin("partitions of the group's topics changed")

    def _topic_counts(self, topics):
        counts = {}
        for t in topics:
            try:
                counts[t] = self._broker.partition_count(t)
            except UnknownTopicOrPartitionError:
                counts[t] = None
        return counts

    def _call(self, callback, partitions):
        if callback is not None and partitions:
            callback(sorted(partitions))

    def _leave_group(self):
        member = self._member
        owned = list(self._parts)
        try:
            if owned:
                if self._auto_commit and member.generation >= 0:
                    self._commit_quietly()
                try:
                    self._call(self._on_revoke, owned)
                finally:
                    self._set_assignment(())
        finally:
            member.close()
            self._member = None
            self._group_snapshot = None

    # -- offsets and positions -----------------------------------------------------------------------
    def _require_group(self, what):
        if self.group_id is None:
            raise InvalidGroupIdError(NO_GROUP_MESSAGE.format(what=what))
        return self.group_id

    def _assigned(self, tp, what):
        tp = as_topic_partition(tp)
        ps = self._parts.get(tp)
        if ps is None:
            raise IllegalStateError(f"{what}: partition {tp.topic}-{tp.partition} is not assigned "
                                    f"to this consumer (assigned: {self._describe_assignment()})")
        return ps

    def _describe_assignment(self):
        if not self._parts:
            return "none"
        return ", ".join(f"{t}-{p}" for t, p in self._parts)

    def seek(self, partition, offset):
        """Read ``partition`` from ``offset`` at the next poll."""
        self._check_open()
        ps = self._assigned(partition, "seek()")
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"seek(): offset must be an int, not {type(offset).__name__}")
        if offset < 0:
            raise ValueError(f"seek(): offset must not be negative, got {offset} for "
                             f"{ps.tp.topic}-{ps.tp.partition}")
        ps.seek(offset)

    def seek_to_beginning(self, partitions=None):
        self._seek_to(partitions, "earliest", "seek_to_beginning()")

    def seek_to_end(self, partitions=None):
        self._seek_to(partitions, "latest", "seek_to_end()")

    def _seek_to(self, partitions, where, what):
        self._check_open()
        states = list(self._parts.values()) if partitions is None else \
            [self._assigned(tp, what) for tp in partitions]
        for ps in states:
            ps.position = None
            ps.reader = None
            ps.reset = where
        if states:
            self._need_positions = True

    def position(self, partition):
        """The offset of the next record ``poll`` returns for an assigned partition."""
        self._check_open()
        ps = self._assigned(partition, "position()")
        if ps.position is None:
            self._update_positions()
        return ps.position

    def pause(self, partitions):
        """Stop returning records of these assigned partitions until ``resume``."""
        self._check_open()
        for ps in [self._assigned(tp, "pause()") for tp in partitions]:
            ps.paused = True

    def resume(self, partitions):
        self._check_open()
        for ps in [self._assigned(tp, "resume()") for tp in partitions]:
            ps.paused = False

    def paused(self):
        return {tp for tp, ps in self._parts.items() if ps.paused}

    def commit(self, offsets=None):
        """Commit synchronously. ``offsets``: {partition: offset or OffsetAndMetadata} (the offset
        is the *next* one to read); default: the current position of every assigned partition.
        Raises CommitFailedError if the group rebalanced the partitions away, and
        RebalanceInProgressError during a rebalance (retry after the next poll)."""
        self._check_open()
        self._require_group("commit()")
        if offsets is None:
            offsets = {tp: OffsetAndMetadata(ps.position) for tp, ps in self._parts.items()
                       if ps.position is not None}
        else:
            offsets = _normalize_offsets(offsets)
        if offsets:
            self._commit_sync(offsets)

    def _commit_sync(self, offsets):
        member = self._member
        if member is not None:
            generation, member_id = member.generation_for_commit()
        else:
            generation, member_id = -1, ""
        results = self._coordinator.commit_offsets(self.group_id, member_id, generation, offsets)
        failed = {tp: code for tp, code in results.items() if code != E.NONE}
        if not failed:
            for tp, om in offsets.items():
                if tp in self._parts:
                    self._committed[tp] = om[0]
            return
        code = next(iter(failed.values()))
        names = ", ".join(f"{tp.topic}-{tp.partition}" for tp in sorted(failed))
        if code in (E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION, E.FENCED_INSTANCE_ID):
            if member is not None:
                member.request_rejoin(f"commit failed: {E.error_name(code)}")
                raise CommitFailedError(
                    f"commit of {names} failed: group {self.group_id!r} has rebalanced since "
                    f"they were assigned ({E.error_name(code)}); they may now belong to another "
                    "member. poll() rejoins the group.")
            raise CommitFailedError(
                f"commit of {names} failed: group {self.group_id!r} has active members "
                f"({E.error_name(code)}); a consumer using assign() can only commit to a group "
                "that no subscribed consumer is using")
        if code == E.REBALANCE_IN_PROGRESS:
            if member is not None:
                member.request_rejoin("commit during a rebalance")
            raise RebalanceInProgressError(
                f"commit of {names} failed: group {self.group_id!r} is rebalancing; poll() "
                "completes the rebalance, then commit again")
        if code == E.UNKNOWN_TOPIC_OR_PARTITION:
            raise UnknownTopicOrPartitionError(f"commit: no such partition(s): {names}")
        raise E.error_for(code, f"commit of {names} to group {self.group_id!r} failed: "
                                f"{E.error_name(code)}")

    def _commit_quietly(self, offsets=None):
        """Commit (auto-commit, before a rebalance, on close); failures are logged, as Java."""
        try:
            if offsets is None:
                offsets = {tp: OffsetAndMetadata(ps.position) for tp, ps in self._parts.items()
                           if ps.position is not None}
            else:
                offsets = {tp: OffsetAndMetadata(o) for tp, o in offsets.items()}
            if offsets:
                self._commit_sync(offsets)
        except (KlogError, OSError) as exc:
            log.warning("group %s: offset commit failed: %s", self.group_id, exc)

    def _maybe_auto_commit(self):
        self._next_auto_commit = time.monotonic() + self._auto_commit_s
        if self._member is not None and self._member.rebalancing:
            return   # committed before rejoining instead (on_join_prepare)
        changed = {tp: ps.position for tp, ps in self._parts.items()
                   if ps.position is not None and self._committed.get(tp) != ps.position}
        if changed:
            self._commit_quietly(changed)

    def committed(self, partitions, metadata=False):
        """The group's committed offset of one partition (int, or None if none), or of a list of
        partitions ({TopicPartition: int | None}). ``metadata=True`` gives OffsetAndMetadata."""
        self._check_open()
        group = self._require_group("committed()")
        single = isinstance(partitions, tuple) and len(partitions) == 2 and \
            isinstance(partitions[0], str)
        tps = [as_topic_partition(partitions)] if single else \
            [as_topic_partition(tp) for tp in partitions]
        result = self._coordinator.fetch_offsets(group, tps)
        if result.error:
            raise E.error_for(result.error, f"fetching committed offsets of group {group!r}: "
                                            f"{E.error_name(result.error)}")
        out = {}
        for tp in tps:
            c = result.offsets.get(tp)
            if c is None or c.offset < 0:
                out[tp] = None
            else:
                out[tp] = OffsetAndMetadata(c.offset, c.metadata, c.leader_epoch) if metadata else c.offset
        return out[tps[0]] if single else out

    def beginning_offsets(self, partitions):
        """{TopicPartition: first offset in the log} (any partitions, assigned or not)."""
        self._check_open()
        return {tp: self._partition(tp).log_start_offset
                for tp in map(as_topic_partition, partitions)}

    def end_offsets(self, partitions):
        """{TopicPartition: end offset}: the high watermark (the offset the next record will
        get on a single broker), or the last stable offset for read_committed, as Kafka's."""
        self._check_open()
        return {tp: self._partition(tp).offset_limit(self._isolation)
                for tp in map(as_topic_partition, partitions)}

    def offsets_for_times(self, timestamps):
        """{TopicPartition: OffsetAndTimestamp or None}: per partition, the first record whose
        timestamp is >= the given one (ms since the epoch), or None if there is none."""
        self._check_open()
        out = {}
        for tp, ts in timestamps.items():
            tp = as_topic_partition(tp)
            if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
                raise ValueError(f"offsets_for_times(): the target time for {tp.topic}-"
                                 f"{tp.partition} must be an int >= 0 (ms), not {ts!r}")
            part = self._partition(tp)
            offset = part.offset_for_time(ts)
            record = next(part.records(offset, self._isolation), None) if offset is not None \
                else None
            out[tp] = None if record is None else OffsetAndTimestamp(record.offset, record.timestamp)
        return out

    def lag(self, partition=None):
        """Records not yet returned: high watermark − position, for one assigned partition (int)
        or for all of them ({TopicPartition: int})."""
        self._check_open()
        if partition is not None:
            ps = self._assigned(partition, "lag()")
            if ps.position is None:
                self._update_positions()
            return ps.partition.offset_limit(ps.isolation) - ps.position
        if self._need_positions:
            self._update_positions()
        return {tp: ps.partition.offset_limit(ps.isolation) - ps.position
                for tp, ps in self._parts.items()}

    def partitions_for(self, topic):
        """The partitions of ``topic`` as TopicPartitions."""
        return [TopicPartition(topic, p) for p in range(self._broker.partition_count(topic))]

    def list_topics(self):
        return self._broker.list_topics()

    def _partition(self, tp):
        if isinstance(tp.partition, bool) or tp.partition < 0:
            raise UnknownTopicOrPartitionError(f"no partition {tp.partition!r} in topic {tp.topic!r}")
        return self._broker.partition(tp.topic, tp.partition)

    # -- lifecycle -----------------------------------------------------------------------------------
    def close(self):
        """Commit (if auto-commit is on), run ``on_revoke``, leave the group. Idempotent."""
        if self._closed:
            return
        try:
            if self._member is not None:
                self._leave_group()
            elif self._auto_commit and self._parts:
                self._commit_quietly()
        finally:
            self._closed = True
            self._parts = {}
            self._order = []

    @property
    def closed(self):
        return self._closed

    def _check_open(self):
        if self._closed:
            raise IllegalStateError("this consumer is closed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"<Consumer group={self.group_id!r} mode={self._mode} "
                f"partitions={len(self._parts)}>")


class _ConsumerGroupProtocol:
    """The consumer's side of group membership (Java's ConsumerCoordinator hooks): builds the
    subscription, runs the leader's assignor, applies assignments and rebalance callbacks."""
    protocol_type = PROTOCOL_TYPE

    def __init__(self, consumer):
        self.c = consumer

    def metadata(self):
        c = self.c
        topics = sorted(c._subscription)
        owned = sorted(c._parts) if c._cooperative else ()
        generation = c._member.generation if c._member is not None else -1
        return [(a.name, encode_subscription(Subscription(
            topics, a.subscription_user_data(topics), owned, generation)))
            for a in c._assignors]

    def on_join_prepare(self, generation, member_id):
        c = self.c
        owned = list(c._parts)
        if generation < 0 or not member_id:
            revoked = owned   # lost: the group may already have given them to others
        else:
            if c._auto_commit:
                c._commit_quietly()
            revoked = [tp for tp in owned if tp.topic not in c._subscription] if c._cooperative \
                else owned
        if revoked:
            # The callback first, so it can still commit or flush what the partitions hold.
            try:
                c._call(c._on_revoke, revoked)
            finally:
                c._set_assignment([tp for tp in owned if tp not in set(revoked)])

    def perform_assignment(self, leader_id, protocol, members):
        c = self.c
        assignor = next((a for a in c._assignors if a.name == protocol), None)
        if assignor is None:
            raise E.InconsistentGroupProtocolError(
                f"group {c.group_id!r} chose assignor {protocol!r}, which this consumer's "
                f"partition.assignment.strategy does not list")
        subscriptions, instance_ids = {}, {}
        for m in members:
            try:
                subscriptions[m.member_id] = decode_subscription(m.metadata)
            except ProtocolDecodeError as exc:
                log.warning("group %s: member %s sent an unreadable subscription (%s); it gets "
                            "no partitions", c.group_id, m.member_id, exc)
                subscriptions[m.member_id] = Subscription(())
            if m.group_instance_id:
                instance_ids[m.member_id] = m.group_instance_id
        topics = set()
        for sub in subscriptions.values():
            topics.update(sub.topics)
        snapshot = c._topic_counts(sorted(topics))
        c._group_snapshot = snapshot
        counts = {t: n for t, n in snapshot.items() if n is not None}
        result = assignor.assign(counts, subscriptions, instance_ids)
        return {member_id: encode_assignment(a) for member_id, a in result.items()}

    def on_join_complete(self, generation, member_id, protocol, assignment):
        c = self.c
        if c._member is not None and not c._member.is_leader:
            c._group_snapshot = None
        try:
            assigned = set(decode_assignment(assignment).partitions)
        except ProtocolDecodeError as exc:
            log.warning("group %s: unreadable assignment (%s); rejoining", c.group_id, exc)
            c._member.request_rejoin("unreadable assignment")
            assigned = set()
        owned = set(c._parts)
        if not c._cooperative:
            c._set_assignment(assigned)
            c._call(c._on_assign, assigned)
            return
        revoked = owned - assigned
        added = assigned - owned
        if revoked:
            if c._auto_commit:
                c._commit_quietly({tp: c._parts[tp].position for tp in revoked
                                   if c._parts[tp].position is not None})
            try:
                c._call(c._on_revoke, revoked)
            finally:
                c._set_assignment(owned & assigned)
            # Revoked partitions go to their new owner in the next round (KIP-429).
            c._member.request_rejoin("partitions revoked by a cooperative rebalance")
        c._set_assignment(assigned)
        c._call(c._on_assign, added)


def _normalize_offsets(offsets):
    if not isinstance(offsets, dict):
        raise TypeError("commit(): offsets must be a dict {partition: offset or OffsetAndMetadata}")
    out = {}
    for tp, value in offsets.items():
        tp = as_topic_partition(tp, "commit() key")
        if isinstance(value, int) and not isinstance(value, bool):
            value = OffsetAndMetadata(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], int):
            value = OffsetAndMetadata(*value)
        else:
            raise TypeError(f"commit(): the offset for {tp.topic}-{tp.partition} must be an int "
                            f"or OffsetAndMetadata, not {value!r}")
        if value.offset < 0:
            raise ValueError(f"commit(): offset for {tp.topic}-{tp.partition} must be >= 0, "
                             f"not {value.offset}")
        if value.metadata is not None and not isinstance(value.metadata, str):
            raise TypeError(f"commit(): metadata for {tp.topic}-{tp.partition} must be a str")
        out[tp] = value
    return out


__all__ = ["Consumer", "TopicPartition", "OffsetAndMetadata", "OffsetAndTimestamp"]
