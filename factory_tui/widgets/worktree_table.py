"""The list of the Worktrees pane: a row per task worktree (running,
awaiting review, failed, waiting to run again, orphaned) with its branch,
how long the agent has been at it, its last line of progress and the lines
it changed; a review row says instead whether its branch still merges
cleanly into the base branch.

It is handed rows (``WorktreeReport``s, from the session) and the merge
checks of the review rows; it keeps the cursor on the same task when they
change. Its keys act on the row's task (or on the marked rows' tasks) like
the Plan's keys do, and open the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive

from factory_tui.keys import bindings
from factory_tui.messages import Command, TaskCommand
from factory_tui.model import State, WorktreeReport, WorktreeStatus
from factory_tui.qa_marks import QaMark, TaskQaBook
from factory_tui.text import literal
from factory_tui.times import span
from factory_tui.widgets.marks import MarkableList
from factory_tui.widgets.qa_table import mark_style
from factory_tui.widgets.styles import MARK_SYMBOL, palette
from factory_tui.widgets.virtual_list import (
    Column,
    header_text,
    layout_columns,
    render_cells,
)

STATUS_ORDER = {
    status: n for n, status in enumerate(
        (WorktreeStatus.RUNNING, WorktreeStatus.REVIEW, WorktreeStatus.FAILED,
         WorktreeStatus.WAITING, WorktreeStatus.ORPHANED)
    )
}

COLUMNS = (
    Column("mark", "", 1),
    Column("task", "TASK", 6),
    Column("status", "STATUS", 8),
    Column("qa", "QA", 2, drop=3),
    Column("elapsed", "TIME", 6, right=True),
    Column("changes", "+/−", 11, drop=1),
    Column("progress", "LAST OUTPUT"),
    Column("branch", "BRANCH", 14, drop=2),
)
MIN_PROGRESS = 16


class MergeLook(Protocol):
    """What a dry-run merge of a task's branch into the base branch found
    (the session's ``worktrees.merge_check``): a status (``clean``,
    ``conflicts``, ``nothing``, ``unknown``, ``error``) and a phrase."""

    @property
    def status(self) -> str: ...

    @property
    def text(self) -> str: ...


# The rows are the session's reports.
WorktreeRow = WorktreeReport

# A review row's status with what its merge check found, for a narrow pane
# where the phrase is cut.
MERGE_MARK = {"clean": " ✓", "conflicts": " ✗"}


class WorktreeTable(MarkableList):
    """Task worktrees, running ones first."""

    BINDINGS = bindings(
        "run.open", "task.approve", "task.requeue", "task.cancel", "task.hold", "run.shell", "run.editor",
        "worktrees.clean", "task.mark", "task.clear-marks", "qa.run", show={"task.requeue": False, "task.hold": False},
    )

    now: reactive[float] = reactive(0.0)
    """The time the elapsed column counts to (the app ticks it)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: list[WorktreeRow] = []
        self._index: dict[str, int] = {}
        self.merges: Mapping[str, MergeLook] = {}
        # Each task's latest QA verdicts: the QA column.
        self.qa = TaskQaBook()
        # Whether git's list of worktrees is shown (``listed``), and the
        # lines each changed too (``loaded``).
        self.listed = False
        self.loaded = False

    def set_rows(self, rows: list[WorktreeRow], merges: Mapping[str, MergeLook] | None = None,
                 *, counted: bool = True) -> None:
        """New rows (and, with ``merges``, the review rows' merge checks);
        ``counted`` false: the list alone, without the lines changed."""
        kept = self.selected_row.key if self.selected_row else None
        rows = sorted(rows, key=lambda r: (STATUS_ORDER.get(r.status, 9), r.key))
        self._rows = rows
        self._index = {row.task_id: n for n, row in enumerate(rows) if row.task_id}
        if merges is not None:
            self.merges = merges
        # A mark on a worktree that is gone (approved, cleaned) marks nothing.
        self.marked &= self._index.keys()
        self.listed = True
        self.loaded |= counted
        self.rows_changed()
        if kept is not None:
            for n, row in enumerate(rows):
                if row.key == kept:
                    self.cursor = n
                    break

    @property
    def rows(self) -> list[WorktreeRow]:
        return self._rows

    @property
    def selected_row(self) -> WorktreeRow | None:
        if not self._rows or self.cursor >= len(self._rows):
            return None
        return self._rows[self.cursor]

    def watch_now(self) -> None:
        # The running rows' keys hold the clock: only they are drawn again.
        if any(row.status is WorktreeStatus.RUNNING for row in self._rows):
            self.refresh()

    # --- marks (widgets/marks.py) ---------------------------------------------

    def task_at(self, index: int) -> str | None:
        return self._rows[index].task_id

    def row_of(self, task_id: str) -> int | None:
        return self._index.get(task_id)

    # --- rendering -------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def empty_text(self) -> str:
        if not self.loaded:
            return "Looking for worktrees…"
        return "No worktrees: agents get one each when the engine runs a task."

    def render_header(self, width: int) -> str:
        marks = self.marks_text()
        titles = {"progress": f"LAST OUTPUT · {marks}"} if marks else None
        return header_text(layout_columns(COLUMNS, width, MIN_PROGRESS), titles)

    def _merge(self, row: WorktreeRow) -> MergeLook | None:
        if row.status is not WorktreeStatus.REVIEW or row.task_id is None:
            return None
        return self.merges.get(row.task_id)

    def task_state(self, task_id: str) -> State | None:
        """The task's state, for the QA column's "checking" (its pane knows it)."""
        return None

    def qa_mark(self, row: WorktreeRow) -> QaMark:
        return self.qa.mark(row.task_id, self.task_state(row.task_id) if row.task_id else None)

    def row_cache_key(self, index: int):
        row = self._rows[index]
        clock = int(self.now) if row.status is WorktreeStatus.RUNNING else 0
        merge = self._merge(row)
        return (row.key, row.status, row.progress, row.added, row.removed, row.exists, clock,
                row.task_id in self.marked, (merge.status, merge.text) if merge else None, self.qa_mark(row))

    def render_row(self, index: int, width: int) -> list[Segment]:
        row = self._rows[index]
        colours = palette(self)
        when = ""
        if row.status is WorktreeStatus.RUNNING and row.started_at:
            when = span(self.now - row.started_at)
        changes = ""
        if row.added is not None:
            changes = f"+{row.added} −{row.removed}"
        status = row.status.value
        status_style = colours.worktree.get(row.status)
        progress: tuple[str, Style | None] = (literal(row.progress or ""), None)
        merge = self._merge(row)
        if merge is not None:
            look = {"clean": colours.good, "conflicts": colours.problem}.get(str(merge.status), colours.muted)
            progress = (literal(merge.text), look)
            if str(merge.status) in MERGE_MARK:
                status, status_style = status + MERGE_MARK[str(merge.status)], look
        if not row.exists:
            progress = ("(folder missing)", colours.muted)
        cells = {
            "mark": (MARK_SYMBOL, colours.mark) if row.task_id in self.marked else ("", None),
            "task": (row.task_id or "?", colours.ident),
            "status": (status, status_style),
            "qa": (str(mark := self.qa_mark(row)), mark_style(mark, colours)),
            "elapsed": (when, colours.muted),
            "changes": (changes, colours.good if row.added else colours.muted),
            "progress": progress,
            "branch": (literal(row.branch or "—"), colours.muted),
        }
        return render_cells(layout_columns(COLUMNS, width, MIN_PROGRESS), cells)

    # --- keys ------------------------------------------------------------------------

    def action_command(self, command: str) -> None:
        wanted = Command(command)
        if self.command_for_marked(wanted):
            return
        row = self.selected_row
        if row is None:
            self.notify("No worktree under the cursor.", severity="warning", timeout=3)
            return
        if row.task_id is None:
            self.notify("This worktree belongs to no task.", severity="warning", timeout=3)
            return
        self.post_message(TaskCommand(row.task_id, wanted))
        if wanted is Command.APPROVE and row.status is WorktreeStatus.REVIEW:
            self._to_next_review(row.task_id)

    def _to_next_review(self, approved: str) -> None:
        """After approving a review row, the cursor goes on to the next one
        (the next review row, else the first), so that a run of reviews is
        a run of keystrokes."""
        reviews = [n for n, row in enumerate(self._rows)
                   if row.status is WorktreeStatus.REVIEW and row.task_id != approved]
        if reviews:
            self.cursor = next((n for n in reviews if n > self.cursor), reviews[0])

    def action_open_run(self) -> None:
        self.action_command(Command.OPEN_RUN)

    def action_shell(self) -> None:
        self.action_command(Command.SHELL)

    def action_editor(self) -> None:
        self.action_command(Command.EDITOR)

    def on_double_click(self) -> None:
        self.action_open_run()

    def action_run_qa(self) -> None:
        """Its pane runs it (a worker through the session)."""
