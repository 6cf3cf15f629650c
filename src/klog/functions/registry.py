"""The functions an application declares: plain callables plus what they are (function,
consumer, supplier), whether they are ``async def``, and how their input decodes."""
import inspect
import typing

from klog.functions.errors import DefinitionError

FUNCTION, CONSUMER, SUPPLIER = "function", "consumer", "supplier"


class FunctionDef:
    """One declared function. ``kind``: function (in -> out), consumer (in), supplier (out,
    called every ``fixed_delay`` ms). ``hint``: the first parameter's annotation (None: none)."""
    __slots__ = ("name", "fn", "kind", "is_async", "hint", "fixed_delay")

    def __init__(self, fn, kind, name=None, fixed_delay=None):
        if not callable(fn):
            raise TypeError(f"@app.{kind} needs a callable, not {fn!r}")
        self.fn = fn
        self.kind = kind
        self.name = name or fn.__name__
        if not self.name.isidentifier():
            raise DefinitionError(f"function name {self.name!r}: use letters, digits and _ "
                                  "(it becomes part of binding names)")
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self.fixed_delay = fixed_delay
        self.hint = None
        if kind != SUPPLIER:
            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            if not params:
                raise DefinitionError(f"{kind} {self.name!r} takes no argument; a {kind} takes "
                                      "the record's value (or a Message)")
            try:
                hints = typing.get_type_hints(fn)
            except Exception:  # unresolvable forward references: no conversion
                hints = {}
            self.hint = hints.get(params[0].name)

    def __repr__(self):
        return f"<{self.kind} {self.name}{' (async)' if self.is_async else ''}>"


class Registry:
    """Name -> FunctionDef, in declaration order."""

    def __init__(self):
        self.functions = {}

    def add(self, fn, kind, name=None, fixed_delay=None):
        fdef = FunctionDef(fn, kind, name, fixed_delay)
        if fdef.name in self.functions:
            raise DefinitionError(f"a function named {fdef.name!r} is already declared")
        self.functions[fdef.name] = fdef
        return fdef

    def get(self, name):
        try:
            return self.functions[name]
        except KeyError:
            import difflib
            known = ", ".join(self.functions) or "none"
            close = difflib.get_close_matches(name, self.functions, 1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DefinitionError(f"definition names unknown function {name!r} (declared: "
                                  f"{known}){hint}") from None
