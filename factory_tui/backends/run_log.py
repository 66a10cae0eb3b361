"""The execution log's part of run artifacts: the run index (``runs`` and
``run_files``, schema version 7) and what the log knows of a run's end.

One row per run folder (``runs/<task>/<folder>``): how it ended, its
figures and its diff summary; one row per file of it, with the file's kind,
size and state. ``backends/run_index.py`` decides what goes in; this module
only reads and writes rows. The index is derived data: every row can be
made again from the run's folder and the events, so writing it never
touches a task's state or its history.

A mixin of ``ExecutionLog`` (backends/log.py), which holds the connection
and the transactions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from factory_tui.artifacts_model import FileState, RunFile, RunRecord

if TYPE_CHECKING:
    from factory_tui.backends.log import _Transaction

_RUN_COLUMNS = (
    "task_id, folder, attempt, profile, agent, started_at, ended_at, outcome, exit_code, cost_usd, "
    "input_tokens, output_tokens, files_changed, lines_added, lines_removed, diff_base, diff_head"
)
# The raw output's name in a run's file list (backends/run_folders.py RAW).
RAW_NAME = "output.raw"
# The events that say how a run (a lease) began and ended.
RUN_END_KINDS = ("claimed", "finished", "checking", "failed", "stopped", "expired")


@dataclass(frozen=True, slots=True)
class IndexedRun:
    """A row of ``runs`` as written: the record and the commits its diff
    figures count between."""

    record: RunRecord
    diff_base: str | None = None
    diff_head: str | None = None


@dataclass(frozen=True, slots=True)
class RetentionRow:
    """A run as retention sees it in the index."""

    task_id: str
    folder: str
    outcome: str
    raw_state: str | None  # None: the index lists no raw output


@dataclass(frozen=True, slots=True)
class LeaseEnd:
    """What the events say of one lease (one run): when it was claimed, the
    first event that ended it (its kind, time and data)."""

    claimed_at: float | None = None
    kind: str | None = None
    at: float | None = None
    data: dict | None = None


def _record(row: Sequence, files: Sequence[RunFile]) -> RunRecord:
    (task_id, folder, attempt, profile, agent, started, ended, outcome, code, cost, tokens_in, tokens_out,
     changed, added, removed, _base, _head) = row
    return RunRecord(
        task_id=task_id, attempt=attempt, folder=folder, profile=profile, agent=agent, started_at=started,
        ended_at=ended, outcome=outcome, exit_code=code, cost_usd=cost, input_tokens=tokens_in,
        output_tokens=tokens_out, files_changed=changed, lines_added=added, lines_removed=removed,
        files=tuple(files),
    )


class RunRecords:
    """The run index (a mixin of ExecutionLog)."""

    # Provided by ExecutionLog.
    _write: Callable[[], _Transaction]
    _read: Callable[[], _Transaction]

    def record_run(self, run: IndexedRun, *, keep_dropped: bool = True) -> None:
        """Write one run and its files (replacing what the index held of
        it). ``keep_dropped``: files the index had marked dropped that are
        not among ``run.record.files`` stay listed as dropped (a folder read
        from disk no longer shows them)."""
        record = run.record
        values = (
            record.task_id, record.folder, record.attempt, record.profile, record.agent, record.started_at,
            record.ended_at, record.outcome, record.exit_code, record.cost_usd, record.input_tokens,
            record.output_tokens, record.files_changed, record.lines_added, record.lines_removed,
            run.diff_base, run.diff_head, time.time(),
        )
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, indexed_at) VALUES ({','.join('?' * len(values))}) "
                "ON CONFLICT (task_id, folder) DO UPDATE SET "
                + ", ".join(f"{column.strip()} = excluded.{column.strip()}"
                            for column in (_RUN_COLUMNS + ", indexed_at").split(",")[2:]),
                values,
            )
            self._replace_files(conn, record.task_id, record.folder, record.files, keep_dropped)

    def set_run_files(self, task_id: str, folder: str, files: Sequence[RunFile]) -> None:
        """A run's files listed again (its figures stay as they are); those
        the index had marked dropped stay listed. Nothing for a run the
        index does not hold."""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE task_id = ? AND folder = ?", (task_id, folder)).fetchone():
                self._replace_files(conn, task_id, folder, files, True)

    @staticmethod
    def _replace_files(conn, task_id: str, folder: str, files: Sequence[RunFile], keep_dropped: bool) -> None:
        key = (task_id, folder)
        names = {item.name for item in files}
        dropped = []
        if keep_dropped:
            dropped = [row for row in conn.execute(
                "SELECT name, kind FROM run_files WHERE task_id = ? AND folder = ? AND state = ?",
                (*key, FileState.DROPPED.value)) if row[0] not in names]
        conn.execute("DELETE FROM run_files WHERE task_id = ? AND folder = ?", key)
        conn.executemany(
            "INSERT INTO run_files (task_id, folder, name, kind, size, state) VALUES (?, ?, ?, ?, ?, ?)",
            [(*key, item.name, item.kind, item.size, item.state) for item in files]
            + [(*key, name, kind, 0, FileState.DROPPED.value) for name, kind in dropped],
        )

    def set_run_file(self, task_id: str, folder: str, name: str, *, kind: str, size: int, state: str) -> None:
        """One file's size and state (retention compressed or dropped it)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO run_files (task_id, folder, name, kind, size, state) "
                "SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM runs WHERE task_id = ? AND folder = ?) "
                "ON CONFLICT (task_id, folder, name) DO UPDATE SET size = excluded.size, state = excluded.state",
                (task_id, folder, name, kind, size, state, task_id, folder),
            )

    def indexed_runs(self, task_ids: Iterable[str] | None = None) -> list[RunRecord]:
        """The runs the index holds (of these tasks), newest first, each
        with its files."""
        where, params = "", []
        if task_ids is not None:
            wanted = list(dict.fromkeys(task_ids))
            if not wanted:
                return []
            where = f" WHERE task_id IN ({','.join('?' * len(wanted))})"
            params = wanted
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs{where} "
                "ORDER BY coalesce(started_at, 0) DESC, task_id, folder", params).fetchall()
            files: dict[tuple[str, str], list[RunFile]] = {}
            for task_id, folder, name, kind, size, state in conn.execute(
                    f"SELECT task_id, folder, name, kind, size, state FROM run_files{where} "
                    "ORDER BY task_id, folder, name", params):
                files.setdefault((task_id, folder), []).append(RunFile(name, kind, size, state))
        return [_record(row, files.get((row[0], row[1]), [])) for row in rows]

    def run_keys(self, task_id: str | None = None) -> dict[tuple[str, str], str]:
        """(task, folder) → outcome of every indexed run (of one task): what
        a look at the disk compares with."""
        where, params = ("", []) if task_id is None else (" WHERE task_id = ?", [task_id])
        with self._read() as conn:
            return {(task, folder): outcome for task, folder, outcome in
                    conn.execute(f"SELECT task_id, folder, outcome FROM runs{where}", params)}

    def retention_rows(self) -> list[RetentionRow]:
        """Every indexed run, newest first, with its raw output's state:
        what retention decides on, without the runs' other files."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT r.task_id, r.folder, r.outcome, f.state FROM runs AS r "
                "LEFT JOIN run_files AS f ON f.task_id = r.task_id AND f.folder = r.folder AND f.name = ? "
                "ORDER BY coalesce(r.started_at, 0) DESC, r.task_id, r.folder", (RAW_NAME,)).fetchall()
        return [RetentionRow(*row) for row in rows]

    def forget_runs(self, keys: Iterable[tuple[str, str]]) -> int:
        """Drop these runs from the index (their folders are gone)."""
        keys = list(keys)
        if not keys:
            return 0
        with self._write() as conn:
            conn.executemany("DELETE FROM run_files WHERE task_id = ? AND folder = ?", keys)
            return sum(conn.execute("DELETE FROM runs WHERE task_id = ? AND folder = ?", key).rowcount
                       for key in keys)

    def lease_ends(self, task_ids: Iterable[str]) -> dict[str, LeaseEnd]:
        """Lease token → how the events say that run began and ended, for
        the runs of these tasks: one scan of the events, for runs the engine
        did not index when they ended (an older factory-tui's)."""
        wanted = list(dict.fromkeys(task_ids))
        if not wanted:
            return {}
        ends: dict[str, LeaseEnd] = {}
        kinds = ",".join(f"'{kind}'" for kind in RUN_END_KINDS)
        sql = (f"SELECT kind, at, data FROM events WHERE kind IN ({kinds}) AND data IS NOT NULL "
               f"AND task_id IN ({','.join('?' * len(wanted))}) ORDER BY id")
        with self._read() as conn:
            for kind, at, text in conn.execute(sql, wanted):
                try:
                    data = json.loads(text)
                except ValueError:
                    continue
                lease = data.get("lease") if isinstance(data, dict) else None
                if not isinstance(lease, str):
                    continue
                known = ends.get(lease, LeaseEnd())
                if kind == "claimed":
                    ends[lease] = LeaseEnd(at, known.kind, known.at, known.data)
                elif known.kind is None:
                    # The first end counts: a check's verdict after
                    # ``checking`` is QA's, not the run's.
                    ends[lease] = LeaseEnd(known.claimed_at, kind, at, data)
        return ends

    def held_leases(self) -> dict[str, tuple[str, str]]:
        """Task → (lease token, state) of every task that holds a lease now
        (running, or checking under its run's lease): their runs are not to
        be touched."""
        with self._read() as conn:
            return {f"T-{seq}": (token, state) for seq, token, state in conn.execute(
                "SELECT seq, lease_token, state FROM tasks WHERE lease_token IS NOT NULL "
                "AND state IN ('running', 'checking')")}
