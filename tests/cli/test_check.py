"""``klog check``: offline verification of a data directory (exit 0 clean, 1 damage, 2 when it
cannot check), and ``--truncate-at-first-damage``."""
import os
import struct

import klog

from .conftest import run

SEG = {"log.segment.bytes": 4096}


def make(d, partitions=2, n=200):
    with klog.open(d, SEG) as b:
        b.create_topic("t", partitions)
        b.create_topic("other", 1)
        for i in range(n):
            b.log("t", i % partitions).append([b"value-%04d" % i * 8])
        b.log("other", 0).append([b"x"])


def seg(d, topic, p, base=0, suffix=".log"):
    return os.path.join(d, f"{topic}-{p}", f"{base:020d}{suffix}")


def flip(path, pos):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x10]))


def test_clean_directory_exits_0(tmp_path):
    d = str(tmp_path / "data")
    make(d)
    r = run("check", d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 partitions checked, 0 damaged" in r.stdout
    assert sorted(n for n in os.listdir(d) if n == ".lock") == [".lock"]


def test_flipped_byte_is_reported_by_file_byte_and_offsets(tmp_path):
    """Flushed data with a flipped payload byte opens and is served as stored (a client with
    check.crcs=false takes it); klog check finds it."""
    d = str(tmp_path / "data")
    make(d)
    flip(seg(d, "t", 1), 400)
    with klog.open(d) as b:   # the broker itself does not notice
        assert b.log("t", 1).log_end_offset == 100
    assert run("check", data_dir=d).returncode == 1   # the path defaults to --data-dir
    r = run("check", d)
    assert r.returncode == 1, r.stdout + r.stderr
    line = next(l for l in r.stdout.splitlines() if "damage:" in l)
    assert seg(d, "t", 1) in line and "CRC mismatch" in line, line
    start, end = map(int, line.split("bytes ")[1].split(" ")[0].split(".."))
    assert start <= 400 < end
    assert "(offsets " in line
    assert "1 damaged" in r.stdout


def test_topic_and_partition_dir_selection(tmp_path):
    d = str(tmp_path / "data")
    make(d)
    flip(seg(d, "t", 0), 300)
    r = run("check", d, "--topic", "other")
    assert r.returncode == 0 and "1 partitions checked" in r.stdout, r.stdout
    r = run("check", os.path.join(d, "t-1"))
    assert r.returncode == 0 and "1 partitions checked" in r.stdout, r.stdout
    r = run("check", os.path.join(d, "t-0"))
    assert r.returncode == 1, r.stdout


def test_usage_errors_exit_2(tmp_path):
    r = run("check", str(tmp_path / "nope"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    d = str(tmp_path / "data")
    make(d)
    r = run("check", d, "--topic", "missing")
    assert r.returncode == 2 and "missing" in r.stderr, r.stderr


def test_refuses_a_directory_a_live_process_holds(tmp_path):
    d = str(tmp_path / "data")
    make(d)
    with klog.open(d):
        r = run("check", d)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"process {os.getpid()}" in r.stderr and "in use" in r.stderr, r.stderr
        r = run("check", os.path.join(d, "t-0"))
        assert r.returncode == 2, r.stdout + r.stderr
    # and it left no lock behind: the broker opens again, the check runs again
    with klog.open(d):
        pass
    assert run("check", d).returncode == 0


def test_check_does_not_create_lock_files(tmp_path):
    d = str(tmp_path / "data")
    make(d)
    for root, _, files in os.walk(d):
        if ".lock" in files:
            os.unlink(os.path.join(root, ".lock"))
    assert run("check", d).returncode == 0
    assert not any(".lock" in files for _, _, files in os.walk(d))


def test_truncate_at_first_damage(tmp_path):
    d = str(tmp_path / "data")
    make(d)
    with klog.open(d) as b:
        bases = b.log("t", 0).segments
        want = [r.value for r in b.log("t", 0).records()]
    assert len(bases) >= 3
    # damage the framing of a batch in the second segment
    victim = seg(d, "t", 0, bases[1])
    with open(victim, "r+b") as f:
        f.seek(8)
        length = struct.unpack(">i", f.read(4))[0]
        f.seek(length + 12 + 8)   # the second batch's length
        f.write(struct.pack(">i", -12))
    r = run("check", d)
    assert r.returncode == 1 and "impossible batch length -12" in r.stdout, r.stdout
    # Without the flag nothing changes.
    assert os.path.exists(seg(d, "t", 0, bases[2]))
    r = run("check", d, "--truncate-at-first-damage")
    assert r.returncode == 1, r.stdout   # it reports the damage it found, then cut it
    cut = next(l for l in r.stdout.splitlines() if l.startswith("truncated:"))
    assert os.path.join(d, "t-0") in cut and f"{bases[1]:020d}.log" in cut, cut
    assert f"offsets {bases[1] + 1} and later" in cut, cut
    assert not os.path.exists(seg(d, "t", 0, bases[2]))
    r = run("check", d)
    assert r.returncode == 0, r.stdout
    with klog.open(d) as b:
        log = b.log("t", 0)
        assert log.log_end_offset == bases[1] + 1
        assert [r.value for r in log.records()] == want[:bases[1] + 1]
        assert b.log("t", 1).log_end_offset == 100   # the other partitions are untouched
