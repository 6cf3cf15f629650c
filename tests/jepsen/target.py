"""The system under test: N ``klog serve`` nodes, each in its own network namespace on a private
bridge (or all on loopback), a ``client`` namespace where the workload runs, and optionally a
delaying proxy per node between the clients and that node.

With a proxy, node i listens on its own address and advertises the proxy's address (in the
client namespace), so every client connection, including the ones metadata points to, passes
through the proxy. ``node_args(i)`` adds per-node arguments; the cluster (ZooKeeper, ``--node-id``,
``--zookeeper``, proxies between brokers) is cluster.py's ClusterTarget, built on this.

``close()`` (or leaving the ``with`` block) stops every process it started (servers, proxies,
the workload if still running), then deletes the namespaces; each data directory is kept for the
test to inspect (they live under the test's tmp dir).
"""
from __future__ import annotations

import os
import shutil
import socket
import sys

from .netns import Network, can_connect
from .procs import FaultLog, KlogServer, Proc, python_env, wait_until

PORT = 9092
PROXY_PORT = 19092


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Target:
    def __init__(self, workdir: str, nodes: int = 1, netns: bool = True,
                 proxy: dict | None = None, settings: dict | None = None,
                 node_args=None):
        self.workdir = workdir
        self.n = nodes
        self.use_netns = netns
        self.proxy_conf = proxy            # DelayProxy keyword arguments, or None
        # num.partitions = the workload's: a topic auto-created again after a wipe (positive
        # controls) has the partitions the clients expect.
        self.settings = {"group.initial.rebalance.delay.ms": 0, "num.partitions": 3,
                         **(settings or {})}
        self.node_args = node_args or (lambda i: [])
        self.faults = FaultLog()
        self.net: Network | None = None
        self.nodes: list[KlogServer] = []
        self.proxies: list[Proc] = []
        self._procs: list[Proc] = []

    # -- addresses -----------------------------------------------------------------------------
    def node_name(self, i: int) -> str:
        return f"n{i + 1}"

    def node_addr(self, i: int) -> tuple[str, int]:
        if self.use_netns:
            return self.net[self.node_name(i)].addr, PORT
        return "127.0.0.1", self._loopback_ports[i]

    def client_addr(self, i: int) -> tuple[str, int]:
        """Where clients reach node i: its proxy if any, else the node itself."""
        if self.proxy_conf is None:
            return self.node_addr(i)
        host = self.net["client"].addr if self.use_netns else "127.0.0.1"
        return host, (PROXY_PORT + i if self.use_netns else self._proxy_ports[i])

    @property
    def bootstrap(self) -> str:
        return ",".join("%s:%d" % self.client_addr(i) for i in range(self.n))

    def client_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.net["client"].netns] if self.use_netns else []

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> "Target":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, *exc):
        try:
            self.close()
        except Exception:
            if exc_type is None:        # never hide the test's own failure behind cleanup's
                raise

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        self._start_network()
        self._start_nodes()
        for i in range(self.n):
            if self.proxy_conf is not None:
                self._start_proxy(i)
        for node in self.nodes:
            node.wait_ready()

    def members(self) -> list[str]:
        return [self.node_name(i) for i in range(self.n)] + ["client"]

    def _start_network(self):
        if self.use_netns:
            self.net = Network(self.members())
            self.net.__enter__()
        else:
            self._loopback_ports = free_ports(self.n)
            self._proxy_ports = free_ports(self.n)

    def _start_nodes(self):
        for i in range(self.n):
            name = self.node_name(i)
            advertised = self.client_addr(i) if self.proxy_conf is not None else None
            node = KlogServer(name, os.path.join(self.workdir, f"{name}-data"),
                              self.node_addr(i), advertised, self.settings,
                              self.net[name].netns if self.use_netns else None, self.faults,
                              os.path.join(self.workdir, f"{name}.log"), self.node_args(i))
            self.nodes.append(node)
            node.start()

    def _start_proxy(self, i: int):
        listen = "%s:%d" % self.client_addr(i)
        target = "%s:%d" % self.node_addr(i)
        argv = [sys.executable, "-m", "jepsen.delayproxy", "--listen", listen,
                "--target", target]
        for k, v in self.proxy_conf.items():
            if isinstance(v, bool):          # a flag (--off)
                argv += [f"--{k}"] if v else []
            else:
                argv += [f"--{k}", str(v)]
        p = Proc(f"proxy{i + 1}", argv, self.faults, self.client_prefix(),
                 os.path.join(self.workdir, f"proxy{i + 1}.log"), python_env())
        p.start()
        self.proxies.append(p)
        host, port = self.client_addr(i)
        if self.use_netns:
            wait_until(lambda: can_connect(self.net["client"].netns, host, port), 30,
                       f"proxy {listen}")
        else:
            def up():
                try:
                    socket.create_connection((host, port), 1).close()
                    return True
                except OSError:
                    return False
            wait_until(up, 30, f"proxy {listen}")

    def client(self, name: str, argv: list[str], log: str) -> Proc:
        p = Proc(name, argv, self.faults, self.client_prefix(), log, python_env())
        self._procs.append(p)
        return p.start()

    def heal(self):
        """Undo every fault: network rules gone, paused nodes continued, dead nodes restarted,
        every node reachable."""
        if self.net is not None:
            self.net.heal()
        for node in self.nodes:
            if node.paused:
                node.resume()
            if not node.alive():
                node.restart()
        for node in self.nodes:
            node.wait_ready()

    def close(self):
        errors = []
        for p in self._procs + self.proxies + self.nodes + self._stopped_last():
            try:
                p.stop()
            except Exception as exc:        # keep going: the namespaces must go regardless
                errors.append(f"{p.name}: {exc}")
        if self.net is not None:
            try:
                self.net.close()
            except Exception as exc:
                errors.append(str(exc))
            self.net = None
        if errors:
            raise RuntimeError("cleanup: " + "; ".join(errors))

    def _stopped_last(self) -> list[Proc]:
        """Processes stopped after the nodes (a cluster's ZooKeeper)."""
        return []

    def wipe(self, i: int):
        """Delete node i's data directory (it must be down): a positive control's disaster."""
        node = self.nodes[i]
        assert not node.alive(), "wipe a running node"
        shutil.rmtree(node.data_dir, ignore_errors=True)
        self.faults.record("wipe", node.name)
