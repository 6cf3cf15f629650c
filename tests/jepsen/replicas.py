"""C10: replicas byte-identical below the high watermark.

Given several data directories (one per broker) and a partition directory name (``topic-p``),
walk each replica's segment files independently of klog (RecordBatch v2 framing: baseOffset
int64, batchLength int32, partitionLeaderEpoch int32, magic int8 at byte 16, lastOffsetDelta
int32 at byte 23) and compare, batch by batch, every batch whose last offset is below the high
watermark: the whole stored bytes, the leader-epoch field included (a follower stores the
leader's batches as they are, so even the epoch must match). Segment boundaries may differ
between replicas (each rolls on its own), so batches are compared, not files.

Reading stops at the first torn or unframed batch of a segment (a crash tail above the
watermark is normal); a replica that holds less than the watermark is reported as ``short``.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

HEADER = 61


def batches(partition_dir: str) -> list[tuple[int, int, bytes]]:
    """(base offset, last offset, raw bytes) of every well-framed batch, in offset order."""
    out = []
    names = sorted(n for n in os.listdir(partition_dir)
                   if n.endswith(".log") and len(n) == 24 and n[:20].isdigit())
    for name in names:
        with open(os.path.join(partition_dir, name), "rb") as f:
            data = f.read()
        pos = 0
        while len(data) - pos >= HEADER:
            length = struct.unpack_from(">i", data, pos + 8)[0]
            if length < HEADER - 12 or pos + 12 + length > len(data) or data[pos + 16] != 2:
                break
            raw = data[pos:pos + 12 + length]
            base = struct.unpack_from(">q", raw, 0)[0]
            last = base + struct.unpack_from(">i", raw, 23)[0]
            out.append((base, last, raw))
            pos += len(raw)
    out.sort(key=lambda b: b[0])
    return out


@dataclass
class ReplicaReport:
    compared: int = 0                       # batches compared (below the watermark, per replica)
    diverged: list = field(default_factory=list)   # (offset, replica a, replica b, why)
    short: list = field(default_factory=list)      # (replica, its end below the watermark)

    @property
    def violations(self) -> int:
        return len(self.diverged) + len(self.short)


def compare(data_dirs: list[str], partition: str, high_watermark: int) -> ReplicaReport:
    rep = ReplicaReport()
    views = {}
    for d in data_dirs:
        pdir = os.path.join(d, partition)
        bs = [b for b in batches(pdir) if b[1] < high_watermark] if os.path.isdir(pdir) else []
        views[d] = {b[0]: b for b in bs}
        end = max((b[1] + 1 for b in bs), default=0)
        if end < high_watermark:
            rep.short.append((d, end))
    ref_dir, ref = data_dirs[0], views[data_dirs[0]]
    for d in data_dirs[1:]:
        other = views[d]
        for base in sorted(set(ref) | set(other)):
            a, b = ref.get(base), other.get(base)
            rep.compared += 1
            if a is None or b is None:
                rep.diverged.append((base, ref_dir, d, "missing in " + (ref_dir if a is None
                                                                        else d)))
            elif a[2] != b[2]:
                i = next(i for i, (x, y) in enumerate(zip(a[2], b[2])) if x != y) \
                    if len(a[2]) == len(b[2]) else min(len(a[2]), len(b[2]))
                rep.diverged.append((base, ref_dir, d, f"bytes differ from byte {i}"))
    return rep
