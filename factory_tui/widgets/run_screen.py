"""The run screen (``enter`` on a worktree): the agent's live transcript and
the diff of its worktree against the base branch, file by file.

The transcript is a file that grows; a worker follows it and hands over
where new lines start, and the view reads only the lines on screen, so a
50 MB transcript scrolls like a small one. The diff comes from the app (git
is the app's to run).
"""

from __future__ import annotations

import os
import time
from array import array
from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from factory_tui.backends.line_index import read_line, scan_line_starts
from factory_tui.text import literal
from factory_tui.widgets.virtual_list import VirtualList, fit

LINE_STYLES = {
    "⚙": Style(color="#56b6c2"),
    "↳": Style(color="#e06c75"),
    "✓": Style(color="#98c379", bold=True),
    "✗": Style(color="#e06c75", bold=True),
    "·": Style(dim=True),
}
FOLLOW_SECONDS = 0.25


class TranscriptView(VirtualList, inherit_bindings=False):
    """A growing text file, a screenful at a time; follows new lines while
    the cursor is on the last one."""

    header_lines = 0

    # Not the lists' own keys: `k` here is the run screen's (stop the agent).
    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False, id="transcript.up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="transcript.down"),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False, id="transcript.page-up"),
        Binding("pagedown,ctrl+f,space", "page_down", "Page down", show=False, id="transcript.page-down"),
        Binding("home,g", "first", "First line", show=False, id="transcript.first"),
        Binding("end,G", "last", "Follow", id="transcript.follow", tooltip="Jump to the newest line and follow"),
    ]

    class Grew(Message):
        def __init__(self, view: TranscriptView, starts: array, size: int) -> None:
            super().__init__()
            self.view = view
            self.starts = starts
            self.size = size

    def __init__(self, path: Path | None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.path = path
        self._starts = array("q", [0])
        self._file_size = 0
        self._fd: int | None = None
        self._lines: LRUCache[int, str] = LRUCache(4096)

    def on_mount(self) -> None:
        if self.path is not None:
            self.follow()

    def on_unmount(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @work(thread=True, exclusive=True, group="transcript", exit_on_error=False)
    def follow(self) -> None:
        """Read the file as it grows (a worker: the screen never waits)."""
        worker = get_current_worker()
        offset = 0
        while not worker.is_cancelled:
            starts, offset_after = scan_line_starts(self.path, offset)
            if offset_after != offset:
                offset = offset_after
                self.post_message(self.Grew(self, starts, offset))
            time.sleep(FOLLOW_SECONDS)

    @on(Grew)
    def _grew(self, message: Grew) -> None:
        if message.view is not self:
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
            self.action_last()

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
        return (index, index + 1 < len(self._starts))

    def render_row(self, index: int, width: int) -> list[Segment]:
        text = literal(self.line(index))
        style = LINE_STYLES.get(text[:1])
        return [Segment(fit(" " + text, width), style)]


class DiffView(Horizontal):
    """Files changed on the left; the selected file's diff on the right."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.files: list = []

    def compose(self) -> ComposeResult:
        yield OptionList(id="diff-files")
        with VerticalScroll(id="diff-scroll"):
            yield Static(Text("Loading the diff…", style="dim"), id="diff-patch")

    def show(self, files: list) -> None:
        self.files = files
        options = self.query_one("#diff-files", OptionList)
        options.clear_options()
        if not files:
            self.query_one("#diff-patch", Static).update(Text("No changes against the base branch yet.", style="dim"))
            return
        for diff in files:
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(f"+{diff.added}", style="#98c379")
            label.append(f" −{diff.removed} ", style="#e06c75")
            label.append(literal(diff.path))
            if diff.status != "modified":
                label.append(f" ({diff.status})", style="dim")
            options.add_option(Option(label))
        options.highlighted = 0
        self._show_file(0)

    @on(OptionList.OptionHighlighted, "#diff-files")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_file(event.option_index)

    def _show_file(self, index: int) -> None:
        if not 0 <= index < len(self.files):
            return
        diff = self.files[index]
        patch = literal(diff.patch, multiline=True) or "(no text changes: a binary file, or only a mode change)"
        self.query_one("#diff-patch", Static).update(
            Syntax(patch, "diff", theme="monokai", word_wrap=False, line_numbers=False)
        )
        self.query_one("#diff-scroll", VerticalScroll).scroll_home(animate=False)


class RunScreen(Screen):
    """One task's agent run."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="run.back"),
        Binding("t", "tab('transcript')", "Transcript", id="run.transcript"),
        Binding("d", "tab('diff')", "Diff", id="run.diff"),
        Binding("k", "command('stop')", "Stop agent", id="run.stop",
                tooltip="Stop the agent (asks first)"),
        Binding("o", "command('shell')", "Shell", show=False, id="run.shell"),
        Binding("e", "command('editor')", "Editor", show=False, id="run.editor"),
    ]

    class DiffWanted(Message):
        def __init__(self, screen: RunScreen) -> None:
            super().__init__()
            self.screen = screen

    class CommandWanted(Message):
        def __init__(self, task_id: str, command: str) -> None:
            super().__init__()
            self.task_id = task_id
            self.command = command

    def __init__(self, task_id: str, *, title: str, transcript: Path | None, worktree: Path, branch: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.task_title = title
        self.transcript_path = transcript
        self.worktree = worktree
        self.branch = branch
        self.diff_loaded = False

    def compose(self) -> ComposeResult:
        header = Text(no_wrap=True, overflow="ellipsis")
        header.append(f" {self.task_id}  ", style="bold")
        header.append(literal(self.task_title), style="bold")
        header.append(f"   {literal(self.branch)}", style="dim")
        yield Static(header, id="run-title")
        with TabbedContent(id="run-tabs"):
            with TabPane("Transcript", id="transcript"):
                yield TranscriptView(self.transcript_path, id="transcript-view")
            with TabPane("Diff", id="diff"):
                yield DiffView(id="diff-view")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TranscriptView).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "transcript":
            self.query_one(TranscriptView).focus()
        else:
            self.query_one("#diff-files").focus()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "diff":
            self.app.post_message(self.DiffWanted(self))

    def show_diff(self, files: list) -> None:
        self.diff_loaded = True
        self.query_one(DiffView).show(files)

    def action_command(self, command: str) -> None:
        self.app.post_message(self.CommandWanted(self.task_id, command))
