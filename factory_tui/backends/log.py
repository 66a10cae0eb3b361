"""The execution log: the plan, every task's state, its lease and the event
history, in one SQLite file that is also the queue.

``ExecutionLog`` owns every write to ``log.db``. Each transition runs in one
``BEGIN IMMEDIATE`` transaction together with the event that records it, so a
reader never sees a state change without its event. The claim is a single
conditional ``UPDATE … RETURNING``: there is no read-then-write window in which
two workers could take the same task. Readiness is kept, not searched for:
each task counts its blockers (dependencies not yet done), kept by the
schema's triggers in the transaction of every change that moves the count,
so the claim takes the head of an index of ready tasks, as cheaply behind
100,000 waiting tasks as behind none.

A task's lease (token, worker, expiry) sits on its own row, so claiming and
finishing write as little as a queue can: the lease is live while its token
is set, and ending it clears the token. Its history is in the events
(``claimed``, ``finished``, ``failed``, ``expired``, ``cancelled``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from factory_tui.artifacts_model import Landing
from factory_tui.backends.documents_log import DocumentRecords
from factory_tui.backends.log_upkeep import LogUpkeep
from factory_tui.backends.mail_log import MailRecords
from factory_tui.backends.plan_log import PlanRecords
from factory_tui.backends.qa_log import QaRecords
from factory_tui.backends.run_log import RunRecords
from factory_tui.backends.schema import DEFAULT_SYNCHRONOUS, describe_sqlite_error, open_connection
from factory_tui.backends.source_log import SourceRecords
from factory_tui.dependency_graph import find_cycle
from factory_tui.errors import (
    DependencyCycle,
    InvalidInput,
    LeaseLost,
    UnknownTask,
)
from factory_tui.model import (
    CREATABLE_STATES,
    EVENT_KIND,
    KIND_ADOPTED,
    KIND_CREATED,
    KIND_DEPENDS,
    KIND_LABELS,
    KIND_NOTE,
    KIND_PRIORITY,
    KIND_PROGRESS,
    KIND_UNDEPENDS,
    KIND_WARNING,
    OPERATOR_ACTIONS,
    RUN_END_KINDS,
    WAITING_STATES,
    Action,
    Claim,
    Event,
    Failure,
    NeverRuns,
    NewTask,
    State,
    Task,
    Totals,
    Usage,
    check_labels,
    check_priority,
    check_title,
    failure_of,
    never_runs,
    next_state,
    normalize_task_id,
    task_seq,
)

# --- The queue's statements, shared with benchmarks/bench_queue.py so that its
# raw-sqlite3 baseline runs exactly what we run. -------------------------------

# A row of ``ExecutionLog.plan_listing``: seq, state, priority, attempts,
# the ids of the dependencies not yet done ("T-3,T-4", or None), title.
ListedTask = tuple[int, str, int, int, "str | None", str]

TASK_COLUMNS = (
    "seq, title, state, priority, attempts, profile, source, feedback, "
    "created_at, updated_at, started_at, progress, branch_start, labels"
)
# Rows that carry more than the task: the extra columns start here.
EXTRA = 14

# Ready: queued with no blockers (dependencies not yet done; the count is
# kept by the schema's triggers). The claim takes the head of the ready
# index, a range scan however many queued tasks wait behind dependencies.
# INDEXED BY: the ready index is the claim's whole design. Without it the
# planner takes the plan's index (idx_tasks_plan: state first) for
# ``state = 'queued'`` and walks every blocked queued task before a ready one.
SQL_CLAIM = f"""
UPDATE tasks SET state = 'running', attempts = attempts + 1, updated_at = :now,
       started_at = :now, progress = NULL,
       lease_token = 'T-' || seq || ':' || :secret, lease_worker = :worker,
       lease_expires = :expires, run_secret = :run_secret
WHERE seq = (
    SELECT seq FROM tasks INDEXED BY idx_tasks_ready WHERE state = 'queued' AND blockers = 0
    ORDER BY priority DESC, seq LIMIT 1)
  AND state = 'queued'
RETURNING {TASK_COLUMNS}, lease_token,
          (SELECT body FROM task_bodies AS b WHERE b.seq = tasks.seq)
"""
SQL_READY = "SELECT 1 FROM tasks INDEXED BY idx_tasks_ready WHERE state = 'queued' AND blockers = 0 LIMIT 1"
SQL_EVENT_INSERT = (
    "INSERT INTO events (at, task_id, kind, actor, from_state, to_state, note, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SQL_HEARTBEAT = (
    "UPDATE tasks SET lease_expires = ? "
    "WHERE seq = ? AND lease_token = ? AND state IN ('running', 'checking') RETURNING seq"
)
SQL_FINISH = (
    "UPDATE tasks SET state = ?, updated_at = ?, lease_token = NULL "
    "WHERE seq = ? AND lease_token = ? AND state = 'running' "
    f"RETURNING {TASK_COLUMNS}, lease_worker"
)
# To checking: the lease stays, for the check.
SQL_CHECK = (
    "UPDATE tasks SET state = ?, updated_at = ? "
    "WHERE seq = ? AND lease_token = ? AND state = 'running' "
    f"RETURNING {TASK_COLUMNS}, lease_worker"
)
SQL_TASK_INSERT = (
    "INSERT INTO tasks (seq, title, state, priority, attempts, profile, source, "
    "created_at, updated_at, labels) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?)"
)
# One task, its id the next rowid (tasks are never deleted, so max + 1).
SQL_TASK_INSERT_NEXT = (
    "INSERT INTO tasks (title, state, priority, attempts, profile, source, "
    "created_at, updated_at, labels) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?) RETURNING seq"
)
SQL_BODY_INSERT = "INSERT INTO task_bodies (seq, body) VALUES (?, ?)"

DEFAULT_LEASE_SECONDS = 30.0
# The runs' cost is summed per this many seconds (schema.py: usage_buckets).
USAGE_BUCKET_SECONDS = 900
# A full commit id: sha1 (40 hex digits) or sha256 (64).
_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_TASK_ID = re.compile(r"T-[1-9][0-9]{0,8}")


# A dict look-up, not State(…): a 100,000-task plan is read in a third less time.
_STATES = {state.value: state for state in State}


# The few values many tasks share (agent profiles, sources, sets of
# labels), one object each: a 100,000-task plan holds two profile names, not
# 100,000 copies of them (some 8 MB). Bounded: past it, values go unshared.
_SHARED_LIMIT = 4096
_shared_strings: dict[str, str] = {}
_shared_labels: dict[str, tuple[str, ...]] = {}


def _shared(value: str | None) -> str | None:
    if value is None:
        return None
    found = _shared_strings.get(value)
    if found is not None:
        return found
    if len(_shared_strings) < _SHARED_LIMIT:
        _shared_strings[value] = value
    return value


def _labels(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    found = _shared_labels.get(raw)
    if found is not None:
        return found
    labels = tuple(json.loads(raw))
    if len(_shared_labels) < _SHARED_LIMIT:
        _shared_labels[raw] = labels
    return labels


def task_from_row(row: Sequence, body: str = "") -> Task:
    return Task(
        id=f"T-{row[0]}",
        title=row[1],
        state=_STATES.get(row[2]) or State(row[2]),
        priority=row[3],
        attempts=row[4],
        body=body,
        profile=_shared(row[5]),
        source=_shared(row[6]),
        feedback=row[7],
        created_at=row[8],
        updated_at=row[9],
        started_at=row[10],
        progress=row[11],
        branch_start=row[12],
        labels=_labels(row[13]),
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


def new_run_secret() -> tuple[str, str]:
    """The random part of a fresh agent secret, and the sha256 (hex) the log
    keeps of it: the log's file never holds a secret an agent could be
    impersonated with. The agent is given ``T-3:<random part>``, so that
    checking it is a look-up by the task's key."""
    random_part = secrets.token_hex(32)
    return random_part, secret_hash(random_part)


def secret_hash(random_part: str) -> str:
    return hashlib.sha256(random_part.encode("utf-8", "surrogateescape")).hexdigest()


def lease_data(token: str) -> str:
    """An event's data naming only its lease: what ``json.dumps({"lease":
    token})`` writes, without the encoder (a transition's data, every time).
    A token is ``T-<n>:<hex>``, made by the claim: nothing in it needs
    escaping, and the statement that writes the event matched it first."""
    return f'{{"lease": "{token}"}}'


# How a run can end (``finish``), and the action each is.
_RUN_ENDS = {State.REVIEW: Action.FINISH, State.FAILED: Action.FAIL, State.CHECKING: Action.CHECK}


def task_of_token(token: str) -> str:
    """The task a lease token is for: tokens read ``T-3:9f…`` so that a
    heartbeat finds its task by the task's key."""
    task_id, colon, _ = token.partition(":")
    try:
        if not colon:
            raise InvalidInput(token)
        return normalize_task_id(task_id)
    except InvalidInput:
        raise LeaseLost(f"no lease {token!r}: not a lease token") from None


class _Transaction:
    """``with log._write() as conn``: the log's lock, ``BEGIN IMMEDIATE``,
    and COMMIT or ROLLBACK, with sqlite3 errors told as one line. A class
    rather than a generator: the queue enters one per operation.

    A write begun inside another write of the same thread joins it: the
    outer one commits or rolls back the whole (``ExecutionLog.transaction``
    makes several operations one)."""

    __slots__ = ("_log", "_write", "_joined")

    def __init__(self, log: ExecutionLog, write: bool) -> None:
        self._log = log
        self._write = write
        self._joined = False

    def __enter__(self) -> sqlite3.Connection:
        log = self._log
        log._lock.acquire()
        if self._write:
            if log._writing:
                self._joined = True
                return log._conn
            try:
                log._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                log._lock.release()
                raise describe_sqlite_error(log.path, error) from None
            log._writing = True
        return log._conn

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        log = self._log
        conn = log._conn
        try:
            if self._write and not self._joined:
                log._writing = False
                if error is None:
                    try:
                        conn.execute("COMMIT")
                    except sqlite3.Error as failure:
                        error = failure
                if error is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error):
                raise describe_sqlite_error(log.path, error) from None
        finally:
            log._lock.release()


@dataclass(frozen=True, slots=True)
class TaskBatch:
    """New tasks that ``ExecutionLog.check_tasks`` found fit to be written:
    per task (title, state, priority, body, profile, source, labels), and its
    dependencies as (task's index, index in the batch or id of a task
    already in the log), each once and in the order given."""

    rows: list[tuple[str, State, int, str, str | None, str | None, tuple[str, ...]]]
    edges: list[tuple[int, int | str]]
    # The id the first task would get, as the check saw the log.
    first: int


def _checked_row(
    new: NewTask, is_done: bool
) -> tuple[str, State, int, str, str | None, str | None, tuple[str, ...]]:
    """A new task's row as written (title, state, priority, body, profile,
    source, labels), every field checked; ``is_done``: created done (an
    imported checklist's ticked item)."""
    title = check_title(new.title)
    priority = check_priority(new.priority)
    state = State.DONE if is_done else State(new.state)
    if not is_done and state not in CREATABLE_STATES:
        raise InvalidInput(f"a new task can start as {', '.join(CREATABLE_STATES)}, not {state}")
    return title, state, priority, new.body or "", new.profile, new.source, check_labels(new.labels)


def _created_note(title: str) -> str:
    """A ``created`` event's note: the title, cut to a row's length."""
    return title if len(title) <= 200 else title[:199] + "…"


def _batch_writes(
    batch: TaskBatch, first: int, now: float, actor: str
) -> list[tuple[str, list[tuple]]]:
    """The statements that write ``batch`` with ids from ``T-{first}`` on,
    each with its rows for ``executemany``: tasks, bodies, a ``created``
    event per task, dependencies, a ``depends`` event per dependency."""
    rows = batch.rows
    sources = {source: json.dumps({"source": source}) for *_, source, _ in rows if source}
    targets = [
        first + target if isinstance(target, int) else task_seq(target)
        for _, target in batch.edges
    ]
    return [
        (
            SQL_TASK_INSERT,
            [
                (first + index, title, state.value, priority, profile, source, now, now,
                 json.dumps(list(labels)) if labels else None)
                for index, (title, state, priority, _, profile, source, labels) in enumerate(rows)
            ],
        ),
        (SQL_BODY_INSERT, [(first + index, row[3]) for index, row in enumerate(rows) if row[3]]),
        (
            SQL_EVENT_INSERT,
            [
                (now, f"T-{first + index}", KIND_CREATED, actor, None, state.value,
                 _created_note(title), sources.get(source) if source else None)
                for index, (title, state, _, _, _, source, _) in enumerate(rows)
            ],
        ),
        (
            "INSERT INTO deps (task, depends_on) VALUES (?, ?)",
            [(first + index, target) for (index, _), target in zip(batch.edges, targets, strict=True)],
        ),
        (
            SQL_EVENT_INSERT,
            # A task id needs no JSON escaping: the data is what
            # json.dumps({"on": id}) writes.
            [
                (now, f"T-{first + index}", KIND_DEPENDS, actor, None, None,
                 f"depends on T-{target}", f'{{"on": "T-{target}"}}')
                for (index, _), target in zip(batch.edges, targets, strict=True)
            ],
        ),
    ]


class ExecutionLog(QaRecords, MailRecords, PlanRecords, RunRecords, SourceRecords, DocumentRecords, LogUpkeep):
    """Every operation on the plan and the queue. Safe to share between
    threads: one lock serialises use of the connection. Quality
    assurance's part (checking, QA runs) is in backends/qa_log.py, mail's
    in backends/mail_log.py, greenfield's (drafts, proposals) in
    backends/plan_log.py, the run index in backends/run_log.py, imported
    plans' in backends/source_log.py, the living documents' (what prompts
    read, the session history) in backends/documents_log.py, the log's
    upkeep (progress retention, its size) in backends/log_upkeep.py."""

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
        # True while this log's connection is in a write transaction (read
        # and set under the lock): a write begun then joins it.
        self._writing = False

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        create: bool = False,
        busy_timeout_ms: int | None = None,
        synchronous: str = DEFAULT_SYNCHRONOUS,
        clock: Callable[[], float] = time.time,
    ) -> ExecutionLog:
        """``synchronous``: what each commit waits for, ``[log] synchronous``
        (schema.SYNCHRONOUS)."""
        path = Path(path)
        conn = open_connection(
            path, create=create, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous,
        )
        return cls(conn, path, clock=clock)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ExecutionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -----------------------------------------------------

    def _write(self) -> _Transaction:
        """One write transaction, taken with the write lock up front so that
        a read inside it cannot be invalidated by another writer."""
        return _Transaction(self, write=True)

    def _read(self) -> _Transaction:
        return _Transaction(self, write=False)

    def transaction(self) -> _Transaction:
        """``with log.transaction():`` the writes made inside (by this
        thread) are one transaction: all of them, or none if anything in
        the block raises (or the process dies before its end)."""
        return _Transaction(self, write=True)

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
            f"SELECT {TASK_COLUMNS}, coalesce(b.body, '') FROM tasks "
            "LEFT JOIN task_bodies AS b USING (seq) WHERE seq = ?",
            (task_seq(task_id),),
        ).fetchone()
        if row is None:
            raise UnknownTask(task_id)
        return task_from_row(row, row[EXTRA])

    def _with_dependencies(
        self, conn: sqlite3.Connection, tasks: list[Task]
    ) -> list[Task]:
        if not tasks:
            return tasks
        by_seq = {task.seq: task for task in tasks}
        if len(tasks) == 1:
            rows = conn.execute(
                "SELECT d.task, d.depends_on, u.state FROM deps AS d "
                "JOIN tasks AS u ON u.seq = d.depends_on WHERE d.task = ? "
                "ORDER BY d.rowid",
                (tasks[0].seq,),
            ).fetchall()
        elif len(tasks) <= 2000:
            # A page of tasks: theirs alone, by the index on deps(task).
            rows = []
            seqs = list(by_seq)
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                rows.extend(conn.execute(
                    "SELECT d.task, d.depends_on, u.state FROM deps AS d "
                    "JOIN tasks AS u ON u.seq = d.depends_on "
                    f"WHERE d.task IN ({','.join('?' * len(chunk))}) ORDER BY d.rowid",
                    chunk,
                ).fetchall())
        else:
            rows = conn.execute(
                "SELECT d.task, d.depends_on, u.state FROM deps AS d "
                "JOIN tasks AS u ON u.seq = d.depends_on ORDER BY d.rowid"
            ).fetchall()
        depends: dict[int, list[str]] = {}
        blocked: dict[int, list[str]] = {}
        for seq, depends_on, state in rows:
            if seq not in by_seq:
                continue
            depends.setdefault(seq, []).append(f"T-{depends_on}")
            if state != State.DONE:
                blocked.setdefault(seq, []).append(f"T-{depends_on}")
        for seq, ids in depends.items():
            by_seq[seq].depends_on = tuple(ids)
            by_seq[seq].blocked_by = tuple(blocked.get(seq, ()))
        return tasks

    def get_task(self, task_id: str) -> Task:
        with self._read() as conn:
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    def get_tasks(self, task_ids: Iterable[str]) -> list[Task]:
        """The tasks among ``task_ids`` that exist (without their bodies),
        with their dependencies."""
        seqs = list(dict.fromkeys(task_seq(task_id) for task_id in task_ids))
        if not seqs:
            return []
        tasks: list[Task] = []
        with self._read() as conn:
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT {TASK_COLUMNS} FROM tasks WHERE seq IN ({marks})", chunk
                ).fetchall()
                tasks.extend(task_from_row(row) for row in rows)
            if len(tasks) > 50:
                self._with_dependencies(conn, tasks)
            else:
                for task in tasks:
                    self._with_dependencies(conn, [task])
        return tasks

    def list_tasks(
        self, states: Iterable[State] | None = None, *, bodies: bool = True
    ) -> list[Task]:
        """All tasks (or those in ``states``) in id order, with dependencies;
        ``bodies=False`` leaves the bodies out (a list view needs none)."""
        body = "coalesce(b.body, '')" if bodies else "''"
        join = "LEFT JOIN task_bodies AS b USING (seq)" if bodies else ""
        sql = f"SELECT {TASK_COLUMNS}, {body} FROM tasks {join}"
        with self._read() as conn:
            if states is None:
                rows = conn.execute(f"{sql} ORDER BY seq")
            else:
                wanted = [State(s).value for s in states]
                marks = ",".join("?" * len(wanted))
                rows = conn.execute(f"{sql} WHERE state IN ({marks}) ORDER BY seq", wanted)
            # Row by row from the cursor, not fetched whole first: 100,000
            # rows held at once are some 60 MB more at the peak.
            return self._with_dependencies(
                conn, [task_from_row(row, row[EXTRA]) for row in rows]
            )

    def last_task_seq(self, states: Iterable[State] | None = None) -> int:
        """The highest task seq (of a task in ``states``), 0 if none."""
        with self._read() as conn:
            if states is None:
                return conn.execute("SELECT coalesce(max(seq), 0) FROM tasks").fetchone()[0]
            wanted = [State(s).value for s in states]
            return conn.execute(
                f"SELECT coalesce(max(seq), 0) FROM tasks WHERE state IN ({','.join('?' * len(wanted))})", wanted
            ).fetchone()[0]

    def titles_from(self, source: str) -> list[tuple[str, str]]:
        """(id, title) of every task whose source is ``source`` (say,
        ``import:plan.md``), oldest first: what an import made before."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT seq, title FROM tasks WHERE source = ? ORDER BY seq", (source,)
            ).fetchall()
        return [(f"T-{seq}", title) for seq, title in rows]

    def dependents(self, task_id: str) -> list[Task]:
        """The tasks that depend on ``task_id``."""
        with self._read() as conn:
            self._task_row(conn, task_id)
            rows = conn.execute(
                f"SELECT {', '.join('t.' + c for c in TASK_COLUMNS.split(', '))} "
                "FROM deps AS d JOIN tasks AS t ON t.seq = d.task "
                "WHERE d.depends_on = ? ORDER BY t.seq",
                (task_seq(task_id),),
            ).fetchall()
            tasks = [task_from_row(r) for r in rows]
            for task in tasks:
                self._with_dependencies(conn, [task])
            return tasks

    def failures(self, task_ids: Iterable[str] | None = None, *, until: int | None = None) -> dict[str, Failure]:
        """Why each failed task (of ``task_ids``, or all) failed: its last
        ``failed`` event, as a ``Failure`` short enough for a row. Tasks
        that are not failed now are left out. One scan of the events
        (``until``: of those up to that event id; a follower applies the
        later ones itself)."""
        with self._read() as conn:
            failed = [row[0] for row in conn.execute("SELECT seq FROM tasks WHERE state = 'failed'")]
            if task_ids is not None:
                wanted = {task_seq(task_id) for task_id in task_ids}
                failed = [seq for seq in failed if seq in wanted]
            if not failed:
                return {}
            failed_ids = {f"T-{seq}" for seq in failed}
            # Each wanted event's id, and the task it is the last failure of.
            # Read up to ``until`` (an event id): what a reader knew when it
            # last looked, so that later events come to it as changes.
            bound = until if until is not None else 2**63 - 1
            if len(failed_ids) <= 100:
                # A few tasks (`plan show`, a row): each one's events by the
                # index on events by task.
                last = {}
                for task_id in failed_ids:
                    row = conn.execute(
                        "SELECT max(id) FROM events WHERE task_id = ? AND kind = 'failed' AND id <= ?",
                        (task_id, bound),
                    ).fetchone()
                    if row[0] is not None:
                        last[row[0]] = task_id
            else:
                # One scan of the events for every task's last failure;
                # then the few wanted are read by id.
                last = {
                    event_id: task_id for task_id, event_id in conn.execute(
                        "SELECT task_id, max(id) FROM events NOT INDEXED WHERE kind = 'failed' AND id <= ? "
                        "GROUP BY task_id",
                        (bound,),
                    )
                    if task_id in failed_ids
                }
            event_ids = list(last)
            found: dict[str, Failure] = {}
            for start in range(0, len(event_ids), 500):
                chunk = event_ids[start : start + 500]
                rows = conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for row in rows:
                    event = event_from_row(row)
                    found[last[event.id]] = failure_of(event)
        return found

    def never_runs(self, task_ids: Iterable[str] | None = None) -> dict[str, NeverRuns]:
        """The waiting tasks (of ``task_ids``, or all) that can never run as
        the plan is (``model.never_runs``). For a few tasks only what lies
        below them is read, not the whole plan."""
        if task_ids is None:
            return never_runs(self.list_tasks(bodies=False))
        wanted = list(dict.fromkeys(task_ids))
        seen: dict[str, Task] = {}
        frontier = wanted
        while frontier:
            found = self.get_tasks(frontier)
            for task in found:
                seen[task.id] = task
            # Only a waiting task's dependencies matter: below a done,
            # running or dead task the walk stops.
            frontier = list(dict.fromkeys(
                dep for task in found if task.state in WAITING_STATES
                for dep in task.depends_on if dep not in seen
            ))
        result = never_runs(seen.values())
        return {task_id: result[task_id] for task_id in wanted if task_id in result}

    def failure(self, task_id: str) -> Failure | None:
        """Why ``task_id`` failed, if it is failed now (``failures``)."""
        self.get_task(task_id)  # UnknownTask for an id the log does not hold
        return self.failures([task_id]).get(task_id)

    def usage(
        self, *, since: float | None = None, task_ids: Iterable[str] | None = None,
        per_task: bool = True, until: int | None = None,
    ) -> Usage:
        """Cost, tokens and turns of the runs that ended (model.RUN_END_KINDS:
        the engine's events whose data holds what the agent reported), per task, for the runs that ended since ``since``
        (default: the start of today, local time) and for the whole base.
        ``task_ids``: only those tasks (the totals are then theirs).
        ``per_task=False``: the two totals only (``tasks`` is empty), for a
        header or ``factory status``. ``until``: the runs that ended up to
        that event id (a follower adds the later ones itself).

        One query with json_extract, a scan of the events: at 100,000 of
        them, 18,000 of them runs' ends of 10,000 tasks, about 60 ms per
        task and 45 ms for the totals alone (benchmarks/bench_usage.py)."""
        if since is None:
            since = start_of_day(self._clock())
        if task_ids is None and not per_task and until is None and since % USAGE_BUCKET_SECONDS == 0:
            return self._usage_totals(since)
        where = f"kind IN ({', '.join(repr(kind) for kind in RUN_END_KINDS)}) AND data IS NOT NULL"
        params: list = [since]
        if task_ids is not None:
            wanted = list(dict.fromkeys(task_ids))
            if not wanted:
                return Usage({}, Totals(), Totals(), since)
            where += f" AND task_id IN ({','.join('?' * len(wanted))})"
            params.extend(wanted)
        if until is not None:
            where += " AND id <= ?"
            params.append(until)
        # Each figure is extracted once per event (the inner query), then
        # summed per task, today's runs apart from the earlier ones (a
        # grouping of two keys: one set of sums instead of a today's copy of
        # each, which took half as long again). A run's end is an event
        # whose data names its run folder.
        sql = f"""
            SELECT {"task_id" if per_task else "NULL"}, today, count(run), total(cost), sum(tokens_in),
                   sum(tokens_out), sum(turns)
            FROM (
                SELECT task_id, at >= ? AS today,
                       json_extract(data, '$.run') AS run,
                       json_extract(data, '$.cost_usd') AS cost,
                       json_extract(data, '$.input_tokens') AS tokens_in,
                       json_extract(data, '$.output_tokens') AS tokens_out,
                       json_extract(data, '$.turns') AS turns
                FROM events WHERE {where}
            )
            WHERE run IS NOT NULL
            GROUP BY {"task_id, " if per_task else ""}today
        """
        tasks: dict[str, Totals] = {}
        today, total = Totals(), Totals()
        with self._read() as conn:
            for task_id, is_today, *figures in conn.execute(sql, params):
                part = _totals(figures)
                if task_id is None:
                    pass  # the totals only
                elif task_id in tasks:
                    tasks[task_id].add(part)
                else:
                    tasks[task_id] = part  # add() never changes its argument
                total.add(part)
                if is_today:
                    today.add(part)
        return Usage(tasks, today, total, since)

    def _usage_totals(self, since: float) -> Usage:
        """``usage(per_task=False)`` from the sums kept per quarter hour
        (schema: usage_buckets): a few thousand rows, however long the
        log. ``since`` falls on a bucket's edge (a day's start does in
        every time zone), so today's sums are exact."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT bucket >= ?, sum(runs), total(cost_usd), sum(input_tokens), sum(output_tokens), "
                "sum(turns) FROM usage_buckets GROUP BY 1",
                (int(since // USAGE_BUCKET_SECONDS),),
            ).fetchall()
        today, total = Totals(), Totals()
        for is_today, *figures in rows:
            part = _totals(figures)
            total.add(part)
            if is_today:
                today.add(part)
        return Usage({}, today, total, since)

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
        """One task: as ``add_tasks([new])``, in one short transaction. A task
        that waits for none (the usual enqueue) takes a path of its own: the
        batch's look-ahead (ids worked out before the lock, a dependency
        check) would cost more than the write itself."""
        if new.after:
            return self.add_tasks([new], actor=actor)[0]
        title, state, priority, body, profile, source, labels = _checked_row(new, False)
        now = self._clock()
        with self._write() as conn:
            # seq is the rowid: max + 1, the id the batch path would give.
            seq = conn.execute(
                SQL_TASK_INSERT_NEXT,
                (title, state.value, priority, profile, source, now, now,
                 json.dumps(list(labels)) if labels else None),
            ).fetchone()[0]
            if body:
                conn.execute(SQL_BODY_INSERT, (seq, body))
            conn.execute(
                SQL_EVENT_INSERT,
                (now, f"T-{seq}", KIND_CREATED, actor, None, state.value, _created_note(title),
                 json.dumps({"source": source}) if source else None),
            )
        return Task(
            id=f"T-{seq}", title=title, state=state, priority=priority, body=body, profile=profile,
            source=source, created_at=now, updated_at=now, labels=labels,
        )

    def add_tasks(
        self,
        new_tasks: Sequence[NewTask],
        *,
        actor: str,
        handles: Sequence[str | None] = (),
        done: Sequence[bool] = (),
    ) -> list[Task]:
        """Create tasks in order, in one transaction: all or nothing.

        An ``after`` entry is a task id, or a handle given in ``handles`` to
        an earlier or later task of the same batch (a plan file's ``#name``;
        not a task label). ``done`` marks tasks that are
        created already done (an imported checklist's ticked items).
        """
        return self.add_checked(self.check_tasks(new_tasks, handles=handles, done=done), actor=actor)

    def check_tasks(
        self,
        new_tasks: Sequence[NewTask],
        *,
        handles: Sequence[str | None] = (),
        done: Sequence[bool] = (),
    ) -> TaskBatch:
        """Everything ``add_tasks`` checks, without the write lock: titles,
        priorities, states, handles, that the tasks named exist, and that the
        batch closes no loop. Another process may write meanwhile.

        Only the batch's own edges can close a loop: a task already in the
        log cannot depend on a task not yet made. So one linear walk over the
        batch replaces a search of the log per dependency (which made a long
        ``after=`` chain quadratic, and held the write lock while it ran).
        """
        by_handle: dict[str, int] = {}
        for index, handle in enumerate(handles):
            if not handle:
                continue
            if handle in by_handle:
                raise InvalidInput(f"the name #{handle} is given to two tasks of the batch")
            by_handle[handle] = index
        rows: list[tuple] = []
        edges: list[tuple[int, int | str]] = []
        for index, new in enumerate(new_tasks):
            rows.append(_checked_row(new, bool(done[index]) if index < len(done) else False))
            targets: dict[int | str, None] = {}  # in order, each once
            for ref in new.after:
                target = by_handle[ref] if ref in by_handle else normalize_task_id(ref)
                if target == index:
                    raise DependencyCycle([ref, ref])
                targets[target] = None
            edges.extend((index, target) for target in targets)
        existing = list(dict.fromkeys(t for _, t in edges if isinstance(t, str)))
        found: set[int] = set()
        with self._read() as conn:
            first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM tasks").fetchone()[0]
            if existing:
                seqs = [task_seq(task_id) for task_id in existing]
                for start in range(0, len(seqs), 500):
                    chunk = seqs[start : start + 500]
                    found.update(
                        row[0] for row in conn.execute(
                            f"SELECT seq FROM tasks WHERE seq IN ({','.join('?' * len(chunk))})",
                            chunk,
                        )
                    )
            for task_id in existing:
                if task_seq(task_id) not in found:
                    raise UnknownTask(task_id)
        inside: dict[int, list[int]] = {}
        for index, target in edges:
            if isinstance(target, int):
                inside.setdefault(index, []).append(target)
        if inside:
            loop = find_cycle(range(len(rows)), lambda index: inside.get(index, ()))
            if loop is not None:
                name = {index: handle for handle, index in by_handle.items()}
                raise DependencyCycle([name[index] for index in loop])
        return TaskBatch(rows=rows, edges=edges, first=first)

    def add_checked(self, batch: TaskBatch, *, actor: str) -> list[Task]:
        """Write a batch that ``check_tasks`` accepted: one short transaction
        of bulk inserts (tasks, bodies, dependencies, and an event for every
        task and every dependency). The ids are taken here, so a write by
        another process since the check only moves them along."""
        now = self._clock()
        rows = batch.rows
        # The statements' rows are made before the lock, for the ids the
        # check saw free; made again under it only if another process took
        # some of those ids meanwhile.
        first = batch.first
        writes = _batch_writes(batch, first, now, actor)
        with self._write() as conn:
            # Tasks take the next ids in order (seq is the rowid, tasks are
            # never deleted, and nothing else writes while we hold the lock).
            taken = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM tasks").fetchone()[0]
            if taken != first:
                first = taken
                writes = _batch_writes(batch, first, now, actor)
            for sql, values in writes:
                if values:
                    conn.executemany(sql, values)
            # A dependency blocks until it is done: read the state of the
            # tasks already in the log as this transaction sees them.
            existing = list({task_seq(t) for _, t in batch.edges if isinstance(t, str)})
            done_before: set[int] = set()
            for start in range(0, len(existing), 500):
                chunk = existing[start : start + 500]
                done_before.update(
                    row[0] for row in conn.execute(
                        "SELECT seq FROM tasks WHERE state = 'done' AND seq IN "
                        f"({','.join('?' * len(chunk))})",
                        chunk,
                    )
                )
        created = [
            Task(
                id=f"T-{first + index}", title=title, state=state, priority=priority,
                body=body, profile=profile, source=source, created_at=now, updated_at=now,
                labels=labels,
            )
            for index, (title, state, priority, body, profile, source, labels) in enumerate(rows)
        ]
        depends: dict[int, list[str]] = {}
        blocked: dict[int, list[str]] = {}
        for index, target in batch.edges:
            if isinstance(target, int):
                task_id, is_done = f"T-{first + target}", rows[target][1] is State.DONE
            else:
                task_id, is_done = target, task_seq(target) in done_before
            depends.setdefault(index, []).append(task_id)
            if not is_done:
                blocked.setdefault(index, []).append(task_id)
        for index, task_ids in depends.items():
            created[index].depends_on = tuple(task_ids)
            created[index].blocked_by = tuple(blocked.get(index, ()))
        return created

    def add_dependency(self, task_id: str, depends_on: str, *, actor: str) -> Task:
        """Make ``task_id`` depend on ``depends_on``; a loop is refused.

        The search for a loop runs before the write lock is taken, so that a
        long plan never keeps other writers waiting; under the lock it is
        repeated only if a dependency was added meanwhile."""
        with self._read() as conn:
            checked_at = self._check_dependency(conn, task_id, depends_on)
        with self._write() as conn:
            self._add_dependency(conn, self._clock(), task_id, depends_on, actor, checked_at)
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    def remove_dependency(self, task_id: str, depends_on: str, *, actor: str) -> Task:
        """``task_id`` no longer waits for ``depends_on`` (the way out for a
        task that can never run as it is, waiting for a cancelled one); an
        ``undepends`` event records it. InvalidInput if there is no such
        dependency: nothing is written then."""
        now = self._clock()
        with self._write() as conn:
            self._task_row(conn, task_id)
            self._task_row(conn, depends_on)
            cursor = conn.execute(
                "DELETE FROM deps WHERE task = ? AND depends_on = ?",
                (task_seq(task_id), task_seq(depends_on)),
            )
            if not cursor.rowcount:
                raise InvalidInput(f"{task_id} does not depend on {depends_on}")
            self._event(
                conn, now, task_id, KIND_UNDEPENDS, actor,
                note=f"no longer depends on {depends_on}", data={"on": depends_on},
            )
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    @staticmethod
    def _deps_mark(conn: sqlite3.Connection) -> int:
        # The newest rowid tells whether a dependency was added since it was
        # read: a new row takes max(rowid) + 1. Removing rows may lower the
        # mark again, but only to a set of dependencies that is a subset of
        # the one checked (every row above the mark is gone), and taking
        # dependencies away never closes a loop, so the check still holds.
        return conn.execute("SELECT coalesce(max(rowid), 0) FROM deps").fetchone()[0]

    def _check_dependency(
        self, conn: sqlite3.Connection, task_id: str, depends_on: str
    ) -> int:
        """UnknownTask or DependencyCycle if the dependency cannot be added;
        else the mark of the dependencies the check saw."""
        mark = self._deps_mark(conn)
        self._task_row(conn, task_id)
        self._task_row(conn, depends_on)
        if task_id == depends_on:
            raise DependencyCycle([task_id, task_id])
        path = self._dependency_path(conn, task_seq(depends_on), task_seq(task_id))
        if path is not None:
            raise DependencyCycle([task_id, *(f"T-{seq}" for seq in path)])
        return mark

    def _add_dependency(
        self, conn: sqlite3.Connection, now: float, task_id: str, depends_on: str,
        actor: str, checked_at: int | None = None,
    ) -> None:
        """Within a write transaction. ``checked_at`` is the mark of a check
        made before the lock was taken; it still holds if no dependency has
        been added since (tasks are never deleted), else the check runs again."""
        if checked_at is None or self._deps_mark(conn) != checked_at:
            self._check_dependency(conn, task_id, depends_on)
        cursor = conn.execute(
            "INSERT OR IGNORE INTO deps (task, depends_on) VALUES (?, ?)",
            (task_seq(task_id), task_seq(depends_on)),
        )
        if cursor.rowcount:
            self._event(
                conn, now, task_id, KIND_DEPENDS, actor,
                note=f"depends on {depends_on}", data={"on": depends_on},
            )

    @staticmethod
    def _dependency_path(
        conn: sqlite3.Connection, start: int, goal: int
    ) -> list[int] | None:
        """A chain of dependencies from ``start`` down to ``goal``, if any.

        Breadth first, visiting each task once: a recursive query that follows
        every path takes exponential time on a plan where each task depends on
        the two before it (30 such tasks took seconds per added dependency).
        """
        parent: dict[int, int | None] = {start: None}
        frontier = [start]
        while frontier and goal not in parent:
            reached: list[int] = []
            for first in range(0, len(frontier), 500):
                chunk = frontier[first : first + 500]
                rows = conn.execute(
                    "SELECT task, depends_on FROM deps WHERE task IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY rowid",
                    chunk,
                ).fetchall()
                for seq, depends_on in rows:
                    if depends_on not in parent:
                        parent[depends_on] = seq
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
                    "UPDATE tasks SET priority = ?, updated_at = ? WHERE seq = ?",
                    (priority, now, task.seq),
                )
                self._event(
                    conn, now, task_id, KIND_PRIORITY, actor,
                    note=f"priority {task.priority} → {priority}",
                    data={"from": task.priority, "to": priority},
                )
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    def change_labels(
        self, task_id: str, *, add: Iterable[str] = (), remove: Iterable[str] = (), actor: str,
    ) -> Task:
        """Give ``task_id`` the labels in ``add`` and take away those in
        ``remove`` (a label in both is added); a ``labels`` event records a
        change. Labels are checked first (InvalidInput names a bad one);
        removing a label the task does not carry is no change, not an
        error, so that a script may say what it wants regardless."""
        adding = check_labels(add)
        removing = set(check_labels(remove)) - set(adding)
        now = self._clock()
        with self._write() as conn:
            task = self._task_row(conn, task_id)
            labels = tuple(
                label for label in dict.fromkeys((*task.labels, *adding)) if label not in removing
            )
            if labels != task.labels:
                added = [label for label in labels if label not in task.labels]
                removed = [label for label in task.labels if label not in labels]
                conn.execute(
                    "UPDATE tasks SET labels = ?, updated_at = ? WHERE seq = ?",
                    (json.dumps(list(labels)) if labels else None, now, task.seq),
                )
                words = [f"+{label}" for label in added] + [f"-{label}" for label in removed]
                self._event(
                    conn, now, task_id, KIND_LABELS, actor,
                    note="labels " + " ".join(words),
                    data={"added": added, "removed": removed, "labels": list(labels)},
                )
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    def add_note(self, task_id: str | None, note: str, *, actor: str, data: dict | None = None) -> Event:
        """A free-text entry in the log, about a task or the whole base
        (``data``: facts that go with it, such as the engine's record of the
        conflicts it left for an agent)."""
        if not note.strip():
            raise InvalidInput("a note needs some text")
        now = self._clock()
        with self._write() as conn:
            if task_id is not None:
                self._task_row(conn, task_id)
            self._event(conn, now, task_id, KIND_NOTE, actor, note=note, data=data)
            row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE id = last_insert_rowid()"
            ).fetchone()
        return event_from_row(row)

    def add_warning(self, task_id: str | None, note: str, *, actor: str, data: dict | None = None) -> Event:
        """A warning: something that failed after an action took effect
        (the action stands); ``note`` says what to do about it."""
        now = self._clock()
        with self._write() as conn:
            if task_id is not None:
                self._task_row(conn, task_id)
            self._event(conn, now, task_id, KIND_WARNING, actor, note=note, data=data)
            row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE id = last_insert_rowid()"
            ).fetchone()
        return event_from_row(row)

    # --- operator actions -------------------------------------------------

    def apply(
        self, task_id: str, action: Action, *, actor: str, note: str | None = None, data: dict | None = None,
        landing: Landing | None = None,
    ) -> Task:
        """An operator action (approve, requeue, cancel, hold, release).
        ``data``: facts that go with it in its event (an approval's merge
        commit). ``landing``: an approval that lands the task, its entry in
        the session history, written in the same transaction (at the
        event's time)."""
        action = Action(action)
        if action not in OPERATOR_ACTIONS:
            raise InvalidInput(f"{action} is the engine's to take, not an operator's")
        now = self._clock()
        with self._write() as conn:
            task = self._task_row(conn, task_id)
            target = next_state(task_id, task.state, action)
            data = dict(data) if data else None
            if task.state in (State.RUNNING, State.CHECKING):
                # Clearing the lease is how the worker learns, at its next
                # heartbeat, that the task is gone.
                token, worker = conn.execute(
                    "SELECT lease_token, lease_worker FROM tasks WHERE seq = ?",
                    (task.seq,),
                ).fetchone()
                if token:
                    data = {**(data or {}), "lease": token, "worker": worker}
            feedback = note or None if action is Action.REQUEUE else task.feedback
            # The operator sending a task back starts QA's rounds afresh.
            conn.execute(
                "UPDATE tasks SET state = ?, feedback = ?, updated_at = ?, "
                "lease_token = NULL, qa_rounds = CASE WHEN ? THEN 0 ELSE qa_rounds END WHERE seq = ?",
                (target.value, feedback, now, action is Action.REQUEUE, task.seq),
            )
            self._event(
                conn, now, task_id, EVENT_KIND[action], actor,
                task.state.value, target.value, note, data,
            )
            if landing is not None and target is State.DONE:
                self._insert_landing(conn, now, landing)
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    # --- the queue: what the engine calls ---------------------------------

    def claim_next(
        self, worker: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> Claim | None:
        """Take the ready task of highest priority, or None if none is ready.

        Ready: queued, and every dependency done. The task moves to running
        under a new lease that the worker must renew with ``heartbeat``.
        """
        with self._write() as conn:
            return self._claim(conn, worker, lease_seconds)

    def finish_and_claim_next(
        self, token: str, outcome: State, worker: str, *, note: str | None = None,
        data: dict | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> tuple[Task, Claim | None]:
        """A worker's loop in one transaction: ``finish`` its run, then
        ``claim_next`` for ``worker``; the finished task, and the claim (None
        if no task is ready). Both or neither: LeaseLost (nothing changes,
        nothing is claimed) if the lease is no longer live. One commit for
        two transitions, each with its event: at ``synchronous = full`` one
        wait for the disk instead of two, and the two write the same pages
        (the tasks', the events' and their indexes' last leaves) once."""
        with self._write() as conn:
            task = self._finish(conn, token, outcome, note, data)
            return task, self._claim(conn, worker, lease_seconds)

    def _claim(self, conn: sqlite3.Connection, worker: str, lease_seconds: float) -> Claim | None:
        now = self._clock()
        expires = now + lease_seconds
        # One draw for both secrets (as secrets.token_hex would make them):
        # the lease's 8 bytes and the agent's 32 (the log keeps its sha256).
        drawn = os.urandom(40)
        random_part = drawn[8:].hex()
        row = conn.execute(SQL_CLAIM, {
            "now": now, "secret": drawn[:8].hex(), "worker": worker,
            "expires": expires, "run_secret": secret_hash(random_part),
        }).fetchone()
        if row is None:
            return None
        task_id = f"T-{row[0]}"
        token = row[EXTRA]
        conn.execute(
            SQL_EVENT_INSERT,
            (now, task_id, "claimed", worker, "queued", "running",
             f"attempt {row[4]}", lease_data(token)),
        )
        return Claim(
            task=task_from_row(row, row[EXTRA + 1] or ""), token=token, worker=worker,
            expires_at=expires, secret=f"{task_id}:{random_part}",
        )

    def heartbeat(
        self, token: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> float:
        """Renew a live lease; returns its new expiry. LeaseLost if the lease
        was reaped or its task cancelled meanwhile."""
        task_id = task_of_token(token)
        expires = self._clock() + lease_seconds
        with self._write() as conn:
            row = conn.execute(SQL_HEARTBEAT, (expires, task_seq(task_id), token)).fetchone()
            if row is None:
                raise self._lease_lost(conn, task_id, token)
        return expires

    def finish(
        self, token: str, outcome: State, *, note: str | None = None,
        data: dict | None = None,
    ) -> Task:
        """End a run: the task goes to review (the agent finished), to
        checking (it finished, and QA runs under the same lease: see
        backends/qa_log.py) or to failed. LeaseLost if the lease is no
        longer live; nothing changes then."""
        with self._write() as conn:
            return self._finish(conn, token, outcome, note, data)

    def _finish(
        self, conn: sqlite3.Connection, token: str, outcome: State, note: str | None, data: dict | None,
    ) -> Task:
        outcome = State(outcome)
        action = _RUN_ENDS.get(outcome)
        if action is None:
            raise InvalidInput(f"a run finishes in review, checking or failed, not {outcome}")
        task_id = task_of_token(token)
        now = self._clock()
        row = conn.execute(
            SQL_CHECK if outcome is State.CHECKING else SQL_FINISH,
            (outcome.value, now, task_seq(task_id), token),
        ).fetchone()
        if row is None:
            raise self._lease_lost(conn, task_id, token)
        conn.execute(
            SQL_EVENT_INSERT,
            (now, task_id, EVENT_KIND[action], row[EXTRA], "running", outcome.value,
             note or None, json.dumps({"lease": token, **data}) if data else lease_data(token)),
        )
        return task_from_row(row)

    def _lease_lost(self, conn: sqlite3.Connection, task_id: str, token: str) -> LeaseLost:
        row = conn.execute(
            "SELECT state, lease_token FROM tasks WHERE seq = ?", (task_seq(task_id),)
        ).fetchone()
        if row is None:
            return LeaseLost(f"no lease {token!r}: no such task {task_id}")
        state, live_token = row
        if state in (State.RUNNING, State.CHECKING) and live_token and live_token != token:
            why = "it expired, and the task was claimed again"
        elif state == State.QUEUED:
            why = "it expired and the task went back to the queue"
        else:
            why = f"the task is {state} now"
        return LeaseLost(f"the lease on {task_id} is gone: {why}")

    def reap_expired(self, *, actor: str = "reaper", keep: Iterable[str] = ()) -> list[str]:
        """Send every running task whose lease has expired back to queued.
        Its worktree and work are untouched; the next claim goes on there.
        ``keep``: the reaper's own leases, which it renews or concludes
        itself and never expires (it may merely have been asleep)."""
        now = self._clock()
        keep = set(keep)
        with self._write() as conn:
            expired = conn.execute(
                "SELECT seq, state, lease_token, lease_worker, lease_expires FROM tasks "
                "WHERE state IN ('running', 'checking') AND lease_token IS NOT NULL "
                "AND lease_expires < ? ORDER BY seq",
                (now,),
            ).fetchall()
            reaped = []
            for seq, state, token, worker, expires_at in expired:
                if token in keep:
                    continue
                # A run goes back to the queue; a check stays a check, for
                # the next engine to run its QA again (claim_check).
                target = "queued" if state == "running" else "checking"
                conn.execute(
                    "UPDATE tasks SET state = ?, updated_at = ?, "
                    "lease_token = NULL WHERE seq = ?",
                    (target, now, seq),
                )
                task_id = f"T-{seq}"
                reaped.append(task_id)
                again = "back to queued" if target == "queued" else "its QA runs again"
                self._event(
                    conn, now, task_id, EVENT_KIND[Action.EXPIRE], actor,
                    state, target,
                    f"lease of {worker} expired {now - expires_at:.0f}s ago; {again}",
                    {"lease": token, "worker": worker},
                )
        return reaped

    def release(self, token: str, *, note: str | None = None, data: dict | None = None) -> Task:
        """The engine gives a running task back to the queue (it is shutting
        down and stopped the agent; the work is committed). The run does
        not count as an attempt: the claim's attempt is given back, so the
        next run is the same attempt again (and its prompt says that the run
        before it was interrupted)."""
        task_id = task_of_token(token)
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                "UPDATE tasks SET state = 'queued', updated_at = ?, lease_token = NULL, "
                "attempts = max(attempts - 1, 0) "
                f"WHERE seq = ? AND lease_token = ? AND state = 'running' RETURNING {TASK_COLUMNS}, lease_worker",
                (now, task_seq(task_id), token),
            ).fetchone()
            if row is None:
                raise self._lease_lost(conn, task_id, token)
            self._event(
                conn, now, task_id, EVENT_KIND[Action.STOP], row[EXTRA], "running", "queued",
                note, {"lease": token, **(data or {})},
            )
        return task_from_row(row)

    def adopt(self, token: str, worker: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Task:
        """``worker`` (an engine starting up) takes over the live run that
        ``token`` is the lease of, left by another engine: the lease is
        renewed in its name, so that the run's later events (progress, its
        end) carry it, and an ``adopted`` event names the old and the new
        engine. LeaseLost if the lease is gone; nothing changes then."""
        task_id = task_of_token(token)
        now = self._clock()
        with self._write() as conn:
            before = conn.execute(
                "SELECT lease_worker FROM tasks WHERE seq = ? AND lease_token = ? AND state = 'running'",
                (task_seq(task_id), token),
            ).fetchone()
            if before is None:
                raise self._lease_lost(conn, task_id, token)
            row = conn.execute(
                "UPDATE tasks SET lease_worker = ?, lease_expires = ? WHERE seq = ? "
                f"RETURNING {TASK_COLUMNS}",
                (worker, now + lease_seconds, task_seq(task_id)),
            ).fetchone()
            old = before[0]
            self._event(
                conn, now, task_id, KIND_ADOPTED, worker,
                note=f"{worker} took over the run from {old or 'an unknown engine'}",
                data={"lease": token, "from": old, "to": worker},
            )
        return task_from_row(row)

    def reject_merge(self, task_id: str, *, actor: str, note: str, data: dict | None = None) -> Task:
        """A task in review whose branch could not be merged (a conflict)
        goes to failed with the reason; re-queueing it lets an agent fix it."""
        now = self._clock()
        with self._write() as conn:
            task = self._task_row(conn, task_id)
            target = next_state(task_id, task.state, Action.FAIL)
            conn.execute(
                "UPDATE tasks SET state = ?, updated_at = ? WHERE seq = ?",
                (target.value, now, task.seq),
            )
            self._event(
                conn, now, task_id, EVENT_KIND[Action.FAIL], actor,
                task.state.value, target.value, note, data,
            )
            return self._with_dependencies(conn, [self._task_row(conn, task_id)])[0]

    def add_progress(self, token: str, text: str, *, data: dict | None = None) -> None:
        """A line of the agent's progress: kept on the task (the last one)
        and appended to the history. LeaseLost if the run lost its lease."""
        task_id = task_of_token(token)
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                "UPDATE tasks SET progress = ? WHERE seq = ? AND lease_token = ? "
                "AND state = 'running' RETURNING lease_worker",
                (text, task_seq(task_id), token),
            ).fetchone()
            if row is None:
                raise self._lease_lost(conn, task_id, token)
            self._event(conn, now, task_id, KIND_PROGRESS, row[0], note=text, data=data)

    # --- who is calling: an agent proves its run with the run's secret ----------

    def agent_for(self, secret: str) -> str | None:
        """The task whose live run (running, lease live) was given
        ``secret``; None for a secret that is forged or stale (the run ended,
        its lease expired, or the task was claimed again since)."""
        task_id, colon, random_part = (secret or "").partition(":")
        if not colon or not _TASK_ID.fullmatch(task_id) or not random_part:
            return None
        with self._read() as conn:
            row = conn.execute(
                "SELECT seq FROM tasks WHERE seq = ? AND state = 'running' AND run_secret = ? "
                "AND lease_token IS NOT NULL AND lease_expires >= ?",
                (task_seq(task_id), secret_hash(random_part), self._clock()),
            ).fetchone()
        return task_id if row else None

    def run_is_live(self, task_id: str, attempt: int) -> bool:
        """Whether attempt ``attempt`` of ``task_id`` is the task's current
        run and its lease is live (a run folder names both)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM tasks WHERE seq = ? AND state = 'running' AND attempts = ? "
                "AND lease_token IS NOT NULL AND lease_expires >= ?",
                (task_seq(task_id), attempt, self._clock()),
            ).fetchone()
        return row is not None

    def record_branch_start(self, task_id: str, sha: str) -> None:
        """The commit ``task_id``'s branch was made at (the engine records it
        when it makes the branch): from then on the branch is this plan's."""
        if not _SHA.fullmatch(sha or ""):
            raise InvalidInput(f"not a commit id: {sha!r}")
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE tasks SET branch_start = ? WHERE seq = ?",
                (sha.lower(), task_seq(task_id)),
            )
            if not cursor.rowcount:
                raise UnknownTask(task_id)

    def live_tokens(self, tokens: Iterable[str]) -> set[str]:
        """Which of these lease tokens are still live."""
        wanted = {token: task_seq(task_of_token(token)) for token in tokens}
        if not wanted:
            return set()
        marks = ",".join("?" * len(wanted))
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT lease_token FROM tasks WHERE seq IN ({marks}) AND state = 'running'",
                list(wanted.values()),
            ).fetchall()
        return {row[0] for row in rows} & set(wanted)

    def has_ready(self) -> bool:
        """Whether a claim would find a task (a read: no write lock)."""
        with self._read() as conn:
            return conn.execute(SQL_READY).fetchone() is not None

    def live_leases(self) -> list[tuple[str, str, str, float]]:
        """(token, task_id, worker, expires_at) for every running task."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT lease_token, seq, lease_worker, lease_expires FROM tasks "
                "WHERE state = 'running' AND lease_token IS NOT NULL ORDER BY seq"
            ).fetchall()
        return [(token, f"T-{seq}", worker, expires) for token, seq, worker, expires in rows]

    # --- the event history ------------------------------------------------

    def last_event_id(self) -> int:
        with self._read() as conn:
            return conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def event_pages(
        self,
        *,
        task_id: str | None = None,
        kinds: Iterable[str] | None = None,
        after_id: int = 0,
        last: int | None = None,
        upto: int | None = None,
        page: int = 1000,
    ) -> Iterator[list[Event]]:
        """The events of ``events(...)`` a page at a time, oldest first, up
        to ``upto`` (default: the newest when the first page is read): each
        page is one short read by id (a task's by the index on events by
        task), so that memory stays flat however long the log is and the
        log is never held between pages."""
        where, params = event_filter(task_id=task_id, kinds=kinds)
        condition = " AND ".join(where)
        with self._read() as conn:
            if upto is None:
                upto = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            if last is not None:
                # The newest ``last`` start after this one's id.
                row = conn.execute(
                    f"SELECT id FROM events WHERE {condition} AND id > ? AND id <= ? "
                    "ORDER BY id DESC LIMIT 1 OFFSET ?",
                    [*params, after_id, upto, last],
                ).fetchone()
                if row is not None:
                    after_id = row[0]
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {condition} AND id > ? AND id <= ? ORDER BY id LIMIT ?"
        while after_id < upto:
            with self._read() as conn:
                rows = conn.execute(sql, [*params, after_id, upto, page]).fetchall()
            if not rows:
                return
            after_id = rows[-1][0]
            yield [event_from_row(row) for row in rows]
            if len(rows) < page:
                return

    def task_pages(
        self, states: Iterable[State] | None = None, *, bodies: bool = True, page: int = 1000,
    ) -> Iterator[list[Task]]:
        """The tasks of ``list_tasks(states)`` a page at a time, in id
        order, with their dependencies, so that memory stays flat however
        big the plan is. Each page is one short read."""
        body = "coalesce(b.body, '')" if bodies else "''"
        join = "LEFT JOIN task_bodies AS b USING (seq)" if bodies else ""
        select = f"SELECT {TASK_COLUMNS}, {body} FROM tasks {join}"
        wanted = [State(s).value for s in states] if states is not None else None
        state_filter = f" AND state IN ({','.join('?' * len(wanted))})" if wanted is not None else ""
        after = 0
        while True:
            with self._read() as conn:
                rows = conn.execute(
                    f"{select} WHERE seq > ?{state_filter} ORDER BY seq LIMIT ?",
                    [after, *(wanted or ()), page],
                ).fetchall()
                if not rows:
                    return
                tasks = self._with_dependencies(conn, [task_from_row(row, row[EXTRA]) for row in rows])
            after = rows[-1][0]
            yield tasks
            if len(rows) < page:
                return

    def plan_listing(self, states: Iterable[State], *, page: int = 2000) -> Iterator[list[ListedTask]]:
        """The plan as ``factory plan list`` prints it, a page at a time:
        state by state in ``states``' order, highest priority first, then
        by id; each row only what a line shows (``ListedTask``), no Task
        built. ``blocked_by`` is filled for the tasks whose state a
        dependency can hold back (queued, held, proposed), from the
        blocker count the schema keeps, so that a task without blockers
        costs no look at its dependencies."""
        # The count is of the dependencies not done: with one, it is the
        # one found (no order to keep, no sorter); with more, in the order
        # they were declared.
        sql = (
            "SELECT t.seq, t.state, t.priority, t.attempts, "
            "CASE WHEN t.blockers = 0 OR t.state NOT IN ('queued', 'held', 'proposed') THEN NULL "
            "WHEN t.blockers = 1 THEN ("
            "  SELECT 'T-' || d.depends_on FROM deps AS d JOIN tasks AS u ON u.seq = d.depends_on "
            "  WHERE d.task = t.seq AND u.state <> 'done' LIMIT 1"
            ") ELSE ("
            "  SELECT group_concat(id, ',') FROM ("
            "    SELECT 'T-' || d.depends_on AS id FROM deps AS d JOIN tasks AS u ON u.seq = d.depends_on "
            "    WHERE d.task = t.seq AND u.state <> 'done' ORDER BY d.rowid)"
            ") END, t.title "
            "FROM tasks AS t WHERE t.state = ? ORDER BY t.priority DESC, t.seq"
        )
        for state in states:
            with self._read() as conn:
                reading = conn.execute(sql, (State(state).value,))
            try:
                while True:
                    # The lock is taken per page only: writers are never
                    # kept out for the whole listing.
                    with self._read():
                        rows = reading.fetchmany(page)
                    if not rows:
                        break
                    yield rows
            finally:
                reading.close()

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


def start_of_day(at: float) -> float:
    """Local midnight before ``at``."""
    moment = time.localtime(at)
    return time.mktime((moment.tm_year, moment.tm_mon, moment.tm_mday, 0, 0, 0, 0, 0, -1))


def _totals(row: Sequence) -> Totals:
    runs, cost, tokens_in, tokens_out, turns = row
    return Totals(
        runs=runs or 0, cost_usd=float(cost or 0.0), input_tokens=int(tokens_in or 0),
        output_tokens=int(tokens_out or 0), turns=int(turns or 0),
    )


def event_filter(
    *,
    task_id: str | None = None,
    kinds: Iterable[str] | None = None,
    texts: Iterable[str] = (),
    exclude_kinds: Iterable[str] | None = None,
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
    excluded = list(exclude_kinds or ())
    if excluded:
        where.append(f"kind NOT IN ({','.join('?' * len(excluded))})")
        params.extend(excluded)
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

    def __init__(self, path: Path, *, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        self.path = Path(path)
        self._conn = open_connection(self.path, synchronous=synchronous)
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
        exclude_kinds: Iterable[str] | None = None,
    ) -> array:
        """The ids of the matching events, oldest first, as a compact array."""
        where, params = event_filter(task_id=task_id, kinds=kinds, texts=texts, exclude_kinds=exclude_kinds)
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
