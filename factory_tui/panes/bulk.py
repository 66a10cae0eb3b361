"""A pane's side of marked rows (widgets/marks.py): a command for the
marked tasks goes to the console's task actions once, for all of them
(``TaskActions.act_on_many``: one question, each task's outcome); the marks
are cleared once the operator went ahead, and kept when a question was
answered no."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from factory_tui.context import console
from factory_tui.widgets.marks import MarkableList, MarkedCommand

if TYPE_CHECKING:
    from factory_tui.actions import TaskActions


def task_actions(node: MarkableList) -> TaskActions:
    """The console's task actions (``FactoryApp.actions``)."""
    return console(node).actions


class ActsOnMarked:
    """Mixed into a pane whose list is a ``MarkableList``."""

    def on_marked_command(self, message: MarkedCommand) -> None:
        message.stop()
        pane = cast(MarkableList, self)
        task_actions(pane).act_on_many(message.task_ids, message.command, done=pane.clear_marks)
