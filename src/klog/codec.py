"""Batch compression codecs, by Kafka's attribute ids (CompressionType.java).

Writing: lz4 (the fast one, and what klog's benchmarks use), gzip, snappy and zstd; the native
batch builder hands the encoded records to these functions.
Reading: all four, in the framings Kafka clients produce:
- gzip: RFC 1952 gzip stream;
- snappy: Java clients and librdkafka write xerial's framing (magic ``\\x82SNAPPY\\x00``, two
  int32 versions, then int32-length-prefixed raw blocks); kafka-python may write raw snappy;
- lz4: the LZ4 frame format with independent blocks (KIP-57); the frame we write has no content
  size and no checksums, as the Java writer's;
- zstd: a zstd frame (with or without a content size).
Every decompressor is capped at ``max_size`` output bytes, so a small hostile batch cannot
allocate gigabytes (CVE-2023-34455).
"""
import struct
import zlib

import cramjam
import lz4.frame
import zstandard

from klog.errors import CorruptRecordError

NONE, GZIP, SNAPPY, LZ4, ZSTD = range(5)
NAMES = {"none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD}
BY_ID = {v: k for k, v in NAMES.items()}
XERIAL_MAGIC = b"\x82SNAPPY\x00"
DEFAULT_MAX_SIZE = 64 << 20
# Kafka clients' zstd levels use windows of a few MiB; a frame asking for more is refused rather
# than given the memory.
ZSTD_READER = zstandard.ZstdDecompressor(max_window_size=1 << 24)


def codec_id(name):
    """Kafka's codec id for a name ('lz4', ...) or None; raises ValueError for anything else."""
    if name is None:
        return NONE
    if isinstance(name, int) and not isinstance(name, bool) and name in BY_ID:
        return name
    try:
        return NAMES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"unknown compression {name!r}; expected one of {', '.join(NAMES)}") from None


def compressor(codec):
    """A ``bytes -> bytes`` function that compresses a batch's records with ``codec``."""
    if codec == LZ4:
        return _lz4_compress
    if codec == GZIP:
        return _gzip_compress
    if codec == SNAPPY:
        return _snappy_compress
    if codec == ZSTD:
        return _zstd_compress
    raise ValueError(f"codec {codec} does not compress")


def _lz4_compress(data):
    return lz4.frame.compress(
        data, block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_linked=False,
        content_checksum=False, store_size=False)


def _gzip_compress(data):
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def _snappy_compress(data):
    # xerial framing, as the Java client writes it, so every Kafka client can read it back.
    out = [XERIAL_MAGIC, struct.pack(">ii", 1, 1)]
    for i in range(0, len(data), 32 << 10):
        block = bytes(cramjam.snappy.compress_raw(data[i:i + (32 << 10)]))
        out.append(struct.pack(">i", len(block)))
        out.append(block)
    return b"".join(out)


def _zstd_compress(data):
    return zstandard.ZstdCompressor().compress(data)


def decompress(codec, data, max_size=DEFAULT_MAX_SIZE):
    """Decompress a batch's records; CorruptRecordError on bad data or output over ``max_size``."""
    try:
        if codec == GZIP:
            return _capped_zlib(data, max_size)
        if codec == SNAPPY:
            return _snappy_decompress(data, max_size)
        if codec == LZ4:
            return _capped_lz4(data, max_size)
        if codec == ZSTD:
            return _capped_zstd(data, max_size)
    except CorruptRecordError:
        raise
    except Exception as exc:  # each library has its own error types
        raise CorruptRecordError(f"cannot decompress {BY_ID.get(codec, codec)} batch: {exc}") from None
    raise CorruptRecordError(f"unknown compression codec id {codec} in batch attributes")


def _too_big(name, max_size):
    return CorruptRecordError(f"{name} batch decompresses to more than {max_size} bytes")


def _capped_zlib(data, max_size):
    d = zlib.decompressobj(47)  # 32 + 15: gzip or zlib header, detected
    out = d.decompress(data, max_size + 1)
    if len(out) > max_size or d.unconsumed_tail:
        raise _too_big("gzip", max_size)
    if not d.eof:
        raise CorruptRecordError("gzip batch is truncated")
    return out


def _snappy_decompress(data, max_size):
    data = bytes(data)
    if not data.startswith(XERIAL_MAGIC):
        return _capped_raw_snappy(data, max_size)
    if len(data) < 16:
        raise CorruptRecordError("snappy (xerial) header is truncated")
    out, pos, total = [], 16, 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise CorruptRecordError("snappy (xerial) block header is truncated")
        (n,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if n < 0 or n > len(data) - pos:
            raise CorruptRecordError(f"snappy (xerial) block of {n} bytes runs past the batch")
        block = _capped_raw_snappy(data[pos:pos + n], max_size - total, max_size)
        total += len(block)
        out.append(block)
        pos += n
    return b"".join(out)


def _capped_raw_snappy(data, max_size, reported_cap=None):
    if len(data) > 0:
        # The raw format starts with the uncompressed length as a varint: check it first.
        n, shift, i = 0, 0, 0
        while i < min(len(data), 5):
            b = data[i]
            n |= (b & 0x7F) << shift
            i += 1
            if b < 0x80:
                break
            shift += 7
        if n > max_size:
            raise _too_big("snappy", max_size if reported_cap is None else reported_cap)
    return bytes(cramjam.snappy.decompress_raw(data))


def _capped_lz4(data, max_size):
    d = lz4.frame.LZ4FrameDecompressor()
    out = d.decompress(bytes(data), max_length=max_size + 1)
    if len(out) > max_size:
        raise _too_big("lz4", max_size)
    if not d.eof:
        raise CorruptRecordError("lz4 batch is truncated")
    return out


def _capped_zstd(data, max_size):
    # Not stream_reader: it returns b"" for a truncated frame instead of failing.
    data = memoryview(bytes(data))
    out = bytearray()
    pos = 0
    while True:  # one zstd frame per pass (Kafka clients write one)
        d = ZSTD_READER.decompressobj()
        while not d.eof:
            if pos >= len(data):
                raise CorruptRecordError("zstd batch is truncated")
            # A block holds at most 128 KiB in at least 4 bytes (32768x): feed only as much input
            # as the remaining budget allows, so the output stops within ~2 MiB of max_size.
            chunk = data[pos:pos + max(64, (max_size - len(out)) >> 15)]
            pos += len(chunk)
            out += d.decompress(chunk)
            if len(out) > max_size:
                raise _too_big("zstd", max_size)
        pos -= len(d.unused_data)
        if pos >= len(data):
            return bytes(out)
