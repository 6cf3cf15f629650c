"""Declarative message schemas with generic encode/decode to plain dicts.

A schema is a tree of ``Field``s, each with a type from ``types.py`` (or a nested
``Struct``, or an ``Array`` of either), the versions it exists in, the versions in
which it may be null, and - for KIP-482 tagged fields - its tag.  This mirrors the
shape of Kafka's ``clients/src/main/resources/common/message/*.json`` so the facts
can be transcribed field by field.

Decoded messages are plain dicts keyed by snake_case field names (the names
kafka-python uses).  Only fields present in the decoded version appear.  Unknown
tagged fields are skipped, and kept as ``{"_unknown_tags": {tag: memoryview}}`` so
a proxy can forward them.  On encode, a missing key takes the field's default,
and a tagged field equal to its default is left out (as Kafka does).

Per (version, flexible) a ``Struct`` compiles into a ``CompiledStruct``: the list of
fields present in that version, their nullability, and the tag table, so the hot
loop does no version arithmetic.
"""
from __future__ import annotations

from .buffer import ReadBuffer, WriteBuffer
from .errors import InvalidTaggedFieldError, ProtocolError, UnsupportedVersionError
from .types import Array, FieldType

_MISSING = object()


def parse_versions(spec):
    """'3+' -> (3, None); '1-4' -> (1, 4); '5' -> (5, 5); 'none'/None -> None."""
    if spec is None or spec == "none":
        return None
    if isinstance(spec, tuple):
        return spec
    spec = str(spec)
    if spec.endswith("+"):
        return (int(spec[:-1]), None)
    if "-" in spec:
        lo, hi = spec.split("-")
        return (int(lo), int(hi))
    return (int(spec), int(spec))


def in_range(rng, v: int) -> bool:
    return rng is not None and rng[0] <= v and (rng[1] is None or v <= rng[1])


class Field:
    __slots__ = ("name", "type", "versions", "nullable", "tag", "tagged", "_default")

    def __init__(self, name: str, type: FieldType, versions="0+", nullable=None,
                 tag: int | None = None, tagged=None, default=_MISSING):
        self.name = name
        self.type = type
        self.versions = parse_versions(versions)
        self.nullable = parse_versions(nullable)
        self.tag = tag
        self.tagged = parse_versions(tagged) if tag is not None else None
        if tag is not None and self.tagged is None:
            self.tagged = self.versions
        if default == "null":
            default = None
        elif isinstance(default, str):
            default = _MISSING if isinstance(type, (Struct, Array)) else type.parse_default(default)
        self._default = default

    def default(self, version: int):
        d = self._default
        if d is _MISSING:
            if isinstance(self.type, Struct):
                return self.type.default_value(version)
            return self.type.default()
        return d

    def __repr__(self):
        return f"Field({self.name!r}, {self.type!r}, {self.versions})"


def F(name, type, versions="0+", nullable=None, tag=None, tagged=None, default=_MISSING):
    """Shorthand for ``Field``."""
    return Field(name, type, versions, nullable, tag, tagged, default)


class Struct(FieldType):
    """A group of fields; use ``Array(Struct(...))`` for a struct array."""

    def __init__(self, name: str, *fields: Field):
        self.name = name
        self.fields = fields
        self._compiled: dict = {}

    def default_value(self, version: int) -> dict:
        return {f.name: f.default(version) for f in self.fields if in_range(f.versions, version)}

    def compile(self, version: int, flexible: bool, path: str | None = None) -> "CompiledStruct":
        key = (version, flexible)
        c = self._compiled.get(key)
        if c is None:
            c = self._compiled[key] = CompiledStruct(self, version, flexible, path or self.name)
        return c

    def min_size(self, flexible):
        return 1 if flexible else 0


def _compile_type(t: FieldType, version, flexible, path):
    if isinstance(t, Struct):
        return t.compile(version, flexible, path)
    if isinstance(t, Array):
        inner = _compile_type(t.item, version, flexible, path)
        return t if inner is t.item else Array(inner)
    return t


class CompiledStruct(FieldType):
    """A ``Struct`` at one version: the fields to read in order, and the tag table."""

    def __init__(self, struct: Struct, version: int, flexible: bool, path: str):
        self.name = struct.name
        self.struct = struct
        self.version = version
        self.flexible = flexible
        self.plan = []          # (name, type, nullable, path, default-factory field)
        self.tags = {}          # tag -> (name, type, nullable, path, field)
        for f in struct.fields:
            if not in_range(f.versions, version):
                continue
            fpath = f"{path}.{f.name}"
            t = _compile_type(f.type, version, flexible, fpath)
            nullable = in_range(f.nullable, version)
            if flexible and f.tag is not None and in_range(f.tagged, version):
                self.tags[f.tag] = (f.name, t, nullable, fpath, f)
            else:
                self.plan.append((f.name, t, nullable, fpath, f))
        self.tag_order = sorted(self.tags)
        self._min = sum(t.min_size(flexible) for _, t, _, _, _ in self.plan) + (1 if flexible else 0)
        self.path = path

    def min_size(self, flexible):
        return self._min

    def default(self):
        return self.struct.default_value(self.version)

    # -- decode ---------------------------------------------------------------
    def read(self, r: ReadBuffer, flexible=None, nullable=False, field=None) -> dict:
        if nullable:
            # Nullable structs carry an int8 presence marker (-1 = null).
            if r.read_int8(self.path) < 0:
                return None
        flex = self.flexible
        out = {}
        for name, t, nl, fpath, _ in self.plan:
            out[name] = t.read(r, flex, nl, fpath)
        if flex:
            tags = self.tags
            for tag in self.tag_order:
                name, _, _, _, f = tags[tag]
                out[name] = f.default(self.version)
            unknown = None
            for tag, sub in r.read_tagged_fields(self.path):
                known = tags.get(tag)
                if known is None:
                    if unknown is None:
                        unknown = out["_unknown_tags"] = {}
                    unknown[tag] = sub.read_raw(sub.remaining)
                    continue
                name, t, nl, fpath, _ = known
                out[name] = t.read(sub, flex, nl, fpath)
                if sub.remaining:
                    raise InvalidTaggedFieldError(
                        f"tagged field {tag} declared {sub.remaining} bytes longer than its value",
                        fpath, sub.pos)
        return out

    # -- encode ---------------------------------------------------------------
    def write(self, w: WriteBuffer, d, flexible=None, nullable=False, field=None) -> None:
        if nullable:
            if d is None:
                w.write_int8(-1)
                return
            w.write_int8(1)
        if not isinstance(d, dict):
            raise ProtocolError(f"expected a dict, got {type(d).__name__}", self.path)
        flex = self.flexible
        ver = self.version
        for name, t, nl, fpath, f in self.plan:
            v = d.get(name, _MISSING)
            if v is _MISSING:
                v = f.default(ver)
            t.write(w, v, flex, nl, fpath)
        if flex:
            entries = []
            for tag in self.tag_order:
                name, t, nl, fpath, f = self.tags[tag]
                v = d.get(name, _MISSING)
                if v is _MISSING or v == f.default(ver):
                    continue
                sub = WriteBuffer()
                t.write(sub, v, flex, nl, fpath)
                entries.append((tag, sub))
            unknown = d.get("_unknown_tags")
            if unknown:
                for tag, raw in unknown.items():
                    if tag not in self.tags:
                        sub = WriteBuffer()
                        sub.write_bytes_ref(raw)
                        entries.append((tag, sub))
                entries.sort(key=lambda e: e[0])
            w.write_uvarint(len(entries))
            for tag, sub in entries:
                w.write_uvarint(tag)
                w.write_uvarint(len(sub))
                w.write_buffer(sub)


class Message(Struct):
    """A request or response body: a top-level struct plus its API facts.

    ``versions`` is the range klog implements (may be narrower than Kafka's);
    ``flexible`` is the first flexible version (None if never flexible).
    """

    def __init__(self, name: str, api_key: int, versions, flexible, *fields: Field):
        super().__init__(name, *fields)
        self.api_key = api_key
        self.versions = parse_versions(versions)
        self.flexible_from = flexible

    @property
    def min_version(self) -> int:
        return self.versions[0]

    @property
    def max_version(self) -> int:
        return self.versions[1]

    def is_flexible(self, version: int) -> bool:
        return self.flexible_from is not None and version >= self.flexible_from

    def supports(self, version: int) -> bool:
        return in_range(self.versions, version)

    def _compiled_for(self, version: int) -> CompiledStruct:
        if not self.supports(version):
            raise UnsupportedVersionError(
                f"{self.name} v{version} not supported (klog implements "
                f"v{self.min_version}-{self.max_version})", self.name)
        return self.compile(version, self.is_flexible(version))

    def decode(self, data, version: int) -> dict:
        """Decode a body from a bytes-like or a ``ReadBuffer`` (which is advanced)."""
        c = self._compiled_for(version)
        r = data if isinstance(data, ReadBuffer) else ReadBuffer(data)
        return c.read(r)

    def encode(self, body: dict, version: int, w: WriteBuffer | None = None) -> WriteBuffer:
        c = self._compiled_for(version)
        if w is None:
            w = WriteBuffer()
        c.write(w, body)
        return w
