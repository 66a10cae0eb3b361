"""Messages that cross the console: data travelling from the log feed to the
panes, and intents travelling from panes and screens to the app.

A pane's own messages live in its module (``panes/worktrees.py`` posts
``WorktreesScanned`` to itself); these are the ones more than one part of
the console sends or receives. Messages are dataclasses; what is asked for
is an enum, never a string compared in an ``if`` chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from textual.message import Message

from factory_tui.model import Action, TaskDetail

if TYPE_CHECKING:
    # Types only: the console's widgets import this module, and they never
    # import SQLite or git, even through the backends.
    from factory_tui.backends.feed import Changes, Rest, Snapshot
    from factory_tui.engine import EngineStatus
    from factory_tui.plan_rows import PreparedPlan


class Command(StrEnum):
    """What the operator can ask for about a task, from any pane or screen."""

    OPEN = "open"
    OPEN_RUN = "open_run"
    OPEN_DIFF = "open_diff"  # the run screen, on its diff
    APPROVE = "approve"
    REQUEUE = "requeue"
    CANCEL = "cancel"
    HOLD = "hold"  # hold, or release a held task
    PRIORITY_UP = "priority_up"
    PRIORITY_DOWN = "priority_down"
    SHELL = "shell"
    EDITOR = "editor"

    @property
    def action(self) -> Action | None:
        """The operator action it stands for, if it is one."""
        return _ACTIONS.get(self)


_ACTIONS = {
    Command.APPROVE: Action.APPROVE,
    Command.REQUEUE: Action.REQUEUE,
    Command.CANCEL: Action.CANCEL,
    Command.HOLD: Action.HOLD,
}


@dataclass
class PlanLoaded(Message):
    """The first read of the log has landed (for a big base, what the first
    frame needs: ``LogCompleted`` brings the rest)."""

    snapshot: Snapshot


@dataclass
class LogCompleted(Message):
    """The whole plan and every event's id, after a first look that held
    only the first rows (a big base)."""

    rest: Rest
    # The whole plan made ready for the Plan's table in the feed's worker.
    plan: PreparedPlan | None = None


@dataclass
class LogChanged(Message):
    """Someone (this console, the CLI, an agent, an engine) wrote to the log."""

    changes: Changes


@dataclass
class TaskHighlighted(Message):
    """The Plan's cursor is on another task (None: on no task)."""

    task_id: str | None


@dataclass
class TaskCommand(Message):
    """The operator asked for something to happen to a task. The app
    confirms what needs confirming and runs it in a worker."""

    task_id: str
    command: Command


@dataclass
class NewTaskWanted(Message):
    """The operator asked for the new-task form."""


@dataclass
class TaskDetailLoaded(Message):
    detail: TaskDetail


@dataclass
class EngineChanged(Message):
    """The embedded engine's status changed, or the engine lock's holder."""

    status: EngineStatus | None = None


@dataclass
class WorktreesChanged(Message):
    """Something the Worktrees pane shows changed on disk (an operator's
    action, the engine): look at git again now. ``tasks``: the worktrees
    to count again (empty: only the list; None: every worktree)."""

    tasks: tuple[str, ...] | None = None

    # The app hands it to the pane; bubbling back up to the app would hand
    # it down again, and the pane would scan git without end.
    bubble = False
