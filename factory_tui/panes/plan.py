"""The Plan pane (1): every task, grouped by state, from the log feed; what
its rows say beyond the task itself; the new-task form.

The list itself is ``widgets/plan_table.py``; this module feeds it and owns
what only the Plan offers. Its task keys (approve, re-queue …) post
``TaskCommand`` like every other place a task is shown; with rows marked,
``MarkedCommand`` (panes/bulk.py).

Why failed tasks failed, which waiting tasks can never run, and what runs
cost are read whole once, in workers, when the plan is loaded; after that
the log feed's changes carry them (plan_notes.py): a ``failed`` event is
its task's failure, a run's end event adds its figures, and never-runs is
worked out again around the tasks that died, came back or changed their
dependencies, from the tasks the console holds. A base of a million events
is never scanned again for a change. The costs' totals (today, and the
base's) go to the header too; at midnight they are read again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from textual import on, work
from textual.message import Message
from textual.worker import get_current_worker

from factory_tui.context import console
from factory_tui.messages import TaskHighlighted
from factory_tui.model import DEAD_STATES, Failure, NeverRuns, State, Task, Usage, never_runs
from factory_tui.panes.bulk import ActsOnMarked
from factory_tui.panes.feed import FeedListener
from factory_tui.plan_notes import Pending, add_runs, apply_failures, around, same_day
from factory_tui.text import one_line
from factory_tui.widgets.header import FactoryHeader
from factory_tui.widgets.plan_table import PlanTable

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes, Rest, Snapshot
    from factory_tui.plan_rows import PreparedPlan

# Events after which a task may never run, or run again: its dependencies
# changed. (Tasks dying or coming back are seen in the tasks themselves; a
# task leaving the waiting states needs nothing: only waiting rows say it.)
DEPENDENCY_KINDS = frozenset({"depends", "undepends"})


class PlanPane(ActsOnMarked, PlanTable, FeedListener):
    @dataclass
    class FailuresFetched(Message):
        failures: dict[str, Failure]
        # Only these tasks' (None: every failed task's, up to ``until``).
        task_ids: frozenset[str] | None = None

    @dataclass
    class NeverRunsFetched(Message):
        never_runs: dict[str, NeverRuns]

    @dataclass
    class UsageFetched(Message):
        usage: Usage

    @dataclass
    class QaFetched(Message):
        latest: dict

    # The whole plan made ready by the feed's worker, for log_completed
    # (the app hands it over).
    prepared: PreparedPlan | None = None

    def on_mount(self) -> None:
        # The last event the pane has seen: a read whole begun now covers
        # the events up to it; later ones come as changes.
        self._last_event = 0
        self._usage: Usage | None = None
        self._failures_pending = Pending()
        self._usage_pending = Pending()
        # Tasks changed while never-runs was worked out whole: worked out
        # again around them when it lands (None: no such work under way).
        self._never_pending: set[str] | None = None
        # The app's clock ticks it (one frame a second for every pane's clock).
        self.tick()
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

    def tick(self) -> None:
        self.now = console(self).clock()
        usage = getattr(self, "_usage", None)
        if usage is not None and self._usage_pending.since is None and not same_day(usage.since, self.now):
            self.fetch_usage()  # a new day: today's figures start again

    # --- from the log ----------------------------------------------------------------

    def log_loaded(self, snapshot: Snapshot) -> None:
        self.load(snapshot.tasks, counts=snapshot.counts, complete=snapshot.complete)
        if snapshot.recent_events:
            self._last_event = snapshot.recent_events[-1].id
        self.say_highlighted()
        if snapshot.complete:
            # After the first frame: the rows are worth seeing before their notes.
            self.call_after_refresh(self._fetch_notes)

    def log_completed(self, rest: Rest) -> None:
        prepared, self.prepared = self.prepared, None
        if prepared is not None:
            self.load_prepared(prepared)
        else:
            self.load(rest.tasks)
        self.say_highlighted()
        self._fetch_notes()

    def _fetch_notes(self) -> None:
        self.fetch_failures()
        self.fetch_never_runs()
        self.fetch_usage()
        self.fetch_qa()

    def log_changed(self, changes: Changes) -> None:
        dead_moved = False
        for task in changes.tasks:
            before = self.task_by_id(task.id)
            if before is None:
                moved = {task.state}
            else:
                moved = set() if before.state is task.state else {before.state, task.state}
            # A task that dies (or comes back) changes what waits for it; a
            # new task only if it waits for others.
            dead_moved |= bool(moved & DEAD_STATES) or (before is None and bool(task.depends_on))
        events = changes.events
        if events:
            self._last_event = max(self._last_event, events[-1].id)
        kinds = {event.kind for event in events}
        qa_moved = bool(self.qa.apply(events))
        if changes.tasks:
            self.update_tasks(changes.tasks)
            self.say_highlighted()
        noted = self._failures_changed(changes) | self._usage_changed(changes)
        if dead_moved or kinds & DEPENDENCY_KINDS:
            noted |= self._never_runs_changed({task.id for task in changes.tasks})
        if noted or (qa_moved and not changes.tasks):
            self.rows_changed()

    def _failures_changed(self, changes: Changes) -> bool:
        self._failures_pending.keep(changes.events)
        before = dict(self.failures)
        missing = apply_failures(self.failures, changes.events, changes.tasks)
        if missing:
            self.fetch_failures(frozenset(missing))
        return self.failures != before

    def _usage_changed(self, changes: Changes) -> bool:
        self._usage_pending.keep(changes.events)
        usage = self._usage
        if usage is None or not add_runs(usage, changes.events):
            return False
        self.usage = usage.tasks
        self._show_totals(usage)
        return True

    def _never_runs_changed(self, changed: set[str]) -> bool:
        """Never-runs worked out again around ``changed`` (what waits on them)."""
        if self._never_pending is not None:
            self._never_pending |= changed
        moved, part = around(self.tasks, self.dependents, changed)
        found = never_runs(part.values())
        before = {task_id: self.never_runs.get(task_id) for task_id in moved}
        for task_id in moved:
            if task_id in found:
                self.never_runs[task_id] = found[task_id]
            else:
                self.never_runs.pop(task_id, None)
        return any(self.never_runs.get(task_id) != known for task_id, known in before.items())

    # --- what the rows say beyond the task, read whole (workers) --------------------

    def fetch_failures(self, task_ids: frozenset[str] | None = None) -> None:
        until = None
        if task_ids is None:
            until = self._failures_pending.begin(self._last_event)
        self._read_failures(task_ids, until)

    @work(thread=True, group="plan-failures", exit_on_error=False)
    def _read_failures(self, task_ids: frozenset[str] | None, until: int | None) -> None:
        found = console(self).session.failures(sorted(task_ids) if task_ids is not None else None, until=until)
        self.post_message(self.FailuresFetched(found, task_ids))

    def fetch_never_runs(self) -> None:
        """Worked out whole from the tasks the console holds (a worker:
        a 100,000-task plan takes a moment)."""
        self._never_pending = set()
        self._work_out_never_runs(list(self.tasks.values()))

    # A description of its own: textual would describe the worker by the
    # repr of its arguments, and the repr of a 100,000-task plan is 270 MB
    # and a second of the screen's time.
    @work(thread=True, exclusive=True, group="plan-never-runs", exit_on_error=False,
          description="never-runs of the whole plan")
    def _work_out_never_runs(self, tasks: list[Task]) -> None:
        found = never_runs(tasks)
        if not get_current_worker().is_cancelled:  # a newer one is under way
            self.post_message(self.NeverRunsFetched(found))

    def fetch_usage(self) -> None:
        self._read_usage(self._usage_pending.begin(self._last_event))

    @work(thread=True, exclusive=True, group="plan-usage", exit_on_error=False)
    def _read_usage(self, until: int) -> None:
        found = console(self).session.usage(until=until)
        if not get_current_worker().is_cancelled:  # a newer read is under way
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
        from factory_tui.screens.qa import run_qa_for

        run_qa_for(self, task.id)

    @on(FailuresFetched)
    def _failures_fetched(self, message: FailuresFetched) -> None:
        if message.task_ids is not None:
            failures = dict(self.failures)
            for task_id in message.task_ids:
                failures.pop(task_id, None)
            failures.update(message.failures)
        else:
            failures = message.failures
            # What happened while it was read, on top.
            apply_failures(failures, self._failures_pending.end(), [])
        # Only tasks failed as the console holds them now.
        self.set_notes(failures={task_id: failure for task_id, failure in failures.items()
                                 if (task := self.task_by_id(task_id)) is not None and task.state is State.FAILED})

    @on(NeverRunsFetched)
    def _never_runs_fetched(self, message: NeverRunsFetched) -> None:
        changed, self._never_pending = self._never_pending or set(), None
        self.never_runs = message.never_runs
        if changed:
            self._never_runs_changed(changed)
        self.set_notes()

    @on(UsageFetched)
    def _usage_fetched(self, message: UsageFetched) -> None:
        usage = message.usage
        add_runs(usage, self._usage_pending.end())
        self._usage = usage
        self.set_notes(usage=usage.tasks)
        self._show_totals(usage)

    def _show_totals(self, usage: Usage) -> None:
        # Copies: the totals grow in place, and the header redraws on a new value.
        shown = (replace(usage.today), replace(usage.total))
        for header in self.screen.query(FactoryHeader):
            header.usage = shown

    # --- the new-task form -----------------------------------------------------------

    def action_new_task(self) -> None:
        self.open_new_task_form()

    def open_new_task_form(self) -> None:
        from factory_tui.screens.dialogs import NewTaskDialog

        self.app.push_screen(NewTaskDialog(known_ids=set(self.tasks)), self._created)

    def _created(self, task: Task | None) -> None:
        if task is None:
            return
        self.notify(f"{task.id} created: {one_line(task.title, 60)}", timeout=3, markup=False)
        self.update_tasks([task])
        self.select_task(task.id)
