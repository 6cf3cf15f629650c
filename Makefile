.PHONY: dev build-reqs compile debug test bench clean

PYTHON ?= python
PYTEST_ARGS ?=
# The build requirements of pyproject.toml, for builds in place (no build isolation there).
BUILD_REQS = "setuptools>=77.0.3" "Cython>=3.0.10,<3.4"

# A fresh virtualenv to a working tree: build requirements, klog editable with its test extra,
# extensions built in place. Then: edit a .pyx, `make test` (or `make compile` + pytest).
dev: build-reqs
	$(PYTHON) -m pip install --no-build-isolation -e ".[test]"
	$(MAKE) compile

# Installs Cython and setuptools into the current environment only when they are missing or old.
build-reqs:
	@$(PYTHON) -c 'import sys, Cython, setuptools; v = lambda m: tuple(int(x) for x in m.__version__.split(".")[:2]); sys.exit(not (v(Cython) >= (3, 0) and v(setuptools) >= (77, 0)))' 2>/dev/null \
		|| $(PYTHON) -m pip install $(BUILD_REQS)

compile: build-reqs
	$(PYTHON) setup.py build_ext --inplace -j 2

debug: build-reqs
	KLOG_DEBUG=1 $(PYTHON) setup.py build_ext --inplace --force -j 2

# make test PYTEST_ARGS="-x tests/native": rebuild what changed, then those tests
test: compile
	PYTHONPATH=src $(PYTHON) -m pytest $(PYTEST_ARGS)

bench: compile
	PYTHONPATH=src $(PYTHON) bench/storage_bench.py

clean:
	rm -rf build src/klog/_native/*.c src/klog/_native/*.so src/klog/_native/*.html
