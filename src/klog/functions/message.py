"""``Message``: a value with the key, headers and partition it travels with (Spring's
``Message<T>``). A function may take one (``def f(msg: Message[dict])``) to see the key and
headers, and may return one to set them; a plain return value keeps the input's key and headers.
"""
from dataclasses import dataclass, field
from typing import Any, Generic, Optional, TypeVar

T = TypeVar("T")


@dataclass
class Message(Generic[T]):
    """``value``: the payload (encoded by the output binding's content type unless bytes).
    ``key``: bytes / str / None (None on a returned Message: keep the input's key, unless
    ``key`` is given as ``Message.NO_KEY``). ``headers``: a dict of str -> bytes / str / None
    (None: keep the input's headers). ``partition``: send to this partition (default: the
    partitioner, from the key). ``destination``: send to this topic instead of the output
    binding's (Spring's ``spring.cloud.stream.sendto.destination``). Input messages also carry
    the record's ``topic``, ``received_partition``, ``offset`` and ``timestamp`` (``partition``
    stays None there: it only ever chooses where an output goes)."""
    value: T
    key: Any = None
    headers: Optional[dict] = None
    partition: Optional[int] = None
    destination: Optional[str] = None
    timestamp: Optional[int] = None
    topic: Optional[str] = field(default=None, compare=False)
    offset: Optional[int] = field(default=None, compare=False)
    received_partition: Optional[int] = field(default=None, compare=False)

    NO_KEY = b"\x00klog-no-key"   # sentinel: drop the input's key


def headers_dict(pairs):
    """Kafka's header pairs as a dict (the last of repeated names wins)."""
    return {k: v for k, v in pairs} if pairs else {}


def header_pairs(headers):
    """A headers dict (values bytes / str / None) as Kafka's list of (str, bytes | None)."""
    out = []
    for k, v in headers.items():
        if isinstance(v, str):
            v = v.encode()
        elif v is not None and not isinstance(v, (bytes, bytearray, memoryview)):
            v = str(v).encode()
        out.append((str(k), v))
    return out
