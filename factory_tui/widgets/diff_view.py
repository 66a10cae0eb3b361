"""The diff on the run screen: the files a task changed on the left, the
selected file's patch on the right, with keys for the next and previous
file (``]``/``[``) and hunk (``}``/``{``).

A long line of the patch is wrapped to the view's width, never cut: the
patch is laid out in a thread (``wrap_rows``, as a large task body is) and
drawn a screenful at a time, so a lockfile's patch costs the rows on
screen. The rows where each ``@@`` hunk begins come with the layout, so the
hunk keys scroll straight to them. A wrapped line's further rows carry a
``↪`` in the gutter, so they are not taken for lines of their own.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from factory_tui.keys import bindings
from factory_tui.model import FileDiff
from factory_tui.text import literal
from factory_tui.widgets.task_body import wrap_rows
from factory_tui.widgets.virtual_list import VirtualList, fit

ADDED = Style(color="#98c379")
REMOVED = Style(color="#e06c75")
HUNK = Style(color="#56b6c2", bold=True)
HEADER = Style(bold=True)
NOTE = Style(dim=True, italic=True)
CONTINUED = Style(dim=True)
# The gutter: a line's first row, and the rows a long line wraps onto.
FIRST_ROW, NEXT_ROW = " ", "↪"

NO_TEXT_CHANGES = "(no text changes: a binary file, or only a mode change)"


def hunk_rows(text: str, starts: array) -> array:
    """The rows (of a layout's ``starts``) where an ``@@`` hunk header begins."""
    rows = array("q")
    for row, start in enumerate(starts):
        if text.startswith("@@", start) and (start == 0 or text[start - 1] == "\n"):
            rows.append(row)
    return rows


def body_start(text: str) -> int:
    """Where a file's patch leaves its header for its first hunk."""
    if text.startswith("@@"):
        return 0
    found = text.find("\n@@")
    return found + 1 if found >= 0 else len(text)


class DiffFiles(OptionList):
    """The changed files; ``j``/``k`` move as in every list."""

    BINDINGS = bindings("list.up", "list.down", "list.page-up", "list.page-down", "list.first", "list.last")


class PatchView(VirtualList):
    """One file's patch, wrapped to the view's width, a screenful at a time."""

    header_lines = 0

    class Laid(Message):
        """A patch laid out for a width in a thread."""

        def __init__(self, view: PatchView, text: str, width: int, starts: array, ends: array, hunks: array) -> None:
            super().__init__()
            self.view = view
            self.text = text
            self.width = width
            self.starts = starts
            self.ends = ends
            self.hunks = hunks

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = ""
        self.placeholder = "Loading the diff…"
        self.laid_width = 0
        self._starts = array("q")
        self._ends = array("q")
        self.hunks = array("q")
        # Lines before the first hunk are the file's header (diff --git,
        # index, ---, +++): a "---" below it is a removed line, not a header.
        self._body_from = 0

    # --- the text ------------------------------------------------------------

    def set_patch(self, patch: str) -> None:
        """Show ``patch`` (raw: made literal here) from its first line."""
        self.text = literal(patch, multiline=True) if patch else NO_TEXT_CHANGES
        self._body_from = body_start(self.text)
        self._starts, self._ends, self.hunks = array("q"), array("q"), array("q")
        self.laid_width = 0
        self.cursor = 0
        self.scroll_to(y=0, animate=False, immediate=True)
        self.rows_changed()
        self._lay_out()

    def show_placeholder(self, text: str) -> None:
        """No patch to show: say why (loading, no changes)."""
        self.placeholder = text
        self.text = ""
        self._starts, self._ends, self.hunks = array("q"), array("q"), array("q")
        self.laid_width = 0
        self.rows_changed()

    def _row_width(self) -> int:
        # The gutter takes a column.
        return max(10, self.scrollable_content_region.width - 1)

    def _lay_out(self) -> None:
        if self.text and self.size.width:
            self.lay_out(self.text, self._row_width())

    @work(thread=True, exclusive=True, group="patch-layout", exit_on_error=False)
    def lay_out(self, text: str, width: int) -> None:
        worker = get_current_worker()
        starts, ends = wrap_rows(text, width, cancelled=lambda: worker.is_cancelled)
        if worker.is_cancelled:
            return
        self.post_message(self.Laid(self, text, width, starts, ends, hunk_rows(text, starts)))

    @on(Laid)
    def _laid(self, message: Laid) -> None:
        message.stop()
        if message.view is not self or message.text is not self.text:
            return  # an older patch's layout
        # Keep the cursor on the same text across a new width.
        offset = self._starts[self.cursor] if self.cursor < len(self._starts) else 0
        self._starts, self._ends, self.hunks = message.starts, message.ends, message.hunks
        self.laid_width = message.width
        self.rows_changed()
        if offset:
            self.cursor = max(0, bisect_right(self._starts, offset) - 1)

    def on_resize(self, event) -> None:
        super().on_resize(event)
        if self.text and self._row_width() != self.laid_width:
            self._lay_out()

    @property
    def laid_out(self) -> bool:
        return bool(self.text) and self.laid_width > 0

    # --- hunks ----------------------------------------------------------------

    def next_hunk(self) -> bool:
        """Scroll to the hunk after the cursor's row; False if there is none."""
        index = bisect_right(self.hunks, self.cursor)
        if index >= len(self.hunks):
            return False
        self._show_row_at_top(self.hunks[index])
        return True

    def previous_hunk(self) -> bool:
        index = bisect_left(self.hunks, self.cursor) - 1
        if index < 0:
            return False
        self._show_row_at_top(self.hunks[index])
        return True

    def _show_row_at_top(self, row: int) -> None:
        self.cursor = row
        self.scroll_to(y=row, animate=False, immediate=True)

    # --- drawing ------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._starts)

    def empty_text(self) -> str:
        return "Laying out the patch…" if self.text else self.placeholder

    def line_start(self, row: int) -> int:
        start = self._starts[row]
        return self.text.rfind("\n", 0, start) + 1

    def row_text(self, row: int) -> str:
        return self.text[self._starts[row]:self._ends[row]]

    def _style(self, line_start: int) -> Style | None:
        text = self.text
        if text is NO_TEXT_CHANGES:
            return NOTE
        if text.startswith("@@", line_start):
            return HUNK
        if line_start < self._body_from:
            return HEADER
        first = text[line_start:line_start + 1]
        if first == "+":
            return ADDED
        if first == "-":
            return REMOVED
        if first == "\\":
            return NOTE  # "\ No newline at end of file"
        return None

    def render_row(self, index: int, width: int) -> list[Segment]:
        start = self._starts[index]
        line_start = self.line_start(index)
        style = self._style(line_start)
        gutter = Segment(FIRST_ROW if start == line_start else NEXT_ROW, CONTINUED)
        return [gutter, Segment(fit(self.row_text(index), max(0, width - 1)), style)]


class DiffView(Horizontal):
    """Files changed on the left; the selected file's patch on the right."""

    BINDINGS = bindings("diff.next-file", "diff.previous-file", "diff.next-hunk", "diff.previous-hunk")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.files: list[FileDiff] = []
        self.shown: int | None = None

    def compose(self) -> ComposeResult:
        yield DiffFiles(id="diff-files")
        yield PatchView(id="diff-patch")

    @property
    def file_list(self) -> DiffFiles:
        return self.query_one(DiffFiles)

    @property
    def patch(self) -> PatchView:
        return self.query_one(PatchView)

    def show(self, files: list[FileDiff]) -> None:
        """Show ``files``; read again, the file shown stays shown (and where
        it was scrolled to, if its patch is the same)."""
        before = self.files[self.shown] if self.shown is not None and self.shown < len(self.files) else None
        self.files = files
        self.shown = None
        options = self.file_list
        options.clear_options()
        if not files:
            self.patch.show_placeholder("No changes against the base branch yet.")
            return
        for diff in files:
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(f"+{diff.added}", style="#98c379")
            label.append(f" −{diff.removed} ", style="#e06c75")
            label.append(literal(diff.path))
            if diff.status != "modified":
                label.append(f" ({diff.status})", style="dim")
            options.add_option(Option(label))
        index = next((n for n, diff in enumerate(files) if before and diff.path == before.path), 0)
        if before is not None and files[index].path == before.path and files[index].patch == before.patch:
            self.shown = index  # the same patch: leave it where it is
        options.highlighted = index
        self._show_file(index)

    @on(OptionList.OptionHighlighted, "#diff-files")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_file(event.option_index)

    def _show_file(self, index: int) -> None:
        if not 0 <= index < len(self.files) or index == self.shown:
            return
        self.shown = index
        self.patch.set_patch(self.files[index].patch)

    # --- keys -----------------------------------------------------------------

    def action_next_file(self) -> None:
        self._move_file(+1)

    def action_previous_file(self) -> None:
        self._move_file(-1)

    def _move_file(self, step: int) -> None:
        options = self.file_list
        if not self.files:
            return
        current = options.highlighted if options.highlighted is not None else 0
        target = current + step
        if not 0 <= target < len(self.files):
            self.app.bell()
            return
        options.highlighted = target
        # Shown at once, not on the highlight message: a key pressed right
        # after moves in this file.
        self._show_file(target)

    def action_next_hunk(self) -> None:
        if not self.patch.next_hunk():
            self.app.bell()

    def action_previous_hunk(self) -> None:
        if not self.patch.previous_hunk():
            self.app.bell()
