"""The console's side of the engine: start one inside the console, or attach
to the headless engine that already holds the base, and at the end stop the
agents or hand them to a headless ``factory run``.

No Textual: the console calls these from its workers. The engine's module
is imported when an engine is started or looked for, not with the console:
its first frame needs none of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from factory_tui.backends.base import FactoryBase

if TYPE_CHECKING:
    from factory_tui.engine import EngineStatus, EngineThread

HANDOVER_LOG = "engine.log"


class EngineHost:
    # What ``on_status`` returns is ignored: the console posts a message.
    def __init__(self, base: FactoryBase, *, on_status: Callable[[EngineStatus], object] | None = None) -> None:
        self.base = base
        self.on_status = on_status
        self.thread: EngineThread | None = None
        self.holder: dict | None = None
        self.status: EngineStatus | None = None

    @property
    def mode(self) -> str:
        """``embedded`` (ours), ``attached`` (someone else's) or ``none``."""
        if self.thread is not None and self.thread.is_alive():
            return "embedded"
        return "attached" if self.holder else "none"

    def start(self) -> str:
        """Run an engine in this process, unless one already holds the base."""
        from factory_tui.engine import Engine, EngineBusy, EngineLock, EngineThread

        self.holder = EngineLock.holder(self.base)
        if self.holder:
            return "attached"
        engine = Engine(self.base, mode="embedded", on_status=self._status)
        self.thread = EngineThread(engine)
        self.thread.start()
        # The lock is taken as the engine starts; another process may win.
        self.thread.join(0.2)
        if not self.thread.is_alive() and isinstance(self.thread.error, EngineBusy):
            self.holder = self.thread.error.holder
            self.thread = None
            return "attached"
        return self.mode

    def refresh(self) -> str:
        if self.mode != "embedded":
            from factory_tui.engine import EngineLock

            self.holder = EngineLock.holder(self.base)
        return self.mode

    def _status(self, status: EngineStatus) -> None:
        self.status = status
        if self.on_status is not None:
            self.on_status(status)

    @property
    def running(self) -> list[str]:
        if self.mode != "embedded" or self.status is None:
            return []
        return list(self.status.running)

    def describe(self) -> str:
        mode = self.mode
        if mode == "embedded":
            status = self.status
            if status is None:
                return "engine: starting"
            return f"engine: in console · {len(status.running)}/{status.max_parallel} agents"
        if mode == "attached":
            from factory_tui.engine import describe_holder

            return f"engine: attached ({describe_holder(self.holder or {})})"
        error = self.thread.error if self.thread is not None else None
        if error is not None:
            return f"engine: stopped ({error})"
        return "engine: none"

    def stop(self, *, stop_agents: bool = True, timeout: float = 60.0) -> None:
        """Blocks until the embedded engine is done: call it from a worker."""
        if self.thread is not None and self.thread.is_alive():
            self.thread.stop(stop_agents=stop_agents, timeout=timeout)

    def hand_over(self) -> int:
        """Leave the running agents to a headless engine: ours lets go of
        them and of the lock, and a detached ``factory run`` takes over.
        Returns the new engine's pid."""
        self.stop(stop_agents=False)
        log_path = self.base.dir / HANDOVER_LOG
        with open(log_path, "ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "factory_tui", "--base", str(self.base.root), "run"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(os.environ),
            )
        return process.pid
