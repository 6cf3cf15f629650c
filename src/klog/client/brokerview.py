"""The Broker-shaped calls the CLI makes, answered through the client API (``klog ... -b``).

The CLI's commands were written against an open Broker (a data directory). With
``-b HOST:PORT`` there is no Broker in the process: this view gives those commands the same
calls (topics, partition logs' offsets, a group coordinator's listings and commits) on top of a
``klog.connect`` client, so they work against ``klog serve`` or any Kafka cluster. Only what the
client API can answer is offered; ``size`` of a partition is -1 (unknown) over the wire.
"""
from dataclasses import dataclass

from klog.group.coordinator import GroupDescription, MemberDescription
from klog.group.protocol import Assignment, encode_assignment
from klog.structs import TopicPartition


@dataclass(frozen=True)
class _Committed:
    offset: int
    metadata: str = ""
    leader_epoch: int = -1


@dataclass(frozen=True)
class _Fetched:
    error: int
    offsets: dict


class _PartitionView:
    """A partition's offsets, as ``Broker.partition(topic, p)`` offers them to the CLI. The
    wire's latest offset is the high watermark (what a consumer can read)."""

    def __init__(self, view, tp):
        self._view = view
        self._tp = tp
        start, end = view._offsets([tp])[tp]
        self.log_start_offset, self.high_watermark = start, end

    @property
    def config(self):
        """The topic's LogConfig, from its described configs."""
        return self._view._log_config(self._tp.topic)

    def offset_for_time(self, timestamp):
        found = self._view._probe().offsets_for_times({self._tp: timestamp})[self._tp]
        return None if found is None else found.offset


class _CoordinatorView:
    def __init__(self, client):
        self._client = client

    def list_groups(self, states=None):
        return self._client.list_groups()

    def describe_groups(self, group_ids):
        out = []
        for gid in group_ids:
            d = self._client.describe_group(gid)
            out.append(GroupDescription(0, gid, d.state, d.protocol_type, d.protocol, tuple(
                MemberDescription(m.member_id, m.group_instance_id or "", m.client_id, m.host, b"",
                        encode_assignment(Assignment(tuple(m.assignment))) if m.assignment else b"")
                for m in d.members)))
        return out

    def fetch_offsets(self, group_id, partitions=None):
        got = self._client.list_group_offsets(group_id)
        return _Fetched(0, {tp: _Committed(om.offset, om.metadata, om.leader_epoch)
                            for tp, om in got.items()})

    def commit_offsets(self, group_id, member_id, generation, offsets, group_instance_id=None):
        from klog.errors import KlogError
        try:
            self._client.alter_group_offsets(group_id, {tp: getattr(o, "offset", o)
                                                        for tp, o in offsets.items()})
        except KlogError as exc:
            code = exc.error_code if exc.error_code is not None else -1
            return {tp: code for tp in offsets}
        return {tp: 0 for tp in offsets}


class BrokerView:
    """Broker-shaped facade over a client (see the module docstring). Closing it closes the
    client."""

    def __init__(self, client):
        self.client = client
        self._probe_consumer = None
        self.config = {"num.partitions": 1}   # only used to word an error about auto-creation
        self.group_coordinator = _CoordinatorView(client)

    def _probe(self):
        if self._probe_consumer is None:
            self._probe_consumer = self.client.consumer(None)
        return self._probe_consumer

    def _log_config(self, topic):
        from klog.config import SETTINGS, LogConfig
        described = self.client.describe_topic(topic).config
        return LogConfig.from_dict({k: v for k, v in described.items()
                                    if k in SETTINGS and v is not None})

    def _offsets(self, tps):
        c = self._probe()
        starts, ends = c.beginning_offsets(tps), c.end_offsets(tps)
        return {tp: (starts[tp], ends[tp]) for tp in tps}

    # -- topics -------------------------------------------------------------------------------------
    def create_topic(self, name, partitions=None, config=None, replication_factor=None):
        if replication_factor is None:
            return self.client.create_topic(name, partitions, config or None)
        return self.client.create_topic(name, partitions, config or None,
                                        replication_factor=replication_factor)

    def list_topics(self, internal=False):
        return self.client.list_topics(internal=internal)

    def describe_topic(self, name):
        return self.client.describe_topic(name)

    def topic_overrides(self, name):
        """Configs that differ from the broker's defaults (what ``describe`` shows without
        ``--all-configs``)."""
        return self.client.topic_overrides(name)

    def ensure_topic(self, name):
        """The topic's partition count; a producer's metadata request creates it if the
        cluster auto-creates topics (UnknownTopicOrPartitionError if it does not)."""
        with self.client.producer() as p:
            return len(p.partitions_for(name))

    def partition_count(self, name):
        return len(self.client.describe_topic(name).partitions)

    def alter_topic_config(self, name, changes, validate_only=False):
        self.client.alter_topic_config(name, changes, validate_only)

    def add_partitions(self, name, total, validate_only=False):
        self.client.add_partitions(name, total, validate_only)

    def delete_topic(self, name):
        self.client.delete_topic(name)

    def partition(self, topic, partition):
        return _PartitionView(self, TopicPartition(topic, partition))

    # -- clients ------------------------------------------------------------------------------------
    def producer(self, config=None):
        return self.client.producer(config)

    def consumer(self, group_id=None, config=None):
        return self.client.consumer(group_id, config)

    def close(self):
        try:
            if self._probe_consumer is not None:
                self._probe_consumer.close()
        finally:
            self.client.close()
