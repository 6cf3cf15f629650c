"""The cluster-wide broker defaults (BROKER resource "") on a single node: the node's dynamic
default layer, below its own settings; DescribeConfigs of "" lists the defaults set (Kafka's
``currentDynamicDefaultConfigs``), not the whole config, as a cluster member answers."""
import socket

import pytest

from klog.protocol.errors import ErrorCode as EC
from klog.protocol.messages import ApiKey

from .rawclient import call

pytestmark = pytest.mark.timeout(120)
DYNAMIC_BROKER, DYNAMIC_DEFAULT = 2, 3


def _raw(server, api_key, version, body):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        return call(s, api_key, version, body)


def _set(server, name, key, value):
    r = _raw(server, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {"validate_only": False, "resources": [
        {"resource_type": 4, "resource_name": name, "configs": [
            {"name": key, "config_operation": 0, "value": value}]}]})
    return r["responses"][0]["error_code"]


def _describe(server, name):
    r = _raw(server, ApiKey.DESCRIBE_CONFIGS, 1, {"resources": [
        {"resource_type": 4, "resource_name": name, "configuration_keys": None}],
        "include_synonyms": True})["results"][0]
    assert r["error_code"] == 0, r
    return {e["name"]: e for e in r["configs"]}


def test_describe_default_resource_lists_the_defaults_set(server):
    server.broker.create_topic("t", 1)
    assert _describe(server, "") == {}
    assert _set(server, "", "log.retention.ms", "3600000") == 0
    assert _set(server, "0", "log.retention.ms", "60000") == 0     # its own setting wins
    assert server.broker.log("t", 0).config.retention_ms == 60000
    defaults = _describe(server, "")
    assert list(defaults) == ["log.retention.ms"]
    entry = defaults["log.retention.ms"]
    assert (entry["value"], entry["config_source"], entry["read_only"]) == \
        ("3600000", DYNAMIC_DEFAULT, False)
    assert all(s["source"] != DYNAMIC_BROKER for s in entry["synonyms"])
    mine = _describe(server, "0")
    assert (mine["log.retention.ms"]["value"], mine["log.retention.ms"]["config_source"]) == \
        ("60000", DYNAMIC_BROKER)
    assert len(mine) > 10                     # the broker's whole config
    assert _set(server, "", "num.partitions", "3") == EC.INVALID_REQUEST    # read-only
