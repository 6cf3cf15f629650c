"""Reading a topic from its start to its current end: restoring state kept in a (compacted)
topic, and checking what an app published. No consumer group; stops at the end offsets read
when it starts, so it always terminates."""
import time


def read_topic(client, topic, timeout=10.0):
    """Every record of ``topic`` from its start to its end offsets as read now, in partition
    then offset order."""
    consumer = client.consumer(None, {"auto.offset.reset": "earliest",
                                      "enable.auto.commit": False})
    try:
        tps = consumer.partitions_for(topic)
        ends = consumer.end_offsets(tps)   # before assigning: no fetch in flight yet
        consumer.assign(tps)
        consumer.seek_to_beginning(tps)
        want = {tuple(tp): n for tp, n in ends.items() if n > consumer.position(tp)}
        got = []
        deadline = time.monotonic() + timeout
        while want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read_topic({topic!r}): still waiting for {want}")
            for rec in consumer.poll(timeout_ms=100):
                if (rec.topic, rec.partition) in want:
                    got.append(rec)
            want = {tp: n for tp, n in want.items() if consumer.position(tp) < n}
        got.sort(key=lambda r: (r.partition, r.offset))
        return got
    finally:
        consumer.close()
