"""The event list of the Log pane: the event stream, newest last,
following live.

It keeps only an array of event ids (8 bytes an event), an LRU cache of
the pages it fetched and the newest events streamed in (``RECENT``, kept
apart so that a stream of agents' progress never pushes out the pages the
operator is reading); rows it has not got yet draw as a dim placeholder
while it asks for their page (``PagesWanted``, posted to itself: the Log
pane that owns the reader answers it). So 1,000,000 events cost 8 MB, a
page costs the rows on screen, and whatever streams in, what it holds
beside the ids stays bounded (``PAGED_EVENTS``, ``RECENT``).
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable

from rich.segment import Segment
from textual.cache import LRUCache
from textual.message import Message

from factory_tui.filters import LogFilter
from factory_tui.keys import bindings
from factory_tui.messages import Command, TaskCommand
from factory_tui.model import Event
from factory_tui.text import literal
from factory_tui.times import MOMENT_WIDTH, moment
from factory_tui.widgets.styles import palette
from factory_tui.widgets.virtual_list import (
    Column,
    VirtualList,
    fit,
    header_text,
    layout_columns,
    render_cells,
)

PAGE = 200
# Events fetched for pages, kept while they may be drawn again.
PAGED_EVENTS = 4 * PAGE * 5
# The newest events streamed in: the rows of a Log following the stream,
# and what a filter's query may have missed while it ran.
RECENT = 2000
COLUMNS = (
    Column("time", " TIME", MOMENT_WIDTH + 1),
    Column("task", "TASK", 6),
    Column("kind", "EVENT", 9),
    Column("change", "CHANGE", 20, drop=1),
    Column("actor", "BY", 16, drop=2),
    Column("note", "NOTE"),
)
MIN_NOTE = 24


class EventLog(VirtualList):
    """Events oldest first; while the cursor is on the last row it follows
    new events."""

    BINDINGS = bindings("task.open", "log.follow", show={"task.open": True})

    # Posted to the list itself (its pane answers them): a message built
    # while another node is active (a render, the Pane's filter handler)
    # takes that node as its sender, and would stop bubbling there.

    class PagesWanted(Message):
        """The log needs these events to draw its rows."""

        def __init__(self, ids: list[int]) -> None:
            super().__init__()
            self.ids = ids

    class FilterWanted(Message):
        """The ids of the events matching ``log_filter`` are needed."""

        def __init__(self, log_filter: LogFilter) -> None:
            super().__init__()
            self.log_filter = log_filter

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ids = array("q")
        self._events: LRUCache[int, Event] = LRUCache(PAGED_EVENTS)
        self._requested: set[int] = set()
        self._recent: OrderedDict[int, Event] = OrderedDict()
        self.log_filter = LogFilter()
        self.loaded = False
        # What "now" is for the TIME column (the pane gives it the console's
        # clock, which tests and pictures fix).
        self.clock: Callable[[], float] = time.time

    # --- data in -----------------------------------------------------------

    def load(self, event_ids: array, recent: list[Event]) -> None:
        """Start from the whole log's event ids and its newest events."""
        self._ids = event_ids
        self._keep_recent(recent)
        self.loaded = True
        self.rows_changed()
        self.go_last()

    def load_all_ids(self, event_ids: array) -> None:
        """Every event's id, after a first look that held the newest only:
        the rows above them fill in, and the cursor stays on its event."""
        if not self.log_filter.is_empty:
            return  # the filter's ids stand; clearing it asks for them all
        ids = self._ids
        following = not ids or self.cursor >= len(ids) - 1
        kept = ids[self.cursor] if ids else None
        last = event_ids[-1] if event_ids else 0
        event_ids.extend(event_id for event_id in ids if event_id > last)
        self._ids = event_ids
        self.rows_moved()
        if following:
            self.go_last()
        elif kept is not None:
            self.cursor = min(bisect_left(event_ids, kept), len(event_ids) - 1)

    def set_filter_result(self, log_filter: LogFilter, ids: array) -> None:
        if log_filter != self.log_filter:
            return  # an older query finished after a newer one was typed
        last = ids[-1] if ids else 0
        for event in self._recent.values():
            # Events written while the query ran.
            if event.id > last and log_filter.matches(event):
                ids.append(event.id)
        self._ids = ids
        self._requested.clear()
        self.rows_changed()
        self.go_last()

    def apply_filter(self, text: str) -> None:
        self.set_filter(LogFilter.parse(text))

    def set_filter(self, log_filter: LogFilter) -> None:
        if log_filter == self.log_filter:
            return
        self.log_filter = log_filter
        self.post_message(self.FilterWanted(log_filter))

    def add_events(self, events: list[Event]) -> None:
        """Events fetched for rows that were waiting for them."""
        for event in events:
            self._events[event.id] = event
            self._requested.discard(event.id)
        # Rows drawn without their event were not cached, so the cache stays
        # valid; redraw only if such a row is on screen now.
        visible = self.visible_rows()
        if visible and events:
            fetched = {event.id for event in events}
            if any(self._ids[i] in fetched for i in visible):
                self.refresh()

    def append_events(self, events: list[Event]) -> None:
        """Events just written to the log."""
        following = not self._ids or self.cursor >= len(self._ids) - 1
        self._keep_recent(events)
        added = False
        for event in events:
            if self.log_filter.matches(event) and (not self._ids or event.id > self._ids[-1]):
                self._ids.append(event.id)
                added = True
        if added:
            if following:
                # The rows drawn stay drawn (their key is their event): a
                # log following agents' streams draws only its new rows.
                self.rows_moved()
                self.go_last()
            else:
                # Rows added below the screen: the scrollbar changes, the
                # rows on screen do not.
                self.rows_grew()

    def _keep_recent(self, events: list[Event]) -> None:
        recent = self._recent
        for event in events:
            recent[event.id] = event
        while len(recent) > RECENT:
            recent.popitem(last=False)

    def _event(self, event_id: int) -> Event | None:
        event = self._events.get(event_id)
        return event if event is not None else self._recent.get(event_id)

    def held(self) -> dict[str, int]:
        """How much the list holds beside its ids (bounded, whatever
        streams in)."""
        return {"paged": len(self._events), "recent": len(self._recent), "requested": len(self._requested),
                "rows drawn": len(self._cache)}

    @property
    def event_count(self) -> int:
        return len(self._ids)

    @property
    def selected_event(self) -> Event | None:
        if not self._ids:
            return None
        return self._event(self._ids[self.cursor])

    def rows_missing(self) -> int:
        """How many rows on screen still wait for their events."""
        return sum(1 for i in self.visible_rows() if self._event(self._ids[i]) is None)

    # --- rendering -----------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._ids)

    def row_cache_key(self, index: int):
        event_id = self._ids[index]
        if self._event(event_id) is None:
            return None
        # The TIME column reads differently once the event is from another day.
        return (event_id, time.localtime(self.clock()).tm_yday)

    def empty_text(self) -> str:
        if not self.loaded:
            return "Reading the log…"
        return "No events yet." if self.log_filter.is_empty else "No event matches the filter; esc clears it."

    def render_header(self, width: int) -> str:
        return header_text(layout_columns(COLUMNS, width, MIN_NOTE))

    def render_row(self, index: int, width: int) -> list[Segment]:
        event_id = self._ids[index]
        event = self._event(event_id)
        if event is None:
            self._want(index)
            return [Segment(fit(f" #{event_id} …", width), palette(self).muted)]
        colours = palette(self)
        change = f"{event.from_state or '∅'} → {event.to_state}" if event.to_state else ""
        return render_cells(
            layout_columns(COLUMNS, width, MIN_NOTE),
            {
                "time": (" " + moment(event.at, self.clock()), colours.muted),
                "task": (event.task_id or "—", colours.ident),
                "kind": (event.kind, colours.kind.get(event.kind)),
                "change": (change, None),
                "actor": (literal(event.actor), colours.muted),
                "note": (literal(event.note or ""), None),
            },
        )

    def _want(self, index: int) -> None:
        """Ask for the page holding ``index`` and its neighbours, once."""
        self._request_rows(index - PAGE, index + 2 * PAGE)

    def _request_rows(self, start: int, stop: int) -> None:
        """Fetch the rows in [start, stop) that are neither held nor asked
        for, widened to whole pages so that fetches come a page at a time."""
        start = max(0, start) // PAGE * PAGE
        stop = -(-min(len(self._ids), stop) // PAGE) * PAGE
        wanted: list[int] = []
        events, requested, ids, recent = self._events, self._requested, self._ids, self._recent
        for i in range(start, min(len(ids), stop)):
            event_id = ids[i]
            if event_id not in events and event_id not in requested and event_id not in recent:
                wanted.append(event_id)
        if wanted:
            requested.update(wanted)
            self.post_message(self.PagesWanted(wanted))

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # Read ahead in the direction of travel, so that paging finds its
        # rows already fetched.
        top = round(new)
        if new >= old:
            self._request_rows(top, top + self.page_height + PAGE)
        else:
            self._request_rows(top - PAGE, top + self.page_height)

    # --- keys ----------------------------------------------------------------

    def action_command(self, command: str) -> None:
        event = self.selected_event
        if event is None or event.task_id is None:
            self.notify("This event belongs to no task.", severity="warning", timeout=3)
            return
        self.post_message(TaskCommand(event.task_id, Command(command)))

    def on_double_click(self) -> None:
        self.action_command(Command.OPEN)
