"""``klog cluster status`` against a real ZooKeeper and three ``klog serve`` processes: what it
shows of a healthy cluster, after one broker is SIGKILLed (under-replicated, leadership moved)
and after two of three are (offline partitions, exit status 3), from a broker (``-b``) and from
ZooKeeper (``--zookeeper``), with the JSON checked against raw Metadata."""
import json

from .brokers import QUIET, klog_cli, wait_for

EXIT_OFFLINE = 3


def status(c, *args, via=None):
    """(exit status, JSON document) of ``klog cluster status``; ``via`` a broker number (-b) or
    None for ZooKeeper."""
    where = ["--zookeeper", c.zk] if via is None else ["-b", "%s:%d" % c.address(via)]
    proc = klog_cli("cluster", "status", *where, "--internal", "--format", "json", *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, EXIT_OFFLINE), f"{proc.returncode}: {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def by_tp(doc):
    return {(p["topic"], p["partition"]): p for p in doc["partitions"]}


def create(c, name, partitions, rf):
    """Through the CLI (``topic create -r``), then until every partition has its full ISR."""
    proc = klog_cli("-b", c.bootstrap, "topic", "create", name, "-p", partitions, "-r", rf)
    assert proc.returncode == 0, proc.stderr
    wait_for(f"{name}: every partition led with a full ISR", lambda: all(
        len(p["isr_nodes"]) == rf and p["leader_id"] > 0
        for p in c.metadata(1, [name])["topics"][0]["partitions"]) and len(
        c.metadata(1, [name])["topics"][0]["partitions"]) == partitions, 60)


def produce(c, topic, n):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", **QUIET})
    acked = []
    for i in range(n):
        producer.produce(topic, f"v{i}".encode(), partition=i % 3,
                         on_delivery=lambda err, msg: acked.append(err))
    producer.flush(60)
    assert acked == [None] * n


def test_healthy_cluster_json_matches_metadata_from_brokers_and_zookeeper(cluster):
    c = cluster
    create(c, "orders", 3, 3)
    produce(c, "orders", 30)
    code, doc = status(c, via=2)
    assert code == 0
    md = c.metadata(1)
    assert doc["cluster_id"] == md["cluster_id"]
    assert doc["controller"]["id"] == md["controller_id"] > 0
    assert [(b["id"], b["host"], b["port"], b["alive"]) for b in doc["brokers"]] == \
        [(n, *c.address(n), True) for n in (1, 2, 3)]
    wire = {(t["name"], p["partition_index"]): p for t in md["topics"] for p in t["partitions"]}
    assert set(by_tp(doc)) == set(wire) >= {("orders", 0), ("orders", 1), ("orders", 2)}
    for tp, p in by_tp(doc).items():
        m = wire[tp]
        assert (p["leader"], p["leader_epoch"], p["replicas"], p["isr"], p["offline_replicas"]) \
            == (m["leader_id"], m["leader_epoch"], m["replica_nodes"], m["isr_nodes"],
                m["offline_replicas"]), tp
        assert not p["under_replicated"] and not p["offline"]
    # acks=all: every acknowledged record is below the high watermark, 10 per partition
    assert [by_tp(doc)[("orders", p)]["high_watermark"] for p in range(3)] == [10, 10, 10]
    assert doc["summary"] == {"brokers": 3, "topics": len({t for t, _ in wire}),
                              "partitions": len(wire), "under_replicated": 0,
                              "under_min_isr": 0, "offline": 0}
    assert by_tp(doc)[("orders", 0)]["min_isr"] == 2          # -c min.insync.replicas=2

    code, zk = status(c)
    assert code == 0
    assert zk["cluster_id"] == doc["cluster_id"] and zk["controller"]["id"] == doc["controller"]["id"]
    assert zk["controller"]["epoch"] >= 1
    assert all(isinstance(b["epoch"], int) and b["epoch"] > 0 for b in zk["brokers"])
    assert len({b["epoch"] for b in zk["brokers"]}) == 3           # one czxid each
    strip = lambda d: {tp: {k: v for k, v in p.items() if k != "high_watermark_error"}  # noqa
                       for tp, p in by_tp(d).items()}
    assert strip(zk) == strip(doc)          # high watermarks asked of the leaders included
    assert zk["summary"] == doc["summary"]

    table = klog_cli("cluster", "status", "-b", c.bootstrap)
    assert table.returncode == 0, table.stderr
    assert "3 broker(s) up; " in table.stdout
    assert "0 under-replicated, 0 under min ISR, 0 offline" in table.stdout


def test_sigkill_one_broker_its_partitions_under_replicated_and_led_elsewhere(cluster):
    c = cluster
    create(c, "orders", 3, 3)
    create(c, "pairs", 3, 2)
    produce(c, "orders", 30)
    dead = c.partition(1, "orders", 0)["leader_id"]
    c.kill(dead)
    alive = min(c.procs)

    def moved():
        code, doc = status(c, via=alive)
        parts = [p for p in doc["partitions"] if dead in p["replicas"]]
        # (a new leader's high watermark may trail for a moment: until its ISR fetched again)
        return (code, doc) if all(p["leader"] != dead and dead not in p["isr"]
                                  for p in parts) and all(
            by_tp(doc)[("orders", p)]["high_watermark"] == 10 for p in range(3)) else None

    code, doc = wait_for(f"leadership and ISR off broker {dead}", moved, 60)
    assert code == 0                            # nothing offline: every partition has a leader
    assert [(b["id"], b["alive"]) for b in doc["brokers"]] == \
        [(n, n != dead) for n in (1, 2, 3)]
    hosted = {tp for tp, p in by_tp(doc).items() if dead in p["replicas"]}
    assert {("orders", 0), ("orders", 1), ("orders", 2)} <= hosted
    assert ("pairs", 0) in by_tp(doc) and not {("pairs", p) for p in range(3)} <= hosted
    for tp, p in by_tp(doc).items():
        assert p["under_replicated"] == (tp in hosted), tp
        assert not p["offline"] and p["leader"] in c.procs, tp
        assert p["offline_replicas"] == ([dead] if tp in hosted else []), tp
    assert by_tp(doc)[("orders", 0)]["leader_epoch"] >= 1
    assert [by_tp(doc)[("orders", p)]["high_watermark"] for p in range(3)] == [10, 10, 10]
    assert doc["summary"]["under_replicated"] == len(hosted)
    assert doc["summary"]["offline"] == 0
    # rf 3 with two in sync meets min.insync.replicas=2; rf 2 with one does not
    assert {tp for tp, p in by_tp(doc).items() if p["under_min_isr"]} == \
        {tp for tp in hosted if tp[0] == "pairs"}
    code, only = status(c, "--under-min-isr", via=alive)
    assert set(by_tp(only)) == {tp for tp in hosted if tp[0] == "pairs"}

    code, only = status(c, "--under-replicated", via=alive)
    assert set(by_tp(only)) == hosted and only["summary"] == doc["summary"]
    code, zk = status(c, "--under-replicated")
    assert code == 0 and set(by_tp(zk)) == hosted
    assert all(p["isr"] == by_tp(doc)[tp]["isr"] and p["leader"] == by_tp(doc)[tp]["leader"]
               for tp, p in by_tp(zk).items())


def test_two_of_three_killed_offline_partitions_listed_and_exit_status_3(make_cluster):
    c = make_cluster(["min.insync.replicas=2"])
    create(c, "orders", 3, 3)
    create(c, "pairs", 3, 2)
    survivor = 3
    c.kill(1)
    # the survivor must be in every ISR it belongs to before the second death, or a clean
    # election could not pick it: wait for the controller's first round
    wait_for("broker 1 out of every ISR", lambda: all(
        1 not in p["isr"] for p in status(c, via=survivor)[1]["partitions"]), 60)
    c.kill(2)

    def settled():
        code, doc = status(c, via=survivor)
        return (code, doc) if all(p["leader"] == -1 or p["isr"] == [survivor]
                                  for p in doc["partitions"]) and \
            [b["id"] for b in doc["brokers"] if b["alive"]] == [survivor] else None

    code, doc = wait_for("the controller's decisions after the second death", settled, 60)
    lost = {tp for tp, p in by_tp(doc).items() if survivor not in p["replicas"]}
    assert len({tp for tp in lost if tp[0] == "pairs"}) == 1   # the pair without broker 3
    assert code == EXIT_OFFLINE
    for tp, p in by_tp(doc).items():
        assert p["offline"] == (tp in lost), tp
        assert p["leader"] == (-1 if tp in lost else survivor), tp
        if tp in lost:
            assert p["high_watermark"] is None and p["high_watermark_error"] == "no live leader"
        else:                       # led by the survivor, alone in the ISR (< min ISR 2)
            assert p["isr"] == [survivor] and p["under_replicated"] == (len(p["replicas"]) > 1)
            assert p["high_watermark"] == 0
        assert p["min_isr"] == 2 and p["under_min_isr"], tp    # acks=all refused everywhere
    assert doc["summary"]["offline"] == len(lost) >= 1
    assert doc["summary"]["under_min_isr"] == len(doc["partitions"])

    code, only = status(c, "--offline", via=survivor)
    assert code == EXIT_OFFLINE and set(by_tp(only)) == lost
    code, zk = status(c, "--offline")
    assert code == EXIT_OFFLINE and set(by_tp(zk)) == lost
    assert [(b["id"], b["alive"]) for b in zk["brokers"]] == [(1, False), (2, False), (3, True)]
    # --topic scopes the question (exit status and counts); --offline only what is listed
    assert klog_cli("cluster", "status", "-b", "%s:%d" % c.address(survivor),
                    "--topic", "orders").returncode == 0
    code, pairs = status(c, "--topic", "pairs", "--under-replicated", via=survivor)
    assert code == EXIT_OFFLINE and pairs["summary"]["offline"] == 1

    table = klog_cli("cluster", "status", "--zookeeper", c.zk, "--offline")
    assert table.returncode == EXIT_OFFLINE, table.stderr
    assert f"{len(lost)} offline" in table.stdout
    assert all(line.split()[-1] == "offline" for line in table.stdout.splitlines()
               if line.startswith(" pairs ") or line.startswith(" orders "))


def test_a_chroot_with_no_cluster_says_so_and_where_clusters_are(zookeeper):
    """Exit 2 naming the chroot and the chroots that do hold a cluster; an empty cluster (no
    broker registered right now, no topic) is a status, not an error. Nothing is written."""
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=zookeeper.address)
    zk.start(30)
    try:
        zk.ensure_path("/empty-cluster/brokers/ids")
        zk.ensure_path("/empty-cluster/brokers/topics")
        before = sorted(zk.get_children("/"))
        proc = klog_cli("cluster", "status", "--zookeeper", f"{zookeeper.address}/nothing-here")
        assert proc.returncode == 2 and proc.stdout == "", proc
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
        assert f"ZooKeeper {zookeeper.address} holds no klog cluster under /nothing-here" \
            in proc.stderr and "/empty-cluster" in proc.stderr, proc.stderr
        assert sorted(zk.get_children("/")) == before            # read-only: no /nothing-here
        # (KLOG_BROKERS, the default of -b, gives way to an explicit --zookeeper)
        proc = klog_cli("cluster", "status", "--zookeeper", f"{zookeeper.address}/empty-cluster",
                        "--format", "json", env={"KLOG_BROKERS": "127.0.0.1:1"})
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert (doc["brokers"], doc["partitions"], doc["controller"], doc["cluster_id"]) == \
            ([], [], {"id": -1, "epoch": None}, None)
    finally:
        zk.delete("/empty-cluster", recursive=True)
        zk.stop()
        zk.close()
