"""Marking rows for an action on several tasks at once (the Plan and the
Worktrees pane).

``space`` marks or unmarks the task under the cursor and moves on a row, so
that a run of rows is a run of keystrokes; ``esc`` unmarks them all (unless
the pane's filter is open: then esc clears the filter first). Marks are
task ids, so they survive filtering and the rows changing under them. While
any row is marked, the task keys (approve, re-queue, cancel, hold) act on
the marked tasks, not on the cursor's: the list posts ``MarkedCommand`` to
itself and its pane carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.actions import SkipAction
from textual.message import Message

from factory_tui.messages import Command
from factory_tui.widgets.virtual_list import VirtualList

# The commands that act on every marked task; the others (open, priority,
# shell) are about the one under the cursor.
BULK_COMMANDS = frozenset({Command.APPROVE, Command.REQUEUE, Command.CANCEL, Command.HOLD})


@dataclass
class MarkedCommand(Message):
    """The operator asked for ``command`` on every marked task."""

    task_ids: list[str]
    command: Command


class MarkableList(VirtualList):
    """A list of tasks whose rows can be marked; the subclass says which
    task a row shows (``task_at``, ``row_of``)."""

    # Its keys (task.mark, task.clear-marks) are in each list's BINDINGS,
    # after the task keys, so that help lists them after those.

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.marked: set[str] = set()

    # --- what the list provides ---------------------------------------------

    def task_at(self, index: int) -> str | None:
        """The task id row ``index`` shows (None: a heading, no task)."""
        raise NotImplementedError

    def row_of(self, task_id: str) -> int | None:
        """The row showing ``task_id`` (None: filtered out, or gone)."""
        raise NotImplementedError

    def marks_changed(self) -> None:
        """The marks changed: redraw the rows (and the header's count)."""
        self.rows_changed()

    # --- marking --------------------------------------------------------------

    def marked_ids(self) -> list[str]:
        """The marked tasks, in the order the list shows them; marked ones
        a filter hides come last."""
        far = self.row_count
        return sorted(self.marked, key=lambda task_id: (row if (row := self.row_of(task_id)) is not None else far, task_id))

    def marks_text(self) -> str:
        """``3 marked`` (``, 1 filtered out``), or nothing."""
        if not self.marked:
            return ""
        hidden = sum(1 for task_id in self.marked if self.row_of(task_id) is None)
        return f"{len(self.marked)} marked" + (f", {hidden} filtered out" if hidden else "")

    def set_marks(self, task_ids: set[str]) -> None:
        self.marked = set(task_ids)
        self.marks_changed()

    def clear_marks(self) -> None:
        if self.marked:
            self.marked = set()
            self.marks_changed()

    def action_toggle_mark(self) -> None:
        cursor = self.cursor
        task_id = self.task_at(cursor) if self.row_count else None
        if task_id is None:
            return
        self.marked.symmetric_difference_update({task_id})
        self.marks_changed()
        self.move_cursor(cursor + 1, +1)

    def action_clear_marks(self) -> None:
        # esc belongs to the pane's open filter first, and does nothing here
        # without marks: let the next binding for the key have it.
        bar = getattr(self.parent, "filter_bar", None)
        if not self.marked or (bar is not None and bar.display):
            raise SkipAction()
        self.clear_marks()

    def command_for_marked(self, command: Command) -> bool:
        """Post ``command`` for the marked tasks if it is one for them;
        whether it was."""
        if not self.marked or command not in BULK_COMMANDS:
            return False
        self.post_message(MarkedCommand(self.marked_ids(), command))
        return True
