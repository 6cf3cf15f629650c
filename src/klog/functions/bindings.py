"""Binding properties (Spring Cloud Stream's names, hyphenated) and where they come from.

Precedence, lowest first: built-in defaults < the config file < environment variables < code
(``app.start(..., bindings=...)``, ``--set``). Within each source, ``default.<property>``
(Spring's ``spring.cloud.stream.default.*``) applies to every binding and
``bindings.<binding>.<property>`` to one.

File (``config=PATH`` or ``KLOG_CONFIG``): ``.toml``, ``.json`` or ``.properties`` (``key=value``
lines, ``#`` comments), with the keys ``definition``, ``broker``, ``metrics-port``,
``auto-create-topics``, ``default.<property>`` and ``bindings.<binding>.<property>`` (TOML and
JSON may nest: ``[bindings.emailsms-in-0]``).

Environment (Spring's relaxed names with a ``KLOG_`` prefix): ``KLOG_FUNCTION_DEFINITION``,
``KLOG_BROKER``, ``KLOG_METRICS_PORT``, ``KLOG_CONFIG``, ``KLOG_DEFAULT_<PROPERTY>`` and
``KLOG_BINDINGS_<BINDING>_<PROPERTY>``, upper case with ``_`` for ``-`` (e.g.
``KLOG_BINDINGS_EMAILSMS_IN_0_MAX_ATTEMPTS=5``).
"""
import difflib
import json
import os

from klog.functions.codec import CONTENT_TYPES, JSON
from klog.functions.errors import BindingConfigError


def _bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError("expected true or false")


def _int(lo=None):
    def conv(v):
        if isinstance(v, bool):
            raise ValueError("expected an integer")
        v = int(v)
        if lo is not None and v < lo:
            raise ValueError(f"expected an integer >= {lo}")
        return v
    return conv


def _float(lo=None):
    def conv(v):
        v = float(v)
        if lo is not None and v < lo:
            raise ValueError(f"expected a number >= {lo}")
        return v
    return conv


def _opt_int(v):
    return None if v in (None, "", "none", "null") else _int(1)(v)


def _choice(*options):
    def conv(v):
        if v not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return v
    return conv


def _str(v):
    if not isinstance(v, str) or not v:
        raise ValueError("expected a non-empty string")
    return v


def _opt_str(v):
    return None if v in (None, "") else _str(v)


def _exceptions(v):
    """{exception class or name: retryable?}; from text: ``ValueError:false,KeyError:true``."""
    if isinstance(v, str):
        out = {}
        for item in filter(None, (x.strip() for x in v.split(","))):
            name, _, flag = item.partition(":")
            out[name.strip()] = _bool(flag or "true")
        return out
    if not isinstance(v, dict):
        raise ValueError("expected {exception: true/false}")
    return {k: _bool(x) for k, x in v.items()}


def _partition_key(v):
    if callable(v) or v is None:
        return v
    return _str(v)


def _kafka_config(v):
    if not isinstance(v, dict):
        raise ValueError("expected a dict of Kafka client config names")
    return dict(v)


# name -> (converter, default, what it is). Input-side and output-side properties share one
# namespace, as in Spring.
PROPERTIES = {
    "destination": (_opt_str, None, "topic (default: the binding name, as Spring)"),
    "group": (_opt_str, None, "consumer group (default: the application name)"),
    "concurrency": (_int(1), 1, "records processed at once (ordered per partition / key)"),
    "ordering": (_choice("partition", "key"), "partition", "what keeps its order under concurrency"),
    "max-attempts": (_int(1), 3, "attempts per record, the first included"),
    "back-off-initial-interval": (_int(0), 1000, "ms before the first retry"),
    "back-off-multiplier": (_float(1.0), 2.0, "back-off growth per retry"),
    "back-off-max-interval": (_int(0), 10000, "ms, the longest back-off"),
    "default-retryable": (_bool, True, "retry exceptions not listed in retryable-exceptions"),
    "retryable-exceptions": (_exceptions, {}, "{exception name or class: retryable?}"),
    "enable-dlq": (_bool, False, "send records that fail for good to the DLQ"),
    "dlq-name": (_opt_str, None, "DLQ topic (default error.<destination>.<group>)"),
    "dlq-partitions": (_opt_int, None, "partitions of a DLQ topic created at start"),
    "on-error": (_choice("stop", "skip"), "stop", "without a DLQ: stop the app or log and skip"),
    "timeout": (_opt_int, None, "ms one record may take in the function (default: no limit)"),
    "content-type": (_choice(*CONTENT_TYPES), JSON, "how values without a type hint (de)code"),
    "auto-offset-reset": (_choice("earliest", "latest"), "earliest", "where a new group starts"),
    "max-poll-records": (_int(1), 500, "records per poll"),
    "consumer": (_kafka_config, {}, "extra Kafka consumer config"),
    "partition-key": (_partition_key, None, "output key: a field of the value, or a callable"),
    "partition-count": (_opt_int, None, "partitions of an output topic created at start"),
    "producer": (_kafka_config, {}, "extra Kafka producer config"),
    "fixed-delay": (_int(0), 1000, "ms between supplier calls (Spring's poller fixed-delay)"),
}
APP_KEYS = ("definition", "broker", "metrics-port", "auto-create-topics")


class BindingConfig:
    """The resolved properties of one binding; attributes use ``_`` for ``-``."""

    def __init__(self, name, props):
        self.name = name
        for k, (_conv, default, _doc) in PROPERTIES.items():
            setattr(self, k.replace("-", "_"), props.get(k, default))

    def __repr__(self):
        return f"<BindingConfig {self.name} destination={self.destination!r}>"


def _norm(name):
    return name.lower().replace("-", "_")


def check_property(binding, key, value, source):
    if key not in PROPERTIES:
        close = difflib.get_close_matches(key, PROPERTIES, 1)
        raise BindingConfigError(f"{source}: binding {binding!r} has no property {key!r}"
                                 + (f"; did you mean {close[0]!r}?" if close else
                                    f" (known: {', '.join(PROPERTIES)})"))
    try:
        return PROPERTIES[key][0](value)
    except (ValueError, TypeError) as e:
        raise BindingConfigError(f"{source}: {binding}.{key} = {value!r}: {e}") from None


class Layer:
    """One source of configuration: app keys, default binding properties, per-binding ones."""

    def __init__(self, source):
        self.source = source
        self.app = {}
        self.default = {}
        self.bindings = {}

    def set_flat(self, key, value):
        """``definition``, ``default.max-attempts``, ``bindings.x-in-0.destination``,
        ``bindings.x-in-0.retryable-exceptions.ValueError`` ..."""
        parts = key.split(".")
        if parts[0] in APP_KEYS and len(parts) == 1:
            self.app[parts[0]] = value
        elif parts[0] == "default" and len(parts) >= 2:
            _set_prop(self.default, parts[1:], value)
        elif parts[0] == "bindings" and len(parts) >= 3:
            _set_prop(self.bindings.setdefault(parts[1], {}), parts[2:], value)
        else:
            raise BindingConfigError(
                f"{self.source}: unknown key {key!r} (use {', '.join(APP_KEYS)}, "
                "default.<property> or bindings.<binding>.<property>)")

    def set_nested(self, data, prefix=""):
        for k, v in data.items():
            if isinstance(v, dict) and k in ("default", "bindings"):
                if k == "default":
                    for prop, x in v.items():
                        self.set_flat(f"default.{prop}", x)
                else:
                    for binding, props in v.items():
                        if not isinstance(props, dict):
                            raise BindingConfigError(f"{self.source}: bindings.{binding} must be "
                                                     "a table of properties")
                        for prop, x in props.items():
                            self.set_flat(f"bindings.{binding}.{prop}", x)
            else:
                self.set_flat(k, v)


def _set_prop(target, parts, value):
    if len(parts) == 1:
        target[parts[0]] = value
    else:  # a map-valued property given entry by entry (retryable-exceptions.X=false)
        target.setdefault(parts[0], {})
        if isinstance(target[parts[0]], dict):
            target[parts[0]][".".join(parts[1:])] = value


def from_file(path):
    layer = Layer(f"config file {path}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BindingConfigError(f"config file {path}: {e.strerror}") from None
    if path.endswith(".toml"):
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib
        try:
            layer.set_nested(tomllib.loads(raw.decode()))
        except tomllib.TOMLDecodeError as e:
            raise BindingConfigError(f"config file {path}: {e}") from None
    elif path.endswith(".json"):
        try:
            layer.set_nested(json.loads(raw))
        except ValueError as e:
            raise BindingConfigError(f"config file {path}: {e}") from None
    else:
        for lineno, line in enumerate(raw.decode().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith(("#", "!")):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise BindingConfigError(f"config file {path}, line {lineno}: expected "
                                         f"key=value, got {line!r}")
            layer.set_flat(key.strip(), value.strip())
    return layer


ENV_APP = {"KLOG_FUNCTION_DEFINITION": "definition", "KLOG_BROKER": "broker",
           "KLOG_METRICS_PORT": "metrics-port", "KLOG_AUTO_CREATE_TOPICS": "auto-create-topics"}


def from_env(environ, binding_names):
    """``KLOG_*`` variables. A ``KLOG_BINDINGS_*`` variable names its binding in Spring's
    relaxed form; it is matched against this app's binding names (others are ignored: the
    environment may hold another app's settings)."""
    layer = Layer("environment")
    by_norm = {_norm(b): b for b in binding_names}
    props = sorted(PROPERTIES, key=len, reverse=True)
    for var, value in environ.items():
        if var in ENV_APP:
            layer.app[ENV_APP[var]] = value
        elif var.startswith("KLOG_DEFAULT_"):
            rest = var[len("KLOG_DEFAULT_"):].lower()
            prop = next((p for p in props if _norm(p) == rest), None)
            if prop is None:
                raise BindingConfigError(f"environment: {var}: no binding property "
                                         f"{rest.replace('_', '-')!r}")
            layer.default[prop] = value
        elif var.startswith("KLOG_BINDINGS_"):
            rest = var[len("KLOG_BINDINGS_"):].lower()
            for p in props:
                suffix = "_" + _norm(p)
                if rest.endswith(suffix) and rest[:-len(suffix)] in by_norm:
                    layer.bindings.setdefault(by_norm[rest[:-len(suffix)]], {})[p] = value
                    break
    return layer


def resolve(binding_names, layers, app_name, strict_sources=("code",)):
    """{binding: BindingConfig} from the layers (lowest precedence first). Unknown binding names
    are an error in the sources named by ``strict_sources`` (a typo in code), ignored elsewhere."""
    merged = {b: {} for b in binding_names}
    for layer in layers:
        for b in binding_names:
            for k, v in layer.default.items():
                merged[b][k] = check_property("default", k, v, layer.source)
        for b, props in layer.bindings.items():
            if b not in merged:
                if layer.source in strict_sources:
                    close = difflib.get_close_matches(b, binding_names, 1)
                    raise BindingConfigError(
                        f"{layer.source}: binding {b!r} is not bound by the definition "
                        f"(its bindings: {', '.join(binding_names) or 'none'})"
                        + (f"; did you mean {close[0]!r}?" if close else ""))
                continue
            for k, v in props.items():
                merged[b][k] = check_property(b, k, v, layer.source)
    out = {}
    for b, props in merged.items():
        cfg = BindingConfig(b, props)
        cfg._explicit = set(props)
        if cfg.destination is None:
            cfg.destination = b
        if cfg.group is None:
            cfg.group = app_name
        out[b] = cfg
    return out


def app_setting(layers, key, default=None):
    value = default
    for layer in layers:
        if key in layer.app:
            value = layer.app[key]
    return value


def load_layers(config_file=None, environ=None, binding_names=(), code=None, sets=None):
    """The layers in precedence order: file, env, code, --set."""
    environ = os.environ if environ is None else environ
    layers = []
    path = config_file or environ.get("KLOG_CONFIG")
    if path:
        layers.append(from_file(os.fspath(path)))
    layers.append(from_env(environ, binding_names))
    if code is not None:
        layers.append(code)
    if sets:
        layer = Layer("code")
        for item in sets:
            key, sep, value = item.partition("=")
            if not sep:
                raise BindingConfigError(f"--set {item!r}: expected KEY=VALUE")
            layer.set_flat(key.strip(), value.strip())
        layers.append(layer)
    return layers
