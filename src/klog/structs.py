"""Small value types shared by the consumer, the group coordinator and (later) the wire server.

Named and shaped as in Kafka's Java client (``TopicPartition``, ``OffsetAndMetadata``,
``OffsetAndTimestamp``) and kafka-python's ``kafka.structs``, so code moves between them easily.
"""
from collections import namedtuple

TopicPartition = namedtuple("TopicPartition", "topic partition")
TopicPartition.__doc__ = "One partition of a topic: ``(topic, partition)``."

OffsetAndMetadata = namedtuple("OffsetAndMetadata", "offset metadata leader_epoch",
                               defaults=("", -1))
OffsetAndMetadata.__doc__ = (
    "A committed offset (the next offset to consume), its metadata string and the leader epoch "
    "of the last consumed record (-1: unknown).")

OffsetAndTimestamp = namedtuple("OffsetAndTimestamp", "offset timestamp")
OffsetAndTimestamp.__doc__ = (
    "The answer to ``offsets_for_times``: the first offset whose record timestamp is at or after "
    "the target, and that record's timestamp (ms).")


def as_topic_partition(tp, what="partition"):
    """A TopicPartition from a TopicPartition or a ``(topic, partition)`` pair; TypeError naming
    the bad value otherwise."""
    if isinstance(tp, tuple) and len(tp) == 2 and isinstance(tp[0], str) and \
            isinstance(tp[1], int) and not isinstance(tp[1], bool):
        return tp if type(tp) is TopicPartition else TopicPartition(tp[0], tp[1])
    raise TypeError(f"{what} must be a TopicPartition or a (topic, partition) tuple, not {tp!r}")
