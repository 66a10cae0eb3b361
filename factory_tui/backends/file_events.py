"""Being told the moment files in one folder change: Linux's inotify, read
by the caller's own event loop (a descriptor that turns readable), with no
thread and no polling. The engine wakes on the log's files with it
(engine.py ``_watch_log``): a task another process adds is claimed at once,
and an idle engine sleeps until something happens.

``FolderEvents.open`` returns None where the kernel offers no inotify (not
Linux, no free watch); the caller then looks at the files on a timer.
``watchfiles`` (backends/watcher.py) is the way for whole trees; it batches
changes on a native thread every few tens of milliseconds, which is the
delay this module exists to avoid.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterable
from pathlib import Path

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
# What a file's change can be: written, made, deleted or renamed (in or out).
MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
# After these nothing more comes from the watch: say so, and let the caller
# fall back to looking.
_GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)

_libc: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            # The running program's own symbols, libc's among them (no
            # find_library: it starts ldconfig to look).
            libc = ctypes.CDLL(None, use_errno=True)
            libc.inotify_init1  # noqa: B018 - raises AttributeError where there is none
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


class FolderEvents:
    """An inotify descriptor watching one folder for changes to the files
    named ``names`` in it."""

    def __init__(self, fd: int, names: frozenset[bytes]) -> None:
        self.fd = fd
        self.names = names
        # Set when the watch ended (the folder deleted or moved): the caller
        # must look for itself from then on.
        self.gone = False

    @classmethod
    def open(cls, folder: Path, names: Iterable[str]) -> FolderEvents | None:
        libc = _library()
        if libc is None:
            return None
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(folder), MASK) < 0:
            os.close(fd)
            return None
        return cls(fd, frozenset(os.fsencode(name) for name in names))

    def fileno(self) -> int:
        return self.fd

    def drain(self) -> bool:
        """Read every event waiting; True if one was about a named file (or
        events were lost, or the watch ended: something may have changed)."""
        touched = False
        while True:
            try:
                data = os.read(self.fd, 64 << 10)
            except BlockingIOError:
                return touched
            except OSError:
                self.gone = True
                return True
            if not data:
                return touched
            offset = 0
            while offset + _HEADER.size <= len(data):
                _, mask, _, length = _HEADER.unpack_from(data, offset)
                name = data[offset + _HEADER.size : offset + _HEADER.size + length].rstrip(b"\0")
                offset += _HEADER.size + length
                if mask & _GONE:
                    self.gone = True
                    touched = True
                elif mask & IN_Q_OVERFLOW or name in self.names:
                    touched = True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
