"""The delaying TCP proxy on loopback: bytes pass intact both ways, each direction is delayed by
the configured amount, drop cuts the connection, and stop() closes everything."""
import socket
import threading
import time

import pytest

from .delayproxy import DelayProxy


@pytest.fixture
def echo():
    """A loopback echo server (one thread per connection)."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()
    stop.set()
    t.join()
    srv.close()


def roundtrip(addr, payload: bytes) -> tuple[bytes, float]:
    with socket.create_connection(addr, timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got, time.monotonic() - t0


def test_passes_bytes_intact_and_delays_each_direction(echo):
    payload = bytes(range(256)) * 2000          # 512 KB: many chunks
    with DelayProxy(("127.0.0.1", 0), echo, delay=0.0) as fast:
        got, base = roundtrip(fast.address, b"x")
        got, _ = roundtrip(fast.address, payload)
        assert got == payload
    with DelayProxy(("127.0.0.1", 0), echo, delay=0.25) as slow:
        got, rtt = roundtrip(slow.address, b"ping")
        assert got == b"ping"
        assert rtt >= 0.5                          # 0.25 s up + 0.25 s down
        got, _ = roundtrip(slow.address, payload)
        assert got == payload
        assert slow.stats.connections == 2 and slow.stats.dropped == 0
    with DelayProxy(("127.0.0.1", 0), echo, delay=0.3, direction="down") as down:
        got, rtt = roundtrip(down.address, b"ping")
        assert got == b"ping" and 0.3 <= rtt


def test_delay_is_latency_not_per_chunk_serialisation(echo):
    # 20 pipelined small writes through a 0.2 s proxy arrive after ~0.4 s, not 20 x 0.4 s.
    with DelayProxy(("127.0.0.1", 0), echo, delay=0.2) as p:
        with socket.create_connection(p.address, timeout=10) as s:
            t0 = time.monotonic()
            for i in range(20):
                s.sendall(b"%02d" % i)
                time.sleep(0.005)
            got = b""
            while len(got) < 40:
                got += s.recv(100)
            elapsed = time.monotonic() - t0
    assert got == b"".join(b"%02d" % i for i in range(20))
    assert 0.4 <= elapsed < 3.0


def test_drop_cuts_the_connection(echo):
    with DelayProxy(("127.0.0.1", 0), echo, drop=1.0, direction="down") as p:
        with socket.create_connection(p.address, timeout=10) as s:
            s.sendall(b"hello")
            assert s.recv(100) == b""               # the answer never comes: closed instead
        assert p.stats.dropped == 1


def test_unreachable_target_closes_client_and_stop_closes_all(echo):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    with DelayProxy(("127.0.0.1", 0), ("127.0.0.1", port)) as p:
        with socket.create_connection(p.address, timeout=10) as s:
            assert s.recv(10) == b""
        assert p.stats.failed_connects == 1
    p = DelayProxy(("127.0.0.1", 0), echo, delay=0.1).start()
    s = socket.create_connection(p.address, timeout=10)
    s.sendall(b"a")
    p.stop()
    s.settimeout(5)
    data = b""
    try:
        while True:
            chunk = s.recv(10)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    s.close()
    with pytest.raises(OSError):
        socket.create_connection(p.address, timeout=2).close()


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="direction"):
        DelayProxy(("127.0.0.1", 0), ("127.0.0.1", 1), direction="sideways")
    with pytest.raises(ValueError, match="drop"):
        DelayProxy(("127.0.0.1", 0), ("127.0.0.1", 1), drop=2)


def test_active_switches_the_delay_on_and_off_on_a_live_connection(echo):
    """The cluster nemesis's delay fault: one proxy, one connection, delay off / on / off."""
    with DelayProxy(("127.0.0.1", 0), echo, delay=0.3) as p:
        p.active = False
        with socket.create_connection(p.address, timeout=10) as s:
            def rtt():
                t0 = time.monotonic()
                s.sendall(b"ping")
                assert s.recv(16) == b"ping"
                return time.monotonic() - t0
            assert rtt() < 0.3
            p.active = True
            assert rtt() >= 0.6
            p.active = False
            assert rtt() < 0.3
