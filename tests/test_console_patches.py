"""The console patches what changed: after changes written by other
processes (the CLI) and other connections, the Plan's rows equal the rows
a full sort of the same tasks makes, and the header's counts, kept by
deltas, equal a recount of the log."""

from __future__ import annotations

import random

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import Action, NewTask, State
from factory_tui.plan_rows import count_states
from tests.console_helpers import ready, wait_until
from tests.engine_helpers import factory
from tests.test_plan_rows import rows_from_scratch


def shown_rows(app: FactoryApp) -> list:
    plan = app.plan
    return [plan._plan.row(index) for index in range(plan.row_count)]


async def test_plan_and_counts_after_changes_equal_a_rebuild_and_a_recount(base, log):
    rng = random.Random(3)
    log.add_tasks([NewTask(title=f"task {n}", priority=rng.randint(-2, 2)) for n in range(40)], actor="test")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        # The cursor on a task that is about to move: it follows it.
        await pilot.press("j", "j", "j")
        followed = app.plan.selected_task
        assert followed is not None
        # Another process: the CLI holds it, adds one and re-prioritises one.
        assert factory(base, "task", "hold", followed.id).returncode == 0
        assert factory(base, "plan", "add", "from the CLI", "--priority", "3").returncode == 0
        assert factory(base, "task", "priority", "T-5", "9").returncode == 0
        # Another connection: a burst of moves.
        with ExecutionLog.open(base.log_path) as writer:
            for n in range(1, 41, 3):
                task_id = f"T-{n}"
                state = writer.get_task(task_id).state
                if state is State.QUEUED:
                    writer.apply(task_id, rng.choice([Action.HOLD, Action.CANCEL]), actor="test")
                elif state is State.HELD:
                    writer.apply(task_id, Action.RELEASE, actor="test")
            writer.set_priority("T-2", -7, actor="test")
            last = writer.last_event_id()
        await wait_until(pilot, lambda: app.event_log.event_count and app.event_log._ids[-1] >= last,
                         "the console to follow every change")
        await pilot.pause()
        tasks = app.plan.tasks
        assert len(tasks) == 41
        assert shown_rows(app) == rows_from_scratch(tasks)
        with ExecutionLog.open(base.log_path) as reader:
            truth = reader.counts()
        assert app.plan.counts == count_states(tasks.values()) == truth
        assert {state: n for state, n in app.header.counts.items() if n} == {s: n for s, n in truth.items() if n}
        assert app.plan.selected_task is not None and app.plan.selected_task.id == followed.id
        assert app.plan.selected_task.state is State.HELD


async def test_a_filtered_plan_is_patched_as_a_filtered_rebuild(base, log):
    log.add_tasks([NewTask(title=f"{'alpha' if n % 2 else 'beta'} {n}") for n in range(12)], actor="test")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        app.plan.apply_filter("alpha")
        await pilot.pause()
        with ExecutionLog.open(base.log_path) as writer:
            writer.apply("T-2", Action.HOLD, actor="test")  # alpha
            writer.apply("T-3", Action.HOLD, actor="test")  # beta: not shown
            writer.add_task(NewTask(title="alpha late", priority=5), actor="test")
        await wait_until(pilot, lambda: app.plan.task_by_id("T-13") is not None, "the new task")
        await pilot.pause()

        def matches(task):
            return "alpha" in task.title

        assert shown_rows(app) == rows_from_scratch(app.plan.tasks, matches)
        assert app.plan.index_of("T-3") is None
        # The counts are the whole plan's, filter or not.
        assert app.plan.counts[State.HELD] == 2


async def test_a_note_leaves_the_plan_as_it_was_and_the_log_where_it_is(base, log):
    """The feed reads again every task an event touched; a note changes no
    task, so nothing but the Log pane takes it; and a Log pane looking at
    older events stays where it is while new ones come."""
    log.add_tasks([NewTask(title=f"task {n}") for n in range(30)], actor="test")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        plan, events = app.plan, app.event_log
        calls: list[list] = []
        real = plan.update_tasks
        plan.update_tasks = lambda tasks: (calls.append(tasks), real(tasks))  # counted, then done
        events.focus()
        await pilot.press("g")
        await wait_until(pilot, lambda: events.cursor == 0, "the Log pane at its oldest event")
        count = events.event_count
        with ExecutionLog.open(base.log_path) as writer:
            for n in range(5):
                writer.add_note("T-3", f"note {n}", actor="agent:test")
        await wait_until(pilot, lambda: events.event_count == count + 5, "the notes in the Log pane")
        assert calls == []
        assert events.cursor == 0 and events.scroll_offset.y == 0
        with ExecutionLog.open(base.log_path) as writer:
            writer.apply("T-3", Action.HOLD, actor="test")
        await wait_until(pilot, lambda: calls, "the held task")
        assert [task.id for task in calls[-1]] == ["T-3"]
