"""Regenerate screenshots/*.svg from the demo base (fixed clock, fixed size).

    python scripts/screenshots.py

Look at the pictures before committing them (rsvg-convert FILE.svg -o FILE.png).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["TZ"] = "UTC"
time.tzset()

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factory_tui.app import FactoryApp  # noqa: E402
from factory_tui.backends.demo import build_demo  # noqa: E402
from factory_tui.panes.qa import QaPane  # noqa: E402
from factory_tui.screens.help import HelpScreen  # noqa: E402
from factory_tui.screens.qa import ScenarioScreen  # noqa: E402
from factory_tui.screens.run import RunScreen, TranscriptView  # noqa: E402
from factory_tui.screens.task import TaskScreen  # noqa: E402
from tests.console_helpers import move_to, ready, wait_until  # noqa: E402

DEMO_START = 1_790_000_000.0
SIZE = (160, 48)
OUT = ROOT / "screenshots"


async def shoot() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = build_demo(Path(tmp) / "shopfront", start=DEMO_START)
        app = FactoryApp(base, engine=False, clock=lambda: DEMO_START + 2 * 3600)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            app.save_screenshot("dashboard.svg", str(OUT))
            await move_to(pilot, "T-3")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.detail is not None, "the task screen")
            await pilot.pause(0.2)
            app.save_screenshot("task.svg", str(OUT))
            await pilot.press("escape", "question_mark")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
            await pilot.pause(0.2)
            app.save_screenshot("help.svg", str(OUT))
            await pilot.press("escape", "2")
            while app.worktree_table.selected_row.task_id != "T-3":
                await pilot.press("j")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
            view = app.screen.query_one(TranscriptView)
            await wait_until(pilot, lambda: view.row_count >= 10, "the transcript")
            await pilot.pause(0.2)
            app.save_screenshot("run.svg", str(OUT))
            await pilot.press("d")
            await wait_until(pilot, lambda: app.screen.diff_loaded, "the diff")
            await pilot.pause(0.3)
            app.save_screenshot("diff.svg", str(OUT))
            # The QA pane, zoomed, then a scenario with its history.
            await pilot.press("escape", "4", "z")
            await wait_until(pilot, lambda: bool(app.query_one(QaPane).rows), "the QA pane's scenarios")
            await pilot.pause(0.2)
            app.save_screenshot("qa.svg", str(OUT))
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ScenarioScreen), "a scenario")
            await pilot.pause(0.5)
            app.save_screenshot("qa-scenario.svg", str(OUT))
    for name in ("dashboard.svg", "task.svg", "help.svg", "run.svg", "diff.svg", "qa.svg", "qa-scenario.svg"):
        print(OUT / name)


if __name__ == "__main__":
    asyncio.run(shoot())
