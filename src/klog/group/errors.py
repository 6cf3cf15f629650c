"""Errors of consumer groups and the consumer: Kafka's error codes as constants and exceptions.

The codes are Kafka's (``clients/src/main/java/org/apache/kafka/common/protocol/Errors.java``), so
the wire server puts them in responses unchanged; the coordinator returns codes, and the embedded
consumer turns them into the exceptions below with ``error_for(code, message)``.

The last few classes (NoOffsetForPartitionError, CommitFailedError, IllegalStateError) are the
consumer's own conditions, named after their Java counterparts; they have no wire code.
"""
from klog.errors import KlogError, OffsetOutOfRangeError, UnknownTopicOrPartitionError

NONE = 0
UNKNOWN_SERVER_ERROR = -1
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
INVALID_COMMIT_OFFSET_SIZE = 28
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86


class GroupError(KlogError):
    """An error a group or offset API answered with; ``code`` is Kafka's error code."""
    code = UNKNOWN_SERVER_ERROR
    retriable = False

    def __init__(self, message=None):
        super().__init__(message or self.default_message())

    @classmethod
    def default_message(cls):
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0]


class UnknownServerError(GroupError):
    """The coordinator failed unexpectedly (UNKNOWN_SERVER_ERROR)."""
    code = UNKNOWN_SERVER_ERROR


class OffsetMetadataTooLargeError(GroupError):
    """The metadata string of a committed offset is too long (OFFSET_METADATA_TOO_LARGE)."""
    code = OFFSET_METADATA_TOO_LARGE


class CoordinatorLoadInProgressError(GroupError):
    """The coordinator is still loading offsets and groups (COORDINATOR_LOAD_IN_PROGRESS)."""
    code = COORDINATOR_LOAD_IN_PROGRESS
    retriable = True


class CoordinatorNotAvailableError(GroupError):
    """The coordinator is closed, or the group is being deleted (COORDINATOR_NOT_AVAILABLE)."""
    code = COORDINATOR_NOT_AVAILABLE
    retriable = True


class NotCoordinatorError(GroupError):
    """This broker is not the coordinator of the group (NOT_COORDINATOR)."""
    code = NOT_COORDINATOR
    retriable = True


class IllegalGenerationError(GroupError):
    """The generation id is not the group's current one (ILLEGAL_GENERATION)."""
    code = ILLEGAL_GENERATION


class InconsistentGroupProtocolError(GroupError):
    """The member's protocol type or protocols do not match the group's (INCONSISTENT_GROUP_PROTOCOL)."""
    code = INCONSISTENT_GROUP_PROTOCOL


class InvalidGroupIdError(GroupError):
    """The group id is empty or missing (INVALID_GROUP_ID)."""
    code = INVALID_GROUP_ID


class UnknownMemberIdError(GroupError):
    """The member id is not a member of the group (UNKNOWN_MEMBER_ID)."""
    code = UNKNOWN_MEMBER_ID


class InvalidSessionTimeoutError(GroupError):
    """The session timeout is outside the broker's group.min/max.session.timeout.ms (INVALID_SESSION_TIMEOUT)."""
    code = INVALID_SESSION_TIMEOUT


class RebalanceInProgressError(GroupError):
    """The group is rebalancing; rejoin (REBALANCE_IN_PROGRESS)."""
    code = REBALANCE_IN_PROGRESS
    retriable = True


class InvalidCommitOffsetSizeError(GroupError):
    """The offset commit was too large to store (INVALID_COMMIT_OFFSET_SIZE)."""
    code = INVALID_COMMIT_OFFSET_SIZE


class NonEmptyGroupError(GroupError):
    """The group has members, so it cannot be deleted (NON_EMPTY_GROUP)."""
    code = NON_EMPTY_GROUP


class GroupIdNotFoundError(GroupError):
    """No such group (GROUP_ID_NOT_FOUND)."""
    code = GROUP_ID_NOT_FOUND


class MemberIdRequiredError(GroupError):
    """Join again with the member id the coordinator generated (MEMBER_ID_REQUIRED)."""
    code = MEMBER_ID_REQUIRED
    retriable = True


class GroupMaxSizeReachedError(GroupError):
    """The group has reached its maximum size (GROUP_MAX_SIZE_REACHED)."""
    code = GROUP_MAX_SIZE_REACHED


class FencedInstanceIdError(GroupError):
    """Another member joined with the same group.instance.id (FENCED_INSTANCE_ID)."""
    code = FENCED_INSTANCE_ID


ERRORS = {cls.code: cls for cls in (
    UnknownServerError, OffsetMetadataTooLargeError, CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError, NotCoordinatorError, IllegalGenerationError,
    InconsistentGroupProtocolError, InvalidGroupIdError, UnknownMemberIdError,
    InvalidSessionTimeoutError, RebalanceInProgressError, InvalidCommitOffsetSizeError,
    NonEmptyGroupError, GroupIdNotFoundError, MemberIdRequiredError, GroupMaxSizeReachedError,
    FencedInstanceIdError,
)}

NAMES = {
    NONE: "NONE", UNKNOWN_SERVER_ERROR: "UNKNOWN_SERVER_ERROR",
    OFFSET_OUT_OF_RANGE: "OFFSET_OUT_OF_RANGE",
    UNKNOWN_TOPIC_OR_PARTITION: "UNKNOWN_TOPIC_OR_PARTITION",
    OFFSET_METADATA_TOO_LARGE: "OFFSET_METADATA_TOO_LARGE",
    COORDINATOR_LOAD_IN_PROGRESS: "COORDINATOR_LOAD_IN_PROGRESS",
    COORDINATOR_NOT_AVAILABLE: "COORDINATOR_NOT_AVAILABLE", NOT_COORDINATOR: "NOT_COORDINATOR",
    ILLEGAL_GENERATION: "ILLEGAL_GENERATION",
    INCONSISTENT_GROUP_PROTOCOL: "INCONSISTENT_GROUP_PROTOCOL",
    INVALID_GROUP_ID: "INVALID_GROUP_ID", UNKNOWN_MEMBER_ID: "UNKNOWN_MEMBER_ID",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    REBALANCE_IN_PROGRESS: "REBALANCE_IN_PROGRESS",
    INVALID_COMMIT_OFFSET_SIZE: "INVALID_COMMIT_OFFSET_SIZE", NON_EMPTY_GROUP: "NON_EMPTY_GROUP",
    GROUP_ID_NOT_FOUND: "GROUP_ID_NOT_FOUND", MEMBER_ID_REQUIRED: "MEMBER_ID_REQUIRED",
    GROUP_MAX_SIZE_REACHED: "GROUP_MAX_SIZE_REACHED", FENCED_INSTANCE_ID: "FENCED_INSTANCE_ID",
}


def error_name(code):
    return NAMES.get(code, f"error {code}")


def error_for(code, message=None):
    """The exception for a Kafka error code (None for NONE)."""
    if code == NONE:
        return None
    # Two codes are conditions klog already names outside groups; reuse those classes.
    if code == UNKNOWN_TOPIC_OR_PARTITION:
        return UnknownTopicOrPartitionError(message or "unknown topic or partition")
    if code == OFFSET_OUT_OF_RANGE:
        return OffsetOutOfRangeError(message or "offset out of range")
    cls = ERRORS.get(code)
    if cls is None:
        return UnknownServerError(message or f"coordinator answered {error_name(code)}")
    return cls(message)


# -- the consumer's own conditions (no wire code) ------------------------------------------------
class NoOffsetForPartitionError(KlogError):
    """A partition has no committed offset and ``auto.offset.reset`` is ``none``."""

    def __init__(self, partitions, message=None):
        self.partitions = sorted(partitions)
        names = ", ".join(f"{tp.topic}-{tp.partition}" for tp in self.partitions)
        super().__init__(message or (
            f"no committed offset for {names} and auto.offset.reset is 'none': "
            "seek() to an offset, commit one, or set auto.offset.reset to earliest or latest"))


class CommitFailedError(KlogError):
    """An offset commit was refused because this consumer is no longer the owner of the
    partitions: the group rebalanced (or this member was removed) since they were assigned."""


class IllegalStateError(KlogError):
    """The consumer was used in a way its current state does not allow (for example ``assign``
    after ``subscribe``, or ``seek`` on a partition it is not assigned)."""
