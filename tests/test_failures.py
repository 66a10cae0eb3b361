"""Why a task failed, and tasks that can never run as the plan is (issue 7
§2): the pure functions of model.py, the log's queries over a real SQLite
file, the engine's failed events on real runs, and the CLI twins
(`plan show`, `task undepend`)."""

from __future__ import annotations

import time

import pytest

from factory_tui.backends.log import ExecutionLog
from factory_tui.errors import InvalidInput
from factory_tui.model import Event, NewTask, State, Task, failure_of, never_runs
from tests.engine_helpers import ACTOR, add, agent_profile, configure, events, factory, task
from tests.helpers import log_tables
from tests.test_cli import ok, ok_json, refused


def plan_of(*rows: tuple[str, State, tuple[str, ...]]) -> list[Task]:
    return [Task(id=task_id, title=task_id, state=state, depends_on=deps) for task_id, state, deps in rows]


# --- never runs: pure -------------------------------------------------------------------


def test_a_waiting_task_on_a_cancelled_or_failed_one_never_runs() -> None:
    tasks = plan_of(
        ("T-1", State.CANCELLED, ()),
        ("T-2", State.FAILED, ()),
        ("T-3", State.QUEUED, ("T-1",)),
        ("T-4", State.HELD, ("T-2",)),
        ("T-5", State.PROPOSED, ("T-1", "T-2")),
        ("T-6", State.DONE, ()),
        ("T-7", State.RUNNING, ()),
        ("T-8", State.QUEUED, ("T-6", "T-7")),  # done and running: it may run yet
        ("T-9", State.REVIEW, ("T-1",)),  # not waiting: nothing to say
        ("T-10", State.QUEUED, ()),
    )
    stuck = never_runs(tasks)
    assert set(stuck) == {"T-3", "T-4", "T-5"}
    assert stuck["T-3"].text == "waits for T-1 (cancelled)"
    assert stuck["T-3"].through == ("T-1",)
    assert stuck["T-5"].text == "waits for T-1 (cancelled), T-2 (failed)"
    assert stuck["T-4"].to_json() == {
        "task": "T-4", "waits_for": [{"task": "T-2", "state": "failed"}], "through": ["T-2"],
    }


def test_never_runs_follows_chains_of_waiting_tasks() -> None:
    tasks = plan_of(
        ("T-1", State.CANCELLED, ()),
        ("T-2", State.QUEUED, ("T-1",)),
        ("T-3", State.HELD, ("T-2",)),
        ("T-4", State.QUEUED, ("T-3", "T-5")),
        ("T-5", State.DONE, ()),
        ("T-6", State.QUEUED, ("T-5",)),
    )
    stuck = never_runs(tasks)
    assert set(stuck) == {"T-2", "T-3", "T-4"}
    assert stuck["T-4"].text == "waits for T-1 (cancelled) through T-3"
    assert stuck["T-4"].through == ("T-3",)


def test_never_runs_on_a_100000_task_chain_is_quick_and_needs_no_recursion() -> None:
    n = 100_000
    tasks = [Task(id="T-1", title="root", state=State.CANCELLED)]
    tasks += [Task(id=f"T-{i}", title="x", state=State.QUEUED, depends_on=(f"T-{i - 1}",)) for i in range(2, n + 1)]
    started = time.perf_counter()
    stuck = never_runs(reversed(tasks))  # the deepest first: the worst order for a walk
    elapsed = time.perf_counter() - started
    assert len(stuck) == n - 1
    assert stuck[f"T-{n}"].text == f"waits for T-1 (cancelled) through T-{n - 1}"
    print(f"never_runs over a {n:,}-task chain: {elapsed * 1000:.0f} ms")


# --- failure reasons: pure ------------------------------------------------------------


def event(note: str | None, data: dict | None = None) -> Event:
    return Event(id=1, at=1000.0, task_id="T-3", kind="failed", actor="engine", note=note, data=data or {})


def test_a_failure_says_why_in_one_short_line() -> None:
    exited = failure_of(event("agent exited 3; last output: a | b", {"failure": "exit", "reason": "agent exited 3", "exit_code": 3}))
    assert (exited.cause, exited.reason, exited.exit_code) == ("exit", "agent exited 3", 3)
    conflict = failure_of(event("merge conflict with main in a.txt; re-queue it", {
        "failure": "conflict", "reason": "merge conflict with main in a.txt", "conflicts": ["a.txt"]}))
    assert (conflict.cause, conflict.reason, conflict.conflicts) == ("conflict", "merge conflict with main in a.txt", ("a.txt",))
    # Events written before causes were recorded: the note, without the output.
    old = failure_of(event("timed out after 5 s; last output: x\ny"))
    assert (old.cause, old.reason) == (None, "timed out after 5 s")
    old_conflict = failure_of(event("merge conflict with main in b.txt; re-queue it", {"conflicts": ["b.txt"]}))
    assert old_conflict.cause == "conflict"
    long = failure_of(event("the agent reported a failure: " + "x" * 1000 + "\nsecond line"))
    assert len(long.reason) <= 160 and long.reason.endswith("…") and "\n" not in long.reason
    assert failure_of(event(None)).reason == "failed, without a reason recorded"


# --- failure reasons: the engine's events and the log ------------------------------------


def test_the_log_says_why_each_failed_task_failed(base, agent) -> None:
    configure(base, max_parallel=3, agents={
        "exits": agent_profile(agent, AGENT_EXIT="3"),
        "slow": agent_profile(agent, timeout=0.5, AGENT_SLEEP="30"),
        "works": agent_profile(agent),
    })
    exits = add(base, "exits 3", profile="exits")
    slow = add(base, "times out", profile="slow")
    works = add(base, "works", profile="works")
    done = factory(base, "run", "--once")
    assert done.returncode == 1, done.stdout + done.stderr
    with ExecutionLog.open(base.log_path) as log:
        failures = log.failures()
        assert set(failures) == {exits, slow}
        assert (failures[exits].cause, failures[exits].exit_code) == ("exit", 3)
        assert failures[exits].reason == "agent exited 3"
        assert failures[slow].cause == "timeout"
        assert failures[slow].reason == "timed out after 0.5 s"
        assert log.failure(works) is None  # in review: no current failure
        assert log.failures([exits]).keys() == {exits}
    shown = ok_json(base, "plan", "show", exits)
    assert shown["failure"]["reason"] == "agent exited 3"
    assert "failed:     agent exited 3" in ok(base, "plan", "show", exits).stdout
    # Re-queued, it has no current failure any more.
    ok(base, "task", "requeue", exits)
    with ExecutionLog.open(base.log_path) as log:
        assert set(log.failures()) == {slow}


# --- dropping a dependency -------------------------------------------------------------


def test_a_dependency_on_a_cancelled_task_can_be_dropped(base) -> None:
    first = add(base, "first")
    second = add(base, "second", after=(first,))
    third = add(base, "third", after=(second,))
    ok(base, "task", "cancel", first)
    with ExecutionLog.open(base.log_path) as log:
        assert set(log.never_runs()) == {second, third}
        assert log.never_runs([third])[third].text == f"waits for {first} (cancelled) through {second}"
        assert not log.has_ready()
    shown = ok(base, "plan", "show", second).stdout
    assert f"`factory task undepend {second} {first}` drops that dependency" in shown
    assert ok_json(base, "plan", "show", third)["never_runs"]["through"] == [second]

    dropped = ok(base, "task", "undepend", second, first).stdout
    assert dropped == f"{second} no longer depends on {first}\n"
    with ExecutionLog.open(base.log_path) as log:
        assert log.never_runs() == {}
        assert log.get_task(second).depends_on == ()
        claim = log.claim_next("test-engine")
        assert claim is not None and claim.task.id == second
    [undepends] = events(base, second, "undepends")
    assert (undepends.note, undepends.data) == (f"no longer depends on {first}", {"on": first})
    assert ok_json(base, "log", "--kind", "undepends")[0]["task"] == second


def test_dropping_a_dependency_that_is_not_there_writes_nothing(base) -> None:
    one, two = add(base, "one"), add(base, "two")
    before = log_tables(base.log_path)
    assert refused(base, "task", "undepend", two, one) == f"factory: {two} does not depend on {one}"
    assert refused(base, "task", "undepend", two, "T-99") == "factory: no such task: T-99"
    with ExecutionLog.open(base.log_path) as log, pytest.raises(InvalidInput):
        log.remove_dependency(one, two, actor=ACTOR)
    assert log_tables(base.log_path) == before


def test_a_dependency_dropped_and_added_again_still_refuses_a_loop(base) -> None:
    with ExecutionLog.open(base.log_path) as log:
        a, b = (log.add_task(NewTask(title=t), actor=ACTOR).id for t in ("a", "b"))
        log.add_dependency(b, a, actor=ACTOR)
        log.remove_dependency(b, a, actor=ACTOR)
        log.add_dependency(a, b, actor=ACTOR)
        with pytest.raises(Exception, match="cycle"):
            log.add_dependency(b, a, actor=ACTOR)
        assert task(base, a).depends_on == (b,)
