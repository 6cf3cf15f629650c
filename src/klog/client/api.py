"""The client API: what every backend offers, and the values and errors it speaks in.

A backend (klog.client.embedded for a data directory, klog.client.wire for a Kafka-protocol
cluster through confluent-kafka) implements these protocols with the same method names,
arguments, return types and exceptions. Code above the client API (functions, the CLI's ``-b``
mode, ``klog mirror``) is written against these names only. The shared test suite
(tests/client/) runs one body per behaviour against both backends.

Record types are the embedded broker's own: ``ConsumerRecord`` (native, from klog._native.batch),
``RecordMetadata`` / ``BatchMetadata`` (namedtuples from klog.producer), ``TopicPartition``,
``OffsetAndMetadata``, ``OffsetAndTimestamp`` (klog.structs), ``TopicDescription`` /
``PartitionDescription`` (klog.broker). Errors are klog.errors' classes, each carrying its Kafka
error code (``error_code``); the wire backend maps confluent-kafka's ``KafkaError`` onto them.
"""
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Protocol, runtime_checkable

from klog import errors
from klog._native.batch import ConsumerRecord
from klog.broker import PartitionDescription, TopicDescription
from klog.errors import (
    ConfigError, InvalidPartitionsError, InvalidTopicError, KlogError, NetworkError,
    OffsetOutOfRangeError, RecordTooLargeError, RequestTimedOutError, TopicExistsError,
    UnknownTopicOrPartitionError,
)
from klog.group.errors import (
    CommitFailedError, GroupError, GroupIdNotFoundError, IllegalStateError, InvalidGroupIdError,
    NoOffsetForPartitionError, NonEmptyGroupError, RebalanceInProgressError,
)
from klog.producer import BatchMetadata, RecordMetadata
from klog.structs import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__all__ = [
    "Client", "Producer", "Consumer", "RecordFuture",
    "ConsumerRecord", "RecordMetadata", "BatchMetadata", "TopicPartition", "OffsetAndMetadata",
    "OffsetAndTimestamp", "TopicDescription", "PartitionDescription", "GroupListing",
    "GroupDescription", "MemberDescription",
    "errors", "KlogError", "ConfigError", "TopicExistsError", "UnknownTopicOrPartitionError",
    "InvalidTopicError", "InvalidPartitionsError", "OffsetOutOfRangeError", "RecordTooLargeError",
    "RequestTimedOutError", "NetworkError", "GroupError", "CommitFailedError",
    "IllegalStateError", "InvalidGroupIdError", "NoOffsetForPartitionError",
    "RebalanceInProgressError", "GroupIdNotFoundError", "NonEmptyGroupError",
]


# -- group admin values ----------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupListing:
    """One consumer group as ``list_groups`` returns it."""
    group_id: str
    state: str            # Kafka's state name: Empty, Stable, PreparingRebalance, ...
    protocol_type: str    # "consumer" for consumer groups ("" when unknown)


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    client_id: str
    host: str
    group_instance_id: Optional[str]
    assignment: tuple     # TopicPartitions assigned to the member (empty unless Stable)


@dataclass(frozen=True)
class GroupDescription:
    """``describe_group``: an unknown group is described with state ``Dead`` and no members."""
    group_id: str
    state: str
    protocol_type: str
    protocol: str         # the assignor chosen (range, roundrobin, ...), "" unless Stable
    members: tuple        # MemberDescriptions


# -- protocols ---------------------------------------------------------------------------------------
@runtime_checkable
class RecordFuture(Protocol):
    """The outcome of one ``send``."""

    def get(self, timeout: Optional[float] = None) -> RecordMetadata:
        """Wait for the record to be acknowledged: its RecordMetadata, or raise its error
        (a klog.errors class). RequestTimedOutError if ``timeout`` (s) passes first."""

    def done(self) -> bool: ...

    def add_callback(self, callback: Callable, errback: Optional[Callable] = None):
        """``callback(metadata)`` once delivered, or ``errback(exc)``; at once if already done.
        Runs on a client thread (embedded: the sending / flushing thread; wire: the producer's
        delivery-report thread): keep it short, never block on the producer in it."""


@runtime_checkable
class Producer(Protocol):
    def send(self, topic: str, value, key=None, partition: Optional[int] = None,
             timestamp: Optional[int] = None, headers=None) -> RecordFuture:
        """Queue one record (value/key: bytes-like or None; headers: [(str, bytes | None)] or a
        dict). Returns at once with a future."""

    def send_batch(self, topic: str, values, keys=None, partition: Optional[int] = None,
                   timestamps=None) -> list:
        """Many records, waited for: a list of BatchMetadata(topic, partition, base_offset,
        count), one per run of records appended together to one partition."""

    def flush(self, timeout: Optional[float] = None) -> None:
        """Wait until every queued record is acknowledged (or failed)."""

    def partitions_for(self, topic: str) -> list:
        """The partition numbers of ``topic`` (creating it if the broker auto-creates)."""

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush, then release the producer. Idempotent."""


@runtime_checkable
class Consumer(Protocol):
    group_id: Optional[str]

    def subscribe(self, topics, on_assign: Optional[Callable] = None,
                  on_revoke: Optional[Callable] = None) -> None:
        """Join the group for a list of topics or a regular expression (str / re.Pattern,
        matched in full). ``on_assign(partitions)`` / ``on_revoke(partitions)`` run inside
        ``poll``."""

    def assign(self, partitions: Iterable) -> None: ...
    def unsubscribe(self) -> None: ...
    def assignment(self) -> set: ...

    def poll(self, timeout_ms: float = 0, max_records: Optional[int] = None) -> list:
        """Up to ``max_records`` ConsumerRecords, waiting up to ``timeout_ms`` for the first."""

    def seek(self, partition, offset: int) -> None: ...
    def seek_to_beginning(self, partitions=None) -> None: ...
    def seek_to_end(self, partitions=None) -> None: ...
    def position(self, partition) -> int: ...
    def pause(self, partitions) -> None: ...
    def resume(self, partitions) -> None: ...

    def commit(self, offsets: Optional[Mapping] = None) -> None:
        """Synchronous commit of ``offsets`` ({partition: next offset to read or
        OffsetAndMetadata}) or of the current positions."""

    def committed(self, partitions, metadata: bool = False): ...
    def beginning_offsets(self, partitions) -> dict: ...
    def end_offsets(self, partitions) -> dict: ...
    def offsets_for_times(self, timestamps: Mapping) -> dict: ...
    def lag(self, partition=None): ...
    def partitions_for(self, topic: str) -> list: ...
    def close(self) -> None: ...


@runtime_checkable
class Client(Protocol):
    """What ``klog.connect(target)`` returns. A context manager; ``close`` closes what it made."""
    target: str

    def producer(self, config: Optional[Mapping] = None) -> Producer: ...
    def consumer(self, group_id: Optional[str] = None,
                 config: Optional[Mapping] = None) -> Consumer: ...

    # topics
    def create_topic(self, name: str, partitions: Optional[int] = None,
                     config: Optional[Mapping] = None) -> TopicDescription: ...
    def delete_topic(self, name: str) -> None: ...
    def list_topics(self, internal: bool = False) -> list: ...
    def describe_topic(self, name: str) -> TopicDescription: ...
    def topic_overrides(self, name: str) -> dict: ...
    def alter_topic_config(self, name: str, changes: Mapping,
                           validate_only: bool = False) -> None: ...
    def add_partitions(self, name: str, total: int, validate_only: bool = False) -> None: ...

    # groups
    def list_groups(self) -> list: ...
    def describe_group(self, group_id: str) -> GroupDescription: ...
    def delete_group(self, group_id: str) -> None: ...
    def list_group_offsets(self, group_id: str) -> dict: ...
    def alter_group_offsets(self, group_id: str, offsets: Mapping) -> None: ...

    def close(self) -> None: ...
    def __enter__(self): ...
    def __exit__(self, *exc): ...
