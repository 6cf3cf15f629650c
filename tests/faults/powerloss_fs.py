"""A FUSE file system that forgets everything not made durable: power loss for the fault tests.

kill -9 loses nothing the kernel already has (the page cache survives the process), so a
``write_atomic`` that renames without fsyncing passes every kill -9 test. This file system, in
the spirit of Jepsen's LazyFS (written from scratch here), keeps the whole tree in memory in two
versions and can drop the volatile one on command.

The model (strictest POSIX: nothing persists without an fsync, as LazyFS does by default)

* A regular file has *volatile* content (what reads return now) and *durable* content (what an
  fsync or fdatasync of that file persisted). ``fsync`` and ``fdatasync`` are the same here: the
  whole current content and length become durable. Writes, truncations and fallocate change
  only the volatile content. A new file's durable content is empty.
* A directory has volatile entries (name -> inode) and durable entries: ``create``, ``mkdir``,
  ``rename``, ``unlink`` and ``rmdir`` change only the volatile entries of the directories
  involved; an fsync of the directory (``fsyncdir``: fsync on an O_DIRECTORY fd) makes all of
  its current entries durable. An fsync of a file does NOT make its name durable (ext4 often
  does; POSIX does not promise it), and a rename is durable in each directory separately.
* **Power loss** (``cut``): every file and directory reverts to its durable state at once; what
  is no longer reachable from the root through durable entries is gone. From that instant every
  operation fails with EIO (the machine is off: a process still running sees its writes and
  fsyncs fail, and nothing it does after the cut can persist) until the file system is mounted
  again (``python powerloss_fs.py`` remounts after each unmount: that is the reboot, which also
  drops the kernel's page, dentry and attribute caches of the mount).

What reaches the model when: FUSE runs without its writeback cache here, so every write(2) and
pwrite(2) is handed to this process before it returns (the kernel's page cache of the mount is
write-through); a store into a writable shared mapping would reach it only at writeback (msync,
munmap), and so counts as written then. klog maps its files read-only and writes with pwrite.
O_DIRECT and sync_file_range get no special treatment (not used by klog).

Not modelled: torn pages or sectors inside one write (a write is all or nothing), reordering of
writes within a file, metadata other than names and content (modes, times, xattrs are not
durable state), hard links and symlinks (not supported: ENOSYS), and a file system that
persists more than it must (ext4 data=ordered, auto_da_alloc). Optionally, ``cut prefix SEED``
persists, per file, a random prefix (possibly empty, possibly all) of the writes, truncations and
fallocates made since its last fsync, as a disk may have written some of them back on its own;
directory entries stay strict in that mode too.

Control: one command per line on stdin, one answer line on stdout (``ok ...`` or ``error ...``):

    cut [prefix SEED]   power loss now (see above); answers ``ok cut``
    cut-after N [prefix SEED]
                        power loss just before the (N+1)-th state change from now (a write,
                        truncate, fallocate, create, mkdir, unlink, rmdir, rename, fsync or
                        fsyncdir), which fails with EIO: a crash point inside a sequence
    trace [off]         record (start afresh) / stop recording the state changes, for stats
    sync                make everything durable, like sync(2)
    stats               ``ok {json}``: operation counts, whether the power is off, the trace
    exit                unmount and exit (also on EOF of stdin: the test process died)

and ``ready`` each time a mount is live (after FUSE's init). Run:
``python powerloss_fs.py MOUNTPOINT``; needs /dev/fuse, root, and libfuse3 (Debian: fuse3).
"""
import errno
import json
import os
import random
import stat
import subprocess
import sys
import threading
import time

import mfusepy

_lock = threading.RLock()
_print_lock = threading.Lock()


def say(line):
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Inode:
    __slots__ = ("ino", "is_dir", "data", "size", "dur_data", "dur_size", "pending", "entries",
                 "dur_entries", "mode", "mtime")

    def __init__(self, ino, is_dir, mode):
        self.ino = ino
        self.is_dir = is_dir
        self.mode = mode
        self.mtime = time.time_ns()
        if is_dir:
            self.entries, self.dur_entries = {}, {}
        else:
            # Bytes past len(data) up to size are zeros (fallocate reserves without storing).
            self.data, self.size = bytearray(), 0
            self.dur_data, self.dur_size = bytearray(), 0
            self.pending = []   # ("w", offset, bytes) / ("t", length) / ("a", end) since fsync


def _apply(data, size, op):
    """One volatile change replayed onto (data, size); returns the new size."""
    if op[0] == "w":
        _, off, buf = op
        if off > len(data):
            data.extend(bytes(off - len(data)))
        data[off:off + len(buf)] = buf
        return max(size, off + len(buf))
    if op[0] == "t":
        del data[op[1]:]
        return op[1]
    return max(size, op[1])    # "a": fallocate grows the length, the content reads as zeros


# What a power cut can interrupt: the operations that change state (counted by "cut-after").
CHANGES = frozenset({"mkdir", "rmdir", "create", "write", "truncate", "fallocate", "fsync",
                     "fsyncdir", "unlink", "rename"})


class PowerLossFS(mfusepy.Operations):
    use_ns = True

    def __init__(self):
        self._next_ino = 1
        self.root = self._new(True, stat.S_IFDIR | 0o755)
        self.root.dur_entries = {}
        self.handles = {}      # fh -> Inode (kept alive after unlink, as the kernel's open files)
        self._next_fh = 1
        self.off = False       # the power is off: everything fails with EIO until remounted
        self.mounted = False   # this mount got FUSE's init
        self.counts = {}
        self.cut_after = None  # cut the power before the next this-many-plus-one-th change
        self.cut_seed = None   # ... keeping a random prefix of unsynced writes (see cut)
        self.trace = None      # [[op, path]] of the changes since "trace", when on

    # -- the model ---------------------------------------------------------------------------------
    def _new(self, is_dir, mode):
        node = Inode(self._next_ino, is_dir, mode)
        self._next_ino += 1
        return node

    def cut(self, prefix_seed=None):
        """Power loss: every reachable inode reverts to its durable state; then everything is
        EIO until the next mount."""
        rng = random.Random(prefix_seed) if prefix_seed is not None else None
        seen = set()
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.ino in seen:
                continue
            seen.add(node.ino)
            if node.is_dir:
                node.entries = dict(node.dur_entries)
                stack.extend(node.entries.values())
                continue
            if rng is not None and node.pending:
                for op in node.pending[:rng.randint(0, len(node.pending))]:
                    node.dur_size = _apply(node.dur_data, node.dur_size, op)
            node.data, node.size = bytearray(node.dur_data), node.dur_size
            node.pending = []
        self.handles.clear()
        self.off = True

    def sync_all(self):
        stack, seen = [self.root], set()
        while stack:
            node = stack.pop()
            if node.ino in seen:
                continue
            seen.add(node.ino)
            if node.is_dir:
                node.dur_entries = dict(node.entries)
                stack.extend(node.entries.values())
            else:
                self._persist(node)

    def _persist(self, node):
        for op in node.pending:
            node.dur_size = _apply(node.dur_data, node.dur_size, op)
        node.pending = []

    def _change(self, node, op):
        node.size = _apply(node.data, node.size, op)
        node.pending.append(op)
        node.mtime = time.time_ns()

    # -- helpers ---------------------------------------------------------------------------------
    def _count(self, name, path=None):
        if self.off:
            raise mfusepy.FuseOSError(errno.EIO)
        self.counts[name] = self.counts.get(name, 0) + 1
        if name in CHANGES:
            if self.cut_after is not None:
                self.cut_after -= 1
                if self.cut_after < 0:     # power lost just before this change
                    self.cut_after = None
                    self.cut(self.cut_seed)
                    raise mfusepy.FuseOSError(errno.EIO)
            if self.trace is not None:
                self.trace.append([name, path])

    def _lookup(self, path):
        node = self.root
        for part in path.split("/"):
            if not part:
                continue
            if not node.is_dir:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            node = node.entries.get(part)
            if node is None:
                raise mfusepy.FuseOSError(errno.ENOENT)
        return node

    def _parent(self, path):
        head, name = path.rstrip("/").rsplit("/", 1)
        parent = self._lookup(head or "/")
        if not parent.is_dir:
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        return parent, name

    def _node(self, path, fh):
        if fh:
            node = self.handles.get(fh)
            if node is None:
                raise mfusepy.FuseOSError(errno.EBADF)
            return node
        if path is None:
            raise mfusepy.FuseOSError(errno.EBADF)
        return self._lookup(path)

    def _open_handle(self, node):
        fh = self._next_fh
        self._next_fh += 1
        self.handles[fh] = node
        return fh

    # -- FUSE operations (every one under the module lock: the control thread cuts power) ----------
    def init_with_config(self, conn, config):
        self.mounted = True
        say("ready")

    def getattr(self, path, fh=None):
        with _lock:
            self._count("getattr")
            node = self._node(path, fh)
            size = 0 if node.is_dir else node.size
            return {"st_mode": node.mode, "st_ino": node.ino, "st_size": size,
                    "st_nlink": 2 if node.is_dir else 1, "st_blocks": (size + 511) // 512,
                    "st_blksize": 4096, "st_mtime": node.mtime, "st_ctime": node.mtime,
                    "st_atime": node.mtime, "st_uid": os.getuid(), "st_gid": os.getgid()}

    def readdir(self, path, fh):
        with _lock:
            self._count("readdir")
            node = self.handles.get(fh) or self._lookup(path)
            return [".", ".."] + list(node.entries)

    def opendir(self, path):
        with _lock:
            self._count("opendir")
            node = self._lookup(path)
            if not node.is_dir:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            return self._open_handle(node)

    def releasedir(self, path, fh):
        with _lock:
            self.handles.pop(fh, None)   # also after a power cut: closing always works
            return 0

    def fsyncdir(self, path, datasync, fh):
        with _lock:
            self._count("fsyncdir", path)
            node = self._node(path, fh)
            node.dur_entries = dict(node.entries)
            return 0

    def mkdir(self, path, mode):
        with _lock:
            self._count("mkdir", path)
            parent, name = self._parent(path)
            if name in parent.entries:
                raise mfusepy.FuseOSError(errno.EEXIST)
            parent.entries[name] = self._new(True, stat.S_IFDIR | (mode & 0o7777))
            parent.mtime = time.time_ns()
            return 0

    def rmdir(self, path):
        with _lock:
            self._count("rmdir", path)
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                raise mfusepy.FuseOSError(errno.ENOENT)
            if not node.is_dir:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            if node.entries:
                raise mfusepy.FuseOSError(errno.ENOTEMPTY)
            del parent.entries[name]
            return 0

    def create(self, path, mode, flags=0):
        with _lock:
            self._count("create", path)
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                node = parent.entries[name] = self._new(False, stat.S_IFREG | (mode & 0o7777))
                parent.mtime = time.time_ns()
            elif node.is_dir:
                raise mfusepy.FuseOSError(errno.EISDIR)
            elif flags & os.O_TRUNC:
                self._change(node, ("t", 0))
            return self._open_handle(node)

    def open(self, path, flags):
        with _lock:
            self._count("open")
            node = self._lookup(path)
            if node.is_dir:
                raise mfusepy.FuseOSError(errno.EISDIR)
            if flags & os.O_TRUNC and node.size:
                self._change(node, ("t", 0))
            return self._open_handle(node)

    def release(self, path, fh):
        with _lock:
            self.handles.pop(fh, None)
            return 0

    def flush(self, path, fh):
        return 0    # close(2) persists nothing; it succeeds even after the cut, like release

    def read(self, path, size, offset, fh):
        with _lock:
            self._count("read")
            node = self._node(path, fh)
            end = min(node.size, offset + size)
            if offset >= end:
                return b""
            out = bytes(node.data[offset:end])
            return out + bytes(end - offset - len(out))   # reserved tail: zeros

    def write(self, path, data, offset, fh):
        with _lock:
            self._count("write", path)
            self._change(self._node(path, fh), ("w", offset, bytes(data)))
            return len(data)

    def truncate(self, path, length, fh=None):
        with _lock:
            self._count("truncate", path)
            node = self._node(path, fh)
            if node.is_dir:
                raise mfusepy.FuseOSError(errno.EISDIR)
            self._change(node, ("t", length) if length <= node.size else ("a", length))
            return 0

    def fallocate(self, path, mode, offset, size, fh):
        with _lock:
            self._count("fallocate", path)
            if mode != 0:
                raise mfusepy.FuseOSError(errno.EOPNOTSUPP)
            node = self._node(path, fh)
            if offset + size > node.size:
                self._change(node, ("a", offset + size))
            return 0

    def fsync(self, path, datasync, fh):
        with _lock:
            self._count("fsync", path)
            self._persist(self._node(path, fh))
            return 0

    def unlink(self, path):
        with _lock:
            self._count("unlink", path)
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                raise mfusepy.FuseOSError(errno.ENOENT)
            if node.is_dir:
                raise mfusepy.FuseOSError(errno.EISDIR)
            del parent.entries[name]
            parent.mtime = time.time_ns()
            return 0

    def rename(self, old, new):
        with _lock:
            self._count("rename", f"{old} -> {new}")
            src_dir, src_name = self._parent(old)
            dst_dir, dst_name = self._parent(new)
            node = src_dir.entries.get(src_name)
            if node is None:
                raise mfusepy.FuseOSError(errno.ENOENT)
            target = dst_dir.entries.get(dst_name)
            if target is not None and target is not node:
                if target.is_dir and not node.is_dir:
                    raise mfusepy.FuseOSError(errno.EISDIR)
                if node.is_dir and not target.is_dir:
                    raise mfusepy.FuseOSError(errno.ENOTDIR)
                if target.is_dir and target.entries:
                    raise mfusepy.FuseOSError(errno.ENOTEMPTY)
            del src_dir.entries[src_name]
            dst_dir.entries[dst_name] = node
            src_dir.mtime = dst_dir.mtime = time.time_ns()
            return 0

    def chmod(self, path, mode):
        with _lock:
            self._count("chmod")
            node = self._lookup(path)
            node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
            return 0

    def chown(self, path, uid, gid):
        with _lock:
            self._count("chown")
            return 0

    def utimens(self, path, times=None):
        with _lock:
            self._count("utimens")
            self._lookup(path).mtime = times[1] if times else time.time_ns()
            return 0

    def statfs(self, path):
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 24, "f_bfree": 1 << 23,
                "f_bavail": 1 << 23, "f_files": 1 << 20, "f_ffree": 1 << 19, "f_namemax": 255}


class _FUSE(mfusepy.FUSE):
    def truncate_fuse_3(self, path, length, fip):
        # mfusepy drops the file handle here; ftruncate of an unlinked file needs it.
        fh = fip.contents.fh if fip else None
        return self.operations.truncate(None if path is None else path.decode(), length, fh)


def _control(fs, mountpoint, stop):
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            with _lock:
                if words[0] == "cut":
                    fs.cut(int(words[2]) if len(words) > 2 and words[1] == "prefix" else None)
                    answer = "ok cut"
                elif words[0] == "cut-after":
                    fs.cut_after = int(words[1])
                    fs.cut_seed = int(words[3]) if len(words) > 3 and words[2] == "prefix" else None
                    answer = "ok armed"
                elif words[0] == "trace":
                    fs.trace = [] if len(words) < 2 or words[1] != "off" else None
                    answer = "ok trace"
                elif words[0] == "sync":
                    fs.sync_all()
                    answer = "ok sync"
                elif words[0] == "stats":
                    answer = "ok " + json.dumps({"off": fs.off, "counts": fs.counts,
                                                 "trace": fs.trace})
                elif words[0] == "exit":
                    break
                else:
                    answer = f"error unknown command {words[0]!r}"
        except Exception as exc:   # a bad command must not take the file system down
            answer = f"error {type(exc).__name__}: {exc}"
        say(answer)
    stop.set()
    subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True)


def main():
    mountpoint = sys.argv[1]
    fs = PowerLossFS()
    stop = threading.Event()
    threading.Thread(target=_control, args=(fs, mountpoint, stop), daemon=True).start()
    while not stop.is_set():
        with _lock:
            fs.off = False       # the reboot: power is back, the durable state is what is left
            fs.mounted = False
        # Single-threaded: the model needs no finer locking, and klog's few threads don't need
        # parallel FUSE requests. hard_remove: unlinked open files get no .fuse_hidden names.
        try:
            _FUSE(fs, mountpoint, foreground=True, nothreads=True, hard_remove=True,
                  fsname="powerloss", subtype="powerloss")
        except RuntimeError as exc:
            # The kernel sometimes ends a session at unmount with ECONNABORTED rather than
            # ENODEV; after a live mount that is just the unmount. Failing to mount is not.
            if not fs.mounted:
                raise
            print(f"powerloss_fs: the session ended with {exc!r} (unmounted)", file=sys.stderr)
        say("unmounted")


if __name__ == "__main__":
    main()
