"""The system under test as a cluster: ZooKeeper and N ``klog serve --node-id --zookeeper``
brokers, each in its own network namespace on the harness's bridge, a ``client`` namespace for
the workload, and one delaying proxy per broker (in the client namespace) that every connection
to that broker passes through: the broker advertises its proxy's address, so clients AND the
other brokers' follower fetches go through it. The proxies start inactive; the ``delay`` fault
switches them on (SIGUSR1) and off (SIGUSR2).

Network faults are iptables rules in the broker namespaces (netns.py): isolating a broker cuts it
from ZooKeeper, from its peers and from the clients at once.

Who leads and who controls is asked at fault time (``view``): Metadata from every reachable
broker, the entry with the highest leader epoch per partition winning (a zombie answers with
its stale epoch), the controller named by most brokers.

C10 (``check_replicas``): once every partition has its full ISR again, each replica's batches
below the high watermark (ListOffsets latest, as the final read saw it) are compared byte for
byte across the data directories (replicas.py).
"""
from __future__ import annotations

import os
import signal
import socket
from collections import Counter
from dataclasses import dataclass, field

from klog.protocol.frames import decode_response, encode_request
from klog.protocol.messages import ApiKey

from . import replicas
from .netns import connect
from .procs import Proc, wait_until
from .target import Target

ZK_PORT = 2181
ZK_JAR = "/usr/share/java/zookeeper.jar"
ZK_CONF_DIR = "/etc/zookeeper/conf"

# Test-sized timings. The ZooKeeper session of a broker is 6 s (ClusterNode's default).
SESSION_S = 6.0
LAG_MS = 3000


def call(sock: socket.socket, api_key: int, version: int, body: dict) -> dict:
    sock.sendall(encode_request(api_key, version, 1, "jepsen", body).getvalue())
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return decode_response(api_key, version, memoryview(buf[4:]))[1]


@dataclass
class PartitionView:
    leader: int          # node id, -1 none
    epoch: int
    replicas: list[int]
    isr: list[int]


@dataclass
class ClusterView:
    controller: int = -1
    brokers: list[int] = field(default_factory=list)
    partitions: dict[int, PartitionView] = field(default_factory=dict)
    answered: list[int] = field(default_factory=list)   # node ids that answered

    def healthy(self, n_partitions: int, rf: int) -> bool:
        return (len(self.partitions) == n_partitions and all(
            p.leader >= 0 and len(p.isr) == rf for p in self.partitions.values()))


class ClusterTarget(Target):
    """Target(nodes=3) in cluster mode; see the module docstring. Node i has id i + 1."""

    def __init__(self, workdir: str, nodes: int = 3, settings: dict | None = None,
                 delay: float = 0.05, jitter: float = 0.05):
        base = {"min.insync.replicas": 2, "unclean.leader.election.enable": "false",
                "replica.lag.time.max.ms": LAG_MS}
        super().__init__(workdir, nodes=nodes, netns=True,
                         proxy={"delay": delay, "jitter": jitter, "off": True},
                         settings={**base, **(settings or {})},
                         node_args=self._node_args)
        self.zk: Proc | None = None
        self.chroot = "/jepsen"

    def _node_args(self, i: int) -> list[str]:
        return ["--node-id", str(i + 1), "--zookeeper",
                f"{self.net['zk'].addr}:{ZK_PORT}{self.chroot}"]

    def node_index(self, node_id: int) -> int:
        return node_id - 1

    # -- lifecycle -----------------------------------------------------------------------------
    def members(self) -> list[str]:
        return [self.node_name(i) for i in range(self.n)] + ["client", "zk"]

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        self._start_network()
        self._start_zookeeper()
        self._start_nodes()
        for i in range(self.n):
            self._start_proxy(i)
        for node in self.nodes:
            node.wait_ready()

    def _start_zookeeper(self):
        if not os.path.exists(ZK_JAR):
            raise RuntimeError(f"ZooKeeper is not installed ({ZK_JAR}): apt-get install zookeeper")
        zdir = os.path.join(self.workdir, "zookeeper")
        os.makedirs(zdir, exist_ok=True)
        argv = ["java", "-Xmx256m", "-Dzookeeper.admin.enableServer=false",
                "-cp", f"{ZK_CONF_DIR}:{ZK_JAR}", "org.apache.zookeeper.server.ZooKeeperServerMain",
                str(ZK_PORT), os.path.join(zdir, "data")]
        self.zk = Proc("zookeeper", argv, self.faults, self.net["zk"].exec_argv([]),
                       os.path.join(zdir, "zookeeper.log"))
        self.zk.start()

        def answers():
            if not self.zk.alive():
                raise RuntimeError(f"ZooKeeper exited: {self.zk.output()[-2000:]}")
            try:
                s = connect(self.net["client"].netns, self.net["zk"].addr, ZK_PORT, 1.0)
            except OSError:
                return False
            with s:
                s.sendall(b"srvr")
                try:
                    return b"Zookeeper version" in s.recv(4096)
                except OSError:
                    return False
        wait_until(answers, 60, "ZooKeeper answering", 0.2)

    def close(self):
        # SIGKILL first: a SIGTERM'd broker's controlled shutdown waits for leadership to move,
        # one broker after the other; nothing is checked after close (the data stays).
        for node in self.nodes:
            if node.alive():
                node.popen.kill()
                node.popen.wait(30)
        super().close()

    def _stopped_last(self) -> list[Proc]:
        return [self.zk] if self.zk is not None else []

    # -- what the cluster says -----------------------------------------------------------------
    def ask(self, i: int, api_key: int, version: int, body: dict, timeout: float = 2.0) -> dict:
        """One raw request to node i's own address, from the client namespace."""
        host, port = self.node_addr(i)
        s = connect(self.net["client"].netns, host, port, timeout)
        with s:
            s.settimeout(timeout)
            return call(s, api_key, version, body)

    def view(self, topic: str) -> ClusterView:
        """Who leads each partition of ``topic`` and who controls, by the live brokers."""
        v = ClusterView()
        controllers: Counter = Counter()
        brokers: set[int] = set()
        for i, node in enumerate(self.nodes):
            if not node.alive() or node.paused:
                continue
            try:
                md = self.ask(i, ApiKey.METADATA, 9, {
                    "topics": [{"name": topic}], "allow_auto_topic_creation": False,
                    "include_cluster_authorized_operations": False,
                    "include_topic_authorized_operations": False})
            except (OSError, ValueError, TimeoutError, ConnectionError):
                continue
            v.answered.append(i + 1)
            if md["controller_id"] >= 0:
                controllers[md["controller_id"]] += 1
            brokers |= {b["node_id"] for b in md["brokers"]}
            for t in md["topics"]:
                if t["error_code"]:
                    continue
                for p in t["partitions"]:
                    pv = PartitionView(p["leader_id"], p["leader_epoch"], list(p["replica_nodes"]),
                                       list(p["isr_nodes"]))
                    old = v.partitions.get(p["partition_index"])
                    if old is None or pv.epoch > old.epoch:
                        v.partitions[p["partition_index"]] = pv
        v.controller = controllers.most_common(1)[0][0] if controllers else -1
        v.brokers = sorted(brokers)
        return v

    def wait_healthy(self, topic: str, partitions: int, timeout: float = 90.0) -> ClusterView:
        """Every partition led and its ISR full, per every live broker's answer."""
        box = {}

        def ok():
            box["v"] = self.view(topic)
            return box["v"].healthy(partitions, self.n) and len(box["v"].answered) == self.n
        wait_until(ok, timeout, f"{topic}: every partition led with a full ISR "
                                f"(last view: {box.get('v')})", 0.5)
        return box["v"]

    # -- a broker's (re)registration, from its log ----------------------------------------------
    # While the ZooKeeper session of a killed (or paused, or cut off) broker lingers, the cluster
    # state still names it: health is only worth asking once it registered again.
    JOINED = ("joined cluster", "registered again")

    def log_mark(self, i: int) -> int:
        try:
            return os.path.getsize(self.nodes[i].log_path)
        except OSError:
            return 0

    def joined_since(self, i: int, mark: int) -> bool:
        with open(self.nodes[i].log_path, "rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        return any(j in text for j in self.JOINED)

    # -- faults the proxies carry --------------------------------------------------------------
    def delay(self, on: bool):
        for p in self.proxies:
            if p.alive():
                p.popen.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def heal(self):
        self.delay(False)
        if self.zk is not None and not self.zk.alive():
            raise RuntimeError(f"ZooKeeper died: {self.zk.output()[-2000:]}")
        super().heal()

    # -- C10 -----------------------------------------------------------------------------------
    def check_replicas(self, topic: str, ends: dict[int, int]) -> dict:
        """{partition: ReplicaReport} comparing the N data directories below each end offset."""
        dirs = [n.data_dir for n in self.nodes]
        return {p: replicas.compare(dirs, f"{topic}-{p}", hw) for p, hw in sorted(ends.items())}

