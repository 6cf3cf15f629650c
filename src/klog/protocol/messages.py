"""Request and response schemas for the APIs klog serves.

Field lists, version ranges and first flexible versions are the facts of Apache
Kafka's message definitions (``clients/src/main/resources/common/message/*.json``,
Kafka 4.x), restated in the DSL of ``schema.py`` and clipped to the versions klog
implements.  Names are the snake_case of Kafka's field names (as kafka-python uses).

Record batches (``RECORDS`` fields in Produce and Fetch) stay opaque: decoded as
memoryview slices of the frame, and encoded by reference when large, so a fetch
response can point at mapped segment bytes without copying.

| API (key)                    | klog versions | flexible from |
|------------------------------|---------------|---------------|
| Produce (0)                  | 3-9           | 9             |
| Fetch (1)                    | 4-16          | 12            |
| ListOffsets (2)              | 1-7           | 6             |
| Metadata (3)                 | 0-12          | 9             |
| OffsetCommit (8)             | 2-8           | 8             |
| OffsetFetch (9)              | 1-8           | 6             |
| FindCoordinator (10)         | 0-4           | 3             |
| JoinGroup (11)               | 0-7           | 6             |
| Heartbeat (12)               | 0-4           | 4             |
| LeaveGroup (13)              | 0-4           | 4             |
| SyncGroup (14)               | 0-5           | 4             |
| DescribeGroups (15)          | 0-5           | 5             |
| ListGroups (16)              | 0-4           | 3             |
| ApiVersions (18)             | 0-3           | 3 (response header stays v0) |
| CreateTopics (19)            | 2-7           | 5             |
| DeleteTopics (20)            | 1-6           | 4             |
| DeleteRecords (21)           | 0-2           | 2             |
| InitProducerId (22)          | 0-4           | 2             |
| OffsetForLeaderEpoch (23)    | 2-4           | 4             |
| DescribeConfigs (32)         | 1-4           | 4             |
| DeleteGroups (42)            | 0-2           | 2             |
| IncrementalAlterConfigs (44) | 0-1           | 1             |
"""
from __future__ import annotations

from .schema import F, Message, Struct
from .types import (  # noqa: F401
    BOOL, BYTES, FLOAT64, INT8, INT16, INT32, INT64, RECORDS, STRING, UINT16, UUID, Array,
)

API_VERSIONS_REQUEST = Message(
    "ApiVersionsRequest", 18, "0-3", 3,
    F("client_software_name", STRING, "3+"),
    F("client_software_version", STRING, "3+"),
)

API_VERSIONS_RESPONSE = Message(
    "ApiVersionsResponse", 18, "0-3", 3,
    F("error_code", INT16),
    F("api_keys", Array(Struct(
        "ApiVersion",
        F("api_key", INT16),
        F("min_version", INT16),
        F("max_version", INT16),
    ))),
    F("throttle_time_ms", INT32, "1+"),
    F("supported_features", Array(Struct(
        "SupportedFeatureKey",
        F("name", STRING, "3+"),
        F("min_version", INT16, "3+"),
        F("max_version", INT16, "3+"),
    )), "3+", tag=0),
    F("finalized_features_epoch", INT64, "3+", tag=1, default="-1"),
    F("finalized_features", Array(Struct(
        "FinalizedFeatureKey",
        F("name", STRING, "3+"),
        F("max_version_level", INT16, "3+"),
        F("min_version_level", INT16, "3+"),
    )), "3+", tag=2),
    F("zk_migration_ready", BOOL, "3+", tag=3),
)

METADATA_REQUEST = Message(
    "MetadataRequest", 3, "0-12", 9,
    F("topics", Array(Struct(
        "MetadataRequestTopic",
        F("topic_id", UUID, "10+"),
        F("name", STRING, "0+", nullable="10+"),
    )), "0+", nullable="1+"),
    F("allow_auto_topic_creation", BOOL, "4+", default="true"),
    F("include_cluster_authorized_operations", BOOL, "8-10"),
    F("include_topic_authorized_operations", BOOL, "8+"),
)

METADATA_RESPONSE = Message(
    "MetadataResponse", 3, "0-12", 9,
    F("throttle_time_ms", INT32, "3+"),
    F("brokers", Array(Struct(
        "MetadataResponseBroker",
        F("node_id", INT32),
        F("host", STRING),
        F("port", INT32),
        F("rack", STRING, "1+", nullable="1+", default="null"),
    ))),
    F("cluster_id", STRING, "2+", nullable="2+", default="null"),
    F("controller_id", INT32, "1+", default="-1"),
    F("topics", Array(Struct(
        "MetadataResponseTopic",
        F("error_code", INT16),
        F("name", STRING, "0+", nullable="12+"),
        F("topic_id", UUID, "10+"),
        F("is_internal", BOOL, "1+"),
        F("partitions", Array(Struct(
            "MetadataResponsePartition",
            F("error_code", INT16),
            F("partition_index", INT32),
            F("leader_id", INT32),
            F("leader_epoch", INT32, "7+", default="-1"),
            F("replica_nodes", Array(INT32)),
            F("isr_nodes", Array(INT32)),
            F("offline_replicas", Array(INT32), "5+"),
        ))),
        F("topic_authorized_operations", INT32, "8+", default="-2147483648"),
    ))),
    F("cluster_authorized_operations", INT32, "8-10", default="-2147483648"),
)

PRODUCE_REQUEST = Message(
    "ProduceRequest", 0, "3-9", 9,
    F("transactional_id", STRING, "3+", nullable="3+", default="null"),
    F("acks", INT16),
    F("timeout_ms", INT32),
    F("topic_data", Array(Struct(
        "TopicProduceData",
        F("name", STRING),
        F("partition_data", Array(Struct(
            "PartitionProduceData",
            F("index", INT32),
            F("records", RECORDS, "0+", nullable="0+"),
        ))),
    ))),
)

PRODUCE_RESPONSE = Message(
    "ProduceResponse", 0, "3-9", 9,
    F("responses", Array(Struct(
        "TopicProduceResponse",
        F("name", STRING),
        F("partition_responses", Array(Struct(
            "PartitionProduceResponse",
            F("index", INT32),
            F("error_code", INT16),
            F("base_offset", INT64),
            F("log_append_time_ms", INT64, "2+", default="-1"),
            F("log_start_offset", INT64, "5+", default="-1"),
            F("record_errors", Array(Struct(
                "BatchIndexAndErrorMessage",
                F("batch_index", INT32, "8+"),
                F("batch_index_error_message", STRING, "8+", nullable="8+", default="null"),
            )), "8+"),
            F("error_message", STRING, "8+", nullable="8+", default="null"),
        ))),
    ))),
    F("throttle_time_ms", INT32, "1+"),
)

FETCH_REQUEST = Message(
    "FetchRequest", 1, "4-16", 12,
    F("cluster_id", STRING, "12+", nullable="12+", tag=0, default="null"),
    F("replica_id", INT32, "0-14", default="-1"),
    F("replica_state", Struct(
        "ReplicaState",
        F("replica_id", INT32, "15+", default="-1"),
        F("replica_epoch", INT64, "15+", default="-1"),
    ), "15+", tag=1),
    F("max_wait_ms", INT32),
    F("min_bytes", INT32),
    F("max_bytes", INT32, "3+", default="0x7fffffff"),
    F("isolation_level", INT8, "4+"),
    F("session_id", INT32, "7+"),
    F("session_epoch", INT32, "7+", default="-1"),
    F("topics", Array(Struct(
        "FetchTopic",
        F("topic", STRING, "0-12"),
        F("topic_id", UUID, "13+"),
        F("partitions", Array(Struct(
            "FetchPartition",
            F("partition", INT32),
            F("current_leader_epoch", INT32, "9+", default="-1"),
            F("fetch_offset", INT64),
            F("last_fetched_epoch", INT32, "12+", default="-1"),
            F("log_start_offset", INT64, "5+", default="-1"),
            F("partition_max_bytes", INT32),
        ))),
    ))),
    F("forgotten_topics_data", Array(Struct(
        "ForgottenTopic",
        F("topic", STRING, "7-12"),
        F("topic_id", UUID, "13+"),
        F("partitions", Array(INT32), "7+"),
    )), "7+"),
    F("rack_id", STRING, "11+"),
)

FETCH_RESPONSE = Message(
    "FetchResponse", 1, "4-16", 12,
    F("throttle_time_ms", INT32, "1+"),
    F("error_code", INT16, "7+"),
    F("session_id", INT32, "7+"),
    F("responses", Array(Struct(
        "FetchableTopicResponse",
        F("topic", STRING, "0-12"),
        F("topic_id", UUID, "13+"),
        F("partitions", Array(Struct(
            "PartitionData",
            F("partition_index", INT32),
            F("error_code", INT16),
            F("high_watermark", INT64),
            F("last_stable_offset", INT64, "4+", default="-1"),
            F("log_start_offset", INT64, "5+", default="-1"),
            F("diverging_epoch", Struct(
                "EpochEndOffset",
                F("epoch", INT32, "12+", default="-1"),
                F("end_offset", INT64, "12+", default="-1"),
            ), "12+", tag=0),
            F("current_leader", Struct(
                "LeaderIdAndEpoch",
                F("leader_id", INT32, "12+", default="-1"),
                F("leader_epoch", INT32, "12+", default="-1"),
            ), "12+", tag=1),
            F("snapshot_id", Struct(
                "SnapshotId",
                F("end_offset", INT64, "0+", default="-1"),
                F("epoch", INT32, "0+", default="-1"),
            ), "12+", tag=2),
            F("aborted_transactions", Array(Struct(
                "AbortedTransaction",
                F("producer_id", INT64, "4+"),
                F("first_offset", INT64, "4+"),
            )), "4+", nullable="4+"),
            F("preferred_read_replica", INT32, "11+", default="-1"),
            F("records", RECORDS, "0+", nullable="0+"),
        ))),
    ))),
    F("node_endpoints", Array(Struct(
        "NodeEndpoint",
        F("node_id", INT32, "16+"),
        F("host", STRING, "16+"),
        F("port", INT32, "16+"),
        F("rack", STRING, "16+", nullable="16+", default="null"),
    )), "16+", tag=0),
)

LIST_OFFSETS_REQUEST = Message(
    "ListOffsetsRequest", 2, "1-8", 6,
    F("replica_id", INT32),
    F("isolation_level", INT8, "2+"),
    F("topics", Array(Struct(
        "ListOffsetsTopic",
        F("name", STRING),
        F("partitions", Array(Struct(
            "ListOffsetsPartition",
            F("partition_index", INT32),
            F("current_leader_epoch", INT32, "4+", default="-1"),
            F("timestamp", INT64),
        ))),
    ))),
)

LIST_OFFSETS_RESPONSE = Message(
    "ListOffsetsResponse", 2, "1-8", 6,
    F("throttle_time_ms", INT32, "2+"),
    F("topics", Array(Struct(
        "ListOffsetsTopicResponse",
        F("name", STRING),
        F("partitions", Array(Struct(
            "ListOffsetsPartitionResponse",
            F("partition_index", INT32),
            F("error_code", INT16),
            F("timestamp", INT64, "1+", default="-1"),
            F("offset", INT64, "1+", default="-1"),
            F("leader_epoch", INT32, "4+", default="-1"),
        ))),
    ))),
)

FIND_COORDINATOR_REQUEST = Message(
    "FindCoordinatorRequest", 10, "0-4", 3,
    F("key", STRING, "0-3"),
    F("key_type", INT8, "1+"),
    F("coordinator_keys", Array(STRING), "4+"),
)

FIND_COORDINATOR_RESPONSE = Message(
    "FindCoordinatorResponse", 10, "0-4", 3,
    F("throttle_time_ms", INT32, "1+"),
    F("error_code", INT16, "0-3"),
    F("error_message", STRING, "1-3", nullable="1-3"),
    F("node_id", INT32, "0-3"),
    F("host", STRING, "0-3"),
    F("port", INT32, "0-3"),
    F("coordinators", Array(Struct(
        "Coordinator",
        F("key", STRING, "4+"),
        F("node_id", INT32, "4+"),
        F("host", STRING, "4+"),
        F("port", INT32, "4+"),
        F("error_code", INT16, "4+"),
        F("error_message", STRING, "4+", nullable="4+"),
    )), "4+"),
)

JOIN_GROUP_REQUEST = Message(
    "JoinGroupRequest", 11, "0-7", 6,
    F("group_id", STRING),
    F("session_timeout_ms", INT32),
    F("rebalance_timeout_ms", INT32, "1+", default="-1"),
    F("member_id", STRING),
    F("group_instance_id", STRING, "5+", nullable="5+", default="null"),
    F("protocol_type", STRING),
    F("protocols", Array(Struct(
        "JoinGroupRequestProtocol",
        F("name", STRING),
        F("metadata", BYTES),
    ))),
)

JOIN_GROUP_RESPONSE = Message(
    "JoinGroupResponse", 11, "0-7", 6,
    F("throttle_time_ms", INT32, "2+"),
    F("error_code", INT16),
    F("generation_id", INT32, "0+", default="-1"),
    F("protocol_type", STRING, "7+", nullable="7+", default="null"),
    F("protocol_name", STRING, "0+", nullable="7+"),
    F("leader", STRING),
    F("member_id", STRING),
    F("members", Array(Struct(
        "JoinGroupResponseMember",
        F("member_id", STRING),
        F("group_instance_id", STRING, "5+", nullable="5+", default="null"),
        F("metadata", BYTES),
    ))),
)

SYNC_GROUP_REQUEST = Message(
    "SyncGroupRequest", 14, "0-5", 4,
    F("group_id", STRING),
    F("generation_id", INT32),
    F("member_id", STRING),
    F("group_instance_id", STRING, "3+", nullable="3+", default="null"),
    F("protocol_type", STRING, "5+", nullable="5+", default="null"),
    F("protocol_name", STRING, "5+", nullable="5+", default="null"),
    F("assignments", Array(Struct(
        "SyncGroupRequestAssignment",
        F("member_id", STRING),
        F("assignment", BYTES),
    ))),
)

SYNC_GROUP_RESPONSE = Message(
    "SyncGroupResponse", 14, "0-5", 4,
    F("throttle_time_ms", INT32, "1+"),
    F("error_code", INT16),
    F("protocol_type", STRING, "5+", nullable="5+", default="null"),
    F("protocol_name", STRING, "5+", nullable="5+", default="null"),
    F("assignment", BYTES),
)

HEARTBEAT_REQUEST = Message(
    "HeartbeatRequest", 12, "0-4", 4,
    F("group_id", STRING),
    F("generation_id", INT32),
    F("member_id", STRING),
    F("group_instance_id", STRING, "3+", nullable="3+", default="null"),
)

HEARTBEAT_RESPONSE = Message(
    "HeartbeatResponse", 12, "0-4", 4,
    F("throttle_time_ms", INT32, "1+"),
    F("error_code", INT16),
)

LEAVE_GROUP_REQUEST = Message(
    "LeaveGroupRequest", 13, "0-4", 4,
    F("group_id", STRING),
    F("member_id", STRING, "0-2"),
    F("members", Array(Struct(
        "MemberIdentity",
        F("member_id", STRING, "3+"),
        F("group_instance_id", STRING, "3+", nullable="3+", default="null"),
    )), "3+"),
)

LEAVE_GROUP_RESPONSE = Message(
    "LeaveGroupResponse", 13, "0-4", 4,
    F("throttle_time_ms", INT32, "1+"),
    F("error_code", INT16),
    F("members", Array(Struct(
        "MemberResponse",
        F("member_id", STRING, "3+"),
        F("group_instance_id", STRING, "3+", nullable="3+"),
        F("error_code", INT16, "3+"),
    )), "3+"),
)

OFFSET_COMMIT_REQUEST = Message(
    "OffsetCommitRequest", 8, "2-8", 8,
    F("group_id", STRING),
    F("generation_id_or_member_epoch", INT32, "1+", default="-1"),
    F("member_id", STRING, "1+"),
    F("group_instance_id", STRING, "7+", nullable="7+", default="null"),
    F("retention_time_ms", INT64, "2-4", default="-1"),
    F("topics", Array(Struct(
        "OffsetCommitRequestTopic",
        F("name", STRING),
        F("partitions", Array(Struct(
            "OffsetCommitRequestPartition",
            F("partition_index", INT32),
            F("committed_offset", INT64),
            F("committed_leader_epoch", INT32, "6+", default="-1"),
            F("committed_metadata", STRING, "0+", nullable="0+"),
        ))),
    ))),
)

OFFSET_COMMIT_RESPONSE = Message(
    "OffsetCommitResponse", 8, "2-8", 8,
    F("throttle_time_ms", INT32, "3+"),
    F("topics", Array(Struct(
        "OffsetCommitResponseTopic",
        F("name", STRING),
        F("partitions", Array(Struct(
            "OffsetCommitResponsePartition",
            F("partition_index", INT32),
            F("error_code", INT16),
        ))),
    ))),
)

OFFSET_FETCH_REQUEST = Message(
    "OffsetFetchRequest", 9, "1-8", 6,
    F("group_id", STRING, "0-7"),
    F("topics", Array(Struct(
        "OffsetFetchRequestTopic",
        F("name", STRING, "0-7"),
        F("partition_indexes", Array(INT32), "0-7"),
    )), "0-7", nullable="2-7"),
    F("groups", Array(Struct(
        "OffsetFetchRequestGroup",
        F("group_id", STRING, "8+"),
        F("topics", Array(Struct(
            "OffsetFetchRequestTopics",
            F("name", STRING, "8+"),
            F("partition_indexes", Array(INT32), "8+"),
        )), "8+", nullable="8+"),
    )), "8+"),
    F("require_stable", BOOL, "7+"),
)

OFFSET_FETCH_RESPONSE = Message(
    "OffsetFetchResponse", 9, "1-8", 6,
    F("throttle_time_ms", INT32, "3+"),
    F("topics", Array(Struct(
        "OffsetFetchResponseTopic",
        F("name", STRING, "0-7"),
        F("partitions", Array(Struct(
            "OffsetFetchResponsePartition",
            F("partition_index", INT32, "0-7"),
            F("committed_offset", INT64, "0-7"),
            F("committed_leader_epoch", INT32, "5-7", default="-1"),
            F("metadata", STRING, "0-7", nullable="0-7"),
            F("error_code", INT16, "0-7"),
        )), "0-7"),
    )), "0-7"),
    F("error_code", INT16, "2-7"),
    F("groups", Array(Struct(
        "OffsetFetchResponseGroup",
        F("group_id", STRING, "8+"),
        F("topics", Array(Struct(
            "OffsetFetchResponseTopics",
            F("name", STRING, "8+"),
            F("partitions", Array(Struct(
                "OffsetFetchResponsePartitions",
                F("partition_index", INT32, "8+"),
                F("committed_offset", INT64, "8+"),
                F("committed_leader_epoch", INT32, "8+", default="-1"),
                F("metadata", STRING, "8+", nullable="8+"),
                F("error_code", INT16, "8+"),
            )), "8+"),
        )), "8+"),
        F("error_code", INT16, "8+"),
    )), "8+"),
)

LIST_GROUPS_REQUEST = Message(
    "ListGroupsRequest", 16, "0-4", 3,
    F("states_filter", Array(STRING), "4+"),
)

LIST_GROUPS_RESPONSE = Message(
    "ListGroupsResponse", 16, "0-4", 3,
    F("throttle_time_ms", INT32, "1+"),
    F("error_code", INT16),
    F("groups", Array(Struct(
        "ListedGroup",
        F("group_id", STRING),
        F("protocol_type", STRING),
        F("group_state", STRING, "4+"),
    ))),
)

DESCRIBE_GROUPS_REQUEST = Message(
    "DescribeGroupsRequest", 15, "0-5", 5,
    F("groups", Array(STRING)),
    F("include_authorized_operations", BOOL, "3+"),
)

DESCRIBE_GROUPS_RESPONSE = Message(
    "DescribeGroupsResponse", 15, "0-5", 5,
    F("throttle_time_ms", INT32, "1+"),
    F("groups", Array(Struct(
        "DescribedGroup",
        F("error_code", INT16),
        F("group_id", STRING),
        F("group_state", STRING),
        F("protocol_type", STRING),
        F("protocol_data", STRING),
        F("members", Array(Struct(
            "DescribedGroupMember",
            F("member_id", STRING),
            F("group_instance_id", STRING, "4+", nullable="4+", default="null"),
            F("client_id", STRING),
            F("client_host", STRING),
            F("member_metadata", BYTES),
            F("member_assignment", BYTES),
        ))),
        F("authorized_operations", INT32, "3+", default="-2147483648"),
    ))),
)

CREATE_TOPICS_REQUEST = Message(
    "CreateTopicsRequest", 19, "2-7", 5,
    F("topics", Array(Struct(
        "CreatableTopic",
        F("name", STRING),
        F("num_partitions", INT32),
        F("replication_factor", INT16),
        F("assignments", Array(Struct(
            "CreatableReplicaAssignment",
            F("partition_index", INT32),
            F("broker_ids", Array(INT32)),
        ))),
        F("configs", Array(Struct(
            "CreatableTopicConfig",
            F("name", STRING),
            F("value", STRING, "0+", nullable="0+"),
        ))),
    ))),
    F("timeout_ms", INT32, "0+", default="60000"),
    F("validate_only", BOOL, "1+"),
)

CREATE_TOPICS_RESPONSE = Message(
    "CreateTopicsResponse", 19, "2-7", 5,
    F("throttle_time_ms", INT32, "2+"),
    F("topics", Array(Struct(
        "CreatableTopicResult",
        F("name", STRING),
        F("topic_id", UUID, "7+"),
        F("error_code", INT16),
        F("error_message", STRING, "1+", nullable="0+"),
        F("topic_config_error_code", INT16, "5+", tag=0),
        F("num_partitions", INT32, "5+", default="-1"),
        F("replication_factor", INT16, "5+", default="-1"),
        F("configs", Array(Struct(
            "CreatableTopicConfigs",
            F("name", STRING, "5+"),
            F("value", STRING, "5+", nullable="5+"),
            F("read_only", BOOL, "5+"),
            F("config_source", INT8, "5+", default="-1"),
            F("is_sensitive", BOOL, "5+"),
        )), "5+", nullable="5+"),
    ))),
)

DELETE_TOPICS_REQUEST = Message(
    "DeleteTopicsRequest", 20, "1-6", 4,
    F("topics", Array(Struct(
        "DeleteTopicState",
        F("name", STRING, "6+", nullable="6+", default="null"),
        F("topic_id", UUID, "6+"),
    )), "6+"),
    F("topic_names", Array(STRING), "0-5"),
    F("timeout_ms", INT32),
)

DELETE_TOPICS_RESPONSE = Message(
    "DeleteTopicsResponse", 20, "1-6", 4,
    F("throttle_time_ms", INT32, "1+"),
    F("responses", Array(Struct(
        "DeletableTopicResult",
        F("name", STRING, "0+", nullable="6+"),
        F("topic_id", UUID, "6+"),
        F("error_code", INT16),
        F("error_message", STRING, "5+", nullable="5+", default="null"),
    ))),
)

DESCRIBE_CONFIGS_REQUEST = Message(
    "DescribeConfigsRequest", 32, "1-4", 4,
    F("resources", Array(Struct(
        "DescribeConfigsResource",
        F("resource_type", INT8),
        F("resource_name", STRING),
        F("configuration_keys", Array(STRING), "0+", nullable="0+"),
    ))),
    F("include_synonyms", BOOL, "1+"),
    F("include_documentation", BOOL, "3+"),
)

DESCRIBE_CONFIGS_RESPONSE = Message(
    "DescribeConfigsResponse", 32, "1-4", 4,
    F("throttle_time_ms", INT32),
    F("results", Array(Struct(
        "DescribeConfigsResult",
        F("error_code", INT16),
        F("error_message", STRING, "0+", nullable="0+"),
        F("resource_type", INT8),
        F("resource_name", STRING),
        F("configs", Array(Struct(
            "DescribeConfigsResourceResult",
            F("name", STRING),
            F("value", STRING, "0+", nullable="0+"),
            F("read_only", BOOL),
            F("config_source", INT8, "1+", default="-1"),
            F("is_sensitive", BOOL),
            F("synonyms", Array(Struct(
                "DescribeConfigsSynonym",
                F("name", STRING, "1+"),
                F("value", STRING, "1+", nullable="0+"),
                F("source", INT8, "1+"),
            )), "1+"),
            F("config_type", INT8, "3+"),
            F("documentation", STRING, "3+", nullable="0+"),
        ))),
    ))),
)

INIT_PRODUCER_ID_REQUEST = Message(
    "InitProducerIdRequest", 22, "0-4", 2,
    F("transactional_id", STRING, "0+", nullable="0+"),
    F("transaction_timeout_ms", INT32),
    F("producer_id", INT64, "3+", default="-1"),
    F("producer_epoch", INT16, "3+", default="-1"),
)

INIT_PRODUCER_ID_RESPONSE = Message(
    "InitProducerIdResponse", 22, "0-4", 2,
    F("throttle_time_ms", INT32),
    F("error_code", INT16),
    F("producer_id", INT64, "0+", default="-1"),
    F("producer_epoch", INT16),
)

DELETE_RECORDS_REQUEST = Message(
    "DeleteRecordsRequest", 21, "0-2", 2,
    F("topics", Array(Struct(
        "DeleteRecordsTopic",
        F("name", STRING),
        F("partitions", Array(Struct(
            "DeleteRecordsPartition",
            F("partition_index", INT32),
            F("offset", INT64),
        ))),
    ))),
    F("timeout_ms", INT32),
)

DELETE_RECORDS_RESPONSE = Message(
    "DeleteRecordsResponse", 21, "0-2", 2,
    F("throttle_time_ms", INT32),
    F("topics", Array(Struct(
        "DeleteRecordsTopicResult",
        F("name", STRING),
        F("partitions", Array(Struct(
            "DeleteRecordsPartitionResult",
            F("partition_index", INT32),
            F("low_watermark", INT64),
            F("error_code", INT16),
        ))),
    ))),
)

DELETE_GROUPS_REQUEST = Message(
    "DeleteGroupsRequest", 42, "0-2", 2,
    F("groups_names", Array(STRING)),
)

DELETE_GROUPS_RESPONSE = Message(
    "DeleteGroupsResponse", 42, "0-2", 2,
    F("throttle_time_ms", INT32),
    F("results", Array(Struct(
        "DeletableGroupResult",
        F("group_id", STRING),
        F("error_code", INT16),
    ))),
)

INCREMENTAL_ALTER_CONFIGS_REQUEST = Message(
    "IncrementalAlterConfigsRequest", 44, "0-1", 1,
    F("resources", Array(Struct(
        "AlterConfigsResource",
        F("resource_type", INT8),
        F("resource_name", STRING),
        F("configs", Array(Struct(
            "AlterableConfig",
            F("name", STRING),
            F("config_operation", INT8),
            F("value", STRING, "0+", nullable="0+"),
        ))),
    ))),
    F("validate_only", BOOL),
)

INCREMENTAL_ALTER_CONFIGS_RESPONSE = Message(
    "IncrementalAlterConfigsResponse", 44, "0-1", 1,
    F("throttle_time_ms", INT32),
    F("responses", Array(Struct(
        "AlterConfigsResourceResponse",
        F("error_code", INT16),
        F("error_message", STRING, "0+", nullable="0+"),
        F("resource_type", INT8),
        F("resource_name", STRING),
    ))),
)

OFFSET_FOR_LEADER_EPOCH_REQUEST = Message(
    "OffsetForLeaderEpochRequest", 23, "2-4", 4,
    F("replica_id", INT32, "3+", default="-2"),
    F("topics", Array(Struct(
        "OffsetForLeaderTopic",
        F("topic", STRING),
        F("partitions", Array(Struct(
            "OffsetForLeaderPartition",
            F("partition", INT32),
            F("current_leader_epoch", INT32, "2+", default="-1"),
            F("leader_epoch", INT32),
        ))),
    ))),
)

OFFSET_FOR_LEADER_EPOCH_RESPONSE = Message(
    "OffsetForLeaderEpochResponse", 23, "2-4", 4,
    F("throttle_time_ms", INT32, "2+"),
    F("topics", Array(Struct(
        "OffsetForLeaderTopicResult",
        F("topic", STRING),
        F("partitions", Array(Struct(
            "EpochEndOffset",
            F("error_code", INT16),
            F("partition", INT32),
            F("leader_epoch", INT32, "1+", default="-1"),
            F("end_offset", INT64, "0+", default="-1"),
        ))),
    ))),
)


REQUESTS: dict[int, Message] = {m.api_key: m for m in (
    API_VERSIONS_REQUEST,
    METADATA_REQUEST,
    PRODUCE_REQUEST,
    FETCH_REQUEST,
    LIST_OFFSETS_REQUEST,
    FIND_COORDINATOR_REQUEST,
    JOIN_GROUP_REQUEST,
    SYNC_GROUP_REQUEST,
    HEARTBEAT_REQUEST,
    LEAVE_GROUP_REQUEST,
    OFFSET_COMMIT_REQUEST,
    OFFSET_FETCH_REQUEST,
    LIST_GROUPS_REQUEST,
    DESCRIBE_GROUPS_REQUEST,
    CREATE_TOPICS_REQUEST,
    DELETE_TOPICS_REQUEST,
    DESCRIBE_CONFIGS_REQUEST,
    INIT_PRODUCER_ID_REQUEST,
    DELETE_RECORDS_REQUEST,
    DELETE_GROUPS_REQUEST,
    INCREMENTAL_ALTER_CONFIGS_REQUEST,
    OFFSET_FOR_LEADER_EPOCH_REQUEST,
)}
RESPONSES: dict[int, Message] = {m.api_key: m for m in (
    API_VERSIONS_RESPONSE,
    METADATA_RESPONSE,
    PRODUCE_RESPONSE,
    FETCH_RESPONSE,
    LIST_OFFSETS_RESPONSE,
    FIND_COORDINATOR_RESPONSE,
    JOIN_GROUP_RESPONSE,
    SYNC_GROUP_RESPONSE,
    HEARTBEAT_RESPONSE,
    LEAVE_GROUP_RESPONSE,
    OFFSET_COMMIT_RESPONSE,
    OFFSET_FETCH_RESPONSE,
    LIST_GROUPS_RESPONSE,
    DESCRIBE_GROUPS_RESPONSE,
    CREATE_TOPICS_RESPONSE,
    DELETE_TOPICS_RESPONSE,
    DESCRIBE_CONFIGS_RESPONSE,
    INIT_PRODUCER_ID_RESPONSE,
    DELETE_RECORDS_RESPONSE,
    DELETE_GROUPS_RESPONSE,
    INCREMENTAL_ALTER_CONFIGS_RESPONSE,
    OFFSET_FOR_LEADER_EPOCH_RESPONSE,
)}


class ApiKey:
    """API keys of the implemented APIs, by name."""
    API_VERSIONS = API_VERSIONS_REQUEST.api_key
    METADATA = METADATA_REQUEST.api_key
    PRODUCE = PRODUCE_REQUEST.api_key
    FETCH = FETCH_REQUEST.api_key
    LIST_OFFSETS = LIST_OFFSETS_REQUEST.api_key
    FIND_COORDINATOR = FIND_COORDINATOR_REQUEST.api_key
    JOIN_GROUP = JOIN_GROUP_REQUEST.api_key
    SYNC_GROUP = SYNC_GROUP_REQUEST.api_key
    HEARTBEAT = HEARTBEAT_REQUEST.api_key
    LEAVE_GROUP = LEAVE_GROUP_REQUEST.api_key
    OFFSET_COMMIT = OFFSET_COMMIT_REQUEST.api_key
    OFFSET_FETCH = OFFSET_FETCH_REQUEST.api_key
    LIST_GROUPS = LIST_GROUPS_REQUEST.api_key
    DESCRIBE_GROUPS = DESCRIBE_GROUPS_REQUEST.api_key
    CREATE_TOPICS = CREATE_TOPICS_REQUEST.api_key
    DELETE_TOPICS = DELETE_TOPICS_REQUEST.api_key
    DESCRIBE_CONFIGS = DESCRIBE_CONFIGS_REQUEST.api_key
    INIT_PRODUCER_ID = INIT_PRODUCER_ID_REQUEST.api_key
    DELETE_RECORDS = DELETE_RECORDS_REQUEST.api_key
    DELETE_GROUPS = DELETE_GROUPS_REQUEST.api_key
    INCREMENTAL_ALTER_CONFIGS = INCREMENTAL_ALTER_CONFIGS_REQUEST.api_key
    OFFSET_FOR_LEADER_EPOCH = OFFSET_FOR_LEADER_EPOCH_REQUEST.api_key


def request_schema(api_key: int) -> Message | None:
    return REQUESTS.get(api_key)


def response_schema(api_key: int) -> Message | None:
    return RESPONSES.get(api_key)


# -- between brokers (ZooKeeper mode; Kafka 3.x message definitions) --------------------------------
# | ControlledShutdown (7) | 0-3 | 3 | v0's request header has no client id (header v0) |
CONTROLLED_SHUTDOWN_REQUEST = Message(
    "ControlledShutdownRequest", 7, "0-3", 3,
    F("broker_id", INT32),
    F("broker_epoch", INT64, "2+", default="-1"),
)

CONTROLLED_SHUTDOWN_RESPONSE = Message(
    "ControlledShutdownResponse", 7, "0-3", 3,
    F("error_code", INT16),
    F("remaining_partitions", Array(Struct(
        "RemainingPartition",
        F("topic_name", STRING),
        F("partition_index", INT32),
    ))),
)

REQUESTS[CONTROLLED_SHUTDOWN_REQUEST.api_key] = CONTROLLED_SHUTDOWN_REQUEST
RESPONSES[CONTROLLED_SHUTDOWN_RESPONSE.api_key] = CONTROLLED_SHUTDOWN_RESPONSE
ApiKey.CONTROLLED_SHUTDOWN = CONTROLLED_SHUTDOWN_REQUEST.api_key


# -- admin APIs (Kafka 4.x message definitions) ------------------------------------------------------
# | AlterConfigs (33)      | 0-2 | 2  |   | DescribeLogDirs (35)   | 1-4 | 2  |
# | CreatePartitions (37)  | 0-3 | 2  |   | OffsetDelete (47)      | 0   | -  |
# | DescribeCluster (60)   | 0-2 | 0  |   | DescribeProducers (61) | 0   | 0  |
ALTER_CONFIGS_REQUEST = Message(
    "AlterConfigsRequest", 33, "0-2", 2,
    F("resources", Array(Struct(
        "AlterConfigsResource",
        F("resource_type", INT8),
        F("resource_name", STRING),
        F("configs", Array(Struct(
            "AlterableConfig",
            F("name", STRING),
            F("value", STRING, "0+", nullable="0+"),
        ))),
    ))),
    F("validate_only", BOOL),
)

ALTER_CONFIGS_RESPONSE = Message(
    "AlterConfigsResponse", 33, "0-2", 2,
    F("throttle_time_ms", INT32),
    F("responses", Array(Struct(
        "AlterConfigsResourceResponse",
        F("error_code", INT16),
        F("error_message", STRING, "0+", nullable="0+"),
        F("resource_type", INT8),
        F("resource_name", STRING),
    ))),
)

DESCRIBE_LOG_DIRS_REQUEST = Message(
    "DescribeLogDirsRequest", 35, "1-4", 2,
    F("topics", Array(Struct(
        "DescribableLogDirTopic",
        F("topic", STRING),
        F("partitions", Array(INT32)),
    )), "0+", nullable="0+"),
)

DESCRIBE_LOG_DIRS_RESPONSE = Message(
    "DescribeLogDirsResponse", 35, "1-4", 2,
    F("throttle_time_ms", INT32),
    F("error_code", INT16, "3+"),
    F("results", Array(Struct(
        "DescribeLogDirsResult",
        F("error_code", INT16),
        F("log_dir", STRING),
        F("topics", Array(Struct(
            "DescribeLogDirsTopic",
            F("name", STRING),
            F("partitions", Array(Struct(
                "DescribeLogDirsPartition",
                F("partition_index", INT32),
                F("partition_size", INT64),
                F("offset_lag", INT64),
                F("is_future_key", BOOL),
            ))),
        ))),
        F("total_bytes", INT64, "4+", default="-1"),
        F("usable_bytes", INT64, "4+", default="-1"),
    ))),
)

CREATE_PARTITIONS_REQUEST = Message(
    "CreatePartitionsRequest", 37, "0-3", 2,
    F("topics", Array(Struct(
        "CreatePartitionsTopic",
        F("name", STRING),
        F("count", INT32),
        F("assignments", Array(Struct(
            "CreatePartitionsAssignment",
            F("broker_ids", Array(INT32)),
        )), "0+", nullable="0+"),
    ))),
    F("timeout_ms", INT32),
    F("validate_only", BOOL),
)

CREATE_PARTITIONS_RESPONSE = Message(
    "CreatePartitionsResponse", 37, "0-3", 2,
    F("throttle_time_ms", INT32),
    F("results", Array(Struct(
        "CreatePartitionsTopicResult",
        F("name", STRING),
        F("error_code", INT16),
        F("error_message", STRING, "0+", nullable="0+", default="null"),
    ))),
)

OFFSET_DELETE_REQUEST = Message(
    "OffsetDeleteRequest", 47, "0", None,
    F("group_id", STRING),
    F("topics", Array(Struct(
        "OffsetDeleteRequestTopic",
        F("name", STRING),
        F("partitions", Array(Struct(
            "OffsetDeleteRequestPartition",
            F("partition_index", INT32),
        ))),
    ))),
)

OFFSET_DELETE_RESPONSE = Message(
    "OffsetDeleteResponse", 47, "0", None,
    F("error_code", INT16),
    F("throttle_time_ms", INT32),
    F("topics", Array(Struct(
        "OffsetDeleteResponseTopic",
        F("name", STRING),
        F("partitions", Array(Struct(
            "OffsetDeleteResponsePartition",
            F("partition_index", INT32),
            F("error_code", INT16),
        ))),
    ))),
)

DESCRIBE_CLUSTER_REQUEST = Message(
    "DescribeClusterRequest", 60, "0-2", 0,
    F("include_cluster_authorized_operations", BOOL),
    F("endpoint_type", INT8, "1+", default="1"),
    F("include_fenced_brokers", BOOL, "2+"),
)

DESCRIBE_CLUSTER_RESPONSE = Message(
    "DescribeClusterResponse", 60, "0-2", 0,
    F("throttle_time_ms", INT32),
    F("error_code", INT16),
    F("error_message", STRING, "0+", nullable="0+", default="null"),
    F("endpoint_type", INT8, "1+", default="1"),
    F("cluster_id", STRING),
    F("controller_id", INT32, "0+", default="-1"),
    F("brokers", Array(Struct(
        "DescribeClusterBroker",
        F("broker_id", INT32),
        F("host", STRING),
        F("port", INT32),
        F("rack", STRING, "0+", nullable="0+", default="null"),
        F("is_fenced", BOOL, "2+"),
    ))),
    F("cluster_authorized_operations", INT32, "0+", default="-2147483648"),
)

DESCRIBE_PRODUCERS_REQUEST = Message(
    "DescribeProducersRequest", 61, "0", 0,
    F("topics", Array(Struct(
        "TopicRequest",
        F("name", STRING),
        F("partition_indexes", Array(INT32)),
    ))),
)

DESCRIBE_PRODUCERS_RESPONSE = Message(
    "DescribeProducersResponse", 61, "0", 0,
    F("throttle_time_ms", INT32),
    F("topics", Array(Struct(
        "TopicResponse",
        F("name", STRING),
        F("partitions", Array(Struct(
            "PartitionResponse",
            F("partition_index", INT32),
            F("error_code", INT16),
            F("error_message", STRING, "0+", nullable="0+", default="null"),
            F("active_producers", Array(Struct(
                "ProducerState",
                F("producer_id", INT64),
                F("producer_epoch", INT32),
                F("last_sequence", INT32, "0+", default="-1"),
                F("last_timestamp", INT64, "0+", default="-1"),
                F("coordinator_epoch", INT32),
                F("current_txn_start_offset", INT64, "0+", default="-1"),
            ))),
        ))),
    ))),
)

for _m in (ALTER_CONFIGS_REQUEST, DESCRIBE_LOG_DIRS_REQUEST, CREATE_PARTITIONS_REQUEST,
           OFFSET_DELETE_REQUEST, DESCRIBE_CLUSTER_REQUEST, DESCRIBE_PRODUCERS_REQUEST):
    REQUESTS[_m.api_key] = _m
for _m in (ALTER_CONFIGS_RESPONSE, DESCRIBE_LOG_DIRS_RESPONSE, CREATE_PARTITIONS_RESPONSE,
           OFFSET_DELETE_RESPONSE, DESCRIBE_CLUSTER_RESPONSE, DESCRIBE_PRODUCERS_RESPONSE):
    RESPONSES[_m.api_key] = _m
ApiKey.ALTER_CONFIGS = ALTER_CONFIGS_REQUEST.api_key
ApiKey.DESCRIBE_LOG_DIRS = DESCRIBE_LOG_DIRS_REQUEST.api_key
ApiKey.CREATE_PARTITIONS = CREATE_PARTITIONS_REQUEST.api_key
ApiKey.OFFSET_DELETE = OFFSET_DELETE_REQUEST.api_key
ApiKey.DESCRIBE_CLUSTER = DESCRIBE_CLUSTER_REQUEST.api_key
ApiKey.DESCRIBE_PRODUCERS = DESCRIBE_PRODUCERS_REQUEST.api_key

# ElectLeaders (43) lives in its own module; registered with the others, always (a single node
# answers it too).
from . import elect_leaders  # noqa: E402,F401
# AlterPartitionReassignments (45) and ListPartitionReassignments (46): their own module too.
from . import reassignments  # noqa: E402,F401
