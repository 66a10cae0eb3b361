"""The list of the Worktrees pane: a row per task worktree (running,
awaiting review, failed, waiting to run again, orphaned) with its branch,
how long the agent has been at it, its last line of progress and the lines
it changed.

It is handed rows (``WorktreeReport``s, from the session); it keeps the
cursor on the same task when they change. Its keys act on the row's task
like the Plan's keys do, and open the run.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive

from factory_tui.keys import bindings
from factory_tui.messages import Command, TaskCommand
from factory_tui.model import WorktreeReport, WorktreeStatus
from factory_tui.text import literal
from factory_tui.widgets.styles import DIM, ID_STYLE
from factory_tui.widgets.virtual_list import (
    Column,
    VirtualList,
    header_text,
    layout_columns,
    render_cells,
)

STATUS_STYLE = {
    WorktreeStatus.RUNNING: Style(color="#56b6c2", bold=True),
    WorktreeStatus.REVIEW: Style(color="#e5c07b"),
    WorktreeStatus.FAILED: Style(color="#e06c75"),
    WorktreeStatus.WAITING: Style(color="#61afef"),
    WorktreeStatus.ORPHANED: Style(color="#7f848e", italic=True),
}
STATUS_ORDER = {status: n for n, status in enumerate(STATUS_STYLE)}
ADDED = Style(color="#98c379")

COLUMNS = (
    Column("indent", "", 1),
    Column("task", "TASK", 6),
    Column("status", "STATUS", 8),
    Column("elapsed", "TIME", 6, right=True),
    Column("changes", "+/−", 11, drop=1),
    Column("progress", "LAST OUTPUT"),
    Column("branch", "BRANCH", 14, drop=2),
)
MIN_PROGRESS = 16


# The rows are the session's reports.
WorktreeRow = WorktreeReport


def elapsed(seconds: float) -> str:
    """At most six characters: 4:07, 2h05, 3d04h."""
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


class WorktreeTable(VirtualList):
    """Task worktrees, running ones first."""

    BINDINGS = bindings(
        "run.open", "task.approve", "task.requeue", "task.cancel", "run.shell", "run.editor",
        "worktrees.clean", show={"task.requeue": False},
    )

    now: reactive[float] = reactive(0.0)
    """The time the elapsed column counts to (the app ticks it)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: list[WorktreeRow] = []
        self.loaded = False

    def set_rows(self, rows: list[WorktreeRow]) -> None:
        kept = self.selected_row.key if self.selected_row else None
        rows = sorted(rows, key=lambda r: (STATUS_ORDER.get(r.status, 9), r.key))
        self._rows = rows
        self.loaded = True
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
        if any(row.status is WorktreeStatus.RUNNING for row in self._rows):
            self.rows_changed()

    # --- rendering -------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def empty_text(self) -> str:
        if not self.loaded:
            return "Looking for worktrees…"
        return "No worktrees: agents get one each when the engine runs a task."

    def render_header(self, width: int) -> str:
        return header_text(layout_columns(COLUMNS, width, MIN_PROGRESS))

    def row_cache_key(self, index: int):
        row = self._rows[index]
        clock = int(self.now) if row.status is WorktreeStatus.RUNNING else 0
        return (row.key, row.status, row.progress, row.added, row.removed, row.exists, clock)

    def render_row(self, index: int, width: int) -> list[Segment]:
        row = self._rows[index]
        when = ""
        if row.status is WorktreeStatus.RUNNING and row.started_at:
            when = elapsed(self.now - row.started_at)
        changes = ""
        if row.added is not None:
            changes = f"+{row.added} −{row.removed}"
        progress = literal(row.progress or "")
        if not row.exists:
            progress = "(folder missing)"
        cells = {
            "task": (row.task_id or "?", ID_STYLE),
            "status": (row.status.value, STATUS_STYLE.get(row.status)),
            "elapsed": (when, DIM),
            "changes": (changes, ADDED if row.added else DIM),
            "progress": (progress, DIM if not row.exists else None),
            "branch": (literal(row.branch or "—"), DIM),
        }
        return render_cells(layout_columns(COLUMNS, width, MIN_PROGRESS), cells)

    # --- keys ------------------------------------------------------------------------

    def action_command(self, command: str) -> None:
        row = self.selected_row
        if row is None:
            self.notify("No worktree under the cursor.", severity="warning", timeout=3)
            return
        if row.task_id is None:
            self.notify("This worktree belongs to no task.", severity="warning", timeout=3)
            return
        self.post_message(TaskCommand(row.task_id, Command(command)))

    def action_open_run(self) -> None:
        self.action_command(Command.OPEN_RUN)

    def action_shell(self) -> None:
        self.action_command(Command.SHELL)

    def action_editor(self) -> None:
        self.action_command(Command.EDITOR)

    def on_double_click(self) -> None:
        self.action_open_run()
