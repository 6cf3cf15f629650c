"""The embedded backend: the client API over an in-process Broker (a data directory).

The producer and consumer are the embedded broker's own (klog.producer.Producer,
klog.consumer.Consumer): they already have the client API's methods, so this module only adds
the admin calls and the lifecycle. The data directory is locked by this process while open
(BrokerLockedError if a ``klog serve`` or another process owns it: connect to that server with a
bootstrap address instead).
"""
from klog.broker import Broker
from klog.client.api import GroupDescription, GroupListing, MemberDescription
from klog.errors import error_for
from klog.group.errors import NONE
from klog.structs import OffsetAndMetadata, as_topic_partition


class EmbeddedClient:
    """The client API on a Broker. ``owns_broker``: close the broker on ``close()`` (true when
    ``klog.connect`` opened it)."""

    backend = "embedded"

    def __init__(self, broker, owns_broker=True, target=None):
        self.broker = broker
        self.target = target or broker.data_dir
        self._owns = owns_broker
        self._closed = False

    @classmethod
    def open(cls, data_dir, config=None):
        return cls(Broker(data_dir, config), True, str(data_dir))

    # -- clients -------------------------------------------------------------------------------------
    def producer(self, config=None):
        return self.broker.producer(config)

    def consumer(self, group_id=None, config=None):
        return self.broker.consumer(group_id, config)

    # -- topics -----------------------------------------------------------------------------------------
    def create_topic(self, name, partitions=None, config=None):
        return self.broker.create_topic(name, partitions, config)

    def delete_topic(self, name):
        self.broker.delete_topic(name)

    def list_topics(self, internal=False):
        return self.broker.list_topics(internal=internal)

    def describe_topic(self, name):
        return self.broker.describe_topic(name)

    def topic_overrides(self, name):
        return self.broker.topic_overrides(name)

    def alter_topic_config(self, name, changes, validate_only=False):
        self.broker.alter_topic_config(name, changes, validate_only)

    def add_partitions(self, name, total, validate_only=False):
        self.broker.add_partitions(name, total, validate_only)

    # -- groups ---------------------------------------------------------------------------------------
    def list_groups(self):
        return [GroupListing(g.group_id, g.state, g.protocol_type or "")
                for g in self.broker.group_coordinator.list_groups()]

    def describe_group(self, group_id):
        from klog.group.protocol import decode_assignment

        d = self.broker.group_coordinator.describe_groups([group_id])[0]
        if d.error != NONE:
            raise error_for(d.error, f"describing group {group_id!r}: {d.error!r}")
        members = []
        for m in d.members:
            assigned = ()
            if m.assignment:
                try:
                    assigned = tuple(sorted(decode_assignment(m.assignment).partitions))
                except ValueError:
                    pass   # not a consumer-protocol assignment
            members.append(MemberDescription(m.member_id, m.client_id, m.client_host,
                                             m.group_instance_id or None, assigned))
        return GroupDescription(d.group_id, d.state, d.protocol_type or "", d.protocol or "",
                                tuple(members))

    def delete_group(self, group_id):
        code = self.broker.group_coordinator.delete_groups([group_id])[group_id]
        if code != NONE:
            raise error_for(code, f"cannot delete group {group_id!r}: {_name(code)}")

    def list_group_offsets(self, group_id):
        """{TopicPartition: OffsetAndMetadata} committed by the group."""
        r = self.broker.group_coordinator.fetch_offsets(group_id)
        if r.error != NONE:
            raise error_for(r.error, f"fetching offsets of group {group_id!r}: {_name(r.error)}")
        return {tp: OffsetAndMetadata(c.offset, c.metadata, c.leader_epoch)
                for tp, c in sorted(r.offsets.items()) if c.offset >= 0}

    def alter_group_offsets(self, group_id, offsets):
        """Commit ``offsets`` ({partition: offset or OffsetAndMetadata}) for a group with no
        active members (as kafka-consumer-groups --reset-offsets)."""
        om = {}
        for tp, value in offsets.items():
            tp = as_topic_partition(tp)
            om[tp] = value if isinstance(value, OffsetAndMetadata) else OffsetAndMetadata(value)
            self.broker.partition(tp.topic, tp.partition)   # UnknownTopicOrPartitionError, clearly
        results = self.broker.group_coordinator.commit_offsets(group_id, "", -1, om)
        failed = {tp: code for tp, code in results.items() if code != NONE}
        if failed:
            tp, code = sorted(failed.items())[0]
            raise error_for(code, f"cannot set offsets of group {group_id!r} "
                                  f"({tp.topic}-{tp.partition}): {_name(code)}")

    # -- lifecycle ----------------------------------------------------------------------------------
    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._owns:
            self.broker.close()

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<EmbeddedClient {self.target!r}>"


def _name(code):
    from klog.errors import error_name
    return error_name(code)
