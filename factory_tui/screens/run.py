"""The run screen (``enter`` on a worktree, ``t``/``d`` on a task): the
agent's transcript and the diff of its worktree against the base branch,
file by file. Its task keys are the Plan's: approving here merges the task,
and the review goes on with the next task in review (actions.py).

The transcript (widgets/transcript.py) follows the file and searches it;
``p`` opens the task's earlier attempts in turn (``runs/<task>/<n>/``,
newest first), and the title says which one is shown. The diff
(widgets/diff_view.py) comes from the session, in the screen's own worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from factory_tui.context import console
from factory_tui.keys import bindings
from factory_tui.messages import Command, TaskCommand
from factory_tui.model import FileDiff
from factory_tui.text import literal
from factory_tui.widgets.diff_view import DiffView
from factory_tui.widgets.transcript import TranscriptPane, TranscriptView

__all__ = ["Attempt", "RunScreen", "TranscriptView", "attempts_in"]

# A run folder: ``3``, or ``3.stopped`` / ``3.stopped-2`` for a run the
# engine stopped (its attempt was given back and run again).
_RUN_FOLDER = re.compile(r"(\d+)(?:\.stopped(?:-(\d+))?)?")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of a task: its attempt number, and whether an engine stopped it."""

    number: int
    folder: str
    stopped: int = 0  # 0: ran to its end (or runs now); 1, 2 …: the nth stopped run of that number

    @property
    def label(self) -> str:
        return f"attempt {self.number}" + (", stopped" if self.stopped else "")

    @property
    def order(self) -> tuple[int, int]:
        # Newest first: a higher number, and of one number the run that was
        # not stopped (it came after every stopped one), then the later stops.
        return (self.number, 1_000_000 if not self.stopped else self.stopped)


def attempts_in(runs_dir: Path | None) -> list[Attempt]:
    """The runs a task's folder holds, newest first."""
    found: list[Attempt] = []
    try:
        entries = list(runs_dir.iterdir()) if runs_dir is not None else []
    except OSError:
        entries = []
    for entry in entries:
        match = _RUN_FOLDER.fullmatch(entry.name)
        if match is None or not entry.is_dir():
            continue
        stopped = 0
        if ".stopped" in entry.name:
            stopped = int(match.group(2) or 1)
        found.append(Attempt(int(match.group(1)), entry.name, stopped))
    return sorted(found, key=lambda attempt: attempt.order, reverse=True)


class RunScreen(Screen):
    """One task's agent run."""

    BINDINGS = bindings(
        "screen.back", "run.transcript", "run.diff", "task.approve", "task.requeue", "task.cancel",
        "run.shell", "run.editor", "run.attempt", show={"task.requeue": False},
    )

    @dataclass
    class DiffLoaded(Message):
        files: list[FileDiff]

    @dataclass
    class AttemptsListed(Message):
        attempts: list[Attempt]
        cycle: bool

    def __init__(
        self,
        task_id: str,
        *,
        title: str,
        transcript: Path | None,
        worktree: Path,
        branch: str,
        attempt: int | None = None,
        tab: str = "transcript",
    ) -> None:
        super().__init__()
        self.task_id = task_id
        self.task_title = title
        self.transcript_path = transcript
        self.worktree = worktree
        self.branch = branch
        self.initial_tab = tab
        self.attempt: Attempt | None = Attempt(attempt, str(attempt)) if attempt else None
        self.attempts: list[Attempt] = []
        self.diff_loaded = False
        self._diff_loading = False

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="run-title")
        with TabbedContent(id="run-tabs", initial=self.initial_tab):
            with TabPane("Transcript", id="transcript"):
                yield TranscriptPane(self.transcript_path, id="transcript-pane")
            with TabPane("Diff", id="diff"):
                yield DiffView(id="diff-view")
        yield Footer()

    def _title(self) -> Text:
        header = Text(no_wrap=True, overflow="ellipsis")
        header.append(f" {self.task_id}  ", style="bold")
        header.append(literal(self.task_title), style="bold")
        header.append(f"   {literal(self.branch)}", style="dim")
        if self.attempt is not None:
            header.append(f"   {self.attempt.label}")
            if len(self.attempts) > 1:
                position = next((n for n, a in enumerate(self.attempts) if a == self.attempt), None)
                if position is not None:
                    header.append(f" ({position + 1} of {len(self.attempts)} runs, newest first; p: another)", style="dim")
        return header

    def on_mount(self) -> None:
        self.action_tab(self.initial_tab)
        self.list_attempts(cycle=False)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "transcript":
            self.query_one(TranscriptView).focus()
        else:
            self.query_one("#diff-files").focus()
            self._want_diff()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # A click on the tab, not a key: the diff is loaded all the same.
        if event.pane.id == "diff":
            self._want_diff()

    def _want_diff(self) -> None:
        # Read again each time the diff is shown (a running agent's grows),
        # but once at a time: the tab's own message and the key both ask.
        if not self._diff_loading:
            self._diff_loading = True
            self.load_diff()

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def load_diff(self) -> None:
        """The worktree's diff against the base branch (git: a worker)."""
        try:
            files = console(self).session.diff(self.task_id)
        except Exception:
            # Said by the app (a worker's error); the next look tries again.
            self.app.call_from_thread(setattr, self, "_diff_loading", False)
            raise
        self.post_message(self.DiffLoaded(files))

    @on(DiffLoaded)
    def _diff_loaded(self, message: DiffLoaded) -> None:
        self.show_diff(message.files)

    def show_diff(self, files: list) -> None:
        self.diff_loaded = True
        self._diff_loading = False
        self.query_one(DiffView).show(files)

    # --- earlier attempts -------------------------------------------------------------

    @work(thread=True, exclusive=True, group="attempts", exit_on_error=False)
    def list_attempts(self, cycle: bool) -> None:
        """The task's run folders (a worker: the disk may be slow)."""
        runs_dir = console(self).base.task_runs_dir(self.task_id)
        self.post_message(self.AttemptsListed(attempts_in(runs_dir), cycle))

    def transcript_of(self, attempt: Attempt) -> Path:
        # The base names a run's transcript (backends/base.py); a stopped
        # run's folder holds it under the same name.
        numbered = console(self).base.transcript_path(self.task_id, attempt.number)
        return numbered.parent.parent / attempt.folder / numbered.name

    def action_earlier_attempt(self) -> None:
        self.list_attempts(cycle=True)

    @on(AttemptsListed)
    def _attempts_listed(self, message: AttemptsListed) -> None:
        self.attempts = message.attempts
        if message.cycle:
            self._show_next_attempt()
        self.query_one("#run-title", Static).update(self._title())

    def _show_next_attempt(self) -> None:
        attempts = self.attempts
        others = [a for a in attempts if a != self.attempt]
        if not others:
            self.notify(f"{self.task_id} has no other attempt to show.", timeout=3, markup=False)
            return
        # The one after the shown one, newest first, round to the newest.
        position = next((n for n, a in enumerate(attempts) if a == self.attempt), -1)
        chosen = attempts[(position + 1) % len(attempts)]
        self.attempt = chosen
        self.transcript_path = self.transcript_of(chosen)
        self.query_one(TranscriptView).open(self.transcript_path)
        self.action_tab("transcript")

    # --- task keys --------------------------------------------------------------------

    def action_command(self, command: str) -> None:
        self.post_message(TaskCommand(self.task_id, Command(command)))

    def action_shell(self) -> None:
        self.action_command(Command.SHELL)

    def action_editor(self) -> None:
        self.action_command(Command.EDITOR)
