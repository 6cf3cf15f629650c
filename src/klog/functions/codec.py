"""Values in and out, by the function's type hints (Spring's message converters).

Input: a record's value (bytes) becomes what the function's first parameter is annotated with:
``bytes`` (as is), ``str`` (UTF-8), ``dict`` / ``list`` / no hint (JSON, or by the binding's
``content-type``: ``text/plain`` gives str, ``application/octet-stream`` bytes), a dataclass, a
pydantic model or a msgspec Struct (from JSON), or ``Message[T]`` (T as above, plus key and
headers). Output: bytes as is, str as UTF-8, anything else as JSON (dataclasses, pydantic and
msgspec models included) unless the content type says otherwise. Between composed functions
values pass as Python objects and are converted only when the next function asks for another
type. msgspec does the JSON when installed (several times faster than ``json``).
"""
import dataclasses
import json
import typing

from klog.functions.errors import ValueDecodeError
from klog.functions.message import Message

try:
    import msgspec
    _json_decode = msgspec.json.decode
    _json_encode = msgspec.json.encode
    _Struct = msgspec.Struct
except ImportError:  # pragma: no cover - msgspec is optional
    msgspec = None
    _Struct = None

    def _json_decode(b):
        return json.loads(b)

    def _json_encode(v):
        return json.dumps(v, separators=(",", ":")).encode()

try:
    import pydantic
    _BaseModel = pydantic.BaseModel
except ImportError:  # pragma: no cover - pydantic is optional
    _BaseModel = None

JSON = "application/json"
TEXT = "text/plain"
OCTETS = "application/octet-stream"
CONTENT_TYPES = (JSON, TEXT, OCTETS)
BYTES_LIKE = (bytes, bytearray, memoryview)


def _is_pydantic(t):
    return _BaseModel is not None and isinstance(t, type) and issubclass(t, _BaseModel)


def _is_struct(t):
    return _Struct is not None and isinstance(t, type) and issubclass(t, _Struct)


def _default(o):
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if _BaseModel is not None and isinstance(o, _BaseModel):
        return o.model_dump(mode="json")
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"cannot encode {type(o).__name__} as JSON")


if msgspec is not None:
    _encoder = msgspec.json.Encoder(enc_hook=_default)
    _json_encode = _encoder.encode


def json_encode(value):
    """JSON bytes of a plain value (dict / list / str / numbers)."""
    try:
        return _json_encode(value)
    except TypeError:
        return json.dumps(value, default=_default, separators=(",", ":")).encode()


def encode(value, content_type=JSON):
    """A function's output value as the bytes to send (None stays None: a tombstone)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str) and content_type != JSON:
        return value.encode()
    if content_type == TEXT:
        return str(value).encode()
    if _BaseModel is not None and isinstance(value, _BaseModel):
        return value.model_dump_json().encode()
    try:
        return _json_encode(value)
    except TypeError:
        return json.dumps(value, default=_default, separators=(",", ":")).encode()


class InputType:
    """How to turn a record value (or a previous function's output) into what a function takes.
    ``message``: the function takes a Message (of ``target``). ``raw_decode``: the decoder
    without the error wrapping (hot loops call it first and ``decode`` only to name a failure)."""
    __slots__ = ("target", "message", "decode", "convert", "raw_decode")

    def __init__(self, hint, content_type=JSON):
        self.message = False
        if hint is Message or typing.get_origin(hint) is Message:
            self.message = True
            args = typing.get_args(hint)
            hint = args[0] if args else None
        if hint is typing.Any or hint is object:
            hint = None
        self.target = hint
        self.decode = _decoder(hint, content_type)
        self.convert = _converter(hint)
        self.raw_decode = _raw_decoder(hint, content_type) or self.decode


def _raw_decoder(t, content_type):
    if msgspec is None:
        return None
    if t is None and content_type == JSON:
        return msgspec.json.Decoder().decode
    if t is bytes or (t is None and content_type == OCTETS):
        return _identity
    if t in (dict, list):
        return msgspec.json.Decoder(t).decode
    if _is_struct(t):
        return msgspec.json.Decoder(t).decode
    return None


def _decoder(t, content_type):
    """bytes -> t (raises ValueDecodeError naming the type)."""
    if t is None:
        if content_type == TEXT:
            t = str
        elif content_type == OCTETS:
            t = bytes
        else:
            return _wrap(_json_decode, "JSON")
    if t is bytes:
        return _identity
    if t is str:
        return _wrap(_utf8, "UTF-8 text")
    origin = typing.get_origin(t) or t
    if origin in (dict, list) or t in (int, float, bool):
        def dec(b, t=origin):
            v = _json_decode(b)
            if not isinstance(v, t):
                raise ValueDecodeError(f"expected a JSON {t.__name__}, got {type(v).__name__}")
            return v
        return _wrap(dec, f"JSON {origin.__name__}")
    if _is_struct(t):
        return _wrap(msgspec.json.Decoder(t).decode, t.__name__)
    if _is_pydantic(t):
        return _wrap(t.model_validate_json, t.__name__)
    if dataclasses.is_dataclass(t):
        def dec(b, t=t):
            v = _json_decode(b)
            if not isinstance(v, dict):
                raise ValueDecodeError(f"expected a JSON object, got {type(v).__name__}")
            return t(**v)
        return _wrap(dec, t.__name__)
    return _wrap(_json_decode, "JSON")


def _identity(b):
    return b


def _utf8(b):
    return bytes(b).decode("utf-8")


def _wrap(fn, what):
    def decode(b):
        if b is None:
            return None  # a tombstone stays None
        try:
            return fn(b)
        except ValueDecodeError as e:
            raise ValueDecodeError(f"value does not decode as {what}: {e}") from None
        except Exception as e:
            preview = bytes(b[:40])
            raise ValueDecodeError(f"value {preview!r}{'...' if len(b) > 40 else ''} does not "
                                   f"decode as {what}: {e}") from None
    return decode


def _converter(t):
    """A previous function's output -> t (objects pass through when they already fit)."""
    if t is None:
        return _identity
    if isinstance(t, type) and not typing.get_origin(t):
        dec = _decoder(t, JSON)

        def conv(v, t=t, dec=dec):
            if isinstance(v, t):
                return v
            if isinstance(v, BYTES_LIKE):
                return dec(v)
            if t is bytes:
                return encode(v)
            if t is str:
                return v if isinstance(v, str) else encode(v).decode()
            if isinstance(v, dict) and (dataclasses.is_dataclass(t) or _is_pydantic(t)):
                return t(**v)
            if _is_struct(t):
                return msgspec.convert(v, t)
            if t in (dict, list) and not isinstance(v, (dict, list)):
                return _json_decode(encode(v))
            return v
        return conv
    dec = _decoder(t, JSON)
    return lambda v: dec(v) if isinstance(v, BYTES_LIKE) else v
