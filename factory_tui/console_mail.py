"""The console's own intake of mail, for when no engine runs on the base:
it catches up and follows the mailbox (the session's ``watch_mail``) while
no engine holds the base, and lets go as soon as one does (the engine then
takes mail in itself), taking over again if the engine goes.

Two intakes at once lose nothing and take nothing twice (ingestion is
idempotent by key and content, a refusal is recorded once per path and
content, and a file another intake moved meanwhile is passed over); letting
go only keeps them from doing the same work twice.

No Textual: the Mail pane runs it in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factory_tui.backends.session import FactorySession

# How often the console looks whether an engine has come or gone.
CHECK_SECONDS = 1.0


class ConsoleIntake:
    def __init__(self, session: FactorySession, engine_runs: Callable[[], bool], *,
                 report: Callable[[str], None] | None = None, check: float = CHECK_SECONDS) -> None:
        self.session = session
        self.engine_runs = engine_runs
        self.report = report
        self.check = check
        self.active = False
        """Whether the console is taking mail in now."""

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: follow the mail whenever no engine runs (blocks)."""
        while not stop.is_set():
            if self.engine_runs():
                stop.wait(self.check)
                continue
            watching = threading.Event()
            errors: list[BaseException] = []

            def follow(watching: threading.Event = watching, errors: list[BaseException] = errors) -> None:
                try:
                    self.session.watch_mail(watching, report=self.report)
                except BaseException as error:  # said by the caller; the watch is tried again
                    errors.append(error)
                    watching.set()

            thread = threading.Thread(target=follow, name="console-mail", daemon=True)
            self.active = True
            thread.start()
            try:
                while not stop.is_set() and not watching.is_set() and not self.engine_runs():
                    stop.wait(self.check)
            finally:
                watching.set()
                thread.join(timeout=10)
                self.active = False
            if errors:
                if self.report is not None:
                    self.report(f"mail: stopped watching: {errors[0]}")
                stop.wait(self.check)
