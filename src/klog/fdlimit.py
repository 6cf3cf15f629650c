"""The process's open-file limit, and the partition budget it allows.

A partition holds ``FDS_PER_PARTITION`` file descriptors while its log is open: the active
segment's .log, .index and .timeindex, and its directory's .lock (sealed segments are read-only
mappings and keep none, see klog._native.mmapfile). Creating more partitions than the limit
allows used to fail half way with EMFILE, and every restart after it too; so the broker refuses
creations past a budget (``max.partitions``), by default what the limit allows after a reserve
for sockets and short-lived files. Redpanda does the same (``topic_fds_per_partition``, 5).

The soft limit is raised to the hard limit once per process (the soft default of 1024 is a
relic of select(); raising it is what servers such as Kafka's start scripts ask of operators).
"""
import logging
import resource
import threading

FDS_PER_PARTITION = 4
RESERVED_FDS = 256      # sockets, checkpoint temp files, directory fsyncs, the interpreter's own

_logger = logging.getLogger("klog.fdlimit")
_once = threading.Lock()
_raised = False


def raise_open_file_limit():
    """Raise the soft RLIMIT_NOFILE to the hard limit, once per process. Returns the soft limit
    in effect afterwards."""
    global _raised
    with _once:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if not _raised:
            _raised = True
            if hard == resource.RLIM_INFINITY or soft != resource.RLIM_INFINITY and soft < hard:
                target = hard if hard != resource.RLIM_INFINITY else _nr_open(soft)
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                    _logger.debug("open-file limit raised from %d to %d", soft, target)
                    soft = target
                except (ValueError, OSError) as exc:
                    _logger.debug("open-file limit stays %d (raising to %d failed: %s)",
                                  soft, target, exc)
        return soft


def _nr_open(default):
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def default_max_partitions():
    """The partition budget the current open-file limit allows (at least 1)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        soft = _nr_open(1 << 20)
    return max(1, (soft - min(RESERVED_FDS, soft // 4)) // FDS_PER_PARTITION)
