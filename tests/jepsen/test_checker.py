"""The checker on hand-built histories: a clean history has zero violations, and each corruption
shows up as exactly the violation it names (and no other)."""
import pytest

from .checker import CHECKS, check
from .history import HistoryWriter, load

T = [0.0]


def op(op_, proc, **f):
    T[0] += 1
    return {"op": op_, "proc": proc, "t": T[0], **f}


def clean():
    """Producer cp0 writes 4 values to p0 (offsets 0-3), one unknown send lands at 4 and one
    fails; an assign consumer reads all with one seek back; a group commits 2 then 5; the
    final read sees 0-4, end 5."""
    h = [op("seek", "ca0", p=0, offset=0)]
    for i in range(4):
        h.append(op("send", "cp0", p=0, v=f"cp0:0:{i}", status="ok", offset=i))
    h.append(op("send", "cp0", p=0, v="cp0:0:4", status="unknown", error="timeout"))
    h.append(op("send", "cp0", p=0, v="cp0:0:5", status="fail", error="MSG_SIZE_TOO_LARGE"))
    for i in range(3):
        h.append(op("poll", "ca0", mode="assign", p=0, offset=i, v=f"cp0:0:{i}"))
    h.append(op("seek", "ca0", p=0, offset=1))
    for i in range(1, 5):
        h.append(op("poll", "ca0", mode="assign", p=0, offset=i, v=f"cp0:0:{i}"))
    h.append(op("assign", "cs0", p=0, offset=-1))
    h.append(op("poll", "cs0", mode="subscribe", p=0, offset=0, v="cp0:0:0"))
    h.append(op("commit", "cs0", group="g", p=0, offset=2))
    h.append(op("assign", "cs0", p=0, offset=2))
    h.append(op("poll", "cs0", mode="subscribe", p=0, offset=2, v="cp0:0:2"))
    h.append(op("commit", "cs0", group="g", p=0, offset=5))
    for i in range(5):
        h.append(op("final", "final", p=0, offset=i, v=f"cp0:0:{i}"))
    h.append(op("end", "final", p=0, offset=5))
    h.append(op("fault", "nemesis", kind="kill9", target="n1", detail=""))
    return h


def only(report, name, n=1):
    assert report.violations[name] == n, report.format()
    others = {k: v for k, v in report.violations.items() if k != name and v}
    assert not others, report.format()


def test_clean_history_has_no_violations():
    r = check(clean())
    assert r.total == 0, r.format()
    assert r.ops["send_ok"] == 4 and r.ops["send_unknown"] == 1 and r.ops["send_fail"] == 1
    assert r.ops["final"] == 5 and r.faults == {"kill9": 1}


def replace(h, pred, **new):
    out = []
    for o in h:
        out.append({**o, **new} if pred(o) else o)
    return out


def test_inconsistent_offset():
    h = clean() + [op("poll", "ka0", mode="assign", p=0, offset=3, v="cp0:0:4")]
    h.insert(0, op("seek", "ka0", p=0, offset=3))
    r = check(h)
    assert r.violations["inconsistent_offset"] == 1, r.format()
    assert r.violations["duplicate"] == 1          # cp0:0:4 now also at two offsets


def test_duplicate():
    h = clean()
    h = [o for o in h if not (o["op"] in ("final", "end"))]
    vals = ["cp0:0:0", "cp0:0:1", "cp0:0:2", "cp0:0:3", "cp0:0:4", "cp0:0:3"]
    h += [op("final", "final", p=0, offset=i, v=v) for i, v in enumerate(vals)]
    h.append(op("end", "final", p=0, offset=6))
    r = check(h)
    assert r.violations["duplicate"] == 1, r.format()
    assert r.violations["key_order"] == 1          # the second copy is out of send order
    assert r.total == 2


def test_lost_write():
    h = [o for o in clean() if not (o["op"] == "final" and o["offset"] == 4)]
    h = replace(h, lambda o: o["op"] == "end", offset=4)
    h = replace(h, lambda o: o["op"] == "send" and o["v"] == "cp0:0:4", status="ok", offset=4)
    h = replace(h, lambda o: o["op"] == "commit" and o["offset"] == 5, offset=4)
    only(check(h), "lost_write")


def test_lost_write_at_other_offset_counts():
    # acknowledged at offset 3, but the final read has it nowhere at 3
    h = replace(clean(), lambda o: o["op"] == "send" and o["v"] == "cp0:0:3", offset=2)
    r = check(h)
    assert r.violations["lost_write"] == 1, r.format()


def test_aborted_read():
    h = replace(clean(), lambda o: o["op"] == "send" and o["v"] == "cp0:0:4", status="fail")
    only(check(h), "aborted_read")


def test_gap_holes_and_short_of_end():
    h = [o for o in clean() if not (o["op"] == "final" and o["offset"] == 2)]
    h = replace(h, lambda o: o["op"] == "send" and o["v"] == "cp0:0:2", status="unknown")
    only(check(h), "gap")
    h2 = replace(clean(), lambda o: o["op"] == "end", offset=7)
    h2 = replace(h2, lambda o: o["op"] == "commit" and o["offset"] == 5, offset=4)
    only(check(h2), "gap", 2)


def test_nonmonotonic_send():
    h = replace(clean(), lambda o: o["op"] == "send" and o["v"] == "cp0:0:3", offset=1)
    r = check(h)
    assert r.violations["nonmonotonic_send"] == 1, r.format()


def test_poll_skip_and_poll_nonmonotonic():
    h = [o for o in clean() if not (o["op"] == "poll" and o["proc"] == "ca0" and
                                    o["offset"] == 3)]
    only(check(h), "poll_skip")
    h2 = clean()
    i = max(n for n, o in enumerate(h2) if o["op"] == "poll" and o["proc"] == "ca0")
    h2.insert(i + 1, op("poll", "ca0", mode="assign", p=0, offset=2, v="cp0:0:2"))
    only(check(h2), "poll_nonmonotonic")


def test_key_order():
    h = [o for o in clean() if o["op"] not in ("final",)]
    vals = ["cp0:0:0", "cp0:0:2", "cp0:0:1", "cp0:0:3", "cp0:0:4"]
    h += [op("final", "final", p=0, offset=i, v=v) for i, v in enumerate(vals)]
    r = check(h)
    assert r.violations["key_order"] == 1, r.format()


def test_commit_backwards_and_commit_past_end():
    h = clean() + [op("commit", "cs0", group="g", p=0, offset=3)]
    only(check(h), "commit_backwards")
    h2 = replace(clean(), lambda o: o["op"] == "commit" and o["offset"] == 5, offset=9)
    only(check(h2), "commit_past_end")


def test_resume_mismatch():
    h = replace(clean(), lambda o: o["op"] == "poll" and o["proc"] == "cs0" and
                o["offset"] == 2, offset=1, v="cp0:0:1")
    only(check(h), "resume_mismatch")


def test_unexpected_value():
    h = clean() + [op("poll", "ka0", mode="subscribe", p=0, offset=9, v="zz:0:1")]
    r = check(h)
    assert r.violations["unexpected_value"] == 1, r.format()


def test_every_check_has_a_test():
    names = {n[len("test_"):] for n in globals() if n.startswith("test_")}
    for c in CHECKS:
        assert any(c in n for n in names), c


def test_history_file_roundtrip_ignores_torn_tail(tmp_path):
    path = str(tmp_path / "h.jsonl")
    with HistoryWriter(path) as w:
        w.write("send", "cp0", p=0, v="cp0:0:0", status="ok", offset=0)
    with open(path, "a") as f:
        f.write('{"op": "send", "pro')               # the writer died mid-line
    ops = load(path)
    assert [o["v"] for o in ops] == ["cp0:0:0"]
    with open(path, "a") as f:
        f.write('\n{"op": "poll"}\n')
    with pytest.raises(ValueError, match=r"h.jsonl:2: not a history line"):
        load(path)
