"""The engine lock: one engine per base.

The engine holds a flock (``locks.PathLock``) on the ``.factory`` folder
itself for as long as it runs; the kernel lets go of it when the process
dies, however it dies. The folder, unlike a lock file, cannot be deleted
under a live engine by a tidy-up such as ``git clean -X`` (which deletes the
ignored files, ``*.lock`` among them): a second engine always finds the lock.

The holder also writes who it is (pid, host, mode) into
``.factory/engine.lock``, so that a console can say which engine it attached
to. That file is only a description: whether an engine runs is answered by
the lock, and when the description is gone the holder's pid is read from the
kernel's list of locks.
"""

from __future__ import annotations

import json
import os
import socket
import time

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.locks import PathLock
from factory_tui.errors import FactoryError

DESCRIPTION_NAME = "engine.lock"
# A look at the lock (``holder``) takes a shared lock for an instant; an
# engine starting at that instant waits this long rather than give up.
START_GRACE_SECONDS = 1.0


class EngineBusy(FactoryError):
    """Another engine holds the base."""

    def __init__(self, holder: dict | None) -> None:
        self.holder = holder or {}
        who = describe_holder(self.holder)
        super().__init__(f"another engine is running on this base ({who})")


def describe_holder(holder: dict) -> str:
    if not holder:
        return "unknown process"
    return f"{holder.get('mode', 'engine')}, pid {holder.get('pid', '?')} on {holder.get('host', '?')}"


class EngineLock:
    """A flock on ``.factory/``, held for as long as the engine runs, and
    the holder's description in ``.factory/engine.lock``."""

    def __init__(self, base: FactoryBase) -> None:
        self.path = base.dir / DESCRIPTION_NAME
        self._lock = PathLock(base.dir, directory=True)
        self._info: dict | None = None

    def acquire(self, mode: str) -> None:
        try:
            acquired = self._lock.acquire(START_GRACE_SECONDS)
        except OSError as error:
            raise FactoryError(f"cannot lock {self._lock.path}: {error.strerror or error}") from None
        if not acquired:
            raise EngineBusy(_holder(self._lock, self.path))
        self._info = {"pid": os.getpid(), "host": socket.gethostname(), "mode": mode, "started": time.time()}
        self.describe()

    def describe(self) -> None:
        """Write the holder's description into ``engine.lock`` again if it
        is missing or not ours (deleted by a tidy-up): cheap, so an engine
        may call it on every round."""
        if self._info is None:
            return
        if _read_holder(self.path) == self._info:
            return
        # Named *.lock so that the ignore rules of ``factory init`` cover it.
        temporary = self.path.with_name(f".tmp-{os.getpid()}.{DESCRIPTION_NAME}")
        try:
            temporary.write_text(json.dumps(self._info), encoding="utf-8")
            os.replace(temporary, self.path)  # readers never see half of it
        except OSError:
            # Only the description is lost: the lock itself is held, and
            # ``holder`` still finds the pid.
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only base: nothing was made

    def release(self) -> None:
        if self._lock.held:
            if _read_holder(self.path) == self._info:
                self.path.unlink(missing_ok=True)
            self._info = None
            self._lock.release()

    @staticmethod
    def holder(base: FactoryBase) -> dict | None:
        """Who holds the base's engine lock, or None if nobody does."""
        lock = PathLock(base.dir, directory=True)
        try:
            if not lock.is_held_elsewhere():
                return None
        except OSError:
            return None
        return _holder(lock, base.dir / DESCRIPTION_NAME)


def _holder(lock: PathLock, description: os.PathLike) -> dict:
    """The lock's holder: its own description when that is there and names
    the process the kernel says holds the lock, else what the kernel says."""
    info = _read_holder(description) or {}
    pid = lock.holder_pid()
    if pid is None or info.get("pid") == pid:
        return info or {"mode": "engine"}
    return {"mode": "engine", "pid": pid, "host": socket.gethostname()}


def _read_holder(path: os.PathLike) -> dict | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(4096)
        value = json.loads(data) if data else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
