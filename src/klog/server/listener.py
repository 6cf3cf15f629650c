"""Listener: the listening sockets and their accept loops (in place of asyncio.start_server).

Why not asyncio's own loop: when accept() fails for lack of resources (EMFILE, ENFILE, ENOBUFS,
ENOMEM), CPython's selector loop logs a traceback, schedules a retry in a second, and then goes
on calling accept() for the rest of its 100-connection batch, so every readiness event writes up
to 100 tracebacks and schedules 100 retries while the process is out of file handles.

Here each listening socket has one task: accept, hand the connection to ``serve(reader, writer)``
in its own task, repeat. A failed accept is one rate-limited line per errno (ConditionLog) and a
back-off that doubles from 10 ms to 1 s while it lasts; the connections wait in the kernel's
backlog meanwhile and are accepted once handles are free again.
"""
import asyncio
import logging
import socket

log = logging.getLogger("klog.server")

_FIRST_BACKOFF, _MAX_BACKOFF = 0.01, 1.0


def _bind(host, port, backlog):
    """Listening sockets for ``host`` ("", "0.0.0.0", "::" or None: every interface)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets, seen = [], set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """``await Listener.start(serve, host, port, conditions)``; ``.sockets``; ``close()``;
    ``await wait_closed()``. ``conditions``: a ConditionLog for failed accepts."""

    def __init__(self, serve, sockets, conditions):
        self._serve = serve
        self.sockets = sockets
        self._conditions = conditions
        self._tasks = []
        self._connections = set()
        self._closed = False

    @classmethod
    async def start(cls, serve, host, port, conditions, backlog=100):
        self = cls(serve, _bind(host, port, backlog), conditions)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._accept_loop(s)) for s in self.sockets]
        return self

    async def _accept_loop(self, sock):
        loop = asyncio.get_running_loop()
        backoff = 0.0
        while not self._closed:
            try:
                conn, _ = await loop.sock_accept(sock)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue   # the peer gave up before we took it
            except OSError as exc:
                if self._closed:
                    return
                backoff = min(max(backoff * 2, _FIRST_BACKOFF), _MAX_BACKOFF)
                self._conditions.report(
                    ("accept", exc.errno), logging.ERROR,
                    "cannot accept connections on %s: %s; retrying with back-off (up to %.0f s), "
                    "new connections wait meanwhile", sock.getsockname(), exc, _MAX_BACKOFF)
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            task = loop.create_task(self._connection(conn))
            self._connections.add(task)   # a task nobody references may be collected mid-way
            task.add_done_callback(self._connections.discard)

    async def _connection(self, conn):
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except OSError:
            conn.close()
            return
        await self._serve(reader, writer)

    def close(self):
        """Stop accepting; connections already handed to ``serve`` are not touched."""
        self._closed = True
        for t in self._tasks:
            t.cancel()
        for sock in self.sockets:
            sock.close()

    async def wait_closed(self):
        if self._tasks:
            await asyncio.wait(self._tasks)
