"""The console's start: its worker threads, and the moments a benchmark
asks for (``factory console --bench-first-frame``).

The first full frame is the plan's rows (its first rows on a big base),
the newest events, the header's figures and the worktrees listed; the
whole plan arrives after it (``LogCompleted``). With ``--bench-first-frame``
the console prints on stderr when each was drawn, with its peak memory and
CPU time so far, and quits after the whole plan (benchmarks/bench_console.py
reads the lines).
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# Threads for the console's workers (see use_worker_threads).
WORKER_THREADS = 32
# How often a benchmark's report looks again for the worktrees' list.
_RECHECK_SECONDS = 0.005


def use_worker_threads() -> None:
    """Thread workers run on the event loop's default executor, of
    cpu_count + 4 threads: six on two cores. Every follower (the log feed,
    the git files, the QA folder, the living documents, the inbox, an open
    transcript) holds one for the console's life, so a pool that small
    leaves the short fetches none and they wait for ever. The followers
    mostly sleep; a bigger pool costs nothing."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="console-worker")
    )


def frame_line(what: str) -> str:
    """The line a benchmark reads: when, the peak memory, the CPU time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return f"{what} {time.time():.6f} maxrss-kb {usage.ru_maxrss} cpu-s {usage.ru_utime + usage.ru_stime:.3f}"


class FrameReport:
    """Says when the first full frame and the whole plan were drawn.

    ``app`` is the console: ``call_after_refresh``, ``set_timer`` and
    ``exit``; ``listed`` says whether the worktrees are listed yet."""

    def __init__(self, app, listed: Callable[[], bool]) -> None:
        self.app = app
        self.listed = listed
        self.first_said = False
        self.whole_drawn = False

    def plan_drawn(self, complete: bool) -> None:
        """The first look is on its way to the screen."""
        self._first_when_listed()
        if complete:
            self.whole_plan()

    def whole_plan(self) -> None:
        self.whole_drawn = True
        if self.first_said:
            self.app.call_after_refresh(self._say, "whole-plan", True)

    def _first_when_listed(self) -> None:
        if not self.listed():
            self.app.set_timer(_RECHECK_SECONDS, self._first_when_listed)
            return
        self.app.call_after_refresh(self._first_drawn)

    def _first_drawn(self) -> None:
        self._say("first-frame", False)
        self.first_said = True
        if self.whole_drawn:
            self.app.call_after_refresh(self._say, "whole-plan", True)

    def _say(self, what: str, last: bool) -> None:
        print(frame_line(what), file=sys.__stderr__, flush=True)
        if last:
            self.app.exit()
