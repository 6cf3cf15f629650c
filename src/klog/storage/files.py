"""File names and durable small-file writes for a log directory (Kafka's LogFileUtils)."""
import os

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
CHECKPOINT = "log.checkpoint"
CLEAN_SHUTDOWN = ".clean-shutdown"
LOCK = ".lock"


def segment_name(base_offset, suffix):
    """``00000000000000000042.log``: base offsets zero-padded to 20 digits, so names sort."""
    return f"{base_offset:020d}{suffix}"


def base_offset_of(name, suffix):
    """The base offset a segment file name encodes, or None if it is not such a name."""
    if not name.endswith(suffix):
        return None
    stem = name[: -len(suffix)]
    if len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


def fsync_dir(path):
    """Make a create, rename or delete in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_durably(path):
    """``os.makedirs(path, exist_ok=True)``, and each directory it creates made durable (its parent
    fsynced), so a new log or data directory is still there after a power loss. Returns whether
    ``path`` was created."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        return False
    parent = os.path.dirname(path)
    makedirs_durably(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    fsync_dir(parent)
    return True


def write_atomic(path, data):
    """Write a small file so a crash leaves the old or the new content: temp → fsync → rename →
    fsync the directory."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def remove_durably(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(os.path.dirname(path) or ".")
    return True
