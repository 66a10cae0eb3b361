"""The Artifacts pane (3): the living documents of ``.factory/artifacts/``
(a mark, name, title, how many prompts read it, when it changed, its size;
stale ones say how many landings ago), and below them the runs of the task
under the Plan's cursor: how each run ended, what it cost, changed and
read, and the files it kept.

The documents are read through the session in a worker, again when a file
under ``.factory/artifacts/`` changes (panes/folder.py) and when a run starts or a task lands (a prompt read
them; the history grew). The runs are read when the Plan's cursor moves to
another task and when that task changes. ``enter`` renders a document or
opens a run's file, ``e`` edits a document in $EDITOR, ``h`` shows its
history, ``R`` proposes the task that brings the documents up to date;
``tab`` moves between the two lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.worker import get_current_worker

from factory_tui.artifacts_model import DocumentInfo, RunRecord
from factory_tui.context import console
from factory_tui.errors import FactoryError
from factory_tui.keys import bindings
from factory_tui.model import State
from factory_tui.panes.feed import FeedListener
from factory_tui.panes.folder import FollowsFolder
from factory_tui.text import literal
from factory_tui.widgets.artifact_tables import DocumentTable, RunFileTable

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes, Snapshot

# A task reaching these states changes what the documents list says: a run
# started (its prompt read them) or a task landed (the history grew, the
# documents aged).
DOCUMENT_STATES = frozenset({State.RUNNING, State.DONE})


class PaneDocuments(DocumentTable):
    BINDINGS = bindings("artifacts.open", "artifacts.edit", "artifacts.history", "artifacts.refresh")

    def _document(self) -> DocumentInfo | None:
        row = self.selected_row
        if row is None:
            self.notify("No document under the cursor.", severity="warning", timeout=3)
        return row

    def action_open_artifact(self) -> None:
        if (row := self._document()) is not None:
            from factory_tui.screens.artifacts import DocumentScreen

            self.app.push_screen(DocumentScreen(row.name))

    def on_double_click(self) -> None:
        self.action_open_artifact()

    def action_edit_document(self) -> None:
        if (row := self._document()) is not None:
            if row.generated:
                self.notify(literal(f"{row.name} is written by the factory: edits would be lost."),
                            severity="warning", timeout=5, markup=False)
                return
            from factory_tui.screens.artifacts import edit_document

            edit_document(self, row.name, after=self._pane().load_documents)

    def action_document_history(self) -> None:
        if (row := self._document()) is not None:
            from factory_tui.screens.artifacts import DocumentHistoryScreen

            self.app.push_screen(DocumentHistoryScreen(row.name))

    def action_refresh_documents(self) -> None:
        self._pane().propose_refresh()

    def _pane(self) -> ArtifactsPane:
        return self.query_ancestor(ArtifactsPane)


class PaneRunFiles(RunFileTable):
    BINDINGS = bindings("artifacts.open", "artifacts.refresh")

    def action_open_artifact(self) -> None:
        row = self.selected_row
        if row is None or row.file is None:
            self.notify("No run file under the cursor.", severity="warning", timeout=3)
            return
        from factory_tui.screens.artifacts import RunFileScreen

        self.app.push_screen(RunFileScreen(row.run, row.file))

    def on_double_click(self) -> None:
        self.action_open_artifact()

    def action_refresh_documents(self) -> None:
        self.query_ancestor(ArtifactsPane).propose_refresh()


class ArtifactsPane(FollowsFolder, Vertical, FeedListener):
    DEFAULT_CSS = """
    ArtifactsPane > PaneDocuments { height: 1fr; }
    ArtifactsPane > PaneRunFiles { height: 1fr; }
    """

    @dataclass
    class DocumentsLoaded(Message):
        documents: list[DocumentInfo]

    @dataclass
    class RunsLoaded(Message):
        task_id: str | None
        runs: list[RunRecord]


    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.task_id: str | None = None

    def compose(self) -> ComposeResult:
        yield PaneDocuments(now=0.0, id="artifacts-documents")
        yield PaneRunFiles(id="artifacts-runs")

    @property
    def documents(self) -> PaneDocuments:
        return self.query_one(PaneDocuments)

    @property
    def runs(self) -> PaneRunFiles:
        return self.query_one(PaneRunFiles)

    def focus(self, scroll_visible: bool = True) -> ArtifactsPane:
        # The pane's number key lands on the documents; tab goes on to the runs.
        self.documents.focus(scroll_visible)
        return self

    def on_mount(self) -> None:
        self.documents.now = console(self).clock()
        self.follow_folder(console(self).session.base.artifacts_dir)

    def on_unmount(self) -> None:
        self.stop_following()

    # --- from the log, the Plan's cursor and the files --------------------------------

    def log_loaded(self, snapshot: Snapshot) -> None:
        # After the first frame (the plan, the log, the worktrees): read
        # beside it, the documents would take its turns at Python.
        self.call_after_refresh(self.load_documents)

    def log_changed(self, changes: Changes) -> None:
        if any(task.state in DOCUMENT_STATES for task in changes.tasks):
            self.load_documents()
        if self.task_id is not None and (
            any(task.id == self.task_id for task in changes.tasks)
            or any(event.task_id == self.task_id for event in changes.events)
        ):
            self.load_runs(self.task_id)

    def task_highlighted(self, task_id: str | None) -> None:
        self.task_id = task_id
        self.load_runs(task_id)

    def folder_changed(self) -> None:
        self.load_documents()

    @work(thread=True, exclusive=True, group="artifacts-documents", exit_on_error=False)
    def load_documents(self) -> None:
        found = console(self).session.documents()
        if not get_current_worker().is_cancelled:  # a newer read is under way
            self.post_message(self.DocumentsLoaded(found))

    @on(DocumentsLoaded)
    def _documents_loaded(self, message: DocumentsLoaded) -> None:
        self.documents.now = console(self).clock()
        self.documents.replace_rows(message.documents)

    @work(thread=True, exclusive=True, group="artifacts-runs", exit_on_error=False)
    def load_runs(self, task_id: str | None) -> None:
        runs = console(self).session.runs_of(task_id) if task_id is not None else []
        if not get_current_worker().is_cancelled:
            self.post_message(self.RunsLoaded(task_id, runs))

    @on(RunsLoaded)
    def _runs_loaded(self, message: RunsLoaded) -> None:
        if message.task_id == self.task_id:
            self.runs.show_runs(message.task_id, message.runs)

    # --- the refresh task ---------------------------------------------------------------

    @work(thread=True, group="artifacts-refresh", exit_on_error=False)
    def propose_refresh(self) -> None:
        context = console(self)
        try:
            refresh = context.session.propose_refresh(actor=context.actor)
        except FactoryError as error:
            self.notify(literal(str(error)), severity="warning", timeout=6, markup=False)
            return
        task = refresh.task
        if refresh.created:
            said = f"Proposed {task.id}: {task.title}. Approve it in the Plan to run it."
        else:
            said = f"{task.id} already brings the documents up to date ({task.state.value}): no second one."
        self.notify(literal(said), timeout=6, markup=False)
