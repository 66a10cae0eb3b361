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
from factory_tui.backends.demo import build_demo, peer_root  # noqa: E402
from factory_tui.backends.demo_mail import LIVE_REQUEST, message_id, moment  # noqa: E402
from factory_tui.backends.log import ExecutionLog  # noqa: E402
from factory_tui.backends.mail_post import send  # noqa: E402
from factory_tui.mail_model import Importance, Message, MessageKind  # noqa: E402
from factory_tui.panes.artifacts import ArtifactsPane  # noqa: E402
from factory_tui.panes.mail import MailPane  # noqa: E402
from factory_tui.panes.qa import QaPane  # noqa: E402
from factory_tui.screens.artifacts import DocumentScreen  # noqa: E402
from factory_tui.screens.help import HelpScreen  # noqa: E402
from factory_tui.screens.mail import ThreadScreen  # noqa: E402
from factory_tui.screens.qa import ScenarioScreen  # noqa: E402
from factory_tui.screens.run import RunScreen, TranscriptView  # noqa: E402
from factory_tui.screens.task import TaskScreen  # noqa: E402
from tests.console_helpers import move_to, ready, wait_until  # noqa: E402

DEMO_START = 1_790_000_000.0
SIZE = (160, 48)
OUT = ROOT / "screenshots"


def arrive_live_request(base) -> None:
    """The request the demo's peer sends once the console is open, with a
    fixed id and time (demo_peer.py sends it with the real ones)."""
    peer = type(base)(peer_root(base.root))
    at = DEMO_START + 2 * 3600 - 60
    message = Message(id=message_id(at, "live request"), sender="warehouse", to=("shopfront",),
                      subject=LIVE_REQUEST.subject, created=moment(at), kind=MessageKind.REQUEST,
                      importance=Importance.HIGH, body=LIVE_REQUEST.body)
    with ExecutionLog.open(peer.log_path) as log:
        send(peer, log, message)


async def shoot() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = build_demo(Path(tmp) / "shopfront", start=DEMO_START)
        arrive_live_request(base)
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
            # The Mail pane, zoomed, with the peer's new request; then the
            # thread of the history's request, answered by itself.
            await pilot.press("escape", "escape", "5", "z")
            pane = app.query_one(MailPane)
            await wait_until(pilot, lambda: len(pane.rows) == 3, "the Mail pane's threads")
            await pilot.pause(0.3)
            app.save_screenshot("mail.svg", str(OUT))
            while pane.rows[pane.cursor].thread.subject != "Add a health-check endpoint":
                await pilot.press("j")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ThreadScreen), "a thread")
            await pilot.pause(0.5)
            app.save_screenshot("mail-thread.svg", str(OUT))
            # The Artifacts pane, zoomed: the living documents, and the runs
            # of the task under the Plan's cursor; then a document rendered.
            await pilot.press("escape", "escape", "1")
            await move_to(pilot, "T-3")
            await pilot.press("3", "z")
            artifacts = app.query_one(ArtifactsPane)
            await wait_until(pilot, lambda: len(artifacts.documents.rows) == 3 and artifacts.runs.task_id == "T-3"
                             and bool(artifacts.runs.rows), "the Artifacts pane's documents and T-3's runs")
            await pilot.pause(0.3)
            app.save_screenshot("artifacts.svg", str(OUT))
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, DocumentScreen) and app.screen.loaded, "a document")
            await pilot.pause(0.5)
            app.save_screenshot("artifacts-document.svg", str(OUT))
    for name in ("dashboard.svg", "task.svg", "help.svg", "run.svg", "diff.svg", "qa.svg", "qa-scenario.svg",
                 "mail.svg", "mail-thread.svg", "artifacts.svg", "artifacts-document.svg"):
        print(OUT / name)


if __name__ == "__main__":
    asyncio.run(shoot())
