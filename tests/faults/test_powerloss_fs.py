"""Self-test of powerloss_fs.py, the power-loss file system the power-loss tests rely on: it
must forget exactly what was not made durable (file content without fsync, directory entries
without an fsync of the directory) and keep what was."""
import errno
import os

import pytest

pytestmark = pytest.mark.needs_root


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path, data, sync=False):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        if sync:
            os.fsync(f.fileno())


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_unsynced_write_is_gone_after_power_loss(power):
    d = power.path
    write(f"{d}/kept", b"old", sync=True)
    fsync_dir(d)
    with open(f"{d}/kept", "ab", buffering=0) as f:
        f.write(b" and unsynced")          # visible now (write-through to the file system)...
    assert read(f"{d}/kept") == b"old and unsynced"
    write(f"{d}/new", b"never synced")      # neither content nor name durable
    power.lose_power()
    assert read(f"{d}/kept") == b"old"      # ...gone after the power loss
    assert not os.path.exists(f"{d}/new")


def test_synced_write_is_kept(power):
    d = power.path
    os.mkdir(f"{d}/sub")
    fsync_dir(d)
    write(f"{d}/sub/f", b"durable", sync=True)
    fsync_dir(f"{d}/sub")
    with open(f"{d}/sub/f", "r+b", buffering=0) as f:   # fdatasync: an overwrite, a growth
        f.seek(3)
        f.write(b"ABLE!!")
        os.fdatasync(f.fileno())
        f.write(b" lost")
    power.lose_power()
    assert read(f"{d}/sub/f") == b"durABLE!!"


def test_fsync_of_a_file_does_not_make_its_name_durable(power):
    d = power.path
    write(f"{d}/f", b"content synced, name not", sync=True)
    power.lose_power()
    assert os.listdir(d) == []


def test_rename_without_directory_fsync_is_reverted(power):
    d = power.path
    write(f"{d}/target", b"old", sync=True)
    write(f"{d}/target.tmp", b"new", sync=True)
    fsync_dir(d)
    os.replace(f"{d}/target.tmp", f"{d}/target")
    assert read(f"{d}/target") == b"new"
    power.lose_power()
    assert sorted(os.listdir(d)) == ["target", "target.tmp"]
    assert read(f"{d}/target") == b"old" and read(f"{d}/target.tmp") == b"new"


def test_rename_with_directory_fsync_is_kept_and_unlink_too(power):
    d = power.path
    write(f"{d}/target", b"old", sync=True)
    write(f"{d}/doomed", b"x", sync=True)
    fsync_dir(d)
    write(f"{d}/target.tmp", b"new", sync=True)
    os.replace(f"{d}/target.tmp", f"{d}/target")
    os.unlink(f"{d}/doomed")
    fsync_dir(d)
    power.lose_power()
    assert os.listdir(d) == ["target"] and read(f"{d}/target") == b"new"


def test_renamed_name_durable_but_content_not_reads_empty(power):
    """The classic zero-length file: rename made durable, the data never fsynced."""
    d = power.path
    write(f"{d}/f.tmp", b"unsynced content")
    os.replace(f"{d}/f.tmp", f"{d}/f")
    fsync_dir(d)
    power.lose_power()
    assert read(f"{d}/f") == b""


def test_reserved_space_truncate_and_open_unlinked_file(power):
    d = power.path
    fd = os.open(f"{d}/seg", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, 1 << 20)
        os.pwrite(fd, b"abc", 0)
        os.fdatasync(fd)
        os.ftruncate(fd, 2)                 # the cut is not durable without another fdatasync
        assert os.fstat(fd).st_size == 2
        fsync_dir(d)
        os.unlink(f"{d}/seg")               # still readable and writable through fd
        os.pwrite(fd, b"Z", 1)
        assert os.pread(fd, 5, 0) == b"aZ"
    finally:
        os.close(fd)
    power.lose_power()
    data = read(f"{d}/seg")
    assert len(data) == 1 << 20 and data[:3] == b"abc" and data[3:] == bytes(len(data) - 3)


def test_everything_fails_between_the_cut_and_the_reboot(power):
    d = power.path
    write(f"{d}/f", b"x", sync=True)
    fsync_dir(d)
    f = open(f"{d}/f", "r+b", buffering=0)
    power.cut_power()
    with pytest.raises(OSError) as err:
        f.write(b"after the cut")
    assert err.value.errno == errno.EIO
    with pytest.raises(OSError):
        os.fsync(f.fileno())
    f.close()
    power.reboot()
    assert read(f"{d}/f") == b"x"


def test_prefix_mode_keeps_some_prefix_of_unsynced_writes(power):
    d = power.path
    seen = set()
    for seed in range(6):
        fd = os.open(f"{d}/f{seed}", os.O_RDWR | os.O_CREAT, 0o644)
        os.fsync(fd)
        for i in range(8):
            os.pwrite(fd, b"%d" % i, i)
        os.close(fd)
        fsync_dir(d)
        power.lose_power(prefix_seed=seed)
        data = read(f"{d}/f{seed}")
        assert data == b"01234567"[:len(data)], data
        seen.add(len(data))
    assert len(seen) > 1                    # not always all or always none


def test_sync_makes_everything_durable(power):
    d = power.path
    os.makedirs(f"{d}/a/b")
    write(f"{d}/a/b/f", b"synced by sync()")
    power.sync()
    power.lose_power()
    assert read(f"{d}/a/b/f") == b"synced by sync()"


def test_cut_after_counts_state_changes(power):
    """cut-after N: N changes happen, the next one fails with EIO and the power is off; the
    state is the durable one at that instant."""
    d = power.path
    power.trace()
    power.cut_power_after(3)
    write(f"{d}/a", b"1", sync=True)            # create, write, fsync: 3 changes
    with pytest.raises(OSError) as err:
        fsync_dir(d)                            # the 4th: refused, the cut happens before it
    assert err.value.errno == errno.EIO
    stats = power.stats()
    assert stats["off"] and [op for op, _ in stats["trace"]] == ["create", "write", "fsync"]
    power.reboot()
    assert os.listdir(d) == []                  # the directory fsync never happened
