# The klog.testing pytest plugin's fixtures (klog_broker, klog_server, klog_wire, klog_client).
from klog.testing import klog_broker, klog_client, klog_server, klog_wire  # noqa: F401
