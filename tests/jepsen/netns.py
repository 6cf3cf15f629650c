"""Network namespaces on a private bridge, and the network faults a test injects between them.

``Network(["n1", "n2", "client"])`` creates, for a run id R:
  - a hub namespace ``kj-R-hub`` holding a bridge ``br0`` (nothing is created in the caller's own
    namespace: no interface, no address, no route, no iptables rule);
  - per member M a namespace ``kj-R-M`` with loopback up and a veth whose peer is a port of the
    bridge, addressed 10.X.Y.(i+2)/24 in a /24 chosen per run.
Faults are iptables rules in the members' namespaces (their own netfilter tables), so they vanish
with the namespaces: ``isolate``, ``partition``, ``loss`` and ``heal``. Cleanup (on ``close`` /
leaving the ``with`` block, whatever happened) deletes every namespace, which deletes the veths,
the bridge and the rules; it is checked and any leftover is an error naming it.

Processes run inside a member with ``ip netns exec`` (it execs, so the Popen pid is the process
itself and signals reach it directly). The test process reaches a member's addresses from a
short-lived thread that has entered the member's namespace (``setns``), see ``connect``.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import random
import socket
import subprocess
import threading
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """An ip/iptables command failed; the message names the command and its stderr."""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


@dataclass(frozen=True)
class Member:
    name: str      # as given by the test
    netns: str     # the namespace's name
    addr: str      # its address on the bridge

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]


def in_netns(netns: str, fn, *args, timeout: float = 30.0):
    """Run ``fn(*args)`` in a fresh thread that joined ``netns``; sockets it creates belong to
    that namespace and keep working after the thread ends. Returns fn's result or raises."""
    box: dict = {}

    def body():
        try:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({netns}): {os.strerror(e)}")
            finally:
                os.close(fd)
            box["result"] = fn(*args)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=body, name=f"netns-{netns}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"in_netns({netns}) did not finish within {timeout}s")
    if "error" in box:
        raise box["error"]
    return box["result"]


def connect(netns: str, host: str, port: int, timeout: float = 2.0) -> socket.socket:
    """A TCP connection to host:port made from inside ``netns``."""
    return in_netns(netns, socket.create_connection, (host, port), timeout,
                    timeout=timeout + 5)


def can_connect(netns: str, host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        connect(netns, host, port, timeout).close()
        return True
    except OSError:
        return False


def namespaces() -> set[str]:
    out = sh("ip", "netns", "list").stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


class Network:
    """See the module docstring. Use as a context manager."""

    PREFIX = "kj-"

    def __init__(self, names: list[str]):
        if len(set(names)) != len(names) or not names or len(names) > 200:
            raise ValueError(f"member names must be 1..200 distinct names, got {names!r}")
        self.run = f"{os.getpid() % 100000}{random.randrange(100):02d}"
        self.hub = f"{self.PREFIX}{self.run}-hub"
        # A /24 per run inside 10.0.0.0/8 so that concurrent runs never share a subnet.
        r = random.Random()
        self.subnet = f"10.{r.randrange(64, 250)}.{r.randrange(1, 250)}"
        self.members = {n: Member(n, f"{self.PREFIX}{self.run}-{n}", f"{self.subnet}.{i + 2}")
                        for i, n in enumerate(names)}
        self._created: list[str] = []

    def __getitem__(self, name: str) -> Member:
        return self.members[name]

    def __enter__(self) -> "Network":
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _add_ns(self, name: str):
        sh("ip", "netns", "add", name)
        self._created.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _create(self):
        self._add_ns(self.hub)
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i, m in enumerate(self.members.values()):
            self._add_ns(m.netns)
            # Both ends are created inside namespaces: the caller's namespace never holds them.
            sh("ip", "-n", m.netns, "link", "add", "eth0", "type", "veth",
               "peer", "name", f"p{i}", "netns", self.hub)
            sh("ip", "-n", self.hub, "link", "set", f"p{i}", "master", "br0")
            sh("ip", "-n", self.hub, "link", "set", f"p{i}", "up")
            sh("ip", "-n", m.netns, "addr", "add", f"{m.addr}/24", "dev", "eth0")
            sh("ip", "-n", m.netns, "link", "set", "eth0", "up")

    def close(self):
        """Delete every namespace this network created (veths, bridge and rules go with them).
        Raises NetnsError naming anything that survived."""
        errors = []
        for name in reversed(self._created):
            r = sh("ip", "netns", "delete", name, check=False)
            if r.returncode != 0 and name in namespaces():
                errors.append(f"{name}: {r.stderr.strip()}")
        self._created.clear()
        left = {n for n in namespaces() if n.startswith(f"{self.PREFIX}{self.run}-")}
        if errors or left:
            raise NetnsError(f"cleanup left namespaces {sorted(left)}: {errors}")

    # -- faults --------------------------------------------------------------------------------
    def iptables(self, name: str, *rule: str):
        sh(*self.members[name].exec_argv(["iptables", "-w", *rule]))

    def rules(self, name: str) -> list[str]:
        out = sh(*self.members[name].exec_argv(["iptables", "-w", "-S"])).stdout
        return [line for line in out.splitlines() if line.startswith("-A ")]

    def isolate(self, name: str):
        """Drop everything into and out of ``name`` on the bridge (loopback keeps working)."""
        self.iptables(name, "-A", "INPUT", "-i", "eth0", "-j", "DROP")
        self.iptables(name, "-A", "OUTPUT", "-o", "eth0", "-j", "DROP")

    def partition(self, *groups: list[str]):
        """Members in different groups cannot talk; members not named keep talking to all."""
        for gi, group in enumerate(groups):
            for name in group:
                for gj, other in enumerate(groups):
                    if gi == gj:
                        continue
                    for peer in other:
                        addr = self.members[peer].addr
                        self.iptables(name, "-A", "INPUT", "-s", addr, "-j", "DROP")
                        self.iptables(name, "-A", "OUTPUT", "-d", addr, "-j", "DROP")

    def loss(self, name: str, probability: float):
        """Drop each packet into and out of ``name`` with ``probability``."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"loss probability must be in [0, 1], got {probability}")
        p = f"{probability:.4f}"
        for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
            self.iptables(name, "-A", chain, flag, "eth0", "-m", "statistic", "--mode", "random",
                          "--probability", p, "-j", "DROP")

    def heal(self, *names: str):
        """Remove every fault rule (of ``names``, default all members)."""
        for name in names or self.members:
            self.iptables(name, "-F", "INPUT")
            self.iptables(name, "-F", "OUTPUT")

    def popen(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.members[name].exec_argv(argv), **kw)


@contextlib.contextmanager
def network(names: list[str]):
    with Network(names) as net:
        yield net
