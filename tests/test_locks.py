"""The locks between processes on one base (``backends/locks.py``,
``backends/engine_lock.py``): real flocks, real ``factory run`` processes.

A lock is on an inode: a file deleted and made again while someone waited is
not taken by mistake, and the engine's lock (on the ``.factory`` folder
itself) survives the deletion of ``engine.lock`` by a tidy-up."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.locks import OperatorLock, PathLock, wait_seconds
from factory_tui.engine import EngineLock
from factory_tui.engine_host import EngineHost
from factory_tui.errors import ConfigError
from tests.engine_helpers import configure, factory, start_factory, wait_for


def times_open(pid: int, path: Path) -> int:
    """How many open files of process ``pid`` are ``path`` (one of them is
    waiting for, or holding, the lock on it)."""
    links = []
    try:
        for entry in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(os.readlink(entry))
            except OSError:
                continue  # closed meanwhile
    except OSError:
        return 0
    return links.count(str(path))


def has_open(pid: int, path: Path) -> bool:
    return times_open(pid, path) > 0


# --- the lock itself ------------------------------------------------------------------


def test_a_lock_whose_file_was_replaced_while_waiting_is_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "operator.lock"
    first = PathLock(path)
    assert first.acquire()
    waiter = PathLock(path)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(waiter.acquire(timeout=60)))
    thread.start()
    wait_for(lambda: times_open(os.getpid(), path) == 2, "the waiter to open the lock file")
    # The file is deleted and made again, and someone takes the new one;
    # then the first holder lets go of the old, deleted one.
    path.unlink()
    third = PathLock(path)
    assert third.acquire()
    first.release()
    # The waiter locked the deleted file, saw that the path names another
    # one now, and waits for that one instead (an open file whose link is
    # the path itself, not "… (deleted)").
    wait_for(lambda: times_open(os.getpid(), path) == 2, "the waiter to wait for the new file", limit=15)
    assert not result and not waiter.held
    third.release()
    thread.join(30)
    assert result == [True]
    assert os.fstat(waiter.fd).st_ino == os.stat(path).st_ino
    waiter.release()


def test_the_operator_lock_is_reentrant_within_a_thread(base: FactoryBase) -> None:
    lock = OperatorLock(base.dir)
    with lock.held("approve T-1"):
        with lock.held("clean the worktree of T-1", timeout=0):
            holder = lock.holder()
            assert holder["pid"] == os.getpid() and holder["doing"] == "approve T-1"
        assert lock.holder()["doing"] == "approve T-1"  # still held by the outer one
    assert lock.holder() is None


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_lock_timeout_is_refused_in_one_line(value: str, monkeypatch) -> None:
    monkeypatch.setenv("FACTORY_LOCK_TIMEOUT", value)
    with pytest.raises(ConfigError) as refused:
        wait_seconds()
    assert str(refused.value) == f"FACTORY_LOCK_TIMEOUT must be a number of seconds (0 or more), not {value!r}"


def test_the_lock_timeout_defaults_to_thirty_seconds(monkeypatch) -> None:
    monkeypatch.delenv("FACTORY_LOCK_TIMEOUT", raising=False)
    assert wait_seconds() == 30.0
    monkeypatch.setenv("FACTORY_LOCK_TIMEOUT", "2.5")
    assert wait_seconds() == 2.5



# --- the engine lock (issue 6 §8) ---------------------------------------------------


def test_a_deleted_engine_lock_file_does_not_let_a_second_engine_start(
    base: FactoryBase, tmp_path: Path, tidy,  # noqa: F811
) -> None:
    configure(base)
    headless = start_factory(base, "run", output=tmp_path / "engine.out")
    tidy.append(headless)
    wait_for(lambda: (EngineLock.holder(base) or {}).get("pid") == headless.pid, "the engine to take the lock")

    # What `git clean -X` does to it: engine.lock is an ignored file.
    (base.dir / "engine.lock").unlink()

    refused = factory(base, "run", "--once")
    assert refused.returncode == 1
    assert refused.stdout == ""
    # The engine may have written its description again meanwhile (it does
    # at every reap round): then it is named as what it is.
    assert refused.stderr in (
        f"factory: another engine is running on this base ({mode}, pid {headless.pid} on {socket.gethostname()})\n"
        for mode in ("engine", "headless")
    ), refused.stderr
    holder = EngineLock.holder(base)
    assert holder["pid"] == headless.pid
    host = EngineHost(base)
    assert host.start() == "attached"
    assert host.thread is None
    assert f"pid {headless.pid}" in host.describe()

    headless.send_signal(signal.SIGTERM)
    assert headless.wait(timeout=60) == 0
    assert EngineLock.holder(base) is None
    after = factory(base, "run", "--once")
    assert after.returncode == 0, after.stdout + after.stderr


def test_the_engine_writes_its_description_again_when_it_was_deleted(base: FactoryBase) -> None:
    lock = EngineLock(base)
    lock.acquire("embedded")
    try:
        first = EngineLock.holder(base)
        assert first["pid"] == os.getpid() and first["mode"] == "embedded"
        (base.dir / "engine.lock").unlink()
        lock.describe()
        assert EngineLock.holder(base) == first
        assert not list(base.dir.glob(".tmp-*"))
    finally:
        lock.release()
    assert EngineLock.holder(base) is None
    assert not (base.dir / "engine.lock").exists()
