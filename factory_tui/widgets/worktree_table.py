"""The Worktrees pane: a row per task worktree (running, awaiting review,
failed, waiting to run again, orphaned) with its branch, how long the agent
has been at it, its last line of progress and the lines it changed.

The app hands it rows; it keeps the cursor on the same task when they change.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

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
    "running": Style(color="#56b6c2", bold=True),
    "review": Style(color="#e5c07b"),
    "failed": Style(color="#e06c75"),
    "waiting": Style(color="#61afef"),
    "orphaned": Style(color="#7f848e", italic=True),
}
STATUS_ORDER = {"running": 0, "review": 1, "failed": 2, "waiting": 3, "orphaned": 4}
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


@dataclass(slots=True)
class WorktreeRow:
    task_id: str | None
    status: str
    branch: str | None
    path: str
    exists: bool = True
    started_at: float | None = None
    progress: str | None = None
    added: int | None = None
    removed: int | None = None

    @property
    def key(self) -> str:
        return self.task_id or self.path


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

    BINDINGS = [
        Binding("enter", "open", "Open run", id="worktrees.open",
                tooltip="The live transcript and the diff against the base branch"),
        Binding("k", "stop", "Stop agent", id="worktrees.stop",
                tooltip="Stop the agent (asks first); its work is committed to the branch"),
        Binding("o", "shell", "Shell", show=False, id="worktrees.shell",
                tooltip="Open a shell in the worktree (the console comes back when it exits)"),
        Binding("e", "editor", "Editor", show=False, id="worktrees.editor",
                tooltip="Open $EDITOR in the worktree"),
        Binding("c", "clean", "Clean up", show=False, id="worktrees.clean",
                tooltip="Remove the orphaned worktrees (asks first; work is committed first)"),
    ]

    class Wanted(Message):
        """The operator asked for something about a worktree: ``open``,
        ``stop``, ``shell``, ``editor`` or ``clean``."""

        def __init__(self, row: WorktreeRow | None, command: str) -> None:
            super().__init__()
            self.row = row
            self.command = command

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
        if any(row.status == "running" for row in self._rows):
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
        clock = int(self.now) if row.status == "running" else 0
        return (row.key, row.status, row.progress, row.added, row.removed, row.exists, clock)

    def render_row(self, index: int, width: int) -> list[Segment]:
        row = self._rows[index]
        when = ""
        if row.status == "running" and row.started_at:
            when = elapsed(self.now - row.started_at)
        changes = ""
        if row.added is not None:
            changes = f"+{row.added} −{row.removed}"
        progress = literal(row.progress or "")
        if not row.exists:
            progress = "(folder missing)"
        cells = {
            "task": (row.task_id or "?", ID_STYLE),
            "status": (row.status, STATUS_STYLE.get(row.status)),
            "elapsed": (when, DIM),
            "changes": (changes, ADDED if row.added else DIM),
            "progress": (progress, DIM if not row.exists else None),
            "branch": (literal(row.branch or "—"), DIM),
        }
        return render_cells(layout_columns(COLUMNS, width, MIN_PROGRESS), cells)

    # --- keys ------------------------------------------------------------------------

    def _want(self, command: str) -> None:
        row = self.selected_row
        if row is None and command != "clean":
            self.notify("No worktree under the cursor.", severity="warning", timeout=3)
            return
        self.post_message(self.Wanted(row, command))

    def action_open(self) -> None:
        self._want("open")

    def action_stop(self) -> None:
        self._want("stop")

    def action_shell(self) -> None:
        self._want("shell")

    def action_editor(self) -> None:
        self._want("editor")

    def action_clean(self) -> None:
        self._want("clean")

    def on_double_click(self) -> None:
        self.action_open()
