"""The Mail pane's list: one row per thread, the latest activity first,
and the files refused as no message among them by when they were refused.

A thread's row: its marks (the latest message's kind, the thread's highest
importance), who wrote last, the subject of its first message, how many
messages, what waits for us (a request not yet a task nor answered, an
acknowledgement asked for) or the task a request became, and its age.
A thread with unread messages is bold. A refused file's row says
``quarantined`` and why.

It is handed rows and never reads the log; the Mail pane feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style

from factory_tui.text import literal
from factory_tui.times import moment
from factory_tui.widgets.styles import Palette, palette
from factory_tui.widgets.virtual_list import Cell, Column, RowList, header_text, layout_columns, render_cells

if TYPE_CHECKING:
    from factory_tui.backends.mail_log import Rejected, ThreadSummary

# The latest message's kind, as the row's first mark.
KIND_MARK = {"request": "?", "reply": "↩", "ack": "✓", "note": "·"}
# The thread's highest importance, as its second mark (normal and low: none).
IMPORTANCE_MARK = {"urgent": "‼", "high": "!"}
QUARANTINE_MARK = "✗"

BOLD = Style(bold=True)


@dataclass(frozen=True, slots=True)
class MailRow:
    """A thread, or a file refused as no message."""

    thread: ThreadSummary | None = None
    rejected: Rejected | None = None

    @property
    def at(self) -> float:
        if self.thread is not None:
            return self.thread.last_activity
        assert self.rejected is not None
        return self.rejected.at

    @property
    def key(self) -> str:
        """What the cursor keeps to across reloads."""
        if self.thread is not None:
            return self.thread.thread
        assert self.rejected is not None
        return f"rejected:{self.rejected.path}:{self.rejected.at}"


def waiting_text(thread: ThreadSummary) -> str:
    """What the thread asks of us, or what became of its request."""
    if thread.waiting_request:
        return "request waits"
    if thread.waiting_ack:
        return "ack waits"
    if thread.task_id:
        return f"→ {thread.task_id}" + (f" {thread.last_state}" if thread.last_state else "")
    return thread.last_state or ""


MAIL_COLUMNS = (
    Column("marks", "✉", 2),
    Column("from", "FROM", 12, drop=2),
    Column("subject", "SUBJECT", grow=1, least=16),
    Column("count", "MSGS", 4, right=True, drop=3),
    Column("waiting", "WAITS", 17, drop=1),
    Column("age", "WHEN", 11, right=True),
)


def _waiting_style(thread: ThreadSummary, colours: Palette) -> Style | None:
    if thread.waiting_request or thread.waiting_ack:
        return colours.blocked
    if thread.last_state in ("failed", "rejected", "canceled"):
        return colours.problem
    if thread.last_state == "completed":
        return colours.good
    return colours.muted


class MailTable(RowList[MailRow]):
    """Threads and refused files, the newest first."""

    def __init__(self, *, now: float = 0.0, id: str | None = None) -> None:
        super().__init__(id=id)
        self.total = 0
        self.now = now

    def row_key(self, row: MailRow) -> str:
        return row.key

    def order(self, rows: list[MailRow]) -> list[MailRow]:
        return sorted(rows, key=lambda row: row.at, reverse=True)

    def set_rows(self, rows: list[MailRow], *, total: int | None = None) -> None:
        self.total = len(rows) if total is None else total
        self.replace_rows(rows)

    def empty_text(self) -> str:
        if not self.loaded:
            return "Reading the mail…"
        return "No mail yet: n writes to a peer."

    def render_header(self, width: int) -> str:
        return header_text(layout_columns(MAIL_COLUMNS, width, 12))

    def row_cache_key(self, index: int):
        return self.rows[index]

    def render_row(self, index: int, width: int) -> list[Segment]:
        row = self.rows[index]
        colours = palette(self)
        layout = layout_columns(MAIL_COLUMNS, width, 12)
        now = self.now or row.at
        if row.rejected is not None:
            rejected = row.rejected
            cells: dict[str, Cell] = {
                "marks": (QUARANTINE_MARK, colours.problem),
                "from": ("quarantined", colours.problem),
                "subject": [(literal(PurePath(rejected.path).name), None),
                            (f"  {literal(rejected.reason)}", colours.problem)],
                "waiting": ("", None),
                "age": (moment(rejected.at, now), colours.muted),
            }
            return render_cells(layout, cells)
        thread = row.thread
        assert thread is not None
        unread = BOLD if thread.unread else None
        marks: list[tuple[str, Style | None]] = [
            (KIND_MARK.get(thread.last_kind, " "), colours.ident),
            (IMPORTANCE_MARK.get(thread.importance, " "), colours.problem),
        ]
        count = str(thread.count) if not thread.unread else f"{thread.unread}/{thread.count}"
        cells = {
            "marks": marks,
            "from": (literal(thread.last_sender), _plus(colours.muted, unread)),
            "subject": (literal(thread.subject), unread),
            "count": (count, _plus(colours.muted, unread)),
            "waiting": (waiting_text(thread), _waiting_style(thread, colours)),
            "age": (moment(thread.last_activity, now), colours.muted),
        }
        return render_cells(layout, cells)


def _plus(style: Style | None, more: Style | None) -> Style | None:
    if more is None:
        return style
    return more if style is None else style + more
