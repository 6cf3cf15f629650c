"""klog consume -g: the group's committed offset is right after the last record the reader
took, however the command is stopped (the reader exits, Ctrl-C)."""
import signal
import subprocess

from .conftest import cli_env, committed, klog_cmd, ok, run, seed, small_offsets_topic

N = 5000     # far more than one poll (500) and than a pipe buffer holds


def _seed(data_dir):
    seed(data_dir, "t", [b"v%d" % i for i in range(N)])
    small_offsets_topic(data_dir)


def test_pipe_into_head_commits_only_what_head_read(data_dir, tmp_path):
    _seed(data_dir)
    cmd = " ".join(f"'{a}'" for a in klog_cmd("consume", "t", "-g", "g", data_dir=data_dir))
    script = f"{cmd} 2>'{tmp_path}/err' | head -3; echo ${{PIPESTATUS[0]}} >'{tmp_path}/rc'"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, env=cli_env(), timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.stdout == b"v0\nv1\nv2\n", proc.stderr
    assert (tmp_path / "err").read_text() == ""
    assert (tmp_path / "rc").read_text().strip() == "0"
    assert committed(data_dir, "g") == {("t", 0): 3}
    # the next run starts exactly at record 4
    assert ok(run("consume", "t", "-g", "g", "-c", "2", data_dir=data_dir)) == "v3\nv4\n"
    assert committed(data_dir, "g") == {("t", 0): 5}


def test_ctrl_c_commits_up_to_the_last_line_read(data_dir):
    _seed(data_dir)
    proc = subprocess.Popen(klog_cmd("consume", "t", "-g", "g", data_dir=data_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=cli_env(), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = [proc.stdout.readline() for _ in range(7)]
        proc.send_signal(signal.SIGINT)
        # communicate() reads on: it may also read the one record in flight when the signal
        # came, before or after klog's last look at the pipe.
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    read = lines + rest.splitlines(keepends=True)
    assert read == [b"v%d\n" % i for i in range(len(read))]
    assert len(read) <= 8            # at most the one record in flight when Ctrl-C came
    assert proc.returncode == 130
    assert err == b""               # no traceback, no "Aborted!"
    # Every line read before Ctrl-C is committed; the one in flight may be (if klog saw it
    # leave the pipe) or not (then it comes again: at-least-once), never more than was read.
    done = committed(data_dir, "g")[("t", 0)]
    assert 7 <= done <= len(read)
    assert ok(run("consume", "t", "-g", "g", "-c", "1", data_dir=data_dir)) == f"v{done}\n"


def test_a_file_gets_everything_and_the_commit_says_so(data_dir, tmp_path):
    """Not a pipe: a record is delivered once written (no pacing)."""
    _seed(data_dir)
    with open(tmp_path / "out", "wb") as f:
        proc = subprocess.run(klog_cmd("consume", "t", "-g", "g", "-e", data_dir=data_dir), stdout=f,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=cli_env(), timeout=120)
    assert proc.returncode == 0 and proc.stderr == b""
    assert (tmp_path / "out").read_bytes() == b"".join(b"v%d\n" % i for i in range(N))
    assert committed(data_dir, "g") == {("t", 0): N}
