"""The command palette (``ctrl+p``): every console action by name, as
"noun: verb" commands, and the task under the cursor first.

Titles are shown literally: Textual's own ``Matcher.highlight`` reads markup,
so hits are highlighted here from the match offsets instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from factory_tui.messages import Command, NewTaskWanted, TaskCommand
from factory_tui.model import TRANSITIONS, Action, State, Task, allowed_actions
from factory_tui.text import one_line

if TYPE_CHECKING:
    from factory_tui.app import FactoryApp

_VERBS = {
    Action.APPROVE: "approve",
    Action.REQUEUE: "re-queue with feedback",
    Action.CANCEL: "cancel",
    Action.HOLD: "hold",
    Action.RELEASE: "release",
}
MAX_TASK_HITS = 30


def highlight_literal(matcher: Matcher, text: str) -> Content:
    content = Content(text)
    score, offsets = matcher.fuzzy_search.match(matcher.query, text)
    if not score:
        return content
    for offset in offsets:
        if not text[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class FactoryCommands(Provider):
    """Commands for the task under the cursor, the panes, and every task by
    id or title."""

    @property
    def factory(self) -> FactoryApp:
        # The palette is only ever opened in our app.
        return cast("FactoryApp", self.app)

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.factory
        commands: list[tuple[str, Callable[[], object], str]] = []
        task = app.current_task()
        if task is not None:
            label = f"{task.id} {one_line(task.title, 60)}"

            def send(command: Command, task_id: str = task.id) -> Callable[[], object]:
                return lambda: app.post_message(TaskCommand(task_id, command))

            commands.append((f"task: open {label}", send(Command.OPEN), "Its body, dependencies and history"))
            for action in allowed_actions(task.state):
                command = Command.HOLD if action in (Action.HOLD, Action.RELEASE) else Command(action.value)
                commands.append((f"task: {_VERBS[action]} {label}", send(command),
                                 f"{task.state.value} → {_target(task.state, action)}"))
            commands.append((f"task: raise priority of {label}", send(Command.PRIORITY_UP), f"now {task.priority}"))
            commands.append((f"task: lower priority of {label}", send(Command.PRIORITY_DOWN), f"now {task.priority}"))
            if any(row.task_id == task.id for row in app.worktree_table.rows):
                commands.append((f"run: open {label}", send(Command.OPEN_RUN), "Its live transcript and diff"))
        commands.append(("task: new", lambda: app.post_message(NewTaskWanted()), "Add a task with a form"))
        if app.engine.mode == "none" and app.with_engine:
            commands.append(("engine: start in the console", app.action_start_engine, "Run agents on the ready tasks"))
        commands.append(("worktrees: clean up orphaned", app.worktree_table.action_clean, "Remove worktrees no task owns (asks first)"))

        def focus(number: int) -> Callable[[], object]:
            # A function per pane, so that each callback keeps its own number.
            return lambda: app.action_focus_pane(number)

        for number, name in app.PANE_NAMES.items():
            commands.append((f"pane: {name.lower()}", focus(number), f"Key {number}"))
        commands.append(("plan: filter", lambda: app.action_filter_pane(1), "Show only matching tasks"))
        commands.append(("log: filter", lambda: app.action_filter_pane(6), "By task (T-3), event kind (approved) or words"))
        commands.append(("log: follow newest", app.action_follow_log, "Jump to the newest event"))
        commands.append(("console: keys", app.action_help, "Every key for the focused pane"))
        commands.append(("console: quit", app.action_quit, "Leave the console"))
        return commands

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            yield DiscoveryHit(Content(text), callback, text=text, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, highlight_literal(matcher, text), callback, text=text, help=help_text)
        # Fuzzy scoring is costly; over 10,000 tasks, score only those that
        # hold every typed word.
        words = query.lower().split()
        hits: list[tuple[float, Task]] = []
        candidates = 0
        for task in self.factory.all_tasks():
            text = f"task: open {task.id} {one_line(task.title, 60)}"
            lowered = text.lower()
            if not all(word in lowered for word in words):
                continue
            candidates += 1
            if candidates > 10 * MAX_TASK_HITS:
                break
            score = matcher.match(text)
            if score > 0:
                hits.append((score, task))
        hits.sort(key=lambda hit: -hit[0])
        for score, task in hits[:MAX_TASK_HITS]:
            text = f"task: open {task.id} {one_line(task.title, 60)}"
            yield Hit(
                score * 0.9,
                highlight_literal(matcher, text),
                lambda t=task: self.factory.post_message(TaskCommand(t.id, Command.OPEN)),
                text=text,
                help=f"{task.state.value}, priority {task.priority}",
            )


def _target(state: State, action: Action) -> str:
    return TRANSITIONS[(state, action)].value
