"""The entry point itself: python -m klog / the klog console script, --data-dir and
KLOG_DATA_DIR, broken pipes, a locked data directory, Ctrl-C."""
import os
import shutil
import signal
import subprocess

import pytest

import klog

from .conftest import cli_env, committed, failed, klog_cmd, ok, records, run, seed, state

COMMANDS = ("topic", "produce", "consume", "group", "bench")


def test_version_and_help():
    assert ok(run("--version")) == f"klog, version {klog.__version__}\n"
    out = ok(run("--help"))
    assert out.startswith("Usage: klog [OPTIONS] COMMAND [ARGS]...")
    assert "KLOG_DATA_DIR" in out
    for command in COMMANDS:
        assert f"\n  {command} " in out


def test_console_script(data_dir):
    """Through the installed ``klog`` script when it is this klog (as in CI); otherwise
    ``python -m klog`` must present itself exactly as that script would."""
    expected = f"klog, version {klog.__version__}"
    exe = shutil.which("klog")
    same = False
    if exe:
        v = subprocess.run([exe, "--version"], capture_output=True, text=True, env=cli_env(), timeout=60)
        same = v.returncode == 0 and v.stdout.strip() == expected
    if same:
        def script(*args, input=""):
            proc = subprocess.run([exe, "--data-dir", str(data_dir), *args], input=input,
                                  capture_output=True, text=True, env=cli_env(), timeout=60)
            assert "Traceback" not in proc.stderr and proc.returncode == 0, proc.stderr
            return proc.stdout
        assert script("topic", "create", "smoke", "-p", "2") == "created topic smoke with 2 partition(s)\n"
        script("produce", "smoke", "-p", "1", input="hello\n")
        assert script("consume", "smoke", "-e", "-f", "%p:%s\n") == "1:hello\n"
        assert [r[3] for r in records(data_dir, "smoke")] == [b"hello"]
    else:
        assert ok(run("--version")).strip() == expected
        assert ok(run("topic", "--help")).startswith("Usage: klog topic [OPTIONS] COMMAND")
        failed(run("no-such-command"), code=2, match="No such command 'no-such-command'")


def test_data_dir_option_env_and_default(tmp_path, cwd):
    a, b = tmp_path / "a", tmp_path / "b"
    ok(run("topic", "create", "in-a", env={"KLOG_DATA_DIR": str(a)}, cwd=cwd))
    ok(run("topic", "create", "in-b", data_dir=b, env={"KLOG_DATA_DIR": str(a)}, cwd=cwd))  # option wins
    ok(run("produce", "in-a", env={"KLOG_DATA_DIR": str(a)}, input="via-env\n", cwd=cwd))
    assert ok(run("consume", "in-a", "-e", data_dir=a, cwd=cwd)) == "via-env\n"
    with klog.open(a) as broker:
        assert broker.list_topics() == ["in-a"]
    with klog.open(b) as broker:
        assert broker.list_topics() == ["in-b"]
    # neither: ./klog-data
    ok(run("topic", "create", "in-default", cwd=cwd))
    with klog.open(cwd / "klog-data") as broker:
        assert broker.list_topics() == ["in-default"]
    assert sorted(os.listdir(cwd)) == ["klog-data"]


# -- broken pipes: klog consume | head -1 ----------------------------------------------------------
@pytest.fixture(scope="module")
def big(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipe") / "data"
    seed(d, "big", [b"value-%06d" % i for i in range(30_000)])  # far more than a pipe buffer holds
    return d


@pytest.mark.parametrize("args", [("-e",), (), ("-e", "--json"), ("-f", r"%o %s\n")],
                         ids=["exit-at-end", "follow", "json", "format"])
def test_reader_goes_away(big, args):
    proc = subprocess.Popen(klog_cmd("consume", "big", *args, data_dir=big), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=cli_env())
    try:
        first = proc.stdout.readline()
        proc.stdout.close()            # like head -1 exiting
        err = proc.stderr.read().decode()
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"value-000000" in first
    assert "Traceback" not in err and err == ""
    assert rc == 0


@pytest.mark.parametrize("args", [("topic", "list"), ("topic", "describe", "big"),
                                  ("consume", "big", "-e", "-c", "1")])
def test_reader_gone_before_the_first_write(big, args):
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run(klog_cmd(*args, data_dir=big), stdout=w, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=cli_env(), timeout=30)
    finally:
        os.close(w)
    err = proc.stderr.decode()
    assert "Traceback" not in err and err == ""
    assert proc.returncode == 0


# -- one owner at a time ---------------------------------------------------------------------------
def test_locked_data_dir(data_dir):
    seed(data_dir, "t", [b"x"])
    with klog.open(data_dir):       # this process owns it now
        failed(run("topic", "list", data_dir=data_dir), match=r"already open for writing by process \d+")
        failed(run("produce", "t", data_dir=data_dir, input="y\n"), match="already open for writing")
    assert [r[3] for r in records(data_dir, "t")] == [b"x"]


def test_ctrl_c_while_following_commits_and_exits_cleanly(data_dir):
    seed(data_dir, "t", [b"a", b"b", b"c"])
    proc = subprocess.Popen(klog_cmd("consume", "t", "-g", "g", data_dir=data_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=cli_env(), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = [proc.stdout.readline() for _ in range(3)]   # then it waits for more
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert lines == [b"a\n", b"b\n", b"c\n"] and out == b""
    assert "Traceback" not in err.decode()
    assert proc.returncode == 130 and err == b""   # the shell's 128 + SIGINT, nothing else
    assert committed(data_dir, "g") == {("t", 0): 3}
    assert state(data_dir)[0]["t"][2] == [(0, 3)]
