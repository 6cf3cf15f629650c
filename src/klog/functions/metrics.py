"""Per-binding counters, read by a prometheus-client collector on ``--metrics-port``.

Counts are plain integers updated by the binding's threads once per chunk of records (a
Prometheus counter per record would cost more than the function); the processing-time
histogram is per record, averaged over a chunk. Exposed names (label ``binding``):
``klog_binding_records_in_total``, ``klog_binding_records_out_total``,
``klog_binding_failures_total``, ``klog_binding_retries_total``,
``klog_binding_dead_lettered_total``, ``klog_binding_skipped_total``,
``klog_binding_processing_seconds`` (histogram), ``klog_binding_consumer_lag``.
"""
import bisect
import threading

BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
COUNTERS = ("records_in", "records_out", "failures", "retries", "dead_lettered", "skipped")


class BindingStats:
    def __init__(self, binding):
        self.binding = binding
        self.lock = threading.Lock()
        for name in COUNTERS:
            setattr(self, name, 0)
        self.lag = 0
        self.lag_fn = None   # set by an input binding: computes the lag when asked
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.time_sum = 0.0

    def chunk(self, n_in, n_out, seconds):
        with self.lock:
            self.records_in += n_in
            self.records_out += n_out
            if n_in:
                self.buckets[bisect.bisect_left(BUCKETS, seconds / n_in)] += n_in
                self.time_sum += seconds

    def add(self, name, n=1):
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def snapshot(self):
        if self.lag_fn is not None:
            try:
                self.lag = self.lag_fn()
            except Exception:  # the broker is away: report the last value
                pass
        with self.lock:
            d = {name: getattr(self, name) for name in COUNTERS}
            d["lag"] = self.lag
            d["processed_seconds"] = self.time_sum
            return d


class StatsCollector:
    """A prometheus-client collector over a Running app's BindingStats."""

    def __init__(self, stats_list, app_name):
        self.stats_list = stats_list
        self.app_name = app_name

    def collect(self):
        from prometheus_client.core import (
            CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
        )
        labels = ["app", "binding"]
        fams = {name: CounterMetricFamily(f"klog_binding_{name}", f"{name.replace('_', ' ')} "
                                          "per binding", labels=labels) for name in COUNTERS}
        lag = GaugeMetricFamily("klog_binding_consumer_lag", "records behind the end of the "
                                "input topic", labels=labels)
        hist = HistogramMetricFamily("klog_binding_processing_seconds", "time in the function "
                                     "per record", labels=labels)
        for st in self.stats_list:
            snap = st.snapshot()
            lv = [self.app_name, st.binding]
            for name in COUNTERS:
                fams[name].add_metric(lv, snap[name])
            lag.add_metric(lv, snap["lag"])
            with st.lock:
                acc, buckets = 0, []
                for bound, n in zip(BUCKETS + (float("inf"),), st.buckets):
                    acc += n
                    buckets.append((str(bound) if bound != float("inf") else "+Inf", acc))
                hist.add_metric(lv, buckets, st.time_sum)
        yield from fams.values()
        yield lag
        yield hist


def serve(stats_list, app_name, port, addr="0.0.0.0"):
    """Start a Prometheus endpoint; returns (server, thread, registry)."""
    from prometheus_client import CollectorRegistry, start_http_server
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats_list, app_name))
    result = start_http_server(port, addr=addr, registry=registry)
    return result, registry
