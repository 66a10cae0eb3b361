"""Messages that cross the console: data travelling from the workers to the
widgets, and intents travelling from the widgets to the app.

A widget's own messages live on its class (``EventLog.PagesWanted``); these
are the ones more than one widget sends or receives.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from factory_tui.backends.feed import Changes, Snapshot
from factory_tui.model import Event, Task


class PlanLoaded(Message):
    """The first full read of the log has landed."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class LogChanged(Message):
    """Someone (this console, the CLI, an agent, an engine) wrote to the log."""

    def __init__(self, changes: Changes) -> None:
        super().__init__()
        self.changes = changes


class TaskCommand(Message):
    """The operator asked for something to happen to a task: ``open``,
    ``approve``, ``requeue``, ``cancel``, ``hold`` (hold or release),
    ``priority_up``, ``priority_down``. The app confirms what needs
    confirming and runs it in a worker."""

    def __init__(self, task_id: str, command: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.command = command


class NewTaskWanted(Message):
    """The operator asked for the new-task form."""


@dataclass
class TaskDetail:
    task: Task
    dependencies: list[Task]
    dependents: list[Task]
    events: list[Event]


class TaskDetailLoaded(Message):
    def __init__(self, detail: TaskDetail) -> None:
        super().__init__()
        self.detail = detail
