"""One Jepsen-style run: the workload against a Target while a Nemesis injects faults, then heal,
a final read from the log start, and the checker. Returns the Report (and the raw material for a
failure message: the history path, the workload's output).

The workload and the final read run as processes in the target's client namespace; the nemesis
runs here. The run is bounded: the workload stops itself after ``duration`` seconds (or
``max_sends``), the nemesis stops with it, and the final read gives up after ``final_timeout``.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from . import checker, history
from .nemesis import Nemesis
from .procs import wait_until


@dataclass
class Outcome:
    report: checker.Report
    history_path: str
    workload_rc: int | None
    workload_output: str
    final_rc: int | None
    faults: int
    replicas: dict | None = None       # C10, cluster runs: {partition: ReplicaReport}
    unsettled: int = 0                 # cluster runs: faults after which it was not whole again

    @property
    def replica_violations(self) -> int:
        return sum(r.violations for r in (self.replicas or {}).values())

    def describe(self) -> str:
        c10 = ""
        if self.replicas is not None:
            c10 = "C10 replicas: " + " ".join(
                f"p{p}: compared={r.compared} diverged={r.diverged[:3]} short={r.short}"
                for p, r in self.replicas.items()) + f" (unsettled faults {self.unsettled})\n"
        return (f"{self.report.format()}\n{c10}workload rc={self.workload_rc} "
                f"final rc={self.final_rc} history={self.history_path}\n"
                f"{self.workload_output[-3000:]}")


def run(target, faults: list[str], duration: float = 10.0, seed: int = 0, topic: str = "jepsen",
        partitions: int = 3, workload_args: list[str] | None = None,
        nemesis_args: dict | None = None, final_timeout: float = 60.0,
        nemesis_cls=Nemesis, tail: float | None = None) -> Outcome:
    path = os.path.join(target.workdir, f"history-{topic}.jsonl")
    hw = history.HistoryWriter(path)

    def record(kind, node, detail):
        hw.write("fault", "nemesis", kind=kind, target=node, detail=detail)

    common = ["--bootstrap", target.bootstrap, "--topic", topic, "--out", path,
              "--partitions", str(partitions)]
    stop_file = os.path.join(target.workdir, f"stop-{topic}")
    wl = target.client("workload", [sys.executable, "-m", "jepsen.workload", "run", *common,
                                    "--duration", str(duration), "--seed", str(seed),
                                    "--stop-file", stop_file, *(workload_args or [])],
                       os.path.join(target.workdir, f"workload-{topic}.log"))
    nem = None
    try:
        if faults:
            nem = nemesis_cls(target, faults, seed=seed, record=record, **(nemesis_args or {}))
            # Faults begin once the workload has written (the topic exists and clients run).
            wait_until(lambda: os.path.getsize(path) > 0 or not wl.alive(), 60,
                       "the workload's first operation")
            nem.start()
        # The workload stops itself after ``duration``, or ``tail`` seconds after the nemesis
        # injected its ``max_faults``; the bound here is only a backstop against a hang.
        backstop = time.monotonic() + duration + 180
        done_at = None
        while wl.alive() and time.monotonic() < backstop:
            if tail is not None and nem is not None and done_at is None and nem.finished():
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at >= tail:
                open(stop_file, "w").close()
            time.sleep(0.2)
    finally:
        if nem is not None:
            nem.stop()
        target.heal()
    wl_rc = wl.popen.returncode
    fin = target.client("final", [sys.executable, "-m", "jepsen.workload", "final", *common,
                                  "--timeout", str(final_timeout)],
                        os.path.join(target.workdir, f"final-{topic}.log"))
    fin.popen.wait(final_timeout + 60)
    hw.close()
    report = checker.check(history.load(path))
    return Outcome(report, path, wl_rc, wl.output(), fin.popen.returncode,
                   nem.count if nem else 0, unsettled=getattr(nem, "unsettled", 0))


def run_cluster(target, faults: list[str], duration: float = 30.0, seed: int = 0,
                topic: str = "jepsen", partitions: int = 3, workload_args: list[str] | None = None,
                nemesis_args: dict | None = None, final_timeout: float = 90.0,
                settle_timeout: float = 120.0, tail: float | None = 5.0) -> Outcome:
    """``run`` against a ClusterTarget with the ClusterNemesis (topic of replication factor N),
    then C10: once every partition is led with a full ISR, the replicas compared below the
    high watermark the final read saw."""
    from .cluster_nemesis import ClusterNemesis

    out = run(target, faults, duration=duration, seed=seed, topic=topic, partitions=partitions,
              workload_args=["--replication", str(target.n), *(workload_args or [])],
              nemesis_args={"topic": topic, "partitions": partitions, **(nemesis_args or {})},
              final_timeout=final_timeout, nemesis_cls=ClusterNemesis, tail=tail)
    target.wait_healthy(topic, partitions, settle_timeout)
    ends = {o["p"]: o["offset"] for o in history.load(out.history_path) if o["op"] == "end"}
    out.replicas = target.check_replicas(topic, ends)
    return out
