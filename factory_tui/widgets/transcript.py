"""A run's transcript on the run screen: a text file that grows while the
agent works, shown a screenful at a time, and searched with ``/``.

A worker follows the file and hands over where new lines start; the view
reads only the lines on screen, so a 50 MB transcript scrolls like a small
one. Searching reads the file a chunk at a time in a worker (never the
whole file into memory) from the line under the cursor on, wraps around at
the end, and puts the cursor on the line it found. A query in lower case
matches either case (ASCII letters), one with a capital matches exactly.
"""

from __future__ import annotations

import os
import threading
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.app import ComposeResult
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input
from textual.worker import get_current_worker

from factory_tui.backends.line_index import read_line, scan_line_starts
from factory_tui.backends.watcher import watch
from factory_tui.keys import bindings
from factory_tui.text import literal
from factory_tui.widgets.virtual_list import VirtualList, fit

LINE_STYLES = {
    "⚙": Style(color="#56b6c2"),
    "↳": Style(color="#e06c75"),
    "✓": Style(color="#98c379", bold=True),
    "✗": Style(color="#e06c75", bold=True),
    "·": Style(dim=True),
}
MATCH_STYLE = Style(reverse=True, bold=True)

# How much of the file a search reads at a time.
SEARCH_CHUNK = 1 << 20


# --- searching a file by its line starts --------------------------------------------


def folds_case(query: str) -> bool:
    """Smart case: a query without capitals matches either case."""
    return query == query.lower()


def find_line(
    path: Path,
    starts: Sequence[int],
    size: int,
    cursor: int,
    query: str,
    *,
    backward: bool = False,
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[int | None, bool]:
    """The next line after ``cursor`` (or, ``backward``, the one before it)
    holding ``query``, going round the file's end; and whether it went
    round. ``starts`` are the lines' byte offsets, ``size`` where the last
    one ends. (None, False) when no line holds it."""
    needle = query.encode("utf-8")
    fold = folds_case(query)
    if fold:
        needle = needle.lower()
    count = len(starts)
    if not needle or not count:
        return None, False
    cursor = max(0, min(cursor, count - 1))
    spans = [(0, cursor), (cursor, count)] if backward else [(cursor + 1, count), (0, cursor + 1)]
    for round_, (first, last) in enumerate(spans):
        if first >= last:
            continue
        line = _find_in_lines(path, starts, size, first, last, needle, fold, backward, cancelled)
        if line is not None:
            return line, round_ == 1
        if cancelled():
            break
    return None, False


def _find_in_lines(
    path: Path, starts: Sequence[int], size: int, first: int, last: int,
    needle: bytes, fold: bool, backward: bool, cancelled: Callable[[], bool],
) -> int | None:
    """The first (or last) of lines ``first`` to ``last - 1`` holding
    ``needle``, reading ``SEARCH_CHUNK`` bytes at a time; chunks overlap by
    the needle's length less one, so a match across two chunks is found."""
    low = starts[first]
    high = starts[last] if last < len(starts) else size
    overlap = len(needle) - 1
    chunk = max(SEARCH_CHUNK, len(needle) * 2)
    with open(path, "rb") as handle:
        if not backward:
            position = low
            while position < high and not cancelled():
                handle.seek(position)
                data = handle.read(min(chunk, high - position))
                if not data:
                    return None
                found = (data.lower() if fold else data).find(needle)
                if found >= 0:
                    return bisect_right(starts, position + found) - 1
                if position + len(data) >= high:
                    return None
                position += max(1, len(data) - overlap)
            return None
        end = high
        while end > low and not cancelled():
            begin = max(low, end - chunk)
            handle.seek(begin)
            data = handle.read(end - begin)
            found = (data.lower() if fold else data).rfind(needle)
            if found >= 0:
                return bisect_right(starts, begin + found) - 1
            if begin == low:
                return None
            end = begin + overlap
        return None


# --- the view ---------------------------------------------------------------------------


class TranscriptView(VirtualList):
    """A growing text file, a screenful at a time; follows new lines while
    the cursor is on the last one."""

    header_lines = 0

    # A list's own keys, and G follows the newest line as the Log does.
    BINDINGS = bindings("log.follow")

    class Grew(Message):
        def __init__(self, view: TranscriptView, generation: int, starts: array, size: int) -> None:
            super().__init__()
            self.view = view
            self.generation = generation
            self.starts = starts
            self.size = size

    class Found(Message):
        """A search's answer: the line (or None), and whether it went round."""

        def __init__(self, view: TranscriptView, generation: int, query: str, line: int | None, wrapped: bool) -> None:
            super().__init__()
            self.view = view
            self.generation = generation
            self.query = query
            self.line = line
            self.wrapped = wrapped

    def __init__(self, path: Path | None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.path = path
        self.search_query = ""
        # Bumped when another file is opened: what a worker found in the
        # earlier one is dropped.
        self.file_generation = 0
        self._reset()

    def _reset(self) -> None:
        self._starts = array("q", [0])
        self._file_size = 0
        self._fd: int | None = None
        self._lines: LRUCache[int, str] = LRUCache(4096)
        self._stop = threading.Event()

    def on_mount(self) -> None:
        if self.path is not None:
            self.follow(self.path, self.file_generation, self._stop)

    def on_unmount(self) -> None:
        self._close()

    def _close(self) -> None:
        self._stop.set()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def open(self, path: Path | None) -> None:
        """Show another file (an earlier attempt's transcript)."""
        self._close()
        self.file_generation += 1
        self.path = path
        self._reset()
        self.cursor = 0
        self.rows_changed()
        if path is not None:
            self.follow(path, self.file_generation, self._stop)

    @work(thread=True, exclusive=True, group="transcript", exit_on_error=False)
    def follow(self, path: Path, generation: int, stop: threading.Event) -> None:
        """Read the file as it grows (a worker: the screen never waits),
        woken by the file watcher the moment the agent writes."""
        worker = get_current_worker()
        offset = 0

        def read_new_lines() -> None:
            nonlocal offset
            starts, offset_after = scan_line_starts(path, offset)
            if offset_after != offset:
                offset = offset_after
                self.post_message(self.Grew(self, generation, starts, offset))

        read_new_lines()
        for _ in watch(path, stop=stop):
            if worker.is_cancelled:
                return
            read_new_lines()

    @on(Grew)
    def _grew(self, message: Grew) -> None:
        if message.view is not self or message.generation != self.file_generation:
            return
        following = self.cursor >= self.row_count - 1
        if self._fd is None and self.path is not None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                return
        # Only whole lines are cached (see ``line``), so nothing cached is stale.
        self._starts.extend(message.starts)
        self._file_size = message.size
        self.rows_changed()
        if following:
            self.go_last()

    @property
    def row_count(self) -> int:
        count = len(self._starts)
        # A file that ends with a newline has no line after it.
        if self._starts[-1] >= self._file_size:
            count -= 1
        return max(0, count)

    def empty_text(self) -> str:
        if self.path is None:
            return "No run yet: the transcript appears when an agent works on this task."
        return "Waiting for the agent's first words…"

    def line(self, index: int) -> str:
        cached = self._lines.get(index)
        if cached is not None:
            return cached
        if self._fd is None:
            return ""
        start = self._starts[index]
        end = self._starts[index + 1] if index + 1 < len(self._starts) else self._file_size
        text = read_line(self._fd, start, end)
        if index + 1 < len(self._starts):
            self._lines[index] = text
        return text

    def row_cache_key(self, index: int):
        return (index, index + 1 < len(self._starts), self.search_query)

    def render_row(self, index: int, width: int) -> list[Segment]:
        text = fit(" " + literal(self.line(index)), width)
        style = LINE_STYLES.get(text[1:2])
        query = self.search_query
        if not query:
            return [Segment(text, style)]
        # The matches, marked (made literal, as the line is shown).
        haystack, needle = (text.lower(), query.lower()) if folds_case(query) else (text, query)
        segments, at = [], 0
        found = haystack.find(needle)
        while found >= 0 and needle:
            segments.append(Segment(text[at:found], style))
            segments.append(Segment(text[found:found + len(needle)], (style or Style()) + MATCH_STYLE))
            at = found + len(needle)
            found = haystack.find(needle, at)
        segments.append(Segment(text[at:], style))
        return [segment for segment in segments if segment.text]

    # --- searching ---------------------------------------------------------------

    def search(self, query: str, *, backward: bool = False) -> None:
        """Look for ``query`` from the cursor's line on (in a worker)."""
        self.search_query = query
        self.rows_changed()
        count = self.row_count
        if not count or self.path is None:
            self.notify("Nothing to search yet.", timeout=3, markup=False)
            return
        # The lines known now; the file may grow meanwhile.
        self.find(self.path, self._starts[:count], self._file_size, self.cursor, query, backward, self.file_generation)

    @work(thread=True, exclusive=True, group="transcript-search", exit_on_error=False)
    def find(self, path: Path, starts: array, size: int, cursor: int, query: str, backward: bool, generation: int) -> None:
        worker = get_current_worker()
        line, wrapped = find_line(path, starts, size, cursor, query, backward=backward,
                                  cancelled=lambda: worker.is_cancelled)
        if not worker.is_cancelled:
            self.post_message(self.Found(self, generation, query, line, wrapped))

    @on(Found)
    def _found(self, message: Found) -> None:
        if message.view is not self or message.generation != self.file_generation:
            return
        message.stop()
        if message.line is None:
            self.notify(f"No line holds {literal(message.query)!r}.", severity="warning", timeout=3, markup=False)
            return
        self.cursor = message.line
        if message.wrapped:
            self.notify("The search went round the end of the transcript.", timeout=2, markup=False)


class SearchBar(Input):
    """The one-line search under the transcript."""

    BINDINGS = bindings("transcript.close-search")

    def action_close_search(self) -> None:
        self.display = False
        pane = self.parent
        if isinstance(pane, TranscriptPane):
            pane.view.focus()


class TranscriptPane(Vertical):
    """The transcript and its search bar; ``/``, ``n`` and ``N`` search."""

    BINDINGS = bindings("transcript.search", "transcript.next-match", "transcript.previous-match")

    def __init__(self, path: Path | None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.path = path
        self.query_text = ""

    def compose(self) -> ComposeResult:
        yield TranscriptView(self.path, id="transcript-view")
        bar = SearchBar(placeholder="search the transcript…  (enter: next match, esc: close)", id="transcript-search")
        bar.display = False
        yield bar

    @property
    def view(self) -> TranscriptView:
        return self.query_one(TranscriptView)

    @property
    def bar(self) -> SearchBar:
        return self.query_one(SearchBar)

    def action_search(self) -> None:
        bar = self.bar
        bar.display = True
        bar.focus()

    def action_next_match(self) -> None:
        self._again(backward=False)

    def action_previous_match(self) -> None:
        self._again(backward=True)

    def _again(self, *, backward: bool) -> None:
        if not self.query_text:
            self.notify("Nothing searched yet: / searches the transcript.", timeout=3, markup=False)
            return
        self.view.search(self.query_text, backward=backward)

    @on(Input.Submitted, "#transcript-search")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_text = event.value
        view = self.view
        view.focus()
        if not event.value:
            self.bar.display = False
            view.search_query = ""
            view.rows_changed()
            return
        view.search(event.value)
