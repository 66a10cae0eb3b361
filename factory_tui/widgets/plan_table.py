"""The Plan pane's table: every task, grouped by state (what needs the
operator first), sorted by priority within a group.

It holds the tasks it was given and updates them by id; it never reads the
log. Keys post ``TaskCommand`` for the app to confirm and carry out; the
Plan pane (panes/plan.py) feeds it.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive

from factory_tui.filters import plan_matches
from factory_tui.keys import bindings
from factory_tui.messages import Command, NewTaskWanted, TaskCommand
from factory_tui.model import STATE_ORDER, State, Task
from factory_tui.text import literal
from factory_tui.widgets.styles import (
    BLOCKED_STYLE,
    DIM,
    ID_STYLE,
    STATE_HEADING_STYLE,
    STATE_STYLE,
    STATE_SYMBOL,
)
from factory_tui.widgets.virtual_list import (
    Column,
    VirtualList,
    fit,
    header_text,
    layout_columns,
    render_cells,
)

# Blocked-by is shown only where it explains why a task is not running.
_WAITING = (State.QUEUED, State.HELD, State.PROPOSED)
COLUMNS = (
    Column("indent", "", 1),
    Column("id", "ID", 6),
    Column("state", "STATE", 11),
    Column("title", "TITLE"),
    Column("priority", "PRI", 3, right=True, drop=1),
    Column("blocked", "BLOCKED BY", 12, drop=2),
    Column("attempts", "TRIES", 5, right=True, drop=3),
)
MIN_TITLE = 24


class PlanTable(VirtualList):
    """Tasks grouped by state under a heading each."""

    BINDINGS = bindings(
        "task.approve", "task.requeue", "task.cancel", "task.new", "task.hold",
        "task.priority-up", "task.priority-down", "task.open",
    )

    filter_text: reactive[str] = reactive("")
    """Only tasks whose id, state or title hold every word are shown."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._tasks: dict[str, Task] = {}
        self._rows: list[str | State] = []
        self._group_sizes: dict[State, int] = {}
        self.loaded = False

    # --- data in -------------------------------------------------------------

    def load(self, tasks: list[Task]) -> None:
        self._tasks = {task.id: task for task in tasks}
        self.loaded = True
        self._rebuild()

    def update_tasks(self, tasks: list[Task]) -> None:
        for task in tasks:
            self._tasks[task.id] = task
        self._rebuild()

    def task_by_id(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    @property
    def tasks(self) -> dict[str, Task]:
        return self._tasks

    def apply_filter(self, text: str) -> None:
        self.filter_text = text

    def watch_filter_text(self) -> None:
        self._rebuild()

    def _rebuild(self) -> None:
        kept = self._rows[self.cursor] if self._rows and self.cursor < len(self._rows) else None
        groups: dict[State, list[Task]] = {state: [] for state in STATE_ORDER}
        text = self.filter_text
        for task in self._tasks.values():
            if not text or plan_matches(task, text):
                groups[task.state].append(task)
        rows: list[str | State] = []
        self._group_sizes = {}
        for state in STATE_ORDER:
            members = groups[state]
            if not members:
                continue
            self._group_sizes[state] = len(members)
            rows.append(state)
            members.sort(key=lambda t: (-t.priority, t.seq))
            rows.extend(task.id for task in members)
        self._rows = rows
        index = self.cursor
        if kept is not None:
            index = next((n for n, row in enumerate(rows) if row == kept), index)
        self.rows_changed()
        target = self.nearest_selectable(index, +1)
        if target is not None:
            self.cursor = target

    # --- what the cursor is on ----------------------------------------------

    @property
    def selected_task(self) -> Task | None:
        if not self._rows or self.cursor >= len(self._rows):
            return None
        row = self._rows[self.cursor]
        return None if isinstance(row, State) else self._tasks.get(row)

    def index_of(self, task_id: str) -> int | None:
        """The row showing ``task_id``, or None if it is filtered out."""
        try:
            return self._rows.index(task_id)
        except ValueError:
            return None

    def select_task(self, task_id: str) -> bool:
        index = self.index_of(task_id)
        if index is None:
            return False
        self.cursor = index
        return True

    def blocked_by(self, task: Task) -> list[str]:
        return [
            dep for dep in task.depends_on
            if (other := self._tasks.get(dep)) is None or other.state is not State.DONE
        ]

    # --- rendering ----------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def render_header(self, width: int) -> str:
        return header_text(layout_columns(COLUMNS, width, MIN_TITLE))

    def render_row(self, index: int, width: int) -> list[Segment]:
        row = self._rows[index]
        if isinstance(row, State):
            return self._render_heading(row, width)
        task = self._tasks[row]
        blocked = ",".join(self.blocked_by(task)) if task.state in _WAITING else ""
        return render_cells(
            layout_columns(COLUMNS, width, MIN_TITLE),
            {
                "id": (task.id, ID_STYLE),
                "state": (f"{STATE_SYMBOL[task.state]} {task.state.value}", STATE_STYLE[task.state]),
                "title": (literal(task.title), None),
                "priority": (str(task.priority), None) if task.priority else ("·", DIM),
                "blocked": (blocked, BLOCKED_STYLE),
                "attempts": (str(task.attempts), None) if task.attempts else ("·", DIM),
            },
        )

    def empty_text(self) -> str:
        if not self.loaded:
            return "Reading the log…"
        if self._tasks:
            return "No task matches the filter; esc clears it."
        return "The plan is empty: press n to add a task, or run `factory plan import FILE.md`."

    def is_selectable(self, index: int) -> bool:
        return not isinstance(self._rows[index], State)

    def _render_heading(self, state: State, width: int) -> list[Segment]:
        label = f"{STATE_SYMBOL[state]} {state.value.upper()} · {self._group_sizes.get(state, 0)} "
        style: Style = STATE_HEADING_STYLE[state]
        return [Segment(fit(label, min(width, len(label))), style),
                Segment("─" * max(0, width - len(label)), DIM)]

    def row_cache_key(self, index: int):
        row = self._rows[index]
        if isinstance(row, State):
            return ("heading", row, self._group_sizes.get(row))
        task = self._tasks[row]
        return (row, task.state, task.priority, task.attempts, task.title, tuple(self.blocked_by(task)))

    # --- keys ------------------------------------------------------------------

    def action_command(self, command: str) -> None:
        task = self.selected_task
        if task is None:
            self.notify("Move the cursor to a task first.", severity="warning", timeout=3)
            return
        self.post_message(TaskCommand(task.id, Command(command)))

    def on_double_click(self) -> None:
        self.action_command(Command.OPEN)

    def action_new_task(self) -> None:
        self.post_message(NewTaskWanted())
