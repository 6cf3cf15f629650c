"""The ``compacted`` fixture: open compacted logs that are closed after the test."""
import pytest

from klog import Log

from .helpers import COMPACT


@pytest.fixture
def compacted(tmp_path):
    logs = []

    def make(config=None, name="log"):
        cfg = dict(COMPACT)
        cfg.update(config or {})
        log = Log.open(tmp_path / name, cfg)
        logs.append(log)
        return log

    yield make
    for log in logs:
        if not log.closed:
            log.close()
