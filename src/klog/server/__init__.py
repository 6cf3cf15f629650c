"""The Kafka wire-protocol server: ``klog serve`` (see klog.server.server)."""
from klog.server.server import Server, ServerThread, run

__all__ = ["Server", "ServerThread", "run"]
