"""A Jepsen-style fault harness for klog: network namespaces and iptables faults (netns), a
delaying TCP proxy (delayproxy), process faults (procs), a Kafka-client workload that records a
history (workload, history) and a checker of Jepsen's Kafka properties (checker, replicas); a
three-broker cluster with ZooKeeper (cluster) and a nemesis that aims at its roles
(cluster_nemesis).

Run ``python -m jepsen.workload`` with ``tests/`` on the path; the soak runners are
``bench/fault_soak.py`` (one node) and ``bench/cluster_soak.py`` (three brokers).
"""
