"""A big base's first look: the first frame reads how many tasks each state
holds, the plan's first rows and the newest events; the whole plan and
every event's id come after, and no change written meanwhile is lost.
(The limits are lowered here so that a small base is "big".)"""

from __future__ import annotations

import pytest

from factory_tui.app import FactoryApp
from factory_tui.backends import feed as feed_module
from factory_tui.backends.feed import LogFeed
from factory_tui.backends.log import ExecutionLog
from factory_tui.messages import LogCompleted, PlanLoaded
from factory_tui.model import Action, NewTask, State
from tests.console_helpers import ready, wait_until
from tests.test_plan_rows import rows_from_scratch


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(feed_module, "FIRST_LOOK_TASKS", 20)
    monkeypatch.setattr(feed_module, "FIRST_LOOK_EVENTS", 30)
    monkeypatch.setattr(feed_module, "FIRST_LOOK_ROWS", 8)
    monkeypatch.setattr(feed_module, "SNAPSHOT_RECENT_EVENTS", 10)


def seed(log: ExecutionLog, n: int = 40) -> None:
    log.add_tasks([NewTask(title=f"task {k}", priority=k % 3) for k in range(n)], actor="test")
    for k in range(1, 6):
        log.apply(f"T-{k}", Action.HOLD, actor="test")


def test_a_big_first_look_holds_the_first_rows_and_the_newest_events(base, log, small_limits):
    seed(log)
    feed = LogFeed(base.log_path)
    try:
        first = feed.first_look()
        assert not first.complete
        assert first.counts == log.counts()
        every = {task.id: task for task in log.list_tasks(bodies=False)}
        # The first rows are the plan's own first rows, headings aside.
        expected = [row for row in rows_from_scratch(every) if not isinstance(row, State)][:8]
        assert [task.id for task in first.tasks] == expected
        last = log.last_event_id()
        assert list(first.event_ids) == list(range(last - 9, last + 1))
        assert [event.id for event in first.recent_events] == list(first.event_ids)
        assert feed.cursor == last

        log.apply("T-6", Action.HOLD, actor="between")  # before the rest is read
        rest = feed.rest()
        assert sorted(task.id for task in rest.tasks) == sorted(every)
        assert list(rest.event_ids) == [event.id for event in log.events()]
        # The feed's cursor stayed: what was written since comes as a change.
        changes = feed.poll()
        assert [(event.task_id, event.kind) for event in changes.events] == [("T-6", "held")]
        assert [task.state for task in changes.tasks] == [State.HELD]
    finally:
        feed.close()


def test_a_small_base_is_read_whole_at_once(base, log):
    seed(log, 5)
    feed = LogFeed(base.log_path)
    try:
        first = feed.first_look()
        assert first.complete
        assert len(first.tasks) == 5
        assert list(first.event_ids) == [event.id for event in log.events()]
    finally:
        feed.close()


async def test_the_console_shows_the_first_rows_then_the_whole_plan(base, log, small_limits):
    seed(log)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        plan = app.plan
        assert plan.complete and len(plan.tasks) == 40
        assert [plan._plan.row(i) for i in range(plan.row_count)] == rows_from_scratch(plan.tasks)
        assert app.header.counts[State.HELD] == 5 and app.header.counts[State.QUEUED] == 35
        events = app.event_log
        assert events.event_count == log.last_event_id()
        # Following on from there: a change from another connection shows.
        with ExecutionLog.open(base.log_path) as writer:
            writer.apply("T-30", Action.HOLD, actor="other")
            last = writer.last_event_id()
        await wait_until(pilot, lambda: plan.task_by_id("T-30").state is State.HELD, "the change")
        await wait_until(pilot, lambda: events.event_count == last, "its event in the Log pane")
        assert app.header.counts[State.HELD] == 6


async def test_before_the_rest_the_headings_and_header_count_every_task(base, log, small_limits):
    seed(log)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        plan = app.plan
        feed = LogFeed(base.log_path)
        try:
            # The first look's messages, as the app's feed posts them.
            app.post_message(PlanLoaded(feed.first_look()))
            await wait_until(pilot, lambda: not plan.complete, "the first look")
            await pilot.pause()
            assert len(plan.tasks) == 8
            shown = [plan._plan.row(i) for i in range(plan.row_count)]
            assert shown == [State.QUEUED, *[row for row in rows_from_scratch(plan.tasks) if row != State.QUEUED]]
            heading = "".join(segment.text for segment in plan.render_row(0, 100))
            assert "QUEUED · 35" in heading
            assert app.header.counts[State.QUEUED] == 35 and app.header.counts[State.HELD] == 5
            app.post_message(LogCompleted(feed.rest()))
            await wait_until(pilot, lambda: plan.complete, "the rest")
            await pilot.pause()
            assert len(plan.tasks) == 40
            assert "QUEUED · 35" in "".join(segment.text for segment in plan.render_row(0, 100))
            assert app.plan_ready
        finally:
            feed.close()
