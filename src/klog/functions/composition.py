"""``definition`` (Spring's ``spring.cloud.function.definition``) and composed pipelines.

``"email|sms"`` composes in process: one input binding ``emailsms-in-0``, one output binding
``emailsms-out-0`` (Spring's rule: the names joined); ``"a;b"`` runs several pipelines side by
side. A supplier may only come first and a consumer only last. Through a composition each output
of a function (a value, a Message, several from a list or generator; None stops) flows into the
next; the key, headers and partition carry over unless a function returns a Message that sets
them.
"""
import types

from klog.functions.codec import InputType
from klog.functions.errors import DefinitionError
from klog.functions.message import Message, headers_dict
from klog.functions.registry import CONSUMER, SUPPLIER


def parse_definition(definition, registry):
    """The definition as a list of lists of FunctionDef. With no definition, the one declared
    function (Spring's rule); several or none is an error."""
    if definition is None or (isinstance(definition, str) and not definition.strip()):
        names = list(registry.functions)
        if len(names) == 1:
            definition = names[0]
        elif not names:
            raise DefinitionError("nothing to run: the app declares no functions "
                                  "(@app.function / @app.consumer / @app.supplier)")
        else:
            raise DefinitionError(f"the app declares several functions ({', '.join(names)}); "
                                  "say which to run with definition, e.g. "
                                  f"definition={'|'.join(names[:2])!r} or {';'.join(names)!r}")
    if not isinstance(definition, str):
        raise DefinitionError(f"definition must be a string like 'email|sms', not {definition!r}")
    out = []
    for part in definition.split(";"):
        names = [n.strip() for n in part.split("|")]
        if any(not n for n in names):
            raise DefinitionError(f"definition {definition!r} has an empty function name")
        chain = [registry.get(n) for n in names]
        for i, f in enumerate(chain):
            if f.kind == SUPPLIER and i > 0:
                raise DefinitionError(f"definition {part.strip()!r}: supplier {f.name!r} can only "
                                      "come first")
            if f.kind == CONSUMER and i < len(chain) - 1:
                raise DefinitionError(f"definition {part.strip()!r}: consumer {f.name!r} can only "
                                      "come last")
        out.append(chain)
    names = [f.name for chain in out for f in chain]
    if len(set("".join(f.name for f in c) for c in out)) != len(out):
        raise DefinitionError(f"definition {definition!r} lists a pipeline twice")
    if not names:
        raise DefinitionError(f"definition {definition!r} binds nothing")
    return out


class Stage:
    __slots__ = ("fdef", "fn", "input", "is_async")

    def __init__(self, fdef, content_type):
        self.fdef = fdef
        self.fn = fdef.fn
        self.is_async = fdef.is_async
        self.input = InputType(fdef.hint, content_type) if fdef.kind != SUPPLIER else None


class Pipeline:
    """One composed chain. ``run(record)`` -> a list of outputs ``(value, key, headers,
    partition, destination)``; headers are the input's raw pairs when no function set them
    (a dict otherwise). ``is_async``: some stage is ``async def`` (use ``run_async``)."""

    def __init__(self, chain, content_type):
        self.chain = chain
        self.name = "".join(f.name for f in chain)
        self.supplier = chain[0].kind == SUPPLIER
        self.sink = chain[-1].kind == CONSUMER
        self.in_binding = None if self.supplier else f"{self.name}-in-0"
        self.out_binding = None if self.sink else f"{self.name}-out-0"
        self.stages = [Stage(f, content_type) for f in chain]
        self.is_async = any(s.is_async for s in self.stages)
        # the common shape, a plain sync function over plain values, gets a short path
        first = self.stages[0]
        self.simple = (len(self.stages) == 1 and not self.is_async and not self.supplier
                        and not first.input.message)

    def run(self, rec):
        if self.simple:
            st = self.stages[0]
            r = st.fn(st.input.decode(rec.value))
            if r is None or self.sink:
                return ()
            if type(r) is dict or type(r) is bytes or type(r) is str:
                return ((r, rec.key, rec.headers, None, None),)
            out = []
            collect(r, rec.key, rec.headers, None, None, out)
            return out
        items = self._first_items(rec)
        for i, st in enumerate(self.stages):
            nxt = []
            for v, k, h, p, d in items:
                r = _call(st.fn, self._arg(st, i, v, k, h, p, d, rec))
                if st.fdef.kind != CONSUMER:
                    collect(r, k, h, p, d, nxt)
            items = nxt
            if not items:
                break
        return items

    async def run_async(self, rec):
        items = self._first_items(rec)
        for i, st in enumerate(self.stages):
            nxt = []
            for v, k, h, p, d in items:
                arg = self._arg(st, i, v, k, h, p, d, rec)
                r = _call(st.fn, arg)
                if st.is_async:
                    r = [x async for x in r] if hasattr(r, "__aiter__") else await r
                if st.fdef.kind != CONSUMER:
                    collect(r, k, h, p, d, nxt)
            items = nxt
            if not items:
                break
        return items

    def supply(self):
        """Call the supplier and the rest of the chain (sync pipelines)."""
        return self.run(None)

    def _first_items(self, rec):
        if self.supplier:
            return [(None, None, None, None, None)]
        return [(self.stages[0].input.decode(rec.value), rec.key, rec.headers, None, None)]

    def _arg(self, st, i, v, k, h, p, d, rec):
        if st.input is None:  # the supplier itself
            return _NO_ARG
        if i:
            v = st.input.convert(v)
        if not st.input.message:
            return v
        return Message(v, k, h if isinstance(h, dict) else headers_dict(h), p, d,
                       getattr(rec, "timestamp", None), getattr(rec, "topic", None),
                       getattr(rec, "offset", None), getattr(rec, "partition", None))


_NO_ARG = object()


def _call(fn, arg):
    return fn() if arg is _NO_ARG else fn(arg)


def collect(r, k, h, p, d, out):
    if r is None:
        return
    if isinstance(r, Message):
        key = k if r.key is None else (None if r.key is Message.NO_KEY else r.key)
        if isinstance(key, str):
            key = key.encode()
        out.append((r.value, key, h if r.headers is None else r.headers,
                    p if r.partition is None else r.partition, r.destination or d))
    elif isinstance(r, (list, types.GeneratorType)):
        for x in r:
            collect(x, k, h, p, d, out)
    else:
        out.append((r, k, h, p, d))
