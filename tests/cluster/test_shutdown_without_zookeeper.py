"""A broker told to stop while ZooKeeper does not answer still stops: the controlled shutdown
fails (logged), and the broker closes anyway, within a bound. Seen once before the fix: the
controller, SIGTERMed as ZooKeeper went away, logged ConnectionLoss and ran on for minutes."""
import signal
import time

from .brokers import create_topic


def test_sigterm_with_zookeeper_paused_still_exits(make_cluster, zookeeper):
    # Short retries, so the bound (attempts x (request timeout + backoff) + handover wait) is
    # what the test waits out, not Kafka's 3 x 5 s backoffs.
    c = make_cluster(["min.insync.replicas=2", "controlled.shutdown.max.retries=1",
                      "controlled.shutdown.retry.backoff.ms=100"])
    create_topic(c, "t", partitions=3, rf=3)
    controller = c.metadata(1)["controller_id"]
    assert controller in c.procs
    zookeeper.pause()
    try:
        started = time.monotonic()
        proc = c.procs.pop(controller)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(120)
        finally:
            proc.kill()         # never left running past the test
        took = time.monotonic() - started
    finally:
        zookeeper.resume()
    assert code == 0, c.log_output()
    assert took < 110
    out = (c.tmp / f"b{controller}.out").read_text()
    assert "stopping anyway" in out, out[-3000:]
