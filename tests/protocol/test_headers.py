"""Headers, header-version selection, ApiVersions quirks and hand-computed frames."""
import pytest

from kafka.protocol.metadata import api_versions, metadata

from klog.protocol import (
    ApiKey, ErrorCode, FrameSplitter, decode_request, decode_response, encode_request, encode_response,
    request_header_version, response_header_version,
)
from klog.protocol.errors import FrameTooLargeError, InvalidLengthError, UnknownApiError, UnsupportedVersionError
from klog.protocol.messages import REQUESTS


def test_header_versions():
    assert request_header_version(ApiKey.METADATA, 8) == 1
    assert request_header_version(ApiKey.METADATA, 9) == 2
    assert response_header_version(ApiKey.METADATA, 9) == 1
    assert response_header_version(ApiKey.PRODUCE, 8) == 0
    # ApiVersions: flexible request header from v3, response header always v0 (KIP-511)
    assert request_header_version(ApiKey.API_VERSIONS, 3) == 2
    assert response_header_version(ApiKey.API_VERSIONS, 3) == 0
    with pytest.raises(UnknownApiError):
        request_header_version(999, 0)


def test_api_versions_v0_request_hand_computed():
    frame = encode_request(ApiKey.API_VERSIONS, 0, 1, "kcat", {}).getvalue()
    assert frame == (b"\x00\x00\x00\x0e"      # size 14
                     b"\x00\x12\x00\x00"      # api key 18, version 0
                     b"\x00\x00\x00\x01"      # correlation id
                     b"\x00\x04kcat")         # client id, int16 length


def test_api_versions_v3_request_hand_computed():
    body = {"client_software_name": "klog", "client_software_version": "1.0"}
    frame = encode_request(ApiKey.API_VERSIONS, 3, 2, "c", body).getvalue()
    payload = (b"\x00\x12\x00\x03\x00\x00\x00\x02"
               b"\x00\x01c"                   # client id keeps int16 length in header v2
               b"\x00"                        # header tagged fields
               b"\x05klog\x041.0"             # compact strings
               b"\x00")                       # body tagged fields
    assert frame == len(payload).to_bytes(4, "big") + payload
    req = decode_request(payload)
    assert req.header.client_id == "c" and req.body == body


def test_api_versions_v3_response_header_has_no_tag_byte():
    body = {"error_code": 0, "api_keys": [{"api_key": 0, "min_version": 3, "max_version": 8}],
            "throttle_time_ms": 0}
    frame = encode_response(ApiKey.API_VERSIONS, 3, 5, body).getvalue()
    assert frame == (b"\x00\x00\x00\x13"  # 19 bytes
                     b"\x00\x00\x00\x05"                    # header v0: correlation id only
                     b"\x00\x00"                            # error code
                     b"\x02" b"\x00\x00\x00\x03\x00\x08\x00"  # compact array of 1 + item tags
                     b"\x00\x00\x00\x00"                    # throttle
                     b"\x00")                               # body tags
    cid, decoded = decode_response(ApiKey.API_VERSIONS, 3, frame[4:])
    assert cid == 5 and decoded["api_keys"] == body["api_keys"]
    assert decoded["finalized_features_epoch"] == -1  # absent tagged field -> its default


def test_metadata_v0_response_hand_computed():
    body = {"brokers": [{"node_id": 1, "host": "h", "port": 9092}],
            "topics": [{"error_code": 0, "name": "t", "partitions": [
                {"error_code": 0, "partition_index": 0, "leader_id": 1, "replica_nodes": [1], "isr_nodes": [1]}]}]}
    frame = encode_response(ApiKey.METADATA, 0, 9, body).getvalue()
    expect = (b"\x00\x00\x00\x09"
              b"\x00\x00\x00\x01" b"\x00\x00\x00\x01" b"\x00\x01h" b"\x00\x00\x23\x84"
              b"\x00\x00\x00\x01" b"\x00\x00" b"\x00\x01t"
              b"\x00\x00\x00\x01" b"\x00\x00" b"\x00\x00\x00\x00" b"\x00\x00\x00\x01"
              b"\x00\x00\x00\x01\x00\x00\x00\x01" b"\x00\x00\x00\x01\x00\x00\x00\x01")
    assert frame == len(expect).to_bytes(4, "big") + expect
    kp = metadata.MetadataResponse.decode(frame, version=0, header=True, framed=True)
    assert kp.brokers[0].port == 9092 and kp.topics[0].partitions[0].isr_nodes == [1]


def test_api_versions_too_new_is_answered_with_v0_error_body():
    # kafka-python 3.x opens with ApiVersions v4, which klog v1 does not implement.
    kp = api_versions.ApiVersionsRequest(version=4, client_software_name="kafka-python",
                                         client_software_version="3.0")
    kp.with_header(correlation_id=42, client_id="kp")
    frame = kp.encode(header=True, framed=True)
    with pytest.raises(UnsupportedVersionError) as ei:
        decode_request(memoryview(frame)[4:])
    hdr = ei.value.header
    assert (hdr.api_key, hdr.api_version, hdr.correlation_id, hdr.client_id) == (18, 4, 42, "kp")

    supported = [{"api_key": k, "min_version": m.min_version, "max_version": m.max_version}
                 for k, m in sorted(REQUESTS.items())]
    reply = encode_response(ApiKey.API_VERSIONS, 0, hdr.correlation_id,
                            {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": supported}).getvalue()
    got = api_versions.ApiVersionsResponse.decode(reply, version=4, header=True, framed=True)
    assert got.header.correlation_id == 42
    assert got.error_code == 35
    assert [(a.api_key, a.min_version, a.max_version) for a in got.api_keys] == \
        [(a["api_key"], a["min_version"], a["max_version"]) for a in supported]


def test_unknown_api_key_keeps_correlation_id():
    payload = b"\x03\xe7\x00\x00\x00\x00\x00\x07\xff\xff"  # api 999
    with pytest.raises(UnknownApiError) as ei:
        decode_request(payload)
    assert ei.value.header.correlation_id == 7


def test_unsupported_version_of_known_api():
    with pytest.raises(UnsupportedVersionError):
        decode_request(b"\x00\x00\x00\x02\x00\x00\x00\x01\xff\xff")  # Produce v2
    with pytest.raises(UnsupportedVersionError):
        encode_request(ApiKey.FETCH, 17, 1, None, {})


def test_frame_splitter():
    a = encode_request(ApiKey.HEARTBEAT, 0, 1, "x", {"group_id": "g", "generation_id": 1, "member_id": "m"})
    b = encode_request(ApiKey.API_VERSIONS, 0, 2, None, {})
    stream = a.getvalue() + b.getvalue()
    s = FrameSplitter()
    got = []
    for i in range(0, len(stream), 3):
        got += s.feed(stream[i:i + 3])
    assert [decode_request(p).header.correlation_id for p in got] == [1, 2]
    with pytest.raises(FrameTooLargeError):
        FrameSplitter(max_frame_size=1024).feed(b"\x00\x10\x00\x00")
    with pytest.raises(InvalidLengthError):
        FrameSplitter().feed(b"\xff\xff\xff\xff")


def test_fetch_response_records_are_sent_by_reference():
    segment = memoryview(bytearray(b"\x01" * 65536))   # stands in for an mmap'd segment
    body = {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": [
        {"topic": "t", "partitions": [{"partition_index": 0, "error_code": 0, "high_watermark": 10,
                                        "last_stable_offset": 10, "log_start_offset": 0,
                                        "aborted_transactions": None, "preferred_read_replica": -1,
                                        "records": segment[100:60000]}]}]}
    w = encode_response(ApiKey.FETCH, 11, 3, body)
    assert any(isinstance(b, memoryview) and b.obj is segment.obj for b in w.buffers())
    cid, got = decode_response(ApiKey.FETCH, 11, w.getvalue()[4:])
    rec = got["responses"][0]["partitions"][0]["records"]
    assert isinstance(rec, memoryview) and rec.nbytes == 59900
