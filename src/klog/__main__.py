"""``python -m klog`` runs the ``klog`` command line."""
from klog.cli import main

main()
