"""Following the execution log for changes written by any process.

``LogFeed`` has a connection of its own and asks SQLite's ``data_version``
whether anyone committed since it last looked; only then does it read the
events after its cursor and the tasks those events touched. Nothing is ever
re-read whole, so following a log of 100,000 events costs what the new
events cost.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.backends.log import (
    EVENT_COLUMNS,
    ExecutionLog,
    event_from_row,
)
from factory_tui.backends.schema import describe_sqlite_error, open_connection
from factory_tui.model import Event, Task

# Enough history for the Log pane's first screen and a little scrolling.
SNAPSHOT_RECENT_EVENTS = 300
MAX_EVENTS_PER_POLL = 5000


@dataclass(slots=True)
class Snapshot:
    tasks: list[Task]
    event_ids: array
    recent_events: list[Event]


@dataclass(slots=True)
class Changes:
    events: list[Event] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.tasks)


class LogFeed:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = open_connection(self.path)
        self._tasks = ExecutionLog(self._conn, self.path)
        self._lock = threading.Lock()
        self._data_version: int | None = None
        self.cursor = 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _version(self) -> int:
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def snapshot(self) -> Snapshot:
        """Every task and the newest events; the feed follows from here."""
        with self._lock:
            try:
                self._data_version = self._version()
                # One read transaction, so the tasks and the cursor agree.
                self._conn.execute("BEGIN")
                try:
                    tasks = self._tasks.list_tasks(bodies=False)
                    ids = array("q")
                    cursor = self._conn.execute("SELECT id FROM events ORDER BY id")
                    while batch := cursor.fetchmany(20_000):
                        ids.extend(row[0] for row in batch)
                    last = ids[-1] if ids else 0
                    rows = self._conn.execute(
                        f"SELECT {EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id",
                        (max(0, last - SNAPSHOT_RECENT_EVENTS),),
                    ).fetchall()
                finally:
                    self._conn.execute("COMMIT")
            except sqlite3.Error as error:
                raise describe_sqlite_error(self.path, error) from None
        self.cursor = last
        return Snapshot(tasks, ids, [event_from_row(row) for row in rows])

    def poll(self) -> Changes:
        """What changed since the last snapshot or poll (maybe nothing)."""
        with self._lock:
            try:
                version = self._version()
                if version == self._data_version:
                    return Changes()
                rows = self._conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?",
                    (self.cursor, MAX_EVENTS_PER_POLL),
                ).fetchall()
                if len(rows) < MAX_EVENTS_PER_POLL:
                    # Caught up: the next poll may skip the query again.
                    self._data_version = version
            except sqlite3.Error as error:
                raise describe_sqlite_error(self.path, error) from None
        events = [event_from_row(row) for row in rows]
        if events:
            self.cursor = events[-1].id
        touched = {e.task_id for e in events if e.task_id is not None}
        # A task's "blocked by" changes when a dependency changes state, but
        # the console computes that from the states it holds.
        tasks = self._tasks.get_tasks(touched) if touched else []
        return Changes(events, tasks)
