"""Network namespaces on a private bridge: members reach each other, isolate / partition / loss
cut exactly what they name, heal restores it, and cleanup leaves nothing behind, also when the
test body fails."""
import socket
import subprocess

import pytest

from .netns import Network, NetnsError, can_connect, in_netns, namespaces

pytestmark = pytest.mark.needs_root


def listener(net, name):
    """A TCP listener inside member ``name`` (made from a thread in its namespace)."""
    m = net[name]
    s = in_netns(m.netns, socket.create_server, (m.addr, 0))
    s.listen(64)
    return s, s.getsockname()[1]


def reach(net, src, dst, port):
    return can_connect(net[src].netns, net[dst].addr, port, timeout=0.5)


def leftovers(net):
    mine = {n for n in namespaces() if n.startswith(f"{Network.PREFIX}{net.run}-")}
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return mine, [line for line in links.splitlines() if f"{Network.PREFIX}{net.run}" in line]


def test_members_reach_each_other_and_faults_cut_what_they_name():
    with Network(["a", "b", "c"]) as net:
        assert len({m.addr for m in net.members.values()}) == 3
        servers = {n: listener(net, n) for n in "abc"}
        port = {n: servers[n][1] for n in "abc"}
        for src in "abc":
            for dst in "abc":
                assert reach(net, src, dst, port[dst]), (src, dst)
        # the caller's namespace has no route to the private subnet
        assert not can_connect_here(net["a"].addr, port["a"])

        net.isolate("a")
        assert not reach(net, "b", "a", port["a"]) and not reach(net, "a", "b", port["b"])
        assert reach(net, "b", "c", port["c"])
        assert reach(net, "a", "a", port["a"])          # its own address, over loopback
        net.heal()
        assert net.rules("a") == [] and reach(net, "b", "a", port["a"])

        net.partition(["a"], ["b", "c"])
        assert not reach(net, "a", "b", port["b"]) and not reach(net, "c", "a", port["a"])
        assert reach(net, "b", "c", port["c"])
        net.heal()
        assert reach(net, "a", "b", port["b"])

        net.loss("b", 1.0)                               # every packet: deterministic
        assert any("statistic" in r and "random" in r for r in net.rules("b"))
        assert not reach(net, "a", "b", port["b"]) and reach(net, "a", "c", port["c"])
        net.heal("b")
        net.loss("b", 0.2)
        assert sum(reach(net, "a", "b", port["b"]) for _ in range(5)) >= 1   # SYN retries
        net.heal()
        for s, _ in servers.values():
            s.close()
    mine, links = leftovers(net)
    assert not mine and not links


def can_connect_here(host, port):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_cleanup_happens_when_the_body_fails():
    with pytest.raises(ZeroDivisionError):
        with Network(["x", "y"]) as net:
            net.isolate("x")
            p = net.popen("x", ["sleep", "30"])
            try:
                1 / 0
            finally:
                p.kill()
                p.wait()
    mine, links = leftovers(net)
    assert not mine and not links


def test_bad_names_and_failed_commands_are_named():
    with pytest.raises(ValueError, match="distinct"):
        Network(["a", "a"])
    with Network(["a"]) as net:
        with pytest.raises(NetnsError, match="iptables"):
            net.iptables("a", "-A", "NOPE")
        with pytest.raises(ValueError, match="probability"):
            net.loss("a", 1.5)
