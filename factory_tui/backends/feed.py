"""Following the execution log for changes written by any process.

``LogFeed`` has a connection of its own and asks SQLite's ``data_version``
whether anyone committed since it last looked; only then does it read the
events after its cursor and the tasks those events touched. Nothing is ever
re-read whole, so following a log of 100,000 events costs what the new
events cost.

The first look at a big base is what the first frame needs: how many tasks
each state holds, the plan's first rows and the newest events
(``first_look``); the whole plan and every event's id follow (``rest``),
read while the first frame is on screen. A base of a few thousand tasks is
read whole at once.
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
from factory_tui.model import STATE_ORDER, Event, State, Task

# Enough history for the Log pane's first screen and a little scrolling.
SNAPSHOT_RECENT_EVENTS = 300
MAX_EVENTS_PER_POLL = 5000
# A plan of up to this many tasks, and a log of up to this many events, is
# read whole for the first frame (a few tens of milliseconds); a bigger one
# shows its first FIRST_LOOK_ROWS rows and newest events first.
FIRST_LOOK_TASKS = 5000
FIRST_LOOK_EVENTS = 50_000
FIRST_LOOK_ROWS = 200


@dataclass(slots=True)
class Snapshot:
    """What the console starts from: ``tasks`` (the whole plan, or with
    ``complete`` false its first rows in the Plan's order), how many tasks
    each state holds, event ids (every event's, or the newest's) and the
    newest events."""

    tasks: list[Task]
    event_ids: array
    recent_events: list[Event]
    counts: dict[State, int] = field(default_factory=dict)
    complete: bool = True


@dataclass(slots=True)
class Rest:
    """The rest of a first look: the whole plan and every event's id."""

    tasks: list[Task]
    event_ids: array


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
        """Every task and every event's id, with the newest events; the
        feed follows from here."""
        return self._look(None, None)

    def first_look(self) -> Snapshot:
        """What the first frame needs; the feed follows from here. A plan
        of more than FIRST_LOOK_TASKS tasks comes as its first rows, a log
        of more than FIRST_LOOK_EVENTS events as its newest ids
        (``complete`` is then false: ``rest`` reads the whole)."""
        return self._look(FIRST_LOOK_TASKS, FIRST_LOOK_EVENTS)

    def _look(self, whole_tasks: int | None, whole_events: int | None) -> Snapshot:
        with self._lock:
            try:
                self._data_version = self._version()
                # One read transaction, so the tasks and the cursor agree.
                self._conn.execute("BEGIN")
                try:
                    counts = self._counts()
                    last = self._conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
                    whole_plan = whole_tasks is None or sum(counts.values()) <= whole_tasks
                    tasks = self._tasks.list_tasks(bodies=False) if whole_plan else self._first_rows(counts)
                    every_event = whole_events is None or last <= whole_events
                    start = 0 if every_event else max(0, last - SNAPSHOT_RECENT_EVENTS)
                    ids = self._ids_after(start)
                    rows = self._conn.execute(
                        f"SELECT {EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id",
                        (max(0, last - SNAPSHOT_RECENT_EVENTS),),
                    ).fetchall()
                finally:
                    self._conn.execute("COMMIT")
            except sqlite3.Error as error:
                raise describe_sqlite_error(self.path, error) from None
        self.cursor = last
        return Snapshot(tasks, ids, [event_from_row(row) for row in rows], counts, whole_plan and every_event)

    def rest(self) -> Rest:
        """The whole plan and every event's id, as they are now (a first
        look's rest; the feed's cursor stays where the first look left it,
        so the changes since come as changes)."""
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                try:
                    tasks = self._tasks.list_tasks(bodies=False)
                    ids = self._ids_after(0)
                finally:
                    self._conn.execute("COMMIT")
            except sqlite3.Error as error:
                raise describe_sqlite_error(self.path, error) from None
        return Rest(tasks, ids)

    def _counts(self) -> dict[State, int]:
        """How many tasks each state holds: a range of the plan's index
        (schema.py: idx_tasks_plan) per state, never a pass over the tasks."""
        return {
            state: self._conn.execute("SELECT count(*) FROM tasks WHERE state = ?", (state.value,)).fetchone()[0]
            for state in State
        }

    def _ids_after(self, start: int) -> array:
        ids = array("q")
        cursor = self._conn.execute("SELECT id FROM events WHERE id > ? ORDER BY id", (start,))
        while batch := cursor.fetchmany(20_000):
            ids.extend(row[0] for row in batch)
        return ids

    def _first_rows(self, counts: dict[State, int]) -> list[Task]:
        """The plan's first FIRST_LOOK_ROWS rows, in its order (by state,
        then priority, then id): a range of idx_tasks_plan per state."""
        seqs: list[int] = []
        for state in STATE_ORDER:
            wanted = FIRST_LOOK_ROWS - len(seqs)
            if wanted <= 0:
                break
            if counts.get(state):
                seqs.extend(row[0] for row in self._conn.execute(
                    "SELECT seq FROM tasks WHERE state = ? ORDER BY priority DESC, seq LIMIT ?",
                    (state.value, wanted),
                ))
        return self._tasks.get_tasks(f"T-{seq}" for seq in seqs)

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
