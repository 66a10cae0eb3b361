"""The Worktrees pane (2): every task worktree, what it is for, how long its
agent has been at it, its newest line of output and the lines it changed.

Worktrees and their changes come from git, through the session, in a worker
every few seconds (and at once when an action or the engine changed them);
state and progress come from the log feed between scans, so a running
agent's newest line shows within the feed's half second. Cleaning up
orphaned worktrees is this pane's own.

A scan costs git processes, so an idle console must not keep the machine
busy: one scan at a time (a timer tick that finds one running passes), none
while another screen covers the dashboard, and a worktree no agent works in
is diffed again only when its commits or index moved, or on a fresh scan
(asked for by an action, and every FRESH_EVERY scans for a file edited by
hand).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual import on, work
from textual.message import Message

from factory_tui.context import console
from factory_tui.errors import FactoryError
from factory_tui.messages import WorktreesChanged
from factory_tui.model import State, Task, WorktreeReport, WorktreeStatus, worktree_status
from factory_tui.panes.bulk import ActsOnMarked
from factory_tui.panes.feed import FeedListener
from factory_tui.screens.dialogs import ConfirmDialog
from factory_tui.screens.qa import run_qa_for
from factory_tui.widgets.worktree_table import MergeLook, WorktreeTable

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes

# Worktrees and their diff stats are read from git this often.
SCAN_SECONDS = 3.0
# Every this many scans, every worktree is diffed, settled or not.
FRESH_EVERY = 10


class WorktreesPane(ActsOnMarked, WorktreeTable, FeedListener):
    @dataclass
    class Scanned(Message):
        rows: list[WorktreeReport]
        # The review rows' dry-run merges into the base branch, by task.
        merges: dict[str, MergeLook] = field(default_factory=dict)

    @dataclass
    class QaFetched(Message):
        latest: dict

    class ScanEnded(Message):
        """A scan is over, with rows or without (git failed)."""

    def on_mount(self) -> None:
        self.now = console(self).clock()
        # Whether a scan is under way, and whether another was asked for
        # meanwhile (and whether that one must be fresh).
        self._scanning = False
        self._scan_wanted: bool | None = None
        self._scans = 0
        self.set_interval(SCAN_SECONDS, self._scan_tick)
        self.set_interval(1.0, self._tick)

    def _scan_tick(self) -> None:
        if self.screen is not self.app.screen or not self.display:
            return  # nobody sees it: the next tick after they come back scans
        if not self._scanning:
            self._scans += 1
            self.request_scan(fresh=self._scans % FRESH_EVERY == 0)

    def _tick(self) -> None:
        self.now = console(self).clock()

    # --- from the log ----------------------------------------------------------------

    def log_loaded(self, snapshot) -> None:
        if snapshot.complete:
            self.request_scan(fresh=True)
        self.fetch_qa()

    def log_completed(self, rest) -> None:
        self.request_scan(fresh=True)

    def log_changed(self, changes: Changes) -> None:
        if self.qa.apply(changes.events):
            self.rows_changed()
        if not changes.tasks:
            return
        known = {row.task_id for row in self.rows}
        if any(task.id not in known and task.state is State.RUNNING for task in changes.tasks):
            self.request_scan()  # a new worktree: git has it, the rows do not yet
        if any(task.id in known for task in changes.tasks):
            self._merge_progress(self.rows)
            self.set_rows(list(self.rows))

    @on(WorktreesChanged)
    def _changed(self, message: WorktreesChanged) -> None:
        message.stop()
        self.request_scan(fresh=True)

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
        run_qa_for(self, row.task_id)

    # --- from git --------------------------------------------------------------------

    def request_scan(self, *, fresh: bool = False) -> None:
        """Scan now, or as soon as the scan under way ends (a thread cannot
        be cancelled: a second one beside it would only double the work)."""
        if self._scanning:
            self._scan_wanted = bool(self._scan_wanted) or fresh
            return
        self._scanning = True
        self.scan(fresh)

    @work(thread=True, group="worktrees", exit_on_error=False)
    def scan(self, fresh: bool = True) -> None:
        """Worktrees and their changes, from git (a worker: git is slow),
        and whether each review row's branch still merges cleanly."""
        try:
            session = console(self).session
            rows = session.worktree_report(reuse=not fresh)
            self.post_message(self.Scanned(rows, self._merge_checks(session, rows)))
        finally:
            self.post_message(self.ScanEnded())  # thread-safe, and after Scanned

    @on(ScanEnded)
    def _scan_ended(self) -> None:
        self._scanning = False
        wanted, self._scan_wanted = self._scan_wanted, None
        if wanted is not None:
            self.request_scan(fresh=wanted)

    @staticmethod
    def _merge_checks(session, rows: list[WorktreeReport]) -> dict[str, MergeLook]:
        # The backend's dry-run merge (Worktrees.merge_check: git merge-tree,
        # cached per pair of commits, so a scan every few seconds costs git
        # only when a branch or the base moved). A base whose backend has
        # none yet shows no merge column.
        check = getattr(session.worktrees, "merge_check", None)
        if check is None:
            return {}
        found: dict[str, MergeLook] = {}
        for row in rows:
            if row.task_id and row.status is WorktreeStatus.REVIEW:
                try:
                    found[row.task_id] = check(row.task_id)
                except FactoryError:
                    pass  # one branch git cannot read must not lose the whole scan
        return found

    @on(Scanned)
    def _scanned(self, message: Scanned) -> None:
        self._merge_progress(message.rows)
        self.set_rows(message.rows, message.merges)

    def _merge_progress(self, rows: list[WorktreeReport]) -> None:
        """The log feed holds the newest state and progress: prefer them."""
        find = console(self).task_by_id
        for row in rows:
            task: Task | None = find(row.task_id) if row.task_id else None
            if task is not None:
                row.status = worktree_status(task.state)
                row.progress = task.progress or row.progress
                row.started_at = task.started_at or row.started_at

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
        self.post_message(WorktreesChanged())
