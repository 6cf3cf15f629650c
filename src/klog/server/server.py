"""An asyncio Kafka-protocol server over one klog Broker.

One task per connection reads size-prefixed frames (``FrameSplitter``, 100 MiB cap) and answers
the requests of that connection one at a time, in order. Handlers live in klog.server.handlers.
Answers go out with ``os.writev`` (a fetch's segment views included, not copied); the answers to
Produce requests that were read together share one write.

Connections are accepted by klog.server.listener (when the process is out of file handles: a
rate-limited log line and a back-off, not a spin). Storage failures answer the partition
concerned KAFKA_STORAGE_ERROR (klog.server.handlers), logged once per condition (ConditionLog).

Bad input never takes the server down: a frame over the cap, an undecodable request or an
unknown API key closes that connection (logged); an unsupported version of ApiVersions gets
error 35 with a v0 body (KIP-511); an unsupported version of another API closes the connection,
as Kafka does.

Fetch long-polls without a thread per waiter: an append listener on the broker wakes the
waiting fetches, directly when the append ran on the loop (Produce), else through
``call_soon_threadsafe`` (embedded producers in the same process, group offset commits).

Limits (broker settings, Kafka's names; klog.server.limits): ``max.connections`` and
``max.connections.per.ip`` (+ ``.overrides``) close a connection over the cap right after
accept; ``connections.max.idle.ms`` closes a connection that neither sent a request nor got an
answer for that long (one waiting for its answer, e.g. a long-poll Fetch, is not idle);
``queued.max.request.bytes`` caps the bytes of partly received requests over all connections:
at the cap the server stops reading the sockets whose frames are incomplete until memory is
released. A TLS ClientHello on this plaintext listener is logged as such and closed.

Shutdown (SIGTERM/SIGINT, or ``stop()``): stop accepting, drop idle connections, let requests in
flight finish (fetch waits are cut short) for up to ``grace`` seconds, then close the broker.
"""
import asyncio
import logging
import os
import signal
import threading
import time

from klog.protocol.errors import ErrorCode, ProtocolError, UnknownApiError, UnsupportedVersionError
from klog.protocol.frames import DEFAULT_MAX_FRAME, FrameSplitter, decode_request, encode_response
from klog.protocol.messages import ApiKey
from klog.server import handlers
from klog.server.replication import LocalReplication
from klog.server.limits import ConnectionLimits, RequestMemoryPool, TlsProbeLog
from klog.server.conditions import ConditionLog
from klog.server.listener import Listener

log = logging.getLogger("klog.server")


def _parse_hostport(text, default_port=9092):
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT with a port in 0..65535")
    return host.strip("[]") or "127.0.0.1", int(port)


# Where `klog serve` (and ServerThread) keep Kafka's broker default and the embedded broker
# does not: a group's first rebalance waits 3 s for more members (one rebalance, not one per
# member, when a fleet of consumers starts together).
SERVE_DEFAULTS = {"group.initial.rebalance.delay.ms": 3000}


def serve_config(config):
    """The broker config for ``klog serve``: ``config`` with SERVE_DEFAULTS where it sets none."""
    from klog.config import BrokerConfig, config_mapping

    if isinstance(config, BrokerConfig):
        return config
    return {**SERVE_DEFAULTS, **config_mapping(config, "broker config")}


_IOV_MAX = os.sysconf("SC_IOV_MAX")   # buffers one writev takes


def _unsent(buffers, sent):
    """What is left of ``buffers`` after the first ``sent`` bytes went out."""
    for i, b in enumerate(buffers):
        n = memoryview(b).nbytes
        if sent < n:
            return [memoryview(b).cast("B")[sent:], *buffers[i + 1:]] if sent else buffers[i:]
        sent -= n
    return []


class _Connection:
    __slots__ = ("task", "writer", "busy", "peer", "fd", "pending", "last_active", "reserved",
                 "waiting", "closing_reason")

    def __init__(self, writer, peer):
        self.task = None
        self.writer = writer
        self.busy = False
        self.peer = peer
        self.fd = writer.get_extra_info("socket").fileno()
        self.pending = []   # Produce responses held back to go out with the next write
        self.last_active = time.monotonic()
        self.reserved = 0   # bytes held in the server's RequestMemoryPool for a partial frame
        self.waiting = False   # for memory in that pool: the server's wait, not an idle client
        self.closing_reason = None


class Server:
    """``Server(broker, host, port, advertised=None)``; ``await start()``, ``await stop()``."""

    def __init__(self, broker, host="127.0.0.1", port=9092, advertised=None,
                 max_frame_size=DEFAULT_MAX_FRAME, grace=10.0):
        self.broker = broker
        self.host = host
        self.port = port
        self.advertised = advertised          # (host, port) or None: the bound address
        self.max_frame_size = max_frame_size
        self.grace = grace
        self.cluster_id = "klog-" + broker.data_dir.replace("/", "_")[-16:]
        self.stopping = False
        self._closing = False
        self._held = None                     # an asyncio.Event while requests are held
        self._server = None
        self._conns = set()
        self._waiters = set()
        self._loop = None
        self._loop_thread = None
        self._wake_scheduled = False
        self._stopped = None
        self.producer_ids = handlers.ProducerIdAllocator(broker.data_dir)
        config = broker.config
        self._limits = ConnectionLimits.from_config(config)
        self._memory = RequestMemoryPool(config["queued.max.request.bytes"])
        self.idle_ms = config["connections.max.idle.ms"]
        self._tls_log = TlsProbeLog()
        self._refused = 0            # connections refused since the last log line about it
        self._refused_logged = 0.0
        self._reaper = None
        self.conditions = ConditionLog(log)   # recurring failures: a line per condition
        self.cluster = None                   # a klog.cluster.node.ClusterNode in cluster mode
        # What Produce, Fetch, ListOffsets and the group requests ask about replication: a
        # single node is a cluster of one; cluster mode puts a ClusterReplication here.
        self.replication = LocalReplication(self)
        # Cluster mode overrides the admin requests the controller answers
        # (klog.cluster.admin_handlers); Metadata asks ``replication`` for its view.
        self.handlers = handlers.HANDLERS

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self):
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = await Listener.start(self._serve, self.host, self.port, self.conditions)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.advertised is None:
            self.advertised = (self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1",
                               self.port)
        self._loop_thread = threading.get_ident()
        self.broker.add_append_listener(self._on_append)
        self._reaper = asyncio.ensure_future(self._close_idle_connections())
        log.info("klog serving on %s:%d (advertised %s:%d)", self.host, self.port, *self.advertised)
        return self

    def hold_requests(self):
        """Accept connections but answer no request until ``release_requests`` (a cluster member
        joining: until then it could only answer Metadata about itself alone)."""
        self._held = asyncio.Event()

    def release_requests(self):
        if self._held is not None:
            self._held.set()

    async def wait_stopped(self):
        await self._stopped.wait()

    async def stop(self):
        if self._closing:
            await self._stopped.wait()
            return
        self._closing = True
        await self.stop_serving()
        self.broker.remove_append_listener(self._on_append)
        await asyncio.get_running_loop().run_in_executor(None, self.broker.close)
        self._stopped.set()

    async def stop_serving(self):
        """Stop accepting, finish or cancel what connections are doing, close them; the broker
        stays open (``stop`` closes it). A cluster member leaving calls this before it closes
        its ZooKeeper session: a request answered after that could only tell a partial view."""
        if self.stopping:
            return
        self.stopping = True
        self.release_requests()               # held requests end: their connections close
        self._server.close()
        if self._reaper is not None:
            self._reaper.cancel()
        self._wake()
        for conn in list(self._conns):
            if not conn.busy:
                conn.task.cancel()
        tasks = [c.task for c in self._conns]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.grace)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        try:
            await asyncio.wait_for(self._server.wait_closed(), 2)
        except (asyncio.TimeoutError, Exception):
            pass

    # -- appends → fetch wake-ups ------------------------------------------------------------------
    def _on_append(self):
        # Called by the appending thread. One wake-up per loop iteration is enough, however many
        # batches a request appended.
        if not self._waiters or self._wake_scheduled:
            return
        self._wake_scheduled = True
        try:
            if threading.get_ident() == self._loop_thread:
                self._loop.call_soon(self._wake)
            else:
                self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:   # loop closed
            pass

    def _wake(self):
        self._wake_scheduled = False
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_for_append(self, seen_seq, timeout):
        """Wait (on the loop) until something is appended after ``seen_seq`` was read."""
        fut = self._loop.create_future()
        self._waiters.add(fut)   # before the check: an append in another thread then sees us
        try:
            if self.broker.append_seq != seen_seq or self.stopping or timeout <= 0:
                return
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    # -- limits ------------------------------------------------------------------------------------
    def _refuse(self, writer, peer, reason):
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged >= 10.0:   # a flood of connections: one line per 10 s
            log.warning("closing connection from %s right after accept: %s (%d refused since "
                        "the last such message)", peer, reason, self._refused)
            self._refused, self._refused_logged = 0, now
        writer.close()

    async def _close_idle_connections(self):
        """connections.max.idle.ms: close connections with no request or answer for that long.
        A connection answering a request (busy) is not idle, however long the answer takes."""
        idle_s = self.idle_ms / 1000.0
        interval = min(max(idle_s / 4, 0.01), 5.0)
        while not self.stopping:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self._conns):
                if conn.busy or conn.waiting or conn.closing_reason is not None:
                    continue
                if now - conn.last_active >= idle_s:
                    conn.closing_reason = f"idle for connections.max.idle.ms={self.idle_ms}"
                    conn.task.cancel()

    async def _hold_memory_for(self, conn, splitter):
        """Reserve (waiting if the pool is full) the bytes of the frame being received, before
        reading more of it; release what was held for frames already handled."""
        need = splitter.pending_frame_size()
        if need == conn.reserved:
            return
        if conn.reserved:
            self._memory.release(conn.reserved)
            conn.reserved = 0
        if need:
            conn.waiting = True
            try:
                await self._memory.reserve(need)
            finally:
                conn.waiting = False
            conn.reserved = need
            conn.last_active = time.monotonic()

    # -- connections -------------------------------------------------------------------------------
    async def _serve(self, reader, writer):
        peer = writer.get_extra_info("peername")
        conn = _Connection(writer, peer)
        conn.task = asyncio.current_task()
        if self.stopping:
            writer.close()
            return
        refused = self._limits.admit(peer)
        if refused is not None:
            self._refuse(writer, peer, refused)
            return
        self._conns.add(conn)
        splitter = FrameSplitter(self.max_frame_size)
        head = b""   # the first bytes of the connection, to recognise a TLS ClientHello
        try:
            while not self.stopping:
                data = await reader.read(262144)
                if not data:
                    break
                conn.last_active = time.monotonic()
                if len(head) < 2:
                    head += data[:2 - len(head)]
                    if TlsProbeLog.is_tls(head):
                        self._tls_log.report(peer)
                        break
                conn.busy = True
                try:
                    frames = splitter.feed(data)
                    last = len(frames) - 1
                    for i, frame in enumerate(frames):
                        if not await self._handle_frame(conn, frame, i < last):
                            if conn.pending:   # answers to the requests before the bad one
                                await self._send(conn, [])
                            return
                    if conn.pending:
                        await self._send(conn, [])
                finally:
                    conn.busy = False
                    conn.last_active = time.monotonic()
                await self._hold_memory_for(conn, splitter)
        except ProtocolError as exc:
            log.warning("closing connection from %s: %s", peer, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            if conn.closing_reason is not None:
                log.info("closing connection from %s: %s", peer, conn.closing_reason)
        except Exception:
            log.exception("closing connection from %s after an internal error", peer)
        finally:
            self._conns.discard(conn)
            self._limits.release(peer)
            self._memory.release(conn.reserved)
            conn.reserved = 0
            try:
                writer.close()
            except Exception:
                pass

    async def _handle_frame(self, conn, frame, more):
        """Answer one request; False to close the connection. ``more``: further requests of
        this connection are already read (a pipelining producer)."""
        try:
            req = decode_request(frame)
        except UnsupportedVersionError as exc:
            hdr = exc.header
            if hdr is not None and hdr.api_key == ApiKey.API_VERSIONS:
                body = handlers.api_versions_body(0)
                body["error_code"] = ErrorCode.UNSUPPORTED_VERSION
                await self._send(conn, encode_response(ApiKey.API_VERSIONS, 0, hdr.correlation_id,
                                                       body).buffers())
                return True
            log.warning("closing connection from %s: %s", conn.peer, exc)
            return False
        except UnknownApiError as exc:
            log.warning("closing connection from %s: %s", conn.peer, exc)
            return False
        except ProtocolError as exc:
            log.warning("closing connection from %s: malformed request: %s", conn.peer, exc)
            return False
        hdr = req.header
        if self._held is not None and not self._held.is_set():
            await self._held.wait()
            if self.stopping:
                return False
        if conn.pending and hdr.api_key != ApiKey.PRODUCE:
            await self._send(conn, [])   # this one may wait (a fetch): don't hold answers back
        handler = self.handlers.get(hdr.api_key)
        if handler is None:
            log.warning("closing connection from %s: no handler for API %d", conn.peer, hdr.api_key)
            return False
        ctx = handlers.Context(self, hdr, conn.peer)
        try:
            body = await handler(ctx, req.body)
        except Exception:
            log.exception("API %d v%d from %s failed", hdr.api_key, hdr.api_version, conn.peer)
            return False
        try:
            if body is not None:
                w = encode_response(hdr.api_key, hdr.api_version, hdr.correlation_id, body)
                if more and hdr.api_key == ApiKey.PRODUCE:
                    # A producer with many requests in flight: gather their responses into one
                    # write (a syscall costs as much as decoding a small request here).
                    conn.pending.extend(w.buffers())
                else:
                    await self._send(conn, w.buffers())
        finally:
            ctx.release()
        return True

    async def _send(self, conn, buffers):
        if conn.pending:
            buffers, conn.pending = conn.pending + buffers, []
        writer = conn.writer
        if writer.transport.get_write_buffer_size() == 0 and len(buffers) <= _IOV_MAX:
            # Zero-copy: the kernel gathers the header bytes and the segment views straight
            # from the mapping (asyncio's writelines would first join them into one bytes).
            # Only what the socket doesn't take now goes through the transport's buffer.
            try:
                sent = os.writev(conn.fd, buffers)
            except (BlockingIOError, InterruptedError):
                sent = 0
            buffers = _unsent(buffers, sent)
        if buffers:
            writer.writelines(buffers)
        await writer.drain()


class ServerThread:
    """A Server on its own event loop in a background thread (tests, embedding), with the
    settings of ``klog serve`` (SERVE_DEFAULTS).

    ``ServerThread(data_dir, config=None, port=0).start()``; ``.port``; ``.stop()``."""

    def __init__(self, data_dir, config=None, host="127.0.0.1", port=0, **kwargs):
        import klog

        self.broker = klog.open(data_dir, serve_config(config))
        self.server = Server(self.broker, host, port, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="klog-server", daemon=True)
        self._ready = threading.Event()
        self._error = None

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_until_complete(self.server.wait_stopped())
        self._loop.close()

    def start(self):
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            self.broker.close()
            raise self._error
        return self

    @property
    def port(self):
        return self.server.port

    @property
    def address(self):
        return f"127.0.0.1:{self.server.port}"

    def stop(self):
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run(data_dir, listen="127.0.0.1:9092", advertised=None, config=None, cluster=None):
    """Serve until SIGTERM/SIGINT (``klog serve``). ``cluster``: the keyword arguments of
    klog.cluster.serve.join (node_id, zookeeper, ...) to serve as a cluster member."""
    import klog

    host, port = _parse_hostport(listen)
    adv = _parse_hostport(advertised, port) if advertised else None
    if cluster is not None:     # Kafka's broker.id is the node id (BROKER configs, DescribeCluster)
        config = {**(config or {}), "broker.id": cluster["node_id"]}
    try:
        import uvloop  # type: ignore
        uvloop.install()
    except ImportError:
        pass

    async def main():
        broker = klog.open(data_dir, serve_config(config))
        node = None
        try:
            server = Server(broker, host, port, adv)
            if cluster is not None:
                server.hold_requests()        # released once joined (cluster_serve.join)
            await server.start()
            if cluster is not None:
                from klog.cluster import serve as cluster_serve
                node = await cluster_serve.join(server, **cluster)
        except BaseException:
            broker.close()
            raise
        loop = asyncio.get_running_loop()
        if node is None:
            stop = server.stop
        else:
            def stop():
                return cluster_serve.leave(server, node)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(stop()))
        print(f"klog serving on {host}:{server.port}", flush=True)
        await server.wait_stopped()

    asyncio.run(main())
