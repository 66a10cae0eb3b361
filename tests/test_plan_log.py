"""The log's side of greenfield (issue 10 §4): drafts and the changes a
revision proposes, on a real log file; writes made one transaction; a log
of schema 6 brought forward."""

from __future__ import annotations

import sqlite3

import pytest

from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.schema import SCHEMA_VERSION
from factory_tui.draft_model import NewProposal, ProposalKind, ProposalState, normalize_proposal_id
from factory_tui.errors import InvalidInput, LogError, PlanSyntaxError
from factory_tui.model import Action, NewTask, State
from tests.helpers import log_tables

from .test_migrations import make_log_at

TABLES = ("tasks", "task_bodies", "deps", "events", "drafts", "plan_proposals")


def draft(log: ExecutionLog, *proposals: NewProposal, tasks: tuple[str, ...] = ()):
    return log.record_draft(
        spec="SPEC.md", source="draft:SPEC.md", revise=True, profile="demo-planner",
        run_dir=".factory/runs/plan/x/", actor="cli:op", task_ids=list(tasks), skipped=0,
        proposals=list(proposals), where="plan.md",
    )


def cancel(task: str, line: int = 1) -> NewProposal:
    return NewProposal(line, task, ProposalKind.CANCEL, None, f"Drop {task}", "gone from the spec")


def priority(task: str, value: int, line: int = 1) -> NewProposal:
    return NewProposal(line, task, ProposalKind.PRIORITY, value, f"Re-order {task}", "")


def test_a_version_6_log_gains_drafts_and_proposals(tmp_path) -> None:
    path = tmp_path / "log.db"
    make_log_at(path, 6)
    with ExecutionLog.open(path) as log:
        assert log.get_task("T-1").title == "from v1"
        recorded = draft(log, cancel("T-1"))
        assert [p.id for p in recorded.proposals] == ["P-1"]
        assert log.drafts()[0].spec == "SPEC.md"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM qa_runs").fetchone()[0] == 0  # earlier tables kept
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_a_draft_records_its_proposals_with_an_event_each(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="one"), actor="t")
    log.add_task(NewTask(title="two", priority=1), actor="t")
    recorded = draft(log, cancel("T-1", 3), priority("T-2", 5, 7))
    assert recorded.left_out == []
    first, second = recorded.proposals
    assert (first.id, first.kind, first.value, first.state) == ("P-1", ProposalKind.CANCEL, None, ProposalState.PENDING)
    assert (second.id, second.what) == ("P-2", "priority of T-2 → 5")
    assert log.get_task("T-1").state is State.QUEUED  # nothing applied
    assert log.get_task("T-2").priority == 1
    kinds = [(e.task_id, e.kind) for e in log.events(kinds=["proposal", "drafted"])]
    assert kinds == [("T-1", "proposal"), ("T-2", "proposal"), (None, "drafted")]
    assert log.events(kinds=["drafted"])[0].data["proposals"] == ["P-1", "P-2"]
    assert [p.id for p in log.proposals([ProposalState.PENDING])] == ["P-1", "P-2"]


def test_a_change_that_changes_nothing_or_waits_already_is_left_out(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="one", priority=2), actor="t")
    log.add_task(NewTask(title="two"), actor="t")
    log.apply("T-2", Action.CANCEL, actor="t")
    draft(log, priority("T-1", 4))
    recorded = draft(log, priority("T-1", 2, 1), cancel("T-2", 2), priority("T-1", 4, 3))
    assert recorded.proposals == []
    assert [(left.line, left.why) for left in recorded.left_out] == [
        (1, "its priority is 2 already"), (2, "it is cancelled already"), (3, "P-1 proposes it already")]


@pytest.mark.parametrize(("make", "problem"), [
    (lambda log: cancel("T-9", 4), "plan.md:4: id=T-9: no such task in the log"),
    (lambda log: priority("T-1", 3, 5), "plan.md:5: T-1 is done; a done task never changes"),
])
def test_a_change_to_a_missing_or_done_task_refuses_the_whole_draft(log: ExecutionLog, make, problem) -> None:
    log.add_task(NewTask(title="done already"), actor="t")
    claim = log.claim_next("engine")  # the run, the review and the approval, as the log records them
    assert claim is not None
    log.finish(claim.token, State.REVIEW)
    log.apply("T-1", Action.APPROVE, actor="t")
    before = log_tables(log.path, TABLES)
    with pytest.raises(PlanSyntaxError) as refused:
        draft(log, make(log))
    assert str(refused.value) == problem
    assert log_tables(log.path, TABLES) == before


def test_deciding_marks_the_proposal_once_with_an_event(log: ExecutionLog) -> None:
    log.add_task(NewTask(title="one"), actor="t")
    draft(log, cancel("T-1"), priority("T-1", 3, 2))
    accepted = log.decide_proposal("p1", ProposalState.ACCEPTED, actor="cli:op", note="right")
    assert (accepted.state, accepted.decided_by, accepted.decision_note) == (ProposalState.ACCEPTED, "cli:op", "right")
    declined = log.decide_proposal("P-2", ProposalState.DECLINED, actor="cli:op")
    assert declined.state is ProposalState.DECLINED
    with pytest.raises(InvalidInput, match="P-1 was accepted already \\(by cli:op\\)"):
        log.decide_proposal("P-1", ProposalState.DECLINED, actor="cli:op")
    with pytest.raises(InvalidInput, match="no such proposal: P-7"):
        log.decide_proposal("P-7", ProposalState.ACCEPTED, actor="cli:op")
    notes = [e.note for e in log.events(task_id="T-1", kinds=["proposal_accepted", "proposal_declined"])]
    assert notes == ["P-1 accepted: cancel T-1: right", "P-2 declined: priority of T-1 → 3"]
    assert log.proposals([ProposalState.PENDING]) == []


def test_proposal_ids() -> None:
    assert [normalize_proposal_id(text) for text in ("P-3", "p3", " P-03 ")] == ["P-3", "P-3", "P-3"]
    for bad in ("3", "T-3", "P-", "P-x"):
        with pytest.raises(InvalidInput):
            normalize_proposal_id(bad)


def test_writes_inside_a_transaction_are_one(log: ExecutionLog) -> None:
    """What ``plan draft`` relies on: the tasks, the draft and its proposals
    commit together, or not at all."""
    before = log_tables(log.path, TABLES)
    with pytest.raises(RuntimeError, match="half way"), log.transaction():
        log.add_task(NewTask(title="imported"), actor="t")
        draft(log, tasks=("T-1",))
        raise RuntimeError("half way")
    assert log_tables(log.path, TABLES) == before
    with log.transaction():
        log.add_task(NewTask(title="imported"), actor="t")
        draft(log, cancel("T-1"), tasks=("T-1",))
    assert log.get_task("T-1").title == "imported"
    assert [p.task for p in log.proposals()] == ["T-1"]


def test_a_transaction_holds_the_write_lock_until_it_ends(log: ExecutionLog) -> None:
    """Another connection cannot write in the middle of one."""
    other = ExecutionLog.open(log.path, busy_timeout_ms=50)
    try:
        with log.transaction():
            log.add_task(NewTask(title="mine"), actor="t")
            with pytest.raises(LogError, match="locked"):
                other.add_task(NewTask(title="theirs"), actor="t")
        other.add_task(NewTask(title="theirs"), actor="t")
    finally:
        other.close()
    assert [task.title for task in log.list_tasks()] == ["mine", "theirs"]
