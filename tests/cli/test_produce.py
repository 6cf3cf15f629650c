"""klog produce: stdin lines → records (keys, headers, partition, compression), checked through
the API after the subprocess exits."""
import re

import pytest

import klog
from klog.codec import codec_id

from .conftest import failed, ok, records, run, seed


def test_lines_without_key_delimiter(data_dir):
    seed(data_dir, "t", [])
    proc = run("produce", "t", data_dir=data_dir, input=b"first\na:b\r\n\nlast-without-newline")
    assert ok(proc) == ""
    assert proc.stderr == "produced 4 record(s) to t\n"
    got = records(data_dir, "t")
    assert [r[3] for r in got] == [b"first", b"a:b", b"", b"last-without-newline"]
    assert all(r[2] is None and r[4] == [] for r in got)   # no -K: no keys; no -H: no headers
    assert [r[1] for r in got] == [0, 1, 2, 3]


def test_key_delimiter_and_headers(data_dir):
    seed(data_dir, "t", [], partitions=3)
    proc = run("produce", "t", "-K", "::", "-H", "source=cli", "-H", "eq=a=b",
               data_dir=data_dir, input="k1::v1\nk2::v::2\nno-delimiter\n::empty-key\n")
    ok(proc)
    assert proc.stderr == "produced 4 record(s) to t\n"
    got = {r[3]: r for r in records(data_dir, "t")}
    assert {v: r[2] for v, r in got.items()} == {
        b"v1": b"k1", b"v::2": b"k2", b"no-delimiter": None, b"empty-key": b""}
    for r in got.values():
        assert r[4] == [("source", b"cli"), ("eq", b"a=b")]
    # keyed records go where the default partitioner puts them: same key, same partition
    ok(run("produce", "t", "-K", "::", data_dir=data_dir, input="k1::again\n"))
    by_value = {r[3]: r[0] for r in records(data_dir, "t")}
    assert by_value[b"again"] == by_value[b"v1"]


def test_explicit_partition(data_dir):
    seed(data_dir, "t", [], partitions=3)
    ok(run("produce", "t", "-p", "2", data_dir=data_dir, input="a\nb\nc\n"))
    ok(run("produce", "t", "--partition", "0", "-K", ":", data_dir=data_dir, input="k:d\n"))
    got = records(data_dir, "t")
    assert [(r[0], r[1], r[3]) for r in got] == [(0, 0, b"d"), (2, 0, b"a"), (2, 1, b"b"), (2, 2, b"c")]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression(data_dir, codec):
    seed(data_dir, "t", [])
    lines = [f"record {i} " + "abc" * 20 for i in range(50)]
    proc = run("produce", "t", "-z", codec, data_dir=data_dir, input="\n".join(lines) + "\n")
    ok(proc)
    assert proc.stderr == "produced 50 record(s) to t\n"
    assert [r[3].decode() for r in records(data_dir, "t")] == lines
    with klog.open(data_dir) as broker:    # the batches on disk carry the codec
        log = broker.log("t", 0)
        view = log.read(0, 1 << 20)
        pos, codecs = 0, set()
        while pos < view.nbytes:
            header = klog.read_header(view, pos)
            codecs.add(header.compression)
            pos += header.size
        del view
    assert codecs == {codec_id(codec)}


def test_auto_created_topic(data_dir):
    """Like kcat against a broker with auto.create.topics.enable (klog's default)."""
    ok(run("produce", "fresh", data_dir=data_dir, input="x\n"))
    assert [r[3] for r in records(data_dir, "fresh")] == [b"x"]


def test_refused_records_are_not_reported_as_produced(data_dir):
    """send() only queues: a refused append must fail the command, not say 'produced'."""
    seed(data_dir, "compacted", [], config={"cleanup.policy": "compact"})
    proc = run("produce", "compacted", data_dir=data_dir, input="no key\n")
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "error: line 1: no key (give -K DELIM); topic 'compacted' is compacted and refuses "
        "records without a key",
        "error: 0 record(s) written to compacted, 1 line(s) failed"]
    assert records(data_dir, "compacted") == []
    ok(run("produce", "compacted", "-K", "=", data_dir=data_dir, input="k=v\n"))
    assert [(r[2], r[3]) for r in records(data_dir, "compacted")] == [(b"k", b"v")]


def test_bad_lines_do_not_drop_good_ones(data_dir):
    """Each bad line is reported with its number; every good line around it is written, in
    order, and the exit status says something failed."""
    seed(data_dir, "c", [], config={"cleanup.policy": "compact", "max.message.bytes": 1000})
    lines = ["k1=a", "no delimiter", "k2=b", "k3=" + "x" * 2000, "k4=c", "=empty key", "k5=" + "y" * 900]
    proc = run("produce", "c", "-K", "=", data_dir=data_dir, input="\n".join(lines) + "\n")
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    err = proc.stderr.splitlines()
    assert err[0] == ("error: line 2: no key delimiter '=' in the line; topic 'c' is compacted "
                      "and refuses records without a key")
    assert re.fullmatch(r"error: line 4: record of 2000 bytes makes a batch of \d+ bytes, over "
                        r"max\.message\.bytes \(1000\) of topic 'c'", err[1]), err[1]
    assert err[2:] == ["error: 5 record(s) written to c, 2 line(s) failed"]
    assert [(r[2], r[3]) for r in records(data_dir, "c")] == [
        (b"k1", b"a"), (b"k2", b"b"), (b"k4", b"c"), (b"", b"empty key"), (b"k5", b"y" * 900)]


def test_good_lines_together_over_max_message_bytes(data_dir):
    """Lines that each fit must not be refused as one batch over the topic's limit."""
    seed(data_dir, "small", [], config={"max.message.bytes": 1000})
    lines = [f"line {i:03d} " + "z" * 40 for i in range(200)]
    proc = run("produce", "small", data_dir=data_dir, input="\n".join(lines) + "\n")
    ok(proc)
    assert proc.stderr == "produced 200 record(s) to small\n"
    assert [r[3].decode() for r in records(data_dir, "small")] == lines


def test_empty_input_creates_nothing(data_dir, tmp_path):
    ok(run("produce", "fresh", data_dir=data_dir, input=""))
    assert not data_dir.exists() or "fresh" not in klog.open(data_dir).list_topics()
