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
    """One batch of retention: how many lines it deleted, and whether the
    pass is over (it reached the lines to keep, or the end of the log)."""

    deleted: int
    done: bool


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

    def prune_progress(self, before: float, *, window: int = DEFAULT_WINDOW) -> PruneStep:
        """One batch: delete the progress lines written before ``before``
        among the next ``window`` ids. Call it again until ``done``."""
        with self._write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (PRUNED_THROUGH,)).fetchone()
            mark = int(row[0]) if row else 0
            low = conn.execute("SELECT min(id) FROM events WHERE id > ?", (mark,)).fetchone()[0]
            if low is None:
                return PruneStep(0, True)
            high = low + window - 1
            # The first event of the window to keep for its age: from there
            # on the log is younger than the cut (ids follow time), and the
            # next pass starts there.
            recent = conn.execute(
                "SELECT min(id) FROM events WHERE id BETWEEN ? AND ? AND at >= ?", (low, high, before)
            ).fetchone()[0]
            deleted = conn.execute(
                "DELETE FROM events WHERE id BETWEEN ? AND ? AND kind = 'progress' AND at < ?",
                (low, high, before),
            ).rowcount
            through = recent - 1 if recent is not None else high
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (PRUNED_THROUGH, str(through)),
            )
            newest = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        return PruneStep(deleted, recent is not None or high >= newest)

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
