"""The QA screens: a scenario (``enter`` in the QA pane: its file, as
markdown, and its history, newest run first), one QA run (``enter`` on a
run: its output log, or a judge's prompt and answers, each virtual and
searchable like a transcript), and the small new-scenario dialog.

Everything is read through the session in workers; the files are shown
literally.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static, TabbedContent, TabPane

from factory_tui.context import console
from factory_tui.errors import FactoryError
from factory_tui.keys import bindings
from factory_tui.qa_model import QaKind
from factory_tui.screens.dialogs import FormDialog
from factory_tui.screens.editor import edit_file
from factory_tui.text import literal
from factory_tui.widgets.qa_table import QaRunTable
from factory_tui.widgets.transcript import TranscriptPane

if TYPE_CHECKING:
    from factory_tui.backends.qa_log import QaRun


class QaRunTableOnScreen(QaRunTable):
    BINDINGS = bindings("qa.open", "qa.run")

    def __init__(self, scenario: str, *, now: float = 0.0, id: str | None = None) -> None:
        super().__init__(now=now, id=id)
        self.scenario = scenario

    def action_run_qa(self) -> None:
        """This scenario again, on the task of the run under the cursor (on
        its branch head now), or on the base branch for a run without one."""
        run = self.selected_run
        task_id = run.task_id if run is not None else None
        screen = self.screen
        run_qa_for(self, task_id, (self.scenario,), after=screen.load if isinstance(screen, ScenarioScreen) else None)

    def action_open_scenario(self) -> None:
        run = self.selected_run
        if run is None:
            self.notify("No run under the cursor.", severity="warning", timeout=3)
            return
        self.app.push_screen(QaRunScreen(run))

    def on_double_click(self) -> None:
        self.action_open_scenario()


class ScenarioScreen(Screen):
    """One scenario: its file and its runs."""

    BINDINGS = bindings("screen.back", "qa.edit")

    @dataclass
    class Loaded(Message):
        text: str
        runs: list[QaRun]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.scenario = name
        self.loaded = False

    def compose(self) -> ComposeResult:
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f" {literal(self.scenario)}", style="bold")
        title.append(f"   .factory/qa/{literal(self.scenario)}.md", style="dim")
        yield Static(title, id="qa-title")
        with Horizontal(id="qa-main"):
            yield VerticalScroll(Static("", id="qa-file"), id="qa-file-box", classes="task-box")
            yield QaRunTableOnScreen(self.scenario, now=console(self).clock(), id="qa-runs")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#qa-file-box").border_title = "File"
        self.query_one("#qa-runs").border_title = "History (newest first; enter opens a run, Q runs it again)"
        self.query_one(QaRunTable).focus()
        self.load()

    @work(thread=True, exclusive=True, group="qa-scenario", exit_on_error=False)
    def load(self) -> None:
        session = console(self).session
        try:
            text = session.scenario_text(self.scenario)
        except FactoryError as error:
            text = f"({error})"
        self.post_message(self.Loaded(text, session.qa_runs_of(self.scenario)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        # Syntax shows the text as it is: nothing in it is read as markup.
        self.query_one("#qa-file", Static).update(scenario_file_view(message.text))
        self.query_one(QaRunTable).set_runs(message.runs)
        self.loaded = True

    def action_edit_scenario(self) -> None:
        edit_scenario(self, self.scenario, after=self.load)


class QaRunScreen(Screen):
    """One QA run: what it found, and the files it kept."""

    BINDINGS = bindings("screen.back")

    @dataclass
    class FilesFound(Message):
        files: list[Path]

    def __init__(self, run: QaRun) -> None:
        super().__init__()
        self.run = run
        self.files: list[Path] | None = None

    def compose(self) -> ComposeResult:
        result = self.run.result
        title = Text(no_wrap=False)
        title.append(f" {literal(result.scenario)}  ", style="bold")
        title.append(str(result.verdict), style="bold")
        title.append(f"   {result.kind} · {result.gate} · task {self.run.task_id or '—'} · commit {result.commit[:8] or '—'}"
                     f" · {result.duration:.1f}s", style="dim")
        if result.reason:
            title.append("\n ")
            title.append(literal(result.reason))
        yield Static(title, id="qa-run-title")
        yield Vertical(Static("Reading the run's folder…", id="qa-run-empty"), id="qa-run-body")
        yield Footer()

    def on_mount(self) -> None:
        self.find_files()

    @work(thread=True, exclusive=True, group="qa-run-files", exit_on_error=False)
    def find_files(self) -> None:
        self.post_message(self.FilesFound(console(self).session.qa_output_files(self.run)))

    @on(FilesFound)
    async def _files_found(self, message: FilesFound) -> None:
        self.files = message.files
        body = self.query_one("#qa-run-body", Vertical)
        if not message.files:
            self.query_one("#qa-run-empty", Static).update("This run kept no output.")
            return
        await body.remove_children()
        tabs = TabbedContent(id="qa-run-tabs")
        await body.mount(tabs)
        for n, path in enumerate(message.files):
            await tabs.add_pane(TabPane(literal(path.name), TranscriptPane(path, id=f"qa-file-{n}"), id=f"qa-tab-{n}"))
        tabs.query(TranscriptPane).first().view.focus()


class NewScenarioDialog(FormDialog[Path | None]):
    """A name and a kind; the file is written from the template through the
    session, in a worker; the dialog stays open with what was typed when
    the session refuses (a name that exists)."""

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog new-scenario"):
            yield Static("New QA scenario", classes="dialog-title")
            yield Label("Name (the file is .factory/qa/NAME.md)")
            yield Input(id="scenario-name", placeholder="login-works")
            yield Label("Kind")
            yield Select([(kind.value, kind.value) for kind in QaKind], value=QaKind.TEST.value,
                         allow_blank=False, id="scenario-kind")
            yield Static("", id="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create (ctrl+s)", id="create", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#scenario-name", Input).focus()

    @on(Input.Submitted, "#scenario-name")
    @on(Button.Pressed, "#create")
    def action_submit(self) -> None:
        name = self.query_one("#scenario-name", Input).value.strip()
        kind = QaKind(str(self.query_one("#scenario-kind", Select).value))
        if not name:
            self.show_error("a scenario needs a name")
            return
        self.create(name, kind)

    @work(thread=True, exclusive=True, group="qa-new", exit_on_error=False)
    def create(self, name: str, kind: QaKind) -> None:
        try:
            path = console(self).session.new_scenario(name, kind)
        except FactoryError as error:
            self.app.call_from_thread(self.show_error, str(error))
            self.notify(literal(str(error)), severity="error", timeout=5, markup=False)
            return
        self.app.call_from_thread(self.dismiss, path)


def edit_scenario(where, name: str, *, after=None) -> None:
    """$EDITOR on the scenario's file; the console suspends until it exits."""
    edit_file(where, lambda session: session.scenario_path(name), after=after)


def run_qa_for(where, task_id: str | None, names: tuple[str, ...] = (), *, after=None) -> None:
    """Run QA now in a worker through the session, and say the verdicts
    when done: the scenarios ``names`` (else all that apply) on the task's
    branch head, or on the base branch's head when ``task_id`` is None.
    ``after`` is called (on the event loop) once the runs are recorded."""
    on_what = task_id or "the base branch"
    what = f"{', '.join(names)} on {on_what}" if names else f"QA for {on_what}"
    where.notify(literal(f"Running {what}…"), timeout=3, markup=False)

    def run() -> None:
        context = console(where)
        try:
            results = context.session.run_qa(task_id, names, actor=context.actor).results
        except FactoryError as error:
            where.notify(literal(str(error)), severity="error", timeout=6, markup=False)
            return
        if after is not None:
            where.app.call_from_thread(after)
        if not results:
            where.notify(f"{on_what}: no QA scenario applies.", timeout=5, markup=False)
            return
        said = ", ".join(f"{result.scenario} {result.verdict}" for result in results)
        blocked = any(result.blocks for result in results)
        where.notify(literal(f"{on_what} QA: {said}"), severity="error" if blocked else "information",
                     timeout=8, markup=False)

    where.run_worker(run, thread=True, group="qa-run", exit_on_error=False)


def scenario_file_view(text: str) -> Group | Syntax:
    """A scenario file as it is: its front matter as YAML and its body as
    markdown (read as one markdown text, the front matter's closing ``---``
    would make its last line a heading)."""
    def shown(part: str, lexer: str) -> Syntax:
        return Syntax(part, lexer, word_wrap=True, theme="ansi_dark", background_color="default")

    lines = text.splitlines(keepends=True)
    if lines and lines[0].strip() == "---":
        end = next((n for n in range(1, len(lines)) if lines[n].strip() == "---"), None)
        if end is not None:
            return Group(shown("".join(lines[: end + 1]).rstrip("\n"), "yaml"),
                         shown("".join(lines[end + 1:]).rstrip("\n"), "markdown"))
    return shown(text, "markdown")
