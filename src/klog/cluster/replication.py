"""``ClusterReplication``: the replication hook of a cluster member (``klog serve --zookeeper``),
the counterpart of klog.server.replication.LocalReplication (read that module's docstring).

- A partition this broker holds no replica of answers NOT_LEADER_OR_FOLLOWER when ZooKeeper
  knows the topic (the client refreshes its metadata), UNKNOWN_TOPIC_OR_PARTITION otherwise.
- Produce goes through the partition's ``Replica``: NOT_LEADER_OR_FOLLOWER on a non-leader,
  NOT_ENOUGH_REPLICAS before the append and NOT_ENOUGH_REPLICAS_AFTER_APPEND after it by
  ``min.insync.replicas`` for acks=all, which is answered once the high watermark passes the
  batch (REQUEST_TIMED_OUT after the request's ``timeout_ms``; NOT_LEADER_OR_FOLLOWER if this
  broker stopped leading, or the batch left its log: ``Replica.acks_all_outcome``); acks=1 on
  the leader's append.
- A Fetch with a replica id (a follower) is answered by ``Replica.handle_fetch`` through
  ``ReplicaManager.handle_follower_fetch`` (a broker that is not a replica of the partition is
  refused with UNKNOWN_LEADER_EPOCH, or NOT_LEADER_OR_FOLLOWER without a leader epoch, as
  Kafka; a broker epoch that is not the registration's with STALE_BROKER_EPOCH); consumers'
  fetches are the handler's, bounded by the Partition's high watermark, which the replica
  manager keeps equal to the replica's.
- Metadata's view is ZooKeeper's (klog.cluster.metadata_view); a topic Metadata may
  auto-create is created by the controller (``default.replication.factor``, capped by nothing:
  too few live brokers is an error logged, the client asks again), answered
  LEADER_NOT_AVAILABLE meanwhile, as Kafka does.
- Topic ids and partition counts are ZooKeeper's (also for the group coordinator's checks of
  committed topics: a topic with no replica on this broker is still a topic).
- A group's coordinator is the leader of its ``__consumer_offsets`` partition (Kafka's
  ``partitionFor``), which reloads the partition's groups when it becomes leader
  (ReplicaManager). ``__consumer_offsets`` is a replicated topic, created through the
  controller at the first FindCoordinator. A group write (commit, sync, delete) is answered once the offsets
  partition's high watermark reached its end (a bounded wait), as Kafka appends them with
  acks=all.

Locking: every call into a ``Replica`` holds its ``HostedPartition.lock`` (see
klog.cluster.replica_manager); the Partition is read without it.
"""
from __future__ import annotations

import time

import logging

from klog.cluster import bounded
from klog.cluster.admin_handlers import request_topic_creation
from klog.cluster.assignment import InvalidReplicationFactorError
from klog.cluster.metadata_view import metadata_view
from klog.cluster.replica import FetchRequest, Role
from klog.cluster.topic_configs import offsets_topic_config
from klog.errors import NotEnoughReplicasError, NotLeaderOrFollowerError, \
    UnknownTopicOrPartitionError
from klog.group.offsets import OFFSETS_TOPIC, partition_for
from klog.partition import AppendInfo
from klog.protocol.errors import ErrorCode as EC
from klog.server.cluster_view import missing_topic

log = logging.getLogger("klog.cluster.replication")
COMMIT_REPLICATION_WAIT_S = 10.0


class ClusterReplication:
    def __init__(self, server, node):
        self.server = server
        self.node = node
        self.manager = node.manager
        self.node_id = node.node_id
        # The group coordinator checks committed topics against the cluster's topics.
        server.broker.group_coordinator.topic_partitions = self.partition_count

    # -- partitions --------------------------------------------------------------------------
    def _hosted(self, topic, partition):
        hosted = self.manager.partitions.get((topic, partition))
        if hosted is not None:
            return hosted
        if topic in self.manager.topic_ids:
            raise NotLeaderOrFollowerError(
                f"{topic}-{partition}: broker {self.node_id} holds no replica of it")
        raise UnknownTopicOrPartitionError(f"unknown topic or partition {topic!r}-{partition}")

    def partition(self, topic, partition):
        return self._hosted(topic, partition).part

    def partition_count(self, topic):
        """The topic's partitions as ZooKeeper says, hosted here or not."""
        n = self.manager.partition_counts.get(topic)
        if n is None:
            raise UnknownTopicOrPartitionError(f"unknown topic {topic!r}")
        return n

    def resolve_fetch_topic_ids(self, topics):
        names = {v: k for k, v in self.manager.topic_ids.items()}
        unknown = set()
        for i, t in enumerate(topics):
            t["topic"] = names.get(t.get("topic_id"))
            if t["topic"] is None:
                unknown.add(i)
        return unknown

    # -- Metadata ----------------------------------------------------------------------------
    def metadata_view(self, names):
        return metadata_view(self.server, self.node, names)

    def topic_name_for_id(self, topic_id):
        for name, known in list(self.manager.topic_ids.items()):
            if known == topic_id:
                return name
        return None

    async def auto_create_topic(self, name):
        try:
            await bounded.read(self.node, _auto_create, self.node, self.server.broker, name)
        except Exception as exc:     # noqa: BLE001 - the client asks again
            log.warning("auto-creating topic %s: %s", name, exc)
        return missing_topic(name, EC.LEADER_NOT_AVAILABLE)

    # -- Produce -----------------------------------------------------------------------------
    def append(self, part, records, acks):
        hosted = self._hosted(part.topic, part.partition)
        with hosted.lock:
            appended = hosted.replica.append([records], acks=acks)
            hosted.sync()
            start = part.log_start_offset
        if appended.error == EC.NOT_LEADER_OR_FOLLOWER:
            raise NotLeaderOrFollowerError(
                f"{part.topic}-{part.partition}: broker {self.node_id} is not the leader")
        if appended.error == EC.NOT_ENOUGH_REPLICAS:
            isr = hosted.replica.isr
            raise NotEnoughReplicasError(
                f"{part.topic}-{part.partition}: {len(isr)} in-sync replicas {sorted(isr)}, "
                f"min.insync.replicas is {hosted.replica.min_insync_replicas}; nothing was "
                "appended")
        info = AppendInfo(appended.first_offset, appended.last_offset, False, start)
        return info, ((hosted, appended) if acks == -1 else None)

    async def await_acks_all(self, waits, timeout_ms, error_code):
        changes = self.node.changes
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        while waits:
            seq = changes.seq
            still = []
            for res, (hosted, appended) in waits:
                with hosted.lock:
                    outcome = hosted.replica.acks_all_outcome(appended)
                if outcome is None:
                    still.append((res, (hosted, appended)))
                elif outcome:
                    res["error_code"] = outcome
            waits = still
            left = deadline - time.monotonic()
            if waits and (left <= 0 or self.server.stopping):
                for res, _ in waits:
                    res["error_code"] = EC.REQUEST_TIMED_OUT
                break
            if waits:
                await changes.wait(seq, left)

    # -- Fetch -------------------------------------------------------------------------------
    def follower_fetch(self, part, replica_id, replica_epoch, request, res):
        hosted = self._hosted(part.topic, part.partition)
        answer = self.manager.handle_follower_fetch(hosted, FetchRequest(
            replica_id, request["fetch_offset"], request.get("last_fetched_epoch", -1),
            request.get("current_leader_epoch", -1), request["partition_max_bytes"],
            replica_epoch))
        res.update(error_code=answer.error, high_watermark=answer.high_watermark,
                   last_stable_offset=answer.high_watermark,
                   log_start_offset=answer.log_start_offset)
        if answer.diverging_epoch is not None:
            d = answer.diverging_epoch
            # The leader knows none of the follower's epochs: epoch -1 with an end offset >= 0
            # tells our follower to fall back to its high watermark.
            res["diverging_epoch"] = {"epoch": d.epoch, "end_offset": max(d.end_offset, 0)}
            return True, 0
        if answer.error:
            return True, 0
        if answer.records:
            res["records"] = answer.records
            return False, len(answer.records)
        return False, 0

    def change_seq(self):
        return self.node.changes.seq

    def wait_for_change(self, seen_seq, timeout):
        return self.node.changes.wait(seen_seq, timeout)

    # -- groups ------------------------------------------------------------------------------
    def _offsets_partition(self, group_id):
        n = self.manager.partition_counts.get(OFFSETS_TOPIC)
        if not n:
            return None
        return self.manager.get(OFFSETS_TOPIC, partition_for(group_id, n))

    async def coordinators(self, keys, key_type):
        try:    # bounded: kazoo would hold the request until ZooKeeper is back
            return await bounded.read(self.node, find_coordinators, self.node,
                                      self.server.broker, keys)
        except Exception:     # noqa: BLE001 - ZooKeeper or the controller unreachable: ask again
            return {}

    def coordinates(self, group_id):
        """Whether this broker leads the group's ``__consumer_offsets`` partition."""
        hosted = self._offsets_partition(group_id)
        return hosted is not None and hosted.replica.role is Role.LEADER

    async def group_write_replicated(self, group_id):
        """Wait (bounded) until the group's offsets partition's high watermark reaches its log
        end: a group write is answered once the ISR holds it."""
        hosted = self._offsets_partition(group_id)
        if hosted is None:
            return
        changes = self.node.changes
        target = hosted.part.log_end_offset
        deadline = time.monotonic() + COMMIT_REPLICATION_WAIT_S
        while hosted.replica.high_watermark < target and time.monotonic() < deadline:
            seq = changes.seq
            if hosted.replica.high_watermark >= target:
                break
            await changes.wait(seq, deadline - time.monotonic())


def _auto_create(node, broker, name):
    """Metadata's auto-creation: ``num.partitions`` and ``default.replication.factor``."""
    live = len(node.store.live_brokers())
    rf = broker.config["default.replication.factor"]
    if rf > live:
        raise InvalidReplicationFactorError(
            f"default.replication.factor {rf} is larger than the {live} live brokers")
    request_topic_creation(node, name, broker.config["num.partitions"], rf)


# -- FindCoordinator ---------------------------------------------------------------------------
def request_offsets_topic(node, broker):
    """Have the controller create ``__consumer_offsets`` (``offsets.topic.replication.factor``
    capped by the live brokers, as Kafka does at first use), with its config in ZooKeeper."""
    rf = min(broker.config["offsets.topic.replication.factor"], len(node.store.live_brokers()))
    request_topic_creation(node, OFFSETS_TOPIC, broker.config["offsets.topic.num.partitions"], rf,
                           offsets_topic_config(broker))


def find_coordinators(node, broker, keys):
    """key -> (node id, host, port): the leader of the group's ``__consumer_offsets``
    partition (``partition_for``), as in Kafka; left out while it has no live leader or the
    topic is still being created. Blocking (ZooKeeper reads)."""
    store = node.store
    if OFFSETS_TOPIC not in store.topics():
        request_offsets_topic(node, broker)
        return {}
    n = len(store.topic(OFFSETS_TOPIC).partitions)
    live = store.live_brokers()
    out = {}
    for key in keys:
        leader = store.partition_state(OFFSETS_TOPIC, partition_for(key, n)).leader
        if leader in live:
            out[key] = (leader, live[leader][1]["host"], live[leader][1]["port"])
    return out
