"""C10 replica comparison: batches below the high watermark compared byte for byte (the
leader-epoch field included), on synthetic batches and on real klog segment files."""
import json
import os
import shutil
import struct

import klog

from .replicas import batches, compare


def _batch(base, epoch, payload):
    import struct
    body = struct.pack(">iBi", epoch, 2, 0) + struct.pack(">hiqq", 0, 0, 0, 0) + \
        struct.pack(">qhii", -1, -1, -1, 1) + payload
    # baseOffset, batchLength, then leader epoch (12..15), magic (16), crc (17..20), attrs,
    # lastOffsetDelta at 23
    raw = struct.pack(">qi", base, len(body)) + body
    return raw


def test_replica_compare(tmp_path):
    import struct

    def write(d, batches):
        p = tmp_path / d / "t-0"
        p.mkdir(parents=True)
        (p / f"{0:020d}.log").write_bytes(b"".join(batches))
        return str(tmp_path / d)

    b0, b1, b2 = _batch(0, 1, b"a"), _batch(1, 1, b"b"), _batch(2, 1, b"c")
    assert struct.unpack_from(">i", b1, 23)[0] == 0 and b1[16] == 2
    a = write("a", [b0, b1, b2])
    b = write("b", [b0, b1])                        # b2 is above the watermark: fine
    assert compare([a, b], "t-0", 2).violations == 0
    assert compare([a, b], "t-0", 2).compared == 2
    short = compare([a, b], "t-0", 3)
    assert short.short == [(b, 2)] and short.violations >= 1
    c = write("c", [b0, _batch(1, 2, b"b")])        # same record, another leader epoch
    r = compare([a, c], "t-0", 2)
    assert [(d[0], d[3]) for d in r.diverged] == [(1, "bytes differ from byte 15")]   # epoch field, bytes 12..15
    json.dumps(r.diverged)


def test_replica_compare_on_real_segments(tmp_path):
    """Replicas that are copies of one klog log compare equal across segment rolls; one flipped
    byte inside a batch below the watermark is one divergence naming the offset."""
    a = tmp_path / "a"
    log = klog.Log.open(str(a / "t-0"), {"segment.bytes": 4096})
    for i in range(60):
        log.append([b"value-%d" % i, b"other-%d" % i])
    end = log.log_end_offset
    log.close()
    assert len([n for n in os.listdir(a / "t-0") if n.endswith(".log")]) > 1
    b = tmp_path / "b"
    shutil.copytree(a, b)
    ok = compare([str(a), str(b)], "t-0", end)
    assert ok.violations == 0 and ok.compared == 60
    victim = batches(str(b / "t-0"))[30]
    seg = max(n for n in sorted(os.listdir(b / "t-0")) if n.endswith(".log")
              and int(n[:20]) <= victim[0])
    data = bytearray((b / "t-0" / seg).read_bytes())
    pos = data.find(victim[2])
    data[pos + 70] ^= 0x01
    (b / "t-0" / seg).write_bytes(bytes(data))
    bad = compare([str(a), str(b)], "t-0", end)
    assert [d[0] for d in bad.diverged] == [victim[0]] and bad.violations == 1
    assert compare([str(a), str(b)], "t-0", victim[0]).violations == 0   # above the watermark
