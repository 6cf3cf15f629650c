"""klog's codec against kafka-python's, for every implemented API and version.

Requests: a body is built as a kafka-python object, encoded by kafka-python (with
header and size prefix), decoded by klog; the fields must match and klog's
re-encoding must be byte-identical.  Responses: klog encodes, kafka-python decodes
to the same values, and kafka-python's re-encoding is byte-identical to klog's.
"""
import random

import kafka.protocol.admin as kp_admin

import pytest

from kafka.protocol.admin import cluster, configs, groups, topics, transactions
from kafka.protocol.consumer import fetch, group, offsets
from kafka.protocol.metadata import api_versions, find_coordinator, metadata
from kafka.protocol.producer import produce, transaction

from klog.protocol import REQUESTS, RESPONSES, decode_request, encode_request, encode_response
from klog.protocol.schema import CompiledStruct

from .samples import sample_body

KP = {
    0: (produce.ProduceRequest, produce.ProduceResponse),
    1: (fetch.FetchRequest, fetch.FetchResponse),
    2: (offsets.ListOffsetsRequest, offsets.ListOffsetsResponse),
    3: (metadata.MetadataRequest, metadata.MetadataResponse),
    8: (group.OffsetCommitRequest, group.OffsetCommitResponse),
    9: (group.OffsetFetchRequest, group.OffsetFetchResponse),
    10: (find_coordinator.FindCoordinatorRequest, find_coordinator.FindCoordinatorResponse),
    11: (group.JoinGroupRequest, group.JoinGroupResponse),
    12: (group.HeartbeatRequest, group.HeartbeatResponse),
    13: (group.LeaveGroupRequest, group.LeaveGroupResponse),
    14: (group.SyncGroupRequest, group.SyncGroupResponse),
    15: (groups.DescribeGroupsRequest, groups.DescribeGroupsResponse),
    16: (groups.ListGroupsRequest, groups.ListGroupsResponse),
    18: (api_versions.ApiVersionsRequest, api_versions.ApiVersionsResponse),
    19: (topics.CreateTopicsRequest, topics.CreateTopicsResponse),
    20: (topics.DeleteTopicsRequest, topics.DeleteTopicsResponse),
    21: (topics.DeleteRecordsRequest, topics.DeleteRecordsResponse),
    22: (transaction.InitProducerIdRequest, transaction.InitProducerIdResponse),
    23: (offsets.OffsetForLeaderEpochRequest, offsets.OffsetForLeaderEpochResponse),
    32: (configs.DescribeConfigsRequest, configs.DescribeConfigsResponse),
    42: (groups.DeleteGroupsRequest, groups.DeleteGroupsResponse),
    44: (configs.IncrementalAlterConfigsRequest, configs.IncrementalAlterConfigsResponse),
    33: (configs.AlterConfigsRequest, configs.AlterConfigsResponse),
    35: (cluster.DescribeLogDirsRequest, cluster.DescribeLogDirsResponse),
    37: (topics.CreatePartitionsRequest, topics.CreatePartitionsResponse),
    47: (group.OffsetDeleteRequest, group.OffsetDeleteResponse),
    60: (cluster.DescribeClusterRequest, cluster.DescribeClusterResponse),
    61: (transactions.DescribeProducersRequest, transactions.DescribeProducersResponse),
    43: (kp_admin.ElectLeadersRequest, kp_admin.ElectLeadersResponse),
    45: (kp_admin.AlterPartitionReassignmentsRequest, kp_admin.AlterPartitionReassignmentsResponse),
    46: (kp_admin.ListPartitionReassignmentsRequest, kp_admin.ListPartitionReassignmentsResponse),
}

# kafka-python renames / retypes a few int32 bitfields (its json_patch hooks).
RENAMES = {
    ("MetadataResponse", "topic_authorized_operations"): "authorized_operations",
    ("MetadataResponse", "cluster_authorized_operations"): "authorized_operations",
    ("DescribeClusterResponse", "cluster_authorized_operations"): "authorized_operations",
}
BITFIELDS = {"topic_authorized_operations", "cluster_authorized_operations", "authorized_operations"}

SAMPLES_PER_VERSION = 12

# kafka-python has no ControlledShutdown (7), a request between brokers: test_controlled_shutdown.py
# checks its bytes against fixed vectors written from Kafka's message definitions instead.
NO_ORACLE = {7}
CASES = [(k, v) for k in sorted(REQUESTS) if k not in NO_ORACLE
         for v in range(REQUESTS[k].min_version, REQUESTS[k].max_version + 1)]


def _bits(v):
    if v is None:
        return None
    bits = {i for i in range(32) if (v & 0xFFFFFFFF) >> i & 1}
    return None if bits == {31} else bits


def normalize(value, kp_bitfields=False, msg=None, name=None):
    """Our decoded form -> comparable plain values (memoryview -> bytes, bitfields -> sets)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "_unknown_tags":
                continue
            key = RENAMES.get((msg, k), k) if kp_bitfields else k
            out[key] = normalize(v, kp_bitfields, msg, k)
        return out
    if isinstance(value, list):
        return [normalize(v, kp_bitfields, msg, name) for v in value]
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if kp_bitfields and name in BITFIELDS and isinstance(value, int):
        return _bits(value)
    return value


def kp_values(obj):
    """kafka-python object -> plain dict (its bytes may be memoryviews too)."""
    return normalize(obj.to_dict(json=False))


def project(kp, ours):
    """Restrict kafka-python's values to our keys (its nested objects, built without a
    version, also list fields outside the version).  Every key of ours must exist there."""
    if isinstance(ours, dict) and isinstance(kp, dict):
        missing = set(ours) - set(kp)
        assert not missing, f"kafka-python lacks fields {missing}"
        return {k: project(kp[k], ours[k]) for k in ours}
    if kp is None and isinstance(ours, dict) and ours and all(v == -1 for v in ours.values()):
        # An absent tagged struct: kafka-python leaves None, Kafka (and klog) build the
        # default struct (for Fetch's CurrentLeader/DivergingEpoch/SnapshotId: all -1).
        return ours
    if isinstance(ours, list) and isinstance(kp, list) and len(ours) == len(kp):
        return [project(a, b) for a, b in zip(kp, ours)]
    return kp


def build_kp(cls, body, version=None):
    """Construct a kafka-python DataContainer tree from a plain dict."""
    kwargs = {}
    fields = cls._struct.fields
    for name, val in body.items():
        field = fields[name]
        if val is not None and field.is_struct():
            val = build_kp(field.data_class, val)
        elif val is not None and field.is_struct_array():
            val = [build_kp(field.data_class, x) for x in val]
        kwargs[name] = val
    if version is not None:
        return cls(version=version, **kwargs)
    return cls(**kwargs)


def absent_default_tagged_structs(schema, version, body):
    """kafka-python writes a tagged struct it is given even when it equals the default; Kafka
    (and klog) leave such a field out. Give kafka-python None there, its "absent" (top-level
    fields: Fetch v15+'s ReplicaState is the only tagged struct in a request)."""
    c = schema.compile(version, schema.is_flexible(version))
    out = dict(body)
    for tag in c.tag_order:
        name, t, _nullable, _path, f = c.tags[tag]
        if isinstance(t, CompiledStruct) and out.get(name) == f.default(version):
            out[name] = None
    return out


@pytest.mark.parametrize("api_key,version", CASES, ids=[f"{REQUESTS[k].name}-v{v}" for k, v in CASES])
def test_request_encoded_by_kafka_python_decodes(api_key, version):
    req_cls, _ = KP[api_key]
    schema = REQUESTS[api_key]
    rnd = random.Random(f"req-{api_key}-{version}")
    for i in range(SAMPLES_PER_VERSION):
        body = sample_body(rnd, schema, version)
        kp = build_kp(req_cls, absent_default_tagged_structs(schema, version, body), version)
        kp.with_header(correlation_id=1000 + i, client_id=rnd.choice(["kafka-python", "", "c-é"]))
        frame = kp.encode(header=True, framed=True)

        req = decode_request(memoryview(frame)[4:])
        assert req.header.api_key == api_key and req.header.api_version == version
        assert req.header.correlation_id == 1000 + i
        assert req.header.client_id == kp.header.client_id
        assert normalize(req.body) == normalize(body)
        mine = normalize(req.body)
        assert mine == project(kp_values(kp), mine)

        ours = encode_request(api_key, version, 1000 + i, kp.header.client_id, req.body).getvalue()
        assert ours == bytes(frame), f"sample {i}: re-encoding differs from kafka-python"


@pytest.mark.parametrize("api_key,version", CASES, ids=[f"{RESPONSES[k].name}-v{v}" for k, v in CASES])
def test_response_encoded_by_klog_decodes_in_kafka_python(api_key, version):
    _, resp_cls = KP[api_key]
    schema = RESPONSES[api_key]
    rnd = random.Random(f"resp-{api_key}-{version}")
    for i in range(SAMPLES_PER_VERSION):
        body = sample_body(rnd, schema, version)
        if api_key == 18:
            # kafka-python decodes any ApiVersions error as a v0 body (tested separately)
            body["error_code"] = 0
        w = encode_response(api_key, version, 77 + i, body)
        frame = w.getvalue()
        kp = resp_cls.decode(frame, version=version, header=True, framed=True)
        assert kp.header.correlation_id == 77 + i
        mine = normalize(body, kp_bitfields=True, msg=schema.name)
        assert mine == project(kp_values(kp), mine)
        kp.with_header(correlation_id=77 + i)
        assert bytes(kp.encode(header=True, framed=True)) == frame, f"sample {i}: kafka-python re-encoding differs"


def test_every_implemented_api_has_an_oracle():
    assert set(REQUESTS) - NO_ORACLE == set(KP) == set(RESPONSES) - NO_ORACLE
    for key, (req_cls, resp_cls) in KP.items():
        assert req_cls.API_KEY == key and resp_cls.API_KEY == key
        ours = REQUESTS[key]
        # klog's range lies inside what kafka-python knows, and flexible-from agrees.
        assert ours.max_version <= req_cls.max_version
        for v in range(ours.min_version, ours.max_version + 1):
            assert ours.is_flexible(v) == req_cls.flexible_version_q(v), (ours.name, v)
            assert RESPONSES[key].is_flexible(v) == resp_cls.flexible_version_q(v), (ours.name, v)
