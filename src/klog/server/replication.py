"""The replication hook the request handlers ask (``Server.replication``): one Produce, Fetch,
ListOffsets and group path for a single node and for a cluster member.

A single node is a cluster of one (``LocalReplication``): this broker leads every partition,
its ISR is itself, the high watermark is the log end offset, and it coordinates every group.
A cluster member (``klog.cluster.replication.ClusterReplication``) answers the same questions
from its replicas and ZooKeeper's view. The handlers ask the Partition for its role, leader
epoch and high watermark either way; what differs is only here:

- ``partition(topic, p)``: the Partition this broker hosts, or the error a client should see
  (UnknownTopicOrPartitionError; NotLeaderOrFollowerError for a topic hosted elsewhere); the
  handlers then answer NOT_LEADER_OR_FOLLOWER unless it leads (Produce, consumers' Fetch,
  ListOffsets, OffsetForLeaderEpoch);
- ``node_id``: in the high bits of the producer ids it hands out (unique across brokers);
- ``append(part, records, acks)``: the leader's append with the acks / ``min.insync.replicas``
  checks, returning ``(AppendInfo, waiter)``: ``waiter`` is None unless an acks=all Produce
  must wait for the high watermark to pass the batch, which ``await_acks_all`` does;
- ``follower_fetch``: a Fetch with a replica id (a follower's);
- ``change_seq`` / ``wait_for_change``: what a long-polling Fetch waits on;
- ``metadata_view(names)``, ``topic_name_for_id`` and ``auto_create_topic``: the cluster as
  Metadata describes it (klog.server.cluster_view; the handler is klog.server.topic_metadata);
- ``coordinators(keys)`` (FindCoordinator), ``coordinates(group_id)`` and
  ``group_write_replicated``: which broker answers a group's requests, and the wait before a
  group write (commit, sync, delete) is answered.
"""
import asyncio
import uuid

from klog.errors import KlogError, TopicExistsError
from klog.protocol.errors import ErrorCode as EC
from klog.protocol.types import ZERO_UUID
from klog.server import epochs
from klog.server.cluster_view import (MetadataView, broker_entry, missing_topic,
                                      partition_entry, topic_entry)


class LocalReplication:
    """A single node: the leader of every partition, ISR = {self}, HW = log end offset."""

    node_id = 0

    def __init__(self, server):
        self.server = server
        self.broker = server.broker
        # partition(topic, p): the broker's own, bound here (no extra call per partition of
        # every Produce and Fetch).
        self.partition = server.broker.partition

    def resolve_fetch_topic_ids(self, topics):
        """Fetch v13+: fill in each topic's name from its id; the indexes of unknown ids."""
        return epochs.resolve_fetch_topic_ids(self.broker, topics)

    # -- Metadata ----------------------------------------------------------------------------
    async def metadata_view(self, names):
        broker, me = self.broker, self.node_id
        topics = []
        for name in broker.list_topics(internal=True) if names is None else names:
            try:
                n = broker.partition_count(name)
                topic_id = uuid.UUID(broker.topic_id(name))
            except KlogError:
                topics.append(missing_topic(name))
                continue
            epoch = broker.leader_epoch
            topics.append(topic_entry(name, topic_id, [
                partition_entry(p, me, epoch(name, p), (me,), (me,)) for p in range(n)]))
        host, port = self.server.advertised
        return MetadataView([broker_entry(me, host, port)], me, topics)

    def topic_name_for_id(self, topic_id):
        if topic_id is None or topic_id == ZERO_UUID:
            return None
        return self.broker.topic_for_id(str(topic_id))

    async def auto_create_topic(self, name):
        """Create ``name`` with the broker's defaults (files are written and fsynced: off the
        event loop) and describe it; its error if it cannot be created."""
        def create():
            try:
                self.broker.create_topic(name)
            except TopicExistsError:
                pass
        try:
            await asyncio.get_running_loop().run_in_executor(None, create)
        except KlogError as exc:
            from klog.server.handlers import error_code
            return missing_topic(name, error_code(exc))
        return (await self.metadata_view([name])).topics[0]

    # -- partitions and Produce ----------------------------------------------------------------
    def append(self, part, records, acks):
        # An idempotent retry of an appended batch: success with its original offset.
        info = part.append_records(records, acks=acks)
        if acks != -1:
            return info, None
        # Done at once when this broker is the partition's only in-sync replica.
        future = part.high_watermark_future(info.last_offset + 1)
        if future.done() and future.exception() is None:
            return info, None
        return info, future

    async def await_acks_all(self, waits, timeout_ms, error_code):
        """acks=all: answer each waiting partition (``[(response, waiter)]``) once its high
        watermark passed the batch; REQUEST_TIMED_OUT when ``timeout_ms`` passes first (the
        batch stays appended, as Kafka)."""
        futures = [asyncio.wrap_future(f) for _, f in waits]
        pending = [f for f in futures if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0, timeout_ms) / 1000.0)
        for (res, _), fut in zip(waits, futures):
            if not fut.done():
                fut.cancel()
                res["error_code"] = EC.REQUEST_TIMED_OUT
                res["error_message"] = "the high watermark did not reach the batch within timeout_ms"
            elif fut.exception() is not None:
                exc = fut.exception()
                res["error_code"] = error_code(exc)
                res["error_message"] = str(exc)[:500]

    # -- Fetch -------------------------------------------------------------------------------
    def follower_fetch(self, part, replica_id, replica_epoch, request, res):
        """A Fetch with replica id ``replica_id`` >= 0 (broker epoch ``replica_epoch``, -1 when
        not sent) for ``part``: fills ``res`` and returns (error, bytes of records), or None to
        serve it as a read up to the log end (a single node has no followers to track)."""
        return None

    def change_seq(self):
        return self.broker.append_seq

    def wait_for_change(self, seen_seq, timeout):
        return self.server.wait_for_append(seen_seq, timeout)

    # -- groups ------------------------------------------------------------------------------
    async def coordinators(self, keys, key_type):
        """FindCoordinator: ``{key: (node id, host, port)}``; a key left out has none now."""
        host, port = self.server.advertised
        return {k: (self.node_id, host, port) for k in keys}

    def coordinates(self, group_id):
        return True

    async def group_write_replicated(self, group_id):
        return None
