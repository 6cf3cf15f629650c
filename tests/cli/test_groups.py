"""consume -g, group list|describe|reset-offsets (rpk's columns)."""
import pytest

from .conftest import committed, fields, ok, records, run, seed, small_offsets_topic, table

RPK_COLUMNS = ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-START-OFFSET", "LOG-END-OFFSET", "LAG",
               "MEMBER-ID", "CLIENT-ID"]
ALL = ["a0", "a1", "a2", "b0", "b1"]


@pytest.fixture
def topic(data_dir):
    """Topic t (p0: a0 a1 a2, p1: b0 b1), no __consumer_offsets yet (created with Kafka's
    default 50 partitions on the first commit)."""
    seed(data_dir, "t", [v.encode() for v in ALL], partitions=2, partition=[0, 0, 0, 1, 1],
         timestamps=[1000, 2000, 3000, 1500, 2500])
    return data_dir


def describe_rows(data_dir, group):
    out = ok(run("group", "describe", group, data_dir=data_dir))
    header, rows = table(out, "TOPIC")
    assert header == RPK_COLUMNS
    return fields(out), rows


def test_consume_commit_describe_reset_and_consume_again(topic):
    d = topic
    assert sorted(ok(run("consume", "t", "-g", "g1", "-e", data_dir=d)).splitlines()) == ALL
    assert committed(d, "g1") == {("t", 0): 3, ("t", 1): 2}

    info, rows = describe_rows(d, "g1")
    assert info["GROUP"] == "g1" and info["STATE"] == "Empty"
    assert info["MEMBERS"] == "0" and info["TOTAL-LAG"] == "0"
    # CURRENT-OFFSET is the log end, LAG 0; no member holds the partitions once the run ended
    assert rows == [["t", "0", "3", "0", "3", "0", "-", "-"], ["t", "1", "2", "0", "2", "0", "-", "-"]]

    # the same group again: nothing new
    assert ok(run("consume", "t", "--group", "g1", "-e", data_dir=d)) == ""

    header, rows = table(ok(run("group", "list", data_dir=d)), "GROUP")
    assert header == ["GROUP", "STATE", "PROTOCOL-TYPE"] and rows == [["g1", "Empty", "consumer"]]

    out = ok(run("group", "reset-offsets", "g1", "--topic", "t", "--to-earliest", data_dir=d))
    header, rows = table(out, "TOPIC")
    assert header == ["TOPIC", "PARTITION", "NEW-OFFSET"] and rows == [["t", "0", "0"], ["t", "1", "0"]]
    assert committed(d, "g1") == {("t", 0): 0, ("t", 1): 0}
    info, rows = describe_rows(d, "g1")
    assert info["TOTAL-LAG"] == "5" and [r[2:6] for r in rows] == [["0", "0", "3", "3"], ["0", "0", "2", "2"]]

    # everything again
    assert sorted(ok(run("consume", "t", "-g", "g1", "-e", data_dir=d)).splitlines()) == ALL
    assert committed(d, "g1") == {("t", 0): 3, ("t", 1): 2}


@pytest.fixture
def small(topic):
    """``topic`` with a 1-partition __consumer_offsets (faster to open; see small_offsets_topic)."""
    small_offsets_topic(topic)
    return topic


def test_reset_to_latest_offset_and_datetime(small):
    d = small
    ok(run("group", "reset-offsets", "g", "--topic", "t", "--to-latest", data_dir=d))
    assert committed(d, "g") == {("t", 0): 3, ("t", 1): 2}

    ok(run("group", "reset-offsets", "g", "--topic", "t", "--to-offset", "1", data_dir=d))
    assert committed(d, "g") == {("t", 0): 1, ("t", 1): 1}
    ok(run("group", "reset-offsets", "g", "--topic", "t", "--to-offset", "99", data_dir=d))
    assert committed(d, "g") == {("t", 0): 3, ("t", 1): 2}   # clamped to the log end
    ok(run("group", "reset-offsets", "g", "--topic", "t", "--to-offset", "-5", data_dir=d))
    assert committed(d, "g") == {("t", 0): 0, ("t", 1): 0}   # clamped to the log start

    # first record at or after 2000: a1 (2000) on p0, b1 (2500) on p1
    ok(run("group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "2000", data_dir=d))
    assert committed(d, "g") == {("t", 0): 1, ("t", 1): 1}
    assert sorted(ok(run("consume", "t", "-g", "g", "-e", data_dir=d)).splitlines()) == ["a1", "a2", "b1"]
    ok(run("group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "999999", data_dir=d))
    assert committed(d, "g") == {("t", 0): 3, ("t", 1): 2}   # nothing that late: the end


def test_count_commits_only_what_was_printed(small):
    """-g -c N must not commit past the N records shown (they would be skipped next time)."""
    d = small
    seed(d, "one", [f"r{i}".encode() for i in range(6)])
    assert ok(run("consume", "one", "-g", "g", "-c", "2", data_dir=d)) == "r0\nr1\n"
    assert committed(d, "g") == {("one", 0): 2}
    assert ok(run("consume", "one", "-g", "g", "-e", "-c", "3", "--json", data_dir=d)).count("\n") == 3
    assert ok(run("consume", "one", "-g", "g", "-e", "-f", "%o:%s ", data_dir=d)) == "5:r5 "
    assert committed(d, "g") == {("one", 0): 6}


def test_group_offset_reset_end(small):
    """A new group with -o end starts at the log end (auto.offset.reset=latest)."""
    d = small
    assert ok(run("consume", "t", "-g", "late", "-o", "end", "-e", data_dir=d)) == ""
    assert committed(d, "late") == {("t", 0): 3, ("t", 1): 2}
    assert [r[3] for r in records(d, "t")] == [b"a0", b"a1", b"a2", b"b0", b"b1"]
