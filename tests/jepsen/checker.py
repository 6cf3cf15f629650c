"""Jepsen's Kafka properties over a history (see history.py), per partition; reliability.md's
table C1-C9 (C10, replicas, is replicas.py). Counts, not adjectives.

  C1 inconsistent_offset  one (partition, offset) seen with two different values (polls and the
                          final read together)
  C2 duplicate            one value at two offsets
  C3 lost_write           an acknowledged value missing from the final read; an ack with an offset
                          whose final-read value differs counts here too
  C4 aborted_read         a value whose send definitely failed was read
  C5 gap                  final-read offsets not contiguous from the first to the end offset
                          (each missing offset counts); a final read short of its end counts too
  C6 nonmonotonic_send    one producer's acknowledged offsets to a partition not increasing in
                          send order
  C7 poll_nonmonotonic    assign mode: a poll at or below the previous offset without a seek
     poll_skip            assign mode: a poll more than +1 past the previous (or not at a seek's
                          target) without a seek
  C8 key_order            one producer's values to a partition, by offset in the final read,
                          not in send order
  C9 commit_backwards     a group's committed offset for a partition decreasing
     commit_past_end      a committed offset past the partition's end offset
     resume_mismatch      subscribe mode: the first record after an assignment not at the
                          committed offset it resumed from
  and unexpected_value    a value read that no send produced (C4's cousin)
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .history import parse_value

CHECKS = ("inconsistent_offset", "duplicate", "lost_write", "aborted_read", "gap",
          "nonmonotonic_send", "poll_nonmonotonic", "poll_skip", "key_order",
          "commit_backwards", "commit_past_end", "resume_mismatch", "unexpected_value")


@dataclass
class Report:
    ops: dict[str, int] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    examples: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    faults: dict[str, int] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)   # operations per client (proc)

    def add(self, check: str, example, n: int = 1):
        self.violations[check] += n
        if len(self.examples[check]) < 5:
            self.examples[check].append(example)

    @property
    def total(self) -> int:
        return sum(self.violations.values())

    def format(self) -> str:
        ops = " ".join(f"{k}={v}" for k, v in sorted(self.ops.items()))
        faults = " ".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"
        bad = " ".join(f"{k}={v}" for k, v in self.violations.items())
        clients = " ".join(f"{k}={v}" for k, v in sorted(self.clients.items()))
        lines = [f"ops: {ops}", f"clients: {clients}", f"faults: {faults}",
                 f"violations: {bad} (total {self.total})"]
        for k, ex in self.examples.items():
            if ex:
                lines.append(f"  {k}: {ex}")
        return "\n".join(lines)


def check(ops: list[dict]) -> Report:
    r = Report()
    sends = [o for o in ops if o["op"] == "send"]
    polls = [o for o in ops if o["op"] == "poll"]
    finals = [o for o in ops if o["op"] == "final"]
    ends = {o["p"]: o["offset"] for o in ops if o["op"] == "end"}
    commits = [o for o in ops if o["op"] == "commit"]
    for kind in ("send", "poll", "seek", "assign", "commit", "final"):
        r.ops[kind] = sum(1 for o in ops if o["op"] == kind)
    for status in ("ok", "fail", "unknown"):
        r.ops[f"send_{status}"] = sum(1 for o in sends if o["status"] == status)
    for o in ops:
        r.clients[o["proc"]] = r.clients.get(o["proc"], 0) + 1
        if o["op"] == "fault":
            r.faults[o["kind"]] = r.faults.get(o["kind"], 0) + 1

    sent = {o["v"]: o for o in sends}
    failed = {o["v"] for o in sends if o["status"] == "fail"}

    # C1: one offset, one value (everything read, polls and final read).
    at: dict[tuple[int, int], str] = {}
    for o in polls + finals:
        key = (o["p"], o["offset"])
        if key in at and at[key] != o["v"]:
            r.add("inconsistent_offset", (o["p"], o["offset"], at[key], o["v"]))
        at.setdefault(key, o["v"])

    # C2: one value, one offset.
    offsets_of: dict[str, set] = defaultdict(set)
    for o in polls + finals:
        offsets_of[o["v"]].add((o["p"], o["offset"]))
    for o in sends:
        if o["status"] == "ok" and o.get("offset", -1) >= 0:
            offsets_of[o["v"]].add((o["p"], o["offset"]))
    for v, where in offsets_of.items():
        if len(where) > 1:
            r.add("duplicate", (v, sorted(where)), len(where) - 1)

    # C4 and values nobody sent.
    for v in offsets_of:
        if v in failed:
            r.add("aborted_read", v)
        elif v not in sent:
            r.add("unexpected_value", v)

    # C3: acknowledged values present in the final read (at their acknowledged offset).
    final_at = {(o["p"], o["offset"]): o["v"] for o in finals}
    final_values = {o["v"] for o in finals}
    for o in sends:
        if o["status"] != "ok":
            continue
        off = o.get("offset", -1)
        if o["v"] not in final_values:
            r.add("lost_write", (o["p"], off, o["v"]))
        elif off >= 0 and final_at.get((o["p"], off)) != o["v"]:
            r.add("lost_write", (o["p"], off, o["v"], final_at.get((o["p"], off))))

    # C5: final read contiguous from its first offset to the end offset.
    by_p: dict[int, list[int]] = defaultdict(list)
    for o in finals:
        by_p[o["p"]].append(o["offset"])
    for p in set(by_p) | set(ends):
        offs = sorted(set(by_p.get(p, [])))
        end = ends.get(p)
        if offs:
            missing = (offs[-1] - offs[0] + 1) - len(offs)
            if missing:
                r.add("gap", (p, "holes", missing), missing)
            if end is not None and offs[-1] + 1 < end:
                r.add("gap", (p, "short of end", offs[-1] + 1, end), end - offs[-1] - 1)
        elif end:
            r.add("gap", (p, "nothing read, end", end), 1)

    # C6: a producer's acks to a partition increase in send order (history order = send order
    # of completions; the seq in the value is the send order).
    acked: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for o in sends:
        parsed = parse_value(o["v"])
        if o["status"] == "ok" and o.get("offset", -1) >= 0 and parsed:
            acked[(o["proc"], o["p"])].append((parsed[2], o["offset"]))
    for key, pairs in acked.items():
        pairs.sort()
        for (s1, o1), (s2, o2) in zip(pairs, pairs[1:]):
            if o2 <= o1:
                r.add("nonmonotonic_send", (key, s1, o1, s2, o2))

    # C7: assign-mode polls move by +1 unless a seek says otherwise.
    nxt: dict[tuple[str, int], int] = {}
    for o in ops:
        if o["op"] == "seek":
            nxt[(o["proc"], o["p"])] = o["offset"]
        elif o["op"] == "poll" and o.get("mode") == "assign":
            key = (o["proc"], o["p"])
            want = nxt.get(key)
            if want is not None and o["offset"] != want:
                kind = "poll_nonmonotonic" if o["offset"] < want else "poll_skip"
                r.add(kind, (o["proc"], o["p"], want, o["offset"]))
            nxt[key] = o["offset"] + 1

    # C8: by offset, a producer's values to a partition in send order.
    last_seq: dict[tuple[str, int], tuple[int, int]] = {}
    for o in sorted(finals, key=lambda o: (o["p"], o["offset"])):
        parsed = parse_value(o["v"])
        if not parsed:
            continue
        key = (parsed[0], o["p"])
        if key in last_seq and parsed[2] <= last_seq[key][0]:
            r.add("key_order", (key, last_seq[key], (parsed[2], o["offset"])))
        last_seq[key] = (parsed[2], o["offset"])

    # C9: commits never go backwards, never past the end; resuming starts at the commit.
    last_commit: dict[tuple[str, int], int] = {}
    for o in commits:
        key = (o["group"], o["p"])
        if key in last_commit and o["offset"] < last_commit[key]:
            r.add("commit_backwards", (key, last_commit[key], o["offset"]))
        last_commit[key] = o["offset"]
        end = ends.get(o["p"])
        if end is not None and o["offset"] > end:
            r.add("commit_past_end", (key, o["offset"], end))
    resume: dict[tuple[str, int], int] = {}
    for o in ops:
        key = (o["proc"], o.get("p"))
        if o["op"] == "assign":
            resume[key] = o["offset"]
        elif o["op"] == "poll" and o.get("mode") == "subscribe" and key in resume:
            want = resume.pop(key)
            if want >= 0 and o["offset"] != want:
                r.add("resume_mismatch", (o["proc"], o["p"], want, o["offset"]))
    return r
