"""ConsumerProtocol subscription/assignment bytes: hand-computed vectors, round trips, and
kafka-python's (JSON-schema generated) and aiokafka's codecs as independent oracles."""
import struct

import pytest
from hypothesis import given, settings, strategies as st

from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment as AioAssignment,
    ConsumerProtocolMemberMetadata as AioMetadata,
)
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment as KpAssignment,
    ConsumerProtocolSubscription as KpSubscription,
)

from klog.group.protocol import (
    Assignment, ProtocolDecodeError, Subscription, decode_assignment, decode_subscription,
    encode_assignment, encode_subscription,
)
from klog.structs import TopicPartition

names = st.text(st.sampled_from("abcxyz._-é"), min_size=1, max_size=12)
partitions = st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=5)   # flat form: no empty topics
by_topic = st.dictionaries(names, partitions, max_size=4)
user_data = st.none() | st.binary(max_size=20)


def flat(grouped):
    return tuple(TopicPartition(t, p) for t, ps in grouped.items() for p in ps)


def test_subscription_v0_vector():
    got = encode_subscription(Subscription(["ab", "c"], b"\x01", version=0))
    assert got == (b"\x00\x00" + b"\x00\x00\x00\x02" + b"\x00\x02ab" + b"\x00\x01c"
                   + b"\x00\x00\x00\x01\x01")


def test_subscription_v3_vector():
    sub = Subscription(["t"], None, [("t", 1), ("t", 2)], generation_id=7, rack_id="r")
    assert encode_subscription(sub) == (
        b"\x00\x03" + b"\x00\x00\x00\x01\x00\x01t" + b"\xff\xff\xff\xff"
        + b"\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02"
        + b"\x00\x00\x00\x07" + b"\x00\x01r")


def test_assignment_vector_and_empty_bytes():
    a = Assignment([("t", 0), ("t", 3), ("u", 1)], b"ud", version=0)
    assert encode_assignment(a) == (
        b"\x00\x00" + b"\x00\x00\x00\x02" + b"\x00\x01t\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03"
        + b"\x00\x01u\x00\x00\x00\x01\x00\x00\x00\x01" + b"\x00\x00\x00\x02ud")
    assert decode_assignment(b"").partitions == ()


@settings(max_examples=150, deadline=None)
@given(st.lists(names, max_size=5), user_data, by_topic, st.integers(-1, 2**31 - 1),
       st.none() | names, st.integers(0, 3))
def test_subscription_round_trip_and_kafka_python_oracle(topics, ud, owned, generation, rack, version):
    sub = Subscription(topics, ud, flat(owned) if version >= 1 else (),
                       generation if version >= 2 else -1, rack if version >= 3 else None, version)
    data = encode_subscription(sub)
    assert decode_subscription(data) == sub
    kp = KpSubscription.decode(data)
    assert (kp.version, list(kp.topics), kp.user_data) == (version, topics, ud)
    if version >= 1:
        assert [(tp.topic, list(tp.partitions)) for tp in kp.owned_partitions] == \
            [(t, ps) for t, ps in owned.items()]
    if version >= 2:
        assert kp.generation_id == generation
    if version >= 3:
        assert kp.rack_id == rack
    # And the other way: kafka-python's bytes decode with ours.
    back = KpSubscription(version=version, topics=topics, user_data=ud,
                          owned_partitions=[KpSubscription.TopicPartition(topic=t, partitions=ps)
                                            for t, ps in owned.items()] if version >= 1 else [],
                          generation_id=generation, rack_id=rack).encode()
    assert decode_subscription(back) == sub


@settings(max_examples=150, deadline=None)
@given(by_topic, user_data, st.integers(0, 3))
def test_assignment_round_trip_and_oracles(grouped, ud, version):
    a = Assignment(flat(grouped), ud, version)
    data = encode_assignment(a)
    assert decode_assignment(data) == a
    kp = KpAssignment.decode(data)
    assert [(tp.topic, list(tp.partitions)) for tp in kp.assigned_partitions] == list(grouped.items())
    assert kp.user_data == ud
    aio = AioAssignment.decode(data)
    assert sorted(aio.partitions()) == sorted(a.partitions)
    back = KpAssignment(version=version, assigned_partitions=[
        KpAssignment.TopicPartition(topic=t, partitions=ps) for t, ps in grouped.items()],
        user_data=ud).encode()
    assert decode_assignment(back) == a


def test_aiokafka_v0_metadata_decodes():
    data = AioMetadata(0, ["a", "b"], b"x").encode()
    assert decode_subscription(data) == Subscription(["a", "b"], b"x", version=0)
    # aiokafka reads our v3 subscription as v0 (it ignores the fields it does not know).
    ours = encode_subscription(Subscription(["t"], None, [("t", 0)], 3))
    assert list(AioMetadata.decode(ours).subscription) == ["t"]


def test_newer_version_reads_known_fields_and_ignores_the_rest():
    data = bytearray(encode_subscription(Subscription(["t"], b"u", [("t", 1)], 4, "r", 3)))
    data[0:2] = struct.pack(">h", 9)
    sub = decode_subscription(bytes(data) + b"future fields")
    assert (sub.version, sub.topics, sub.owned_partitions, sub.generation_id, sub.rack_id) == \
        (9, ("t",), (TopicPartition("t", 1),), 4, "r")


def test_v1_subscription_that_ends_early_reads_as_what_it_has():
    v0 = encode_subscription(Subscription(["t"], None, version=0))
    sub = decode_subscription(struct.pack(">h", 2) + v0[2:])
    assert (sub.topics, sub.owned_partitions, sub.generation_id) == (("t",), (), -1)


@pytest.mark.parametrize("data, what", [
    (b"\x00", "truncated"),
    (b"\xff\xff", "unsupported version"),
    (b"\x00\x00\x00\x00\x00\x01\x00\x05ab", "truncated"),
    (b"\x00\x00\x7f\xff\xff\xff", "cannot fit"),            # hostile count, no allocation
    (b"\x00\x00\x00\x00\x00\x01\x00\x02\xff\xfe\x00\x00\x00\x00", "invalid UTF-8"),
    (b"\x00\x00\x00\x00\x00\x01\xff\xfe", "bad string length"),
])
def test_malformed_subscriptions_raise_clear_errors(data, what):
    with pytest.raises(ProtocolDecodeError, match=what) as info:
        decode_subscription(data)
    assert "ConsumerProtocol subscription" in str(info.value)


def test_malformed_assignment_raises():
    with pytest.raises(ProtocolDecodeError, match="assignedPartitions"):
        decode_assignment(b"\x00\x00\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x05\x00\x00")
