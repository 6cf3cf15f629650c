"""ControlledShutdown (API 7) frames against fixed vectors written from Kafka's message
definitions (ControlledShutdownRequest/Response.json): kafka-python has no oracle for it.
v0's request header has no client id (request header v0); v3 is flexible."""
import pytest

from klog.protocol import decode_request, encode_request, encode_response
from klog.protocol.messages import ApiKey

# size, api_key 7, version, correlation id 5, [client id "b"], body
V0 = bytes.fromhex("0000000c" "0007" "0000" "00000005" "00000003")
V1 = bytes.fromhex("0000000f" "0007" "0001" "00000005" "000162" "00000003")
V2 = bytes.fromhex("00000017" "0007" "0002" "00000005" "000162" "00000003" "000000000000002a")
V3 = bytes.fromhex("00000019" "0007" "0003" "00000005" "000162" "00" "00000003"
                   "000000000000002a" "00")


@pytest.mark.parametrize("version,frame", [(0, V0), (1, V1), (2, V2), (3, V3)], ids=["v0", "v1", "v2", "v3"])
def test_request_bytes(version, frame):
    body = {"broker_id": 3, "broker_epoch": 42}
    client = None if version == 0 else "b"
    assert encode_request(ApiKey.CONTROLLED_SHUTDOWN, version, 5, client, body).getvalue() == frame
    req = decode_request(memoryview(frame)[4:])
    assert (req.header.api_key, req.header.api_version, req.header.correlation_id,
            req.header.client_id) == (7, version, 5, client)
    assert req.body["broker_id"] == 3
    assert req.body.get("broker_epoch", -1) == (42 if version >= 2 else -1)


def test_response_bytes():
    body = {"error_code": 0, "remaining_partitions": [{"topic_name": "t", "partition_index": 2}]}
    # v1: correlation id, error, array of 1 (int32 count), string "t" (int16 length), int32
    assert encode_response(7, 1, 5, body).getvalue() == bytes.fromhex(
        "00000011" "00000005" "0000" "00000001" "000174" "00000002")
    # v3: response header v1 (tags), compact array (n+1), compact string (n+1), tags
    assert encode_response(7, 3, 5, body).getvalue() == bytes.fromhex(
        "00000010" "00000005" "00" "0000" "02" "0274" "00000002" "00" "00")
