"""The nemesis: a thread that injects faults into a Target at intervals until told to stop,
each one applied, held, and undone before the next, and recorded (FaultLog, and as ``fault``
operations in the history via ``record``).

Fault kinds (a node is chosen at random among the target's nodes, seeded):
  kill9       SIGKILL, down for ``down`` seconds, restart with the same data directory
  kill9_wipe  SIGKILL, delete the data directory, restart (positive controls only)
  pause       SIGSTOP for ``pause`` seconds (past the clients' request timeout), SIGCONT
  isolate     iptables DROP of everything on the node's bridge port for ``hold`` s, heal
  loss        iptables random drop of ``loss_p`` of the node's packets for ``hold`` s, heal
  partition   nodes split into two groups (the client with the first) for ``hold`` s, heal
The nemesis waits for the node to answer again after each restart before the next fault.
"""
from __future__ import annotations

import random
import threading
import time

NETWORK_FAULTS = {"isolate", "loss", "partition"}


class Nemesis:
    def __init__(self, target, kinds: list[str], seed: int = 0, interval: float = 1.0,
                 down: float = 1.0, pause: float = 4.0, hold: float = 3.0, loss_p: float = 0.3,
                 record=None, max_faults: int | None = None):
        bad = set(kinds) - {"kill9", "kill9_wipe", "pause"} - NETWORK_FAULTS
        if bad:
            raise ValueError(f"unknown fault kinds {sorted(bad)}")
        if NETWORK_FAULTS & set(kinds) and target.net is None:
            raise ValueError(f"{sorted(NETWORK_FAULTS & set(kinds))} need network namespaces")
        self.t, self.kinds, self.rng = target, kinds, random.Random(seed)
        self.interval, self.down, self.pause_s, self.hold, self.loss_p = \
            interval, down, pause, hold, loss_p
        self.record = record or (lambda kind, target, detail: None)
        self.max_faults = max_faults
        self.done = threading.Event()
        self.count = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)

    def start(self) -> "Nemesis":
        self._thread.start()
        return self

    def finished(self) -> bool:
        """The nemesis ended by itself (``max_faults`` reached, or an error)."""
        return self._thread.ident is not None and not self._thread.is_alive()

    def stop(self):
        self.done.set()
        self._thread.join(120)
        if self.error is not None:
            raise self.error

    def _sleep(self, s: float) -> bool:
        """Sleep unless stopped; a fault already applied is still undone after a stop."""
        return not self.done.wait(s)

    def _run(self):
        try:
            i = 0
            while self._sleep(self.interval):
                if self.max_faults is not None and self.count >= self.max_faults:
                    break
                kind = self.kinds[i % len(self.kinds)]
                i += 1
                self.apply(kind)
                self.count += 1
        except BaseException as exc:
            self.error = exc

    def apply(self, kind: str):
        t = self.t
        n = self.rng.randrange(t.n)
        node = t.nodes[n]
        self.record(kind, node.name, "")
        if kind in ("kill9", "kill9_wipe"):
            node.kill9()
            if kind == "kill9_wipe":
                t.wipe(n)
            time.sleep(self.down)
            node.restart()
            node.wait_ready()
        elif kind == "pause":
            node.pause()
            time.sleep(self.pause_s)
            node.resume()
        elif kind == "isolate":
            t.faults.record("isolate", node.name)
            t.net.isolate(node.name)
            time.sleep(self.hold)
            t.net.heal()
            t.faults.record("heal", "all")
        elif kind == "loss":
            t.faults.record("loss", node.name, str(self.loss_p))
            t.net.loss(node.name, self.loss_p)
            time.sleep(self.hold)
            t.net.heal()
            t.faults.record("heal", "all")
        elif kind == "partition":
            names = [t.node_name(i) for i in range(t.n)]
            self.rng.shuffle(names)
            cut = self.rng.randrange(1, len(names)) if len(names) > 1 else 1
            groups = [["client"] + names[:cut], names[cut:]] if len(names) > 1 \
                else [["client"], names]
            t.faults.record("partition", "all", repr(groups))
            t.net.partition(*[g for g in groups if g])
            time.sleep(self.hold)
            t.net.heal()
            t.faults.record("heal", "all")
