"""Tests for klog._native.partitioner.

Oracles: published Java vectors, kafka-python's and aiokafka's pure-Python murmur2 and
DefaultPartitioner (both return the hash unsigned), and ``zlib.crc32`` for librdkafka's
consistent hash.
"""

import array
import mmap
import sys
import warnings
import zlib

import aiokafka.partitioner as aiokafka_partitioner
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from klog._native import partitioner as m

with warnings.catch_warnings():
    # kafka-python loads its protocol schemas with deprecated importlib.resources calls.
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.partitioner.default as kafka_python_partitioner

INT32_MAX = 2**31 - 1

# Signed, as Java's Utils.murmur2 returns them.
JAVA_VECTORS = {
    # librdkafka src/rdmurmur2.c (given there unsigned: 0xd067cf64, 0x9fc97b14, 0x106e08d9)
    b"kafka": -798503068,
    b"1234": -1614185708,
    b"": 275646681,
    # Kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

UNSIGNED_VECTORS = {b"kafka": 0xD067CF64, b"1234": 0x9FC97B14, b"": 0x106E08D9}

keys = st.binary(max_size=64)
long_keys = st.binary(min_size=1000, max_size=20_000)
partition_counts = st.one_of(st.integers(1, 300), st.integers(1, INT32_MAX))
key_lists = st.lists(st.one_of(st.none(), keys), max_size=50)


def java_partition(key, n):
    return (m.murmur2(key) & 0x7FFFFFFF) % n


class FakeCluster:
    """The slice of kafka-python's ClusterMetadata that DefaultPartitioner reads."""

    def __init__(self, n):
        self.n = n

    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return set(range(self.n))

    def available_partitions_for_topic(self, topic):
        return set(range(self.n))


def test_extension_is_native():
    assert m.__file__.endswith((".so", ".pyd"))


def test_cimportable():
    # Other Cython modules cimport these; they must be exported.
    assert {"murmur2", "crc32"} <= set(m.__pyx_capi__)


# --- murmur2 --------------------------------------------------------------------------------


@pytest.mark.parametrize("key,expected", JAVA_VECTORS.items(), ids=repr)
def test_java_vectors(key, expected):
    assert m.murmur2(key) == expected


@pytest.mark.parametrize("key,expected", UNSIGNED_VECTORS.items(), ids=repr)
def test_unsigned_vectors(key, expected):
    assert m.murmur2(key) & 0xFFFFFFFF == expected
    # Same bits, different convention: the Python clients return the unsigned value.
    assert kafka_python_partitioner.murmur2(key) == expected
    assert aiokafka_partitioner.murmur2(key) == expected


def test_signed_like_java():
    assert m.murmur2(b"kafka") < 0
    assert m.murmur2(b"abc") > 0
    assert m.murmur2(b"kafka") == 0xD067CF64 - 2**32


@given(keys)
def test_murmur2_matches_kafka_python(key):
    h = m.murmur2(key)
    assert -(2**31) <= h <= INT32_MAX
    assert h & 0xFFFFFFFF == kafka_python_partitioner.murmur2(key)


@given(keys)
def test_murmur2_matches_aiokafka(key):
    assert m.murmur2(key) & 0xFFFFFFFF == aiokafka_partitioner.murmur2(key)


@settings(max_examples=25)
@given(long_keys)
def test_murmur2_long_keys(key):
    assert m.murmur2(key) & 0xFFFFFFFF == kafka_python_partitioner.murmur2(key)


@pytest.mark.parametrize("tail", [0, 1, 2, 3])
@pytest.mark.parametrize("words", [0, 1, 2, 7])
@given(data=st.data())
def test_murmur2_tails(tail, words, data):
    key = data.draw(st.binary(min_size=4 * words + tail, max_size=4 * words + tail))
    assert m.murmur2(key) & 0xFFFFFFFF == kafka_python_partitioner.murmur2(key)


def test_high_bytes():
    # Java bytes are signed; the reference masks with 0xff. 0x80..0xff must not sign-extend.
    for key in (b"\xff", b"\x80\xff", b"\xff\xfe\xfd", b"\xff" * 4, b"\x80" * 7):
        assert m.murmur2(key) & 0xFFFFFFFF == kafka_python_partitioner.murmur2(key)


BUFFERS = [
    pytest.param(bytearray, id="bytearray"),
    pytest.param(memoryview, id="memoryview"),
    pytest.param(lambda b: memoryview(b"...." + b + b"..")[4:-2], id="memoryview-slice"),
    pytest.param(lambda b: array.array("B", b), id="array-B"),
    pytest.param(type("BytesSub", (bytes,), {}), id="bytes-subclass"),
]


@pytest.mark.parametrize("wrap", BUFFERS)
@pytest.mark.parametrize("key", list(JAVA_VECTORS), ids=repr)
def test_buffers_hash_as_bytes(wrap, key):
    assert m.murmur2(wrap(key)) == JAVA_VECTORS[key]
    assert m.partition_for_key(wrap(key), 7) == java_partition(key, 7)
    assert m.crc32(wrap(key)) == zlib.crc32(key)


def test_buffer_item_format_is_ignored():
    ints = array.array("i", [1, -2, 3])
    assert m.murmur2(ints) == m.murmur2(ints.tobytes())
    assert m.crc32(memoryview(ints)) == zlib.crc32(ints.tobytes())


def test_mmap_buffer():
    with mmap.mmap(-1, 4096) as mm:
        mm[:5] = b"kafka"
        assert m.murmur2(memoryview(mm)[:5]) == JAVA_VECTORS[b"kafka"]


def test_non_contiguous_buffer():
    view = memoryview(b"abcdef")[::2]
    with pytest.raises(BufferError, match="contiguous"):
        m.murmur2(view)
    with pytest.raises(BufferError, match=r"keys\[1\]"):
        m.partition_keys([b"x", view], 3)


# --- Java partition -------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(JAVA_VECTORS), ids=repr)
@pytest.mark.parametrize("n", [1, 2, 3, 6, 12, 100, 1000, INT32_MAX])
def test_partition_for_vectors(key, n):
    assert m.partition_for_key(key, n) == (JAVA_VECTORS[key] & 0x7FFFFFFF) % n


def test_partition_masks_not_abs():
    h = JAVA_VECTORS[b"kafka"]
    differing = [n for n in range(2, 50) if (h & 0x7FFFFFFF) % n != abs(h) % n]
    assert differing
    for n in differing:
        assert m.partition_for_key(b"kafka", n) == (h & 0x7FFFFFFF) % n


@given(keys, partition_counts)
def test_partition_matches_kafka_python_default_partitioner(key, n):
    cluster = FakeCluster(n) if n <= 300 else None
    if cluster is not None:
        p = kafka_python_partitioner.DefaultPartitioner()
        assert m.partition_for_key(key, n) == p.partition("t", key, key, None, None, cluster)
    assert m.partition_for_key(key, n) == (kafka_python_partitioner.murmur2(key) & 0x7FFFFFFF) % n


@given(keys, st.integers(1, 300))
def test_partition_matches_aiokafka_default_partitioner(key, n):
    partitions = list(range(n))
    expected = aiokafka_partitioner.DefaultPartitioner()(key, partitions, partitions)
    assert m.partition_for_key(key, n) == expected


def test_partition_none_key():
    assert m.partition_for_key(None, 5) == -1
    assert m.partition_for_key(b"", 5) == (JAVA_VECTORS[b""] & 0x7FFFFFFF) % 5  # hashed, as in Java


@given(key_lists, partition_counts)
def test_partition_keys_equals_per_key(ks, n):
    expected = [m.partition_for_key(k, n) for k in ks]
    assert m.partition_keys(ks, n) == expected
    assert m.partition_keys(tuple(ks), n) == expected


@pytest.mark.parametrize("n,count", [(12, 2000), (257, 2000), (1000, 5000), (1000, 10), (70_000, 100_000)])
def test_partition_keys_shared_ints(n, count):
    # Covers the small-int range, the shared-int table (n <= count) and plain ints (n > count).
    ks = [i.to_bytes(4, "little") + b"key" for i in range(count)]
    out = m.partition_keys(ks, n)
    assert type(out) is list
    assert out == [java_partition(k, n) for k in ks]
    assert len(set(out)) > min(n, count) // 2  # the hash spreads


def test_partition_keys_mixed_types():
    ks = [b"kafka", None, bytearray(b"1234"), memoryview(b"abc"), b"", array.array("B", b"21")]
    assert m.partition_keys(ks, 10) == [
        java_partition(b"kafka", 10),
        -1,
        java_partition(b"1234", 10),
        java_partition(b"abc", 10),
        java_partition(b"", 10),
        java_partition(b"21", 10),
    ]


def test_partition_keys_sequence_types():
    class Seq:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            if i >= 2:
                raise IndexError(i)
            return [b"a", None][i]

    assert m.partition_keys(Seq(), 4) == [java_partition(b"a", 4), -1]
    assert m.partition_keys([], 4) == []
    assert m.partition_keys((), 4) == []


# --- CRC-32 (librdkafka consistent / consistent_random) -------------------------------------


def test_crc32_check_value():
    assert m.crc32(b"123456789") == 0xCBF43926
    assert m.crc32(b"") == 0


@pytest.mark.parametrize("n", list(range(0, 40)) + [63, 64, 65, 1000, 4097])
def test_crc32_lengths_and_offsets(n):
    data = bytes((i * 131 + 7) & 0xFF for i in range(n + 8))
    view = memoryview(data)
    for off in range(8):
        assert m.crc32(view[off : off + n]) == zlib.crc32(view[off : off + n])


@given(st.one_of(keys, long_keys))
def test_crc32_matches_zlib(key):
    assert m.crc32(key) == zlib.crc32(key)


@given(keys, partition_counts)
def test_crc32_partition(key, n):
    expected = zlib.crc32(key) % n if key else -1
    assert m.crc32_partition(key, n) == expected


def test_crc32_partition_empty_and_none():
    assert m.crc32_partition(b"", 3) == -1
    assert m.crc32_partition(bytearray(), 3) == -1
    assert m.crc32_partition(None, 3) == -1


def test_crc32_vs_murmur2_differ():
    # The reference's warning: librdkafka's default and Java's disagree for the same key.
    ks = [b"key-%d" % i for i in range(100)]
    assert m.crc32_partition_keys(ks, 12) != m.partition_keys(ks, 12)


@given(key_lists, partition_counts)
def test_crc32_partition_keys_equals_per_key(ks, n):
    expected = [m.crc32_partition(k, n) for k in ks]
    assert m.crc32_partition_keys(ks, n) == expected
    assert m.crc32_partition_keys(ks, n) == [zlib.crc32(k) % n if k else -1 for k in ks]


# --- bad input ------------------------------------------------------------------------------

SINGLE = [m.partition_for_key, m.crc32_partition]
MANY = [m.partition_keys, m.crc32_partition_keys]


@pytest.mark.parametrize("fn", [m.murmur2, m.crc32])
def test_hash_rejects_str_and_none(fn):
    with pytest.raises(TypeError, match=r"key is a str; .*encode"):
        fn("kafka")
    with pytest.raises(TypeError, match="bytes or a bytes-like object, not NoneType"):
        fn(None)
    with pytest.raises(TypeError, match="not int"):
        fn(42)


@pytest.mark.parametrize("fn", SINGLE)
def test_single_rejects_str(fn):
    with pytest.raises(TypeError, match=r"key is a str; .*encode\('utf-8'\)"):
        fn("kafka", 3)
    with pytest.raises(TypeError, match="not float"):
        fn(1.5, 3)


@pytest.mark.parametrize("fn", MANY)
def test_many_names_the_bad_key(fn):
    with pytest.raises(TypeError, match=r"keys\[2\] is a str; .*encode"):
        fn([b"a", None, "c"], 3)
    with pytest.raises(TypeError, match=r"keys\[1\] must be bytes, a bytes-like object or None, not int"):
        fn([b"a", 7], 3)


@pytest.mark.parametrize("fn", MANY)
@pytest.mark.parametrize(
    "keys,match",
    [
        (5, "sequence .* not int"),
        (None, "sequence .* not NoneType"),
        ({b"a", b"b"}, "sequence .* not set"),
        ((k for k in [b"a"]), "sequence .* not generator"),
        ({b"a": 1}, "sequence .* not dict"),
        (b"abc", "not a single bytes"),
        (bytearray(b"abc"), "not a single bytearray"),
        (memoryview(b"abc"), "not a single memoryview"),
        ("abc", "not a single str"),
    ],
    ids=["int", "None", "set", "generator", "dict", "bytes", "bytearray", "memoryview", "str"],
)
def test_many_rejects_non_sequences(fn, keys, match):
    with pytest.raises(TypeError, match=match):
        fn(keys, 3)


BAD_COUNTS = [
    (0, "got 0"),
    (-1, "got -1"),
    ("3", "got str '3'"),
    (3.0, "got float 3.0"),
    (None, "got NoneType None"),
    (True, r"got True \(bool\)"),
    (2**31, "at most 2147483647"),
    (2**70, "got 1180591620717411303424"),
]


@pytest.mark.parametrize("fn", SINGLE + MANY)
@pytest.mark.parametrize("n,match", BAD_COUNTS, ids=[repr(n) for n, _ in BAD_COUNTS])
def test_bad_num_partitions(fn, n, match):
    key = [b"k"] if fn in MANY else b"k"
    with pytest.raises(ValueError, match="num_partitions must be") as info:
        fn(key, n)
    assert info.match(match)


@pytest.mark.parametrize("fn", MANY)
def test_bad_num_partitions_checked_for_empty_keys(fn):
    with pytest.raises(ValueError, match="num_partitions"):
        fn([], 0)


def test_index_types_accepted_as_num_partitions():
    class Twelve:
        def __index__(self):
            return 12

    assert m.partition_for_key(b"kafka", Twelve()) == m.partition_for_key(b"kafka", 12)
    assert m.partition_keys([b"kafka"], Twelve()) == [m.partition_for_key(b"kafka", 12)]
