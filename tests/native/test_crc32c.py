"""Tests for klog._native.crc32c against the reference `crc32c` package."""

import array
import mmap
import random
from concurrent.futures import ThreadPoolExecutor

import crc32c as reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from klog._native import crc32c as m

needs_hw = pytest.mark.skipif(not m.HARDWARE, reason="CPU lacks the CRC-32C instruction")

IMPLS = [
    pytest.param(m.crc32c, id="dispatch"),
    pytest.param(m.crc32c_software, id="software"),
    pytest.param(m.crc32c_hardware, id="hardware", marks=needs_hw),
]

# Around the 3-way block sizes (3 * {64, 256, 1024, 8192}) plus odd tails.
LENGTHS = sorted(
    {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 61, 63, 64, 100, 127, 128}
    | {b + d for b in (192, 768, 3072, 24576, 2 * 24576) for d in (-9, -8, -1, 0, 1, 7, 8, 9)}
    | {1000, 4095, 4096, 4097, 65535, 65536, 65537, 100 * 1024}
)


def _payload(n, seed=0):
    return random.Random(seed * 1_000_003 + n).randbytes(n)


@pytest.mark.parametrize("fn", IMPLS)
def test_check_value(fn):
    assert fn(b"123456789") == 0xE3069283


@pytest.mark.parametrize("fn", IMPLS)
def test_rfc3720_vectors(fn):
    assert fn(bytes(32)) == 0x8A9136AA
    assert fn(b"\xff" * 32) == 0x62A8AB43
    assert fn(bytes(range(32))) == 0x46DD794E
    assert fn(bytes(range(31, -1, -1))) == 0x113FDB5C


@pytest.mark.parametrize("fn", IMPLS)
def test_empty(fn):
    assert fn(b"") == 0
    assert fn(b"", 0xDEADBEEF) == 0xDEADBEEF
    assert fn(memoryview(b"abc")[3:]) == 0


def test_hardware_flag():
    assert isinstance(m.HARDWARE, bool)
    if not m.HARDWARE:
        with pytest.raises(RuntimeError):
            m.crc32c_hardware(b"x")


def test_cimportable():
    # Other Cython modules cimport crc32c_update; it must be exported.
    assert "crc32c_update" in m.__pyx_capi__


@pytest.mark.parametrize("fn", IMPLS)
@pytest.mark.parametrize("n", LENGTHS)
def test_matches_reference_all_offsets(fn, n):
    data = _payload(n + 16)
    view = memoryview(data)
    for off in range(16):
        chunk = view[off : off + n]
        assert fn(chunk) == reference.crc32c(chunk), (n, off)


@pytest.mark.parametrize("fn", IMPLS)
@pytest.mark.parametrize("n", [0, 1, 61, 200, 5000, 80_000])
def test_incremental_equals_one_shot(fn, n):
    data = _payload(n, seed=1)
    expected = reference.crc32c(data)
    for cut in {0, 1, n // 3, n // 2, n - 1, n}:
        if 0 <= cut <= n:
            assert fn(data[cut:], fn(data[:cut])) == expected
    crc = 0
    for i in range(0, n, 997):
        crc = fn(data[i : i + 997], crc)
    assert crc == expected


@pytest.mark.parametrize("fn", IMPLS)
def test_value_matches_reference_continuation(fn):
    data = _payload(3000, seed=2)
    for value in (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x12345678):
        assert fn(data, value) == reference.crc32c(data, value)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), value=st.integers(0, 2**32 - 1), off=st.integers(0, 15))
def test_software_equals_hardware_small(data, value, off):
    view = memoryview(data)[min(off, len(data)) :]
    sw = m.crc32c_software(view, value)
    assert sw == reference.crc32c(view, value)
    assert m.crc32c(view, value) == sw
    if m.HARDWARE:
        assert m.crc32c_hardware(view, value) == sw


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 100 * 1024), seed=st.integers(0, 2**32), off=st.integers(0, 15))
def test_software_equals_hardware_large(n, seed, off):
    view = memoryview(_payload(n + off, seed))[off:]
    sw = m.crc32c_software(view)
    assert sw == reference.crc32c(view)
    assert m.crc32c(view) == sw
    if m.HARDWARE:
        assert m.crc32c_hardware(view) == sw


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=4096), cut=st.integers(0, 4096))
def test_incremental_property(data, cut):
    cut = min(cut, len(data))
    assert m.crc32c(data[cut:], m.crc32c(data[:cut])) == m.crc32c(data)


@pytest.mark.parametrize("fn", IMPLS)
def test_non_bytes_buffers(fn):
    raw = _payload(4099, seed=3)
    expected = reference.crc32c(raw)
    assert fn(bytearray(raw)) == expected
    assert fn(memoryview(raw)) == expected
    # Non-byte formats are read as their raw bytes.
    ints = array.array("I")
    ints.frombytes(raw[:4096])
    assert fn(ints) == reference.crc32c(raw[:4096])
    assert fn(memoryview(raw[:4096]).cast("Q")) == reference.crc32c(raw[:4096])
    assert fn(memoryview(raw[:4096]).cast("B", (64, 64))) == reference.crc32c(raw[:4096])
    with mmap.mmap(-1, len(raw)) as mm:
        mm.write(raw)
        assert fn(mm) == expected


@pytest.mark.parametrize("fn", IMPLS)
@pytest.mark.parametrize("bad", ["abc", None, 123, 1.5, [1, 2, 3]])
def test_rejects_non_buffers(fn, bad):
    with pytest.raises(TypeError):
        fn(bad)


@pytest.mark.parametrize("fn", IMPLS)
def test_rejects_non_contiguous(fn):
    with pytest.raises(BufferError, match="contiguous"):
        fn(memoryview(b"abcdefgh")[::2])
    with pytest.raises(BufferError, match="contiguous"):
        fn(memoryview(b"abcdefgh")[::-1])


def test_rejects_non_contiguous_numpy():
    np = pytest.importorskip("numpy")
    with pytest.raises(BufferError, match="contiguous"):
        m.crc32c(np.arange(10)[::2])
    with pytest.raises(BufferError, match="contiguous"):
        m.crc32c(np.zeros((4, 4), order="F"))
    arr = np.arange(1000, dtype=np.uint32)
    assert m.crc32c(arr) == reference.crc32c(arr.tobytes())


@pytest.mark.parametrize("fn", IMPLS)
@pytest.mark.parametrize("value", [-1, 2**32, 2**64, -(2**64)])
def test_rejects_out_of_range_value(fn, value):
    with pytest.raises(ValueError, match=r"2\*\*32"):
        fn(b"abc", value)


@pytest.mark.parametrize("fn", IMPLS)
@pytest.mark.parametrize("value", ["0", None, 1.0])
def test_rejects_non_int_value(fn, value):
    with pytest.raises(TypeError):
        fn(b"abc", value)


@pytest.mark.parametrize("fn", IMPLS)
def test_value_accepts_index_objects(fn):
    class Idx:
        def __index__(self):
            return 0x1234

    assert fn(b"abc", Idx()) == reference.crc32c(b"abc", 0x1234)
    assert fn(b"abc", True) == reference.crc32c(b"abc", 1)


def test_threads_large_inputs():
    # Inputs over the no-GIL threshold run concurrently; results must hold.
    bufs = [_payload(1 << 20, seed=s) for s in range(8)]
    expected = [reference.crc32c(b) for b in bufs]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(m.crc32c, bufs * 4)) == expected * 4
