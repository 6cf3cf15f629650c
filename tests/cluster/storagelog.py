"""``StorageLog``: the real storage adapter (klog.cluster.replica_log over klog.partition.Partition)
with the face of tests/cluster/memlog.py's MemoryLog, so the replication model's scenarios and
random schedules run against the storage layer. Each value becomes one single-record batch, so
offsets are indexes as in the model; ``entries`` decodes (epoch, value) back from the stored
batches (the epoch as stamped in each batch header)."""
from __future__ import annotations

import shutil
import tempfile

from klog._native.batch import build_batch, decode_records, read_header
from klog.cluster.replica_log import StorageReplicaLog, split_batches
from klog.partition import Partition

_open: list = []        # (log, directory) to close and remove after the test
BASE = [None]


def cleanup():
    while _open:
        log, path = _open.pop()
        log.close()
        shutil.rmtree(path, ignore_errors=True)


class StorageLog(StorageReplicaLog):
    def __init__(self):
        path = tempfile.mkdtemp(prefix="replica-", dir=BASE[0])
        part = Partition.open("t", 0, path, {})
        _open.append((part, path))
        super().__init__(part)

    def append_as_leader(self, values, epoch):
        # As MemoryLog: an append in a newer epoch starts it (the scenarios write logs directly).
        if not self.partition.is_leader or self.partition.leader_epoch != epoch:
            self.partition.become_leader(epoch, high_watermark=0, in_sync_replicas=())
        batches = [build_batch([str(v).encode()], None, None, None, 0, 0, None) for v in values]
        return super().append_as_leader(batches, epoch)

    @property
    def entries(self):
        out = []
        offset = self.log_start_offset
        while offset < self.log_end_offset:
            data = self.read(offset)
            for batch in split_batches(data):
                header = read_header(batch)
                for rec in decode_records(batch, -1, None):
                    out.append((header.leader_epoch, rec.value.decode()))
                offset = header.base_offset + header.last_offset_delta + 1
        return out

    @property
    def epochs(self):
        return self.partition.log.leader_epochs
