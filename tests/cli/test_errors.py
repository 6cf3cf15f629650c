"""Bad input: one 'error: ...' line on stderr (or click's usage error, exit 2), a non-zero exit,
never a traceback, nothing on stdout, and nothing written to the data directory."""
import os

import pytest

import klog

from .conftest import (
    copy_dir, failed, run, run_parallel, seed, selected_ids, small_offsets_topic, state,
)

MISSING = object()   # run against a data directory that does not exist

# (id, template, args, stdin, exit code, regex on the message)
CASES = [
    # topic create
    ("create-existing", "plain", ["topic", "create", "t"], None, 1, r"topic 't' already exists"),
    ("create-colliding", "plain", ["topic", "create", "metrics.cpu"], None, 1, r"collides with existing topic 'metrics_cpu'"),
    ("create-illegal-name", "plain", ["topic", "create", "bad name!"], None, 1, r"illegal characters"),
    ("create-dot-name", "plain", ["topic", "create", ".."], None, 1, r"'\.\.'"),
    ("create-long-name", "plain", ["topic", "create", "x" * 250], None, 1, r"topic name"),
    ("create-bad-value", "plain", ["topic", "create", "x", "-c", "segment.bytes=abc"], None, 1, r"segment\.bytes.*'abc'"),
    ("create-small-value", "plain", ["topic", "create", "x", "-c", "segment.bytes=10"], None, 1, r"segment\.bytes"),
    ("create-unknown-key", "plain", ["topic", "create", "x", "-c", "nope=1"], None, 1, r"unknown config 'nope'"),
    ("create-not-key-value", "plain", ["topic", "create", "x", "-c", "novalue"], None, 1, r"config 'novalue' is not key=value"),
    ("create-zero-partitions", "plain", ["topic", "create", "x", "-p", "0"], None, 2, r"'-p' / '--partitions'"),
    ("create-no-name", "plain", ["topic", "create"], None, 2, r"Missing argument 'NAME'"),
    # topic describe / alter / delete / list
    ("describe-unknown", "plain", ["topic", "describe", "nope"], None, 1, r"unknown topic 'nope'"),
    ("alter-nothing", "plain", ["topic", "alter", "t"], None, 1, r"nothing to change"),
    ("alter-unknown-topic", "plain", ["topic", "alter", "nope", "-c", "retention.ms=1000"], None, 1, r"unknown topic 'nope'"),
    ("alter-bad-value", "plain", ["topic", "alter", "t", "-c", "segment.bytes=abc"], None, 1, r"segment\.bytes"),
    ("alter-unknown-key", "plain", ["topic", "alter", "t", "-c", "nope=1"], None, 1, r"unknown config 'nope'"),
    ("alter-delete-unknown-key", "plain", ["topic", "alter", "t", "-d", "nope"], None, 1, r"unknown config 'nope'"),
    ("alter-shrink", "plain", ["topic", "alter", "t", "-p", "1"], None, 1, r"must be larger"),
    ("alter-same-count", "plain", ["topic", "alter", "t", "-p", "2", "-c", "retention.ms=1000"], None, 1, r"must be larger"),
    ("delete-unknown", "plain", ["topic", "delete", "nope"], None, 1, r"unknown topic 'nope'"),
    ("list-missing-dir", MISSING, ["topic", "list"], None, 1, r"no klog data directory at"),
    # produce
    ("produce-bad-partition", "plain", ["produce", "t", "-p", "99"], "a\nb\n", 1, r"partitions 0\.\.1, not 99"),
    ("produce-bad-partition-no-input", "plain", ["produce", "t", "-p", "2"], None, 1, r"partitions 0\.\.1, not 2"),
    ("produce-unknown-topic-bad-partition", "plain", ["produce", "nope", "-p", "99"], "a\n", 1, r"unknown topic 'nope'"),
    ("produce-illegal-topic", "plain", ["produce", "bad name!"], "a\n", 1, r"illegal characters"),
    ("produce-negative-partition", "plain", ["produce", "t", "-p", "-1"], "a\n", 2, r"'-p' / '--partition'"),
    ("produce-bad-header", "plain", ["produce", "t", "-H", "nokv"], "a\n", 1, r"header 'nokv' is not key=value"),
    ("produce-empty-delimiter", "plain", ["produce", "t", "-K", ""], "a\n", 1, r"-K"),
    ("produce-bad-codec", "plain", ["produce", "t", "-z", "brotli"], "a\n", 2, r"'-z' / '--compression'"),
    # consume
    ("consume-unknown-topic", "plain", ["consume", "nope", "-e"], None, 1, r"unknown topic 'nope'"),
    ("consume-bad-partition", "plain", ["consume", "t", "-p", "99", "-e"], None, 1, r"partitions 0\.\.1, not 99"),
    ("consume-offset-word", "plain", ["consume", "t", "-o", "latest", "-e"], None, 1, r"bad offset 'latest'"),
    ("consume-offset-double-dash", "plain", ["consume", "t", "-o", "--5", "-e"], None, 1, r"bad offset '--5'"),
    ("consume-offset-bad-time", "plain", ["consume", "t", "-o", "@yesterday", "-e"], None, 1, r"bad offset '@yesterday'"),
    ("consume-offset-empty", "plain", ["consume", "t", "-o", "", "-e"], None, 1, r"bad offset ''"),
    ("consume-offset-float", "plain", ["consume", "t", "-o", "1.5", "-e"], None, 1, r"bad offset '1\.5'"),
    ("consume-negative-count", "plain", ["consume", "t", "-c", "-1", "-e"], None, 2, r"'-c' / '--count'"),
    ("consume-zero-count", "plain", ["consume", "t", "-c", "0", "-e"], None, 2, r"'-c' / '--count'"),
    ("consume-missing-dir", MISSING, ["consume", "t", "-e"], None, 1, r"no klog data directory at .*KLOG_DATA_DIR"),
    ("consume-group-missing-dir", MISSING, ["consume", "t", "-e", "-g", "g"], None, 1, r"no klog data directory"),
    # groups
    ("group-describe-unknown", "group", ["group", "describe", "nope"], None, 1, r"unknown consumer group 'nope'"),
    ("group-describe-missing-dir", MISSING, ["group", "describe", "g"], None, 1, r"no klog data directory"),
    ("group-list-missing-dir", MISSING, ["group", "list"], None, 1, r"no klog data directory"),
    ("reset-no-option", "group", ["group", "reset-offsets", "g", "--topic", "t"], None, 1, r"exactly one of --to-earliest"),
    ("reset-earliest-and-latest", "group", ["group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"], None, 1, r"exactly one"),
    ("reset-earliest-and-offset", "group", ["group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-offset", "1"], None, 1, r"exactly one"),
    ("reset-offset-and-datetime", "group", ["group", "reset-offsets", "g", "--topic", "t", "--to-offset", "1", "--to-datetime", "5"], None, 1, r"exactly one"),
    ("reset-unknown-topic", "group", ["group", "reset-offsets", "g", "--topic", "nope", "--to-earliest"], None, 1, r"unknown topic 'nope'"),
    ("reset-no-topic", "group", ["group", "reset-offsets", "g", "--to-earliest"], None, 2, r"Missing option '--topic'"),
    ("reset-bad-offset", "group", ["group", "reset-offsets", "g", "--topic", "t", "--to-offset", "abc"], None, 2, r"'--to-offset'"),
    # bench
    ("bench-consume-too-few", "plain", ["bench", "consume", "--topic", "t", "-n", "5000"], None, 1, r"holds 3 records, fewer than 5000"),
    ("bench-consume-unknown-topic", "plain", ["bench", "consume", "--topic", "nope", "-n", "1"], None, 1, r"unknown topic 'nope'"),
    ("bench-consume-missing-dir", MISSING, ["bench", "consume", "-n", "1"], None, 1, r"no klog data directory"),
    ("bench-produce-zero", "plain", ["bench", "produce", "-n", "0"], None, 2, r"'-n' / '--records'"),
    # usage
    ("unknown-command", "plain", ["nope"], None, 2, r"No such command 'nope'"),
    ("unknown-option", "plain", ["consume", "t", "--nope"], None, 2, r"No such option.*--nope"),
]


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    root = tmp_path_factory.mktemp("templates")
    plain = root / "plain"
    seed(plain, "t", [b"a", b"b", b"c"], partitions=2, partition=[0, 0, 1])
    seed(plain, "metrics_cpu", [])
    seed(plain, "compacted", [b"v"], keys=[b"k"], config={"cleanup.policy": "compact"})
    seed(plain, "small", [b"v"], config={"max.message.bytes": 1000})
    group = copy_dir(plain, root / "group")
    small_offsets_topic(group)
    with klog.open(group) as broker:
        broker.group_coordinator.commit_offsets("g", "", -1, {klog.TopicPartition("t", 0): 1})
    return {"plain": (plain, state(plain)), "group": (group, state(group))}


@pytest.fixture(scope="module")
def outcomes(templates, tmp_path_factory, request):
    """Every selected case, run at once (each on its own copy of its template): {id: (data_dir,
    state before, CompletedProcess)}."""
    root = tmp_path_factory.mktemp("cases")
    cases = {case[0]: case for case in CASES}
    dirs, jobs = {}, {}
    for case_id in selected_ids(request, "test_refused"):
        _, template, args, stdin, _, _ = cases[case_id]
        if template is MISSING:
            dirs[case_id] = (root / case_id / "missing", None)
        else:
            src, before = templates[template]
            dirs[case_id] = (copy_dir(src, root / case_id / "data"), before)
        jobs[case_id] = {"args": args, "data_dir": dirs[case_id][0], "input": stdin}
    results = run_parallel(jobs)
    return {case_id: dirs[case_id] + (results[case_id],) for case_id in jobs}


@pytest.mark.parametrize("case_id, code, match", [(c[0], c[4], c[5]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_refused(outcomes, case_id, code, match):
    data_dir, before, proc = outcomes[case_id]
    failed(proc, code=code, match=match)
    assert state(data_dir) == before     # nothing created, written or committed


def test_env_data_dir_missing(tmp_path):
    missing = tmp_path / "nowhere"
    failed(run("topic", "list", env={"KLOG_DATA_DIR": str(missing)}, cwd=tmp_path),
           match=rf"no klog data directory at '{missing}'")
    assert not missing.exists()


def test_data_dir_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a directory")
    for args in (["topic", "create", "t"], ["topic", "list"], ["produce", "t"], ["consume", "t", "-e"]):
        failed(run(*args, data_dir=path, input="x\n"),
               match=rf"^error: data directory '{path}' is a file, not a directory$")
    assert path.read_text() == "not a directory"


# -- a path klog must not use ----------------------------------------------------------------------
READ_ONLY = [["topic", "list"], ["topic", "describe", "t"], ["consume", "t", "-e"], ["group", "list"],
             ["group", "describe", "g"]]


@pytest.mark.parametrize("contents", [["notes.txt"], []], ids=["foreign-files", "empty"])
def test_read_only_command_on_a_directory_klog_never_opened(tmp_path, contents):
    """A clear error, and no .lock (or anything else) left behind in someone else's directory."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    for name in contents:
        (d / name).write_text("mine")
    for args in READ_ONLY:
        failed(run(*args, data_dir=d), match=rf"^error: '{d}' is not a klog data directory")
    assert sorted(os.listdir(d)) == contents


def test_writing_command_refuses_a_directory_of_other_files(tmp_path):
    d = tmp_path / "home"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    failed(run("topic", "create", "t", data_dir=d), match=r"refusing to use .* holds other files")
    failed(run("produce", "t", data_dir=d, input="x\n"), match=r"refusing to use")
    assert os.listdir(d) == ["notes.txt"]


@pytest.mark.parametrize("listen, match", [
    ("nonsense", r"--listen 'nonsense' is not HOST:PORT"),
    ("127.0.0.1:99999", r"is not HOST:PORT"),
    ("no-such-host.invalid:9092", r"cannot listen on no-such-host\.invalid:9092: unknown host"),
])
def test_serve_bad_listen_creates_no_data_dir(tmp_path, listen, match):
    d = tmp_path / "data"
    failed(run("serve", "--listen", listen, data_dir=d), match=match)
    assert not d.exists()


def test_serve_port_in_use_creates_no_data_dir(tmp_path):
    import socket

    d = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed(run("serve", "--listen", f"127.0.0.1:{port}", data_dir=d),
               match=rf"cannot listen on 127\.0\.0\.1:{port}: Address already in use")
    assert not d.exists()
