"""The log's checkpoint file: the recovery point and the log start offset.

Format, in the shape of Kafka's CheckpointFile: a version line (0), an entry count, then one
``name value`` line per entry. Written atomically (temp → fsync → rename → fsync dir), so after a
crash it holds the old or the new values, never a mix. A stale recovery point only means more
recovery work; it is never ahead of flushed data, because it is written after the flush.
"""
import os

from klog.errors import CorruptLogError
from klog.storage.files import write_atomic

VERSION = 0


def read_checkpoint(path):
    """{name: int}; {} if the file does not exist."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise CorruptLogError(
            f"{path}: checkpoint file is not text; delete it to recover the whole log from the "
            "start") from None
    lines = text.splitlines()
    try:
        version, count = int(lines[0]), int(lines[1])
        if version != VERSION or count != len(lines) - 2:
            raise ValueError
        entries = {}
        for line in lines[2:]:
            name, value = line.split()
            entries[name] = int(value)
        return entries
    except (ValueError, IndexError):
        raise CorruptLogError(
            f"{path}: malformed checkpoint file (expected version {VERSION}, a count, then "
            f"'name value' lines); delete it to recover the whole log from the start") from None


def write_checkpoint(path, entries):
    body = "".join(f"{k} {int(v)}\n" for k, v in entries.items())
    write_atomic(os.fspath(path), f"{VERSION}\n{len(entries)}\n{body}".encode("ascii"))
