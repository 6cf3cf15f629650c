"""``App``: declare functions, start them against a broker, stop them cleanly.

    app = App("message-service")
    @app.function
    def email(event: dict) -> dict: ...
    running = app.start(target, definition="email|sms", bindings={...})
    running.stop()

``target``: a client from ``klog.connect`` (or an open embedded Broker), a data directory, or
``kafka://host:port``. A target given as a path or address is opened by ``start`` and closed by
``stop``.
"""
import asyncio
import logging
import os
import signal
import threading
import time

from klog.functions import bindings as config
from klog.functions.composition import Pipeline, parse_definition
from klog.functions.errors import BindingConfigError, NotRunningError
from klog.functions.registry import CONSUMER, FUNCTION, SUPPLIER, Registry
from klog.functions.runner import InputBinding, Outputs, SupplierBinding

log = logging.getLogger("klog.functions")


def connect(target, client_config=None):
    """-> (client, owned). Uses ``klog.connect`` when the client API is there."""
    if hasattr(target, "producer") and hasattr(target, "consumer"):
        return target, False
    import klog
    if hasattr(klog, "connect"):
        return klog.connect(target, client_config), True
    text = os.fspath(target)
    if "://" in text and not text.startswith("file:"):
        raise BindingConfigError(f"broker {text!r}: this klog has no wire client yet "
                                 "(klog.connect); give a data directory")
    return klog.open(text[5:] if text.startswith("file:") else text, client_config), True


class App:
    """An application: a name (the default consumer group) and its declared functions."""

    def __init__(self, name):
        if not isinstance(name, str) or not name:
            raise ValueError(f"App(name): a non-empty application name, not {name!r}")
        self.name = name
        self.registry = Registry()
        self._running = []

    # -- declaring -----------------------------------------------------------------------------
    def _decorator(self, kind, fn, name=None, **extra):
        if fn is not None:
            self.registry.add(fn, kind, name, **extra)
            return fn

        def deco(f):
            self.registry.add(f, kind, name, **extra)
            return f
        return deco

    def function(self, fn=None, *, name=None):
        """A function: takes a record's value (by its type hint) and returns what to send."""
        return self._decorator(FUNCTION, fn, name)

    def consumer(self, fn=None, *, name=None):
        """A consumer: takes a record's value; sends nothing (use ``app.send`` to publish)."""
        return self._decorator(CONSUMER, fn, name)

    def supplier(self, fn=None, *, name=None, fixed_delay=None):
        """A supplier: called every ``fixed_delay`` ms (binding property ``fixed-delay``,
        default 1000); what it returns is sent."""
        return self._decorator(SUPPLIER, fn, name, fixed_delay=fixed_delay)

    @property
    def functions(self):
        return dict(self.registry.functions)

    # -- running -------------------------------------------------------------------------------
    def start(self, target=None, definition=None, bindings=None, *, config_file=None,
              environ=None, sets=None, metrics_port=None, client_config=None):
        """Start the definition's pipelines; returns a Running. Configuration precedence: the
        config file < environment < the arguments here < ``sets`` (``KEY=VALUE`` strings as
        ``klog run --set``)."""
        environ = os.environ if environ is None else environ
        code = config.Layer("code")
        if definition is not None:
            code.app["definition"] = definition
        if target is not None and isinstance(target, (str, os.PathLike)):
            code.app["broker"] = os.fspath(target)
        if metrics_port is not None:
            code.app["metrics-port"] = metrics_port
        for b, props in (bindings or {}).items():
            if not isinstance(props, dict):
                raise BindingConfigError(f"bindings[{b!r}] must be a dict of properties")
            for k, v in props.items():
                code.bindings.setdefault(b, {})[k] = v
        # the definition decides the binding names, which the environment is matched against
        pre = config.load_layers(config_file, environ, (), code, sets)
        chains = parse_definition(config.app_setting(pre, "definition"), self.registry)
        pipelines_probe = [(c, "".join(f.name for f in c)) for c in chains]
        names = []
        for chain, joined in pipelines_probe:
            if chain[0].kind != SUPPLIER:
                names.append(f"{joined}-in-0")
            if chain[-1].kind != CONSUMER:
                names.append(f"{joined}-out-0")
        layers = config.load_layers(config_file, environ, names, code, sets)
        resolved = config.resolve(names, layers, self.name)
        if target is None or isinstance(target, (str, os.PathLike)):
            target = config.app_setting(layers, "broker")
            if target is None:
                raise BindingConfigError("no broker: pass a target to start(), --broker, "
                                         "broker= in the config file or KLOG_BROKER")
        port = config.app_setting(layers, "metrics-port")
        auto_create = config.app_setting(layers, "auto-create-topics", True)
        auto_create = config.PROPERTIES["enable-dlq"][0](auto_create)
        running = Running(self, target, chains, resolved, client_config,
                          int(port) if port not in (None, "") else None, auto_create)
        self._running.append(running)
        try:
            running._start()
        except BaseException:
            running.stop()
            raise
        return running

    def run(self, target=None, definition=None, bindings=None, **kwargs):
        """``start`` then block until SIGTERM / SIGINT (or a fatal error); then stop cleanly.
        Returns 0, or 1 if the app stopped on an error."""
        running = self.start(target, definition, bindings, **kwargs)
        stop = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: stop.set())
        running._on_failure.append(stop.set)
        try:
            while not stop.is_set():
                stop.wait(0.5)
        finally:
            running.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if running.error is not None else 0

    def send(self, destination, value, key=None, headers=None, partition=None,
             content_type=None):
        """Publish outside a function (Spring's StreamBridge): ``destination`` is a binding
        name (its topic and content type apply) or a topic. Returns the producer's future."""
        live = [r for r in self._running if not r.stopped]
        if not live:
            raise NotRunningError(f"app {self.name!r}: send() needs a started app "
                                  "(app.start / app.run)")
        return live[-1].send(destination, value, key, headers, partition, content_type)


class Running:
    """A started app. ``stop()`` drains and closes; ``error`` is the fatal error, if any;
    ``stats()`` the per-binding counters; ``wait_idle()`` waits (no sleeps: events) until every
    input binding has processed and committed everything in its topics."""

    def __init__(self, app, target, chains, resolved, client_config, metrics_port, auto_create):
        self.app = app
        self.client, self._owns_client = connect(target, client_config)
        self.bindings = resolved
        self.error = None
        self.stopped = False
        self._on_failure = []
        self._idle_wanted = False
        self._idle_partial = False
        self._producers = {}
        self._metrics_server = None
        self.metrics_port = metrics_port
        self.auto_create = auto_create
        self.loop = None
        self._loop_thread = None
        self.pipelines = [Pipeline(c, self._content_type(c)) for c in chains]
        self.inputs = []
        self.suppliers = []

    def _content_type(self, chain):
        joined = "".join(f.name for f in chain)
        cfg = self.bindings.get(f"{joined}-in-0")
        return cfg.content_type if cfg is not None else "application/json"

    def _producer(self, cfg):
        extra = dict(cfg.producer) if cfg is not None else {}
        key = tuple(sorted((k, str(v)) for k, v in extra.items()))
        p = self._producers.get(key)
        if p is None:
            conf = {"linger.ms": 0}
            conf.update(extra)
            p = self._producers[key] = self.client.producer(conf)
        return p

    def _ensure_topics(self):
        existing = set(self.client.list_topics())
        wanted = []
        for p in self.pipelines:
            if p.in_binding:
                cfg = self.bindings[p.in_binding]
                wanted.append((cfg.destination, None, p.in_binding))
                if cfg.enable_dlq:
                    from klog.functions.retry import dlq_name
                    wanted.append((dlq_name(cfg), cfg.dlq_partitions, p.in_binding))
            if p.out_binding:
                cfg = self.bindings[p.out_binding]
                wanted.append((cfg.destination, cfg.partition_count, p.out_binding))
        for topic, parts, binding in wanted:
            if topic in existing:
                continue
            if not self.auto_create:
                raise BindingConfigError(f"binding {binding}: topic {topic!r} does not exist and "
                                         "auto-create-topics is false")
            try:
                self.client.create_topic(topic, parts)
            except Exception as e:
                if type(e).__name__ != "TopicExistsError":
                    raise
            existing.add(topic)

    def _start(self):
        if any(p.is_async for p in self.pipelines):
            self.loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(target=self.loop.run_forever,
                                                 name="klog-functions-loop", daemon=True)
            self._loop_thread.start()
        self._ensure_topics()
        for p in self.pipelines:
            out_cfg = self.bindings.get(p.out_binding) if p.out_binding else None
            in_cfg = self.bindings.get(p.in_binding) if p.in_binding else None
            outputs = Outputs(self._producer(out_cfg), out_cfg)
            if p.supplier:
                fdef = p.chain[0]
                if fdef.fixed_delay is not None and "fixed-delay" not in _explicit(out_cfg):
                    out_cfg.fixed_delay = fdef.fixed_delay
                self.suppliers.append(SupplierBinding(self, p, out_cfg, outputs))
            else:
                self.inputs.append(InputBinding(self, p, in_cfg, outputs, self._producer(None)))
        if self.metrics_port is not None:
            from klog.functions.metrics import serve
            self._metrics_server, _ = serve(self.all_stats(), self.app.name, self.metrics_port)
            self.metrics_port = self._metrics_server[0].server_port
        for b in self.inputs + self.suppliers:
            b.start()

    def all_stats(self):
        return [b.stats for b in self.inputs + self.suppliers]

    def stats(self):
        """{binding name: counters} (records_in, records_out, failures, retries, dead_lettered,
        skipped, lag)."""
        return {b.stats.binding: b.stats.snapshot() for b in self.inputs + self.suppliers}

    def send(self, destination, value, key=None, headers=None, partition=None, content_type=None):
        from klog.functions import codec
        from klog.functions.message import header_pairs
        cfg = self.bindings.get(destination)
        topic = cfg.destination if cfg is not None else destination
        ct = content_type or (cfg.content_type if cfg is not None else codec.JSON)
        if isinstance(key, str):
            key = key.encode()
        if isinstance(headers, dict):
            headers = header_pairs(headers)
        return self._producer(cfg).send(topic, codec.encode(value, ct), key=key,
                                        partition=partition, headers=headers)

    def _failed(self, exc):
        if self.error is None:
            self.error = exc
        for b in self.inputs + self.suppliers:
            b.stop()
        for fn in self._on_failure:
            fn()

    def wait_idle(self, timeout=10.0, partial=False):
        """Block until every input binding is caught up: no record queued or in flight, and its
        committed offsets at the end of its input partitions (all of them unless ``partial``:
        another process of the group may own some). Repeats until a full round saw no new
        work, so pipelines feeding each other settle. Raises TimeoutError at the deadline and
        the app's error if it stopped."""
        deadline = time.monotonic() + timeout
        self._idle_partial = partial
        self._idle_wanted = True
        try:
            while True:
                gens = [b.generation for b in self.inputs]
                for b in self.inputs:
                    b.idle.clear()
                for b in self.inputs:
                    while not b.idle.wait(0.05):
                        if self.error is not None:
                            raise self.error
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"app {self.app.name}: binding {b.cfg.name} not "
                                               f"idle after {timeout} s: {b.stats.snapshot()}")
                if gens == [b.generation for b in self.inputs]:
                    return
        finally:
            self._idle_wanted = False

    def stop(self, timeout=30.0):
        """Stop polling, finish in-flight records, commit, close (idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        for b in self.inputs + self.suppliers:
            b.stop()
        deadline = time.monotonic() + timeout
        for b in self.inputs + self.suppliers:
            if b.thread.is_alive():
                b.thread.join(max(0.0, deadline - time.monotonic()))
        for p in self._producers.values():
            try:
                p.flush()
                p.close()
            except Exception:
                log.exception("app %s: producer close failed", self.app.name)
        if self._metrics_server is not None:
            self._metrics_server[0].shutdown()
            self._metrics_server[0].server_close()
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._loop_thread.join(5)
        if self._owns_client:
            self.client.close()
        for name, st in self.stats().items():
            log.info("app %s stopped: %s: %s", self.app.name, name,
                     ", ".join(f"{k} {v}" for k, v in st.items() if k != "processed_seconds"))
        if self in self.app._running:
            self.app._running.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _explicit(cfg):
    return getattr(cfg, "_explicit", ())
