"""AlterPartitionReassignments (API 45) and ListPartitionReassignments (API 46), version 0,
flexible (KIP-455): the facts of Kafka's ``AlterPartitionReassignmentsRequest.json``,
``...Response.json``, ``ListPartitionReassignmentsRequest.json`` and ``...Response.json`` in
the DSL of ``schema.py``. Replicas null in an alter request cancels that partition's move;
topics null in a list request asks for every move in progress. Importing this module
(``messages`` does) registers the schemas with the codec."""
from __future__ import annotations

from .messages import REQUESTS, RESPONSES, ApiKey
from .schema import F, Message, Struct
from .types import INT16, INT32, STRING, Array

ALTER_PARTITION_REASSIGNMENTS_REQUEST = Message(
    "AlterPartitionReassignmentsRequest", 45, "0", 0,
    F("timeout_ms", INT32, default="60000"),
    F("topics", Array(Struct(
        "ReassignableTopic",
        F("name", STRING),
        F("partitions", Array(Struct(
            "ReassignablePartition",
            F("partition_index", INT32),
            F("replicas", Array(INT32), nullable="0+", default="null"),
        ))),
    ))),
)

ALTER_PARTITION_REASSIGNMENTS_RESPONSE = Message(
    "AlterPartitionReassignmentsResponse", 45, "0", 0,
    F("throttle_time_ms", INT32),
    F("error_code", INT16),
    F("error_message", STRING, nullable="0+"),
    F("responses", Array(Struct(
        "ReassignableTopicResponse",
        F("name", STRING),
        F("partitions", Array(Struct(
            "ReassignablePartitionResponse",
            F("partition_index", INT32),
            F("error_code", INT16),
            F("error_message", STRING, nullable="0+"),
        ))),
    ))),
)

LIST_PARTITION_REASSIGNMENTS_REQUEST = Message(
    "ListPartitionReassignmentsRequest", 46, "0", 0,
    F("timeout_ms", INT32, default="60000"),
    F("topics", Array(Struct(
        "ListPartitionReassignmentsTopics",
        F("name", STRING),
        F("partition_indexes", Array(INT32)),
    )), nullable="0+", default="null"),
)

LIST_PARTITION_REASSIGNMENTS_RESPONSE = Message(
    "ListPartitionReassignmentsResponse", 46, "0", 0,
    F("throttle_time_ms", INT32),
    F("error_code", INT16),
    F("error_message", STRING, nullable="0+"),
    F("topics", Array(Struct(
        "OngoingTopicReassignment",
        F("name", STRING),
        F("partitions", Array(Struct(
            "OngoingPartitionReassignment",
            F("partition_index", INT32),
            F("replicas", Array(INT32)),
            F("adding_replicas", Array(INT32)),
            F("removing_replicas", Array(INT32)),
        ))),
    ))),
)

for _m in (ALTER_PARTITION_REASSIGNMENTS_REQUEST, LIST_PARTITION_REASSIGNMENTS_REQUEST):
    REQUESTS[_m.api_key] = _m
for _m in (ALTER_PARTITION_REASSIGNMENTS_RESPONSE, LIST_PARTITION_REASSIGNMENTS_RESPONSE):
    RESPONSES[_m.api_key] = _m
ApiKey.ALTER_PARTITION_REASSIGNMENTS = ALTER_PARTITION_REASSIGNMENTS_REQUEST.api_key
ApiKey.LIST_PARTITION_REASSIGNMENTS = LIST_PARTITION_REASSIGNMENTS_REQUEST.api_key
