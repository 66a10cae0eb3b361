"""The Artifacts pane's two lists: the living documents (a mark, name,
title, how many prompts included it, when it last changed, its size) and
the runs of the task under the Plan's cursor (a line per run with how it
ended, what it cost and changed, then a row per file it kept).

They are handed records (artifacts_model) and never read the log or the
files themselves; the pane feeds them. Names and titles are text from
outside, drawn literally.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style

from factory_tui.artifacts_model import DocumentInfo, Include, RunFile, RunRecord, size_text
from factory_tui.text import literal
from factory_tui.times import moment
from factory_tui.widgets.figures import money, token_count
from factory_tui.widgets.styles import palette
from factory_tui.widgets.virtual_list import Cell, Column, RowList, header_text, layout_columns, render_cells

# A document's mark: why it needs a look, else how it goes into prompts.
PROBLEM_MARK = "!"
STALE_MARK = "◷"
GENERATED_MARK = "⚙"
NEVER_MARK = "⊘"
WHEN_MARK = "?"

DOCUMENT_COLUMNS = (
    Column("mark", "", 1),
    Column("name", "DOCUMENT", 18, drop=2),
    Column("title", "TITLE", grow=1, least=12),
    Column("prompts", "READ", 5, right=True, drop=3),
    Column("updated", "UPDATED", 9, right=True, drop=1),
    Column("size", "SIZE", 7, right=True, drop=4),
)


def document_mark(document: DocumentInfo) -> str:
    if document.problem:
        return PROBLEM_MARK
    if document.stale:
        return STALE_MARK
    if document.generated:
        return GENERATED_MARK
    if document.include is Include.NEVER:
        return NEVER_MARK
    if document.include is Include.WHEN:
        return WHEN_MARK
    return " "


class DocumentTable(RowList[DocumentInfo]):
    """The living documents, in name order (the generated ones last)."""

    def __init__(self, *, now: float = 0.0, id: str | None = None) -> None:
        super().__init__(id=id)
        self.now = now

    def row_key(self, row: DocumentInfo) -> str:
        return row.name

    def order(self, rows: list[DocumentInfo]) -> list[DocumentInfo]:
        return sorted(rows, key=lambda row: (row.generated, row.name))

    def empty_text(self) -> str:
        if not self.loaded:
            return "Reading the living documents…"
        return ("No living documents yet: write markdown files in .factory/artifacts/ "
                "(`factory init` starts some).")

    def render_header(self, width: int) -> str:
        return header_text(layout_columns(DOCUMENT_COLUMNS, width, 12))

    def row_cache_key(self, index: int):
        return self.rows[index]

    def render_row(self, index: int, width: int) -> list[Segment]:
        document = self.rows[index]
        colours = palette(self)
        layout = layout_columns(DOCUMENT_COLUMNS, width, 12)
        mark = document_mark(document)
        mark_style = colours.problem if document.problem else colours.blocked if document.stale else colours.muted
        title: Cell = (literal(document.title), None)
        if document.problem:
            title = [(literal(document.title), None), (f"  {literal(document.problem)}", colours.problem)]
        elif document.stale:
            title = [(literal(document.title), None),
                     (f"  stale: {document.landings_since} landings since it changed", colours.blocked)]
        now = self.now or document.updated or 0.0
        cells: dict[str, Cell] = {
            "mark": (mark, mark_style),
            "name": (literal(document.name), colours.ident),
            "title": title,
            "prompts": (str(document.prompts), colours.muted),
            "updated": (moment(document.updated, now) if document.updated else "new", colours.muted),
            "size": (size_text(document.size), colours.muted),
        }
        return render_cells(layout, cells)


@dataclass(frozen=True, slots=True)
class RunRow:
    """A line of the runs list: a run's summary (``file`` None; the cursor
    passes over it) or one of its files."""

    run: RunRecord
    file: RunFile | None = None

    @property
    def key(self) -> tuple[str, int, str | None]:
        return (self.run.task_id, self.run.attempt, self.file.name if self.file else None)


def run_rows(runs: list[RunRecord]) -> list[RunRow]:
    """The newest run first, each followed by its files."""
    rows: list[RunRow] = []
    for run in sorted(runs, key=lambda run: run.attempt, reverse=True):
        rows.append(RunRow(run))
        rows.extend(RunRow(run, file) for file in run.files)
    return rows


def run_summary(run: RunRecord) -> str:
    """``attempt 2 · finished · $0.12 · 14k tokens · 3 files +40 −2``."""
    outcome = run.outcome or ("running" if run.ended_at is None else "ended")
    parts = [f"attempt {run.attempt}", "how it ended is not recorded" if outcome == "unknown" else outcome]
    if run.profile:
        parts.append(run.profile)
    if run.cost_usd:
        parts.append(money(run.cost_usd))
    tokens = (run.input_tokens or 0) + (run.output_tokens or 0)
    if tokens:
        parts.append(f"{token_count(tokens)} tokens")
    if run.diff_summary:
        parts.append(run.diff_summary)
    if run.documents:
        parts.append(f"read {len(run.documents)} document{'s' if len(run.documents) != 1 else ''}")
    return " · ".join(parts)


FILE_COLUMNS = (
    Column("name", "FILE", grow=1, least=12),
    Column("kind", "KIND", 10, drop=2),
    Column("state", "KEPT", 10, drop=1),
    Column("size", "SIZE", 7, right=True),
)
SUMMARY_COLUMNS = (Column("summary", "", grow=1),)


class RunFileTable(RowList[RunRow]):
    """The runs of one task: a summary line per run, then its files."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.task_id: str | None = None

    def show_runs(self, task_id: str | None, runs: list[RunRecord]) -> None:
        moved = task_id != self.task_id
        self.task_id = task_id
        self.replace_rows(run_rows(runs))
        # A task's runs may arrive after it was shown empty (a run indexed
        # later): the cursor then goes to the first file, as on a move,
        # never resting on a run's summary line.
        on_file = bool(self.rows) and 0 <= self.cursor < len(self.rows) and self.is_selectable(self.cursor)
        if moved or not on_file:
            self.cursor = self.nearest_selectable(0, 1) or 0
        if moved:
            self.refresh()  # the header names the task

    def row_key(self, row: RunRow):
        return row.key

    def is_selectable(self, index: int) -> bool:
        return self.rows[index].file is not None

    def empty_text(self) -> str:
        if self.task_id is None:
            return "Move the Plan's cursor to a task to see what its runs read and produced."
        if not self.loaded:
            return f"Reading the runs of {self.task_id}…"
        return f"{self.task_id} has not run yet."

    def render_header(self, width: int) -> str:
        # The first column says whose runs these are: the pane has no room
        # for a title line of its own.
        title = f"RUNS OF {self.task_id}" if self.task_id else "RUNS"
        return header_text(layout_columns(FILE_COLUMNS, width, 12), {"name": title})

    def row_cache_key(self, index: int):
        return self.rows[index]

    def render_row(self, index: int, width: int) -> list[Segment]:
        row = self.rows[index]
        colours = palette(self)
        if row.file is None:
            style = colours.problem if row.run.outcome in ("failed", "timed out", "expired") else Style(bold=True)
            return render_cells(layout_columns(SUMMARY_COLUMNS, width, 12),
                                {"summary": (literal(run_summary(row.run)), style)})
        file = row.file
        state_style = colours.muted if file.state == "kept" else colours.blocked
        cells: dict[str, Cell] = {
            "name": (f"  {literal(file.name)}", None),
            "kind": (file.kind, colours.muted),
            "state": (file.state, state_style),
            "size": (size_text(file.size), colours.muted),
        }
        return render_cells(layout_columns(FILE_COLUMNS, width, 12), cells)
