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


class CheckpointFormatError(ValueError):
    """A checkpoint file that is not text, or not version / count / rows of the expected width."""


def read_rows(path, columns):
    """The rows of a file in Kafka's CheckpointFile shape (a version line, an entry count, then
    one line of ``columns`` space-separated fields per entry), as lists of strings; None if the
    file does not exist. CheckpointFormatError otherwise. Shared by every checkpoint klog keeps
    (this log's, the leader-epoch cache's, the cleaner's)."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise CheckpointFormatError(f"{path}: not text") from None
    lines = text.splitlines()
    try:
        if int(lines[0]) != VERSION or int(lines[1]) != len(lines) - 2:
            raise ValueError
    except (ValueError, IndexError):
        raise CheckpointFormatError(f"{path}: expected version {VERSION} and an entry count "
                                    "matching the lines that follow") from None
    rows = [line.split() for line in lines[2:]]
    if any(len(r) != columns for r in rows):
        raise CheckpointFormatError(f"{path}: expected {columns} fields on every entry line")
    return rows


def write_rows(path, rows):
    """Write rows of fields in the same shape, atomically."""
    body = "".join(" ".join(str(f) for f in row) + "\n" for row in rows)
    write_atomic(os.fspath(path), f"{VERSION}\n{len(rows)}\n{body}".encode("ascii"))


def read_checkpoint(path):
    """{name: int}; {} if the file does not exist."""
    try:
        rows = read_rows(path, 2)
        return {name: int(value) for name, value in rows or ()}
    except (CheckpointFormatError, ValueError):
        raise CorruptLogError(
            f"{path}: malformed checkpoint file (expected version {VERSION}, a count, then "
            f"'name value' lines); delete it to recover the whole log from the start") from None


def write_checkpoint(path, entries):
    write_rows(path, [(k, int(v)) for k, v in entries.items()])
