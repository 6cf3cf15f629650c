"""Declares klog's native extensions; metadata lives in pyproject.toml.

KLOG_DEBUG=1 builds with Cython bounds checks, line tracing and C asserts on.
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("KLOG_DEBUG") == "1"
NATIVE = "src/klog/_native"
MODULES = ["crc32c", "batch", "mmapfile", "index", "scan", "partitioner", "accumulator"]

compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
# Release builds strip symbols and debug info from the shared objects (about a third of their
# size); KLOG_DEBUG=1 keeps them for gdb and perf.
link_args = [] if DEBUG else ["-s"]
macros = [("CYTHON_TRACE_NOGIL", "1")] if DEBUG else [("NDEBUG", None)]

extensions = [
    Extension(
        f"klog._native.{name}",
        [f"{NATIVE}/{name}.pyx"],
        include_dirs=[NATIVE],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=macros,
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        include_path=["src"],
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "linetrace": DEBUG,
            "embedsignature": True,
        },
    ),
)
