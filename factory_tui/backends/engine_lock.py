"""The engine lock: one engine per base.

``.factory/engine.lock`` is held with flock for as long as an engine runs;
the kernel lets go of it when the process dies, however it dies. Whoever
holds it wrote who they are into it, so that a console can say which engine
it attached to.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

from factory_tui.backends.base import FactoryBase
from factory_tui.errors import FactoryError


class EngineBusy(FactoryError):
    """Another engine holds the base."""

    def __init__(self, holder: dict | None) -> None:
        self.holder = holder or {}
        who = describe_holder(self.holder)
        super().__init__(f"another engine is running on this base ({who})")


def describe_holder(holder: dict) -> str:
    if not holder:
        return "unknown process"
    return f"{holder.get('mode', 'engine')}, pid {holder.get('pid')} on {holder.get('host', '?')}"


class EngineLock:
    """``.factory/engine.lock``, held with flock for as long as the engine
    runs; the kernel lets go of it when the process dies, however it dies."""

    def __init__(self, base: FactoryBase) -> None:
        self.path = base.dir / "engine.lock"
        self._fd: int | None = None

    def acquire(self, mode: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise EngineBusy(holder) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "mode": mode, "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def holder(base: FactoryBase) -> dict | None:
        """Who holds the base's engine lock, or None if nobody does."""
        path = base.dir / "engine.lock"
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(fd) or {"mode": "engine"}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read_holder(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data) if data else None
    except (OSError, ValueError):
        return None
