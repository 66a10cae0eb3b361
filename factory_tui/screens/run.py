"""The run screen (``enter`` on a worktree): the agent's live transcript and
the diff of its worktree against the base branch, file by file.

The transcript is a file that grows; a worker follows it and hands over
where new lines start, and the view reads only the lines on screen, so a
50 MB transcript scrolls like a small one. The diff comes from the session,
in the screen's own worker. Its task keys are the Plan's.
"""

from __future__ import annotations

import os
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.cache import LRUCache
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from factory_tui.backends.line_index import read_line, scan_line_starts
from factory_tui.backends.watcher import watch
from factory_tui.context import console
from factory_tui.keys import bindings
from factory_tui.messages import Command, TaskCommand
from factory_tui.model import FileDiff
from factory_tui.text import literal
from factory_tui.widgets.virtual_list import VirtualList, fit

LINE_STYLES = {
    "⚙": Style(color="#56b6c2"),
    "↳": Style(color="#e06c75"),
    "✓": Style(color="#98c379", bold=True),
    "✗": Style(color="#e06c75", bold=True),
    "·": Style(dim=True),
}


class TranscriptView(VirtualList):
    """A growing text file, a screenful at a time; follows new lines while
    the cursor is on the last one."""

    header_lines = 0

    # A list's own keys, and G follows the newest line as the Log does.
    BINDINGS = bindings("log.follow")

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
        self._stop = threading.Event()

    def on_mount(self) -> None:
        if self.path is not None:
            self.follow()

    def on_unmount(self) -> None:
        self._stop.set()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @work(thread=True, exclusive=True, group="transcript", exit_on_error=False)
    def follow(self) -> None:
        """Read the file as it grows (a worker: the screen never waits),
        woken by the file watcher the moment the agent writes."""
        worker = get_current_worker()
        offset = 0

        def read_new_lines() -> None:
            nonlocal offset
            starts, offset_after = scan_line_starts(self.path, offset)
            if offset_after != offset:
                offset = offset_after
                self.post_message(self.Grew(self, starts, offset))

        read_new_lines()
        for _ in watch(self.path, stop=self._stop):
            if worker.is_cancelled:
                return
            read_new_lines()

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

    BINDINGS = bindings(
        "screen.back", "run.transcript", "run.diff", "task.approve", "task.requeue", "task.cancel",
        "run.shell", "run.editor", show={"task.requeue": False},
    )

    @dataclass
    class DiffLoaded(Message):
        files: list[FileDiff]

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
            self.load_diff()

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def load_diff(self) -> None:
        """The worktree's diff against the base branch (git: a worker)."""
        self.post_message(self.DiffLoaded(console(self).session.diff(self.task_id)))

    @on(DiffLoaded)
    def _diff_loaded(self, message: DiffLoaded) -> None:
        self.show_diff(message.files)

    def show_diff(self, files: list) -> None:
        self.diff_loaded = True
        self.query_one(DiffView).show(files)

    def action_command(self, command: str) -> None:
        self.post_message(TaskCommand(self.task_id, Command(command)))

    def action_shell(self) -> None:
        self.action_command(Command.SHELL)

    def action_editor(self) -> None:
        self.action_command(Command.EDITOR)
