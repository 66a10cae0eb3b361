"""A task's description on the task screen: markdown when the body is small
enough to render quickly, plain text otherwise.

Textual's Markdown widget mounts a widget per block and lays them all out;
its cost grows faster than the text (an 85 KB body took 14 s, a 1.5 MB one
froze the console for minutes and grew it past 6 GB). So a body is measured in
a worker, markdown is rendered only up to ``MARKDOWN_CHARS`` characters and
``MARKDOWN_BLOCKS`` blocks, and a larger body is shown as plain literal text
in a view that wraps it in a thread and draws only the rows on screen, under
a one-line note saying why. Either way the screen opens at once and its keys
work while the body is being prepared.
"""

from __future__ import annotations

from array import array

from markdown_it import MarkdownIt
from rich.cells import get_character_cell_size
from rich.segment import Segment
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Markdown, Static
from textual.worker import get_current_worker

from factory_tui.text import literal
from factory_tui.widgets.virtual_list import VirtualList, fit

# Markdown is rendered for bodies of at most MARKDOWN_CHARS characters and
# MARKDOWN_BLOCKS blocks (paragraphs, list items, code blocks, headings, table
# cells: what the Markdown widget makes widgets of, counted by parsing with
# the same parser). Found with benchmarks/bench_task_body.py on the 2-core
# development machine (load about 1.5 from other work), timing from asking
# for the task screen to the body drawn, median of 7: the screen with no body
# takes 0.27 s; after that the cost follows the blocks, not the characters.
# Links, bold, lists and code: 15 blocks 0.38 s, 25 blocks 0.44 s, 36 blocks
# 0.69 s, 50 blocks 0.87 s, 93 blocks of lists 1.2 s (393 blocks 3.1 s). One
# paragraph of 16,000 characters took 0.3 s, of 32,000 up to 1.1 s. 30
# blocks and 16,000 characters keep a body at about half a second.
MARKDOWN_CHARS = 16_000
MARKDOWN_BLOCKS = 30
# The parser Textual's Markdown widget uses by default.
_PARSER = "gfm-like"


def too_big_for_markdown(text: str) -> str | None:
    """Why ``text`` is too big to render as markdown quickly, or None."""
    if len(text) > MARKDOWN_CHARS:
        return f"{size_text(len(text))}, over the markdown limit of {MARKDOWN_CHARS:,} characters"
    blocks = sum(
        1 for token in MarkdownIt(_PARSER).parse(text)
        if token.nesting == 1 or token.type in ("fence", "code_block", "hr", "html_block")
    )
    if blocks > MARKDOWN_BLOCKS:
        return f"{blocks:,} blocks, over the markdown limit of {MARKDOWN_BLOCKS}"
    return None


def size_text(characters: int) -> str:
    """``16,001 characters``, ``85 KB``, ``1.5 MB``: a body's size in the note."""
    if characters >= 1_000_000:
        return f"{characters / 1_000_000:.1f} MB"
    if characters >= 100_000:
        return f"{round(characters / 1000)} KB"
    return f"{characters:,} characters"


def wrap_rows(text: str, width: int, *, cancelled=lambda: False) -> tuple[array, array]:
    """Where each screen row of ``text`` starts and ends when its lines are
    wrapped to ``width`` cells: at the last space that fits, else mid-word.
    Offsets, not copies, so a big body costs 16 bytes a row. ``cancelled``
    is asked after each line (a newer width makes this one moot)."""
    width = max(1, width)
    starts, ends = array("q"), array("q")
    position, length = 0, len(text)
    while position <= length:
        newline = text.find("\n", position)
        line_end = length if newline < 0 else newline
        if text[position:line_end].isascii():
            _wrap_ascii(text, position, line_end, width, starts, ends)
        else:
            _wrap_cells(text, position, line_end, width, starts, ends)
        position = line_end + 1
        if cancelled():
            break
    return starts, ends


def _wrap_ascii(text: str, start: int, end: int, width: int, starts: array, ends: array) -> None:
    # One cell a character: rows by offset, broken at the last space that fits.
    while end - start > width:
        space = text.rfind(" ", start + 1, start + width + 1)
        cut, resume = (space, space + 1) if space > start else (start + width, start + width)
        starts.append(start)
        ends.append(cut)
        start = resume
    starts.append(start)
    ends.append(end)


def _wrap_cells(text: str, start: int, end: int, width: int, starts: array, ends: array) -> None:
    # Characters of two cells or none (CJK, combining accents): measured one
    # by one; a character wider than the row gets a row of its own.
    row, cells, space = start, 0, -1
    for index in range(start, end):
        char = text[index]
        size = get_character_cell_size(char)
        if cells + size > width and index > row:
            if space > row:
                starts.append(row)
                ends.append(space)
                row = space + 1
                cells = sum(get_character_cell_size(c) for c in text[row:index])
            space = -1
            if cells + size > width and index > row:
                starts.append(row)
                ends.append(index)
                row, cells = index, 0
        cells += size
        if char == " ":
            space = index
    starts.append(row)
    ends.append(end)


class PlainBody(VirtualList):
    """A long text, wrapped to the view's width in a thread, drawn a
    screenful at a time."""

    header_lines = 0

    class Wrapped(Message):
        def __init__(self, view: PlainBody, width: int, starts: array, ends: array) -> None:
            super().__init__()
            self.view = view
            self.width = width
            self.starts = starts
            self.ends = ends

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = ""
        self.wrapped_width = 0
        self._starts = array("q")
        self._ends = array("q")

    def set_text(self, text: str) -> None:
        """Show ``text`` (made literal already)."""
        self.text = text
        self._starts, self._ends = array("q"), array("q")
        self.wrapped_width = 0
        self.rows_changed()
        self._wrap_for_width()

    def _row_width(self) -> int:
        # A column of margin on either side of the text.
        return max(10, self.scrollable_content_region.width - 2)

    def _wrap_for_width(self) -> None:
        if self.text and self.size.width:
            self.wrap(self.text, self._row_width())

    @work(thread=True, exclusive=True, group="plain-body", exit_on_error=False)
    def wrap(self, text: str, width: int) -> None:
        worker = get_current_worker()
        starts, ends = wrap_rows(text, width, cancelled=lambda: worker.is_cancelled)
        if not worker.is_cancelled:
            self.post_message(self.Wrapped(self, width, starts, ends))

    @on(Wrapped)
    def _wrapped(self, message: Wrapped) -> None:
        if message.view is not self:
            return
        message.stop()
        self._starts, self._ends = message.starts, message.ends
        self.wrapped_width = message.width
        self.rows_changed()

    def on_resize(self, event) -> None:
        super().on_resize(event)
        if self.text and self._row_width() != self.wrapped_width:
            self._wrap_for_width()

    @property
    def row_count(self) -> int:
        return len(self._starts)

    def line(self, index: int) -> str:
        return self.text[self._starts[index]:self._ends[index]]

    def empty_text(self) -> str:
        return "Laying out the text…" if self.text else ""

    def render_row(self, index: int, width: int) -> list[Segment]:
        return [Segment(fit(" " + self.line(index), width))]


class TaskBody(Vertical):
    """The Description box: a note (only for a large body), and the body as
    markdown or as plain text."""

    DEFAULT_CSS = """
    TaskBody > #task-body-note {
        display: none;
        height: 1;
        color: $text-warning;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    TaskBody > #task-body-plain {
        display: none;
        height: 1fr;
    }
    TaskBody.-plain > #task-body-note, TaskBody.-plain > #task-body-plain {
        display: block;
    }
    TaskBody.-plain > #task-body-scroll {
        display: none;
    }
    """

    class Prepared(Message):
        """A body made literal and measured in a thread: ``too_big`` says
        why it is shown as plain text, or is None for markdown."""

        def __init__(self, body: str, text: str, too_big: str | None) -> None:
            super().__init__()
            self.body = body
            self.text = text
            self.too_big = too_big

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.body: str | None = None
        # "markdown" or "plain" once the body is measured.
        self.mode: str | None = None
        self._markdown_shown: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="task-body-note", markup=False)
        with VerticalScroll(id="task-body-scroll"):
            yield Markdown("", id="task-body")
        yield PlainBody(id="task-body-plain")

    @property
    def rendered(self) -> bool:
        """Whether the body is on screen as it will stay: the markdown
        mounted, or the plain text wrapped."""
        if self.mode == "markdown":
            return self._markdown_shown == self.body
        if self.mode == "plain":
            plain = self.query_one(PlainBody)
            return bool(plain.text) and plain.wrapped_width > 0
        return False

    def show(self, body: str) -> None:
        """Show ``body``; the same body again changes nothing (the screen
        is handed a fresh detail on every event of its task)."""
        if body == self.body:
            return
        self.body = body
        self.mode = None
        self.prepare(body)

    @work(thread=True, exclusive=True, group="task-body", exit_on_error=False)
    def prepare(self, body: str) -> None:
        """Make ``body`` literal and decide how to show it (a worker: a big
        body takes a while to read)."""
        # Markdown is the body's own format; raw control characters are
        # made visible first, and the Markdown widget never reads Rich
        # markup.
        text = literal(body, multiline=True)
        self.post_message(self.Prepared(body, text, too_big_for_markdown(text)))

    @on(Prepared)
    def _prepared(self, message: Prepared) -> None:
        message.stop()
        if message.body != self.body:
            return  # a newer body is on its way
        plain = self.query_one(PlainBody)
        if message.too_big is None:
            self.mode = "markdown"
            self.remove_class("-plain")
            plain.set_text("")
            self.render_markdown(message.text if message.body.strip() else "*No description.*", message.body)
            return
        self.mode = "plain"
        self.add_class("-plain")
        self.query_one("#task-body-note", Static).update(f"Shown as plain text: {message.too_big}.")
        if self._markdown_shown is not None:
            # Let go of the blocks of an earlier, smaller body.
            self.render_markdown("", None)
        plain.set_text(message.text)

    @work(exclusive=True, group="task-body-markdown", exit_on_error=False)
    async def render_markdown(self, text: str, body: str | None) -> None:
        """Render ``text`` (made from ``body``) as markdown. The widget parses
        in a thread and mounts its blocks in batches; as a worker, the screen
        does not wait for it."""
        await self.query_one(Markdown).update(text)
        self._markdown_shown = body
