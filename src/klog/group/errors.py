"""Errors of consumer groups and the consumer: Kafka's error codes as constants and exceptions.

The codes are Kafka's (``clients/src/main/java/org/apache/kafka/common/protocol/Errors.java``), so
the wire server puts them in responses unchanged; the coordinator returns codes, and the embedded
consumer turns them into the exceptions below with ``error_for(code, message)``.

The last few classes (NoOffsetForPartitionError, CommitFailedError, IllegalStateError) are the
consumer's own conditions, named after their Java counterparts; they have no wire code.
"""
from klog import errors as _errors
from klog.error_codes import ErrorCode as EC
from klog.errors import KlogError, OffsetOutOfRangeError, UnknownTopicOrPartitionError  # noqa: F401

# Kafka's codes, from the one table (klog.error_codes), under the names the coordinator uses.
NONE = EC.NONE
UNKNOWN_SERVER_ERROR = EC.UNKNOWN_SERVER_ERROR
OFFSET_OUT_OF_RANGE = EC.OFFSET_OUT_OF_RANGE
UNKNOWN_TOPIC_OR_PARTITION = EC.UNKNOWN_TOPIC_OR_PARTITION
OFFSET_METADATA_TOO_LARGE = EC.OFFSET_METADATA_TOO_LARGE
COORDINATOR_LOAD_IN_PROGRESS = EC.COORDINATOR_LOAD_IN_PROGRESS
COORDINATOR_NOT_AVAILABLE = EC.COORDINATOR_NOT_AVAILABLE
NOT_COORDINATOR = EC.NOT_COORDINATOR
ILLEGAL_GENERATION = EC.ILLEGAL_GENERATION
INCONSISTENT_GROUP_PROTOCOL = EC.INCONSISTENT_GROUP_PROTOCOL
INVALID_GROUP_ID = EC.INVALID_GROUP_ID
UNKNOWN_MEMBER_ID = EC.UNKNOWN_MEMBER_ID
INVALID_SESSION_TIMEOUT = EC.INVALID_SESSION_TIMEOUT
REBALANCE_IN_PROGRESS = EC.REBALANCE_IN_PROGRESS
INVALID_COMMIT_OFFSET_SIZE = EC.INVALID_COMMIT_OFFSET_SIZE
NON_EMPTY_GROUP = EC.NON_EMPTY_GROUP
GROUP_ID_NOT_FOUND = EC.GROUP_ID_NOT_FOUND
MEMBER_ID_REQUIRED = EC.MEMBER_ID_REQUIRED
GROUP_MAX_SIZE_REACHED = EC.GROUP_MAX_SIZE_REACHED
FENCED_INSTANCE_ID = EC.FENCED_INSTANCE_ID
GROUP_SUBSCRIBED_TO_TOPIC = EC.GROUP_SUBSCRIBED_TO_TOPIC


class GroupError(KlogError):
    """An error a group or offset API answered with; ``error_code`` is Kafka's error code
    (``code`` is the same, by its older name)."""
    retriable = False

    @property
    def code(self):
        return UNKNOWN_SERVER_ERROR if self.error_code is None else self.error_code

    def __init__(self, message=None):
        super().__init__(message or self.default_message())

    @classmethod
    def default_message(cls):
        return (cls.__doc__ or cls.__name__).strip().splitlines()[0]


class UnknownServerError(GroupError, _errors.UnknownServerError):
    """The coordinator failed unexpectedly (UNKNOWN_SERVER_ERROR)."""
    error_code = UNKNOWN_SERVER_ERROR


class OffsetMetadataTooLargeError(GroupError):
    """The metadata string of a committed offset is too long (OFFSET_METADATA_TOO_LARGE)."""
    error_code = OFFSET_METADATA_TOO_LARGE


class CoordinatorLoadInProgressError(GroupError):
    """The coordinator is still loading offsets and groups (COORDINATOR_LOAD_IN_PROGRESS)."""
    error_code = COORDINATOR_LOAD_IN_PROGRESS
    retriable = True


class CoordinatorNotAvailableError(GroupError):
    """The coordinator is closed, or the group is being deleted (COORDINATOR_NOT_AVAILABLE)."""
    error_code = COORDINATOR_NOT_AVAILABLE
    retriable = True


class NotCoordinatorError(GroupError):
    """This broker is not the coordinator of the group (NOT_COORDINATOR)."""
    error_code = NOT_COORDINATOR
    retriable = True


class IllegalGenerationError(GroupError):
    """The generation id is not the group's current one (ILLEGAL_GENERATION)."""
    error_code = ILLEGAL_GENERATION


class InconsistentGroupProtocolError(GroupError):
    """The member's protocol type or protocols do not match the group's (INCONSISTENT_GROUP_PROTOCOL)."""
    error_code = INCONSISTENT_GROUP_PROTOCOL


class InvalidGroupIdError(GroupError):
    """The group id is empty or missing (INVALID_GROUP_ID)."""
    error_code = INVALID_GROUP_ID


class UnknownMemberIdError(GroupError):
    """The member id is not a member of the group (UNKNOWN_MEMBER_ID)."""
    error_code = UNKNOWN_MEMBER_ID


class InvalidSessionTimeoutError(GroupError):
    """The session timeout is outside the broker's group.min/max.session.timeout.ms (INVALID_SESSION_TIMEOUT)."""
    error_code = INVALID_SESSION_TIMEOUT


class RebalanceInProgressError(GroupError):
    """The group is rebalancing; rejoin (REBALANCE_IN_PROGRESS)."""
    error_code = REBALANCE_IN_PROGRESS
    retriable = True


class InvalidCommitOffsetSizeError(GroupError):
    """The offset commit was too large to store (INVALID_COMMIT_OFFSET_SIZE)."""
    error_code = INVALID_COMMIT_OFFSET_SIZE


class NonEmptyGroupError(GroupError):
    """The group has members, so it cannot be deleted (NON_EMPTY_GROUP)."""
    error_code = NON_EMPTY_GROUP


class GroupIdNotFoundError(GroupError):
    """No such group (GROUP_ID_NOT_FOUND)."""
    error_code = GROUP_ID_NOT_FOUND


class MemberIdRequiredError(GroupError):
    """Join again with the member id the coordinator generated (MEMBER_ID_REQUIRED)."""
    error_code = MEMBER_ID_REQUIRED
    retriable = True


class GroupMaxSizeReachedError(GroupError):
    """The group has reached its maximum size (GROUP_MAX_SIZE_REACHED)."""
    error_code = GROUP_MAX_SIZE_REACHED


class FencedInstanceIdError(GroupError):
    """Another member joined with the same group.instance.id (FENCED_INSTANCE_ID)."""
    error_code = FENCED_INSTANCE_ID


ERRORS = {cls.error_code: cls for cls in (
    UnknownServerError, OffsetMetadataTooLargeError, CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError, NotCoordinatorError, IllegalGenerationError,
    InconsistentGroupProtocolError, InvalidGroupIdError, UnknownMemberIdError,
    InvalidSessionTimeoutError, RebalanceInProgressError, InvalidCommitOffsetSizeError,
    NonEmptyGroupError, GroupIdNotFoundError, MemberIdRequiredError, GroupMaxSizeReachedError,
    FencedInstanceIdError,
)}



error_name = _errors.error_name


def error_for(code, message=None):
    """The exception for a Kafka error code (None for NONE): klog.errors' one table, except that
    a code no class stands for is the coordinator's UnknownServerError here."""
    if code == NONE:
        return None
    if code != UNKNOWN_SERVER_ERROR and int(code) in _errors.ERRORS:
        return _errors.error_for(code, message)
    return UnknownServerError(message or f"coordinator answered {error_name(code)}")


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
