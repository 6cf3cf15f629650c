"""ElectLeaders (API 43, versions 0-2, flexible from 2): the facts of Kafka's
``ElectLeadersRequest.json`` / ``ElectLeadersResponse.json`` in the DSL of ``schema.py``.
Version 1 added the election type (KIP-460: 0 = PREFERRED, 1 = UNCLEAN) and the top-level
error code. Importing this module (``messages`` does) registers the schemas with the codec."""
from __future__ import annotations

from .messages import REQUESTS, RESPONSES, ApiKey
from .schema import F, Message, Struct
from .types import INT8, INT16, INT32, STRING, Array

ELECT_LEADERS_REQUEST = Message(
    "ElectLeadersRequest", 43, "0-2", 2,
    F("election_type", INT8, "1+"),
    F("topic_partitions", Array(Struct(
        "TopicPartitions",
        F("topic", STRING),
        F("partitions", Array(INT32)),
    )), "0+", nullable="0+"),
    F("timeout_ms", INT32, "0+", default="60000"),
)

ELECT_LEADERS_RESPONSE = Message(
    "ElectLeadersResponse", 43, "0-2", 2,
    F("throttle_time_ms", INT32),
    F("error_code", INT16, "1+"),
    F("replica_election_results", Array(Struct(
        "ReplicaElectionResult",
        F("topic", STRING),
        F("partition_result", Array(Struct(
            "PartitionResult",
            F("partition_id", INT32),
            F("error_code", INT16),
            F("error_message", STRING, "0+", nullable="0+"),
        ))),
    ))),
)

REQUESTS[ELECT_LEADERS_REQUEST.api_key] = ELECT_LEADERS_REQUEST
RESPONSES[ELECT_LEADERS_RESPONSE.api_key] = ELECT_LEADERS_RESPONSE
ApiKey.ELECT_LEADERS = ELECT_LEADERS_REQUEST.api_key
