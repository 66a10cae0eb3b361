"""The execution log's part of the living documents: what every prompt
included (``prompt_documents``), the session history (``landings``), and
the one open task that brings the documents up to date.

* ``record_prompt_documents``: the documents a prompt held, which version
  (blob id) and how much of each; a prompt written again for the same
  attempt (a run given back and started again) replaces its rows.
* A landing is written by ``ExecutionLog.apply`` in the approval's own
  transaction (``_insert_landing``), so a task is never done without its
  entry in the history, nor the other way round.
* ``add_refresh_task``: the refresh task is made only when none is open,
  checked and written in one transaction, so two callers at once (an
  approval's count, the operator's key) never make two.

A mixin of ``ExecutionLog`` (backends/log.py), which holds the connection,
the transactions and the event writer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from factory_tui.artifacts_model import Landing, PromptDocument, QaVerdict
from factory_tui.model import RUN_END_KINDS, NewTask, Task

if TYPE_CHECKING:
    from factory_tui.backends.log import _Transaction

# A refresh task's source: how it is told from other tasks.
REFRESH_SOURCE = "artifacts:refresh"
# States a refresh task is no longer open in.
_CLOSED = ("done", "cancelled")
LANDING_COLUMNS = (
    "id, task_id, title, at, actor, profile, agent, attempts, qa, cost_usd, input_tokens, output_tokens, "
    "last_words, commit_sha, refresh"
)


def landing_from_row(row: Sequence) -> Landing:
    (ident, task_id, title, at, actor, profile, agent, attempts, qa, cost, tokens_in, tokens_out,
     last_words, commit, refresh) = row
    verdicts: tuple[QaVerdict, ...] = ()
    if qa:
        try:
            verdicts = tuple(QaVerdict(str(item["scenario"]), str(item["verdict"]), str(item["gate"]))
                             for item in json.loads(qa))
        except (ValueError, TypeError, KeyError):
            verdicts = ()
    return Landing(task_id=task_id, title=title, at=at, actor=actor, profile=profile, agent=agent,
                   attempts=attempts, qa=verdicts, cost_usd=cost, input_tokens=tokens_in,
                   output_tokens=tokens_out, last_words=last_words, commit=commit, refresh=bool(refresh), id=ident)


class DocumentRecords:
    """The living documents' methods of ``ExecutionLog``."""

    # Provided by ExecutionLog.
    _clock: Callable[[], float]
    _write: Callable[[], _Transaction]
    _read: Callable[[], _Transaction]
    _task_row: Callable[[sqlite3.Connection, str], Task]

    # --- what prompts read -----------------------------------------------------

    def record_prompt_documents(self, task_id: str, attempt: int,
                                documents: Iterable[tuple[str, str, int, int, bool]]) -> None:
        """The documents the prompt of ``task_id``'s ``attempt`` holds, as
        (name, blob, bytes shown, size, whole); replaces what an earlier
        prompt of the same attempt recorded."""
        now = self._clock()
        rows = [(task_id, attempt, name, blob, shown, size, int(whole), now, position)
                for position, (name, blob, shown, size, whole) in enumerate(documents)]
        with self._write() as conn:
            conn.execute("DELETE FROM prompt_documents WHERE task_id = ? AND attempt = ?", (task_id, attempt))
            conn.executemany("INSERT OR REPLACE INTO prompt_documents (task_id, attempt, name, blob, shown, size, "
                             "whole, at, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def prompt_documents(self, task_id: str, attempt: int | None = None) -> list[PromptDocument]:
        """What the prompts of a task (one attempt, or all) included, by
        attempt and then in the prompt's order."""
        sql = "SELECT task_id, attempt, name, blob, shown, size, whole, at FROM prompt_documents WHERE task_id = ?"
        params: list[object] = [task_id]
        if attempt is not None:
            sql += " AND attempt = ?"
            params.append(attempt)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY attempt, position", params).fetchall()
        return [PromptDocument(task_id=row[0], attempt=row[1], name=row[2], blob=row[3], shown=row[4],
                               size=row[5], whole=bool(row[6]), at=row[7]) for row in rows]

    def prompt_counts(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """How many prompts included each document (by name), whatever its
        version; from the index by name alone."""
        with self._read() as conn:
            if names is None:
                rows = conn.execute("SELECT name, count(*) FROM prompt_documents GROUP BY name").fetchall()
            else:
                wanted = list(dict.fromkeys(names))
                rows = []
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    rows += conn.execute(
                        f"SELECT name, count(*) FROM prompt_documents WHERE name IN ({','.join('?' * len(chunk))}) "
                        "GROUP BY name", chunk).fetchall()
        return {name: count for name, count in rows}

    # --- the session history ---------------------------------------------------

    def _insert_landing(self, conn: sqlite3.Connection, at: float, landing: Landing) -> None:
        """The landing's row, in the caller's transaction (``apply``)."""
        qa = json.dumps([verdict.to_json() for verdict in landing.qa]) if landing.qa else None
        conn.execute(
            f"INSERT INTO landings ({LANDING_COLUMNS.removeprefix('id, ')}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (landing.task_id, landing.title, at, landing.actor, landing.profile, landing.agent, landing.attempts,
             qa, landing.cost_usd, landing.input_tokens, landing.output_tokens, landing.last_words,
             landing.commit, int(landing.refresh)),
        )

    def run_totals(self, task_id: str) -> tuple[int, float | None, int | None, int | None]:
        """(runs, cost, input tokens, output tokens) of every run of the
        task that ended: the ``finished``, ``failed`` and ``checking``
        events whose data names a run folder (a run that went on to QA
        ended in ``checking``). A figure no run reported is None."""
        with self._read() as conn:
            row = conn.execute(
                f"""SELECT count(run), sum(cost), sum(tokens_in), sum(tokens_out) FROM (
                       SELECT json_extract(data, '$.run') AS run, json_extract(data, '$.cost_usd') AS cost,
                              json_extract(data, '$.input_tokens') AS tokens_in,
                              json_extract(data, '$.output_tokens') AS tokens_out
                       FROM events WHERE task_id = ? AND kind IN ({', '.join(repr(kind) for kind in RUN_END_KINDS)})
                         AND data IS NOT NULL)
                   WHERE run IS NOT NULL""", (task_id,)).fetchone()
        runs, cost, tokens_in, tokens_out = row
        return (int(runs or 0), None if cost is None else float(cost), None if tokens_in is None else int(tokens_in),
                None if tokens_out is None else int(tokens_out))

    def landings(self, *, limit: int = 100, before_id: int | None = None, since: float | None = None) -> list[Landing]:
        """Landings newest first: at most ``limit``, older than the landing
        ``before_id`` (to page on), later than ``since``."""
        where: list[str] = []
        params: list[object] = []
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        if since is not None:
            where.append("at > ?")
            params.append(since)
        sql = f"SELECT {LANDING_COLUMNS} FROM landings"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, max(0, limit))).fetchall()
        return [landing_from_row(row) for row in rows]

    def landing_count(self, *, since: float | None = None) -> int:
        """Landings in all, or later than ``since`` (by the index on time)."""
        with self._read() as conn:
            if since is None:
                return conn.execute("SELECT count(*) FROM landings").fetchone()[0]
            return conn.execute("SELECT count(*) FROM landings WHERE at > ?", (since,)).fetchone()[0]

    def landing_mark(self) -> tuple[int, int]:
        """(landings in all, the newest one's id), in one read: landings
        are only ever added, so the two say whether any came since."""
        with self._read() as conn:
            count, newest = conn.execute("SELECT count(*), max(id) FROM landings").fetchone()
        return count, newest or 0

    def landing_counts_since(self, times: Sequence[float]) -> list[int]:
        """For each time, the landings later than it (a document's last
        change: how many landed since), in one read."""
        with self._read() as conn:
            return [conn.execute("SELECT count(*) FROM landings WHERE at > ?", (at,)).fetchone()[0] for at in times]

    # --- keeping the documents current ----------------------------------------------

    def last_refresh(self) -> float | None:
        """When the last refresh task landed (None: never)."""
        with self._read() as conn:
            return conn.execute("SELECT max(at) FROM landings WHERE refresh = 1").fetchone()[0]

    def refresh_count_start(self) -> float:
        """Where the count towards the next automatic refresh starts: the
        last refresh's landing, or the making of the newest refresh task
        (so that one the operator cancelled comes again only after as many
        landings again, not at the next one); 0 for a base with neither."""
        with self._read() as conn:
            landed = conn.execute("SELECT max(at) FROM landings WHERE refresh = 1").fetchone()[0]
            made = conn.execute("SELECT max(created_at) FROM tasks WHERE source = ?", (REFRESH_SOURCE,)).fetchone()[0]
        return max(landed or 0.0, made or 0.0)

    def open_refresh_task(self) -> Task | None:
        """The refresh task not yet done or cancelled, if there is one."""
        with self._read() as conn:
            return self._open_refresh(conn)

    def _open_refresh(self, conn: sqlite3.Connection) -> Task | None:
        row = conn.execute(
            f"SELECT seq FROM tasks WHERE source = ? AND state NOT IN ({','.join('?' * len(_CLOSED))}) "
            "ORDER BY seq LIMIT 1", (REFRESH_SOURCE, *_CLOSED)).fetchone()
        return self._task_row(conn, f"T-{row[0]}") if row else None

    def add_refresh_task(self, new: NewTask, *, actor: str) -> tuple[Task, bool]:
        """Make ``new`` (its source must be ``REFRESH_SOURCE``) unless a
        refresh task is open: then that one, and False."""
        from factory_tui.backends.log import _batch_writes

        assert new.source == REFRESH_SOURCE
        batch = self.check_tasks([new])  # type: ignore[attr-defined]
        now = self._clock()
        with self._write() as conn:
            found = self._open_refresh(conn)
            if found is not None:
                return found, False
            first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM tasks").fetchone()[0]
            for sql, values in _batch_writes(batch, first, now, actor):
                conn.executemany(sql, values)
            return self._task_row(conn, f"T-{first}"), True
