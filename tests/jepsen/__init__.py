"""A Jepsen-style fault harness for klog: network namespaces and iptables faults (netns), a
delaying TCP proxy (delayproxy), process faults (procs), a Kafka-client workload that records a
history (workload, history) and a checker of Jepsen's Kafka properties (checker, replicas).

Run ``python -m jepsen.workload`` with ``tests/`` on the path; the soak runner is
``bench/fault_soak.py``.
"""
