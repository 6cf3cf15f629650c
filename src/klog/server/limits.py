"""Connection and memory limits of ``klog serve``, under Kafka's broker setting names.

- ``max.connections`` / ``max.connections.per.ip`` (+ ``max.connections.per.ip.overrides``):
  ``ConnectionLimits`` admits or refuses a new connection. A refused one is closed right after
  accept. (Kafka closes on a per-IP violation too, but for the overall cap it stops accepting
  until a connection closes; asyncio has no public way to pause accepting, and a closed
  connection tells a client to retry rather than leaving it hanging in the backlog.)
- ``queued.max.request.bytes``: ``RequestMemoryPool`` bounds the bytes of requests being
  received over all connections, as Kafka's MemoryPool: before reading the rest of a frame a
  connection reserves its declared size; when the pool is full it stops reading that socket
  (TCP backpressure) until memory is released by a handled request or a closed connection.
- ``TlsProbeLog``: says, rate-limited per peer, that a client tried TLS on the plaintext port.

Concurrency: all of these live on the server's event loop; no locks.
"""
import asyncio
import collections
import ipaddress
import logging
import time

from klog.errors import ConfigError

log = logging.getLogger("klog.server")

TLS_LOG_INTERVAL_S = 60.0       # one "TLS on a plaintext listener" line per peer per minute
_TLS_PEERS_REMEMBERED = 1024


def parse_overrides(text, key="max.connections.per.ip.overrides"):
    """'IP:COUNT,IP:COUNT' -> {normalised IP: count}. ConfigError naming the bad entry."""
    out = {}
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        host, sep, count = entry.rpartition(":")
        try:
            if not sep or not count.strip().isdigit():
                raise ValueError
            ip = str(ipaddress.ip_address(host.strip().strip("[]")))
        except ValueError:
            raise ConfigError(f"{key}: expected 'IP:COUNT' entries separated by commas, "
                              f"got {entry!r}") from None
        out[ip] = int(count)
    return out


def _ip_of(peer):
    if isinstance(peer, tuple) and peer:
        try:
            return str(ipaddress.ip_address(peer[0]))
        except ValueError:
            return str(peer[0])
    return str(peer)


class ConnectionLimits:
    """Counts open connections, overall and per IP. ``admit(peer)`` -> None (admitted, call
    ``release(peer)`` when it closes) or the reason it is refused."""

    def __init__(self, max_connections, max_per_ip, overrides=None):
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.overrides = dict(overrides or {})
        self.total = 0
        self.per_ip = collections.Counter()

    @classmethod
    def from_config(cls, config):
        return cls(config["max.connections"], config["max.connections.per.ip"],
                   parse_overrides(config["max.connections.per.ip.overrides"]))

    def admit(self, peer):
        ip = _ip_of(peer)
        if self.total >= self.max_connections:
            return f"max.connections={self.max_connections} reached"
        cap = self.overrides.get(ip, self.max_per_ip)
        if self.per_ip[ip] >= cap:
            return f"max.connections.per.ip={cap} reached for {ip}"
        self.total += 1
        self.per_ip[ip] += 1
        return None

    def release(self, peer):
        ip = _ip_of(peer)
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]


class RequestMemoryPool:
    """Bytes reserved for requests being received (``queued.max.request.bytes``; < 0: no cap).

    A reservation is granted when it fits, or when nothing at all is reserved (so one frame
    larger than the cap still gets through, alone). Otherwise ``reserve`` waits; ``release``
    grants waiters in arrival order as they fit. So the bytes held stay below
    max(capacity, largest frame)."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.reserved = 0
        self._waiters = collections.deque()     # [size, future]

    def _fits(self, n):
        return self.capacity < 0 or self.reserved == 0 or self.reserved + n <= self.capacity

    async def reserve(self, n):
        if n <= 0:
            return
        if self._fits(n):
            self.reserved += n
            return
        fut = asyncio.get_running_loop().create_future()
        entry = [n, fut]
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(n)          # granted just as we were cancelled
            else:
                try:
                    self._waiters.remove(entry)
                except ValueError:
                    pass
            raise

    def release(self, n):
        if n <= 0:
            return
        self.reserved -= n
        for entry in list(self._waiters):
            size, fut = entry
            if fut.done():
                self._waiters.remove(entry)
            elif self._fits(size):
                self._waiters.remove(entry)
                self.reserved += size
                fut.set_result(None)

    @property
    def waiting(self):
        return len(self._waiters)


class TlsProbeLog:
    """Logs a TLS ClientHello on the plaintext listener at most once a minute per peer IP."""

    def __init__(self, interval_s=TLS_LOG_INTERVAL_S):
        self.interval_s = interval_s
        self._last = collections.OrderedDict()    # ip -> monotonic time of its last line

    @staticmethod
    def is_tls(data):
        # A TLS record: content type 22 (handshake), protocol major version 3. As a Kafka size
        # prefix these bytes would declare a frame of about 370 MB.
        return len(data) >= 2 and data[0] == 0x16 and data[1] == 0x03

    def report(self, peer):
        ip = _ip_of(peer)
        now = time.monotonic()
        last = self._last.pop(ip, None)
        if last is not None and now - last < self.interval_s:
            self._last[ip] = last
            return False
        self._last[ip] = now
        while len(self._last) > _TLS_PEERS_REMEMBERED:
            self._last.popitem(last=False)
        log.warning("TLS handshake on a plaintext listener from %s; klog serve speaks PLAINTEXT "
                    "only", ip)
        return True
