"""The cluster nemesis: faults aimed by role. At fault time it asks the cluster (Metadata, see
ClusterTarget.view) who leads a partition of the workload's topic (chosen at random, seeded) and
who is the controller, then applies, holds and undoes one fault, and before the next one waits
(bounded) for the cluster to be whole again: every partition led with a full ISR.

  kill_leader        SIGKILL the leader, down ``down`` s, restart (same data directory)
  pause_leader       SIGSTOP the leader past its ZooKeeper session (``zombie`` s), SIGCONT: a
                     new leader is elected meanwhile; the woken zombie must be fenced
  pause_follower     SIGSTOP a follower past replica.lag.time.max.ms but within its session
                     (``lag_pause`` s): the ISR shrinks, then grows back
  isolate            iptables DROP on a random broker's port, ``isolate_hold`` s (past the
  isolate_leader     session: the node drops out of the cluster), heal; the same for the
  isolate_controller leader and for the controller
  loss               every broker drops ``loss_p`` of its packets (peers, ZooKeeper, clients)
                     for ``hold`` s
  delay              every proxy (the path between brokers, and to clients) delays each chunk
                     by the proxy's delay + jitter for ``hold`` s
  kill2              SIGKILL two of the three brokers, down ``down`` s, restart both
  restart_all        SIGKILL every broker, restart all
  strand_leader      (positive controls) SIGSTOP both followers of a leader past
                     replica.lag.time.max.ms: the ISR shrinks to the leader, which acknowledges
                     acks=1 writes alone; SIGKILL it, SIGCONT the followers: with unclean
                     election one of them leads without those writes; restart the old leader
"""
from __future__ import annotations

import time

from .cluster import LAG_MS, SESSION_S
from .nemesis import Nemesis
from .procs import wait_until

CLUSTER_FAULTS = ("kill_leader", "pause_leader", "pause_follower", "isolate", "isolate_leader",
                  "isolate_controller", "loss", "delay", "kill2", "restart_all")
CONTROL_FAULTS = ("strand_leader",)


class ClusterNemesis(Nemesis):
    def __init__(self, target, kinds: list[str], seed: int = 0, interval: float = 1.0,
                 down: float = 1.0, hold: float = 4.0, loss_p: float = 0.2,
                 zombie: float = SESSION_S + 4.0, lag_pause: float = LAG_MS / 1000 + 1.5,
                 isolate_hold: float = SESSION_S + 3.0, settle: float = 60.0,
                 topic: str = "jepsen", partitions: int = 3, record=None,
                 max_faults: int | None = None, warmup: float = 0.0):
        bad = set(kinds) - set(CLUSTER_FAULTS) - set(CONTROL_FAULTS)
        if bad:
            raise ValueError(f"unknown cluster fault kinds {sorted(bad)}")
        super().__init__(target, [], seed=seed, interval=interval, down=down, hold=hold,
                         loss_p=loss_p, record=record, max_faults=max_faults)
        self.kinds = list(kinds)
        self.zombie, self.lag_pause, self.isolate_hold = zombie, lag_pause, isolate_hold
        self.settle = settle
        self.topic, self.partitions = topic, partitions
        self.unsettled = 0          # faults after which the cluster was not whole within settle
        self.warmup = warmup        # seconds of workload before the first fault

    def _run(self):
        if self.warmup and not self._sleep(self.warmup):
            return
        super()._run()

    # -- aiming ----------------------------------------------------------------------------------
    def _leader(self) -> tuple[int, int]:
        """(partition, node index of its leader); waits a little for a partition with one."""
        deadline = time.monotonic() + 20
        while True:
            v = self.t.view(self.topic)
            led = sorted(p for p, pv in v.partitions.items() if pv.leader >= 0)
            if led:
                p = self.rng.choice(led)
                return p, self.t.node_index(v.partitions[p].leader)
            if time.monotonic() > deadline:
                return -1, self.rng.randrange(self.t.n)
            time.sleep(0.2)

    def _controller(self) -> int:
        c = self.t.view(self.topic).controller
        return self.t.node_index(c) if c >= 0 else self.rng.randrange(self.t.n)

    def _settle(self, rejoin: list[int], marks: list[int]):
        """Wait for the nodes in ``rejoin`` to register again, then for every partition to be
        led with a full ISR; a cluster that does not get there within ``settle`` is counted
        (``unsettled``) and the next fault comes anyway."""
        try:
            deadline = time.monotonic() + self.settle
            for i in rejoin:
                wait_until(lambda: self.t.joined_since(i, marks[i]),
                           max(1.0, deadline - time.monotonic()),
                           f"{self.t.node_name(i)} registered again")
            self.t.wait_healthy(self.topic, self.partitions,
                                max(1.0, deadline - time.monotonic()))
        except TimeoutError as exc:
            self.unsettled += 1
            self.t.faults.record("unsettled", "all", str(exc)[:300])

    def _failover(self, p: int, old_index: int, timeout: float) -> bool:
        """Wait (up to ``timeout``) for another broker to lead partition p; record it as a
        ``failover`` (the tests check that the leader faults did move leadership)."""
        old = old_index + 1
        deadline = time.monotonic() + timeout
        while True:
            pv = self.t.view(self.topic).partitions.get(p)
            if pv is not None and pv.leader not in (-1, old):
                self.t.faults.record("failover", f"{self.topic}-{p}",
                                     f"{old} -> {pv.leader} epoch {pv.epoch}")
                self.record("failover", self.t.node_name(pv.leader - 1),
                            f"{self.topic}-{p} from n{old}, epoch {pv.epoch}")
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def _isolate(self, i: int, kind: str, p: int = -1):
        t = self.t
        name = t.node_name(i)
        t.faults.record(kind, name)
        t.net.isolate(name)
        started = time.monotonic()
        if p >= 0:
            self._failover(p, i, self.isolate_hold + SESSION_S)
        time.sleep(max(0.0, self.isolate_hold - (time.monotonic() - started)))
        t.net.heal()
        t.faults.record("heal", "all")

    # -- faults ----------------------------------------------------------------------------------
    def apply(self, kind: str):
        t = self.t
        if kind in ("kill_leader", "pause_leader", "isolate_leader", "strand_leader"):
            p, i = self._leader()
            detail = f"leader of {self.topic}-{p}"
        elif kind == "isolate_controller":
            p = -1
            i, detail = self._controller(), "controller"
        elif kind == "pause_follower":
            p, leader = self._leader()
            i = self.rng.choice([j for j in range(t.n) if j != leader])
            detail = f"follower of {self.topic}-{p}"
        else:
            p, i, detail = -1, self.rng.randrange(t.n), ""
        node = t.nodes[i]
        marks = [t.log_mark(j) for j in range(t.n)]
        rejoin = [i] if kind in ("kill_leader", "pause_leader", "isolate", "isolate_leader",
                                 "isolate_controller", "strand_leader") else []
        self.record(kind, node.name, detail)
        if kind == "kill_leader":
            node.kill9()
            started = time.monotonic()
            if p >= 0:      # down until another replica leads (past the dead one's session)
                self._failover(p, i, SESSION_S * 2 + 10)
            time.sleep(max(0.0, self.down - (time.monotonic() - started)))
            node.restart()
            node.wait_ready()
        elif kind == "pause_leader":
            node.pause()
            started = time.monotonic()
            if p >= 0:      # the zombie wakes up only after someone else leads
                self._failover(p, i, self.zombie + SESSION_S)
            time.sleep(max(0.0, self.zombie - (time.monotonic() - started)))
            node.resume()
        elif kind == "pause_follower":
            node.pause()
            time.sleep(self.lag_pause)
            node.resume()
        elif kind == "isolate":
            self._isolate(i, "isolate")
        elif kind == "isolate_leader":
            self._isolate(i, "isolate_leader", p)
        elif kind == "isolate_controller":
            self._isolate(i, "isolate_controller")
        elif kind == "loss":
            t.faults.record("loss", "brokers", str(self.loss_p))
            for j in range(t.n):
                t.net.loss(t.node_name(j), self.loss_p)
            time.sleep(self.hold)
            t.net.heal()
            t.faults.record("heal", "all")
        elif kind == "delay":
            t.faults.record("delay", "proxies")
            t.delay(True)
            time.sleep(self.hold)
            t.delay(False)
            t.faults.record("undelay", "proxies")
        elif kind == "kill2":
            others = [j for j in range(t.n) if j != i]
            two = [i, self.rng.choice(others)]
            rejoin = two
            for j in two:
                t.nodes[j].kill9()
            time.sleep(self.down)
            for j in two:
                t.nodes[j].restart()
            for j in two:
                t.nodes[j].wait_ready()
        elif kind == "restart_all":
            rejoin = list(range(t.n))
            for n in t.nodes:
                n.kill9()
            time.sleep(self.down)
            for n in t.nodes:
                n.restart()
            for n in t.nodes:
                n.wait_ready()
        elif kind == "strand_leader":
            followers = [t.nodes[j] for j in range(t.n) if j != i]
            for f in followers:
                f.pause()
            time.sleep(self.lag_pause + 1.0)     # the ISR shrinks to the leader; acks=1 goes on
            node.kill9()
            for f in followers:
                f.resume()
            # The old leader stays down until another replica leads p (unclean: it lacks the
            # writes only the old leader acknowledged); back earlier, it would simply lead again.
            if p >= 0:
                self._failover(p, i, SESSION_S * 2 + 20)
            node.restart()
            node.wait_ready()
        self._settle(rejoin, marks)
