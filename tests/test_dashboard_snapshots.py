"""Pictures of the dashboard at the sizes an operator's terminal has
(80×24, 100×30, 160×45), of a bulk selection, and under the light theme,
over the demo base with a little more in it: a second task in review whose
run reported its cost, and a task that can never run as the plan is.
A changed picture is accepted only after looking at it
(`pytest --snapshot-update`, then read snapshot_report.html)."""

from __future__ import annotations

import pytest

from factory_tui.app import FactoryApp
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import NewTask, State
from tests.conftest import DEMO_START
from tests.console_helpers import move_to, ready, wait_until

# Two hours into the demo's morning (as tests/test_snapshots.py).
NOW = DEMO_START + 2 * 3600


@pytest.fixture
def busy_demo(demo_base: FactoryBase) -> FactoryBase:
    """The demo, then: T-6 ran and waits for review (its agent reported
    cost and tokens), and a new task waits for the cancelled T-11."""
    with ExecutionLog.open(demo_base.log_path, clock=lambda: DEMO_START + 100 * 60) as log:
        claim = log.claim_next("engine:demo", lease_seconds=600)
        assert claim is not None and claim.task.id == "T-6"
        log.finish(claim.token, State.REVIEW, note="agent finished: 1 file changed", data={
            "run": ".factory/runs/T-6/1", "cost_usd": 0.3125, "input_tokens": 95_000, "output_tokens": 4_200,
        })
        log.add_task(NewTask(title="Publish wheels for Python 3.9", after=("T-11",)), actor="console:operator")
    return demo_base


def console(base: FactoryBase) -> FactoryApp:
    return FactoryApp(base, engine=False, clock=lambda: NOW)


async def settled(pilot) -> FactoryApp:
    """Ready, and the rows' notes (failures, never-runs, costs) are in."""
    app = await ready(pilot)
    plan = app.plan
    await wait_until(pilot, lambda: plan.failures and plan.never_runs and plan.usage, "the rows' notes")
    await wait_until(pilot, lambda: app.header.usage is not None, "the header's costs")
    await pilot.pause()
    return app


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 45)], ids=lambda size: f"{size[0]}x{size[1]}")
def test_dashboard(snap_compare, busy_demo, size):
    assert snap_compare(console(busy_demo), terminal_size=size, run_before=settled)


def test_bulk_selection(snap_compare, busy_demo):
    """Three rows marked with space (one of them filtered out of sight)."""

    async def run_before(pilot):
        app = await settled(pilot)
        for task_id in ("T-3", "T-6", "T-8"):
            await move_to(pilot, task_id)
            await pilot.press("space")
        await pilot.press("slash", *"the", "enter")
        await wait_until(pilot, lambda: app.plan.filter_text == "the", "the filter")
        await pilot.pause()

    assert snap_compare(console(busy_demo), terminal_size=(120, 30), run_before=run_before)


def test_dashboard_in_the_light_theme(snap_compare, busy_demo):
    async def run_before(pilot):
        app = await settled(pilot)
        app.theme = "textual-light"
        await pilot.pause()

    assert snap_compare(console(busy_demo), terminal_size=(100, 30), run_before=run_before)
