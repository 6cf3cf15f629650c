"""Hostile input: decoders raise ProtocolError and nothing else, and never allocate
from a declared length (CVE-2022-34917). Whatever does decode must mean what its bytes say:
encoding the decoded message gives back the input, except in the ways checked by
``_same_but_canonical`` (booleans other than 0/1 read as true; bytes after the message ignored)."""
import random
import struct
import time
import tracemalloc

from hypothesis import HealthCheck, given, settings, strategies as st

from klog.protocol import REQUESTS, RESPONSES, decode_request, decode_response, encode_request, encode_response
from klog.protocol.errors import InvalidLengthError, ProtocolError, UnknownApiError, UnsupportedVersionError

from .samples import sample_body

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = sorted(REQUESTS)


def _same_but_canonical(again, payload):
    """The oracle: ``again`` (the decoded message, encoded) is ``payload`` up to its length,
    but for what a lenient reader accepts and a writer never produces: boolean bytes other than
    0 and 1 (read as true, written as 1) and overlong varints (trailing zero groups, as Kafka's
    ByteUtils reads them; written in the fewest bytes)."""
    i = j = 0   # positions in again and in payload
    while i < len(again):
        assert j < len(payload), f"re-encoded longer than the input ({again.hex()} vs {payload.hex()})"
        a, b = again[i], payload[j]
        if a == b or (a == 1 and b > 1):
            i, j = i + 1, j + 1
            continue
        # An overlong varint: its last group written without the continuation bit, and in the
        # input only zero groups after it.
        assert b & 0x80 and a == b & 0x7F, f"byte {j}: decoded+encoded {a}, input {b}"
        j += 1
        while j < len(payload) and payload[j] == 0x80:
            j += 1
        assert j < len(payload) and payload[j] == 0, f"byte {j}: not an overlong varint"
        i, j = i + 1, j + 1


def _decode_req(payload):
    try:
        req = decode_request(payload)
    except ProtocolError:
        return
    h = req.header
    again = encode_request(h.api_key, h.api_version, h.correlation_id, h.client_id,
                           req.body).getvalue()[4:]
    _same_but_canonical(again, payload)


def _decode_resp(api_key, version, payload):
    try:
        cid, body = decode_response(api_key, version, payload)
    except ProtocolError:
        return
    _same_but_canonical(encode_response(api_key, version, cid, body).getvalue()[4:], payload)


def _header(api_key, version, flexible):
    h = struct.pack(">hhi", api_key, version, 1) + b"\x00\x01c"
    return h + (b"\x00" if flexible else b"")


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_as_request(data):
    _decode_req(data)


@FUZZ
@given(st.sampled_from(KEYS), st.data())
def test_random_body_after_valid_header(api_key, data):
    schema = REQUESTS[api_key]
    version = data.draw(st.integers(schema.min_version, schema.max_version))
    body = data.draw(st.binary(max_size=256))
    _decode_req(_header(api_key, version, schema.is_flexible(version)) + body)
    _decode_resp(api_key, version, body)


def _valid_request(rnd, api_key, version):
    return encode_request(api_key, version, 1, "fuzz", sample_body(rnd, REQUESTS[api_key], version)).getvalue()[4:]


@FUZZ
@given(st.sampled_from(KEYS), st.data())
def test_truncated_valid_frames_raise(api_key, data):
    schema = REQUESTS[api_key]
    version = data.draw(st.integers(schema.min_version, schema.max_version))
    payload = _valid_request(random.Random(data.draw(st.integers(0, 2**32))), api_key, version)
    req = decode_request(payload)  # the full frame is fine, and means what was encoded
    assert encode_request(api_key, version, 1, "fuzz", req.body).getvalue()[4:] == payload
    cut = data.draw(st.integers(0, len(payload) - 1))
    try:
        decode_request(payload[:cut])
    except ProtocolError:
        return
    raise AssertionError(f"truncated at {cut}/{len(payload)} decoded without error")


@FUZZ
@given(st.sampled_from(KEYS), st.data())
def test_mutated_valid_frames(api_key, data):
    schema = REQUESTS[api_key]
    version = data.draw(st.integers(schema.min_version, schema.max_version))
    payload = bytearray(_valid_request(random.Random(data.draw(st.integers(0, 2**32))), api_key, version))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(8, len(payload) - 1)) if len(payload) > 8 else 0
        payload[i] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, data.draw(st.integers(0, 255))]))
    _decode_req(bytes(payload))


@FUZZ
@given(st.sampled_from(KEYS), st.data())
def test_huge_declared_lengths_spliced_in(api_key, data):
    """Overwrite 4 or 5 bytes anywhere in a valid body with a huge int32 or uvarint."""
    schema = REQUESTS[api_key]
    version = data.draw(st.integers(schema.min_version, schema.max_version))
    payload = bytearray(_valid_request(random.Random(data.draw(st.integers(0, 2**32))), api_key, version))
    huge = data.draw(st.sampled_from([b"\x7f\xff\xff\xff", b"\xff\xff\xff\xfe", b"\x80\x00\x00\x00",
                                      b"\x7f\xff", b"\xff\xff\xff\xff\x0f", b"\xfe\xff\xff\xff\x07"]))
    i = data.draw(st.integers(0, max(0, len(payload) - 1)))
    payload[i:i + len(huge)] = huge
    _decode_req(bytes(payload))


@FUZZ
@given(st.integers(-32768, 32767), st.integers(-32768, 32767), st.binary(max_size=64))
def test_unknown_api_keys_and_versions(api_key, version, rest):
    payload = struct.pack(">hhi", api_key, version, 5) + b"\xff\xff" + rest
    try:
        req = decode_request(payload)
    except (UnknownApiError, UnsupportedVersionError) as e:
        assert e.header is not None and e.header.correlation_id == 5
    except ProtocolError:
        # known API, supported version, garbage body
        assert api_key in REQUESTS and REQUESTS[api_key].supports(version)
    else:   # a supported key and version whose body decodes: it must round-trip
        assert (req.header.api_key, req.header.api_version, req.header.client_id) == \
            (api_key, version, None)
        _same_but_canonical(encode_request(api_key, version, 5, None, req.body).getvalue()[4:],
                            payload)


@FUZZ
@given(st.sampled_from(KEYS), st.integers(-5, 40), st.binary(max_size=64))
def test_response_decoders_reject_unknown_versions_cleanly(api_key, version, body):
    _decode_resp(api_key, version, body)


def test_max_array_length_fails_fast_without_allocating():
    # Metadata v1: topics array declared with 2**31-1 entries, 8 bytes of body.
    classic = _header(3, 1, False) + b"\x7f\xff\xff\xff" + b"\x00" * 4
    # Metadata v9 (flexible): compact array N+1 = 2**31
    compact = _header(3, 9, True) + b"\x80\x80\x80\x80\x08" + b"\x00" * 4
    # Produce v8: records declared 2**31-1 bytes
    records = (_header(0, 8, False) + b"\xff\xff" + b"\x00\x01" + b"\x00\x00\x00\x01"
               + b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x00"
               + b"\x7f\xff\xff\xff")
    for payload in (classic, compact, records):
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            decode_request(payload)
        except InvalidLengthError as e:
            assert "left" in str(e)
        else:
            raise AssertionError("a 2**31-1 declared length was accepted")
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < 0.05, elapsed
        assert peak < 256 * 1024, peak


def test_responses_also_fail_fast():
    body = b"\x00\x00\x00\x00" + b"\x7f\xff\xff\xff"   # throttle, then brokers count
    try:
        decode_response(3, 3, b"\x00\x00\x00\x01" + body)
    except InvalidLengthError:
        pass
    else:
        raise AssertionError("accepted")


def test_responses_roundtrip_through_klog_only():
    """Every response schema decodes what it encodes (including unknown tags kept)."""
    rnd = random.Random(5)
    for key, schema in RESPONSES.items():
        for v in range(schema.min_version, schema.max_version + 1):
            body = sample_body(rnd, schema, v)
            if schema.is_flexible(v):
                body["_unknown_tags"] = {99: b"\x01\x02"}
            frame = encode_response(key, v, 3, body).getvalue()
            cid, got = decode_response(key, v, frame[4:])
            assert cid == 3
            assert encode_response(key, v, 3, got).getvalue() == frame


def test_a_repeated_tag_is_refused_not_collapsed():
    """Found by the round-trip oracle: a tag given twice (KIP-482 has them unique) used to
    keep only the second value, so the request decoded to something its bytes do not say."""
    from klog.protocol.errors import InvalidTaggedFieldError

    # Heartbeat v4 (flexible): group "g", generation 1, member "m", no instance id, then body
    # tags: two of them, both tag 0.
    body = b"\x02g" + struct.pack(">i", 1) + b"\x02m" + b"\x00" + b"\x02" + b"\x00\x00" + b"\x00\x01\x00"
    payload = _header(12, 4, True) + body
    try:
        decode_request(payload)
    except InvalidTaggedFieldError as e:
        assert "tagged field 0 appears twice" in str(e)
    else:
        raise AssertionError("a repeated tag was accepted")
    # One of each is fine, and means what it says.
    ok = _header(12, 4, True) + body[:-6] + b"\x02" + b"\x00\x00" + b"\x01\x01\x07"
    req = decode_request(ok)
    assert set(req.body["_unknown_tags"]) == {0, 1}
    _decode_req(ok)
