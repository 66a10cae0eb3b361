"""The Worktrees pane (2): every task worktree, what it is for, how long its
agent has been at it, its newest line of output and the lines it changed.

Worktrees and their changes come from git, through the session, in a
worker; state and progress come from the log feed, so a running agent's
newest line shows within the feed's half second. Cleaning up orphaned
worktrees is this pane's own.

Git runs only when something changed, never on a timer: an idle console
with two hundred worktrees runs no git at all. What says a worktree changed:

* the files git writes when a worktree moves (a commit, ``git add``, a
  checkout, a worktree added or removed, the base branch moving), watched
  by backends/worktree_watch.py in a worker;
* an agent's progress events in the log (its edits are not git's until it
  commits): its worktree is counted again, at most once per REFRESH_GAP
  while it streams;
* an action or the engine (``WorktreesChanged``): the list is read again.

One look at git at a time; what is asked for meanwhile is gathered and
looked at next, at most once per REFRESH_GAP, so that eight agents
streaming cost a few git processes a second, not one per line. A look
reads git's list of worktrees and counts again only the worktrees asked
for (and any whose commits or index moved): the others keep their figures.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual import on, work
from textual.message import Message
from textual.timer import Timer
from textual.worker import get_current_worker

from factory_tui.context import console
from factory_tui.errors import FactoryError
from factory_tui.messages import WorktreesChanged
from factory_tui.model import KIND_PROGRESS, State, Task, WorktreeReport, WorktreeStatus, worktree_status
from factory_tui.panes.bulk import ActsOnMarked
from factory_tui.panes.feed import FeedListener
from factory_tui.screens.dialogs import ConfirmDialog
from factory_tui.widgets.worktree_table import MergeLook, WorktreeTable

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes
    from factory_tui.backends.worktree_watch import Touched

# At most one look at git per this many seconds while changes keep coming.
REFRESH_GAP = 2.0


@dataclass
class Wanted:
    """What the next look at git is for: the worktrees to count again
    (``everything``: all of them)."""

    tasks: set[str] = field(default_factory=set)
    everything: bool = False
    # Asked for by an action: no waiting for the gap.
    now: bool = False
    # git's list read again (a worktree may be new or gone, the base branch
    # moved): every row is looked at. Without it only ``tasks``' rows are:
    # an agent streaming in one worktree costs that worktree's look, not
    # one of every worktree waiting in review (git's files, watched, say
    # when any of theirs moves).
    listing: bool = False

    def add(self, tasks=(), *, everything: bool = False, now: bool = False) -> None:
        tasks = set(tasks)
        self.tasks.update(tasks)
        self.everything |= everything
        self.listing |= everything or not tasks
        self.now |= now

    @property
    def only(self) -> frozenset[str] | None:
        """The only tasks whose rows the look is for, or None: all."""
        return None if self.listing else frozenset(self.tasks)


class WorktreesPane(ActsOnMarked, WorktreeTable, FeedListener):
    @dataclass
    class Scanned(Message):
        rows: list[WorktreeReport]
        # The review rows' dry-run merges into the base branch, by task.
        merges: dict[str, MergeLook] = field(default_factory=dict)
        # The look was for these tasks' rows only (None: every row).
        only: frozenset[str] | None = None

    @dataclass
    class QaFetched(Message):
        latest: dict

    @dataclass
    class Listed(Message):
        """git's list of worktrees, without the lines each changed."""

        rows: list[WorktreeReport]

    class ScanEnded(Message):
        """A look at git is over, with rows or without (git failed)."""

    @dataclass
    class GitMoved(Message):
        """git wrote something about the task worktrees."""

        touched: Touched

    def on_mount(self) -> None:
        self.now = console(self).clock()
        # Whether a look at git is under way; what the next one is for
        # (None: nothing asked); when the last began; its timer.
        self._scanning = False
        self._wanted: Wanted | None = None
        self._last_scan = float("-inf")
        self._timer: Timer | None = None
        # How many looks at git this pane has taken (tests and benchmarks
        # read it: none while nothing changes).
        self.scans = 0
        # How many rows the last look counted (all, or those asked for).
        self.looked = 0
        self._stop = threading.Event()
        # The first frame lists them, from git's files: now, beside the
        # first look at the log, while the screen has little to do (a
        # worker reading hundreds of small files waits for the screen's
        # thread at every read).
        self.list_worktrees()

    def on_unmount(self) -> None:
        self._stop.set()

    def tick(self) -> None:
        """The app's clock: the running rows' elapsed times."""
        self.now = console(self).clock()

    # --- from the log ----------------------------------------------------------------

    def log_loaded(self, snapshot) -> None:
        # Their lines are counted after the first frame (a git process per
        # worktree: seconds with hundreds of them), on a big base once the
        # whole plan is held.
        if snapshot.complete:
            self._first_look()
        self.call_after_refresh(self.fetch_qa)  # the QA column: after the first frame

    def log_completed(self, rest) -> None:
        self._first_look()

    def _first_look(self) -> None:
        self.request_scan(fresh=True)
        self.follow_git(self._stop)

    def log_changed(self, changes: Changes) -> None:
        if self.qa.apply(changes.events):
            self.rows_changed()
        if not changes.tasks:
            return
        # The rows of the tasks that changed, found by the table's index: a
        # change costs what changed, not the worktrees (which grow as
        # agents' tasks wait in review).
        rows = self.rows
        touched = [rows[n] for task in changes.tasks if (n := self.row_of(task.id)) is not None]
        if any(task.state is State.RUNNING and self.row_of(task.id) is None for task in changes.tasks):
            self.request_scan()  # a new worktree: git has it, the rows do not yet
        # An agent at work: its edits are not git's until it commits.
        streaming = {event.task_id for event in changes.events
                     if event.kind == KIND_PROGRESS and event.task_id is not None
                     and self.row_of(event.task_id) is not None}
        if streaming:
            self.request_scan(streaming)
        if touched and self._merge_progress(touched):
            self.set_rows(list(rows), counted=False)

    @on(WorktreesChanged)
    def _changed(self, message: WorktreesChanged) -> None:
        message.stop()
        # Asked for by an action: at once, not after the gap.
        self.request_scan(message.tasks or (), fresh=message.tasks is None, now=True)

    @work(thread=True, group="worktrees-list", exit_on_error=False)
    def list_worktrees(self) -> None:
        self.post_message(self.Listed(console(self).session.worktree_report(with_changes=False)))

    @on(Listed)
    def _listed(self, message: Listed) -> None:
        if self.loaded:
            return  # the counted rows came first: they say more
        self._merge_progress(message.rows)
        self.set_rows(message.rows, counted=False)

    @work(thread=True, exclusive=True, group="worktrees-qa", exit_on_error=False)
    def fetch_qa(self) -> None:
        self.post_message(self.QaFetched(console(self).session.qa_latest()))

    @on(QaFetched)
    def _qa_fetched(self, message: QaFetched) -> None:
        self.qa.load(message.latest)
        self.rows_changed()

    def task_state(self, task_id: str) -> State | None:
        task = console(self).task_by_id(task_id)
        return task.state if task else None

    def action_run_qa(self) -> None:
        row = self.selected_row
        if row is None or row.task_id is None:
            self.notify("No task's worktree under the cursor.", severity="warning", timeout=3)
            return
        from factory_tui.screens.qa import run_qa_for

        run_qa_for(self, row.task_id)

    # --- from git's own files ---------------------------------------------------------

    @work(thread=True, group="worktrees-watch", exit_on_error=False)
    def follow_git(self, stop: threading.Event) -> None:
        worker = get_current_worker()
        for touched in console(self).session.watch_worktrees(stop):
            if worker.is_cancelled:
                return
            if touched:
                self.post_message(self.GitMoved(touched))

    @on(GitMoved)
    def _git_moved(self, message: GitMoved) -> None:
        touched = message.touched
        self.request_scan(touched.tasks)
        if touched.base or touched.listing:
            # The base branch moving changes every review row's merge (and
            # the lines each row counts from it); a worktree added or
            # removed changes the list: every row is looked at.
            self.request_scan()

    # --- from git --------------------------------------------------------------------

    def request_scan(self, tasks=(), *, fresh: bool = False, now: bool = False) -> None:
        """Look at git for these tasks' worktrees (``fresh``: all of them)
        soon: at once if the last look was a while ago (or ``now``), else
        when REFRESH_GAP has passed since it; and never two at once (a
        thread cannot be cancelled: a second one beside it would only
        double the work)."""
        if self._wanted is None:
            self._wanted = Wanted()
        self._wanted.add(tasks, everything=fresh, now=now)
        if self._scanning:
            return
        self._schedule()

    def _schedule(self) -> None:
        """The next look, when it is due."""
        wanted = self._wanted
        if wanted is None:
            return
        wait = 0.0 if wanted.now else self._last_scan + REFRESH_GAP - time.monotonic()
        if wait <= 0:
            if self._timer is not None:
                self._timer.stop()
            self._scan_wanted()
        elif self._timer is None:
            self._timer = self.set_timer(wait, self._scan_wanted)

    def _scan_wanted(self) -> None:
        self._timer = None
        wanted, self._wanted = self._wanted, None
        if wanted is None or self._scanning:
            self._wanted = wanted
            return
        self._scanning = True
        self._last_scan = time.monotonic()
        self.scans += 1
        self.scan(None if wanted.everything else frozenset(wanted.tasks), only=wanted.only)

    @work(thread=True, group="worktrees", exit_on_error=False)
    def scan(self, fresh_for: frozenset[str] | None = None, only: frozenset[str] | None = None) -> None:
        """Worktrees and their changes, from git (a worker: git is slow),
        and whether each review row's branch still merges cleanly
        (``only``: those tasks' rows alone)."""
        try:
            session = console(self).session
            rows = session.worktree_report(fresh_for=fresh_for, only=only)
            self.post_message(self.Scanned(rows, self._merge_checks(session, rows), only))
        finally:
            self.post_message(self.ScanEnded())  # thread-safe, and after Scanned

    @on(ScanEnded)
    def _scan_ended(self) -> None:
        self._scanning = False
        self._schedule()

    @staticmethod
    def _merge_checks(session, rows: list[WorktreeReport]) -> dict[str, MergeLook]:
        # The backend's dry-run merge (Worktrees.merge_check: git merge-tree,
        # cached per pair of commits, so a look costs git only when a
        # branch or the base moved). A base whose backend has none yet shows
        # no merge column.
        check = getattr(session.worktrees, "merge_check", None)
        if check is None:
            return {}
        found: dict[str, MergeLook] = {}
        for row in rows:
            if row.task_id and row.status is WorktreeStatus.REVIEW:
                try:
                    found[row.task_id] = check(row.task_id)
                except FactoryError:
                    pass  # one branch git cannot read must not lose the whole look
        return found

    @on(Scanned)
    def _scanned(self, message: Scanned) -> None:
        self.looked = len(message.rows)
        self._merge_progress(message.rows)
        if message.only is None:
            self.set_rows(message.rows, message.merges)
            return
        # Those tasks' rows anew (a worktree gone since leaves its row), the
        # others as they were.
        rows = [row for row in self.rows if row.task_id not in message.only] + message.rows
        merges = {task: look for task, look in self.merges.items() if task not in message.only}
        merges.update(message.merges)
        self.set_rows(rows, merges, counted=self.loaded)

    def _merge_progress(self, rows: list[WorktreeReport]) -> bool:
        """The log feed holds the newest state and progress: prefer them.
        Whether any row changed."""
        find = console(self).task_by_id
        changed = False
        for row in rows:
            task: Task | None = find(row.task_id) if row.task_id else None
            if task is not None:
                seen = (row.status, row.progress, row.started_at)
                row.status = worktree_status(task.state)
                row.progress = task.progress or row.progress
                row.started_at = task.started_at or row.started_at
                changed |= seen != (row.status, row.progress, row.started_at)
        return changed

    # --- cleaning up -----------------------------------------------------------------

    def action_clean(self) -> None:
        orphans = [row.task_id for row in self.rows if row.status is WorktreeStatus.ORPHANED and row.task_id]
        if not orphans:
            self.notify("No orphaned worktrees.", timeout=3)
            return
        what = "1 orphaned worktree" if len(orphans) == 1 else f"{len(orphans)} orphaned worktrees"

        def answered(yes: bool | None) -> None:
            if yes:
                self.clean(orphans)

        self.app.push_screen(
            ConfirmDialog(
                f"Remove {what}?",
                f"{', '.join(orphans)}. Whatever is uncommitted in them is committed to their branches first.",
                yes="Remove",
            ),
            answered,
        )

    @work(thread=True, group="worktrees-clean", exit_on_error=False)
    def clean(self, task_ids: list[str]) -> None:
        console(self).session.clean(task_ids)
        what = "1 worktree" if len(task_ids) == 1 else f"{len(task_ids)} worktrees"
        self.notify(f"Removed {what}.", timeout=3)
        self.post_message(WorktreesChanged(()))
