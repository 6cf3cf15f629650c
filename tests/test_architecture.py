"""The Partition seam (DESIGN.md, "Seams"): nothing outside ``klog/storage/`` and
``klog/partition.py`` holds a storage ``Log``. Everything else reaches a partition through
``broker.partition(topic, p)`` and its high-watermark-bounded reads.

Checked on the source with ``ast``, so a new call site fails here before it ships:

1. no module outside the allowed ones imports ``Log`` (or the ``klog.storage.log`` module as a
   whole) or names ``Log``; ``klog/__init__.py`` re-exports it as the public standalone API;
2. nobody calls the storage accessors ``<broker>.log(topic, p)`` / ``<broker>.logs()`` or reads
   a Partition's ``.log`` / ``._log``, except the Broker's two accessors that exist for storage
   services and tests (listed below, by function).
"""
import ast
import pathlib

import klog

SRC = pathlib.Path(klog.__file__).parent
ALLOWED_MODULES = ("storage/", "partition.py")
REEXPORT = "__init__.py"   # ``klog.Log``: the documented standalone log
# (module, function): the Broker's storage accessors (Broker.log for tests and tools,
# Broker.logs for the log cleaner, which lives in storage/).
ALLOWED_FUNCTIONS = {("broker.py", "log"), ("broker.py", "logs")}


def modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(ALLOWED_MODULES) or rel == "partition.py":
            continue
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _receiver_name(node):
    """The last name of an attribute's receiver: ``ctx.broker.log`` -> ``broker``."""
    value = node.value
    if isinstance(value, ast.Attribute):
        return value.attr
    if isinstance(value, ast.Name):
        return value.id
    if isinstance(value, ast.Call):
        func = value.func
        return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return ""


def violations(rel, tree):
    found = []
    functions = {}   # node -> enclosing function name
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for n in ast.walk(fn):
                functions.setdefault(n, fn.name)

    def allowed(node):
        return (rel, functions.get(node)) in ALLOWED_FUNCTIONS

    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module == "klog.storage.log":
            names = [a.name for a in node.names]
            if "Log" in names and rel != REEXPORT:
                found.append(f"{where}: imports Log")
        elif isinstance(node, ast.ImportFrom) and node.module == "klog.storage" and \
                any(a.name == "log" for a in node.names):
            found.append(f"{where}: imports the klog.storage.log module")
        elif isinstance(node, ast.Import) and any(a.name == "klog.storage.log" for a in node.names):
            found.append(f"{where}: imports the klog.storage.log module")
        elif isinstance(node, ast.Name) and node.id == "Log" and rel != REEXPORT:
            found.append(f"{where}: names Log")
        elif isinstance(node, ast.Attribute) and node.attr in ("log", "logs", "_log") \
                and not allowed(node):
            receiver = _receiver_name(node)
            if node.attr == "_log" or "broker" in receiver.lower() or "partition" in receiver.lower() \
                    or receiver in ("part", "p"):
                found.append(f"{where}: {receiver}.{node.attr} reaches a storage Log")
    return found


def test_nothing_above_the_partition_holds_a_log():
    found = [v for rel, tree in modules() for v in violations(rel, tree)]
    assert not found, ("outside klog/storage/ and klog/partition.py, go through "
                       "broker.partition(topic, p):\n" + "\n".join(found))


def test_the_check_catches_each_kind_of_reach():
    """The checker itself: each way of reaching a Log is reported (so an empty result above
    means something)."""
    source = '''
from klog.storage.log import Log
import klog.storage.log
from klog.storage import log


def handler(ctx, broker, part):
    ctx.broker.log("t", 0).read(0)
    broker.logs()
    broker.partition("t", 0).log.flush()
    part._log.append([b"x"])
    return Log
'''
    found = violations("server/handlers.py", ast.parse(source))
    kinds = sorted(v.split(": ", 1)[1] for v in found)
    assert kinds == sorted([
        "imports Log", "imports the klog.storage.log module", "imports the klog.storage.log module",
        "broker.log reaches a storage Log", "broker.logs reaches a storage Log",
        "partition.log reaches a storage Log", "part._log reaches a storage Log", "names Log",
    ]), found


def test_loggers_are_not_logs():
    source = '''
import logging
log = logging.getLogger("x")


def f(self):
    self._logger.log(10, "fine")
    log.info("fine")
'''
    assert violations("server/conditions.py", ast.parse(source)) == []
