"""Readiness kept as tasks change: every task counts its blockers (its
dependencies not yet done) in the transaction of the change, so the claim
takes the head of an index of ready tasks, as cheaply at 100 queued tasks as
behind thousands that wait."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from factory_tui.backends.log import SQL_CLAIM, ExecutionLog
from factory_tui.errors import InvalidInput
from factory_tui.model import Action, NewTask, State


@pytest.fixture
def log(tmp_path: Path) -> Iterator[ExecutionLog]:
    with ExecutionLog.open(tmp_path / "log.db", create=True) as opened:
        yield opened


def blockers(log: ExecutionLog) -> dict[str, int]:
    conn = sqlite3.connect(log.path)
    try:
        return {f"T-{seq}": n for seq, n in conn.execute("SELECT seq, blockers FROM tasks ORDER BY seq")}
    finally:
        conn.close()


def blockers_from_scratch(log: ExecutionLog) -> dict[str, int]:
    return {task.id: len(task.blocked_by) for task in log.list_tasks(bodies=False)}


def claim_id(log: ExecutionLog) -> str | None:
    claim = log.claim_next("w")
    return None if claim is None else claim.task.id


def land(log: ExecutionLog, task_id: str) -> None:
    """Run ``task_id`` (the claim must take it) and approve it: done."""
    claim = log.claim_next("w")
    assert claim is not None and claim.task.id == task_id
    log.finish(claim.token, State.REVIEW)
    log.apply(task_id, Action.APPROVE, actor="op")


def test_adding_and_removing_a_dependency_blocks_and_frees_a_task(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="urgent", priority=9), actor="t")  # T-1
    log.add_task(NewTask(title="first", state=State.HELD), actor="t")  # T-2
    log.add_dependency("T-1", "T-2", actor="t")
    assert blockers(log) == {"T-1": 1, "T-2": 0}
    assert not log.has_ready() and claim_id(log) is None
    # The same dependency again changes nothing (it is there once).
    log.add_dependency("T-1", "T-2", actor="t")
    assert blockers(log)["T-1"] == 1
    log.remove_dependency("T-1", "T-2", actor="t")
    assert blockers(log) == {"T-1": 0, "T-2": 0}
    assert log.has_ready() and claim_id(log) == "T-1"


def test_a_dependency_on_a_done_task_blocks_nothing(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="done first"), actor="t")  # T-1
    land(log, "T-1")
    log.add_task(NewTask(title="after it"), actor="t")  # T-2
    log.add_dependency("T-2", "T-1", actor="t")
    assert blockers(log) == {"T-1": 0, "T-2": 0}
    # Taking it away again must not count below nothing.
    log.remove_dependency("T-2", "T-1", actor="t")
    assert blockers(log) == {"T-1": 0, "T-2": 0}
    assert claim_id(log) == "T-2"


def test_a_cancelled_dependency_keeps_blocking_until_it_is_removed(log: ExecutionLog) -> None:
    log.add_tasks(
        [NewTask(title="dep"), NewTask(title="waits", priority=5, after=("dep",))],
        actor="t", handles=["dep", None],
    )
    log.apply("T-1", Action.CANCEL, actor="op")
    assert blockers(log)["T-2"] == 1
    assert claim_id(log) is None
    log.remove_dependency("T-2", "T-1", actor="op")
    assert claim_id(log) == "T-2"


def test_a_failed_dependency_blocks_through_its_requeue_until_it_is_done(log: ExecutionLog) -> None:
    log.add_tasks(
        [NewTask(title="dep"), NewTask(title="waits", priority=5, after=("dep",))],
        actor="t", handles=["dep", None],
    )
    claim = log.claim_next("w")
    assert claim is not None and claim.task.id == "T-1"
    log.finish(claim.token, State.FAILED)
    assert blockers(log)["T-2"] == 1 and claim_id(log) is None
    log.apply("T-1", Action.REQUEUE, actor="op", note="again")
    assert blockers(log)["T-2"] == 1
    land(log, "T-1")
    assert blockers(log)["T-2"] == 0
    assert claim_id(log) == "T-2"


def test_a_requeued_task_is_ready_again_only_if_its_dependencies_are_done(log: ExecutionLog) -> None:
    log.add_tasks(
        [NewTask(title="dep"), NewTask(title="waits", priority=5, after=("dep",)), NewTask(title="other")],
        actor="t", handles=["dep", None, None],
    )
    land(log, "T-1")
    claim = log.claim_next("w")
    assert claim is not None and claim.task.id == "T-2"
    log.finish(claim.token, State.FAILED)
    log.apply("T-2", Action.REQUEUE, actor="op", note="once more")
    assert claim_id(log) == "T-2"  # ahead of T-3 by its priority
    # A held task is not ready, whatever its blockers; released, it is.
    log.apply("T-3", Action.HOLD, actor="op")
    assert claim_id(log) is None
    log.apply("T-3", Action.RELEASE, actor="op")
    assert claim_id(log) == "T-3"


def test_a_batch_counts_its_own_dependencies_and_ticked_items(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="before"), actor="t")  # T-1, queued
    log.add_tasks(
        [
            NewTask(title="ticked"),                                   # T-2, done
            NewTask(title="after ticked", after=("ticked",)),          # T-3: 0
            NewTask(title="after later", after=("later", "T-1")),      # T-4: 2
            NewTask(title="later"),                                    # T-5
        ],
        actor="t", handles=["ticked", None, None, "later"], done=[True, False, False, False],
    )
    assert blockers(log) == {"T-1": 0, "T-2": 0, "T-3": 0, "T-4": 2, "T-5": 0}
    assert blockers(log) == blockers_from_scratch(log)


def test_a_task_leaving_done_by_another_tool_blocks_its_dependents_again(log: ExecutionLog) -> None:
    """The count is the schema's (triggers), so it holds whatever writes the
    log: here a plain sqlite3 connection, as another tool might."""
    log.add_tasks(
        [NewTask(title="dep"), NewTask(title="waits", after=("dep",))], actor="t", handles=["dep", None],
    )
    land(log, "T-1")
    assert blockers(log)["T-2"] == 0
    conn = sqlite3.connect(log.path, isolation_level=None)
    try:
        conn.execute("UPDATE tasks SET state = 'queued' WHERE seq = 1")
        assert blockers(log)["T-2"] == 1
        conn.execute("UPDATE deps SET depends_on = 2, task = 1")  # T-1 now waits for T-2
        assert blockers(log) == {"T-1": 1, "T-2": 0}
        conn.execute("DELETE FROM deps")
    finally:
        conn.close()
    assert blockers(log) == {"T-1": 0, "T-2": 0} == blockers_from_scratch(log)


def test_an_import_that_closes_a_task_frees_its_dependents(log: ExecutionLog) -> None:
    from factory_tui.plan_formats.records import Intent, Kind, SourceBatch, SourceRecord

    def batch(status: str, intent: Intent) -> SourceBatch:
        return SourceBatch(Kind.BEADS, [
            SourceRecord("bd-1", "from beads", status, intent, "issues.jsonl:1 (bd-1)", "issues.jsonl"),
        ])

    log.import_source(batch("open", Intent.OPEN), actor="t", start=State.QUEUED)
    waiting = log.add_task(NewTask(title="after bd-1", priority=5, after=("T-1",)), actor="t")
    assert blockers(log)[waiting.id] == 1
    # Closed in beads before it ran here: done here too, and no longer a blocker.
    log.import_source(batch("closed", Intent.DONE), actor="t")
    assert log.get_task("T-1").state is State.DONE
    assert blockers(log) == blockers_from_scratch(log) == {"T-1": 0, waiting.id: 0}
    assert claim_id(log) == waiting.id


def test_removing_a_dependency_that_is_not_there_is_refused(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="a"), actor="t")
    log.add_task(NewTask(title="b"), actor="t")
    with pytest.raises(InvalidInput):
        log.remove_dependency("T-1", "T-2", actor="t")
    assert blockers(log) == {"T-1": 0, "T-2": 0}


# --- the claim's cost does not grow with the tasks that wait ------------------------


def claim_steps(path: Path) -> tuple[str, int]:
    """The task the claim would take and the SQLite virtual machine steps the
    claim statement runs to take it (rolled back): its work, counted
    exactly, where a time would be noise."""
    conn = sqlite3.connect(path, isolation_level=None)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.set_progress_handler(count, 1)
        row = conn.execute(
            SQL_CLAIM,
            {"now": 1.0, "secret": "s", "worker": "w", "expires": 2.0, "run_secret": "r"},
        ).fetchone()
        conn.set_progress_handler(None, 1)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    assert row is not None
    return f"T-{row[0]}", steps


def test_the_claim_does_the_same_work_behind_thousands_of_blocked_tasks(tmp_path: Path) -> None:
    small, big = tmp_path / "small.db", tmp_path / "big.db"
    ready = [NewTask(title=f"ready {i}", priority=1) for i in range(100)]
    with ExecutionLog.open(small, create=True) as log:
        log.add_tasks([NewTask(title="gate", state=State.HELD), *ready], actor="t")
    with ExecutionLog.open(big, create=True) as log:
        # 5,000 queued tasks of a higher priority, every one waiting for a
        # held task: the claim used to check each of them, every time.
        blocked = [NewTask(title=f"blocked {i}", priority=9, after=("gate",)) for i in range(5000)]
        log.add_tasks(
            [NewTask(title="gate", state=State.HELD), *ready, *blocked],
            actor="t", handles=["gate", *[None] * (len(ready) + len(blocked))],
        )
    took_small, steps_small = claim_steps(small)
    took_big, steps_big = claim_steps(big)
    assert took_small == took_big == "T-2"
    assert steps_big <= steps_small + 10, (steps_small, steps_big)
