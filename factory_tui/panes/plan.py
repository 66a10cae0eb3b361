"""The Plan pane (1): every task, grouped by state, from the log feed; the
new-task form.

The list itself is ``widgets/plan_table.py``; this module feeds it and owns
what only the Plan offers. Its task keys (approve, re-queue …) post
``TaskCommand`` like every other place a task is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from factory_tui.model import Task
from factory_tui.panes.feed import FeedListener
from factory_tui.screens.dialogs import NewTaskDialog
from factory_tui.text import one_line
from factory_tui.widgets.plan_table import PlanTable

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes, Snapshot


class PlanPane(PlanTable, FeedListener):
    def log_loaded(self, snapshot: Snapshot) -> None:
        self.load(snapshot.tasks)

    def log_changed(self, changes: Changes) -> None:
        if changes.tasks:
            self.update_tasks(changes.tasks)

    def action_new_task(self) -> None:
        self.open_new_task_form()

    def open_new_task_form(self) -> None:
        self.app.push_screen(NewTaskDialog(known_ids=set(self.tasks)), self._created)

    def _created(self, task: Task | None) -> None:
        if task is None:
            return
        self.notify(f"{task.id} created: {one_line(task.title, 60)}", timeout=3, markup=False)
        self.update_tasks([task])
        self.select_task(task.id)
