"""Dynamic broker configs, and where each effective config value comes from.

Kafka keeps broker configs in layers, most specific first: per-broker dynamic configs
(DYNAMIC_BROKER_CONFIG), cluster-wide dynamic defaults (DYNAMIC_DEFAULT_BROKER_CONFIG, set on the
resource name ""), the static ``server.properties`` (STATIC_BROKER_CONFIG, here the config the
Broker was opened with) and the built-in defaults (DEFAULT_CONFIG). A topic config not set on the
topic (DYNAMIC_TOPIC_CONFIG) takes its value from its broker synonyms through those layers
(``retention.ms`` -> ``log.retention.ms``, ``log.retention.minutes``, ``log.retention.hours``).

On disk: ``<data_dir>/klog-broker-config.json``, ``{"version": 1, "broker": {name: value},
"default": {name: value}}`` with Kafka's string values, rewritten atomically (temp -> fsync ->
rename -> fsync dir) on every change, so after a crash it holds the configs before or after that
change. A damaged file fails the open (CorruptLogError naming the file), never silently resets.
Only ``DYNAMIC_BROKER_CONFIGS`` may be set; the rest are read-only, as in Kafka.
"""
import json
import os
from dataclasses import dataclass

from klog.config import (
    BROKER_SETTINGS, BROKER_TO_TOPIC, DEFAULT_SYNONYM, DYNAMIC_BROKER_CONFIGS, SETTINGS,
    TOPIC_SYNONYMS, BrokerConfig, unknown_config,
)
from klog.errors import ConfigError, CorruptLogError
from klog.storage.files import write_atomic

FILE = "klog-broker-config.json"
VERSION = 1

# DescribeConfigs ConfigSource ids (Kafka's DescribeConfigsResponse.ConfigSource)
DYNAMIC_TOPIC_CONFIG = 1
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

PER_BROKER, CLUSTER_DEFAULT = "broker", "default"


class ReadOnlyConfigError(ConfigError):
    """A broker config that Kafka cannot change on a running broker (not dynamic)."""


@dataclass(frozen=True)
class ConfigEntry:
    """One described config: its effective value, source, and synonyms [(name, value, source)]
    most specific first."""
    name: str
    value: object
    source: int
    read_only: bool
    synonyms: tuple
    setting: object

    @property
    def is_default(self):
        return self.source == DEFAULT_CONFIG


def config_string(v):
    """A config value as Kafka writes it: true/false, comma-joined lists, None stays None."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


class DynamicBrokerConfig:
    """The dynamic layers over a static broker config; thread-safety is the Broker's lock."""

    def __init__(self, data_dir, static):
        self.path = os.path.join(data_dir, FILE)
        self.static = dict(static.given if isinstance(static, BrokerConfig) else static or {})
        self.layers = {PER_BROKER: {}, CLUSTER_DEFAULT: {}}
        self._load()

    def _load(self):
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            return
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptLogError(f"{self.path}: dynamic broker configs are not valid JSON ({exc})") from None
        try:
            if doc["version"] != VERSION:
                raise CorruptLogError(f"{self.path}: version {doc['version']}, this klog reads {VERSION}")
            layers = {scope: {str(k): str(v) for k, v in doc[scope].items()}
                      for scope in (PER_BROKER, CLUSTER_DEFAULT)}
            self._effective(layers)   # validates every stored value
        except (KeyError, TypeError, AttributeError, ConfigError) as exc:
            raise CorruptLogError(f"{self.path}: malformed dynamic broker configs ({exc})") from None
        self.layers = layers

    def _effective(self, layers):
        merged = dict(self.static)
        merged.update(layers[CLUSTER_DEFAULT])
        merged.update(layers[PER_BROKER])
        return BrokerConfig.from_dict(merged)

    def effective(self):
        """The BrokerConfig the broker runs with: static, then defaults, then per-broker."""
        return self._effective(self.layers)

    def alter(self, scope, changes, validate_only=False):
        """Apply ``changes`` ({name: str value, or None to remove}) to the ``scope`` layer;
        returns the new effective BrokerConfig. Persists it unless ``validate_only``.
        ConfigError (ReadOnlyConfigError for non-dynamic names) and nothing changes."""
        known = list(BROKER_SETTINGS) + list(BROKER_TO_TOPIC)
        unknown = [k for k in changes if k not in known]
        if unknown:
            raise unknown_config(unknown[0], known, "broker config")
        read_only = sorted(k for k in changes if k not in DYNAMIC_BROKER_CONFIGS)
        if read_only:   # Kafka's wording (DynamicBrokerConfig.validate)
            raise ReadOnlyConfigError(
                f"Cannot update these configs dynamically: {', '.join(read_only)}")
        layers = {s: dict(layer) for s, layer in self.layers.items()}
        for k, v in changes.items():
            if v is None:
                layers[scope].pop(k, None)
            else:
                layers[scope][k] = config_string(v)
        config = self._effective(layers)
        if not validate_only:
            doc = {"version": VERSION, **{s: dict(sorted(layer.items())) for s, layer in layers.items()}}
            write_atomic(self.path, json.dumps(doc, indent=1).encode("utf-8"))
            self.layers = layers
        return config

    def layer_values(self, scope):
        return dict(self.layers[scope])

    # -- describing --------------------------------------------------------------------------------
    def _sources(self):
        return ((DYNAMIC_BROKER_CONFIG, self.layers[PER_BROKER]),
                (DYNAMIC_DEFAULT_BROKER_CONFIG, self.layers[CLUSTER_DEFAULT]),
                (STATIC_BROKER_CONFIG, self.static))

    def _broker_synonyms(self, names, topic_key=None):
        out = []
        for name in names:
            for source, layer in self._sources():
                if name in layer:
                    out.append((name, layer[name], source))
        if topic_key is not None:
            default_name = DEFAULT_SYNONYM.get(topic_key)
            if default_name in names:
                default = BROKER_SETTINGS[default_name].default if default_name in BROKER_SETTINGS \
                    else SETTINGS[topic_key].default
                out.append((default_name, default, DEFAULT_CONFIG))
        else:
            default = BROKER_SETTINGS[names[0]].default
            if default is not None:
                out.append((names[0], default, DEFAULT_CONFIG))
        return out

    def describe_topic(self, effective, overrides):
        """[ConfigEntry] of every topic config: ``effective`` (Kafka name -> value) as the topic
        runs with it, ``overrides`` the topic's own settings."""
        out = []
        for key, value in effective.items():
            synonyms = []
            if key in overrides:
                synonyms.append((key, overrides[key], DYNAMIC_TOPIC_CONFIG))
            synonyms += self._broker_synonyms(TOPIC_SYNONYMS.get(key, []), key)
            source = synonyms[0][2] if synonyms else DEFAULT_CONFIG
            out.append(ConfigEntry(key, value, source, False, tuple(synonyms), SETTINGS[key]))
        return out

    def describe_broker(self, config):
        """[ConfigEntry] of every broker config of the running ``config``."""
        out = []
        for name in list(BROKER_SETTINGS) + list(BROKER_TO_TOPIC):
            topic_key = BROKER_TO_TOPIC.get(name)
            if topic_key is None and name in ("log.retention.minutes", "log.retention.hours"):
                topic_key = "retention.ms"
            if topic_key is not None:
                group = TOPIC_SYNONYMS[topic_key]
                names = group[group.index(name):]
            else:
                names = [name]
            synonyms = self._broker_synonyms(names, topic_key)
            source = synonyms[0][2] if synonyms else DEFAULT_CONFIG
            out.append(ConfigEntry(name, config.value(name), source,
                                   name not in DYNAMIC_BROKER_CONFIGS, tuple(synonyms),
                                   config.setting(name)))
        return out
