"""The Artifacts screens: a living document (``enter`` in the Artifacts
pane: rendered as markdown, or as plain text when it is too big to render
quickly), a document's history (``h``: the commits that changed it, newest
first, and the selected version's diff), and a run's file (``enter`` on a
file under a run: read a window at a time, compressed raw output
included).

Everything is read through the session in workers; names, titles and the
files' text are shown literally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from factory_tui.artifacts_model import DocumentInfo, DocumentVersion, RunFile, RunRecord, size_text
from factory_tui.context import console
from factory_tui.errors import FactoryError
from factory_tui.keys import bindings
from factory_tui.screens.editor import edit_file
from factory_tui.text import literal
from factory_tui.times import full_moment, moment
from factory_tui.widgets.diff_view import PatchView
from factory_tui.widgets.footer import ConsoleFooter
from factory_tui.widgets.run_file_view import RunFileView
from factory_tui.widgets.styles import palette
from factory_tui.widgets.task_body import TaskBody
from factory_tui.widgets.virtual_list import Cell, Column, RowList, header_text, layout_columns, render_cells

if TYPE_CHECKING:
    from factory_tui.backends.run_reader import RunFileReader


def edit_document(where, name: str, *, after=None) -> None:
    """$EDITOR on a living document; the console suspends until it exits."""
    edit_file(where, lambda session: session.document_path(name), after=after)


def document_facts(info: DocumentInfo | None) -> str:
    """The line under a document's title: how it goes into prompts and what
    the log knows of it."""
    if info is None:
        return ""
    parts = [f"include: {info.include.value}"]
    if info.when:
        parts.append("when: " + ", ".join(info.when))
    if info.budget:
        parts.append(f"budget {size_text(info.budget)}")
    parts.append(size_text(info.size))
    parts.append(f"read by {info.prompts} prompt{'s' if info.prompts != 1 else ''}")
    if info.updated:
        parts.append(f"changed {full_moment(info.updated)}")
    if info.stale:
        parts.append(f"stale: {info.landings_since} landings since it changed")
    if info.generated:
        parts.append("written by the factory (edits are lost)")
    if info.problem:
        parts.append(f"left out of prompts: {info.problem}")
    return " · ".join(parts)


class DocumentScreen(Screen):
    """One living document, rendered."""

    BINDINGS = bindings("screen.back", "artifacts.edit", "artifacts.history")

    @dataclass
    class Loaded(Message):
        text: str
        info: DocumentInfo | None

    def __init__(self, name: str) -> None:
        super().__init__()
        self.document = name
        self.loaded = False

    def compose(self) -> ComposeResult:
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f" {literal(self.document)}", style="bold")
        title.append(f"   .factory/artifacts/{literal(self.document)}", style="dim")
        yield Static(title, id="document-title")
        yield Static("", id="document-facts", markup=False)
        yield TaskBody(id="document-body")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="document", exit_on_error=False)
    def load(self) -> None:
        session = console(self).session
        try:
            text = session.document_body(self.document)
        except FactoryError as error:
            text = f"({error})"
        info = next((item for item in session.documents() if item.name == self.document), None)
        self.post_message(self.Loaded(text, info))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.query_one("#document-facts", Static).update(literal(document_facts(message.info)))
        self.query_one(TaskBody).show(message.text)
        self.loaded = True

    def action_edit_document(self) -> None:
        edit_document(self, self.document, after=self.load)

    def action_document_history(self) -> None:
        self.app.push_screen(DocumentHistoryScreen(self.document))


VERSION_COLUMNS = (
    Column("commit", "COMMIT", 9),
    Column("when", "WHEN", 10, right=True),
    Column("subject", "WHAT", grow=1, least=10),
    Column("author", "BY", 14, drop=1),
)


class VersionTable(RowList[DocumentVersion]):
    """A document's versions, newest first; the screen shows the diff of
    the one under the cursor."""

    class Chosen(Message):
        def __init__(self, version: DocumentVersion) -> None:
            super().__init__()
            self.version = version

    def __init__(self, *, now: float = 0.0, id: str | None = None) -> None:
        super().__init__(id=id)
        self.now = now

    def row_key(self, row: DocumentVersion) -> str:
        return row.commit

    def empty_text(self) -> str:
        if not self.loaded:
            return "Reading the history…"
        return "Never committed: the history starts with its first commit."

    def render_header(self, width: int) -> str:
        return header_text(layout_columns(VERSION_COLUMNS, width, 10))

    def row_cache_key(self, index: int):
        return self.rows[index]

    def render_row(self, index: int, width: int) -> list[Segment]:
        version = self.rows[index]
        colours = palette(self)
        cells: dict[str, Cell] = {
            "commit": (version.commit[:9], colours.ident),
            "when": (moment(version.at, self.now or version.at), colours.muted),
            "subject": (literal(version.subject), None),
            "author": (literal(version.author), colours.muted),
        }
        return render_cells(layout_columns(VERSION_COLUMNS, width, 10), cells)

    def watch_cursor(self, old: int, new: int) -> None:
        super().watch_cursor(old, new)
        if self.rows and new < len(self.rows):
            self.post_message(self.Chosen(self.rows[new]))


class DocumentHistoryScreen(Screen):
    """The commits that changed a document, and one version's diff."""

    BINDINGS = bindings("screen.back", "artifacts.edit")

    @dataclass
    class Listed(Message):
        versions: list[DocumentVersion]
        error: str | None = None

    @dataclass
    class DiffRead(Message):
        commit: str
        patch: str

    def __init__(self, name: str) -> None:
        super().__init__()
        self.document = name
        self.shown_commit: str | None = None

    def compose(self) -> ComposeResult:
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f" History of {literal(self.document)}", style="bold")
        title.append("   j/k choose a version; its diff is on the right", style="dim")
        yield Static(title, id="history-title")
        with Horizontal(id="history-main"):
            yield VersionTable(now=console(self).clock(), id="history-versions")
            with Vertical(id="history-diff-box"):
                yield PatchView(id="history-diff")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one("#history-versions").border_title = "Versions"
        self.query_one("#history-diff-box").border_title = "Diff"
        self.query_one(PatchView).show_placeholder("Choose a version.")
        self.query_one(VersionTable).focus()
        self.list_versions()

    @work(thread=True, exclusive=True, group="document-history", exit_on_error=False)
    def list_versions(self) -> None:
        try:
            versions = console(self).session.document_history(self.document)
        except FactoryError as error:
            self.post_message(self.Listed([], str(error)))
            return
        self.post_message(self.Listed(versions))

    @on(Listed)
    def _listed(self, message: Listed) -> None:
        table = self.query_one(VersionTable)
        table.replace_rows(message.versions)
        if message.error:
            self.notify(literal(message.error), severity="error", markup=False)
        if message.versions:
            self.read_diff(message.versions[0].commit)
        else:
            self.query_one(PatchView).show_placeholder(table.empty_text())

    @on(VersionTable.Chosen)
    def _chosen(self, message: VersionTable.Chosen) -> None:
        if message.version.commit != self.shown_commit:
            self.read_diff(message.version.commit)

    @work(thread=True, exclusive=True, group="document-diff", exit_on_error=False)
    def read_diff(self, commit: str) -> None:
        try:
            patch = console(self).session.document_diff(self.document, commit)
        except FactoryError as error:
            patch = f"({error})"
        self.post_message(self.DiffRead(commit, patch))

    @on(DiffRead)
    def _diff_read(self, message: DiffRead) -> None:
        self.shown_commit = message.commit
        self.query_one(PatchView).set_patch(message.patch)

    def action_edit_document(self) -> None:
        edit_document(self, self.document, after=self.list_versions)


class RunFileScreen(Screen):
    """One file a run kept, a window at a time."""

    BINDINGS = bindings("screen.back")

    @dataclass
    class Opened(Message):
        reader: RunFileReader | None
        error: str | None = None

    def __init__(self, run: RunRecord, file: RunFile) -> None:
        super().__init__()
        self.run = run
        self.file = file

    def compose(self) -> ComposeResult:
        run, file = self.run, self.file
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(f" {run.task_id} attempt {run.attempt}: {literal(file.name)}", style="bold")
        title.append(f"   {file.kind}, {size_text(file.size)}, {file.state}", style="dim")
        yield Static(title, id="run-file-title")
        yield Static("Opening the file…", id="run-file-note", markup=False)
        yield RunFileView(id="run-file-view")
        yield ConsoleFooter()

    def on_mount(self) -> None:
        self.query_one(RunFileView).focus()
        self.open_file()

    @work(thread=True, exclusive=True, group="run-file", exit_on_error=False)
    def open_file(self) -> None:
        run = self.run
        try:
            reader = console(self).session.open_run_file(run.task_id, run.attempt, self.file.name, folder=run.folder or None)
        except FactoryError as error:
            self.post_message(self.Opened(None, str(error)))
            return
        self.post_message(self.Opened(reader))

    @on(Opened)
    def _opened(self, message: Opened) -> None:
        note = self.query_one("#run-file-note", Static)
        if message.reader is None:
            note.update(literal(message.error or "cannot open the file"))
            return
        if not self.is_attached:
            message.reader.close()
            return
        reader = message.reader
        lines = reader.line_count()
        facts = f"{lines:,} line{'s' if lines != 1 else ''}"
        if reader.compressed:
            facts += ", read from its compressed copy"
        if reader.problem:
            facts += f"; {reader.problem}"
        note.update(literal(facts))
        self.query_one(RunFileView).show(reader)
