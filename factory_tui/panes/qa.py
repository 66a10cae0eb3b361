"""The QA pane (4): every scenario file in ``.factory/qa/`` with its
record (kind, gate, last verdict, recent verdicts, pass rate, flaky runs),
the invalid files marked with why.

The scenarios and their records are read through the session in a worker,
again when a ``qa`` event arrives in the log feed and when a file under
``.factory/qa/`` changes (panes/folder.py). ``enter`` opens the scenario screen, ``e`` the
file in $EDITOR, ``n`` a new scenario from the template, ``Q`` runs the
scenario now on the base branch's head (is main green for it?).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.message import Message
from textual.worker import get_current_worker

from factory_tui.context import console
from factory_tui.keys import bindings
from factory_tui.model import KIND_QA
from factory_tui.panes.feed import FeedListener
from factory_tui.panes.folder import FollowsFolder
from factory_tui.text import literal
from factory_tui.widgets.qa_table import ScenarioRow, ScenarioTable

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes, Snapshot


class QaPane(FollowsFolder, ScenarioTable, FeedListener):
    BINDINGS = bindings("qa.open", "qa.edit", "qa.new", "qa.run")

    @dataclass
    class Loaded(Message):
        rows: list[ScenarioRow]

    def on_mount(self) -> None:
        self.follow_folder(console(self).session.base.qa_dir)

    def on_unmount(self) -> None:
        self.stop_following()

    # --- from the log and the files ------------------------------------------------

    def log_loaded(self, snapshot: Snapshot) -> None:
        self.call_after_refresh(self.load)  # after the first frame, not beside it

    def log_changed(self, changes: Changes) -> None:
        if any(event.kind == KIND_QA for event in changes.events):
            self.load()

    def folder_changed(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="qa-load", exit_on_error=False)
    def load(self) -> None:
        found, stats = console(self).session.qa_overview()
        if not get_current_worker().is_cancelled:  # a newer read is under way
            self.post_message(self.Loaded([ScenarioRow(item, stats.get(item.name)) for item in found]))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.set_rows(message.rows)

    # --- keys ------------------------------------------------------------------------

    def action_open_scenario(self) -> None:
        row = self.selected_row
        if row is None:
            self.notify("No scenario under the cursor.", severity="warning", timeout=3)
            return
        from factory_tui.screens.qa import ScenarioScreen

        self.app.push_screen(ScenarioScreen(row.name))

    def on_double_click(self) -> None:
        self.action_open_scenario()

    def action_edit_scenario(self) -> None:
        row = self.selected_row
        if row is None:
            self.notify("No scenario under the cursor: n writes a new one.", severity="warning", timeout=3)
            return
        from factory_tui.screens.qa import edit_scenario

        edit_scenario(self, row.name, after=self.load)

    def action_run_qa(self) -> None:
        row = self.selected_row
        if row is None:
            self.notify("No scenario under the cursor.", severity="warning", timeout=3)
            return
        if row.invalid:
            self.notify(literal(f"{row.name} is invalid, so it is never run: e opens it to fix."),
                        severity="warning", timeout=5, markup=False)
            return
        from factory_tui.screens.qa import run_qa_for

        run_qa_for(self, None, (row.name,))

    def action_new_scenario(self) -> None:
        from factory_tui.screens.qa import NewScenarioDialog

        self.app.push_screen(NewScenarioDialog(), self._created)

    def _created(self, path: Path | None) -> None:
        if path is None:
            return
        self.notify(f"Wrote .factory/qa/{literal(path.name)}: e opens it.", timeout=4, markup=False)
        self.load()
