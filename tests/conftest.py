"""Suite-wide guard: the tests must run against the compiled native core, never a fallback.

If an extension failed to build, or a stray ``.py`` shadows it, every test below would be testing
the wrong thing; fail the whole session at collection instead.
"""
import importlib
import importlib.machinery

NATIVE_MODULES = ("batch", "crc32c", "mmapfile", "index", "scan", "partitioner", "accumulator")


def _assert_native_loaded():
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name in NATIVE_MODULES:
        mod = importlib.import_module(f"klog._native.{name}")
        path = getattr(mod, "__file__", None) or ""
        assert path.endswith(suffixes), (
            f"klog._native.{name} was loaded from {path!r}, not a compiled extension "
            f"(expected one of {suffixes}); build it with "
            "`python setup.py build_ext --inplace` or install the package")
        assert isinstance(mod.__loader__, importlib.machinery.ExtensionFileLoader), (
            f"klog._native.{name} was not loaded by the extension loader: {mod.__loader__!r}")


_assert_native_loaded()
