"""The execution log's part of quality assurance: a task's way through
``checking``, and every QA run as a row.

An agent's run that finishes with work goes to ``checking`` under the same
lease (``ExecutionLog.finish(token, State.CHECKING)``): the engine renews it
while the scenarios run, records each result (``record_qa``) and ends the
check (``conclude_check``): passed → review, rejected → back to the queue
with the report as feedback, failed → failed. An engine that dies or shuts
down while checking leaves the task in ``checking`` without a lease (the
reaper, or ``stop_check``); the next engine takes it with ``claim_check`` and
runs its QA again. Results are recorded only under a live lease, so a check
that was taken over is never counted twice.

A mixin of ``ExecutionLog`` (backends/log.py), which holds the connection,
the transactions and the event writer; kept apart so that the log's queue
stays readable.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from factory_tui.errors import InvalidInput, LeaseLost
from factory_tui.model import EVENT_KIND, KIND_QA, Action, Claim, State, Task, task_seq
from factory_tui.qa_model import QaResult, Verdict

if TYPE_CHECKING:
    from factory_tui.backends.log import _Transaction

# What a check may end in, and where each leads.
CHECK_ENDS = {Action.PASS: State.REVIEW, Action.REJECT: State.QUEUED, Action.FAIL: State.FAILED}

_QA_COLUMNS = (
    "id, at, task_id, attempt, scenario, version, kind, gate, verdict, reason, commit_sha, base_commit, "
    "duration, attempts, cost_usd, input_tokens, output_tokens, output, tests, actor"
)


@dataclass(frozen=True, slots=True)
class QaRun:
    """One row of ``qa_runs``: a result, and when, for what and by whom."""

    id: int
    at: float
    task_id: str | None
    attempt: int | None
    actor: str | None
    result: QaResult

    def to_json(self) -> dict:
        return {"id": self.id, "at": self.at, "task_id": self.task_id, "attempt": self.attempt,
                "actor": self.actor, **self.result.to_json()}


@dataclass(frozen=True, slots=True)
class ScenarioStats:
    """A scenario's record over its last runs."""

    scenario: str
    runs: int
    passed: int  # PASS and FLAKY
    flaky: int
    mean_duration: float
    mean_cost: float | None
    last: Verdict | None
    verdicts: tuple[Verdict, ...]  # oldest first, for a sparkline

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0


def _qa_run(row: Sequence) -> QaRun:
    (id_, at, task_id, attempt, scenario, version, kind, gate, verdict, reason, commit, base, duration,
     attempts, cost, tokens_in, tokens_out, output, tests, actor) = row
    result = QaResult.from_json({
        "scenario": scenario, "version": version or "", "kind": kind, "gate": gate, "verdict": verdict,
        "reason": reason or "", "commit": commit or "", "base_commit": base, "duration": duration,
        "attempts": attempts, "cost_usd": cost, "input_tokens": tokens_in, "output_tokens": tokens_out,
        "output": output, "tests": json.loads(tests) if tests else {},
    })
    return QaRun(id_, at, task_id, attempt, actor, result)


class QaRecords:
    """The QA methods of ``ExecutionLog``."""

    # Provided by ExecutionLog.
    _clock: Callable[[], float]
    _write: Callable[[], _Transaction]
    _read: Callable[[], _Transaction]
    _event: Callable[..., None]
    _lease_lost: Callable[[sqlite3.Connection, str, str], LeaseLost]
    _task_row: Callable[[sqlite3.Connection, str], Task]

    # --- the check's lease ----------------------------------------------------------

    def claim_check(self, worker: str, *, lease_seconds: float) -> Claim | None:
        """Take a task left in ``checking`` without a lease (its engine died
        or shut down), to run its QA again; None if there is none."""
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                "SELECT seq FROM tasks WHERE state = 'checking' AND lease_token IS NULL ORDER BY priority DESC, seq"
            ).fetchone()
            if row is None:
                return None
            seq = row[0]
            token = f"T-{seq}:{secrets.token_hex(8)}"
            conn.execute(
                "UPDATE tasks SET lease_token = ?, lease_worker = ?, lease_expires = ?, updated_at = ? WHERE seq = ?",
                (token, worker, now + lease_seconds, now, seq),
            )
            task_id = f"T-{seq}"
            self._event(conn, now, task_id, EVENT_KIND[Action.CLAIM], worker, "checking", "checking",
                        "QA again: the check before it did not end", {"lease": token})
            task = self._task_row(conn, task_id)
        # A check holds no agent secret: no agent runs under it.
        return Claim(task=task, token=token, worker=worker, expires_at=now + lease_seconds, secret="")

    def stop_check(self, token: str, *, note: str | None = None) -> Task:
        """The engine shuts down while checking: the task stays in
        ``checking`` without a lease, for the next engine to check again."""
        task_id = _task_of(token)
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                "UPDATE tasks SET lease_token = NULL, updated_at = ? "
                "WHERE seq = ? AND lease_token = ? AND state = 'checking' RETURNING lease_worker",
                (now, task_seq(task_id), token),
            ).fetchone()
            if row is None:
                raise self._lease_lost(conn, task_id, token)
            self._event(conn, now, task_id, EVENT_KIND[Action.STOP], row[0], "checking", "checking",
                        note or "the engine stopped; QA runs again under the next one", {"lease": token})
            return self._task_row(conn, task_id)

    # --- results ----------------------------------------------------------------------

    def record_qa(self, token: str, results: Sequence[QaResult], *, attempt: int) -> list[int]:
        """Record a check's results, each a row and a ``qa`` event, while its
        lease is live; LeaseLost otherwise (the check was taken over or
        cancelled: its results are not this check's to count)."""
        task_id = _task_of(token)
        now = self._clock()
        with self._write() as conn:
            live = conn.execute(
                "SELECT lease_worker FROM tasks WHERE seq = ? AND lease_token = ? AND state = 'checking'",
                (task_seq(task_id), token),
            ).fetchone()
            if live is None:
                raise self._lease_lost(conn, task_id, token)
            return [self._insert_qa(conn, now, task_id, attempt, live[0], result) for result in results]

    def record_qa_on_demand(
        self, results: Sequence[QaResult], *, actor: str, task_id: str | None = None, attempt: int | None = None
    ) -> list[int]:
        """Results of QA asked for by the operator (the CLI, the QA pane),
        for a task or for none; they never move a task."""
        now = self._clock()
        with self._write() as conn:
            if task_id is not None:
                self._task_row(conn, task_id)  # UnknownTask
            return [self._insert_qa(conn, now, task_id, attempt, actor, result) for result in results]

    def _insert_qa(
        self, conn: sqlite3.Connection, now: float, task_id: str | None, attempt: int | None, actor: str,
        result: QaResult,
    ) -> int:
        row = conn.execute(
            "INSERT INTO qa_runs (at, task_id, attempt, scenario, version, kind, gate, verdict, reason, commit_sha, "
            "base_commit, duration, attempts, cost_usd, input_tokens, output_tokens, output, tests, actor) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (now, task_id, attempt, result.scenario, result.version, str(result.kind), str(result.gate),
             str(result.verdict), result.reason, result.commit, result.base_commit, result.duration,
             result.attempts, result.cost_usd, result.input_tokens, result.output_tokens, result.output,
             json.dumps(result.tests) if result.tests else None, actor),
        ).fetchone()
        if task_id is not None:
            gate = "" if result.gate == "required" else f" ({result.gate})"
            self._event(conn, now, task_id, KIND_QA, actor,
                        note=f"{result.scenario}{gate}: {result.verdict}" + (f" · {result.reason}" if result.reason else ""),
                        data={"qa_run": row[0], "scenario": result.scenario, "verdict": str(result.verdict),
                              "gate": str(result.gate), "output": result.output})
        return int(row[0])

    # --- the check's end --------------------------------------------------------------

    def conclude_check(
        self, token: str, action: Action, *, note: str | None = None, commit: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Task:
        """End a check: ``PASS`` (to review; ``commit`` is what passed, and
        only an approve of that commit goes through unforced), ``REJECT``
        (back to the queue, ``note`` as the next prompt's feedback; one more
        QA round counted) or ``FAIL`` (to failed, ``note`` the report).
        LeaseLost if the lease is gone; nothing changes then."""
        action = Action(action)
        target = CHECK_ENDS.get(action)
        if target is None:
            raise InvalidInput(f"a check ends in pass, reject or fail, not {action}")
        task_id = _task_of(token)
        now = self._clock()
        with self._write() as conn:
            sets = "state = ?, updated_at = ?, lease_token = NULL"
            params: list = [target.value, now]
            if action is Action.PASS:
                sets += ", checked_commit = ?"
                params.append(commit)
            elif action is Action.REJECT:
                sets += ", feedback = ?, qa_rounds = qa_rounds + 1"
                params.append(note or None)
            row = conn.execute(
                f"UPDATE tasks SET {sets} WHERE seq = ? AND lease_token = ? AND state = 'checking' "
                "RETURNING lease_worker",
                (*params, task_seq(task_id), token),
            ).fetchone()
            if row is None:
                raise self._lease_lost(conn, task_id, token)
            self._event(conn, now, task_id, EVENT_KIND[action], row[0], "checking", target.value, note,
                        {"lease": token, **({"commit": commit} if commit else {}), **(data or {})})
            return self._task_row(conn, task_id)

    # --- reading ----------------------------------------------------------------------

    def qa_state(self, task_id: str) -> tuple[int, str | None]:
        """(QA rounds since the operator last sent the task back, the commit
        its required QA last passed on)."""
        with self._read() as conn:
            row = conn.execute("SELECT qa_rounds, checked_commit FROM tasks WHERE seq = ?",
                               (task_seq(task_id),)).fetchone()
            if row is None:
                self._task_row(conn, task_id)  # UnknownTask
            return int(row[0] or 0), row[1]

    def qa_runs(
        self, *, task_id: str | None = None, scenario: str | None = None, limit: int = 100,
        before_id: int | None = None,
    ) -> list[QaRun]:
        """QA runs, newest first: all, a task's, or a scenario's."""
        where: list[str] = []
        params: list[object] = []
        if task_id is not None:
            where.append("task_id = ?")
            params.append(task_id)
        if scenario is not None:
            where.append("scenario = ?")
            params.append(scenario)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = f"SELECT {_QA_COLUMNS} FROM qa_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._read() as conn:
            return [_qa_run(row) for row in conn.execute(sql, (*params, max(0, limit)))]

    def qa_run(self, run_id: int) -> QaRun | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_QA_COLUMNS} FROM qa_runs WHERE id = ?", (run_id,)).fetchone()
        return _qa_run(row) if row else None

    def qa_stats(self, *, last: int = 20) -> dict[str, ScenarioStats]:
        """Per scenario, over its ``last`` runs: pass rate, flaky count,
        mean duration and cost, the verdicts in order."""
        sql = """
            SELECT scenario, verdict, duration, cost_usd FROM (
                SELECT scenario, verdict, duration, cost_usd, id,
                       row_number() OVER (PARTITION BY scenario ORDER BY id DESC) AS n
                FROM qa_runs)
            WHERE n <= ? ORDER BY scenario, id
        """
        by: dict[str, list[tuple[Verdict, float, float | None]]] = {}
        with self._read() as conn:
            for scenario, verdict, duration, cost in conn.execute(sql, (max(1, last),)):
                by.setdefault(scenario, []).append((Verdict(verdict), duration or 0.0, cost))
        stats = {}
        for scenario, rows in by.items():
            verdicts = tuple(v for v, _, _ in rows)
            costs = [c for _, _, c in rows if c is not None]
            stats[scenario] = ScenarioStats(
                scenario=scenario,
                runs=len(rows),
                passed=sum(v in (Verdict.PASS, Verdict.FLAKY) for v in verdicts),
                flaky=sum(v is Verdict.FLAKY for v in verdicts),
                mean_duration=sum(d for _, d, _ in rows) / len(rows),
                mean_cost=sum(costs) / len(costs) if costs else None,
                last=verdicts[-1] if verdicts else None,
                verdicts=verdicts,
            )
        return stats


def _task_of(token: str) -> str:
    # The lease token names its task: "T-3:…" (as backends/log.py's).
    from factory_tui.backends.log import task_of_token

    return task_of_token(token)
