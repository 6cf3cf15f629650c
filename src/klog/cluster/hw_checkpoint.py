"""``replication-offset-checkpoint``: each local replica's high watermark, as Kafka keeps it.

On disk, in the broker's data directory (Kafka's OffsetCheckpointFile format)::

    0                 version
    2                 number of entries
    orders 0 150      topic partition high-watermark
    orders 1 97

Written atomically (temp, fsync, rename, fsync dir), so a crash leaves the old or the new file.
A high watermark read back is only a lower bound of what was committed (the file lags the
replicas by up to one checkpoint interval), which is safe: the replica learns the newer one from
the leader, and a leader recomputes it from its followers. A missing file means 0 everywhere; a
damaged one is reported (naming the file and line) and also read as 0 everywhere, the safe
direction: it only delays what consumers may read.
"""
from __future__ import annotations

import logging
import os

from klog.storage.files import write_atomic

FILE = "replication-offset-checkpoint"
VERSION = 0

log = logging.getLogger("klog.cluster.hw_checkpoint")


class HighWatermarkCheckpoint:
    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, FILE)

    def read(self) -> dict:
        """{(topic, partition): high watermark}; {} when missing or damaged (logged)."""
        try:
            with open(self.path, "rb") as f:
                text = f.read().decode("utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as e:
            log.warning("%s: unreadable (%s); high watermarks start at 0", self.path, e)
            return {}
        lines = text.splitlines()
        out = {}
        try:
            if int(lines[0]) != VERSION:
                raise ValueError(f"line 1: version {lines[0]!r}, expected {VERSION}")
            if int(lines[1]) != len(lines) - 2:
                raise ValueError(f"line 2: {lines[1]} entries announced, {len(lines) - 2} present")
            for n, line in enumerate(lines[2:], 3):
                parts = line.split(" ")
                if len(parts) != 3 or int(parts[1]) < 0 or int(parts[2]) < 0:
                    raise ValueError(f"line {n}: {line!r} is not 'topic partition offset'")
                out[(parts[0], int(parts[1]))] = int(parts[2])
        except (ValueError, IndexError) as e:
            log.warning("%s: damaged (%s); high watermarks start at 0", self.path, e)
            return {}
        return out

    def write(self, high_watermarks: dict) -> None:
        body = "".join(f"{t} {p} {hw}\n" for (t, p), hw in sorted(high_watermarks.items()))
        write_atomic(self.path, f"{VERSION}\n{len(high_watermarks)}\n{body}".encode("utf-8"))
