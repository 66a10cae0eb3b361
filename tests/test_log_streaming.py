"""The Log pane while agents stream: a page key is drawn in its own
handler (not at the screen's next tick), events streamed in while the
operator reads older ones neither lay the screen out again nor push out
the pages being read, and what the list holds beside its ids stays
bounded whatever streams in. Writes come from another connection and a
real ``factory`` process; the console follows them through its feed."""

from __future__ import annotations

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.model import NewTask
from factory_tui.widgets.event_log import PAGED_EVENTS, RECENT
from tests.console_helpers import ready, wait_until
from tests.engine_helpers import factory

SIZE = (160, 48)


def seed(log: ExecutionLog, notes: int) -> None:
    log.add_tasks([NewTask(title=f"task {n}") for n in range(20)], actor="seed")
    for n in range(notes):
        log.add_note(f"T-{n % 20 + 1}", f"old note {n}", actor="agent:seed")


async def log_at_oldest(pilot, *keys: str):
    """The console ready, its Log pane focused at its oldest event (and
    ``keys`` pressed there), with the page shown read: the Log pane."""
    app = pilot.app
    await ready(pilot)
    events = app.event_log
    await pilot.press("6", "g", *keys)
    await wait_until(pilot, lambda: events.rows_missing() == 0, "the page")
    return events


async def test_a_page_key_is_drawn_before_its_handler_returns(base, log):
    seed(log, 300)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        events = await log_at_oldest(pilot)
        drawn: list[float] = []
        display = app._display

        def counted(screen, update) -> None:
            drawn.append(events.scroll_offset.y)
            display(screen, update)

        app._display = counted  # counted, then drawn
        seen: list[tuple[int, float, int]] = []
        page_down = events.action_page_down

        def timed_page_down() -> None:
            before = len(drawn)
            page_down()
            seen.append((before, events.scroll_offset.y, len(drawn)))

        events.action_page_down = timed_page_down
        await pilot.press("pagedown")
        await wait_until(pilot, lambda: seen, "the page key")
        before, offset, after = seen[0]
        assert offset > 0
        # The frame with the new page went out inside the key's handler.
        assert after > before and drawn[after - 1] == offset
        assert not app.screen._dirty_widgets


async def test_events_streamed_while_reading_old_ones_leave_the_layout_and_the_page(base, log):
    seed(log, 400)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        events = await log_at_oldest(pilot, "pagedown")
        # The page drawn where the key left it: no frame still owed.
        await wait_until(pilot, lambda: events.scroll_offset.y > 0 and not app.screen._dirty_widgets, "the page drawn")
        shown = [events._ids[i] for i in events.visible_rows()]
        layouts: list[bool] = []
        screen = app.screen
        refresh_layout = screen._refresh_layout

        def counted(size=None, scroll=False) -> None:
            layouts.append(scroll)
            refresh_layout(size, scroll)

        screen._refresh_layout = counted  # counted, then done
        count = events.event_count
        with ExecutionLog.open(base.log_path) as writer:
            for n in range(60):
                writer.add_note("T-2", f"streamed {n}", actor="agent:test")
        assert factory(base, "note", "--task", "T-3", "from another process").returncode == 0
        await wait_until(pilot, lambda: events.event_count == count + 61, "the streamed events")
        # A frame drawn after them: whatever layout they asked for is done.
        events.refresh()
        await wait_until(pilot, lambda: not app.screen._dirty_widgets, "a frame after the streamed events")
        # The same rows, the same place, and no layout of the whole screen
        # (a scroll's reflow at most): the scrollbar alone took the rows.
        assert [events._ids[i] for i in events.visible_rows()] == shown
        assert all(layouts), layouts
        assert events.vertical_scrollbar.window_virtual_size == events.event_count + events.header_lines
        # The rows below are there to page to.
        await pilot.press("G")
        await wait_until(pilot, lambda: events.rows_missing() == 0, "the newest rows")
        assert events.selected_event is not None and events.selected_event.note == "from another process"


async def test_what_the_log_holds_stays_bounded_whatever_streams_in(base, log):
    # More than the newest events the console starts from: the first page
    # is fetched as a page.
    seed(log, 600)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        events = await log_at_oldest(pilot)
        first_page = [events._ids[i] for i in events.visible_rows()]
        streamed = 2 * RECENT + 500
        count = events.event_count
        with ExecutionLog.open(base.log_path) as writer:
            for start in range(0, streamed, 250):
                for n in range(start, start + 250):
                    writer.add_note(f"T-{n % 20 + 1}", f"progress {n}", actor="agent:test")
                # Each burst taken in before the next: the stream comes in
                # many polls, not one.
                await wait_until(pilot, lambda start=start: events.event_count >= count + start + 250, "the burst")
        await wait_until(pilot, lambda: events.event_count == count + streamed, "the streamed events", limit=30)
        held = events.held()
        assert held["recent"] <= RECENT
        assert held["paged"] <= PAGED_EVENTS
        assert held["rows drawn"] <= events._cache.maxsize
        # The page being read was never pushed out by the stream.
        assert all(events._event(event_id) is not None for event_id in first_page)
        assert events.rows_missing() == 0
        # Following again: the newest rows come from what was streamed.
        await pilot.press("G")
        await wait_until(pilot, lambda: events.rows_missing() == 0 and events.selected_event is not None
                         and events.selected_event.note == f"progress {streamed - 1}", "the newest event selected")


def test_a_list_not_on_a_screen_draws_nothing_at_once():
    # A key handled as its screen goes away (a dialog closing): nothing to
    # draw, and no error.
    from factory_tui.widgets.event_log import EventLog

    EventLog().repaint_now()
