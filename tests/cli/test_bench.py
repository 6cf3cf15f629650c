"""klog bench produce|consume|e2e: kafka-*-perf-test style lines, and the records they leave."""
import re

import klog

from .conftest import ok, run

NUM = r"\d+\.\d+"


def test_produce_consume_e2e(data_dir):
    out = ok(run("bench", "produce", "-n", "2000", data_dir=data_dir))
    assert re.fullmatch(rf"2000 records sent, {NUM} records/sec \({NUM} MB/sec\)\n", out), out

    out = ok(run("bench", "consume", "-n", "2000", data_dir=data_dir))
    lines = out.splitlines()
    assert lines[0] == "data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec"
    m = re.fullmatch(rf"({NUM}), {NUM}, 2000, {NUM}", lines[1])
    assert m and len(lines) == 2, out
    assert float(m.group(1)) == round(2000 * 100 / 2**20, 4)     # 100-byte records

    out = ok(run("bench", "e2e", "-n", "2000", "-r", "20000", data_dir=data_dir))
    assert re.fullmatch(rf"2000 records, {NUM} records/sec, {NUM} ms avg latency, {NUM} ms max latency, "
                        rf"{NUM} ms 50th, {NUM} ms 95th, {NUM} ms 99th, {NUM} ms 99.9th\.\n", out), out

    out = ok(run("bench", "produce", "--topic", "wide", "-n", "2000", "-b", "100", "-p", "3",
                 "-s", "10", data_dir=data_dir))
    assert out.startswith("2000 records sent, ")
    with klog.open(data_dir) as broker:
        assert broker.list_topics() == ["klog-bench", "klog-bench-e2e", "wide"]
        for name, parts, total, size in [("klog-bench", 1, 2000, 100), ("klog-bench-e2e", 1, 2000, 100),
                                         ("wide", 3, 2000, 10)]:
            d = broker.describe_topic(name)
            assert len(d.partitions) == parts
            assert sum(p.log_end_offset for p in d.partitions) == total
            for p in d.partitions:
                assert all(len(r.value) == size for r in broker.log(name, p.partition).records())
