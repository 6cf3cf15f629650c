"""klog consume: every -o form, -c, -p, -f codes, --json (no group: nothing is committed).

Every invocation of this module runs once, all at once, each on its own copy of the seeded data
directory (a data directory has one owner at a time); the tests then check the outputs.
"""
import json

import pytest

from .conftest import copy_dir, ok, records, run_parallel, seed, state

T0 = 1_700_000_000_000
VALUES = [f"v{i}".encode() for i in range(10)]
KEYS = [None if i == 3 else f"k{i}".encode() for i in range(10)]
HEADERS = [[] if i == 3 else [("h", str(i).encode())] + ([("x", b"y")] if i == 2 else [])
           for i in range(10)]
FORMAT = r"%t|%p|%o|%k|%s|%T|%h|%K|%S|100%%\t%o\n"

# (id, consume arguments after "consume", expected indexes of topic "one")
OFFSET_CASES = [
    ("default-beginning", ["one", "-e"], range(10)),
    ("beginning", ["one", "-e", "-o", "beginning"], range(10)),
    ("end", ["one", "-e", "-o", "end"], []),
    ("absolute", ["one", "-e", "-o", "7"], [7, 8, 9]),
    ("absolute-0", ["one", "-e", "-o", "0"], range(10)),
    ("absolute-at-end", ["one", "-e", "-o", "10"], []),
    ("absolute-past-end", ["one", "-e", "-o", "999"], []),              # clamped to the end
    ("relative", ["one", "-e", "-o", "-3"], [7, 8, 9]),                  # 3 before the end
    ("relative-past-start", ["one", "-e", "-o", "-100"], range(10)),    # clamped to the start
    ("time-exact", ["one", "-e", f"-o@{T0 + 4000}"], range(4, 10)),      # first at or after
    ("time-between", ["one", "-e", "-o", f"@{T0 + 4500}"], range(5, 10)),
    ("time-before-all", ["one", "-e", "--offset", f"@{T0 - 1}"], range(10)),
    ("time-after-all", ["one", "-e", "-o", f"@{T0 + 10_000}"], []),     # the end
    ("count", ["one", "-e", "-c", "4"], range(4)),
    ("absolute-count", ["one", "-e", "-o", "5", "-c", "2"], [5, 6]),
    ("count-beyond-end", ["one", "-e", "-o", "-2", "--count", "5"], [8, 9]),   # -e ends it
    ("count-without-exit", ["one", "-o", "-3", "-c", "3"], [7, 8, 9]),       # -c alone ends it
]
OTHER_RUNS = {
    "empty": ["empty", "-e"],
    "two-all": ["two", "-e"],
    "two-end": ["two", "-e", "-o", "end"],
    "two-p1": ["two", "-e", "-p", "1"],
    "two-last-each": ["two", "-e", "-o", "-1"],
    "format": ["one", "-e", "-o", "1", "-c", "3", "-f", FORMAT],
    "format-no-newline": ["one", "-e", "-o", "-3", "-f", "%s,"],
    "format-escaped-backslash": ["one", "-e", "-o", "-1", "--format", r"[%s]\\n"],
    "json": ["one", "-e", "--json"],
    "json-p1": ["two", "-e", "--json", "-p", "1", "-c", "2"],
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    d = tmp_path_factory.mktemp("consume") / "data"
    seed(d, "one", VALUES, keys=KEYS, headers=HEADERS, timestamps=[T0 + 1000 * i for i in range(10)])
    seed(d, "two", [b"a0", b"a1", b"b0", b"b1", b"b2"], partitions=2, partition=[0, 0, 1, 1, 1])
    seed(d, "empty", [])
    return d


@pytest.fixture(scope="module")
def runs(seeded, tmp_path_factory):
    """{run id: (data directory copy, CompletedProcess)}"""
    root = tmp_path_factory.mktemp("consume-runs")
    wanted = {case_id: args for case_id, args, _ in OFFSET_CASES}
    wanted.update(OTHER_RUNS)
    dirs = {key: copy_dir(seeded, root / key) for key in wanted}
    procs = run_parallel({key: {"args": ["consume", *args], "data_dir": dirs[key]}
                          for key, args in wanted.items()})
    return {key: (dirs[key], procs[key]) for key in wanted}


def output(runs, key):
    return ok(runs[key][1])


@pytest.mark.parametrize("case_id, expected", [(c[0], c[2]) for c in OFFSET_CASES],
                         ids=[c[0] for c in OFFSET_CASES])
def test_offsets_and_count(runs, case_id, expected):
    assert output(runs, case_id).splitlines() == [f"v{i}" for i in expected]


def test_empty_topic_and_end_print_nothing(runs):
    assert output(runs, "empty") == ""
    assert output(runs, "two-end") == ""


def test_partitions(runs):
    assert sorted(output(runs, "two-all").splitlines()) == ["a0", "a1", "b0", "b1", "b2"]
    assert output(runs, "two-p1").splitlines() == ["b0", "b1", "b2"]
    # -o applies per partition: the last record of each
    assert sorted(output(runs, "two-last-each").splitlines()) == ["a1", "b2"]


def test_format_every_code(runs):
    assert output(runs, "format") == (
        f"one|0|1|k1|v1|{T0 + 1000}|h=1|2|2|100%\t1\n"
        f"one|0|2|k2|v2|{T0 + 2000}|h=2,x=y|2|2|100%\t2\n"
        f"one|0|3||v3|{T0 + 3000}||-1|2|100%\t3\n")   # no key: %k empty, %K -1; no headers
    # no \n in the format: records run together, nothing added
    assert output(runs, "format-no-newline") == "v7,v8,v9,"
    assert output(runs, "format-escaped-backslash") == "[v9]\\n"


def test_json(runs, seeded):
    lines = output(runs, "json").splitlines()
    assert len(lines) == 10
    for line, (p, offset, key, value, headers, ts) in zip(lines, records(seeded, "one")):
        assert json.loads(line) == {
            "topic": "one", "partition": p, "offset": offset, "timestamp": ts,
            "key": None if key is None else key.decode(), "value": value.decode(),
            "headers": {k: v.decode() for k, v in headers}}
    assert json.loads(lines[3])["key"] is None and json.loads(lines[3])["headers"] == {}
    assert json.loads(lines[2])["headers"] == {"h": "2", "x": "y"}
    assert json.loads(lines[4])["timestamp"] == T0 + 4000
    docs = [json.loads(x) for x in output(runs, "json-p1").splitlines()]
    assert [(d["partition"], d["offset"], d["value"]) for d in docs] == [(1, 0, "b0"), (1, 1, "b1")]


def test_consuming_without_a_group_writes_nothing(runs, seeded):
    before = state(seeded)
    for key, (data_dir, proc) in runs.items():
        ok(proc)
        assert state(data_dir) == before, key
