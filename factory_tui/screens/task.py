"""The task screen (``enter`` on a task): its body (as markdown, or as plain
text when it is large: see task_body.py), what it depends on and what
depends on it, and its whole history.

The app's task actions load the task's detail (from the session, in a
worker) and hand it over again whenever the log feed shows the task changed;
the screen reads nothing itself.
"""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from factory_tui.keys import bindings
from factory_tui.messages import Command, TaskCommand, TaskDetailLoaded
from factory_tui.model import State, Task, TaskDetail, iso_time
from factory_tui.text import literal
from factory_tui.widgets.styles import KIND_STYLE, STATE_STYLE, STATE_SYMBOL
from factory_tui.widgets.task_body import TaskBody


def _task_line(task: Task) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{task.id:<7}", style="bold")
    line.append(f"{STATE_SYMBOL[task.state]} {task.state.value:<10}", style=STATE_STYLE[task.state])
    line.append(literal(task.title))
    return line


class TaskScreen(Screen):
    """One task in full."""

    BINDINGS = bindings(
        "screen.back", "task.approve", "task.requeue", "task.cancel", "task.hold",
        "task.priority-up", "task.priority-down",
    )

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.detail: TaskDetail | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f" {self.task_id}  loading…"), id="task-title")
        yield Static("", id="task-meta")
        with Horizontal(id="task-main"):
            yield TaskBody(id="task-body-box")
            with Vertical(id="task-side"):
                yield Static("", id="task-deps", classes="task-box")
                yield VerticalScroll(Static("", id="task-events"), id="task-events-scroll", classes="task-box")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#task-deps").border_title = "Dependencies"
        self.query_one("#task-events-scroll").border_title = "History"
        self.query_one("#task-body-box").border_title = "Description"

    def action_command(self, command: str) -> None:
        self.post_message(TaskCommand(self.task_id, Command(command)))

    @on(TaskDetailLoaded)
    def show_detail(self, message: TaskDetailLoaded) -> None:
        detail = message.detail
        if detail.task.id != self.task_id:
            return
        self.detail = detail
        task = detail.task
        title = Text(no_wrap=False)
        title.append(f" {task.id}  ", style="bold")
        title.append(f"{STATE_SYMBOL[task.state]} {task.state.value}", style=STATE_STYLE[task.state])
        title.append("  ")
        title.append(literal(task.title), style="bold")
        self.query_one("#task-title", Static).update(title)
        meta = Text(" ")
        meta.append(f"priority {task.priority}   attempts {task.attempts}   created {iso_time(task.created_at)}")
        if task.profile:
            meta.append(f"   profile {literal(task.profile)}")
        if task.source:
            meta.append(f"   from {literal(task.source)}")
        if task.feedback:
            meta.append("\n feedback: ", style="bold")
            meta.append(literal(task.feedback))
        self.query_one("#task-meta", Static).update(meta)
        self.query_one(TaskBody).show(task.body)
        self.query_one("#task-deps", Static).update(self._dependencies(detail))
        self.query_one("#task-events", Static).update(self._history(detail))

    @staticmethod
    def _dependencies(detail: TaskDetail) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_column()
        table.add_row(Text("Depends on", style="bold"))
        if detail.dependencies:
            for task in detail.dependencies:
                line = _task_line(task)
                if task.state is not State.DONE:
                    line.append("  (blocking)", style="#d19a66")
                table.add_row(line)
        else:
            table.add_row(Text("nothing", style="dim"))
        table.add_row(Text(""))
        table.add_row(Text("Needed by", style="bold"))
        if detail.dependents:
            for task in detail.dependents:
                table.add_row(_task_line(task))
        else:
            table.add_row(Text("nothing", style="dim"))
        return table

    @staticmethod
    def _history(detail: TaskDetail) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column(no_wrap=True, min_width=10)
        table.add_column()
        for event in detail.events:
            when = time.strftime("%m-%d %H:%M", time.localtime(event.at))
            what = Text(event.kind, style=KIND_STYLE.get(event.kind))
            text = Text()
            if event.to_state:
                text.append(f"{event.from_state or '∅'} → {event.to_state}  ")
            text.append(f"by {literal(event.actor)}", style="dim")
            if event.note:
                text.append("\n")
                text.append(literal(event.note, multiline=True))
            table.add_row(when, what, text)
        return table
