"""A run's file shown a window at a time (the Artifacts pane's ``enter`` on
a file): its lines are read by a reader the session opened
(backends/run_reader.py: plain or compressed, a line index built once), in
a worker, a window around the rows on screen; rows not read yet show a
dim placeholder until their window arrives. Lines are text from outside,
drawn literally.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.cache import LRUCache
from textual.message import Message

from factory_tui.text import literal
from factory_tui.widgets.virtual_list import VirtualList, fit

if TYPE_CHECKING:
    from factory_tui.backends.run_reader import RunFileReader

# Lines read at once: a few screens, so that paging rarely waits.
WINDOW = 200
PENDING = Style(dim=True)


class RunFileView(VirtualList):
    """The lines of one run file; ``show(reader)`` hands it the reader."""

    @dataclass
    class Read(Message):
        view: RunFileView
        start: int
        lines: list[str]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.reader: RunFileReader | None = None
        self.count = 0
        self.problem: str | None = None
        self._lines: LRUCache[int, str] = LRUCache(8 * WINDOW)
        self._asked: set[int] = set()
        # A reader is not made for two threads at once (a compressed one
        # keeps its place in the stream): windows are read one at a time.
        self._reading = threading.Lock()

    def show(self, reader: RunFileReader) -> None:
        self.reader = reader
        self.count = reader.line_count()
        self.problem = reader.problem
        self._lines.clear()
        self._asked.clear()
        self.cursor = 0
        self.rows_changed()

    def on_unmount(self) -> None:
        if self.reader is not None:
            with self._reading:
                self.reader.close()

    @property
    def row_count(self) -> int:
        return self.count

    def empty_text(self) -> str:
        return "Opening the file…" if self.reader is None else "The file is empty."

    def row_cache_key(self, index: int):
        return (index, index in self._lines)

    def render_row(self, index: int, width: int) -> list[Segment]:
        text = self._lines.get(index)
        if text is None:
            self._ask(index - index % WINDOW)
            return [Segment(fit(" …", width), PENDING)]
        return [Segment(fit(" " + literal(text), width))]

    def _ask(self, start: int) -> None:
        if start in self._asked or self.reader is None:
            return
        self._asked.add(start)
        self.read_window(self.reader, start)

    @work(thread=True, group="run-file-window", exit_on_error=False)
    def read_window(self, reader: RunFileReader, start: int) -> None:
        with self._reading:
            lines = reader.lines(start, WINDOW)
        self.post_message(self.Read(self, start, lines))

    @on(Read)
    def _read(self, message: Read) -> None:
        if message.view is not self:
            return
        message.stop()
        for offset, line in enumerate(message.lines):
            self._lines[message.start + offset] = line
        self._asked.discard(message.start)
        self.rows_changed()
