"""How the dashboard reads (issue 7): the header never cuts its counts,
one time format in every list, and colours from the theme that stay
readable under the light theme."""

from __future__ import annotations

import time

import pytest
from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.color import Color

from factory_tui.app import FactoryApp
from factory_tui.model import State, Totals
from factory_tui.times import full_moment, moment, span
from factory_tui.widgets.header import FactoryHeader
from factory_tui.widgets.styles import MIN_CONTRAST, STATE_SYMBOL, contrast, palette
from factory_tui.widgets.virtual_list import CURSOR_CONTRAST
from tests.conftest import DEMO_START
from tests.console_helpers import ready, wait_until

NOW = DEMO_START + 2 * 3600  # 2026-09-21 16:13:20 UTC (the tests run in UTC)
DAY = 86400


# --- one time format -------------------------------------------------------------


def test_a_moment_is_as_short_as_its_distance_allows():
    assert moment(NOW - 60, NOW) == "16:12:20"  # today: the time to the second
    assert moment(NOW - DAY, NOW) == "09-20 16:13"  # this year: day and minute
    assert moment(NOW - 400 * DAY, NOW) == "2025-08-17"  # before: the date
    assert full_moment(NOW) == "2026-09-21 16:13:20"


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "0:00"), (0, "0:00"), (247, "4:07"), (3599, "59:59"), (3600, "1h00"), (7500, "2h05"),
    (3 * DAY + 4 * 3600, "3d04h"), (12 * DAY, "12d"),
])
def test_a_span_is_at_most_five_characters(seconds, text):
    assert span(seconds) == text
    assert len(text) <= 5


async def test_the_log_writes_times_in_the_one_format_against_the_consoles_clock(demo_base):
    for now, wanted in ((NOW, " 15:32:20 "), (NOW + DAY, " 09-21 15:32 ")):
        app = FactoryApp(demo_base, engine=False, clock=lambda now=now: now)
        async with app.run_test(size=(160, 48)) as pilot:
            await ready(pilot)
            log_view = app.event_log
            last = log_view.event_count - 1
            await wait_until(pilot, lambda log_view=log_view, last=last: log_view._event(log_view._ids[last]), "the row")
            line = "".join(s.text for s in log_view.render_row(last, 160))
            assert line.startswith(wanted), line
            event = log_view._event(log_view._ids[last])
            assert event is not None
            assert moment(event.at, now) in line


# --- the header --------------------------------------------------------------------


class HeaderOnly(App[None]):
    def compose(self) -> ComposeResult:
        yield FactoryHeader()


COUNTS = {State.RUNNING: 3, State.QUEUED: 12, State.REVIEW: 4, State.FAILED: 1, State.PROPOSED: 0,
          State.HELD: 0, State.DONE: 118, State.CANCELLED: 2}


@pytest.mark.parametrize("cost", [True, False], ids=["with-cost", "without-cost"])
async def test_the_header_never_cuts_its_counts(cost):
    app = HeaderOnly()
    async with app.run_test(size=(200, 3)) as pilot:
        header = app.query_one(FactoryHeader)
        header.factory_name = "a-factory-with-a-long-name"
        header.base_branch = "main"
        header.engine = "engine: embedded, 3 agents at work"
        header.agent = "claude"
        header.counts = dict(COUNTS)
        if cost:
            header.usage = (Totals(runs=2, cost_usd=1.25, input_tokens=40_000, output_tokens=2_000),
                            Totals(runs=40, cost_usd=38.5, input_tokens=2_400_000, output_tokens=90_000))
        seen = set()
        for width in (200, 160, 120, 100, 80, 60, 48):
            await pilot.resize_terminal(width, 3)
            await pilot.pause()
            line = header.render().plain
            assert len(line) <= width, (width, line)
            # Every state that has tasks, whole: full words, or symbol and number.
            for state, n in COUNTS.items():
                if n and state is not State.CANCELLED:
                    symbol = STATE_SYMBOL[state]
                    assert f"{symbol} {n} {state.value}" in line or f"{symbol}{n} " in f"{line} ", (width, state, line)
            if cost and width >= 60:
                assert "$38.50" in line, (width, line)
            seen.add(line)
        assert len(seen) >= 3  # it really took its compact forms


async def test_the_header_shows_the_long_forms_when_there_is_room():
    app = HeaderOnly()
    async with app.run_test(size=(240, 3)) as pilot:
        header = app.query_one(FactoryHeader)
        header.factory_name = "shop"
        header.counts = dict(COUNTS)
        header.usage = (Totals(runs=1, cost_usd=0.5), Totals(runs=3, cost_usd=2.0, input_tokens=5000))
        await pilot.pause()
        line = header.render().plain
        assert "3 running" in line and "118 done" in line
        assert "today $0.50 · in all $2.00 5.0k" in line


# --- colours from the theme ------------------------------------------------------------


def coloured(segments: list[Segment], background: Color):
    """(text, contrast) of every segment with a colour of its own."""
    for segment in segments:
        style = segment.style
        if not segment.text.strip() or style is None or style.color is None or style.color.triplet is None:
            continue
        back = Color.from_rich_color(style.bgcolor) if style.bgcolor and style.bgcolor.triplet else background
        fore = Color.from_rich_color(style.color)
        if style.reverse:
            fore, back = back, fore
        yield segment.text, contrast(fore, back)


@pytest.mark.parametrize("theme", ["textual-light", "textual-dark", "solarized-light"])
async def test_every_list_and_the_header_are_readable_in_the_theme(demo_base, theme):
    app = FactoryApp(demo_base, engine=False, clock=lambda: NOW)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: app.plan.failures, "the failure reasons")
        app.theme = theme
        await pilot.pause()
        background = Color.parse(app.get_css_variables()["background"])
        poor = []
        for view in (app.plan, app.worktree_table, app.event_log):
            for y in range(view.size.height):
                strip = view.render_line(y)
                on_cursor = view.header_lines <= y and round(view.scroll_offset.y) + y - view.header_lines == view.cursor
                least = CURSOR_CONTRAST if on_cursor else MIN_CONTRAST
                poor += [(type(view).__name__, y, text, round(ratio, 2))
                         for text, ratio in coloured(list(strip), background) if ratio < least]
        panel = background + Color.parse(app.get_css_variables()["panel"])
        header_line = app.header.render()
        segments = list(header_line.render(app.console))
        poor += [("header", 0, text, round(ratio, 2)) for text, ratio in coloured(segments, panel) if ratio < MIN_CONTRAST]
        assert not poor, poor
        # And the palette really is the theme's: review is its warning colour's hue.
        assert palette(app.plan).state[State.REVIEW] != palette(app.plan).state[State.DONE]


def test_contrast_is_wcag_s():
    assert round(contrast(Color(0, 0, 0), Color(255, 255, 255)), 1) == 21.0
    assert contrast(Color(10, 10, 10), Color(10, 10, 10)) == 1.0
    # The old hard-coded review colour on the light theme's background.
    assert contrast(Color.parse("#e5c07b"), Color.parse("#E0E0E0")) < 1.5


def test_time_is_utc_here():
    # The expectations above are written in UTC (conftest fixes TZ).
    assert time.strftime("%H:%M", time.localtime(NOW)) == "16:13"
