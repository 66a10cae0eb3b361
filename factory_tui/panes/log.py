"""The Log pane (6): the whole event history, following live.

The list (``widgets/event_log.py``) holds event ids and asks for the events
it needs to draw; this pane answers from the session's reader (its own
connection, so that a long filter never holds up the console's writes) in
workers, and feeds new events from the log feed.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.message import Message

from factory_tui.context import console
from factory_tui.filters import LogFilter
from factory_tui.model import Event
from factory_tui.panes.feed import FeedListener
from factory_tui.widgets.event_log import EventLog

if TYPE_CHECKING:
    from factory_tui.backends.feed import Changes, Rest, Snapshot


class LogPane(EventLog, FeedListener):
    @dataclass
    class EventsFetched(Message):
        events: list[Event]

    @dataclass
    class FilterResult(Message):
        log_filter: LogFilter
        ids: array

    def on_mount(self) -> None:
        self.clock = console(self).clock

    def log_loaded(self, snapshot: Snapshot) -> None:
        self.load(snapshot.event_ids, snapshot.recent_events)

    def log_completed(self, rest: Rest) -> None:
        self.load_all_ids(rest.event_ids)

    def log_changed(self, changes: Changes) -> None:
        if changes.events:
            self.append_events(changes.events)

    @on(EventLog.PagesWanted)
    def _pages_wanted(self, message: EventLog.PagesWanted) -> None:
        message.stop()
        self.fetch_events(message.ids)

    @work(thread=True, group="log-pages", exit_on_error=False)
    def fetch_events(self, ids: list[int]) -> None:
        self.post_message(self.EventsFetched(console(self).session.reader.events_by_id(ids)))

    @on(EventsFetched)
    def _events_fetched(self, message: EventsFetched) -> None:
        self.add_events(message.events)

    @on(EventLog.FilterWanted)
    def _filter_wanted(self, message: EventLog.FilterWanted) -> None:
        message.stop()
        self.filter_events(message.log_filter)

    @work(thread=True, exclusive=True, group="log-filter", exit_on_error=False)
    def filter_events(self, log_filter: LogFilter) -> None:
        ids = console(self).session.reader.event_ids(**log_filter.query_args())
        self.post_message(self.FilterResult(log_filter, ids))

    @on(FilterResult)
    def _filter_result(self, message: FilterResult) -> None:
        self.set_filter_result(message.log_filter, message.ids)
