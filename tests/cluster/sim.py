"""A deterministic simulation of one replicated partition: three brokers running the real
``klog.cluster`` replica and election code over a fake clock, a fake network that delays, drops
and partitions messages, and a ZooKeeper model (linearizable compare-and-set, sessions that
expire). A schedule of steps drives it; a checker watches every step.

What is modelled, and how:
- Brokers crash as kill -9 does (the log survives, memory does not; the HW comes back from its
  checkpoint, written on every change here) and pause as SIGSTOP does (no steps, sessions lapse,
  messages to them wait).
- ZooKeeper never fails; a broker reaches it only over its link, so a cut link means no session
  heartbeats and no writes. Sessions expire ``session_ms`` after the last heartbeat; the broker
  re-registers when it is back, with nothing else reset (the zombie of KIP-320).
- The controller is the first registered broker; a new one gets a new controller epoch, and every
  write it makes is fenced by that epoch. LeaderAndIsr messages travel the network like fetches.
- Clients: a produce goes to any broker that believes it leads (stale metadata included), and its
  answer is lost if the client's link to that broker is cut when it is ready.

The checker (Jepsen's properties for a log, on one partition):
- committed prefix: an entry below any replica's high watermark is the same on every replica
  that has it and on every later leader (covers lost acknowledged writes and inconsistent offsets);
- every acknowledged write is on every later leader, at its offset; no offset acknowledged twice
  with different values;
- two replicas holding the same epoch at one offset hold identical prefixes up to it;
- high watermarks and leader epochs never decrease on a replica;
- after healing: one leader, every replica equal to it, every acknowledged write present.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from klog.cluster import election
from klog.cluster.replica import AppendResult, Replica, Role
from klog.cluster.state import LeaderAndIsr, NO_LEADER
from klog.protocol.errors import ErrorCode

from .memlog import MemoryLog

CLIENT = "client"
ZK = "zk"


@dataclass
class Message:
    src: object
    dst: object
    kind: str            # "fetch", "fetch_response", "leader_and_isr"
    body: tuple


@dataclass
class Node:
    id: int
    log: MemoryLog = field(default_factory=MemoryLog)
    replica: Optional[Replica] = None
    up: bool = True
    paused: bool = False
    durable_hw: int = 0
    last_heartbeat: int = 0
    broker_epoch: int = -1      # of its current ZooKeeper registration (KIP-380)
    max_epoch: int = -1
    max_hw: int = 0
    pending: list = field(default_factory=list)        # (AppendResult, value, acks)

    @property
    def active(self) -> bool:
        return self.up and not self.paused


class ZooKeeperModel:
    """The partition state znode, broker sessions and the controller election."""

    def __init__(self):
        self.state: Optional[LeaderAndIsr] = None
        self.controller: Optional[int] = None
        self.controller_epoch = 0
        self.sessions: dict[int, int] = {}     # broker -> broker epoch (registration zxid)
        self._zxid = 0

    def register(self, broker: int) -> int:
        self._zxid += 1
        self.sessions[broker] = self._zxid
        return self._zxid

    def compare_and_set(self, new: LeaderAndIsr, expected_version: int,
                        controller_epoch: Optional[int] = None) -> Optional[LeaderAndIsr]:
        if self.state.version != expected_version:
            return None
        if controller_epoch is not None and controller_epoch != self.controller_epoch:
            return None
        self.state = replace(new, version=expected_version + 1)
        return self.state


class Cluster:
    def __init__(self, brokers: int = 3, *, acks: int = -1, min_isr: int = 2,
                 unclean: bool = False, lag_ms: int = 100, session_ms: int = 300):
        self.assignment = tuple(range(1, brokers + 1))
        self.acks = acks
        self.min_isr = min_isr
        self.unclean = unclean
        self.lag_ms = lag_ms
        self.session_ms = session_ms
        self.now = 0
        self.zk = ZooKeeperModel()
        self.nodes = {b: Node(b) for b in self.assignment}
        self.cuts: set[frozenset] = set()
        self.inflight: list[Message] = []
        self.acked: dict[int, object] = {}       # offset -> value, acknowledged to a client
        self.committed: list[tuple[int, object]] = []   # the prefix below some replica's HW
        # What was acknowledged and committed when each leader epoch was decided: a leader must
        # hold that much. (A decision delivered late makes a zombie that can commit nothing.)
        self._known_at_decision: dict[int, tuple[dict, int]] = {0: ({}, 0)}
        self.violations: list[str] = []
        self.produced = 0
        self._controller_epoch_seen: dict[int, int] = {}   # controller node -> epoch it acts in
        self._controller_view: dict[int, int] = {}         # brokers and epochs it last saw
        for node in self.nodes.values():
            node.replica = self._new_replica(node)
            self._heartbeat(node)
        self.run_controller()
        self.deliver_all()

    # -- plumbing -------------------------------------------------------------------------------

    def _new_replica(self, node: Node) -> Replica:
        return Replica(node.id, node.log, high_watermark=node.durable_hw,
                       min_insync_replicas=self.min_isr, replica_lag_time_max_ms=self.lag_ms)

    def linked(self, a, b) -> bool:
        return frozenset((a, b)) not in self.cuts

    def _send(self, src, dst, kind, *body) -> None:
        self.inflight.append(Message(src, dst, kind, body))

    def violation(self, what: str) -> None:
        self.violations.append(f"t={self.now}: {what}")

    # -- ZooKeeper sessions and the controller ---------------------------------------------------

    def _heartbeat(self, node: Node) -> None:
        if node.active and self.linked(node.id, ZK):
            node.last_heartbeat = self.now
            if self.zk.sessions.get(node.id) != node.broker_epoch:
                # (Re-)registration after a restart or an expired session: a new broker epoch.
                node.broker_epoch = self.zk.register(node.id)

    def _expire_sessions(self) -> None:
        for node in self.nodes.values():
            if node.id in self.zk.sessions and self.now - node.last_heartbeat > self.session_ms:
                del self.zk.sessions[node.id]
        if self.zk.controller not in self.zk.sessions:
            self.zk.controller = None

    def run_controller(self) -> None:
        """One pass of the controller: elect one if needed, react to liveness, tell replicas."""
        zk = self.zk
        if zk.controller is None:
            if not zk.sessions:
                return
            zk.controller = min(zk.sessions)
            zk.controller_epoch += 1
            self._controller_view = {}
        cid = zk.controller
        node = self.nodes[cid]
        if not node.active or not self.linked(cid, ZK):
            return
        epoch = zk.controller_epoch
        live = set(zk.sessions)
        if zk.state is None:
            zk.state = election.initial_state(self.assignment, live, epoch)
            self._controller_view = dict(zk.sessions)
            self._tell_replicas(cid, zk.state)
            return
        # A broker that re-registered with a new epoch restarted: it failed, then started.
        bounced = {b for b, e in zk.sessions.items() if self._controller_view.get(b, e) != e}
        self._controller_view = dict(zk.sessions)
        changed = False
        for decide, alive in ((election.on_brokers_failed, live - bounced),
                              (election.on_broker_started, live)):
            new = decide(zk.state, self.assignment, alive, epoch, unclean=self.unclean)
            if new is not None and zk.compare_and_set(new, zk.state.version, epoch) is not None:
                self._known_at_decision[new.leader_epoch] = (dict(self.acked), len(self.committed))
                changed = True
        if changed or bounced or self._controller_epoch_seen.get(cid) != epoch:
            self._controller_epoch_seen[cid] = epoch
            self._tell_replicas(cid, zk.state)

    def resend(self) -> None:
        """The controller re-sends the current decision (Kafka's controller retries until acked)."""
        cid = self.zk.controller
        if cid is not None and self.nodes[cid].active and self.zk.state is not None:
            self._tell_replicas(cid, self.zk.state)

    def _tell_replicas(self, cid: int, state: LeaderAndIsr) -> None:
        # Addressed to the registration the controller has processed: a broker that restarted
        # since rejects it (STALE_BROKER_EPOCH, KIP-380) until the controller has handled the
        # bounce (as a failure, then a start) and written a newer decision.
        for b, broker_epoch in self._controller_view.items():
            self._send(cid, b, "leader_and_isr", state, broker_epoch)

    # -- brokers --------------------------------------------------------------------------------

    def produce(self, pick: int) -> None:
        leaders = [n for n in self.nodes.values()
                   if n.active and n.replica.role is Role.LEADER and self.linked(CLIENT, n.id)]
        if not leaders:
            return
        node = leaders[pick % len(leaders)]
        self.produced += 1
        value = f"v{self.produced}"
        res = node.replica.append([value], acks=self.acks)
        if res.error != ErrorCode.NONE:
            return
        if self.acks == -1:
            node.pending.append((res, value))
        else:
            self._acknowledge(res, value)

    def _acknowledge(self, res: AppendResult, value) -> None:
        prior = self.acked.get(res.first_offset)
        if prior is not None and prior != value:
            self.violation(f"offset {res.first_offset} acknowledged for {prior} and {value}")
        self.acked[res.first_offset] = value

    def _settle_acks(self) -> None:
        for node in self.nodes.values():
            if not node.active:
                continue
            waiting = []
            for res, value in node.pending:
                outcome = node.replica.acks_all_outcome(res)
                if outcome is None:
                    waiting.append((res, value))
                elif outcome == ErrorCode.NONE and self.linked(CLIENT, node.id):
                    self._acknowledge(res, value)
            node.pending = waiting

    def fetch(self, b: int) -> None:
        node = self.nodes[b]
        if not node.active:
            return
        req = node.replica.fetch_request()
        if req is not None:
            self._send(b, node.replica.leader_id, "fetch", req)

    def deliver(self, pick: int, *, drop: bool = False) -> None:
        """Deliver (or drop) one in-flight message; a message to a paused broker waits."""
        ready = [m for m in self.inflight
                 if not (isinstance(m.dst, int) and self.nodes[m.dst].paused)]
        if not ready:
            return
        msg = ready[pick % len(ready)]
        self.inflight.remove(msg)
        if msg.dst == ZK:
            # A leader's ISR write: compare-and-set against the version it read. Lost on the
            # way there or back, the leader hears nothing and retries after a later tick.
            if not drop and self.linked(msg.src, ZK):
                proposal = msg.body[0]
                written = self.zk.compare_and_set(proposal, proposal.version)
                current = self.zk.state
                if written is None and replace(current, version=proposal.version) == proposal:
                    written = current   # a retry of a write that landed (Kafka re-reads the znode)
                self._send(ZK, msg.src, "isr_written", proposal, written)
            return
        dst = self.nodes[msg.dst]
        if drop or not dst.up or not self.linked(msg.src, msg.dst):
            return
        if msg.kind == "isr_written":
            proposal, written = msg.body
            if dst.replica.pending_isr == proposal:
                dst.replica.isr_change_written(written)
        elif msg.kind == "leader_and_isr":
            state, broker_epoch = msg.body
            if broker_epoch == dst.broker_epoch:
                self._apply_decision(dst, state)
        elif msg.kind == "fetch":
            (req,) = msg.body
            resp = dst.replica.handle_fetch(req, self.now)
            self._send(dst.id, msg.src, "fetch_response", req, resp)
        elif msg.kind == "fetch_response":
            req, resp = msg.body
            dst.replica.handle_fetch_response(req, resp)

    def deliver_all(self, limit: int = 1000) -> None:
        for _ in range(limit):
            if not self.inflight:
                return
            before = len(self.inflight)
            self.deliver(0)
            if len(self.inflight) >= before and all(
                    isinstance(m.dst, int) and self.nodes[m.dst].paused for m in self.inflight):
                return

    def _apply_decision(self, node: Node, state: LeaderAndIsr) -> None:
        was = (node.replica.role, node.replica.leader_epoch)
        node.replica.apply(state, self.assignment, self.now)
        now = (node.replica.role, node.replica.leader_epoch)
        if now != was and now[0] is Role.LEADER:
            self._check_new_leader(node)

    def tick(self, ms: int) -> None:
        """Time passes: heartbeats, session expiry, leaders' ISR changes written to ZooKeeper."""
        self.now += ms
        for node in self.nodes.values():
            self._heartbeat(node)
        self._expire_sessions()
        for node in self.nodes.values():
            if not node.active:
                continue
            proposal = node.replica.isr_change(self.now) or node.replica.pending_isr
            writing = any(m.kind in ("isr_write", "isr_written") and node.id in (m.src, m.dst)
                          for m in self.inflight)
            if proposal is not None and not writing:
                self._send(node.id, ZK, "isr_write", proposal)   # new, or a retry of a lost one

    def crash(self, b: int) -> None:
        node = self.nodes[b]
        if not node.up:
            return
        node.up = False
        node.durable_hw = node.replica.high_watermark
        node.pending.clear()          # outcome unknown to the clients
        node.replica = None

    def restart(self, b: int) -> None:
        node = self.nodes[b]
        if node.up:
            return
        node.up, node.paused = True, False
        node.broker_epoch = -1          # a new process: no registration until it reaches ZooKeeper
        node.replica = self._new_replica(node)
        self._heartbeat(node)

    def pause(self, b: int) -> None:
        self.nodes[b].paused = self.nodes[b].up

    def resume(self, b: int) -> None:
        self.nodes[b].paused = False

    def cut(self, a, b) -> None:
        if a != b:
            self.cuts.add(frozenset((a, b)))

    def isolate(self, b: int) -> None:
        for other in (*self.assignment, ZK, CLIENT):
            self.cut(b, other)

    def heal(self) -> None:
        self.cuts.clear()

    # -- the checker ------------------------------------------------------------------------------

    def _check_new_leader(self, node: Node) -> None:
        entries = node.log.entries
        acked, committed = self._known_at_decision[node.replica.leader_epoch]
        for offset, value in acked.items():
            if offset >= len(entries) or entries[offset][1] != value:
                self.violation(f"broker {node.id} leads epoch {node.replica.leader_epoch} "
                               f"without acknowledged {value} at offset {offset}")
        for offset, entry in enumerate(self.committed[:committed]):
            if offset >= len(entries) or entries[offset] != entry:
                self.violation(f"broker {node.id} leads without committed {entry} at {offset}")
                break

    def check(self) -> None:
        """The per-step invariants."""
        self._settle_acks()
        for node in self.nodes.values():
            r = node.replica
            if r is None:
                continue
            if r.state is not None and r.leader_epoch < node.max_epoch:
                self.violation(f"broker {node.id} leader epoch {node.max_epoch} -> {r.leader_epoch}")
            if r.high_watermark < node.max_hw:
                self.violation(f"broker {node.id} HW {node.max_hw} -> {r.high_watermark}")
            node.max_epoch = max(node.max_epoch, r.leader_epoch)
            node.max_hw = max(node.max_hw, r.high_watermark)
            entries = node.log.entries
            for offset in range(r.high_watermark):
                if offset < len(self.committed):
                    if entries[offset] != self.committed[offset]:
                        self.violation(f"broker {node.id} offset {offset} is {entries[offset]}, "
                                       f"committed was {self.committed[offset]}")
                        break
                else:
                    self.committed.append(entries[offset])
        logs = [n.log.entries for n in self.nodes.values()]
        for i in range(len(logs)):
            for j in range(i + 1, len(logs)):
                self._check_matching(logs[i], logs[j])

    def _check_matching(self, a, b) -> None:
        for offset in range(min(len(a), len(b)) - 1, -1, -1):
            if a[offset][0] == b[offset][0]:
                if a[:offset + 1] != b[:offset + 1]:
                    self.violation(f"same epoch {a[offset][0]} at offset {offset}, "
                                   "different prefixes")
                return

    def settle(self, rounds: int = 200) -> bool:
        """Heal everything and run until the replicas agree; then the final checks."""
        self.heal()
        for b in self.assignment:
            self.resume(b)
            self.restart(b)
        for _ in range(rounds):
            self.tick(self.lag_ms // 4)
            self.run_controller()
            self.resend()
            for b in self.assignment:
                self.fetch(b)
            self.deliver_all()
            self.check()
            if self._converged():
                break
        else:
            self.violation(f"no convergence after healing: {self.describe()}")
            return False
        leader = self.nodes[self.zk.state.leader].log.entries
        for offset, value in self.acked.items():
            if offset >= len(leader) or leader[offset][1] != value:
                self.violation(f"acknowledged {value} at offset {offset} lost")
        return not self.violations

    def _converged(self) -> bool:
        state = self.zk.state
        if state is None or state.leader == NO_LEADER:
            return False
        leader = self.nodes[state.leader].replica
        if leader.role is not Role.LEADER or leader.leader_epoch != state.leader_epoch:
            return False
        end = leader.log.log_end_offset
        return (set(state.isr) == set(self.assignment) and leader.high_watermark == end
                and all(n.log.entries == leader.log.entries and n.replica.high_watermark == end
                        for n in self.nodes.values()))

    def describe(self) -> str:
        parts = [f"zk={self.zk.state}"]
        for n in self.nodes.values():
            r = n.replica
            role = f"{r.role.value} e{r.leader_epoch} hw={r.high_watermark}" if r else "down"
            parts.append(f"b{n.id}: {role} leo={n.log.log_end_offset} epochs={n.log.epochs}"
                         f"{' paused' if n.paused else ''}")
        return "; ".join(parts)

    # -- schedules --------------------------------------------------------------------------------

    STEPS = ("produce",) * 4 + ("fetch",) * 4 + ("deliver",) * 6 + ("round",) * 2 + \
        ("tick",) * 3 + ("controller",) * 2 + ("resend", "drop", "crash", "restart", "pause",
                                                "resume", "cut", "heal", "isolate")

    def step(self, kind: int, arg: int) -> None:
        name = self.STEPS[kind % len(self.STEPS)]
        broker = self.assignment[arg % len(self.assignment)]
        if name == "produce":
            self.produce(arg)
        elif name == "fetch":
            self.fetch(broker)
        elif name == "deliver":
            self.deliver(arg)
        elif name == "round":
            for b in self.assignment:
                self.fetch(b)
            self.deliver_all()
        elif name == "drop":
            self.deliver(arg, drop=True)
        elif name == "tick":
            self.tick(arg % (2 * self.lag_ms))
        elif name == "controller":
            self.run_controller()
        elif name == "resend":
            self.resend()
        elif name == "crash":
            self.crash(broker)
        elif name == "restart":
            self.restart(broker)
        elif name == "pause":
            self.pause(broker)
        elif name == "resume":
            self.resume(broker)
        elif name == "cut":
            ends = (*self.assignment, ZK, CLIENT)
            self.cut(broker, ends[(arg // 7) % len(ends)])
        elif name == "heal":
            self.heal()
        elif name == "isolate":
            self.isolate(broker)
        self.check()

    def run(self, schedule) -> bool:
        for kind, arg in schedule:
            self.step(kind, arg)
        return self.settle()
