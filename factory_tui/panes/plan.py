"""The Plan pane (1): every task, grouped by state, from the log feed; what
its rows say beyond the task itself; the new-task form.

The list itself is ``widgets/plan_table.py``; this module feeds it and owns
what only the Plan offers. Its task keys (approve, re-queue …) post
``TaskCommand`` like every other place a task is shown; with rows marked,
``MarkedCommand`` (panes/bulk.py).

Why failed tasks failed, which waiting tasks can never run, and what runs
cost are read through the session in workers, each only when the feed
shows it may have changed: failures when a task fails or stops being
failed, never-runs when a task is cancelled or fails (or comes back) or a
dependency changes, costs when a run ends. The costs' totals (today, and the base's) go to the
header too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.message import Message
from textual.worker import get_current_worker

from factory_tui.context import console
from factory_tui.messages import TaskHighlighted
from factory_tui.model import DEAD_STATES, RUN_END_KINDS, Failure, NeverRuns, State, Task, Usage
from factory_tui.panes.bulk import ActsOnMarked
from factory_tui.panes.feed import FeedListener
from factory_tui.screens.dialogs import NewTaskDialog
from factory_tui.screens.qa import run_qa_for
from factory_tui.text import one_line
from factory_tui.widgets.header import FactoryHeader
from factory_tui.widgets.plan_table import PlanTable

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes, Rest, Snapshot

# Events after which a task may never run, or run again: its dependencies
# changed. (Tasks dying or coming back are seen in the tasks themselves; a
# task leaving the waiting states needs nothing: only waiting rows say it.)
DEPENDENCY_KINDS = frozenset({"depends", "undepends"})


class PlanPane(ActsOnMarked, PlanTable, FeedListener):
    @dataclass
    class FailuresFetched(Message):
        failures: dict[str, Failure]

    @dataclass
    class NeverRunsFetched(Message):
        never_runs: dict[str, NeverRuns]

    @dataclass
    class UsageFetched(Message):
        usage: Usage

    @dataclass
    class QaFetched(Message):
        latest: dict

    def on_mount(self) -> None:
        self._tick()
        self.set_interval(1.0, self._tick)
        self._highlighted: str | None = None

    def watch_cursor(self, old: int, new: int) -> None:
        super().watch_cursor(old, new)
        self.say_highlighted()

    def say_highlighted(self) -> None:
        """Tell the other panes when the cursor's task changes (a row that
        moved under the cursor counts too)."""
        task = self.selected_task
        task_id = task.id if task is not None else None
        if task_id != getattr(self, "_highlighted", None):
            self._highlighted = task_id
            self.post_message(TaskHighlighted(task_id))

    def _tick(self) -> None:
        self.now = console(self).clock()

    # --- from the log ----------------------------------------------------------------

    def log_loaded(self, snapshot: Snapshot) -> None:
        self.load(snapshot.tasks, counts=snapshot.counts, complete=snapshot.complete)
        self.say_highlighted()
        if snapshot.complete:
            # After the first frame: the rows are worth seeing before their notes.
            self.call_after_refresh(self._fetch_notes)

    def log_completed(self, rest: Rest) -> None:
        self.load(rest.tasks)
        self.say_highlighted()
        self._fetch_notes()

    def _fetch_notes(self) -> None:
        self.fetch_failures()
        self.fetch_never_runs()
        self.fetch_usage()
        self.fetch_qa()

    def log_changed(self, changes: Changes) -> None:
        failed_moved = dead_moved = False
        for task in changes.tasks:
            before = self.task_by_id(task.id)
            if before is None:
                moved = {task.state}
            else:
                moved = set() if before.state is task.state else {before.state, task.state}
            failed_moved |= State.FAILED in moved
            # A task that dies (or comes back) changes what waits for it; a
            # new task only if it waits for others.
            dead_moved |= bool(moved & DEAD_STATES) or (before is None and bool(task.depends_on))
        kinds = {event.kind for event in changes.events}
        qa_moved = bool(self.qa.apply(changes.events))
        if changes.tasks:
            self.update_tasks(changes.tasks)
            self.say_highlighted()
        elif qa_moved:
            self.rows_changed()
        if failed_moved:
            self.fetch_failures()
        if dead_moved or kinds & DEPENDENCY_KINDS:
            self.fetch_never_runs()
        if kinds & set(RUN_END_KINDS):
            self.fetch_usage()

    # --- what the rows say beyond the task (workers) ------------------------------

    @work(thread=True, exclusive=True, group="plan-failures", exit_on_error=False)
    def fetch_failures(self) -> None:
        found = console(self).session.failures()
        if not get_current_worker().is_cancelled:  # a newer fetch is under way
            self.post_message(self.FailuresFetched(found))

    @work(thread=True, exclusive=True, group="plan-never-runs", exit_on_error=False)
    def fetch_never_runs(self) -> None:
        found = console(self).session.never_runs()
        if not get_current_worker().is_cancelled:  # a newer fetch is under way
            self.post_message(self.NeverRunsFetched(found))

    @work(thread=True, exclusive=True, group="plan-usage", exit_on_error=False)
    def fetch_usage(self) -> None:
        found = console(self).session.usage()
        if not get_current_worker().is_cancelled:  # a newer fetch is under way
            self.post_message(self.UsageFetched(found))

    @work(thread=True, exclusive=True, group="plan-qa", exit_on_error=False)
    def fetch_qa(self) -> None:
        found = console(self).session.qa_latest()
        if not get_current_worker().is_cancelled:
            self.post_message(self.QaFetched(found))

    @on(QaFetched)
    def _qa_fetched(self, message: QaFetched) -> None:
        self.qa.load(message.latest)
        self.rows_changed()

    def action_run_qa(self) -> None:
        task = self.selected_task
        if task is None:
            self.notify("Move the cursor to a task first.", severity="warning", timeout=3)
            return
        run_qa_for(self, task.id)

    @on(FailuresFetched)
    def _failures_fetched(self, message: FailuresFetched) -> None:
        self.set_notes(failures=message.failures)

    @on(NeverRunsFetched)
    def _never_runs_fetched(self, message: NeverRunsFetched) -> None:
        self.set_notes(never_runs=message.never_runs)

    @on(UsageFetched)
    def _usage_fetched(self, message: UsageFetched) -> None:
        self.set_notes(usage=message.usage.tasks)
        for header in self.screen.query(FactoryHeader):
            header.usage = (message.usage.today, message.usage.total)

    # --- the new-task form -----------------------------------------------------------

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
