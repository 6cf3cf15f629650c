"""Random message bodies drawn from klog's own schemas (a seeded ``random.Random``).

Used to drive the kafka-python interop tests: the same dict is built into a
kafka-python object (requests) or encoded by klog (responses).
"""
import random
import uuid

from klog.protocol.schema import CompiledStruct
from klog.protocol.types import Array, BOOL, BYTES, FLOAT64, INT8, INT16, INT32, INT64, RECORDS, STRING, UINT16, UUID

_RANGES = {INT8: 7, INT16: 15, INT32: 31, INT64: 63}
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-._é€"


def sample_value(rnd: random.Random, t, nullable: bool):
    if nullable and rnd.random() < 0.2:
        return None
    if t in _RANGES:
        bits = _RANGES[t]
        return rnd.choice([0, -1, 1, rnd.randint(-(1 << bits), (1 << bits) - 1)])
    if t is UINT16:
        return rnd.randint(0, 0xFFFF)
    if t is FLOAT64:
        return rnd.choice([0.0, 1.5, -2.25, 1e300])
    if t is BOOL:
        return rnd.random() < 0.5
    if t is STRING:
        return "".join(rnd.choice(_ALPHABET) for _ in range(rnd.randint(0, 12)))
    if t is BYTES or t is RECORDS:
        n = rnd.choice([0, 3, 61, 5000])  # 5000 >= ZERO_COPY_MIN exercises referenced chunks
        return bytes(rnd.getrandbits(8) for _ in range(n))
    if t is UUID:
        return uuid.UUID(int=rnd.getrandbits(128))
    if isinstance(t, Array):
        return [sample_value(rnd, t.item, False) for _ in range(rnd.randint(0, 3))]
    if isinstance(t, CompiledStruct):
        return sample_struct(rnd, t)
    raise AssertionError(f"no sampler for {t!r}")


def sample_struct(rnd: random.Random, c: CompiledStruct) -> dict:
    out = {}
    for name, t, nullable, _path, _f in c.plan:
        out[name] = sample_value(rnd, t, nullable)
    for tag in c.tag_order:
        name, t, nullable, _path, f = c.tags[tag]
        # Half the time leave tagged fields at their default (then they are omitted).
        out[name] = sample_value(rnd, t, nullable) if rnd.random() < 0.5 else f.default(c.version)
    return out


def sample_body(rnd: random.Random, schema, version: int) -> dict:
    return sample_struct(rnd, schema.compile(version, schema.is_flexible(version)))
