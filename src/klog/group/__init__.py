"""Consumer groups: Kafka's classic group protocol for the embedded broker and the wire server.

- ``coordinator``: the broker side (group states, members, timers, offset commits);
- ``membership``: the member side an embedded consumer runs (join/sync, heartbeats);
- ``protocol``: ConsumerProtocol subscription/assignment bytes;
- ``assignors``: range, roundrobin, cooperative-sticky;
- ``offsets``: the ``__consumer_offsets`` topic;
- ``errors``: Kafka's error codes and the matching exceptions.
"""
from klog.group import errors
from klog.group.assignors import (
    CooperativeStickyAssignor, PartitionAssignor, RangeAssignor, RoundRobinAssignor,
)
from klog.group.coordinator import GroupCoordinator
from klog.group.protocol import (
    Assignment, Subscription, decode_assignment, decode_subscription, encode_assignment,
    encode_subscription,
)

__all__ = [
    "errors", "GroupCoordinator", "PartitionAssignor", "RangeAssignor", "RoundRobinAssignor",
    "CooperativeStickyAssignor", "Subscription", "Assignment", "encode_subscription",
    "decode_subscription", "encode_assignment", "decode_assignment",
]
