"""The history a workload records and the checker reads: one JSON object per line.

Operations (``t`` = time.time() of the event, ``proc`` = the client that did it):
  send    {p, v, status: ok|fail|unknown, offset (ok; -1 if the ack carried none), error}
  poll    {mode: assign|subscribe, p, offset, v}       one record a consumer received
  seek    {p, offset}                                   assign mode: the next poll of p is offset
  assign  {p, offset}                                   subscribe mode: p assigned, resuming at
                                                        the committed offset (-1: none)
  commit  {group, p, offset}                            a commit the broker acknowledged
  final   {p, offset, v}                                the final read after healing
  end     {p, offset}                                   the log end offset seen by the final read
  fault   {kind, target, detail}                        a fault the harness injected

Values are ``<proc>:<p>:<seq>``: unique across the run, and the seq gives one producer's send
order to a partition. Lines are written whole under a lock and flushed, so a history cut short
by a crash of the writer is still a valid prefix.
"""
from __future__ import annotations

import json
import threading
import time


class HistoryWriter:
    def __init__(self, path: str):
        self.path = path
        self._f = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, op: str, proc: str, **fields):
        fields = {"op": op, "proc": proc, "t": time.time(), **fields}
        line = json.dumps(fields, separators=(",", ":")) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()

    def close(self):
        with self._lock:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load(*paths: str) -> list[dict]:
    """Every operation of the given history files, by time. A torn last line (writer killed
    mid-write) is ignored; any other bad line is an error naming file and line."""
    ops = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                ops.append(json.loads(line))
            except ValueError:
                if n == len(lines):          # no newline after it: torn by a kill
                    continue
                raise ValueError(f"{path}:{n}: not a history line: {line[:80]!r}") from None
    ops.sort(key=lambda o: o["t"])
    return ops


def value(proc: str, p: int, seq: int) -> str:
    return f"{proc}:{p}:{seq}"


def parse_value(v: str) -> tuple[str, int, int] | None:
    """(proc, partition, seq) of a workload value, None for anything else."""
    parts = v.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])
