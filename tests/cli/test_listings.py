"""Listings on a terminal never cut a name ('orders.p…'), whatever its width, and every listing
has a JSON form that parses."""
import fcntl
import json
import os
import pty
import struct
import subprocess
import termios

import pytest

import klog

from .conftest import cli_env, copy_dir, klog_cmd, ok, run, seed, small_offsets_topic

TOPIC = "orders.payments.eu-west-1.settlements.v2"
GROUP = "billing-service.settlement-reconciler.eu-west-1"

LISTINGS = {
    "topic-list": ["topic", "list"],
    "topic-describe": ["topic", "describe", TOPIC],
    "group-list": ["group", "list"],
    "group-describe": ["group", "describe", GROUP],
}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    d = tmp_path_factory.mktemp("listings") / "data"
    seed(d, TOPIC, [b"a", b"b", b"c"], partitions=2, partition=[0, 1, 1],
         config={"retention.ms": 86_400_000, "min.compaction.lag.ms": 1000})
    small_offsets_topic(d)
    with klog.open(d) as broker:
        broker.group_coordinator.commit_offsets(GROUP, "", -1, {klog.TopicPartition(TOPIC, 1): 1})
    return d


def on_terminal(args, data_dir, columns):
    """Run the CLI with a pseudo-terminal of ``columns`` columns as stdout; its output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(klog_cmd(*args, data_dir=data_dir), stdout=slave, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=cli_env({"COLUMNS": str(columns)}))
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:       # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        err = proc.stderr.read().decode()
        assert proc.wait(60) == 0 and err == "", err
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.parametrize("columns", [40, 80])
@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_names_are_never_cut(seeded, tmp_path, listing, columns):
    text = on_terminal(LISTINGS[listing], copy_dir(seeded, tmp_path / "d"), columns)
    assert "…" not in text
    if listing.startswith("group"):
        assert GROUP in text
    if listing != "group-list":
        assert TOPIC in text
    if listing == "topic-describe":
        assert "min.compaction.lag.ms" in text


@pytest.mark.parametrize("listing", sorted(LISTINGS) + ["reset-offsets"])
def test_json(seeded, tmp_path, listing):
    d = copy_dir(seeded, tmp_path / "d")
    args = LISTINGS.get(listing) or ["group", "reset-offsets", GROUP, "--topic", TOPIC, "--to-earliest"]
    doc = json.loads(ok(run(*args, "--format", "json", data_dir=d)))
    if listing == "topic-list":
        assert doc == [{"topic": TOPIC, "partitions": 2, "records": 3, "size_bytes": doc[0]["size_bytes"]}]
        assert doc[0]["size_bytes"] > 0
    elif listing == "topic-describe":
        assert doc["topic"] == TOPIC and doc["config"] == {"retention.ms": 86_400_000,
                                                          "min.compaction.lag.ms": 1000}
        assert [(p["partition"], p["log_start_offset"], p["log_end_offset"]) for p in doc["partitions"]] \
            == [(0, 0, 1), (1, 0, 2)]
    elif listing == "group-list":
        assert [g["group"] for g in doc] == [GROUP]
    elif listing == "group-describe":
        assert doc["group"] == GROUP and doc["total_lag"] == 1
        assert [(p["topic"], p["partition"], p["current_offset"], p["lag"]) for p in doc["partitions"]] \
            == [(TOPIC, 1, 1, 1)]
    else:
        assert doc == [{"topic": TOPIC, "partition": 0, "new_offset": 0},
                       {"topic": TOPIC, "partition": 1, "new_offset": 0}]
