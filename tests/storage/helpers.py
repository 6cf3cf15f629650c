"""Shared helpers for the storage tests: hypothesis profiles and a brute-force log model."""
import os

from hypothesis import HealthCheck, settings

SLOW = os.environ.get("KLOG_SLOW_TESTS") == "1"


def examples(fast, slow=None):
    """Hypothesis settings: ``fast`` examples by default, ``slow`` with KLOG_SLOW_TESTS=1."""
    return settings(
        max_examples=(slow or fast * 10) if SLOW else fast,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
