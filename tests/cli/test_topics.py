"""klog topic create|list|describe|alter|delete, checked through klog.open afterwards."""
import os

import klog

from .conftest import committed, failed, fields, ok, records, run, seed, table


def test_create_with_partitions_and_configs(data_dir):
    out = ok(run("topic", "create", "orders", "-p", "3", "-c", "retention.ms=60000",
                 "-c", "cleanup.policy=compact", data_dir=data_dir))
    assert out == "created topic orders with 3 partition(s)\n"
    out = ok(run("topic", "create", "plain", data_dir=data_dir))
    assert out == "created topic plain with 1 partition(s)\n"   # num.partitions
    with klog.open(data_dir) as broker:
        assert broker.list_topics() == ["orders", "plain"]
        d = broker.describe_topic("orders")
        assert len(d.partitions) == 3
        assert all(p.log_end_offset == 0 for p in d.partitions)
        assert broker.topic_overrides("orders") == {"retention.ms": 60000, "cleanup.policy": "compact"}
        assert d.config["retention.ms"] == 60000 and d.config["cleanup.policy"] == "compact"
        assert broker.topic_overrides("plain") == {}
    for p in range(3):
        assert os.path.isdir(data_dir / f"orders-{p}")


def test_list(data_dir):
    seed(data_dir, "alpha", [b"a", b"b", b"c"], partitions=2, partition=[0, 1, 1])
    seed(data_dir, "beta", [], partitions=1)
    with klog.open(data_dir) as broker:     # a group commit creates the internal topic
        broker.group_coordinator.commit_offsets("g", "", -1, {klog.TopicPartition("alpha", 0): 1})
    header, rows = table(ok(run("topic", "list", data_dir=data_dir)), "TOPIC")
    assert header == ["TOPIC", "PARTITIONS", "RECORDS", "SIZE"]
    assert [r[:3] for r in rows] == [["alpha", "2", "3"], ["beta", "1", "0"]]
    assert rows[1][3:] == ["0", "B"]
    assert rows[0][4] == "B" and int(rows[0][3]) > 0
    _, rows = table(ok(run("topic", "list", "--internal", data_dir=data_dir)), "TOPIC")
    assert [r[0] for r in rows] == ["__consumer_offsets", "alpha", "beta"]
    assert committed(data_dir, "g") == {("alpha", 0): 1}


def test_describe(data_dir):
    seed(data_dir, "t", [b"x"] * 5, partitions=2, partition=[0, 0, 0, 1, 1],
         config={"retention.ms": 120000})
    with klog.open(data_dir) as broker:
        topic_id = broker.describe_topic("t").topic_id
    out = ok(run("topic", "describe", "t", data_dir=data_dir))
    assert fields(out) == {"NAME": "t", "ID": topic_id, "PARTITIONS": "2"}
    header, rows = table(out, "PARTITION")
    assert header == ["PARTITION", "LOG-START-OFFSET", "LOG-END-OFFSET", "SIZE"]
    assert [r[:3] for r in rows] == [["0", "0", "3"], ["1", "0", "2"]]
    header, rows = table(out, "KEY")
    assert header == ["KEY", "VALUE"] and rows == [["retention.ms", "120000"]]   # overrides only

    out = ok(run("topic", "describe", "t", "--all-configs", data_dir=data_dir))
    _, rows = table(out, "KEY")
    shown = dict(rows)
    assert shown["retention.ms"] == "120000"
    assert shown["segment.bytes"] == str(klog.LogConfig.from_dict({}).segment_bytes)
    assert list(shown) == sorted(shown) and len(shown) > 10


def test_describe_without_overrides_prints_no_config_table(data_dir):
    seed(data_dir, "t", [])
    out = ok(run("topic", "describe", "t", data_dir=data_dir))
    assert "KEY" not in out and fields(out)["PARTITIONS"] == "1"


def test_alter_sets_deletes_and_grows(data_dir):
    seed(data_dir, "t", [b"v"], keys=[b"k"], config={"retention.ms": 120000, "cleanup.policy": "compact"})
    out = ok(run("topic", "alter", "t", "-c", "segment.bytes=1048576", "-d", "cleanup.policy",
                 "-p", "4", data_dir=data_dir))
    assert out == "altered topic t\n"
    with klog.open(data_dir) as broker:
        assert broker.topic_overrides("t") == {"retention.ms": 120000, "segment.bytes": 1048576}
        d = broker.describe_topic("t")
        assert len(d.partitions) == 4 and d.config["cleanup.policy"] == "delete"
        assert d.partitions[0].log_end_offset == 1
    # each kind on its own too
    ok(run("topic", "alter", "t", "-d", "retention.ms", data_dir=data_dir))
    ok(run("topic", "alter", "t", "-p", "5", data_dir=data_dir))
    with klog.open(data_dir) as broker:
        assert broker.topic_overrides("t") == {"segment.bytes": 1048576}
        assert broker.partition_count("t") == 5
    assert records(data_dir, "t")[0][3] == b"v"


def test_delete(data_dir):
    seed(data_dir, "gone", [b"1", b"2"], partitions=2, partition=[0, 1])
    seed(data_dir, "kept", [b"3"])
    assert ok(run("topic", "delete", "gone", data_dir=data_dir)) == "deleted topic gone\n"
    with klog.open(data_dir) as broker:
        assert broker.list_topics() == ["kept"]
    assert not any(name.startswith("gone") for name in os.listdir(data_dir))
    assert [r[3] for r in records(data_dir, "kept")] == [b"3"]
    # the name is free again, with no old records
    ok(run("topic", "create", "gone", data_dir=data_dir))
    assert records(data_dir, "gone") == []


def test_internal_topic_cannot_be_deleted_grown_or_recleaned(data_dir):
    with klog.open(data_dir) as broker:
        broker.create_topic("t", 1)
        broker.group_coordinator.commit_offsets("g", "", -1, {("t", 0): 1})
    failed(run("topic", "delete", "__consumer_offsets", data_dir=data_dir), match="internal")
    failed(run("topic", "alter", "__consumer_offsets", "-c", "cleanup.policy=delete", data_dir=data_dir),
           match="internal.*cleanup.policy")
    failed(run("topic", "alter", "__consumer_offsets", "-p", "60", data_dir=data_dir), match="internal")
    with klog.open(data_dir) as broker:
        assert broker.partition_count("__consumer_offsets") == 50
        assert broker.describe_topic("__consumer_offsets").config["cleanup.policy"] == "compact"
        assert broker.group_coordinator.fetch_offsets("g").offsets
