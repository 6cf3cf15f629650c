.PHONY: compile debug test bench clean

compile:
	python setup.py build_ext --inplace -j 2

debug:
	KLOG_DEBUG=1 python setup.py build_ext --inplace --force -j 2

test: compile
	PYTHONPATH=src python -m pytest

bench: compile
	PYTHONPATH=src python bench/storage_bench.py

clean:
	rm -rf build src/klog/_native/*.c src/klog/_native/*.so src/klog/_native/*.html
