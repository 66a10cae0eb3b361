"""What needs the operator: a task reaching review, failing, or left unable
to run. Plain tests of the rules, then the console saying so (notification,
bell, terminal title) when another process moves tasks in the real log."""

from __future__ import annotations

from factory_tui.app import FactoryApp
from factory_tui.attention import Need, notices, window_title
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import NewTask, State, Task
from tests.console_helpers import ready, wait_until

SIZE = (160, 48)


def task(task_id: str, state: State, *, depends_on: tuple[str, ...] = ()) -> Task:
    return Task(id=task_id, title=f"title of {task_id}", state=state, depends_on=depends_on)


def test_a_task_reaching_review_or_failing_needs_the_operator() -> None:
    before = {"T-1": State.RUNNING, "T-2": State.RUNNING, "T-3": State.QUEUED}
    changed = [task("T-1", State.REVIEW), task("T-2", State.FAILED), task("T-3", State.HELD)]
    found = notices(before, changed, changed)
    assert [(n.need, n.task_id) for n in found] == [(Need.REVIEW, "T-1"), (Need.FAILED, "T-2")]
    assert found[0].text == "T-1 is ready for review: title of T-1"


def test_no_change_of_state_is_no_news() -> None:
    before = {"T-1": State.REVIEW}
    assert notices(before, [task("T-1", State.REVIEW)], [task("T-1", State.REVIEW)]) == []


def test_a_task_left_unable_to_run_is_said_once() -> None:
    plan = [task("T-1", State.CANCELLED), task("T-2", State.QUEUED, depends_on=("T-1",)),
            task("T-3", State.QUEUED, depends_on=("T-2",))]
    found = notices({"T-1": State.QUEUED}, [plan[0]], plan)
    assert [(n.need, n.task_id) for n in found] == [(Need.BLOCKED, "T-2"), (Need.BLOCKED, "T-3")]
    assert "waits for T-1 (cancelled)" in found[0].text
    # Already stuck before this change: not said again.
    later = [task("T-4", State.FAILED)]
    assert notices({"T-4": State.RUNNING}, later, plan + later) == [
        n for n in notices({"T-4": State.RUNNING}, later, plan + later) if n.need is not Need.BLOCKED
    ]


def test_the_window_title_counts_what_waits_for_review() -> None:
    assert window_title("shop", 0) == "factory: shop"
    assert window_title("shop", 3) == "factory: shop · 3 in review"


class CountingApp(FactoryApp):
    bells = 0

    def bell(self) -> None:
        self.bells += 1


async def test_the_console_says_when_a_task_reaches_review_or_fails(base) -> None:
    with ExecutionLog.open(base.log_path) as log:
        first, second = log.add_tasks([NewTask(title="One"), NewTask(title="Two")], actor="test")
        waiting = log.add_task(NewTask(title="After two", after=(second.id,)), actor="test")
    app = CountingApp(base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        assert app.window_title == "factory: repo"
        # Another process (an engine) runs both; one reaches review, one fails.
        with ExecutionLog.open(base.log_path) as log:
            claims = [log.claim_next("engine:test"), log.claim_next("engine:test")]
            by_task = {claim.task.id: claim for claim in claims}
            log.finish(by_task[first.id].token, State.REVIEW, note="agent finished")
            log.finish(by_task[second.id].token, State.FAILED, note="agent exited 1")
        messages = lambda: [n.message for n in app._notifications]  # noqa: E731
        await wait_until(pilot, lambda: any("ready for review" in m for m in messages()), "the review notice")
        await wait_until(pilot, lambda: any(f"{second.id} failed" in m for m in messages()), "the failure notice")
        await wait_until(pilot, lambda: any(f"{waiting.id} can never run" in m for m in messages()), "the stuck notice")
        assert app.window_title == "factory: repo · 1 in review"
        assert app.bells >= 1


async def test_console_table_switches_them_off(base) -> None:
    text = base.config_path.read_text()
    for switch in ("notify", "bell", "title"):
        assert f"{switch} = true" in text  # factory init writes them, on
        text = text.replace(f"{switch} = true", f"{switch} = false")
    base.config_path.write_text(text)
    with ExecutionLog.open(base.log_path) as log:
        only = log.add_task(NewTask(title="One"), actor="test")
    app = CountingApp(base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        with ExecutionLog.open(base.log_path) as log:
            claim = log.claim_next("engine:test")
            log.finish(claim.token, State.REVIEW, note="agent finished")
        await wait_until(pilot, lambda: app.task_by_id(only.id).state is State.REVIEW, "the review to show")
        assert not app._notifications and app.bells == 0 and app.window_title == ""
