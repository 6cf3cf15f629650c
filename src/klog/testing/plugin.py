"""pytest11 entry point: the fixtures of klog.testing."""
from klog.testing import klog_broker, klog_client, klog_server, klog_wire  # noqa: F401
