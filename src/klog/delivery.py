"""Standard output for ``klog consume``: writes records and tells which ones the reader took,
so that a consumer group commits only what was delivered (``klog consume -g g | head -3``
must leave the group at record 4, not ~1500 records later).

"Taken" means: for a terminal or a file, written (after a flush); for a pipe, read by the
process at the other end. A pipe holds up to 64 KiB the reader may never read (head exits
after its lines), so when delivery is tracked on a pipe a record is written only once the
previous one has left the pipe (FIONREAD == 0): at most one record is in flight, and when the
reader goes away that one is known not to have been taken. The cost is one wake-up of the
reader per record; it is paid only on a pipe with tracking on (a consumer group).
"""
import contextlib
import errno
import fcntl
import os
import select
import signal
import stat
import struct
import termios
import threading
import time

_FLUSH_BYTES = 1 << 16


class Stdout:
    """``write(data, token)`` then ``flush()`` now and then; ``on_taken(token)`` is called, in
    order, for every record the reader has taken. Not thread-safe (the consume loop owns it)."""

    def __init__(self, fd, on_taken, track_pipe):
        self.fd = fd
        self._on_taken = on_taken
        self.paced = track_pipe and stat.S_ISFIFO(os.fstat(fd).st_mode)
        self._buf = []
        self._size = 0
        self._tokens = []
        self._in_flight = None
        self._ctrl_c = _CtrlC()
        self.abandoned = False
        if self.paced:
            self._poll = select.poll()
            self._poll.register(fd, select.POLLOUT)   # POLLERR: the read end is closed

    def write(self, data, token):
        if self.paced:
            self._wait_taken()
            with self._ctrl_c.held():
                _write_all(self.fd, data)
                self._in_flight = token
            return
        self._buf.append(data)
        self._tokens.append(token)
        self._size += len(data)
        if self._size >= _FLUSH_BYTES:
            self.flush()

    def flush(self):
        """Write what is buffered; on a pipe, note (without waiting) whether the record in
        flight has been read."""
        if self.abandoned:
            return
        if self._buf:
            with self._ctrl_c.held():
                _write_all(self.fd, b"".join(self._buf))
                tokens = self._tokens
                self._buf, self._tokens, self._size = [], [], 0
                for t in tokens:
                    self._on_taken(t)
        if self._in_flight is not None and self._unread() == 0:
            self._taken()

    def abandon(self):
        """The reader went away or Ctrl-C came: nothing more is written or counted as taken
        (the group's last commit, on close, must not count a record still in the pipe; and
        stdout may be /dev/null by then)."""
        self.abandoned = True

    def finish(self):
        """A normal end: what is still in the pipe stays there for the reader."""
        self.flush()
        if self._in_flight is not None:
            self._taken()

    def _taken(self):
        # Report first, forget second: a Ctrl-C between the two leaves a record reported twice
        # (harmless), never one read and not reported.
        self._on_taken(self._in_flight)
        self._in_flight = None

    def _unread(self):
        return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]

    def _wait_taken(self):
        if self._in_flight is None:
            return
        delay = 20e-6
        while self._unread():
            for _, events in self._poll.poll(0):
                if events & (select.POLLERR | select.POLLHUP):
                    raise BrokenPipeError(errno.EPIPE, "the reader closed the pipe")
            time.sleep(delay)
            delay = min(delay * 2, 0.005)
        self._taken()


class _CtrlC:
    """A SIGINT handler that raises KeyboardInterrupt except inside ``held()``, where it waits
    for the end of the block: a KeyboardInterrupt raised as write() returns would lose the fact
    that the bytes went out. (Blocking the signal is not enough: another thread takes it.)"""

    def __init__(self):
        self.depth = 0
        self.pending = False
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.depth:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending:
                self.pending = False
                raise KeyboardInterrupt


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
