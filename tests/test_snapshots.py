"""Pictures of the console at a fixed size, over the demo base with its
fixed clock (the dashboard itself at several sizes: test_dashboard_snapshots.py).
A changed picture is accepted only after looking at it
(`pytest --snapshot-update`, then read snapshot_report.html)."""

from __future__ import annotations

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import NewTask
from factory_tui.screens.help import HelpScreen
from factory_tui.screens.task import TaskScreen
from factory_tui.widgets.task_body import TaskBody
from tests.console_helpers import move_to, ready, wait_until

SIZE = (160, 48)
# Two hours into the demo's morning.
NOW = 1_790_000_000.0 + 2 * 3600


def test_task_screen(snap_compare, demo_base):
    async def run_before(pilot):
        app = await ready(pilot)
        await move_to(pilot, "T-3")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.detail is not None, "the task screen")
        body = app.screen.query_one(TaskBody)
        await wait_until(pilot, lambda: body.rendered, "the description")
        await pilot.pause(0.2)

    assert snap_compare(FactoryApp(demo_base, engine=False, clock=lambda: NOW), terminal_size=SIZE, run_before=run_before)


def test_help_for_the_plan(snap_compare, demo_base):
    async def run_before(pilot):
        app = await ready(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await pilot.pause(0.2)

    assert snap_compare(FactoryApp(demo_base, engine=False, clock=lambda: NOW), terminal_size=SIZE, run_before=run_before)


def test_hostile_titles_render_literally(snap_compare, base):
    with ExecutionLog.open(base.log_path, clock=lambda: 1_790_000_000.0) as log:
        log.add_task(NewTask(title="[bold]not bold[/] and a lone [/]"), actor="test")
        log.add_task(NewTask(title="\x1b[31mred?\x1b[0m bell\x07 and\nnewline"), actor="test")
        log.add_task(NewTask(title="x" * 10_000), actor="test")
        log.add_task(NewTask(title="right-to-left \u202eoverride"), actor="test")

    async def run_before(pilot):
        await ready(pilot)

    assert snap_compare(FactoryApp(base, engine=False, clock=lambda: NOW), terminal_size=(120, 30), run_before=run_before)
