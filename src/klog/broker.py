"""Broker: a data directory of topics, each split into partitions (klog.partition.Partition,
each over a storage Log).

Layout: ``<data_dir>/<topic>-<partition>/`` per partition (Kafka's), ``klog-metadata.json`` for
topics and their configs (see klog.metadata), ``klog-broker-config.json`` for dynamic broker
configs (see klog.broker_config), ``.lock`` owned by the one process that has the directory open.
Internal topics (klog.metadata.INTERNAL_TOPICS) cannot be deleted, grown or given another
cleanup policy, whoever asks (InternalTopicError). Nothing below the Broker knows about topics;
nothing above it touches files.

Creating topics and partitions is all or nothing: the partition directories are created and
opened first, the metadata is written last; if any partition fails (EMFILE, ENOSPC) the ones
made are closed and removed and the metadata is untouched, so a crash or an error never leaves
metadata naming partitions that do not exist. A directory left by a creation that crashed
before its metadata was written is removed by the next creation of that name (only if its
segments are empty). ``max.partitions`` (default: what the open-file limit allows, see
klog.fdlimit) bounds the partitions of all topics together, so a data directory never holds
more partitions than the process can reopen.

Everything above the Broker reaches a partition through ``partition(topic, p)``: appends with
the leader's checks, reads bounded by the high watermark, leader state. Nothing above it holds a
storage Log (tests/test_architecture.py).

Concurrency: thread-safe. ``_lock`` guards the topic registry; each partition has its own locks,
so produce and fetch on different partitions never contend here.
"""
import errno
import os
import shutil
import threading
from dataclasses import dataclass, replace

from klog.clock import SYSTEM_CLOCK, Scheduler
from klog.broker_config import CLUSTER_DEFAULT, PER_BROKER, DynamicBrokerConfig
from klog.config import BrokerConfig, LogConfig
from klog.errors import (
    BrokerLockedError, InternalTopicError, InvalidPartitionsError, LogLockedError,
    PartitionLimitError, TopicExistsError, UnknownTopicOrPartitionError,
)
from klog.fdlimit import FDS_PER_PARTITION, default_max_partitions, raise_open_file_limit
from klog.metadata import (
    INTERNAL_TOPICS, MetadataStore, TopicRecord, collision_key, is_internal, validate_topic_name,
)
from klog.storage.files import fsync_dir, makedirs_durably
from klog.storage.log_cleaner import LogCleaner
from klog.partition import Partition
from klog.storage.log import _lock_directory
from klog.storage.partition_metadata import ensure_topic_id, remove_stray

DELETED_SUFFIX = ".deleted"


@dataclass(frozen=True)
class PartitionDescription:
    partition: int
    log_start_offset: int
    log_end_offset: int
    size: int


@dataclass(frozen=True)
class TopicDescription:
    name: str
    topic_id: str
    partitions: list
    config: dict
    internal: bool


class Broker:
    """Open with ``klog.open(data_dir, config)``; a context manager."""

    def __init__(self, data_dir, config=None, clock=None):
        self.data_dir = os.path.abspath(os.fspath(data_dir))
        self.config = BrokerConfig.from_dict(config)
        # One clock and one scheduler for the broker's background work (flushes, retention,
        # the cleaner's trigger, group timers); a FakeClock drives them all in tests.
        self.clock = SYSTEM_CLOCK if clock is None else clock
        self.scheduler = Scheduler(self.clock, name="klog-scheduler")
        raise_open_file_limit()
        self.max_partitions = self.config["max.partitions"] or default_max_partitions()
        makedirs_durably(self.data_dir)   # a new data directory must survive a power loss
        try:
            self._lock_fd = _lock_directory(self.data_dir)
        except LogLockedError as exc:
            raise BrokerLockedError(str(exc).replace("a log has", "a data directory has")) from None
        self._lock = threading.RLock()
        self._closed = False
        self._store = MetadataStore(self.data_dir)
        self._topics = {}     # name -> TopicRecord
        self._ids = (None, {})   # (the _topics dict it indexes, {topic id: name})
        self._partitions = {}   # (name, partition) -> Partition, opened lazily for internal topics
        self._services = []   # objects with close(), closed before the logs (groups, producers)
        self._coordinator = None   # the GroupCoordinator, created on first use
        self._appended = threading.Condition(threading.Lock())
        self._append_seq = 0   # bumped on every append; waiters compare against it
        self._waiting = 0
        self._append_listeners = ()   # fn() after every append (the wire server's fetch wake-up)
        try:
            self._dynamic = DynamicBrokerConfig(self.data_dir, self.config)
            self.config = self._dynamic.effective()
            self._load()
            if "__consumer_offsets" in self._topics:
                self.group_coordinator   # replays committed offsets now; fails closed if damaged
        except BaseException:
            self._close_logs()
            self.scheduler.shutdown()
            os.close(self._lock_fd)
            raise
        self._retention = self.scheduler.schedule_periodic(
            self.config["log.retention.check.interval.ms"], self._retention_task)
        self._cleaner = None   # compaction, on its own thread (klog.storage.log_cleaner)
        if self.config["log.cleaner.enable"]:
            self._cleaner = LogCleaner(self.data_dir, self.logs,
                                       self.config["log.cleaner.backoff.ms"], self.clock,
                                       self.scheduler)
            self._cleaner.start()

    # -- lifecycle -------------------------------------------------------------------------------
    def _load(self):
        self._topics = self._store.load()
        for name in os.listdir(self.data_dir):
            if name.endswith(DELETED_SUFFIX):
                shutil.rmtree(os.path.join(self.data_dir, name), ignore_errors=True)
        for record in self._topics.values():
            if record.name not in INTERNAL_TOPICS:
                for p in record.local_partitions():
                    try:
                        self._open_log(record, p)
                    except OSError as exc:
                        if exc.errno not in (errno.EMFILE, errno.ENFILE):
                            raise
                        raise PartitionLimitError(
                            f"{self.data_dir}: opening partition {p} of topic {record.name!r} "
                            f"ran out of file descriptors ({exc.strerror}): the directory holds "
                            f"{self._partition_total(self._topics)} partitions, about "
                            f"{FDS_PER_PARTITION} descriptors each; raise the open-file limit "
                            "(ulimit -n)") from None

    def _open_log(self, record, partition):
        key = (record.name, partition)
        part = self._partitions.get(key)
        if part is None:
            path = os.path.join(self.data_dir, f"{record.name}-{partition}")
            remove_stray(path, record.topic_id, DELETED_SUFFIX)
            # The single broker leads every partition, in the epoch its topic was created
            # with (or a later one the log already holds): stable across restarts.
            part = Partition.open(record.name, partition, path,
                                  self.config.topic_config(record.config),
                                  leader_epoch=record.leader_epoch, scheduler=self.scheduler)
            try:
                ensure_topic_id(path, record.topic_id)
            except BaseException:
                part.close()
                raise
            self._partitions[key] = part
            part.add_append_listener(self._on_append)
        return part

    def _on_append(self, _log):
        self._append_seq += 1
        if self._waiting:
            with self._appended:
                self._appended.notify_all()
        for fn in self._append_listeners:
            fn()

    def add_append_listener(self, fn):
        """Call ``fn()`` after every append to any partition, in the appending thread."""
        with self._lock:
            self._append_listeners = self._append_listeners + (fn,)

    def remove_append_listener(self, fn):
        with self._lock:
            # ``!=``, not ``is not``: a bound method is a new object at each access
            self._append_listeners = tuple(f for f in self._append_listeners if f != fn)

    @property
    def append_seq(self):
        """A counter that grows with every append to any partition."""
        return self._append_seq

    def wait_for_append(self, seen_seq, timeout):
        """Block until something is appended after ``seen_seq`` was read, or ``timeout`` s pass.
        Returns True if there was an append. Consumers use this to wait without polling."""
        with self._appended:
            self._waiting += 1
            try:
                return self._appended.wait_for(lambda: self._append_seq != seen_seq, timeout)
            finally:
                self._waiting -= 1

    def close(self):
        """Stop background work, close every log cleanly, release the data directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._retention.cancel()
        if self._cleaner is not None:
            self._cleaner.close()
        for service in reversed(self._services):
            service.close()
        with self._lock:
            self._close_logs()
            os.close(self._lock_fd)
        self.scheduler.shutdown()   # after the logs: their last flushes are queued there

    def _close_logs(self):
        for part in self._partitions.values():
            part.close()
        self._partitions.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def closed(self):
        return self._closed

    def _check_open(self):
        if self._closed:
            from klog.errors import LogClosedError
            raise LogClosedError(f"broker {self.data_dir} is closed")

    # -- topics ------------------------------------------------------------------------------------
    def create_topic(self, name, partitions=None, config=None, *, topic_id=None, local=None,
                     validate_only=False):
        """Create a topic (Kafka's naming rules and topic-config names); returns its description.
        Cluster mode gives the topic id (ZooKeeper's) and ``local``, the partitions this broker
        holds a replica of: only those get a directory here. With ``validate_only``: every
        check (the partition budget too), no change; returns None."""
        validate_topic_name(name)
        if partitions is None:
            partitions = self.config["num.partitions"]
        _check_partition_count(partitions)
        overrides = _canonical_config(config)
        self.config.topic_config(overrides)  # validates
        with self._lock:
            self._check_open()
            if name in self._topics:
                raise TopicExistsError(f"topic {name!r} already exists")
            clash = [t for t in self._topics if collision_key(t) == collision_key(name)]
            if clash:
                raise TopicExistsError(
                    f"topic {name!r} collides with existing topic {clash[0]!r} "
                    "('.' and '_' are interchangeable in Kafka's metric names)")
            self._check_budget(name, partitions)
            if validate_only:
                return None
            record = TopicRecord(name, partitions, overrides,
                                 leader_epoch=self._store.leader_epoch_floor,
                                 local=None if local is None else sorted(set(local)))
            if topic_id is not None:
                record.topic_id = str(topic_id)
            topics = dict(self._topics)
            topics[name] = record
            self._create_partitions(record, 0, partitions, topics)
            return self.describe_topic(name)

    def ensure_topic(self, name):
        """The topic's partition count, creating it with broker defaults when
        ``auto.create.topics.enable`` is on; UnknownTopicOrPartitionError otherwise."""
        record = self._topics.get(name)
        if record is not None:
            return record.partitions
        if not self.config["auto.create.topics.enable"]:
            raise UnknownTopicOrPartitionError(f"unknown topic {name!r}")
        try:
            self.create_topic(name)
        except TopicExistsError:
            pass
        return self._topics[name].partitions

    def delete_topic(self, name):
        with self._lock:
            self._check_open()
            record = self._record(name)
            if is_internal(name):   # the committed offsets (or transactions) would be lost
                raise InternalTopicError(f"topic {name!r} is internal and cannot be deleted")
            topics = dict(self._topics)
            del topics[name]
            self._store.retire_leader_epoch(max(
                [record.leader_epoch] + [self.leader_epoch(name, p) for p in range(record.partitions)]))
            self._store.save(topics)
            self._topics = topics
            for p in range(record.partitions):
                part = self._partitions.pop((name, p), None)
                if part is not None:
                    part.close()
                path = os.path.join(self.data_dir, f"{name}-{p}")
                if os.path.exists(path):
                    doomed = f"{path}.{record.topic_id}{DELETED_SUFFIX}"
                    os.rename(path, doomed)
                    shutil.rmtree(doomed, ignore_errors=True)
            fsync_dir(self.data_dir)
            if self._cleaner is not None:
                self._cleaner.forget(name)
            services = list(self._services)
            coordinator = self._coordinator
        if coordinator is not None:
            coordinator.topic_deleted(name)
        self._topic_changed(services, name)

    def list_topics(self, internal=False):
        with self._lock:
            return sorted(n for n in self._topics if internal or n not in INTERNAL_TOPICS)

    def has_topic(self, name):
        return name in self._topics

    def describe_topic(self, name):
        with self._lock:
            record = self._record(name)
            parts = []
            for p in range(record.partitions):
                part = self._partitions.get((name, p))
                if part is None:
                    parts.append(PartitionDescription(p, 0, 0, 0))
                else:
                    parts.append(PartitionDescription(p, part.log_start_offset, part.log_end_offset,
                                                      part.size))
            config = self.config.topic_config(record.config).to_dict()
            return TopicDescription(name, record.topic_id, parts, config, name in INTERNAL_TOPICS)

    def topic_overrides(self, name):
        """The configs set on this topic (not the defaults)."""
        with self._lock:
            return dict(self._record(name).config)

    def alter_topic_config(self, name, changes, validate_only=False):
        """Set topic configs; a value of None removes the override (back to the default).
        Applies to the topic's open logs at once (new segments use new sizes). With
        ``validate_only``: every check, no change."""
        if not isinstance(changes, dict):
            raise TypeError("changes must be a dict of Kafka topic-config names")
        with self._lock:
            self._check_open()
            record = self._record(name)
            overrides = dict(record.config)
            for key, value in changes.items():
                if value is None:
                    overrides.pop(key, None)
                else:
                    overrides.update(_canonical_config({key: value}))
            log_config = self.config.topic_config(overrides)  # validates everything
            if is_internal(name):
                before = self.config.topic_config(record.config).cleanup_policy
                if log_config.cleanup_policy != before:   # its readers need every key's latest
                    raise InternalTopicError(
                        f"topic {name!r} is internal: its cleanup.policy stays {before!r} "
                        f"(asked for {log_config.cleanup_policy!r})")
            if validate_only:
                return
            topics = dict(self._topics)
            topics[name] = replace(record, config=overrides)
            self._store.save(topics)
            self._topics = topics
            for p in range(record.partitions):
                part = self._partitions.get((name, p))
                if part is not None:
                    part.update_config(log_config)

    # -- broker configs ------------------------------------------------------------------------------
    @property
    def dynamic_config(self):
        """The DynamicBrokerConfig layers (for describing where each value comes from)."""
        return self._dynamic

    def alter_broker_config(self, changes, cluster_default=False, validate_only=False):
        """Set dynamic broker configs (Kafka's names; a value of None removes the setting), for
        this broker or as the cluster-wide default. Persisted atomically, then applied to the
        running broker: open logs whose topics do not override a changed default take it at once.
        ConfigError (ReadOnlyConfigError for a config Kafka cannot change at run time)."""
        if not isinstance(changes, dict):
            raise TypeError("changes must be a dict of Kafka broker-config names")
        with self._lock:
            self._check_open()
            scope = CLUSTER_DEFAULT if cluster_default else PER_BROKER
            config = self._dynamic.alter(scope, changes, validate_only)
            if validate_only:
                return
            self.config = config
            for (name, _), part in self._partitions.items():
                part.update_config(config.topic_config(self._topics[name].config))

    def add_partitions(self, name, total, validate_only=False, *, local=None):
        """Grow the topic to ``total`` partitions (Kafka's CreatePartitions: never shrinks).
        With ``validate_only``: every check, no change. Cluster mode: ``local`` names the new
        partitions this broker holds a replica of (only those get a directory)."""
        with self._lock:
            self._check_open()
            record = self._record(name)
            if is_internal(name) and local is None:   # groups (transactions) are mapped to its partitions by hash
                raise InternalTopicError(
                    f"topic {name!r} is internal: its partition count cannot change")
            _check_partition_count(total)
            if total <= record.partitions:
                raise InvalidPartitionsError(
                    f"topic {name!r} has {record.partitions} partitions; the new count {total} "
                    "must be larger (partitions can be added, never removed)")
            self._check_budget(name, total - record.partitions)
            if validate_only:
                return
            topics = dict(self._topics)
            if record.local is not None or local is not None:
                held = set(record.local_partitions()) | set(range(record.partitions, total)
                                                            if local is None else local)
                grown = replace(record, partitions=total, local=sorted(held))
            else:
                grown = replace(record, partitions=total)
            topics[name] = grown
            self._create_partitions(grown, record.partitions, total, topics)
            services = list(self._services)
        self._topic_changed(services, name)

    def _partition_total(self, topics):
        return sum(r.partitions for r in topics.values())

    def _check_budget(self, name, adding):
        """PartitionLimitError unless ``adding`` more partitions fit ``max.partitions``."""
        total = self._partition_total(self._topics)
        if total + adding > self.max_partitions:
            raise PartitionLimitError(
                f"topic {name!r}: {adding} more partitions would make {total + adding}, past this "
                f"broker's max.partitions ({self.max_partitions}; about {FDS_PER_PARTITION} file "
                f"descriptors each, so the default follows the open-file limit); nothing was "
                "created")

    def _create_partitions(self, record, first, end, topics):
        """Create and open partitions ``first..end-1`` of ``record``, then save ``topics`` (the
        registry with ``record`` in it) and install it; all or nothing. Caller holds _lock."""
        made = []
        try:
            if record.name not in INTERNAL_TOPICS:   # internal ones open on first use
                for p in range(first, end):
                    if not record.hosts(p):
                        continue
                    path = os.path.join(self.data_dir, f"{record.name}-{p}")
                    # A deleted incarnation's directory (another topic id) goes; one with no id
                    # but data is refused (see _remove_leftover).
                    remove_stray(path, record.topic_id, DELETED_SUFFIX)
                    self._remove_leftover(path)
                    made.append(p)
                    self._open_log(record, p)
                fsync_dir(self.data_dir)
            self._store.save(topics)
        except BaseException as exc:
            self._abandon(record.name, made)
            if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
                raise PartitionLimitError(
                    f"topic {record.name!r}: ran out of file descriptors creating partition "
                    f"{made[-1] if made else first} ({exc.strerror}); nothing was created. Raise "
                    "the open-file limit (ulimit -n) or lower max.partitions") from None
            raise
        self._topics = topics

    def _remove_leftover(self, path):
        """A partition directory of a topic the metadata does not name was left by a creation
        that crashed before writing the metadata: remove it, unless it holds data."""
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for n in names:
            if n.endswith(".log") and os.path.getsize(os.path.join(path, n)) > 0:
                raise TopicExistsError(
                    f"{path} holds data but no topic in the metadata names it; move it away "
                    "before creating this topic")
        shutil.rmtree(path)

    def _abandon(self, name, partitions):
        """Undo a failed creation: close and remove the partitions it made."""
        for p in partitions:
            part = self._partitions.pop((name, p), None)
            if part is not None:
                try:
                    part.close()
                except Exception:
                    pass
            shutil.rmtree(os.path.join(self.data_dir, f"{name}-{p}"), ignore_errors=True)
        try:
            fsync_dir(self.data_dir)
        except OSError:
            pass

    def _topic_changed(self, services, name):
        """Tell producers (and anything else that caches partition counts) to look again."""
        for service in services:
            hook = getattr(service, "topic_changed", None)
            if hook is not None:
                hook(name)

    def partition_count(self, name):
        return self._record(name).partitions

    def hosts_partition(self, topic, partition):
        """Whether this broker holds a replica of the partition (cluster mode: not all do)."""
        record = self._topics.get(topic)
        return record is not None and record.hosts(partition)

    def local_partitions(self, name):
        """The partitions of topic ``name`` this broker holds, as a sorted list when the topic
        was created by a cluster (which names them); None when it holds all (a single node's)."""
        local = self._record(name).local
        return None if local is None else list(local)

    def topic_id(self, name):
        """The topic's id (UUID text); UnknownTopicOrPartitionError for no such topic."""
        return self._record(name).topic_id

    def hold_partitions(self, name, partitions):
        """Cluster mode: this broker becomes a replica of more partitions of a topic it holds
        (a reassignment moved them here); each gets an empty directory."""
        with self._lock:
            self._check_open()
            record = self._record(name)
            new = sorted(set(partitions) - set(record.local_partitions()))
            if not new:
                return
            topics = dict(self._topics)
            topics[name] = grown = replace(record, local=sorted(set(record.local or ()) | set(new)))
            for p in new:
                self._create_partitions(grown, p, p + 1, topics)

    def release_partitions(self, name, partitions):
        """Cluster mode: this broker is no longer a replica of these partitions (a reassignment
        moved them away): close them and delete their directories. Each directory is renamed
        to a ``.deleted`` name before the metadata is saved without it: after a crash in
        between, the next start removes what was renamed (and a partition still named in the
        metadata opens empty; the cluster releases it again)."""
        with self._lock:
            self._check_open()
            record = self._record(name)
            gone = sorted(set(partitions) & set(record.local_partitions()))
            if not gone:
                return
            doomed = []
            for p in gone:
                part = self._partitions.pop((name, p), None)
                if part is not None:
                    part.close()
                path = os.path.join(self.data_dir, f"{name}-{p}")
                if os.path.exists(path):
                    doomed.append(f"{path}.{record.topic_id}{DELETED_SUFFIX}")
                    os.rename(path, doomed[-1])
            fsync_dir(self.data_dir)
            topics = dict(self._topics)
            topics[name] = replace(record, local=sorted(set(record.local_partitions()) - set(gone)))
            self._store.save(topics)
            self._topics = topics
            for path in doomed:
                shutil.rmtree(path, ignore_errors=True)
            if self._cleaner is not None:
                self._cleaner.forget(name, set(gone))

    def topic_for_id(self, topic_id):
        """The name of the topic with this id (UUID text), or None."""
        topics, index = self._ids
        if topics is not self._topics:   # _topics is replaced, never changed in place
            topics = self._topics
            index = {r.topic_id: n for n, r in topics.items()}
            self._ids = (topics, index)
        return index.get(topic_id)

    def leader_epoch(self, topic, partition):
        """The partition's current leader epoch (without opening an internal topic's log)."""
        part = self._partitions.get((topic, partition))
        return part.leader_epoch if part is not None else self._record(topic).leader_epoch

    def _record(self, name):
        record = self._topics.get(name)
        if record is None:
            raise UnknownTopicOrPartitionError(f"unknown topic {name!r}")
        return record

    def partition(self, topic, partition):
        """The Partition ``partition`` of ``topic`` (opening an internal topic's partition on
        first use); UnknownTopicOrPartitionError if there is none."""
        part = self._partitions.get((topic, partition))
        if part is not None:
            return part
        with self._lock:
            self._check_open()
            record = self._record(topic)
            if not isinstance(partition, int) or not 0 <= partition < record.partitions:
                raise UnknownTopicOrPartitionError(
                    f"topic {topic!r} has partitions 0..{record.partitions - 1}, not {partition!r}")
            if not record.hosts(partition):
                raise UnknownTopicOrPartitionError(
                    f"partition {partition} of topic {topic!r} has no replica on this broker")
            return self._open_log(record, partition)

    def partitions(self):
        """A snapshot of the open partitions: [((topic, partition), Partition)]."""
        with self._lock:
            return list(self._partitions.items())

    def log(self, topic, partition):
        """The storage Log under a partition: for storage tools and tests only (klog's own
        layers use ``partition()``)."""
        return self.partition(topic, partition).log

    def logs(self):
        """A snapshot of the open logs, [((topic, partition), Log)]: for the log cleaner."""
        return [(key, part.log) for key, part in self.partitions()]

    def producer(self, config=None):
        """A Producer (Kafka producer config names: linger.ms, batch.size, compression.type,
        partitioner, acks, ...)."""
        from klog.producer import Producer

        self._check_open()
        return Producer(self, config)

    def consumer(self, group_id=None, config=None):
        """A Consumer (Kafka consumer config names: auto.offset.reset, enable.auto.commit,
        max.poll.records, ...); ``group_id`` (or ``group.id``) makes it a consumer-group member."""
        from klog.consumer import Consumer

        self._check_open()
        return Consumer(self, group_id, config)

    @property
    def group_coordinator(self):
        """The GroupCoordinator of this broker. Created when the broker opens if
        ``__consumer_offsets`` exists (replaying the committed offsets), else on first use."""
        coordinator = self._coordinator
        if coordinator is None:
            from klog.group.coordinator import GroupCoordinator

            with self._lock:
                self._check_open()
                if self._coordinator is None:
                    self._coordinator = GroupCoordinator(self)
                    self._services.append(self._coordinator)
                coordinator = self._coordinator
        return coordinator

    def register_service(self, service):
        """Close ``service`` (a producer, consumer, coordinator) before the logs on close()."""
        with self._lock:
            self._services.append(service)

    # -- background: retention and cleaning ---------------------------------------------------------
    def _retention_task(self):
        """Every ``log.retention.check.interval.ms``, on the scheduler."""
        if not self._closed:
            self.enforce_retention()

    def enforce_retention(self, now=None):
        """Apply retention to every log once (cleaning has its own thread: clean_logs). Returns
        the number of segments deleted."""
        deleted = 0
        now = self.clock.now_ms() if now is None else now
        for _, part in self.partitions():
            try:
                deleted += part.enforce_retention(now)
            except Exception:  # one bad log must not stop the others; it reports on its own use
                continue
        return deleted

    def clean_logs(self, now=None):
        """One round of the log cleaner (what its thread does every log.cleaner.backoff.ms):
        clean the compacted logs past min.cleanable.dirty.ratio or max.compaction.lag.ms.
        Returns {(topic, partition): CleanResult}; {} when log.cleaner.enable is false."""
        if self._cleaner is None:
            return {}
        return self._cleaner.clean_once(now)

    @property
    def log_cleaner(self):
        """The LogCleaner (None when log.cleaner.enable is false)."""
        return self._cleaner

    def __repr__(self):
        return f"<Broker {self.data_dir!r} topics={len(self._topics)}>"


def _check_partition_count(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidPartitionsError(f"partition count must be an integer >= 1, not {n!r}")


def _canonical_config(config):
    """Validate topic-config names and values now and store them in canonical form."""
    if config is None:
        return {}
    parsed = LogConfig.from_dict(config).to_dict()
    return {k: parsed[k] for k in config}
