"""ConditionLog: one log line per recurring condition, not one per request.

A full disk, a failing device or a process out of file handles fails every request that touches
it, many times a second. Logging each (with a traceback) buries the one line an operator needs
and can fill the very disk that is full. A condition (a key such as ``("produce", ENOSPC)``) is
logged at most once per ``interval`` seconds; the next line it gets says how many were left out
meanwhile. Thread-safe: handlers run on the event loop and in executor threads.
"""
import threading
import time


class ConditionLog:
    def __init__(self, logger, interval=10.0, clock=time.monotonic):
        self._logger = logger
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last = {}          # key -> (monotonic time of the last line, suppressed since)

    def report(self, key, level, msg, *args):
        """Log ``msg % args`` at ``level`` unless ``key`` was logged less than ``interval``
        seconds ago (then only count it). Returns whether a line was written."""
        now = self._clock()
        with self._lock:
            last, suppressed = self._last.get(key, (None, 0))
            if last is not None and now - last < self.interval:
                self._last[key] = (last, suppressed + 1)
                return False
            self._last[key] = (now, 0)
        if suppressed:
            msg += " (%d more like this in the last %.0f s)"
            args = (*args, suppressed, now - last)
        self._logger.log(level, msg, *args)
        return True
