"""klog.codec: Kafka codec ids, decompression of every client framing, and the output cap.

The cap is what keeps a small hostile batch from allocating gigabytes (CVE-2023-34455 was
exactly this in snappy-java). Bombs here are 100 MiB of zeros, capped at 1 MiB.
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import time
import zlib

import cramjam
import lz4.frame
import pytest
import zstandard

from klog import codec
from klog.codec import codec_id, compressor, decompress
from klog.errors import CorruptRecordError

MiB = 1 << 20
BOMB_SIZE = 100 * MiB
CHUNK = bytes(MiB)


def _gzip_bomb():
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([c.compress(CHUNK) for _ in range(BOMB_SIZE // MiB)] + [c.flush()])


def _lz4_bomb():
    c = lz4.frame.LZ4FrameCompressor(block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_linked=False)
    return b"".join([c.begin()] + [c.compress(CHUNK) for _ in range(BOMB_SIZE // MiB)]
                    + [c.flush()])


def _zstd_bomb():
    c = zstandard.ZstdCompressor().compressobj()
    return b"".join([c.compress(CHUNK) for _ in range(BOMB_SIZE // MiB)] + [c.flush()])


def _xerial_bomb():
    block = bytes(cramjam.snappy.compress_raw(bytes(32 << 10)))
    n = BOMB_SIZE // (32 << 10)
    return codec.XERIAL_MAGIC + struct.pack(">ii", 1, 1) + (
        struct.pack(">i", len(block)) + block) * n


def _raw_snappy_bomb():
    return bytes(cramjam.snappy.compress_raw(bytes(BOMB_SIZE)))


BOMBS = {
    "gzip": (codec.GZIP, _gzip_bomb),
    "lz4": (codec.LZ4, _lz4_bomb),
    "zstd": (codec.ZSTD, _zstd_bomb),
    "snappy-xerial": (codec.SNAPPY, _xerial_bomb),
    "snappy-raw": (codec.SNAPPY, _raw_snappy_bomb),
}


@pytest.fixture(scope="module")
def bombs():
    return {name: (cid, make()) for name, (cid, make) in BOMBS.items()}


# -- codec ids --------------------------------------------------------------------------------
def test_codec_ids():
    assert codec_id("LZ4") == 3
    assert codec_id("lz4") == 3
    assert codec_id("gzip") == 1 and codec_id("GZip") == 1
    assert codec_id("snappy") == 2
    assert codec_id("zstd") == 4
    assert codec_id("none") == 0 and codec_id(None) == 0
    for i in range(5):
        assert codec_id(i) == i


@pytest.mark.parametrize("bad", ["nope", "", "lz5", "gzip ", 5, -1, 3.0, True, b"lz4", object()])
def test_codec_id_rejects_unknown(bad):
    with pytest.raises(ValueError) as info:
        codec_id(bad)
    assert "unknown compression" in str(info.value)


def test_compressor_for_none_is_an_error():
    with pytest.raises(ValueError):
        compressor(codec.NONE)


# -- round trips ------------------------------------------------------------------------------
DATA = b"".join(b"record %d: " % i + bytes(range(i % 256)) for i in range(600))


@pytest.mark.parametrize("cid", [1, 2, 3, 4])
def test_compress_decompress_round_trip(cid):
    packed = compressor(cid)(DATA)
    assert len(packed) < len(DATA)
    assert decompress(cid, packed) == DATA
    assert decompress(cid, bytearray(packed)) == DATA
    assert decompress(cid, memoryview(packed)) == DATA
    assert decompress(cid, packed, max_size=len(DATA)) == DATA  # the cap is inclusive
    with pytest.raises(CorruptRecordError, match="more than"):
        decompress(cid, packed, max_size=len(DATA) - 1)


@pytest.mark.parametrize("cid", [1, 2, 3, 4])
def test_empty_input_data_round_trips(cid):
    assert decompress(cid, compressor(cid)(b"")) == b""


def test_foreign_framings_decode():
    """What other writers produce: gzip module output (any level), zlib stream, lz4 frames with
    content size / checksums / linked blocks, zstd with and without content size, several
    zstd frames back to back."""
    assert decompress(1, gzip.compress(DATA, 1)) == DATA
    assert decompress(1, zlib.compress(DATA)) == DATA
    for kwargs in (dict(), dict(store_size=True, content_checksum=True, block_checksum=True),
                   dict(block_size=lz4.frame.BLOCKSIZE_MAX4MB)):
        assert decompress(3, lz4.frame.compress(DATA, block_linked=False, **kwargs)) == DATA
    assert decompress(4, zstandard.ZstdCompressor(write_content_size=False).compress(DATA)) == DATA
    assert decompress(4, zstandard.ZstdCompressor(write_checksum=True).compress(DATA)) == DATA
    two = zstandard.ZstdCompressor().compress(DATA[:1000]) + zstandard.ZstdCompressor().compress(
        DATA[1000:])
    assert decompress(4, two) == DATA


def test_xerial_and_raw_snappy_both_decode():
    raw = bytes(cramjam.snappy.compress_raw(DATA))
    assert decompress(codec.SNAPPY, raw) == DATA
    # xerial framing (Java client, librdkafka): magic, two int32 versions, int32-sized blocks
    blocks = [bytes(cramjam.snappy.compress_raw(DATA[i:i + 1000])) for i in range(0, len(DATA), 1000)]
    assert len(blocks) > 1
    xerial = codec.XERIAL_MAGIC + struct.pack(">ii", 1, 1) + b"".join(
        struct.pack(">i", len(b)) + b for b in blocks)
    assert decompress(codec.SNAPPY, xerial) == DATA
    # klog writes xerial framing itself
    ours = compressor(codec.SNAPPY)(DATA)
    assert ours.startswith(codec.XERIAL_MAGIC)
    assert decompress(codec.SNAPPY, ours) == DATA
    # a xerial stream with no blocks is empty, not an error
    assert decompress(codec.SNAPPY, codec.XERIAL_MAGIC + struct.pack(">ii", 1, 1)) == b""


def test_xerial_with_little_endian_versions_decodes():
    """Some producers (Redpanda) write the version fields little-endian; only the magic counts."""
    block = bytes(cramjam.snappy.compress_raw(DATA))
    xerial = codec.XERIAL_MAGIC + struct.pack("<ii", 1, 1) + struct.pack(">i", len(block)) + block
    assert decompress(codec.SNAPPY, xerial) == DATA


# -- caps -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_is_refused_quickly(bombs, name):
    cid, bomb = bombs[name]
    assert len(bomb) < 8 * MiB  # it is small on the wire...
    start = time.perf_counter()
    with pytest.raises(CorruptRecordError, match="more than 1048576 bytes"):
        decompress(cid, bomb, max_size=MiB)
    # ...and refused long before 100 MiB could be produced
    assert time.perf_counter() - start < 1.0


def test_bomb_under_default_cap_is_refused(bombs):
    # the default cap (64 MiB) also stops a 100 MiB bomb
    assert codec.DEFAULT_MAX_SIZE < BOMB_SIZE
    for name in ("gzip", "zstd"):
        cid, bomb = bombs[name]
        with pytest.raises(CorruptRecordError):
            decompress(cid, bomb)


_MEASURE = r"""
import json, resource, sys
from klog.codec import decompress
from klog.errors import CorruptRecordError
out = {}
for name, cid, path in json.loads(sys.argv[1]):
    data = open(path, "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        decompress(cid, data, max_size=1 << 20)
        out[name] = "accepted"
    except CorruptRecordError:
        out[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps(out))
"""


def test_bombs_do_not_allocate_the_full_output(bombs, tmp_path):
    """Peak memory (max RSS, in a fresh process) grows by a few MiB, not by 100 MiB."""
    jobs = []
    for name, (cid, bomb) in bombs.items():
        path = tmp_path / name
        path.write_bytes(bomb)
        jobs.append((name, cid, str(path)))
    # the largest bomb first, so reading the next file cannot hide behind an earlier peak
    jobs.sort(key=lambda j: -os.path.getsize(j[2]))
    r = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(jobs)], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    growth_kib = json.loads(r.stdout)
    assert set(growth_kib) == set(BOMBS)
    for name, grew in growth_kib.items():
        assert grew != "accepted", name
        assert grew < 24 * 1024, f"{name}: peak RSS grew by {grew} KiB decoding a capped bomb"


def test_snappy_cap_spans_xerial_blocks():
    """Each xerial block is small; the cap applies to their sum."""
    block = bytes(cramjam.snappy.compress_raw(bytes(32 << 10)))
    xerial = codec.XERIAL_MAGIC + struct.pack(">ii", 1, 1) + (struct.pack(">i", len(block)) + block) * 40
    assert len(decompress(codec.SNAPPY, xerial, max_size=40 * (32 << 10))) == 40 * (32 << 10)
    with pytest.raises(CorruptRecordError):
        decompress(codec.SNAPPY, xerial, max_size=40 * (32 << 10) - 1)


def test_raw_snappy_declared_length_over_cap_is_refused_before_decoding():
    # A raw snappy stream starts with its uncompressed length; a lie about it is enough.
    lie = bytes([0x80, 0x80, 0x80, 0x80, 0x08]) + b"\x00" * 10  # declares 2 GiB
    with pytest.raises(CorruptRecordError, match="more than"):
        decompress(codec.SNAPPY, lie, max_size=MiB)


# -- garbage ----------------------------------------------------------------------------------
GARBAGE = [
    b"",
    b"\x05",  # (b"\x00" alone is a valid raw snappy stream of nothing)
    b"\x00" * 64,
    b"\xff" * 64,
    os.urandom(0) + bytes(range(256)),
    b"not compressed at all, just text" * 4,
]


@pytest.mark.parametrize("cid", [1, 2, 3, 4])
@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_is_corrupt_record_error(cid, garbage):
    with pytest.raises(CorruptRecordError):
        decompress(cid, garbage)


def _xerial_block_ends(stream):
    ends, pos = {16}, 16
    while pos < len(stream):
        pos += 4 + struct.unpack_from(">i", stream, pos)[0]
        ends.add(pos)
    return ends


@pytest.mark.parametrize("cid", [1, 2, 3, 4])
def test_every_truncation_is_corrupt_record_error(cid):
    data = DATA[:3000] if cid != codec.SNAPPY else DATA[:100_000]  # several xerial blocks
    packed = compressor(cid)(data)
    # xerial framing has no end mark: a cut at a block boundary is a shorter valid stream
    ok_cuts = _xerial_block_ends(packed) if cid == codec.SNAPPY else set()
    if cid == codec.SNAPPY:
        assert len(ok_cuts) > 3
    for cut in range(0, len(packed)):
        piece = packed[:cut]
        try:
            out = decompress(cid, piece)
        except CorruptRecordError:
            continue
        if cut in ok_cuts and data.startswith(out):
            continue
        pytest.fail(f"codec {cid}: {cut} of {len(packed)} bytes decoded to {len(out)} bytes "
                    "instead of failing")


def _reference_decompress(cid, data):
    """The same stream decoded by the reference libraries (the xerial framing parsed here:
    16-byte header, then int32-length-prefixed raw snappy blocks); None if they refuse it."""
    try:
        if cid == codec.GZIP:
            return gzip.decompress(data)
        if cid == codec.SNAPPY:
            if not data.startswith(codec.XERIAL_MAGIC):
                return bytes(cramjam.snappy.decompress_raw(data))
            out, pos = [], 16
            while pos < len(data):
                (n,) = struct.unpack_from(">i", data, pos)
                if n < 0 or pos + 4 + n > len(data):
                    return None
                out.append(bytes(cramjam.snappy.decompress_raw(data[pos + 4:pos + 4 + n])))
                pos += 4 + n
            return b"".join(out)
        if cid == codec.LZ4:
            return lz4.frame.decompress(data)
        if cid == codec.ZSTD:
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except Exception:  # noqa: BLE001 - any refusal by the reference counts as "refused"
        return None
    raise AssertionError(cid)


@pytest.mark.parametrize("cid", [1, 2, 3, 4])
def test_flipped_bytes_are_corrupt_or_differ(cid):
    """A damaged stream never raises anything but CorruptRecordError, and what does decode is
    checked: the original data (the flip hit a byte that does not matter, such as gzip's
    mtime), or else exactly what the reference library makes of the same damaged bytes."""
    packed = bytearray(compressor(cid)(DATA))
    seen = {"corrupt": 0, "same": 0, "differ": 0}
    for pos in range(0, len(packed), max(1, len(packed) // 97)):
        bad = bytearray(packed)
        bad[pos] ^= 0xA5
        try:
            out = decompress(cid, bytes(bad))
        except CorruptRecordError:
            seen["corrupt"] += 1
            continue
        if out == DATA:
            seen["same"] += 1
            continue
        seen["differ"] += 1
        ref = _reference_decompress(cid, bytes(bad))
        assert ref is not None, f"codec {cid}: flip at byte {pos} decoded, the reference refuses it"
        assert out == ref, f"codec {cid}: flip at byte {pos} decoded unlike the reference"
    assert seen["corrupt"] > 0, seen   # damage is noticed, not always decoded into something


def test_xerial_damage():
    good = compressor(codec.SNAPPY)(DATA)
    cases = [
        codec.XERIAL_MAGIC,                              # header cut short
        codec.XERIAL_MAGIC + b"\x00\x00\x00",
        good[:16] + b"\x00\x00",                         # block size cut short
        good[:16] + struct.pack(">i", -5) + b"xxxxx",    # negative block size
        good[:16] + struct.pack(">i", 1 << 30) + b"x",   # block size past the end
        good[:-3],                                       # last block cut short
        good + b"\x00",                                  # trailing junk block header
    ]
    for data in cases:
        with pytest.raises(CorruptRecordError):
            decompress(codec.SNAPPY, data)


@pytest.mark.parametrize("cid", [0, 5, 6, 7, -1, 100])
def test_unknown_codec_id_is_corrupt_record_error(cid):
    with pytest.raises(CorruptRecordError, match="unknown compression codec"):
        decompress(cid, b"whatever")


def test_library_errors_are_wrapped():
    with pytest.raises(CorruptRecordError) as info:
        decompress(codec.ZSTD, b"\x28\xb5\x2f\xfd" + b"\xff" * 20)
    assert "zstd" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
