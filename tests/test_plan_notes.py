"""The Plan's notes kept up by the log's changes (plan_notes.py) equal the
notes read whole: never-runs worked out around what changed equals
never-runs over the whole plan (a property over random plans and deaths),
run figures added event by event equal the log's usage, failures from the
failed events equal the log's failures; and in the console, after changes
from another connection, all three equal a fresh read."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import Action, Event, NewTask, State, Task, never_runs
from factory_tui.plan_notes import (
    Pending,
    add_runs,
    apply_failures,
    around,
    dependents_of,
    run_totals,
    update_dependents,
)
from tests.console_helpers import ready, wait_until

STATES = list(State)


@st.composite
def plans(draw):
    n = draw(st.integers(1, 25))
    tasks = {}
    for seq in range(1, n + 1):
        deps = draw(st.lists(st.integers(1, n), max_size=3, unique=True))
        # No cycles: a task waits only for earlier ones.
        tasks[f"T-{seq}"] = Task(id=f"T-{seq}", title=str(seq), state=draw(st.sampled_from(STATES)),
                                 depends_on=tuple(f"T-{d}" for d in deps if d < seq))
    return tasks


@settings(max_examples=300, deadline=None)
@given(plans(), st.data())
def test_never_runs_worked_out_around_a_change_equals_a_whole_recount(tasks, data):
    known = never_runs(tasks.values())
    dependents = dependents_of(tasks.values())
    for _ in range(data.draw(st.integers(1, 6))):
        task_id = data.draw(st.sampled_from(sorted(tasks)))
        before = tasks[task_id]
        if data.draw(st.booleans()):
            after = replace(before, state=data.draw(st.sampled_from(STATES)))
        else:  # a dependency dropped
            after = replace(before, depends_on=before.depends_on[1:])
        tasks[task_id] = after
        update_dependents(dependents, before, after)
        moved, part = around(tasks, dependents, [task_id])
        found = never_runs(part.values())
        for moved_id in moved:
            if moved_id in found:
                known[moved_id] = found[moved_id]
            else:
                known.pop(moved_id, None)
        assert known == never_runs(tasks.values())
        assert dependents == dependents_of(tasks.values())


def event(event_id: int, kind: str, task_id: str | None, data: dict | None = None, at: float = 100.0) -> Event:
    return Event(id=event_id, at=at, task_id=task_id, kind=kind, actor="engine:test", data=data or {})


def test_a_runs_figures_are_taken_as_the_log_counts_them():
    assert run_totals(event(1, "progress", "T-1", {"run": "x"})) is None
    assert run_totals(event(2, "finished", "T-1", {})) is None  # no run folder: no run
    odd = run_totals(event(3, "failed", "T-1", {"run": "r", "cost_usd": "a lot", "input_tokens": True}))
    assert odd is not None and odd.runs == 1 and odd.cost_usd == 0 and odd.input_tokens == 0
    full = run_totals(event(4, "checking", "T-1", {"run": "r", "cost_usd": 0.5, "input_tokens": 10,
                                                    "output_tokens": 3, "turns": 2}))
    assert full is not None and (full.cost_usd, full.input_tokens, full.output_tokens, full.turns) == (0.5, 10, 3, 2)


def test_pending_keeps_only_what_came_after_the_read_began():
    pending = Pending()
    pending.keep([event(1, "failed", "T-1")])
    assert pending.end() == []  # no read under way: nothing kept
    assert pending.begin(5) == 5
    pending.keep([event(4, "failed", "T-1"), event(6, "failed", "T-2")])
    assert [e.id for e in pending.end()] == [6]
    assert pending.since is None


def test_usage_and_failures_by_events_equal_the_logs_reads(log: ExecutionLog):
    log.add_tasks([NewTask(title=f"t{n}") for n in range(4)], actor="test")
    usage = log.usage()
    failures = log.failures()
    seen = log.last_event_id()
    for n, (outcome, figures) in enumerate([(State.REVIEW, {"cost_usd": 0.25, "input_tokens": 100}),
                                            (State.FAILED, {"cost_usd": 1.0, "turns": 3}),
                                            (State.FAILED, {})]):
        claim = log.claim_next("engine:test")
        assert claim is not None
        log.finish(claim.token, outcome, note=f"outcome {n}", data={"run": f"run-{n}", **figures})
    log.apply("T-3", Action.REQUEUE, actor="test", note="again")
    new = log.events(after_id=seen)
    assert add_runs(usage, new)
    whole = log.usage()
    assert usage.total == whole.total and usage.today == whole.today and usage.tasks == whole.tasks
    tasks = {task.id: task for task in log.list_tasks(bodies=False)}
    missing = apply_failures(failures, new, tasks.values())
    assert missing == set()
    assert failures == log.failures()
    assert set(failures) == {"T-2"}


async def test_the_consoles_notes_after_changes_equal_a_fresh_read(base, log):
    for new in (NewTask(title="root"), NewTask(title="middle", after=("T-1",)),
                NewTask(title="top", after=("T-2",)), NewTask(title="other")):
        log.add_task(new, actor="test")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        plan = app.plan
        await wait_until(pilot, lambda: plan._usage is not None, "the first read of the costs")
        with ExecutionLog.open(base.log_path) as writer:
            claim = writer.claim_next("engine:test")
            assert claim is not None and claim.task.id == "T-1"
            writer.finish(claim.token, State.FAILED, note="it broke",
                          data={"run": "r1", "cost_usd": 0.5, "failure": "exit", "reason": "exit 1"})
            claim = writer.claim_next("engine:test")
            assert claim is not None and claim.task.id == "T-4"
            writer.finish(claim.token, State.REVIEW, note="done", data={"run": "r2", "input_tokens": 7})
            last = writer.last_event_id()
        await wait_until(pilot, lambda: app.event_log.event_count and app.event_log._ids[-1] >= last, "the changes")
        await pilot.pause()
        with ExecutionLog.open(base.log_path) as reader:
            assert plan.failures == reader.failures()
            assert plan.never_runs == reader.never_runs()
            assert set(plan.never_runs) == {"T-2", "T-3"}
            whole = reader.usage()
        assert plan.usage == whole.tasks
        assert app.header.usage == (whole.today, whole.total)
        # T-1 comes back: what waited on it can run again.
        with ExecutionLog.open(base.log_path) as writer:
            writer.apply("T-1", Action.REQUEUE, actor="test", note="try again")
        await wait_until(pilot, lambda: not plan.never_runs and not plan.failures, "T-1 back in the queue")
