"""klog consume with kcat's habits: -o s@ts / e@ts, -J envelopes (checked against kcat itself on
the same data through klog serve), several topics, raw bytes with -f, unknown format codes."""
import json
import shutil
import signal
import socket
import subprocess

import pytest

from .conftest import cli_env, copy_dir, failed, klog_cmd, run, seed, wait_for_port

T0 = 1_700_000_000_000
BINARY = bytes(range(256)) + b"\n\r\t\\\"%s"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    d = tmp_path_factory.mktemp("kcat") / "data"
    seed(d, "one", [b"v%d" % i for i in range(10)], timestamps=[T0 + 1000 * i for i in range(10)])
    seed(d, "two", [b"w0", b"w1", b"w2"], partitions=2, partition=[0, 1, 1])
    seed(d, "bin", [BINARY, b"caf\xc3\xa9 \xff\xfe", None, b""],
         keys=[b"\x00k\xff", None, b"tomb", b"e"],
         headers=[[("h", b"\xff\x00"), ("n", None)], [], [("a", b"1"), ("a", b"2")], []],
         timestamps=[T0, T0 + 1, T0 + 2, T0 + 3])
    return d


def raw(data_dir, *args):
    proc = subprocess.run(klog_cmd("consume", *args, data_dir=data_dir), capture_output=True,
                          stdin=subprocess.DEVNULL, env=cli_env(), timeout=60)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
    return proc.stdout


@pytest.mark.parametrize("args, expected", [
    (["-o", f"s@{T0 + 2000}", "-o", f"e@{T0 + 5000}"], [2, 3, 4]),      # e@: stop before ts
    (["-o", f"e@{T0 + 3500}"], [0, 1, 2, 3]),                            # start: the beginning
    (["-o", f"s@{T0 + 2500}", "-e"], range(3, 10)),                      # s@ is kcat's @
    (["-o", f"e@{T0 + 3500}", "-o", "-8"], [2, 3]),
    (["-o", f"e@{T0}"], []),                                             # nothing before it
    (["-o", f"e@{T0 + 99_000}"], range(10)),                             # past the end: the end
], ids=["start-and-end", "end-only", "start-only", "relative-and-end", "end-at-first", "end-after-all"])
def test_start_and_end_timestamps(seeded, args, expected):
    """e@ ends the command by itself (no -e needed), as in kcat."""
    assert raw(seeded, "one", *args).splitlines() == [b"v%d" % i for i in expected]


def test_several_topics(seeded):
    out = raw(seeded, "one", "two", "-e", "-f", r"%t %s\n").decode().splitlines()
    assert sorted(out) == sorted([f"one v{i}" for i in range(10)] + ["two w0", "two w1", "two w2"])
    # -c counts across topics; -p applies to each
    assert len(raw(seeded, "one", "two", "-e", "-c", "11").splitlines()) == 11
    assert sorted(raw(seeded, "one", "two", "-e", "-p", "0").splitlines()) == sorted(
        [b"v%d" % i for i in range(10)] + [b"w0"])
    failed(run("consume", "one", "two", "-e", "-p", "1", data_dir=seeded),
           match=r"topic 'one' has partitions 0\.\.0, not 1")


def test_binary_values_are_printed_as_they_are(seeded):
    assert raw(seeded, "bin", "-e", "-c", "1", "-f", "%s") == BINARY
    assert raw(seeded, "bin", "-e", "-f", "%k|") == b"\x00k\xff||tomb|e|"
    assert raw(seeded, "bin", "-e", "-f", "%R%s") == b"".join(
        len(v).to_bytes(4, "big") + v for v in [BINARY, b"caf\xc3\xa9 \xff\xfe"]) + \
        b"\xff\xff\xff\xff" + b"\x00\x00\x00\x00"
    assert raw(seeded, "bin", "-e", "-c", "1", "-f", r"%h\x41\n") == b"h=\xff\x00,n=A\n"
    assert raw(seeded, "bin", "-e", "-o", "1", "-c", "1") == b"caf\xc3\xa9 \xff\xfe\n"   # default


@pytest.mark.parametrize("fmt, code", [("%Z", "%Z"), ("%s %q\\n", "%q"), ("trailing %", "%")])
def test_unknown_format_code_is_a_usage_error(seeded, fmt, code):
    failed(run("consume", "one", "-e", "-f", fmt, data_dir=seeded), code=2,
           match=rf"unknown format code '{code}'")


def test_json_envelope_fields(seeded):
    docs = [json.loads(line) for line in raw(seeded, "one", "-e", "-c", "1", "-J").splitlines()]
    assert docs == [{"topic": "one", "partition": 0, "offset": 0, "tstype": "create", "ts": T0,
                     "broker": 0, "key": None, "payload": "v0"}]
    assert list(docs[0]) == ["topic", "partition", "offset", "tstype", "ts", "broker", "key", "payload"]


@pytest.mark.needs_kcat
def test_json_envelopes_match_kcat(seeded, tmp_path):
    """Oracle: kcat -C -J against klog serve hosting a copy of the same data directory gives the
    same bytes, line for line, as klog consume -J on it."""
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat, "kcat is not installed (apt-get install kcat)"
    data = copy_dir(seeded, tmp_path / "data")
    ours = {t: raw(data, t, "-e", "-J") for t in ("one", "two", "bin")}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(klog_cmd("serve", "--listen", f"127.0.0.1:{port}", data_dir=data),
                              env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        theirs = {}
        for t in ours:
            proc = subprocess.run([kcat, "-b", f"127.0.0.1:{port}", "-C", "-t", t, "-J", "-e", "-q"],
                                  capture_output=True, timeout=60)
            assert proc.returncode == 0, proc.stderr.decode()
            theirs[t] = proc.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    for t in ours:
        assert sorted(ours[t].splitlines()) == sorted(theirs[t].splitlines()), t
    assert len(theirs["bin"].splitlines()) == 4 and b'"payload":null' in theirs["bin"]
