"""The execution log's side of plans in and out: importing another tool's
records (beads, Backlog.md, Task Master) by their own ids, and reading the
plan back out as a stream.

Importing is idempotent by the tool's id (``task_sources``: one task per
kind and id). A record seen for the first time makes a task; one imported
before updates its task with what changed *in the tool* since the last
import (the table keeps what that import read), so that an edit made here
and not there (a priority raised, a label added, an approval) is kept:

* title, body, priority and labels: the tool's new value, when it changed
  there;
* dependencies: those the tool added are added, those it dropped are
  dropped; a dependency added here stays. Only while the task waits
  (proposed, queued, held): a task that has run keeps the ones it ran with;
* the state: when the tool's status changed to one that means something
  else here, the task follows (to the import's start state, held, done or
  cancelled), but only while the factory has not started it (waiting, no
  attempt yet). A task that has run, or has finished, is never moved by
  an import; the result names it as kept.

An import by an agent only proposes: its new records become proposed
tasks and tasks imported before are left as they are.

Everything that needs no lock is checked first (the batch's own ids and
loops, in plan_formats.records; ids it waits for that are neither in it
nor imported before). The write is one transaction: all or nothing, with
an event for every task made and every change (``created``, ``depends``,
``undepends``, ``priority``, ``labels``, and ``imported`` for a title,
body or state that a re-import changed).

A mixin of ``ExecutionLog`` (backends/log.py), like qa_log.py.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from factory_tui.dependency_graph import find_cycle
from factory_tui.errors import path_text
from factory_tui.model import (
    KIND_DEPENDS,
    KIND_IMPORTED,
    KIND_LABELS,
    KIND_PRIORITY,
    KIND_UNDEPENDS,
    WAITING_STATES,
    Event,
    State,
    Task,
    check_labels,
    check_priority,
    check_title,
)
from factory_tui.plan_formats.records import Intent, SourceBatch, SourceError, SourceRecord

if TYPE_CHECKING:
    from factory_tui.backends.log import _Transaction

# What a tool's status, once read, means here, and the state it takes a
# task to; OPEN is the import's start state.
_INTENT_STATE = {Intent.HELD: State.HELD, Intent.DONE: State.DONE, Intent.CANCELLED: State.CANCELLED}
# Backlog.md's archive, as a status: the task was dropped there.
GONE_STATUS = "archived"


@dataclass(frozen=True, slots=True)
class SourceId:
    """A task's id in another tool, and its status there at the last import."""

    kind: str
    source_id: str
    status: str
    path: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "id": self.source_id, "status": self.status, "path": self.path}


@dataclass(frozen=True, slots=True)
class Updated:
    """A task imported before that this import changed: what changed."""

    task_id: str
    source_id: str
    changed: tuple[str, ...]

    def to_json(self) -> dict:
        return {"task": self.task_id, "id": self.source_id, "changed": list(self.changed)}


@dataclass(frozen=True, slots=True)
class Kept:
    """A task whose tool changed its status, left in its state here: the
    factory has started it (or it has finished), or an agent imported."""

    task_id: str
    source_id: str
    state: State
    status: str

    def to_json(self) -> dict:
        return {"task": self.task_id, "id": self.source_id, "state": self.state.value, "status": self.status}


@dataclass(slots=True)
class SourceImport:
    """What an import did: tasks made (in the order read), tasks updated,
    the ids of tasks it found as they were, and states kept."""

    kind: str
    created: list[Task]
    updated: list[Updated]
    unchanged: list[tuple[str, str]]  # (task id, the tool's id)
    kept: list[Kept]
    # An agent's import: records imported before, left alone.
    skipped: list[tuple[str, str]]

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "imported": [task.to_json() for task in self.created],
            "updated": [item.to_json() for item in self.updated],
            "unchanged": [{"task": task_id, "id": source_id} for task_id, source_id in self.unchanged],
            "kept": [item.to_json() for item in self.kept],
            "skipped": [{"task": task_id, "id": source_id} for task_id, source_id in self.skipped],
        }


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def _fields(record: SourceRecord) -> dict:
    """What an import read of a record: the next import's base."""
    return {
        "title": record.title,
        "body": body_hash(record.body),
        "priority": record.priority,
        "labels": list(record.labels),
        "after": list(record.after),
        "intent": record.intent.value,
    }


@dataclass(slots=True)
class _Here:
    """A task imported before, as it is now, and what the last import read."""

    seq: int
    title: str
    state: State
    priority: int
    attempts: int
    labels: tuple[str, ...]
    status: str
    path: str
    base: dict


class SourceRecords:
    """The import and export methods of ``ExecutionLog``."""

    # Provided by ExecutionLog.
    _clock: Callable[[], float]
    _lock: threading.RLock
    _write: Callable[[], _Transaction]
    _read: Callable[[], _Transaction]
    _event: Callable[..., None]

    # --- reading ------------------------------------------------------------------

    def source_ids(self, task_id: str) -> list[SourceId]:
        """The ids a task has in other tools (none for most tasks)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT kind, source_id, status, path FROM task_sources WHERE task = ? ORDER BY kind",
                (int(task_id[2:]),),
            ).fetchall()
        return [SourceId(*row) for row in rows]

    # --- importing ----------------------------------------------------------------

    def import_source(
        self,
        batch: SourceBatch,
        *,
        actor: str,
        start: State = State.PROPOSED,
        proposer: str | None = None,
    ) -> SourceImport:
        """Import a checked batch (plan_formats.records.check_batch): all of
        it, or nothing and a SourceError naming the record to blame."""
        kind = batch.kind.value
        for record in batch.records:
            check_title(record.title)
            check_priority(record.priority)
            check_labels(record.labels)
        ids = {record.source_id for record in batch.records}
        # Ids imported before are never forgotten (tasks are never deleted),
        # so a dependency found here before the lock is still there under it.
        with self._read() as conn:
            known = self._known(conn, kind)
        for record in batch.records:
            for ref in record.after:
                if ref not in ids and ref not in known:
                    raise SourceError(
                        record.where, f"depends on {ref}, which is neither in the plan nor imported before"
                    )
        now = self._clock()
        # Everything is worked out on a snapshot, before the write lock is
        # taken (a fresh import of 10,000 issues is mostly making rows);
        # under the lock it is worked out again only if another connection
        # wrote meanwhile. The threads sharing this log wait throughout.
        with self._lock:
            with self._read() as conn:
                seen = conn.execute("PRAGMA data_version").fetchone()[0]
                conn.execute("BEGIN")
                try:
                    prepared = self._prepare(conn, now, batch, actor=actor, start=start, proposer=proposer)
                finally:
                    conn.execute("ROLLBACK")
            with self._write() as conn:
                if conn.execute("PRAGMA data_version").fetchone()[0] != seen:
                    prepared = self._prepare(conn, now, batch, actor=actor, start=start, proposer=proposer)
                result, plan, writes = prepared
                for sql, values in writes:
                    conn.executemany(sql, values)
                plan.write(conn, now, actor, batch.kind.value)
        return result

    @staticmethod
    def _known(conn: sqlite3.Connection, kind: str) -> dict[str, int]:
        return dict(conn.execute("SELECT source_id, task FROM task_sources WHERE kind = ?", (kind,)).fetchall())

    def _prepare(
        self, conn: sqlite3.Connection, now: float, batch: SourceBatch, *,
        actor: str, start: State, proposer: str | None,
    ) -> tuple[SourceImport, _Changes, list[tuple[str, list[tuple]]]]:
        """What the import does to the log as ``conn`` sees it: its result,
        the changes to tasks imported before, and the bulk writes of the
        new ones. Writes nothing."""
        from factory_tui.backends.log import TaskBatch, _batch_writes

        kind = batch.kind.value
        known = self._known(conn, kind)
        here = self._tasks_here(conn, kind)
        result = SourceImport(kind, [], [], [], [], [])
        fresh = [record for record in batch.records if record.source_id not in known]
        index_of = {record.source_id: index for index, record in enumerate(fresh)}
        first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM tasks").fetchone()[0]

        def body_of(seq: int) -> str:
            row = conn.execute("SELECT body FROM task_bodies WHERE seq = ?", (seq,)).fetchone()
            return row[0] if row else ""

        plan = _Changes()
        for record in batch.records:
            seq = known.get(record.source_id)
            if seq is None:
                continue
            if proposer is not None:
                result.skipped.append((f"T-{seq}", record.source_id))
                continue
            self._changes(plan, record, here[seq], body_of, known, index_of, first, start, result)
        if proposer is None:
            for source_id in sorted(batch.gone & known.keys()):
                task = here[known[source_id]]
                gone = SourceRecord(source_id, task.title, GONE_STATUS, Intent.CANCELLED, task.path, task.path)
                self._changes(plan, gone, task, body_of, known, index_of, first, start, result, status_only=True)

        if plan.added_to_existing:
            self._check_loops(conn, plan, fresh, known, index_of, first)

        # New tasks: bulk writes, as add_checked makes them.
        writes: list[tuple[str, list[tuple]]] = []
        if fresh:
            rows: list[tuple] = []
            edges: list[tuple[int, int | str]] = []
            source = proposer or f"import:{kind}"
            for index, record in enumerate(fresh):
                state = State.PROPOSED if proposer else _INTENT_STATE.get(record.intent, start)
                rows.append((record.title, state, record.priority, record.body, None, source, record.labels))
                for ref in record.after:
                    edges.append((index, index_of[ref] if ref in index_of else f"T-{known[ref]}"))
            task_batch = TaskBatch(rows=rows, edges=edges, first=first)
            writes.extend(_batch_writes(task_batch, first, now, actor))
            writes.append((
                "INSERT INTO task_sources (kind, source_id, task, status, fields, path, imported_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (kind, record.source_id, first + index, record.status, json.dumps(_fields(record)),
                     record.path, now, now)
                    for index, record in enumerate(fresh)
                ],
            ))
            result.created = _created_tasks(task_batch, first, now, here, known)
        return result, plan, writes

    def _tasks_here(self, conn: sqlite3.Connection, kind: str) -> dict[int, _Here]:
        # Bodies are left out: one is read only when the tool changed it.
        rows = conn.execute(
            "SELECT t.seq, t.title, t.state, t.priority, t.attempts, t.labels, "
            "s.status, s.path, s.fields FROM task_sources AS s JOIN tasks AS t ON t.seq = s.task "
            "WHERE s.kind = ?",
            (kind,),
        ).fetchall()
        return {
            row[0]: _Here(
                seq=row[0], title=row[1], state=State(row[2]), priority=row[3], attempts=row[4],
                labels=tuple(json.loads(row[5])) if row[5] else (), status=row[6],
                path=row[7], base=json.loads(row[8]),
            )
            for row in rows
        }

    def _changes(
        self, plan: _Changes, record: SourceRecord, task: _Here, body_of: Callable[[int], str],
        known: dict[str, int], index_of: dict[str, int], first: int, start: State, result: SourceImport,
        *, status_only: bool = False,
    ) -> None:
        """What a record imported before changes of its task: only what the
        tool changed since the last import (``task.base``)."""
        base = task.base
        task_id = f"T-{task.seq}"
        changed: list[str] = []
        if not status_only:
            if record.title != base.get("title") and record.title != task.title:
                plan.titles.append((task.seq, task.title, record.title))
                changed.append("title")
            if body_hash(record.body) != base.get("body") and record.body != body_of(task.seq):
                plan.bodies.append((task.seq, record.body))
                changed.append("body")
            if record.priority != base.get("priority") and record.priority != task.priority:
                plan.priorities.append((task.seq, task.priority, record.priority))
                changed.append("priority")
            if list(record.labels) != base.get("labels") and record.labels != task.labels:
                plan.labels.append((task.seq, task.labels, record.labels))
                changed.append("labels")
            before = set(base.get("after", ()))
            now_after = list(record.after)
            if set(now_after) != before and task.state in WAITING_STATES:
                def target(ref: str) -> int:
                    return known[ref] if ref in known else first + index_of[ref]

                added = [target(ref) for ref in now_after if ref not in before]
                dropped = [known[ref] for ref in before if ref not in record.after and ref in known]
                if added or dropped:
                    plan.deps_added.extend((task.seq, seq) for seq in added)
                    plan.deps_dropped.extend((task.seq, seq) for seq in dropped)
                    plan.added_to_existing.extend((task.seq, seq, record) for seq in added)
                    changed.append("dependencies")
        old_intent = Intent(base.get("intent", Intent.OPEN.value))
        if record.intent is not old_intent:
            target_state = _INTENT_STATE.get(record.intent, start)
            unstarted = task.state in WAITING_STATES and task.attempts == 0
            if target_state is not task.state and unstarted:
                plan.states.append((task.seq, task.state, target_state, record))
                changed.append("state")
            elif target_state is not task.state:
                result.kept.append(Kept(task_id, record.source_id, task.state, record.status))
        # What the tool said, as the next import's base (of a dropped task,
        # only that it was dropped).
        fields = {**base, "intent": record.intent.value} if status_only else _fields(record)
        if (fields, record.status, record.path) != (base, task.status, task.path):
            plan.sources.append((record.status, json.dumps(fields), record.path, task.seq))
        if changed:
            result.updated.append(Updated(task_id, record.source_id, tuple(changed)))
        elif not status_only:
            result.unchanged.append((task_id, record.source_id))

    def _check_loops(
        self, conn: sqlite3.Connection, plan: _Changes, fresh: list[SourceRecord],
        known: dict[str, int], index_of: dict[str, int], first: int,
    ) -> None:
        """A task imported before that gains a dependency may close a loop
        through any task of the log: walk the whole plan as it would be."""
        graph: dict[int, list[int]] = {}
        for task, depends_on in conn.execute("SELECT task, depends_on FROM deps ORDER BY rowid"):
            graph.setdefault(task, []).append(depends_on)
        for task, depends_on in plan.deps_dropped:
            if depends_on in graph.get(task, ()):
                graph[task].remove(depends_on)
        for task, depends_on in plan.deps_added:
            graph.setdefault(task, []).append(depends_on)
        for index, record in enumerate(fresh):
            graph[first + index] = [known[ref] if ref in known else first + index_of[ref] for ref in record.after]
        starts = list(dict.fromkeys(task for task, _, _ in plan.added_to_existing))
        loop = find_cycle(starts, lambda seq: graph.get(seq, ()))
        if loop is None:
            return
        names = {seq: source_id for source_id, seq in known.items()}
        names.update({first + index: record.source_id for index, record in enumerate(fresh)})
        record = next(record for task, _, record in plan.added_to_existing if task == loop[0])
        raise SourceError(
            record.where, "dependency cycle: " + path_text([names.get(seq, f"T-{seq}") for seq in loop])
        )

    # --- exporting ----------------------------------------------------------------

    def export_tasks(self, *, bodies: bool = True) -> Iterator[tuple[Task, list[SourceId]]]:
        """Every task in id order, with its dependencies and its ids in other
        tools, read in pages from one snapshot of the log: however long the
        plan, a page at a time is in memory."""
        with self._read() as conn:
            conn.execute("BEGIN")
            try:
                body = "coalesce(b.body, '')" if bodies else "''"
                tasks = conn.execute(
                    f"SELECT t.seq, t.title, t.state, t.priority, t.attempts, t.profile, t.source, t.feedback, "
                    f"t.created_at, t.updated_at, t.labels, {body} FROM tasks AS t "
                    + ("LEFT JOIN task_bodies AS b ON b.seq = t.seq " if bodies else "")
                    + "ORDER BY t.seq"
                )
                deps = _Pages(conn.execute("SELECT task, depends_on FROM deps ORDER BY task, rowid"))
                sources = _Pages(conn.execute(
                    "SELECT task, kind, source_id, status, path FROM task_sources ORDER BY task, kind"
                ))
                # Pages of a hundred: a page is a hundred bodies, however long the plan.
                while page := tasks.fetchmany(100):
                    for row in page:
                        seq = row[0]
                        task = Task(
                            id=f"T-{seq}", title=row[1], state=State(row[2]), priority=row[3],
                            attempts=row[4], profile=row[5], source=row[6], feedback=row[7],
                            created_at=row[8], updated_at=row[9],
                            labels=tuple(json.loads(row[10])) if row[10] else (), body=row[11],
                        )
                        task.depends_on = tuple(f"T-{dep[1]}" for dep in deps.take(seq))
                        yield task, [SourceId(*source[1:]) for source in sources.take(seq)]
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def export_events(self) -> Iterator[Event]:
        """Every event, oldest first, in pages."""
        from factory_tui.backends.log import EVENT_COLUMNS, event_from_row

        with self._read() as conn:
            cursor = conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY id")
            while page := cursor.fetchmany(1000):
                for row in page:
                    yield event_from_row(row)

    def cancelled_ids(self) -> set[str]:
        """The ids of the cancelled tasks (the markdown export leaves them out)."""
        with self._read() as conn:
            return {f"T-{row[0]}" for row in conn.execute("SELECT seq FROM tasks WHERE state = 'cancelled'")}


class _Pages:
    """Rows of a cursor ordered by task, taken task by task in step with
    another cursor's tasks (a merge join, a page at a time)."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self._page: list = []
        self._at = 0
        self._done = False

    def _peek(self):
        if self._at >= len(self._page):
            if self._done:
                return None
            self._page = self._cursor.fetchmany(1000)
            self._at = 0
            if not self._page:
                self._done = True
                return None
        return self._page[self._at]

    def take(self, seq: int) -> list:
        rows = []
        while (row := self._peek()) is not None and row[0] <= seq:
            self._at += 1
            if row[0] == seq:
                rows.append(row)
        return rows


@dataclass(slots=True)
class _Changes:
    """The writes an import makes to tasks imported before."""

    titles: list[tuple[int, str, str]] = field(default_factory=list)
    bodies: list[tuple[int, str]] = field(default_factory=list)
    priorities: list[tuple[int, int, int]] = field(default_factory=list)
    labels: list[tuple[int, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    deps_added: list[tuple[int, int]] = field(default_factory=list)
    deps_dropped: list[tuple[int, int]] = field(default_factory=list)
    # (task, the task it now depends on, the record that says so)
    added_to_existing: list[tuple[int, int, SourceRecord]] = field(default_factory=list)
    states: list[tuple[int, State, State, SourceRecord]] = field(default_factory=list)
    # (status, fields, path, task): the source rows brought up to date
    sources: list[tuple[str, str, str, int]] = field(default_factory=list)

    def write(self, conn: sqlite3.Connection, now: float, actor: str, kind: str) -> None:
        event = _event_writer(conn, now, actor)
        for seq, old, new in self.titles:
            conn.execute("UPDATE tasks SET title = ?, updated_at = ? WHERE seq = ?", (new, now, seq))
            event(seq, KIND_IMPORTED, note=f"title from {kind}: {new}",
                  data={"source": kind, "changed": "title", "from": old, "to": new})
        for seq, body in self.bodies:
            if body:
                conn.execute(
                    "INSERT INTO task_bodies (seq, body) VALUES (?, ?) "
                    "ON CONFLICT (seq) DO UPDATE SET body = excluded.body",
                    (seq, body),
                )
            else:
                conn.execute("DELETE FROM task_bodies WHERE seq = ?", (seq,))
            conn.execute("UPDATE tasks SET updated_at = ? WHERE seq = ?", (now, seq))
            event(seq, KIND_IMPORTED, note=f"body from {kind}", data={"source": kind, "changed": "body"})
        for seq, old_priority, priority in self.priorities:
            conn.execute("UPDATE tasks SET priority = ?, updated_at = ? WHERE seq = ?", (priority, now, seq))
            event(seq, KIND_PRIORITY, note=f"priority {old_priority} → {priority}",
                  data={"from": old_priority, "to": priority, "source": kind})
        for seq, old_labels, labels in self.labels:
            conn.execute(
                "UPDATE tasks SET labels = ?, updated_at = ? WHERE seq = ?",
                (json.dumps(list(labels)) if labels else None, now, seq),
            )
            added = [label for label in labels if label not in old_labels]
            removed = [label for label in old_labels if label not in labels]
            words = [f"+{label}" for label in added] + [f"-{label}" for label in removed]
            event(seq, KIND_LABELS, note="labels " + " ".join(words),
                  data={"added": added, "removed": removed, "labels": list(labels), "source": kind})
        for seq, depends_on in self.deps_dropped:
            if conn.execute("DELETE FROM deps WHERE task = ? AND depends_on = ?", (seq, depends_on)).rowcount:
                event(seq, KIND_UNDEPENDS, note=f"no longer depends on T-{depends_on}", data={"on": f"T-{depends_on}"})
        for seq, depends_on in self.deps_added:
            if conn.execute(
                "INSERT OR IGNORE INTO deps (task, depends_on) VALUES (?, ?)", (seq, depends_on)
            ).rowcount:
                event(seq, KIND_DEPENDS, note=f"depends on T-{depends_on}", data={"on": f"T-{depends_on}"})
        for seq, old_state, state, record in self.states:
            conn.execute("UPDATE tasks SET state = ?, updated_at = ? WHERE seq = ?", (state.value, now, seq))
            event(seq, KIND_IMPORTED, old_state.value, state.value,
                  note=f"{kind} says {record.status}",
                  data={"source": kind, "id": record.source_id, "status": record.status})
        conn.executemany(
            "UPDATE task_sources SET status = ?, fields = ?, path = ?, updated_at = ? WHERE kind = ? AND task = ?",
            [(status, fields, path, now, kind, seq) for status, fields, path, seq in self.sources],
        )


def _event_writer(conn: sqlite3.Connection, now: float, actor: str):
    from factory_tui.backends.log import SQL_EVENT_INSERT

    def write(seq: int, kind: str, from_state: str | None = None, to_state: str | None = None, *,
              note: str, data: dict) -> None:
        conn.execute(
            SQL_EVENT_INSERT,
            (now, f"T-{seq}", kind, actor, from_state, to_state, note, json.dumps(data)),
        )

    return write


def _created_tasks(batch, first: int, now: float, here: dict[int, _Here], known: dict[str, int]) -> list[Task]:
    """The tasks a bulk write made, as add_checked returns them."""
    created = [
        Task(
            id=f"T-{first + index}", title=title, state=state, priority=priority, body=body,
            profile=profile, source=source, created_at=now, updated_at=now, labels=labels,
        )
        for index, (title, state, priority, body, profile, source, labels) in enumerate(batch.rows)
    ]
    depends: dict[int, list[str]] = {}
    blocked: dict[int, list[str]] = {}
    for index, target in batch.edges:
        if isinstance(target, int):
            task_id, done = f"T-{first + target}", batch.rows[target][1] is State.DONE
        else:
            task_id = target
            before = here.get(int(target[2:]))
            done = before is not None and before.state is State.DONE
        depends.setdefault(index, []).append(task_id)
        if not done:
            blocked.setdefault(index, []).append(task_id)
    for index, task_ids in depends.items():
        created[index].depends_on = tuple(task_ids)
        created[index].blocked_by = tuple(blocked.get(index, ()))
    return created
