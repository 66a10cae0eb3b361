"""Locks between the processes that share a base: an exclusive flock on a
path (a file, or a directory), waited for a bounded time, and who holds it.

``PathLock`` is the primitive. flock belongs to an open file, so the kernel
lets go of it when its holder dies, however it dies, and two threads of one
process that open the path separately exclude each other like two processes.
A lock is on an inode, not a name: after taking it, the holder checks that
the path still names the inode it locked (the file may have been deleted, or
deleted and made again, while it waited) and starts over if not.

``OperatorLock`` is the base's operator lock, ``.factory/operator.lock``: an
operator's action (approve, re-queue, cancel, hold, release, cleaning a
worktree) holds it for its state check, its git work and its log write, so
that two actions on one base never interleave. Its holder writes what it is
doing into the file, so that a process that gave up waiting can say who is in
the way. The engine lock (``engine_lock.py``) is a ``PathLock`` as well.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from factory_tui.errors import ConfigError, FactoryError

# How long an operator's action waits for another one to finish, unless the
# environment says otherwise (tests shorten it).
WAIT_ENV = "FACTORY_LOCK_TIMEOUT"
DEFAULT_WAIT_SECONDS = 30.0
# How often a waiter looks again. Waiting polls (flock with LOCK_NB) instead
# of blocking, because a blocked flock cannot be given up after a deadline.
POLL_SECONDS = 0.02
OPERATOR_LOCK_NAME = "operator.lock"


def wait_seconds() -> float:
    """The bounded wait for a lock: ``$FACTORY_LOCK_TIMEOUT`` seconds, or 30."""
    text = os.environ.get(WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_WAIT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{WAIT_ENV} must be a number of seconds (0 or more), not {text!r}")
    return value


class PathLock:
    """An exclusive flock on ``path``: a file (made if missing) or, with
    ``directory``, a folder (one that holds files cannot be deleted by a
    tidy-up that deletes files)."""

    def __init__(self, path: Path, *, directory: bool = False) -> None:
        self.path = Path(path)
        self.directory = directory
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def fd(self) -> int | None:
        """The open file the lock is held on (None when not held)."""
        return self._fd

    def _open(self) -> int:
        if self.directory:
            return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds for its holder.
        True when held; False when another holder kept it all that time."""
        if self._fd is not None:
            return True
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            fd = self._open()
            try:
                locked = _flock_until(fd, deadline)
            except BaseException:
                os.close(fd)
                raise
            if not locked:
                os.close(fd)
                return False
            if _same_inode(fd, self.path):
                self._fd = fd
                return True
            # We locked a file that was deleted (or replaced) meanwhile:
            # whoever opens the path now would not see our lock. Start over.
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def is_held_elsewhere(self) -> bool:
        """Whether some open file holds the lock now (a look: it takes a
        shared lock for an instant, and never waits)."""
        if self._fd is not None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | (os.O_DIRECTORY if self.directory else 0))
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def holder_pid(self) -> int | None:
        """The process holding an exclusive flock on the path, from
        /proc/locks (Linux), or None when that cannot be told."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return flock_holder_pid(stat)


def flock_holder_pid(stat: os.stat_result) -> int | None:
    """Who holds an exclusive flock on the inode ``stat`` describes, as
    /proc/locks tells it ("FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode>")."""
    try:
        text = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    same_inode: list[int] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":  # "->": a waiter, not a holder
            continue
        kind, _, mode, pid, where = fields[1:6]
        if kind != "FLOCK" or mode != "WRITE" or not pid.isdigit():
            continue
        if where == device:
            return int(pid)
        if where.rsplit(":", 1)[-1] == str(stat.st_ino):
            same_inode.append(int(pid))
    # Some filesystems (overlayfs) show another device number than stat:
    # the inode alone will do when it is unambiguous.
    return same_inode[0] if len(same_inode) == 1 else None


class OperatorBusy(FactoryError):
    """Another operator action held the base for longer than the wait."""

    def __init__(self, holder: dict, waited: float) -> None:
        self.holder = holder
        super().__init__(
            f"another action holds this base ({describe_action_holder(holder)}); "
            f"gave up after waiting {waited:g} s, try again when it is done"
        )


def describe_action_holder(holder: dict) -> str:
    doing = holder.get("doing") or "an operator action"
    who = f"pid {holder['pid']}" if holder.get("pid") else "unknown process"
    if holder.get("host"):
        who += f" on {holder['host']}"
    since = holder.get("since")
    if isinstance(since, (int, float)):
        who += f", for {max(0, round(time.time() - since))} s"
    return f"{doing}: {who}"


class OperatorLock:
    """The base's operator lock, ``<factory dir>/operator.lock``.

    ``held(doing)`` is re-entrant within a thread (an action that calls
    another one does not wait for itself); other threads and processes wait
    up to ``wait_seconds()`` and then get ``OperatorBusy``."""

    def __init__(self, factory_dir: Path) -> None:
        self.path = Path(factory_dir) / OPERATOR_LOCK_NAME
        self._local = threading.local()

    @contextmanager
    def held(self, doing: str, *, timeout: float | None = None) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        wait = wait_seconds() if timeout is None else timeout
        lock = PathLock(self.path)
        try:
            acquired = lock.acquire(wait)
        except OSError as error:
            if error.errno == errno.EROFS:
                raise FactoryError(
                    f"the base {self.path.parent} is read-only: {doing} cannot be done here"
                ) from None
            raise FactoryError(
                f"cannot take the operator lock {self.path}: {error.strerror or error}"
            ) from None
        if not acquired:
            raise OperatorBusy(self.holder() or {}, wait)
        self._local.depth = 1
        try:
            _describe(lock.fd, {"pid": os.getpid(), "host": socket.gethostname(),
                                "doing": doing, "since": time.time()})
            yield
        finally:
            self._local.depth = 0
            if lock.fd is not None:
                _describe(lock.fd, None)
            lock.release()

    def holder(self) -> dict | None:
        """Who holds the lock now, or None if nobody does."""
        lock = PathLock(self.path)
        if not lock.is_held_elsewhere():
            return None
        holder = _read_description(self.path) or {}
        pid = lock.holder_pid()
        if pid is not None and holder.get("pid") != pid:
            holder = {"pid": pid}  # the description is not the holder's (yet)
        return holder


def _describe(fd: int | None, holder: dict | None) -> None:
    """Write (or, with None, clear) the holder's description in the lock
    file. Best effort: a full disk must not stop the action itself."""
    if fd is None:
        return
    try:
        os.ftruncate(fd, 0)
        if holder:
            os.pwrite(fd, json.dumps(holder).encode(), 0)
    except OSError:
        pass


def _read_description(path: Path) -> dict | None:
    try:
        data = path.read_bytes()[:4096]
        value = json.loads(data) if data else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _same_inode(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def _flock_until(fd: int, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)


# Adding, removing and pruning worktrees of one repository: git does
# not serialise them (a prune can take away the admin folder of a worktree
# being added), so the agents' worktrees and QA's clean checkouts take this
# lock, in the repository's .git folder, around each.
WORKTREE_LOCK_NAME = "factory-worktrees.lock"
WORKTREE_LOCK_WAIT = 120.0
_worktree_threads = threading.Lock()


@contextmanager
def worktree_admin(repo_root: Path) -> Iterator[None]:
    """Hold the repository's worktree lock (threads of this process and
    other processes alike) for one ``git worktree`` change."""
    git_dir = Path(repo_root) / ".git"
    with _worktree_threads:
        if not git_dir.is_dir():
            yield  # no folder of ours to lock in: this process's threads only
            return
        lock = PathLock(git_dir / WORKTREE_LOCK_NAME)
        try:
            acquired = lock.acquire(WORKTREE_LOCK_WAIT)
        except OSError:
            acquired = False  # a read-only .git: git itself will say why
        try:
            yield
        finally:
            if acquired:
                lock.release()
