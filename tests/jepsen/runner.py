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

    def describe(self) -> str:
        return (f"{self.report.format()}\nworkload rc={self.workload_rc} "
                f"final rc={self.final_rc} history={self.history_path}\n"
                f"{self.workload_output[-3000:]}")


def run(target, faults: list[str], duration: float = 10.0, seed: int = 0, topic: str = "jepsen",
        partitions: int = 3, workload_args: list[str] | None = None,
        nemesis_args: dict | None = None, final_timeout: float = 60.0) -> Outcome:
    path = os.path.join(target.workdir, f"history-{topic}.jsonl")
    hw = history.HistoryWriter(path)

    def record(kind, node, detail):
        hw.write("fault", "nemesis", kind=kind, target=node, detail=detail)

    common = ["--bootstrap", target.bootstrap, "--topic", topic, "--out", path,
              "--partitions", str(partitions)]
    wl = target.client("workload", [sys.executable, "-m", "jepsen.workload", "run", *common,
                                    "--duration", str(duration), "--seed", str(seed),
                                    *(workload_args or [])],
                       os.path.join(target.workdir, f"workload-{topic}.log"))
    nem = None
    try:
        if faults:
            nem = Nemesis(target, faults, seed=seed, record=record, **(nemesis_args or {}))
            # Faults begin once the workload has written (the topic exists and clients run).
            wait_until(lambda: os.path.getsize(path) > 0 or not wl.alive(), 60,
                       "the workload's first operation")
            nem.start()
        # The workload stops itself; the bound here is only a backstop against a hang.
        wl.popen.wait(duration + 180)
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
                   nem.count if nem else 0)
