"""Helpers for the compaction tests: a compacted log config, the oracle (latest value per key), and
a way to "kill" a log in-process (drop its directory lock without any shutdown work)."""
import os

COMPACT = {"cleanup.policy": "compact", "segment.bytes": 1024, "delete.retention.ms": 1000}


def keyed_view(records):
    """Fold records in offset order: key -> latest value; a tombstone deletes its key."""
    view = {}
    for r in records:
        if r.value is None:
            view.pop(r.key, None)
        else:
            view[r.key] = r.value
    return view


def latest_offsets(records):
    """key -> offset of its latest record."""
    return {r.key: r.offset for r in records}


def kill(log):
    """Simulate the death of the process that owns ``log``: nothing is flushed, closed or marked
    clean; the page cache (what a SIGKILL keeps) is all the next open sees."""
    # A real kill also stops the log's background flushes (periodic, and after each roll); here
    # they must not outlive the "dead" log and write its checkpoint under the next owner. Once
    # _closed is set a flush refuses to start, and one in flight holds _flush_lock: wait it out.
    if log._flusher is not None:   # the periodic flush.ms task (klog.clock.Task)
        log._flusher.cancel()
    log._closed = True  # (and __del__ does nothing either)
    with log._flush_lock:
        pass
    log._release()


def temp_files(path):
    return sorted(n for n in os.listdir(path) if n.endswith((".cleaned", ".swap")))


def fill_keyed(log, n, keys=7, start_ts=1_000, value_size=20, tombstone_every=0, per_batch=1):
    """Append ``n`` keyed records (key i % keys), ``per_batch`` per batch; every
    ``tombstone_every``-th one is a tombstone. Returns the records a reader must see."""
    from klog import Record
    out = []
    i = 0
    while i < n:
        m = min(per_batch, n - i)
        ks = [b"k%03d" % ((i + j) % keys) for j in range(m)]
        vs = [None if tombstone_every and (i + j) % tombstone_every == tombstone_every - 1
              else (b"v%d-" % (i + j)).ljust(value_size, b".") for j in range(m)]
        ts = [start_ts + i + j for j in range(m)]
        base = log.append(vs, keys=ks, timestamps=ts)
        out.extend(Record(base + j, ts[j], ks[j], vs[j], ()) for j in range(m))
        i += m
    return out
