"""The console's start: its worker threads, and its first full frame.

The first full frame is the plan's rows (its first rows on a big base),
the newest events, the header's figures and the worktrees listed. What the
frame does not show waits until it is drawn (the app's ``first_drawn``):
the rest of a big plan (``LogCompleted``), the engine, the agent look-up;
the Artifacts, QA and Mail panes read theirs after the frame their first
look is in. With ``--bench-first-frame``
the console prints on stderr when each was drawn, with its peak memory and
CPU time so far, and quits after the whole plan (benchmarks/bench_console.py
reads the lines).
"""

from __future__ import annotations

import asyncio
import gc
import resource
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from factory_tui.plan_rows import PreparedPlan, prepare_plan

if TYPE_CHECKING:
    from factory_tui.backends.feed import LogFeed, Rest

# Threads for the console's workers (see use_worker_threads).
WORKER_THREADS = 32
# How often the first frame looks again for the worktrees' list, and how
# long it waits for it at most.
_RECHECK_SECONDS = 0.005
LISTING_WAIT = 3.0


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


def read_whole_plan(feed: LogFeed) -> tuple[Rest, PreparedPlan]:
    """The rest of a big base's first look, and the whole plan made ready
    for the Plan's table: in the feed's worker, after the first frame. No
    garbage collection meanwhile: each would walk every object made so far,
    the screen standing still a tenth of a second each time
    (``hold_whole_plan`` freezes them all, then collects again)."""
    gc.disable()
    try:
        rest = feed.rest()
        return rest, prepare_plan(rest.tasks)
    except BaseException:
        gc.enable()
        raise


def hold_whole_plan() -> None:
    """The console holds the whole plan: tens of thousands of long-lived
    objects, which a full collection walking them all would stall a frame
    for (30 ms). Frozen, they are left out of the walk."""
    gc.freeze()
    gc.enable()


def frame_line(what: str) -> str:
    """The line a benchmark reads: when, the peak memory, the CPU time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return f"{what} {time.time():.6f} maxrss-kb {usage.ru_maxrss} cpu-s {usage.ru_utime + usage.ru_stime:.3f}"


class FrameReport:
    """Knows when the first full frame was drawn (``first_drawn`` is set
    then: what waits for it starts), and with ``say`` says when it and the
    whole plan were drawn.

    ``app`` is the console: ``call_after_refresh``, ``set_timer`` and
    ``exit``; ``listed`` says whether the worktrees are listed yet."""

    def __init__(self, app, listed: Callable[[], bool], first_drawn: threading.Event, *, say: bool) -> None:
        self.app = app
        self.listed = listed
        self.first_drawn = first_drawn
        self.say = say
        self.first_said = False
        self.whole_drawn = False
        self._waiting_since: float | None = None

    def plan_drawn(self, complete: bool) -> None:
        """The first look is on its way to the screen."""
        self._first_when_listed()
        if complete:
            self.whole_plan()

    def whole_plan(self) -> None:
        self.whole_drawn = True
        if self.first_said and self.say:
            self.app.call_after_refresh(self._say, "whole-plan", True)

    def _first_when_listed(self) -> None:
        if self.first_drawn.is_set():
            return  # a second first look (the log came back): nothing waits
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        # Git may fail to list them (a worker's error says so): the frame
        # is drawn without them after LISTING_WAIT.
        if not self.listed() and time.monotonic() - self._waiting_since < LISTING_WAIT:
            self.app.set_timer(_RECHECK_SECONDS, self._first_when_listed)
            return
        self.app.call_after_refresh(self._first_drawn)

    def _first_drawn(self) -> None:
        self.first_drawn.set()
        if not self.say:
            return
        self._say("first-frame", False)
        self.first_said = True
        if self.whole_drawn:
            self.app.call_after_refresh(self._say, "whole-plan", True)

    def _say(self, what: str, last: bool) -> None:
        print(frame_line(what), file=sys.__stderr__, flush=True)
        if last:
            self.app.exit()
