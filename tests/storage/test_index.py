"""OffsetIndex and TimeIndex against a bisect oracle over sorted lists (Kafka's AbstractIndex
tests do the same), plus their on-disk formats: Kafka's big-endian 8- and 12-byte entries."""
import bisect
import os
import struct
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from klog.errors import CorruptIndexError
from klog._native.index import OffsetIndex, TimeIndex

from .helpers import examples

INT32_MAX = (1 << 31) - 1
UINT32_MAX = (1 << 32) - 1
OFFSET_ENTRY = 8
TIME_ENTRY = 12


# -- strategies ------------------------------------------------------------------------------
@st.composite
def offset_entries(draw, max_entries=150):
    """(base, [(offset, position)]) with strictly increasing offsets and positions that fit."""
    base = draw(st.one_of(st.just(0), st.integers(0, 1 << 50)))
    n = draw(st.integers(0, max_entries))
    rel = draw(st.integers(0, 3))
    pos = draw(st.integers(0, 1 << 12))
    out = []
    for _ in range(n):
        out.append((base + rel, pos))
        rel += draw(st.integers(1, 1 << 22))
        pos += draw(st.integers(1, 1 << 24))
    return base, out


@st.composite
def time_entries(draw, max_entries=150):
    """(base, [(timestamp, offset)]) with strictly increasing timestamps, non-decreasing offsets."""
    base = draw(st.one_of(st.just(0), st.integers(0, 1 << 50)))
    n = draw(st.integers(0, max_entries))
    ts = draw(st.integers(-1, 1 << 42))
    rel = draw(st.integers(0, 3))
    out = []
    for _ in range(n):
        out.append((ts, base + rel))
        ts += draw(st.integers(1, 1 << 20))
        rel += draw(st.integers(0, 1 << 20))
    return base, out


def probe_targets(data, keys, low, high):
    """Every key, its neighbours, the ends, and some random values in [low, high]."""
    targets = {low, high}
    for k in keys:
        targets.update((k - 1, k, k + 1))
    targets.update(data.draw(st.lists(st.integers(low, high), max_size=30)))
    return sorted(targets)


# -- oracles ---------------------------------------------------------------------------------
def expected_lookup(base, entries, target):
    """Largest entry with offset <= target; (base, 0) if none."""
    i = bisect.bisect_right([o for o, _ in entries], target) - 1
    return entries[i] if i >= 0 else (base, 0)


def expected_lookup_before(base, entries, timestamp):
    """Last entry with timestamp < the given one; (-1, base) if none."""
    i = bisect.bisect_left([t for t, _ in entries], timestamp) - 1
    return entries[i] if i >= 0 else (-1, base)


def check_offset_index(index, base, entries, targets):
    assert index.entries == len(entries)
    assert [index.entry(i) for i in range(len(entries))] == entries
    for t in targets:
        assert index.lookup(t) == expected_lookup(base, entries, t), t


def check_time_index(index, base, entries, targets):
    assert index.entries == len(entries)
    assert [index.entry(i) for i in range(len(entries))] == entries
    assert index.last_entry == (entries[-1] if entries else (-1, base))
    for t in targets:
        assert index.lookup_before(t) == expected_lookup_before(base, entries, t), t


# -- OffsetIndex -------------------------------------------------------------------------------
@examples(60)
@given(offset_entries(), st.data())
def test_offset_lookup_matches_bisect_and_survives_reopen(spec, data):
    base, entries = spec
    offsets = [o for o, _ in entries]
    targets = probe_targets(data, offsets, max(0, base - 2), base + INT32_MAX + 2)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "0.index")
        index = OffsetIndex(path, base, 4096 * OFFSET_ENTRY)
        for o, p in entries:
            index.append(o, p)
        check_offset_index(index, base, entries, targets)
        assert index.last_offset == (entries[-1][0] if entries else base)
        index.close()
        # trimmed to exactly its entries: the file is the index
        assert os.path.getsize(path) == len(entries) * OFFSET_ENTRY
        for writable in (False, True):
            reopened = OffsetIndex(path, base, 4096 * OFFSET_ENTRY, writable)
            check_offset_index(reopened, base, entries, targets)
            reopened.close()


@examples(60)
@given(offset_entries(), st.data())
def test_offset_truncate_to_keeps_entries_below(spec, data):
    base, entries = spec
    hi = entries[-1][0] + 2 if entries else base + 2
    cut = data.draw(st.one_of(st.sampled_from([o for o, _ in entries] or [base]),
                              st.integers(base, hi)))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "0.index")
        index = OffsetIndex(path, base, 4096 * OFFSET_ENTRY)
        for o, p in entries:
            index.append(o, p)
        index.truncate_to(cut)
        kept = [e for e in entries if e[0] < cut]
        check_offset_index(index, base, kept, probe_targets(data, [o for o, _ in entries], base, hi))
        # appending continues after the cut
        nxt = (kept[-1][0] + 1, kept[-1][1] + 1) if kept else (base, 0)
        index.append(*nxt)
        assert index.lookup(nxt[0]) == nxt
        index.close()
        assert os.path.getsize(path) == (len(kept) + 1) * OFFSET_ENTRY


def test_offset_append_rejects_non_increasing_and_out_of_range(tmp_path):
    base = 1000
    index = OffsetIndex(str(tmp_path / "x.index"), base, 1 << 16)
    with pytest.raises(ValueError):
        index.append(base - 1, 0)           # relative offset < 0
    with pytest.raises(ValueError):
        index.append(base + INT32_MAX + 1, 0)  # relative offset does not fit 32 bits
    with pytest.raises(ValueError):
        index.append(base, UINT32_MAX + 1)  # position does not fit 32 bits
    with pytest.raises(ValueError):
        index.append(base, -1)              # negative position
    assert index.entries == 0
    index.append(base + 10, 100)
    for o, p in [(base + 10, 200), (base + 9, 200), (base + 11, 100), (base + 11, 99)]:
        with pytest.raises(ValueError):
            index.append(o, p)
    assert index.entries == 1 and index.entry(0) == (base + 10, 100)
    # the extremes that do fit are accepted and read back exactly
    index.append(base + INT32_MAX, UINT32_MAX)
    assert index.entry(1) == (base + INT32_MAX, UINT32_MAX)
    assert index.lookup(base + INT32_MAX + 5) == (base + INT32_MAX, UINT32_MAX)
    index.close()


@pytest.mark.parametrize("slack", [0, 1, 7])
def test_offset_is_full_at_max_bytes(tmp_path, slack):
    cap = 5
    path = str(tmp_path / "x.index")
    index = OffsetIndex(path, 0, cap * OFFSET_ENTRY + slack)
    for i in range(cap):
        assert not index.is_full
        index.append(i * 2, i * 100)
    assert index.is_full and index.entries == cap
    with pytest.raises((CorruptIndexError, ValueError)):
        index.append(100, 10_000)
    assert index.entries == cap
    index.close()
    assert os.path.getsize(path) == cap * OFFSET_ENTRY


def test_offset_raw_bytes_are_kafka_format(tmp_path):
    base = 5_000_000_000
    entries = [(base, 0), (base + 7, 4100), (base + 70_000, 0x7FFFFFFF), (base + INT32_MAX, UINT32_MAX)]
    path = str(tmp_path / "x.index")
    index = OffsetIndex(path, base, 1 << 10)
    for o, p in entries:
        index.append(o, p)
    index.close()
    raw = open(path, "rb").read()
    assert len(raw) == len(entries) * OFFSET_ENTRY
    # int32 relative offset, int32 position, big-endian (Kafka's OffsetIndex)
    assert [struct.unpack_from(">iI", raw, i * 8) for i in range(len(entries))] == \
        [(o - base, p) for o, p in entries]
    assert raw[:8] == b"\0" * 8 and raw[8:16] == bytes.fromhex("00000007 00001004")


def test_offset_torn_last_entry_is_dropped(tmp_path):
    path = str(tmp_path / "x.index")
    with open(path, "wb") as f:
        f.write(struct.pack(">ii", 1, 10) + struct.pack(">ii", 5, 50) + b"\0\0\0\x09\0")
    index = OffsetIndex(path, 100, 1 << 10)
    assert index.entries == 2
    assert index.lookup(1000) == (105, 50)
    index.append(109, 90)
    index.close()
    assert open(path, "rb").read()[16:] == struct.pack(">ii", 9, 90)


def test_offset_sanity_check(tmp_path):
    path = str(tmp_path / "x.index")
    index = OffsetIndex(path, 0, 1 << 10)
    for o, p in [(3, 0), (8, 500), (20, 1000)]:
        index.append(o, p)
    index.sanity_check(1001)
    with pytest.raises(CorruptIndexError, match="x.index"):
        index.sanity_check(1000)   # last entry points at the log end: no batch there
    with pytest.raises(CorruptIndexError):
        index.sanity_check(600)
    index.close()
    # out-of-order offsets / positions written behind the index's back
    for bad in [struct.pack(">ii", 8, 600), struct.pack(">ii", 9, 400)]:
        raw = bytearray(open(path, "rb").read())
        raw[16:24] = bad
        bad_path = str(tmp_path / f"bad{bad.hex()}.index")
        with open(bad_path, "wb") as f:
            f.write(raw)
        reopened = OffsetIndex(bad_path, 0, 1 << 10, False)
        with pytest.raises(CorruptIndexError):
            reopened.sanity_check(1 << 20)
        reopened.close()
    empty = OffsetIndex(str(tmp_path / "empty.index"), 0, 1 << 10)
    empty.sanity_check(0)
    empty.close()


# -- TimeIndex ---------------------------------------------------------------------------------
@examples(60)
@given(time_entries(), st.data())
def test_time_lookup_before_matches_bisect_and_survives_reopen(spec, data):
    base, entries = spec
    stamps = [t for t, _ in entries]
    targets = probe_targets(data, stamps, -5, (stamps[-1] + 5) if stamps else 10)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "0.timeindex")
        index = TimeIndex(path, base, 4096 * TIME_ENTRY)
        for t, o in entries:
            index.append(t, o)
        check_time_index(index, base, entries, targets)
        index.close()
        assert os.path.getsize(path) == len(entries) * TIME_ENTRY
        for writable in (False, True):
            reopened = TimeIndex(path, base, 4096 * TIME_ENTRY, writable)
            check_time_index(reopened, base, entries, targets)
            reopened.close()


@examples(60)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 3)), max_size=80), st.data())
def test_time_append_only_when_timestamp_grows(steps, data):
    """Kafka's maybeAppend: an entry whose timestamp is not greater than the last is skipped."""
    base = 500
    model = []
    offset = base
    with tempfile.TemporaryDirectory() as d:
        index = TimeIndex(os.path.join(d, "0.timeindex"), base, 4096 * TIME_ENTRY)
        for ts, step in steps:
            offset += step
            index.append(ts, offset)
            if not model or ts > model[-1][0]:
                model.append((ts, offset))
        check_time_index(index, base, model, probe_targets(data, [t for t, _ in model], -2, 55))
        index.close()


@examples(60)
@given(time_entries(), st.data())
def test_time_truncate_to_drops_entries_at_or_after(spec, data):
    base, entries = spec
    hi = entries[-1][1] + 2 if entries else base + 2
    cut = data.draw(st.one_of(st.sampled_from([o for _, o in entries] or [base]),
                              st.integers(base, hi)))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "0.timeindex")
        index = TimeIndex(path, base, 4096 * TIME_ENTRY)
        for t, o in entries:
            index.append(t, o)
        index.truncate_to(cut)
        kept = [e for e in entries if e[1] < cut]
        check_time_index(index, base, kept,
                         probe_targets(data, [t for t, _ in entries], -3, (entries[-1][0] + 3) if entries else 3))
        index.close()
        assert os.path.getsize(path) == len(kept) * TIME_ENTRY


def test_time_append_rejects_backwards_offsets_and_out_of_range(tmp_path):
    base = 1 << 40
    index = TimeIndex(str(tmp_path / "x.timeindex"), base, 1 << 12)
    with pytest.raises(ValueError):
        index.append(10, base - 1)
    with pytest.raises(ValueError):
        index.append(10, base + INT32_MAX + 1)
    assert index.entries == 0
    index.append(10, base + 5)
    with pytest.raises(ValueError):
        index.append(11, base + 4)          # later timestamp, earlier offset
    index.append(11, base + 5)              # equal offsets are allowed
    index.append(12, base + INT32_MAX)
    assert [index.entry(i) for i in range(index.entries)] == \
        [(10, base + 5), (11, base + 5), (12, base + INT32_MAX)]
    index.close()


@pytest.mark.parametrize("slack", [0, 1, 11])
def test_time_is_full_at_max_bytes(tmp_path, slack):
    cap = 4
    path = str(tmp_path / "x.timeindex")
    index = TimeIndex(path, 0, cap * TIME_ENTRY + slack)
    for i in range(cap):
        assert not index.is_full
        index.append(1000 + i, i)
    assert index.is_full and index.entries == cap
    with pytest.raises((CorruptIndexError, ValueError)):
        index.append(2000, 10)
    assert index.entries == cap
    index.close()
    assert os.path.getsize(path) == cap * TIME_ENTRY


def test_time_raw_bytes_are_kafka_format(tmp_path):
    base = 7_000_000_000
    entries = [(-1, base), (1_700_000_000_000, base + 3), (1 << 62, base + INT32_MAX)]
    path = str(tmp_path / "x.timeindex")
    index = TimeIndex(path, base, 1 << 10)
    for t, o in entries:
        index.append(t, o)
    index.close()
    raw = open(path, "rb").read()
    assert len(raw) == len(entries) * TIME_ENTRY
    # int64 timestamp, int32 relative offset, big-endian (Kafka's TimeIndex)
    assert [struct.unpack_from(">qi", raw, i * 12) for i in range(len(entries))] == \
        [(t, o - base) for t, o in entries]
    assert raw[12:24] == bytes.fromhex("0000018bcfe56800 00000003")


def test_time_sanity_check(tmp_path):
    path = str(tmp_path / "x.timeindex")
    index = TimeIndex(path, 10, 1 << 10)
    for t, o in [(100, 10), (200, 15), (300, 30)]:
        index.append(t, o)
    index.sanity_check(31)
    with pytest.raises(CorruptIndexError, match="x.timeindex"):
        index.sanity_check(30)     # an entry at or past the log end offset
    index.close()
    for i, bad in [(1, struct.pack(">qi", 100, 5)), (2, struct.pack(">qi", 300, 4))]:
        raw = bytearray(open(path, "rb").read())
        raw[i * 12:(i + 1) * 12] = bad   # timestamp not increasing / offset going backwards
        bad_path = str(tmp_path / f"bad{i}.timeindex")
        with open(bad_path, "wb") as f:
            f.write(raw)
        reopened = TimeIndex(bad_path, 10, 1 << 10, False)
        with pytest.raises(CorruptIndexError):
            reopened.sanity_check(1 << 40)
        reopened.close()
