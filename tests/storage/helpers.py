"""Shared helpers for the storage tests: hypothesis settings, random batches and their expected
records, and a look at the files of a log directory."""
import os
import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import klog

SLOW = os.environ.get("KLOG_SLOW_TESTS") == "1"
CODECS = [None, "lz4", "gzip", "snappy", "zstd"]


def examples(fast, slow=None):
    """Hypothesis settings: ``fast`` examples by default, ``slow`` with KLOG_SLOW_TESTS=1."""
    return settings(
        max_examples=(slow or fast * 10) if SLOW else fast,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class Spec:
    """The arguments of one ``Log.append`` call; ``records(base)`` is what a reader must see."""

    def __init__(self, values, keys=None, timestamps=None, headers=None, compression=None):
        self.values = values
        self.keys = keys
        self.timestamps = timestamps
        self.headers = headers
        self.compression = compression

    def __len__(self):
        return len(self.values)

    def append_to(self, log):
        return log.append(self.values, keys=self.keys, timestamps=self.timestamps,
                          headers=self.headers, compression=self.compression)

    def encode(self, base_offset=0):
        return klog.encode_batch(self.values, keys=self.keys, timestamps=self.timestamps,
                                 headers=self.headers, base_offset=base_offset,
                                 compression=self.compression)

    def records(self, base):
        n = len(self.values)
        ts = self.timestamps
        stamps = [ts] * n if isinstance(ts, int) else list(ts)
        keys = self.keys or [None] * n
        headers = self.headers or [None] * n
        return [klog.Record(base + i, stamps[i], keys[i], self.values[i], tuple(headers[i] or ()))
                for i in range(n)]


def random_spec(rng, n=None, ts_range=(1_000, 1_050), max_value=120, codecs=CODECS):
    """A random batch: None values, optional keys and headers, per-record timestamps drawn from a
    narrow range (so equal and out-of-order timestamps are common), an optional codec."""
    n = n or rng.randint(1, 8)
    values = [None if rng.random() < 0.15 else rng.randbytes(rng.randint(0, max_value))
              for _ in range(n)]
    keys = None
    if rng.random() < 0.5:
        keys = [None if rng.random() < 0.3 else rng.randbytes(rng.randint(0, 8)) for _ in range(n)]
    headers = None
    if rng.random() < 0.3:
        headers = [None if rng.random() < 0.5 else [("h", rng.randbytes(3)), ("n", None)]
                   for _ in range(n)]
    timestamps = [rng.randint(*ts_range) for _ in range(n)]
    return Spec(values, keys, timestamps, headers, rng.choice(codecs))


@st.composite
def specs(draw, max_records=20, ts=st.integers(1_000, 1_040), codecs=CODECS):
    """The hypothesis version of ``random_spec``: sizes 1..max_records, values incl. None."""
    n = draw(st.integers(1, max_records))
    value = st.one_of(st.none(), st.binary(max_size=40),
                      st.integers(0, 400).map(lambda k: b"v" * k))
    values = draw(st.lists(value, min_size=n, max_size=n))
    keys = draw(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.binary(max_size=6)),
                                              min_size=n, max_size=n)))
    timestamps = draw(st.lists(ts, min_size=n, max_size=n))
    return Spec(values, keys, timestamps, None, draw(st.sampled_from(codecs)))


def fill(log, rng, batches, **kw):
    """Append ``batches`` random batches; returns the expected records."""
    out = []
    for _ in range(batches):
        spec = random_spec(rng, **kw)
        base = spec.append_to(log)
        out.extend(spec.records(base))
    return out


def segment_files(path):
    """{base offset: .log size} from the directory itself."""
    out = {}
    for name in os.listdir(path):
        if name.endswith(".log") and len(name) == 24:
            out[int(name[:20])] = os.path.getsize(os.path.join(path, name))
    return out


def batches_of(log, start=None):
    """[(base, last, size)] of every batch from ``start`` (default log start), walked with read()."""
    offset = log.log_start_offset if start is None else start
    out = []
    while offset < log.log_end_offset:
        view = log.read(offset, max_bytes=1)
        h = klog.read_header(view)
        assert h.size == view.nbytes
        out.append((h.base_offset, h.last_offset, h.size))
        offset = h.last_offset + 1
        view.release()
    return out


def rng_for(seed):
    return random.Random(seed)
