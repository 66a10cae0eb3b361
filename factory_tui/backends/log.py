"""The execution log: the plan, every task's state, leases and the event
history, in one SQLite file that is also the queue.

``ExecutionLog`` owns every write to ``log.db``. Each transition runs in one
``BEGIN IMMEDIATE`` transaction together with the event that records it, so a
reader never sees a state change without its event. The claim is a single
conditional ``UPDATE … RETURNING``: there is no read-then-write window in which
two workers could take the same task.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from factory_tui.backends.schema import describe_sqlite_error, open_connection
from factory_tui.errors import (
    DependencyCycle,
    InvalidInput,
    LeaseLost,
    UnknownTask,
)
from factory_tui.model import (
    CREATABLE_STATES,
    EVENT_KIND,
    KIND_CREATED,
    KIND_DEPENDS,
    KIND_NOTE,
    KIND_PRIORITY,
    OPERATOR_ACTIONS,
    Action,
    Claim,
    Event,
    NewTask,
    State,
    Task,
    check_priority,
    check_title,
    next_state,
)

# --- The queue's statements, shared with benchmarks/bench_queue.py so that its
# raw-sqlite3 baseline runs exactly what we run. -------------------------------

TASK_COLUMNS = (
    "id, title, state, priority, attempts, body, profile, source, feedback, "
    "created_at, updated_at"
)

SQL_CLAIM = f"""
UPDATE tasks SET state = 'running', attempts = attempts + 1, updated_at = :now
WHERE seq = (
    SELECT t.seq FROM tasks AS t
    WHERE t.state = 'queued'
      AND NOT EXISTS (
          SELECT 1 FROM deps AS d JOIN tasks AS u ON u.id = d.depends_on
          WHERE d.task_id = t.id AND u.state != 'done')
    ORDER BY t.priority DESC, t.seq
    LIMIT 1)
  AND state = 'queued'
RETURNING {TASK_COLUMNS}
"""
SQL_LEASE_INSERT = (
    "INSERT INTO leases (token, task_id, worker, claimed_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
SQL_EVENT_INSERT = (
    "INSERT INTO events (at, task_id, kind, actor, from_state, to_state, note, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SQL_HEARTBEAT = (
    "UPDATE leases SET expires_at = ? WHERE token = ? AND released_at IS NULL "
    "RETURNING task_id"
)
SQL_LEASE_RELEASE = (
    "UPDATE leases SET released_at = ?, outcome = ? "
    "WHERE token = ? AND released_at IS NULL RETURNING task_id, worker"
)
SQL_FINISH = (
    "UPDATE tasks SET state = ?, updated_at = ? WHERE id = ? AND state = 'running' "
    f"RETURNING {TASK_COLUMNS}"
)
SQL_TASK_INSERT = (
    "INSERT INTO tasks (seq, id, title, body, state, priority, attempts, profile, "
    "source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
)

DEFAULT_LEASE_SECONDS = 30.0


def task_from_row(row: Sequence) -> Task:
    return Task(
        id=row[0],
        title=row[1],
        state=State(row[2]),
        priority=row[3],
        attempts=row[4],
        body=row[5],
        profile=row[6],
        source=row[7],
        feedback=row[8],
        created_at=row[9] or 0.0,
        updated_at=row[10] or 0.0,
    )


EVENT_COLUMNS = "id, at, task_id, kind, actor, from_state, to_state, note, data"


def event_from_row(row: Sequence) -> Event:
    return Event(
        id=row[0],
        at=row[1],
        task_id=row[2],
        kind=row[3],
        actor=row[4],
        from_state=row[5],
        to_state=row[6],
        note=row[7],
        data=json.loads(row[8]) if row[8] else {},
    )


class ExecutionLog:
    """Every operation on the plan and the queue. Safe to share between
    threads: one lock serialises use of the connection."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conn = conn
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        create: bool = False,
        busy_timeout_ms: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> ExecutionLog:
        path = Path(path)
        conn = open_connection(path, create=create, busy_timeout_ms=busy_timeout_ms)
        return cls(conn, path, clock=clock)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ExecutionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -----------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with the write lock up front so that
        a read inside it cannot be invalidated by another writer."""
        with self._lock, self._sqlite_errors():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._sqlite_errors():
            yield self._conn

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise describe_sqlite_error(self.path, error) from None

    def _event(
        self,
        conn: sqlite3.Connection,
        at: float,
        task_id: str | None,
        kind: str,
        actor: str,
        from_state: str | None = None,
        to_state: str | None = None,
        note: str | None = None,
        data: dict | None = None,
    ) -> None:
        conn.execute(
            SQL_EVENT_INSERT,
            (
                at,
                task_id,
                kind,
                actor,
                from_state,
                to_state,
                note or None,
                json.dumps(data) if data else None,
            ),
        )

    # --- reading the plan -------------------------------------------------

    def _task_row(self, conn: sqlite3.Connection, task_id: str) -> Task:
        row = conn.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        if row is None:
            raise UnknownTask(task_id)
        return task_from_row(row)

    def _with_dependencies(
        self, conn: sqlite3.Connection, tasks: list[Task]
    ) -> list[Task]:
        if not tasks:
            return tasks
        by_id = {task.id: task for task in tasks}
        if len(tasks) == 1:
            rows = conn.execute(
                "SELECT d.task_id, d.depends_on, u.state FROM deps AS d "
                "JOIN tasks AS u ON u.id = d.depends_on WHERE d.task_id = ? "
                "ORDER BY d.rowid",
                (tasks[0].id,),
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT d.task_id, d.depends_on, u.state FROM deps AS d "
                "JOIN tasks AS u ON u.id = d.depends_on ORDER BY d.rowid"
            ).fetchall()
        depends: dict[str, list[str]] = {}
        blocked: dict[str, list[str]] = {}
        for task_id, depends_on, state in rows:
            if task_id not in by_id:
                continue
            depends.setdefault(task_id, []).append(depends_on)
            if state != State.DONE:
                blocked.setdefault(task_id, []).append(depends_on)
        for task_id, ids in depends.items():
            by_id[task_id].depends_on = tuple(ids)
            by_id[task_id].blocked_by = tuple(blocked.get(task_id, ()))
        return tasks

    def get_task(self, task_id: str) -> Task:
        with self._read() as conn:
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """The tasks among ``task_ids`` that exist, with their dependencies."""
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return []
        tasks: list[Task] = []
        with self._read() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {TASK_COLUMNS} FROM tasks WHERE id IN ({marks})", chunk
                ).fetchall()
                tasks.extend(task_from_row(row) for row in rows)
            for task in tasks:
                self._with_dependencies(conn, [task])
        return tasks

    def list_tasks(self, states: Iterable[State] | None = None) -> list[Task]:
        """All tasks (or those in ``states``) in id order, with dependencies."""
        with self._read() as conn:
            if states is None:
                rows = conn.execute(
                    f"SELECT {TASK_COLUMNS} FROM tasks ORDER BY seq"
                ).fetchall()
            else:
                wanted = [State(s).value for s in states]
                marks = ",".join("?" * len(wanted))
                rows = conn.execute(
                    f"SELECT {TASK_COLUMNS} FROM tasks WHERE state IN ({marks}) "
                    "ORDER BY seq",
                    wanted,
                ).fetchall()
            return self._with_dependencies(conn, [task_from_row(r) for r in rows])

    def dependents(self, task_id: str) -> list[Task]:
        """The tasks that depend on ``task_id``."""
        with self._read() as conn:
            self._task_row(conn, task_id)
            rows = conn.execute(
                f"SELECT {', '.join('t.' + c for c in TASK_COLUMNS.split(', '))} "
                "FROM deps AS d JOIN tasks AS t ON t.id = d.task_id "
                "WHERE d.depends_on = ? ORDER BY t.seq",
                (task_id,),
            ).fetchall()
            return self._with_dependencies(conn, [task_from_row(r) for r in rows])

    def counts(self) -> dict[State, int]:
        """How many tasks are in each state (every state present, maybe 0)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT state, count(*) FROM tasks GROUP BY state"
            ).fetchall()
        counts = {state: 0 for state in State}
        for state, n in rows:
            counts[State(state)] = n
        return counts

    # --- changing the plan ------------------------------------------------

    def add_task(self, new: NewTask, *, actor: str) -> Task:
        return self.add_tasks([new], actor=actor)[0]

    def add_tasks(
        self,
        new_tasks: Sequence[NewTask],
        *,
        actor: str,
        labels: Sequence[str | None] = (),
        done: Sequence[bool] = (),
    ) -> list[Task]:
        """Create tasks in order, in one transaction: all or nothing.

        An ``after`` entry is a task id, or a label given in ``labels`` to an
        earlier or later task of the same batch. ``done`` marks tasks that are
        created already done (an imported checklist's ticked items).
        """
        now = self._clock()
        created: list[Task] = []
        with self._write() as conn:
            next_seq = conn.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM tasks"
            ).fetchone()[0]
            by_label: dict[str, str] = {}
            for offset, label in enumerate(labels):
                if label:
                    by_label[label] = f"T-{next_seq + offset}"
            for offset, new in enumerate(new_tasks):
                title = check_title(new.title)
                priority = check_priority(new.priority)
                is_done = bool(done[offset]) if offset < len(done) else False
                state = State.DONE if is_done else State(new.state)
                if not is_done and state not in CREATABLE_STATES:
                    raise InvalidInput(
                        f"a new task can start as {', '.join(CREATABLE_STATES)}, not {state}"
                    )
                seq = next_seq + offset
                task_id = f"T-{seq}"
                conn.execute(
                    SQL_TASK_INSERT,
                    (seq, task_id, title, new.body or "", state.value, priority,
                     new.profile, new.source, now, now),
                )
                self._event(
                    conn, now, task_id, KIND_CREATED, actor, None, state.value,
                    title if len(title) <= 200 else title[:199] + "…",
                    {"source": new.source} if new.source else None,
                )
                created.append(task_id)
            for offset, new in enumerate(new_tasks):
                task_id = created[offset]
                for ref in new.after:
                    target = by_label.get(ref, ref)
                    self._add_dependency(conn, now, task_id, target, actor)
            return self._with_dependencies(
                conn, [self._task_row(conn, task_id) for task_id in created]
            )

    def add_dependency(self, task_id: str, depends_on: str, *, actor: str) -> Task:
        with self._write() as conn:
            self._add_dependency(conn, self._clock(), task_id, depends_on, actor)
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    def _add_dependency(
        self, conn: sqlite3.Connection, now: float, task_id: str, depends_on: str,
        actor: str,
    ) -> None:
        self._task_row(conn, task_id)
        self._task_row(conn, depends_on)
        if task_id == depends_on:
            raise DependencyCycle([task_id, task_id])
        path = self._dependency_path(conn, depends_on, task_id)
        if path is not None:
            raise DependencyCycle([task_id, *path])
        cursor = conn.execute(
            "INSERT OR IGNORE INTO deps (task_id, depends_on) VALUES (?, ?)",
            (task_id, depends_on),
        )
        if cursor.rowcount:
            self._event(
                conn, now, task_id, KIND_DEPENDS, actor,
                note=f"depends on {depends_on}", data={"on": depends_on},
            )

    @staticmethod
    def _dependency_path(
        conn: sqlite3.Connection, start: str, goal: str
    ) -> list[str] | None:
        """A chain of dependencies from ``start`` down to ``goal``, if any.

        Breadth first, visiting each task once: a recursive query that follows
        every path takes exponential time on a plan where each task depends on
        the two before it (30 such tasks took seconds per added dependency).
        """
        parent: dict[str, str | None] = {start: None}
        frontier = [start]
        while frontier and goal not in parent:
            reached: list[str] = []
            for first in range(0, len(frontier), 500):
                chunk = frontier[first : first + 500]
                rows = conn.execute(
                    "SELECT task_id, depends_on FROM deps WHERE task_id IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY rowid",
                    chunk,
                ).fetchall()
                for task_id, depends_on in rows:
                    if depends_on not in parent:
                        parent[depends_on] = task_id
                        reached.append(depends_on)
            frontier = reached
        if goal not in parent:
            return None
        path = [goal]
        while (up := parent[path[-1]]) is not None:
            path.append(up)
        return path[::-1]

    def set_priority(self, task_id: str, priority: int, *, actor: str) -> Task:
        priority = check_priority(priority)
        now = self._clock()
        with self._write() as conn:
            task = self._task_row(conn, task_id)
            if task.priority != priority:
                conn.execute(
                    "UPDATE tasks SET priority = ?, updated_at = ? WHERE id = ?",
                    (priority, now, task_id),
                )
                self._event(
                    conn, now, task_id, KIND_PRIORITY, actor,
                    note=f"priority {task.priority} → {priority}",
                    data={"from": task.priority, "to": priority},
                )
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    def add_note(self, task_id: str | None, note: str, *, actor: str) -> Event:
        """A free-text entry in the log, about a task or the whole base."""
        if not note.strip():
            raise InvalidInput("a note needs some text")
        now = self._clock()
        with self._write() as conn:
            if task_id is not None:
                self._task_row(conn, task_id)
            self._event(conn, now, task_id, KIND_NOTE, actor, note=note)
            row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE id = last_insert_rowid()"
            ).fetchone()
        return event_from_row(row)

    # --- operator actions -------------------------------------------------

    def apply(
        self, task_id: str, action: Action, *, actor: str, note: str | None = None
    ) -> Task:
        """An operator action (approve, requeue, cancel, hold, release)."""
        action = Action(action)
        if action not in OPERATOR_ACTIONS:
            raise InvalidInput(f"{action} is the engine's to take, not an operator's")
        now = self._clock()
        with self._write() as conn:
            task = self._task_row(conn, task_id)
            target = next_state(task_id, task.state, action)
            data = None
            if task.state is State.RUNNING:
                # The worker learns at its next heartbeat that the task is gone.
                released = conn.execute(
                    "UPDATE leases SET released_at = ?, outcome = ? "
                    "WHERE task_id = ? AND released_at IS NULL RETURNING token, worker",
                    (now, EVENT_KIND[action], task_id),
                ).fetchall()
                if released:
                    data = {"lease": released[0][0], "worker": released[0][1]}
            if action is Action.REQUEUE:
                conn.execute(
                    "UPDATE tasks SET state = ?, feedback = ?, updated_at = ? WHERE id = ?",
                    (target.value, note or None, now, task_id),
                )
            else:
                conn.execute(
                    "UPDATE tasks SET state = ?, updated_at = ? WHERE id = ?",
                    (target.value, now, task_id),
                )
            self._event(
                conn, now, task_id, EVENT_KIND[action], actor,
                task.state.value, target.value, note, data,
            )
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    # --- the queue: what the engine calls ---------------------------------

    def claim_next(
        self, worker: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> Claim | None:
        """Take the ready task of highest priority, or None if none is ready.

        Ready: queued, and every dependency done. The task moves to running
        under a new lease that the worker must renew with ``heartbeat``.
        """
        now = self._clock()
        token = secrets.token_hex(8)
        expires = now + lease_seconds
        with self._write() as conn:
            row = conn.execute(SQL_CLAIM, {"now": now}).fetchone()
            if row is None:
                return None
            task = task_from_row(row)
            conn.execute(SQL_LEASE_INSERT, (token, task.id, worker, now, expires))
            conn.execute(
                SQL_EVENT_INSERT,
                (now, task.id, "claimed", worker, "queued", "running",
                 f"attempt {task.attempts}", json.dumps({"lease": token})),
            )
        return Claim(task=task, token=token, worker=worker, expires_at=expires)

    def heartbeat(
        self, token: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> float:
        """Renew a live lease; returns its new expiry. LeaseLost if the lease
        was reaped or its task cancelled meanwhile."""
        expires = self._clock() + lease_seconds
        with self._write() as conn:
            row = conn.execute(SQL_HEARTBEAT, (expires, token)).fetchone()
            if row is None:
                raise self._lease_lost(conn, token)
        return expires

    def finish(
        self, token: str, outcome: State, *, note: str | None = None,
        data: dict | None = None,
    ) -> Task:
        """End a run: the task goes to review (the agent finished) or failed.
        LeaseLost if the lease is no longer live; nothing changes then."""
        outcome = State(outcome)
        action = {State.REVIEW: Action.FINISH, State.FAILED: Action.FAIL}.get(outcome)
        if action is None:
            raise InvalidInput(f"a run finishes in review or failed, not {outcome}")
        now = self._clock()
        with self._write() as conn:
            released = conn.execute(
                SQL_LEASE_RELEASE, (now, EVENT_KIND[action], token)
            ).fetchone()
            if released is None:
                raise self._lease_lost(conn, token)
            task_id, worker = released
            row = conn.execute(SQL_FINISH, (outcome.value, now, task_id)).fetchone()
            if row is None:  # pragma: no cover - a live lease implies running
                raise LeaseLost(f"{task_id} is no longer running")
            conn.execute(
                SQL_EVENT_INSERT,
                (now, task_id, EVENT_KIND[action], worker, "running", outcome.value,
                 note or None, json.dumps({"lease": token, **(data or {})})),
            )
        return task_from_row(row)

    def _lease_lost(self, conn: sqlite3.Connection, token: str) -> LeaseLost:
        row = conn.execute(
            "SELECT task_id, outcome FROM leases WHERE token = ?", (token,)
        ).fetchone()
        if row is None:
            return LeaseLost(f"no lease {token}")
        task_id, outcome = row
        why = "it expired and the task went back to the queue" if outcome == "expired" else f"the task was {outcome}"
        return LeaseLost(f"the lease on {task_id} is gone: {why}")

    def reap_expired(self, *, actor: str = "reaper") -> list[str]:
        """Send every running task whose lease has expired back to queued.
        Its worktree and work are untouched; the next claim goes on there."""
        now = self._clock()
        with self._write() as conn:
            expired = conn.execute(
                "UPDATE leases SET released_at = ?, outcome = 'expired' "
                "WHERE released_at IS NULL AND expires_at < ? "
                "RETURNING token, task_id, worker, expires_at",
                (now, now),
            ).fetchall()
            reaped = []
            for token, task_id, worker, expires_at in expired:
                changed = conn.execute(
                    "UPDATE tasks SET state = 'queued', updated_at = ? "
                    "WHERE id = ? AND state = 'running'",
                    (now, task_id),
                ).rowcount
                if not changed:
                    continue
                reaped.append(task_id)
                self._event(
                    conn, now, task_id, EVENT_KIND[Action.EXPIRE], actor,
                    "running", "queued",
                    f"lease of {worker} expired {now - expires_at:.0f}s ago; back to queued",
                    {"lease": token, "worker": worker},
                )
        return reaped

    def live_leases(self) -> list[tuple[str, str, str, float]]:
        """(token, task_id, worker, expires_at) for every unreleased lease."""
        with self._read() as conn:
            return conn.execute(
                "SELECT token, task_id, worker, expires_at FROM leases "
                "WHERE released_at IS NULL ORDER BY claimed_at"
            ).fetchall()

    # --- the event history ------------------------------------------------

    def last_event_id(self) -> int:
        with self._read() as conn:
            return conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def events(
        self,
        *,
        task_id: str | None = None,
        kinds: Iterable[str] | None = None,
        after_id: int = 0,
        last: int | None = None,
    ) -> list[Event]:
        """Events oldest first; ``last`` keeps only the newest N."""
        where, params = event_filter(task_id=task_id, kinds=kinds)
        where.append("id > ?")
        params.append(after_id)
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)}"
        with self._read() as conn:
            if last is not None:
                rows = conn.execute(
                    f"{sql} ORDER BY id DESC LIMIT ?", [*params, last]
                ).fetchall()
                rows.reverse()
            else:
                rows = conn.execute(f"{sql} ORDER BY id", params).fetchall()
        return [event_from_row(row) for row in rows]


def event_filter(
    *,
    task_id: str | None = None,
    kinds: Iterable[str] | None = None,
    texts: Iterable[str] = (),
) -> tuple[list[str], list]:
    """WHERE clauses (joined by AND) and their parameters for an event query."""
    where: list[str] = []
    params: list = []
    if task_id is not None:
        where.append("task_id = ?")
        params.append(task_id)
    kinds = list(kinds or ())
    if kinds:
        where.append(f"kind IN ({','.join('?' * len(kinds))})")
        params.extend(kinds)
    for text in texts:
        # Same rule as LogFilter.matches: the word appears in the note or actor.
        # py_lower (registered by open_connection) is str.lower, so that
        # non-ASCII text folds as it does in Python.
        where.append("instr(py_lower(coalesce(note, '') || ' ' || actor), ?)")
        params.append(text.lower())
    if not where:
        where.append("1")
    return where, params


class LogReader:
    """Read-only queries for the console, on a connection of their own so
    that they never wait behind the console's writes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = open_connection(self.path)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as error:
                raise describe_sqlite_error(self.path, error) from None

    def event_ids(
        self,
        *,
        task_id: str | None = None,
        kinds: Iterable[str] | None = None,
        texts: Iterable[str] = (),
    ) -> array:
        """The ids of the matching events, oldest first, as a compact array."""
        where, params = event_filter(task_id=task_id, kinds=kinds, texts=texts)
        ids = array("q")
        with self._read() as conn:
            cursor = conn.execute(
                f"SELECT id FROM events WHERE {' AND '.join(where)} ORDER BY id",
                params,
            )
            while batch := cursor.fetchmany(10_000):
                ids.extend(row[0] for row in batch)
        return ids

    def events_by_id(self, ids: Sequence[int]) -> list[Event]:
        if not ids:
            return []
        events: list[Event] = []
        with self._read() as conn:
            lo, hi = min(ids), max(ids)
            if hi - lo < 4 * len(ids):
                # A contiguous page: one range scan beats a long IN list.
                wanted = set(ids)
                rows = conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE id BETWEEN ? AND ?",
                    (lo, hi),
                ).fetchall()
                events = [event_from_row(r) for r in rows if r[0] in wanted]
            else:
                for start in range(0, len(ids), 500):
                    chunk = list(ids[start : start + 500])
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        f"SELECT {EVENT_COLUMNS} FROM events WHERE id IN ({marks})",
                        chunk,
                    ).fetchall()
                    events.extend(event_from_row(r) for r in rows)
        return events

    def task_history(self, task_id: str) -> list[Event]:
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE task_id = ? ORDER BY id",
                (task_id,),
            ).fetchall()
        return [event_from_row(r) for r in rows]
