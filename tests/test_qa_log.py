"""The log's part of QA: a task's way through ``checking`` under the run's
lease, every QA result a row, and a check whose engine died run again and
never counted twice. Real SQLite files; a clock the tests move."""

from __future__ import annotations

import sqlite3

import pytest

from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import IllegalTransition, InvalidInput, LeaseLost
from factory_tui.model import Action, NewTask, State
from factory_tui.qa_model import Gate, QaKind, QaResult, Verdict
from tests.test_migrations import make_log_at


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def qlog(base, clock):
    with ExecutionLog.open(base.log_path, clock=clock) as opened:
        yield opened


def result(scenario: str = "unit", verdict: Verdict = Verdict.PASS, *, gate: Gate = Gate.REQUIRED,
           duration: float = 1.5, cost: float | None = None) -> QaResult:
    return QaResult(scenario=scenario, version="abc123", kind=QaKind.TEST, gate=gate, verdict=verdict,
                    reason="" if verdict is Verdict.PASS else "test_x failed", commit="c" * 40,
                    base_commit="b" * 40, duration=duration, cost_usd=cost, tests={"test_x": str(verdict)})


def checking(log: ExecutionLog, title: str = "work"):
    task = log.add_task(NewTask(title=title), actor="op")
    claim = log.claim_next("engine:a", lease_seconds=30)
    assert claim is not None and claim.task.id == task.id
    moved = log.finish(claim.token, State.CHECKING, note="agent finished", data={"run": "r"})
    assert moved.state is State.CHECKING
    return claim


def test_a_finished_run_goes_to_checking_under_the_same_lease(qlog, clock) -> None:
    claim = checking(qlog)
    clock.now += 20
    qlog.heartbeat(claim.token, lease_seconds=30)  # the check renews the run's lease
    ids = qlog.record_qa(claim.token, [result("unit"), result("lint", Verdict.FAIL, gate=Gate.ADVISORY)], attempt=1)
    assert len(ids) == 2
    task = qlog.conclude_check(claim.token, Action.PASS, note="QA passed: 2 scenarios", commit="c" * 40)
    assert task.state is State.REVIEW
    assert qlog.qa_state(task.id) == (0, "c" * 40)
    kinds = [(e.kind, e.from_state, e.to_state) for e in qlog.events(task_id=task.id)]
    assert kinds[-4:] == [("checking", "running", "checking"), ("qa", None, None), ("qa", None, None),
                          ("passed", "checking", "review")]
    notes = [e.note for e in qlog.events(task_id=task.id) if e.kind == "qa"]
    assert notes == ["unit: PASS", "lint (advisory): FAIL · test_x failed"]
    with pytest.raises(LeaseLost):
        qlog.heartbeat(claim.token)  # the lease ended with the check


def test_a_rejected_check_goes_back_with_the_report_and_counts_a_round(qlog) -> None:
    claim = checking(qlog)
    task = qlog.conclude_check(claim.token, Action.REJECT, note="QA failed:\n- unit: test_x failed")
    assert task.state is State.QUEUED and task.feedback == "QA failed:\n- unit: test_x failed"
    assert qlog.qa_state(task.id) == (1, None)
    again = qlog.claim_next("engine:a")
    assert again is not None and again.task.attempts == 2
    qlog.finish(again.token, State.CHECKING)
    qlog.conclude_check(again.token, Action.REJECT, note="still")
    assert qlog.qa_state(task.id)[0] == 2
    # The operator sending it back starts the rounds afresh.
    third = qlog.claim_next("engine:a")
    assert third is not None
    qlog.finish(third.token, State.CHECKING)
    qlog.conclude_check(third.token, Action.FAIL, note="QA failed twice")
    assert qlog.get_task(task.id).state is State.FAILED
    qlog.apply(task.id, Action.REQUEUE, actor="op", note="try a fixture")
    assert qlog.qa_state(task.id)[0] == 0


def test_a_check_ends_only_in_pass_reject_or_fail(qlog) -> None:
    claim = checking(qlog)
    with pytest.raises(InvalidInput):
        qlog.conclude_check(claim.token, Action.APPROVE)
    assert qlog.get_task(claim.task.id).state is State.CHECKING


def test_cancelling_a_check_ends_its_lease_and_its_results_are_refused(qlog) -> None:
    claim = checking(qlog)
    qlog.apply(claim.task.id, Action.CANCEL, actor="op")
    with pytest.raises(LeaseLost, match="cancelled"):
        qlog.record_qa(claim.token, [result()], attempt=1)
    with pytest.raises(LeaseLost):
        qlog.conclude_check(claim.token, Action.PASS, commit="c" * 40)
    assert qlog.qa_runs(task_id=claim.task.id) == []
    assert qlog.get_task(claim.task.id).state is State.CANCELLED


def test_a_check_whose_engine_died_is_run_again_and_never_counted_twice(qlog, clock) -> None:
    dead = checking(qlog)
    qlog.record_qa(dead.token, [result("unit")], attempt=1)  # one result, then the engine is killed
    clock.now += 31
    assert qlog.reap_expired(actor="engine:b") == [dead.task.id]
    task = qlog.get_task(dead.task.id)
    assert task.state is State.CHECKING  # still to be checked, not back in the queue
    expired = qlog.events(task_id=task.id)[-1]
    assert (expired.kind, expired.from_state, expired.to_state) == ("expired", "checking", "checking")
    assert qlog.claim_next("engine:b") is None  # a check is not a run: the queue does not take it
    again = qlog.claim_check("engine:b", lease_seconds=30)
    assert again is not None and again.task.id == task.id and again.token != dead.token
    assert again.task.attempts == 1  # the agent did not run again
    assert qlog.claim_check("engine:c", lease_seconds=30) is None  # taken once
    # The dead engine's late results are not counted.
    with pytest.raises(LeaseLost):
        qlog.record_qa(dead.token, [result("lint")], attempt=1)
    qlog.record_qa(again.token, [result("unit"), result("lint")], attempt=1)
    qlog.conclude_check(again.token, Action.PASS, commit="c" * 40)
    # The dead engine's one result stays in the history as what it was;
    # the check that counted recorded both scenarios once.
    assert [r.result.scenario for r in qlog.qa_runs(task_id=task.id)] == ["lint", "unit", "unit"]
    assert qlog.get_task(task.id).state is State.REVIEW


def test_an_engine_that_stops_while_checking_leaves_it_for_the_next(qlog) -> None:
    claim = checking(qlog)
    task = qlog.stop_check(claim.token)
    assert task.state is State.CHECKING
    with pytest.raises(LeaseLost):
        qlog.heartbeat(claim.token)
    assert qlog.claim_check("engine:b", lease_seconds=30) is not None


def test_checking_is_left_only_by_the_gate_or_a_cancel(qlog) -> None:
    claim = checking(qlog)
    for action in (Action.APPROVE, Action.REQUEUE, Action.HOLD):
        with pytest.raises(IllegalTransition):
            qlog.apply(claim.task.id, action, actor="op")


def test_history_and_stats_per_scenario(qlog, clock) -> None:
    verdicts = [Verdict.PASS, Verdict.FAIL, Verdict.FLAKY, Verdict.PASS, Verdict.ERROR]
    for n, verdict in enumerate(verdicts):
        clock.now += 1
        qlog.record_qa_on_demand([result("unit", verdict, duration=n + 1, cost=0.01 * n)], actor="cli:op")
    qlog.record_qa_on_demand([result("lint")], actor="cli:op")
    runs = qlog.qa_runs(scenario="unit")
    assert [r.result.verdict for r in runs] == list(reversed(verdicts))
    assert runs[0].task_id is None and runs[0].actor == "cli:op"
    assert runs[0].result.tests == {"test_x": "ERROR"}
    assert qlog.qa_run(runs[0].id) == runs[0]
    stats = qlog.qa_stats(last=4)
    unit = stats["unit"]
    assert unit.runs == 4 and unit.verdicts == tuple(verdicts[1:])
    assert (unit.passed, unit.flaky, unit.last) == (2, 1, Verdict.ERROR)
    assert unit.pass_rate == 0.5
    assert unit.mean_duration == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert unit.mean_cost == pytest.approx((0.01 + 0.02 + 0.03 + 0.04) / 4)
    assert stats["lint"].runs == 1
    # On demand for a task: recorded, and the task does not move.
    task = qlog.add_task(NewTask(title="t"), actor="op")
    qlog.record_qa_on_demand([result("unit", Verdict.FAIL)], actor="cli:op", task_id=task.id, attempt=0)
    assert qlog.get_task(task.id).state is State.QUEUED
    assert [e.kind for e in qlog.events(task_id=task.id)][-1] == "qa"


def test_a_version_3_log_gains_qa(tmp_path) -> None:
    path = tmp_path / "log.db"
    make_log_at(path, 3)
    with ExecutionLog.open(path) as log:
        assert log.qa_state("T-1") == (0, None)
        claim = log.claim_next("w")
        assert claim is not None
        log.finish(claim.token, State.CHECKING)
        log.record_qa(claim.token, [result()], attempt=1)
        log.conclude_check(claim.token, Action.PASS, commit="c" * 40)
        assert log.get_task("T-1").state is State.REVIEW
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 4
    assert conn.execute("SELECT count(*) FROM qa_runs").fetchone()[0] == 1
