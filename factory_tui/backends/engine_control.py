"""Looking at and stopping the engine of a base from outside it: who holds
the engine lock, since when and in which mode, with the tasks the log has
running; and stopping a headless engine (``factory run``, or the one a
console left its agents to) the way ctrl+c does, then waiting until it has
let go of the base.

Only the lock's holder is ever signalled, and only after the kernel's list
of locks confirms that the process named is the one holding it: a stale
description (``engine.lock``) can never make us signal a stranger. An engine
inside a console is the console's to stop: it is refused, with what to do.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.engine_lock import EngineLock
from factory_tui.backends.locks import PathLock
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.processes import command_line
from factory_tui.errors import FactoryError
from factory_tui.model import iso_time

# How often a waiting `engine stop` looks whether the engine let go.
POLL_SECONDS = 0.05


@dataclass(slots=True)
class RunningTask:
    task_id: str
    worker: str
    lease_expires: float

    def to_json(self) -> dict:
        return {"task": self.task_id, "worker": self.worker, "lease_expires": iso_time(self.lease_expires)}


@dataclass(slots=True)
class EngineReport:
    """``holder``: the engine lock's holder as ``EngineLock.holder`` tells
    it (pid, host, mode, started), or None; ``running``: the tasks the log
    has running, whoever holds their leases."""

    holder: dict | None
    running: list[RunningTask] = field(default_factory=list)
    now: float = 0.0

    def to_json(self) -> dict:
        holder = self.holder or {}
        started = holder.get("started")
        return {
            "running": self.holder is not None,
            "pid": holder.get("pid"),
            "host": holder.get("host"),
            "mode": holder.get("mode"),
            "since": iso_time(started) if isinstance(started, (int, float)) else None,
            "tasks": [task.to_json() for task in self.running],
        }

    def lines(self) -> list[str]:
        holder = self.holder
        if holder is None:
            lines = ["No engine runs on this base (start one: factory run)."]
        else:
            started = holder.get("started")
            since = ""
            if isinstance(started, (int, float)):
                since = f", since {iso_time(started)} ({_duration(self.now - started)})"
            lines = [f"engine: {holder.get('mode', 'engine')}, pid {holder.get('pid', '?')} "
                     f"on {holder.get('host', '?')}{since}"]
        if self.running:
            names = ", ".join(task.task_id for task in self.running)
            lines.append(f"running: {names}")
            if holder is None:
                lines.append("(no engine holds them: their leases run out, and the next engine "
                             "takes over the runs still going)")
        elif holder is not None:
            lines.append("running: nothing")
        return lines


def engine_report(base: FactoryBase, log: ExecutionLog) -> EngineReport:
    running = [RunningTask(task_id, worker, expires) for _, task_id, worker, expires in log.live_leases()]
    return EngineReport(EngineLock.holder(base), running, time.time())


def stop_engine(base: FactoryBase, *, timeout: float = 60.0) -> dict | None:
    """Stop the headless engine holding ``base`` with SIGTERM (it stops its
    agents, commits their work and gives their tasks back) and wait until
    it let go of the base, at most ``timeout`` seconds. Returns the holder
    that was stopped, or None when no engine ran. FactoryError (one line)
    for an engine inside a console, one that cannot be told apart from
    other processes, or one that has not stopped in time."""
    holder = EngineLock.holder(base)
    if holder is None:
        return None
    pid = PathLock(base.dir, directory=True).holder_pid()
    if pid is None or pid != holder.get("pid"):
        # The kernel's list of locks is what proves who holds the lock.
        raise FactoryError(
            "cannot tell which process holds this base's engine lock "
            f"({holder.get('mode', 'engine')}, pid {holder.get('pid', '?')} by its own account); "
            "stop it where it runs"
        )
    mode = holder.get("mode")
    if mode not in ("headless", "embedded"):
        # Its description is gone (a tidy-up deleted engine.lock): a
        # headless engine is `… factory_tui … run` on its command line.
        argv = command_line(pid)
        mode = "headless" if "run" in argv[1:] and any("factory" in part for part in argv) else mode
    if mode != "headless":
        raise FactoryError(
            f"the engine runs inside a console (pid {pid}); quit the console to stop it "
            "(it asks whether to stop the agents or leave them to a headless engine)"
        )
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return holder  # it ended between the look and the signal
    except PermissionError:
        raise FactoryError(f"not allowed to signal the engine (pid {pid}); stop it as its owner") from None
    deadline = time.monotonic() + timeout
    while True:
        now_holder = EngineLock.holder(base)
        if now_holder is None or now_holder.get("pid") != pid:
            return holder
        if time.monotonic() >= deadline:
            raise FactoryError(
                f"the engine (pid {pid}) has not let go of the base after {timeout:g} s; it may still be "
                "stopping its agents (`factory engine status` shows it)"
            )
        time.sleep(POLL_SECONDS)


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
