"""Helpers for driving the console in Pilot tests: wait for real work
(workers, the log feed) instead of sleeping for fixed times."""

from __future__ import annotations

import time
from collections.abc import Callable

from factory_tui.app import FactoryApp

WAIT_LIMIT = 10.0


async def wait_until(pilot, condition: Callable[[], bool], what: str, limit: float = WAIT_LIMIT) -> None:
    """Let the app run until ``condition()`` holds; fail saying ``what``."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def ready(pilot) -> FactoryApp:
    app: FactoryApp = pilot.app
    await wait_until(pilot, lambda: app.plan_ready, "the first snapshot")
    await wait_until(pilot, lambda: app.worktree_table.loaded, "the worktrees")
    from factory_tui.panes.artifacts import ArtifactsPane

    artifacts = app.query_one(ArtifactsPane)

    def artifacts_read() -> bool:
        # The documents, and the runs of the task under the Plan's cursor.
        task = app.plan.selected_task
        if not artifacts.documents.loaded or (task is not None and artifacts.runs.task_id != task.id):
            return False
        # ... and the runs list scrolled to its cursor (a frame after the
        # rows arrive: a picture taken between shows the list unscrolled).
        runs = artifacts.runs
        top = round(runs.scroll_offset.y)
        return not runs.rows or runs.page_height <= 0 or top <= runs.cursor < top + runs.page_height

    await wait_until(pilot, artifacts_read, "the Artifacts pane's documents and runs")
    await pilot.pause()
    return app


async def move_to(pilot, task_id: str) -> None:
    """Walk the Plan's cursor to ``task_id`` with the j/k keys, as a user would."""
    app: FactoryApp = pilot.app
    plan = app.plan
    target = plan.index_of(task_id)
    assert target is not None, f"{task_id} is not in the plan's rows"
    key = "j" if target > plan.cursor else "k"
    for _ in range(200):
        if plan.selected_task is not None and plan.selected_task.id == task_id:
            return
        await pilot.press(key)
    raise AssertionError(f"could not reach {task_id} with {key}")


def row_text(app: FactoryApp, task_id: str) -> str:
    plan = app.plan
    index = plan.index_of(task_id)
    assert index is not None
    return "".join(segment.text for segment in plan.render_row(index, 200))


async def move_worktrees_to(pilot, task_id: str) -> None:
    """Walk the Worktrees pane's cursor to ``task_id``'s row with j or k, a
    bounded number of times (the row may go: fail then, never hang)."""
    app: FactoryApp = pilot.app
    table = app.worktree_table
    for _ in range(2 * len(table.rows) + 2):
        row = table.selected_row
        if row is not None and row.task_id == task_id:
            return
        target = next((n for n, r in enumerate(table.rows) if r.task_id == task_id), None)
        await pilot.press("k" if target is not None and target < table.cursor else "j")
    raise AssertionError(f"{task_id} is not among the worktrees: {[row.task_id for row in table.rows]}")
