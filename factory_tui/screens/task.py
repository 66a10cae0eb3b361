"""The task screen (``enter`` on a task): its body (as markdown, or as plain
text when it is large: see task_body.py), what it depends on and what
depends on it, and its whole history.

What needs the operator is at its top: why a failed task failed (its last
failure's reason, in the theme's error colour), or that a waiting task can
never run as it is (it waits for a cancelled or failed task), with ``u`` to
drop that dependency (asked first). ``d`` opens the task's run screen on
its diff, ``t`` and ``enter`` on its transcript.

The app's task actions load the task's detail (from the session, in a
worker) and hand it over again whenever the log feed shows the task changed;
the screen asks the session why (failures, never_runs) in a worker of its
own each time, and drops a dependency in one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from factory_tui.context import console
from factory_tui.keys import bindings
from factory_tui.messages import Command, TaskCommand, TaskDetailLoaded
from factory_tui.model import WAITING_STATES, Failure, NeverRuns, State, Task, TaskDetail
from factory_tui.qa_marks import QaMark
from factory_tui.screens.dialogs import ChoiceDialog, ConfirmDialog, counted
from factory_tui.screens.qa import run_qa_for
from factory_tui.text import literal, one_line
from factory_tui.times import moment
from factory_tui.widgets.footer import ConsoleFooter
from factory_tui.widgets.qa_table import VERDICT_MARK, verdict_style
from factory_tui.widgets.styles import STATE_SYMBOL, Palette, palette
from factory_tui.widgets.task_body import TaskBody

if TYPE_CHECKING:
    from factory_tui.backends.qa_log import QaRun


def _task_line(task: Task, colours: Palette) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{task.id:<7}", style="bold")
    line.append(f"{STATE_SYMBOL[task.state]} {task.state.value:<10}", style=colours.state[task.state])
    line.append(literal(task.title))
    return line


class TaskScreen(Screen):
    """One task in full."""

    BINDINGS = bindings(
        "screen.back", "task.approve", "task.requeue", "task.cancel", "task.hold",
        "task.priority-up", "task.priority-down", "run.diff", "run.transcript", "run.open",
        "task.drop-dependency", "qa.run",
        show={"task.requeue": False, "run.transcript": False, "run.open": False},
    )

    @dataclass
    class WhyLoaded(Message):
        """Why the task failed, or why it can never run (either may be None)."""

        task_id: str
        failure: Failure | None
        never: NeverRuns | None

    @dataclass
    class QaLoaded(Message):
        """The task's latest QA result per scenario."""

        task_id: str
        runs: list

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.detail: TaskDetail | None = None
        self.failure: Failure | None = None
        self.never: NeverRuns | None = None
        # Set once the first answer to "why" is in (tests wait for it).
        self.why_loaded = False
        self.qa_runs: list | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f" {self.task_id}  loading…"), id="task-title")
        yield Static("", id="task-meta")
        with Horizontal(id="task-main"):
            yield TaskBody(id="task-body-box")
            with Vertical(id="task-side"):
                yield VerticalScroll(Static("", id="task-qa-report"), id="task-qa", classes="task-box")
                yield Static("", id="task-deps", classes="task-box")
                yield VerticalScroll(Static("", id="task-events"), id="task-events-scroll", classes="task-box")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one("#task-deps").border_title = "Dependencies"
        self.query_one("#task-qa").border_title = "QA report"
        self.query_one("#task-events-scroll").border_title = "History"
        self.query_one("#task-body-box").border_title = "Description"

    def action_command(self, command: str) -> None:
        self.post_message(TaskCommand(self.task_id, Command(command)))

    def action_tab(self, tab: str) -> None:
        """``d``: the run screen on its diff; ``t``: on its transcript."""
        self.action_command(Command.OPEN_DIFF if tab == "diff" else Command.OPEN_RUN)

    def action_open_run(self) -> None:
        self.action_command(Command.OPEN_RUN)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "drop_dependency":
            # Offered (and in the footer) only for a task that can never run.
            return self.never is not None
        return True

    @on(TaskDetailLoaded)
    def show_detail(self, message: TaskDetailLoaded) -> None:
        detail = message.detail
        if detail.task.id != self.task_id:
            return
        self.detail = detail
        task = detail.task
        title = Text(no_wrap=False)
        title.append(f" {task.id}  ", style="bold")
        title.append(f"{STATE_SYMBOL[task.state]} {task.state.value}", style=palette(self).state[task.state])
        title.append("  ")
        title.append(literal(task.title), style="bold")
        self.query_one("#task-title", Static).update(title)
        self._show_meta()
        self.load_why(task)
        self.load_qa()
        self.query_one(TaskBody).show(task.body)
        colours = palette(self)
        self.query_one("#task-deps", Static).update(self._dependencies(detail, colours))
        self.query_one("#task-events", Static).update(self._history(detail, colours, console(self).clock()))

    def _show_meta(self) -> None:
        """The lines under the title: why the task needs the operator
        first (in the theme's error or warning colour), then its facts."""
        if self.detail is None:
            return
        task = self.detail.task
        parts: list[str | tuple[str, str]] = []
        if self.failure is not None:
            parts += [(" ✗ failed: ", "$text-error bold"), (failure_text(self.failure), "$text-error"), "\n"]
        if self.never is not None:
            drop = ", ".join(self.never.through)
            parts += [
                (" ⊘ can never run as it is: ", "$text-warning bold"),
                (f"{self.never.text}; u drops {drop} from its dependencies", "$text-warning"),
                "\n",
            ]
        facts = f" priority {task.priority}   attempts {task.attempts}   created {moment(task.created_at, console(self).clock())}"
        if task.profile:
            facts += f"   profile {literal(task.profile)}"
        if task.source:
            facts += f"   from {literal(task.source)}"
        parts.append(facts)
        if task.labels:
            parts += ["\n", (" labels: ", "bold"), literal(", ".join(task.labels))]
        if task.feedback:
            parts += ["\n", (" feedback: ", "bold"), literal(task.feedback, multiline=True)]
        self.query_one("#task-meta", Static).update(Content.assemble(*parts))

    # --- why it needs the operator -------------------------------------------------

    @work(thread=True, exclusive=True, group="task-why", exit_on_error=False)
    def load_why(self, task: Task) -> None:
        session = console(self).session
        failure = session.failures([task.id]).get(task.id) if task.state is State.FAILED else None
        never = session.never_runs([task.id]).get(task.id) if task.state in WAITING_STATES else None
        self.post_message(self.WhyLoaded(task.id, failure, never))

    @on(WhyLoaded)
    def _why_loaded(self, message: WhyLoaded) -> None:
        if message.task_id != self.task_id:
            return
        self.failure, self.never = message.failure, message.never
        self.why_loaded = True
        self._show_meta()
        self.refresh_bindings()

    # --- its QA ----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="task-qa", exit_on_error=False)
    def load_qa(self) -> None:
        self.post_message(self.QaLoaded(self.task_id, console(self).session.qa_report(self.task_id)))

    @on(QaLoaded)
    def _qa_loaded(self, message: QaLoaded) -> None:
        if message.task_id != self.task_id:
            return
        self.qa_runs = message.runs
        self.query_one("#task-qa-report", Static).update(qa_report_table(message.runs, palette(self)))

    def action_run_qa(self) -> None:
        run_qa_for(self, self.task_id)

    def action_drop_dependency(self) -> None:
        never = self.never
        if never is None:
            return
        task = self.detail.task if self.detail else None
        title = one_line(task.title, 50) if task else ""
        if len(never.through) == 1:
            dependency = never.through[0]
            self.app.push_screen(
                ConfirmDialog(
                    f"Drop {dependency} from the dependencies of {self.task_id}: {title}?",
                    f"{self.task_id} {never.text}, so it can never run as it is. "
                    f"Without {dependency} it can; {dependency} itself is not changed.",
                    yes="Drop dependency",
                ),
                self._drop_if(dependency),
            )
            return
        choices = [(dep, f"Drop {dep} ({n})", str(n)) for n, dep in enumerate(never.through[:9], start=1)]
        self.app.push_screen(
            ChoiceDialog(
                f"Which dependency of {self.task_id}: {title} to drop?",
                f"{self.task_id} {never.text}: {counted(len(never.through), 'dependency', 'dependencies')} "
                "lead there. The task dropped is not changed itself.",
                choices=[*choices, ("cancel", "Keep them (esc)", "escape")],
            ),
            self._drop_chosen,
        )

    def _drop_if(self, dependency: str):
        def answered(yes: bool | None) -> None:
            if yes:
                self.drop_dependency(dependency)

        return answered

    def _drop_chosen(self, answer: str | None) -> None:
        if answer and answer != "cancel":
            self.drop_dependency(answer)

    @work(thread=True, group="task-drop-dependency", exit_on_error=False)
    def drop_dependency(self, dependency: str) -> None:
        """Through the session; the log feed then refreshes the screen."""
        context = console(self)
        context.session.remove_dependency(self.task_id, dependency, actor=context.actor)
        self.notify(f"{self.task_id} no longer waits for {dependency}.", timeout=4, markup=False)

    @staticmethod
    def _dependencies(detail: TaskDetail, colours: Palette) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_column()
        table.add_row(Text("Depends on", style="bold"))
        if detail.dependencies:
            for task in detail.dependencies:
                line = _task_line(task, colours)
                if task.state is not State.DONE:
                    line.append("  (blocking)", style=colours.blocked)
                table.add_row(line)
        else:
            table.add_row(Text("nothing", style="dim"))
        table.add_row(Text(""))
        table.add_row(Text("Needed by", style="bold"))
        if detail.dependents:
            for task in detail.dependents:
                table.add_row(_task_line(task, colours))
        else:
            table.add_row(Text("nothing", style="dim"))
        return table

    @staticmethod
    def _history(detail: TaskDetail, colours: Palette, now: float) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column(no_wrap=True, min_width=10)
        table.add_column()
        for event in detail.events:
            when = moment(event.at, now)  # the one time format (times.py)
            what = Text(event.kind, style=colours.kind.get(event.kind, ""))
            text = Text()
            if event.to_state:
                text.append(f"{event.from_state or '∅'} → {event.to_state}  ")
            text.append(f"by {literal(event.actor)}", style="dim")
            if event.note:
                text.append("\n")
                text.append(literal(event.note, multiline=True))
            table.add_row(when, what, text)
        return table


def qa_report_table(runs: list[QaRun], colours: Palette) -> Table | Text:
    """The latest result of each scenario: verdict, scenario, gate, why."""
    if not runs:
        return Text("no QA run yet (Q runs its test and verify scenarios now)", style="dim")
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column()
    for run in runs:
        result = run.result
        mark = VERDICT_MARK.get(result.verdict, QaMark.NONE)
        verdict = Text(f"{str(mark) or '·'} {result.verdict}", style=verdict_style(result.verdict, colours) or "")
        what = Text(literal(result.scenario), style="bold")
        if str(result.gate) != "required":
            what.append(f" ({result.gate})", style="dim")
        table.add_row(verdict, what, Text(literal(result.reason or ""), style="dim"))
    return table


def failure_text(failure: Failure) -> str:
    """A failure's reason, with the conflicting files and the exit code
    when the reason does not say them already."""
    text = literal(failure.reason)
    if failure.conflicts and not all(name in failure.reason for name in failure.conflicts):
        shown = ", ".join(literal(name) for name in failure.conflicts[:5])
        more = len(failure.conflicts) - 5
        text += f"; conflicts in {shown}" + (f" and {more} more" if more > 0 else "")
    if failure.exit_code is not None and f"exited {failure.exit_code}" not in failure.reason:
        text += f" (exit code {failure.exit_code})"
    return text
