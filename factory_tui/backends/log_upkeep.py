"""The execution log's upkeep: progress retention (``[log]
keep_progress_days``) and what the log holds (its size, its events, the
oldest one) for ``factory status``.

Retention deletes progress lines only: the lines an agent reported while it
worked (a line a second per agent, most of a long-lived log). Their run's
transcript keeps them whole in the run folder and the run's end event keeps
its summary, so an old run loses nothing one would read. Transitions, notes,
messages, QA results and operator actions are never deleted: the events'
append-only trigger refuses any other delete (schema.py).

It runs in small batches, each one short write transaction over a window of
ids (events are appended in time order, so old lines have low ids), and the
engine pauses between them: other writers (agents' progress, the CLI, the
console) wait for one batch at most. How far it got is kept in ``meta``, so
that a later pass starts where the last one stopped instead of reading the
kept events again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factory_tui.backends.log import _Transaction

# meta's key: every progress line at or below this id is gone (or was
# never there): the next pass starts above it.
PRUNED_THROUGH = "progress_pruned_through"
# Ids a batch looks at: a few milliseconds of the write lock.
DEFAULT_WINDOW = 2000


@dataclass(frozen=True, slots=True)
class PruneStep:
    """One batch of retention: how many lines it deleted, whether the pass
    is over (it reached the lines to keep, or the end of the log), and the
    last id it looked at (the pass's next batch starts after it)."""

    deleted: int
    done: bool
    last_id: int


@dataclass(frozen=True, slots=True)
class LogFacts:
    """What the log holds: its files' bytes (the database and its
    write-ahead log), the bytes of pages free for reuse (deleted rows
    leave them; new events fill them before the file grows), how many
    events, and the time of the oldest."""

    bytes: int
    free_bytes: int
    events: int
    oldest_at: float | None

    def to_json(self) -> dict:
        return {"bytes": self.bytes, "free_bytes": self.free_bytes, "events": self.events,
                "oldest_event_at": self.oldest_at}


class LogUpkeep:
    """The upkeep methods of ``ExecutionLog``."""

    # Provided by ExecutionLog.
    path: Path
    _write: Callable[[], _Transaction]
    _read: Callable[[], _Transaction]

    def prune_progress(self, before: float, *, after: int | None = None, window: int = DEFAULT_WINDOW) -> PruneStep:
        """One batch: delete the progress lines written before ``before``
        among the ``window`` ids after ``after`` (None: where the last pass
        left off). A pass calls it again, with the step's ``last_id``,
        until the step is ``done``."""
        with self._write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (PRUNED_THROUGH,)).fetchone()
            mark = int(row[0]) if row else 0
            low = conn.execute("SELECT min(id) FROM events WHERE id > ?", (max(mark, after or 0),)).fetchone()[0]
            if low is None:
                return PruneStep(0, True, max(mark, after or 0))
            high = low + window - 1
            deleted = conn.execute(
                "DELETE FROM events WHERE id BETWEEN ? AND ? AND kind = 'progress' AND at < ?",
                (low, high, before),
            ).rowcount
            # The mark moves on while every progress line below it is gone:
            # the next pass starts at the first line kept (it may grow old
            # later); other events are kept for good.
            if conn.execute("SELECT min(id) FROM events WHERE id > ?", (mark,)).fetchone()[0] == low:
                kept = conn.execute(
                    "SELECT min(id) FROM events WHERE id BETWEEN ? AND ? AND kind = 'progress'", (low, high)
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (PRUNED_THROUGH, str(kept - 1 if kept is not None else high)),
                )
            # Ids follow time: once the window's newest event is younger
            # than the cut, the rest of the log is too. An event dated ahead
            # by a wrong clock can end a pass early only if it ends a
            # window; the next pass goes on past it.
            last = conn.execute(
                "SELECT at FROM events WHERE id <= ? ORDER BY id DESC LIMIT 1", (high,)
            ).fetchone()
            newest = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        return PruneStep(deleted, high >= newest or (last is not None and last[0] >= before), high)

    def log_facts(self) -> LogFacts:
        """The log's size, free pages, event count and oldest event."""
        with self._read() as conn:
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            oldest = conn.execute("SELECT at FROM events ORDER BY id LIMIT 1").fetchone()
            free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        size = 0
        for path in (self.path, Path(f"{self.path}-wal")):
            try:
                size += os.stat(path).st_size
            except OSError:
                pass
        return LogFacts(bytes=size, free_bytes=free_pages * page_size, events=events,
                        oldest_at=oldest[0] if oldest else None)
