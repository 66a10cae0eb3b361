"""A list that renders only the rows on screen: the base of the Plan and Log
panes.

Subclasses say how many rows there are and how one row looks; this class
keeps the cursor, scrolls, draws a fixed column-header line, and caches
rendered rows (as Toolong does) so that paging through 100,000 rows costs the
rows on screen, not the rows in the list.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.cache import LRUCache
from textual.color import Color
from textual.dom import NoScreen
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from factory_tui.keys import bindings
from factory_tui.widgets.styles import contrast


def fit(text: str, width: int, *, right: bool = False) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with an ellipsis."""
    if width <= 0:
        return ""
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…"
    if right:
        return " " * (width - length) + text
    return text + " " * (width - length)


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a list: a fixed ``width``, or 0 for one that takes a
    share (``grow``) of what is left, at least ``least`` cells (the first
    such column: at least the list's ``min_flex``). When the list is
    narrow, columns with the highest ``drop`` go first (0: never dropped)."""

    name: str
    title: str
    width: int = 0
    right: bool = False
    drop: int = 0
    grow: int = 1
    least: int = 0


@lru_cache(maxsize=64)
def layout_columns(columns: tuple[Column, ...], width: int, min_flex: int) -> tuple[tuple[Column, int], ...]:
    """The columns that fit in ``width`` with their widths (a space between
    each), dropping optional ones until every flexible column has its
    least (the first one ``min_flex``); what is left over is shared by the
    flexible columns by their ``grow``."""
    first_flex = next((c for c in columns if not c.width), None)

    def least(column: Column) -> int:
        return min_flex if column is first_flex else column.least

    shown = list(columns)
    while True:
        fixed = sum(c.width for c in shown) + len(shown) - 1
        flexible = [c for c in shown if not c.width]
        flex = width - fixed
        droppable = [c for c in shown if c.drop]
        if flex >= sum(least(c) for c in flexible) or not droppable:
            break
        shown.remove(max(droppable, key=lambda c: c.drop))
    widths: dict[Column, int] = {}
    spare = flex - sum(least(c) for c in flexible)
    grown = sum(c.grow for c in flexible)
    for n, column in enumerate(flexible):
        if spare < 0:
            share = 0
        elif n == len(flexible) - 1:
            share = spare - sum(widths[c] - least(c) for c in flexible[:-1])  # the rest: no cell lost to rounding
        else:
            share = spare * column.grow // grown
        widths[column] = max(1, least(column) + share) if spare >= 0 else max(1, flex if n == 0 else 1)
    return tuple((c, c.width or widths[c]) for c in shown)


Part = tuple[str, Style | None]
# A cell is one (text, style), or several drawn one after the other (a
# title, then why its task failed).
Cell = Part | list[Part]


def fit_parts(parts: Sequence[Part], width: int, *, right: bool = False) -> list[Segment]:
    """Styled ``parts`` in exactly ``width`` cells: padded, or cut with an
    ellipsis where they run out of room."""
    if width <= 0:
        return []
    total = sum(cell_len(text) for text, _ in parts)
    if total <= width:
        segments = [Segment(text, style) for text, style in parts if text]
        pad = Segment(" " * (width - total))
        return [pad, *segments] if right else [*segments, pad]
    segments = []
    room = width
    for text, style in parts:
        length = cell_len(text)
        if length < room:
            segments.append(Segment(text, style))
            room -= length
            continue
        # This part reaches the edge with more to come: cut it, ending in
        # the ellipsis.
        segments.append(Segment(set_cell_size(text, room - 1) + "…", style))
        break
    return segments


def render_cells(
    layout: Sequence[tuple[Column, int]],
    cells: Mapping[str, Cell],
) -> list[Segment]:
    """A row's segments: each column's cell, fitted to the layout."""
    segments: list[Segment] = []
    for n, (column, width) in enumerate(layout):
        if n:
            segments.append(Segment(" "))
        cell = cells.get(column.name, ("", None))
        if isinstance(cell, list):
            segments.extend(fit_parts(cell, width, right=column.right))
        else:
            text, style = cell
            segments.append(Segment(fit(text, width, right=column.right), style))
    return segments


def first_fitting(texts: Sequence[str], width: int) -> str:
    """The first of ``texts`` (longest first) that fits ``width`` cells,
    else the last, to be cut."""
    for text in texts:
        if cell_len(text) <= width:
            return text
    return texts[-1] if texts else ""


def span_into(layout: tuple[tuple[Column, int], ...], into: str, spanned: str) -> tuple[tuple[Column, int], ...]:
    """``layout`` with the column ``spanned`` given over to the column just
    before it, ``into`` (a row with nothing to say there)."""
    names = [column.name for column, _ in layout]
    if into not in names or spanned not in names or names.index(spanned) != names.index(into) + 1:
        return layout
    at = names.index(into)
    merged = (layout[at][0], layout[at][1] + 1 + layout[at + 1][1])
    return (*layout[:at], merged, *layout[at + 2:])


def column_width(layout: Sequence[tuple[Column, int]], name: str) -> int:
    """How wide the column ``name`` is in ``layout`` (0: not shown)."""
    return next((width for column, width in layout if column.name == name), 0)


def header_text(layout: Sequence[tuple[Column, int]], titles: Mapping[str, str] | None = None) -> str:
    """The column titles, fitted; ``titles`` replaces some (a count)."""
    titles = titles or {}
    return " ".join(fit(titles.get(column.name, column.title), width, right=column.right) for column, width in layout)


# Below this contrast a coloured cell on the cursor's background takes the
# cursor's own text colour (a dark colour of a light theme on its dark
# cursor bar).
CURSOR_CONTRAST = 3.0


def readable_on(segments: Iterable[Segment], cursor: Style) -> list[Segment]:
    """``segments`` with every colour that would not read on the cursor's
    background replaced by the cursor's text colour."""
    if cursor.bgcolor is None or cursor.color is None:
        return list(segments)
    background = Color.from_rich_color(cursor.bgcolor)
    text_colour = Style(color=cursor.color)
    out = []
    for segment in segments:
        style = segment.style
        if style is not None and style.color is not None and style.color.triplet is not None:
            if contrast(Color.from_rich_color(style.color), background) < CURSOR_CONTRAST:
                segment = Segment(segment.text, style + text_colour)
        out.append(segment)
    return out


class VirtualList(ScrollView, can_focus=True):
    """Rows rendered on demand, a cursor, and the list keys (j/k, arrows,
    page up/down, g/G)."""

    COMPONENT_CLASSES = {
        "virtual-list--cursor",
        "virtual-list--cursor-blurred",
        "virtual-list--header",
    }

    DEFAULT_CSS = """
    VirtualList {
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
    }
    VirtualList > .virtual-list--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    VirtualList > .virtual-list--cursor-blurred {
        background: $block-cursor-blurred-background;
    }
    VirtualList > .virtual-list--header {
        color: $text-muted;
        text-style: bold;
    }
    """

    BINDINGS = bindings(
        "list.up", "list.down", "list.page-up", "list.page-down", "list.first", "list.last",
    )

    cursor: reactive[int] = reactive(0, always_update=True)
    """The row under the cursor (rows count from 0, below the header line)."""

    header_lines = 1

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._cache: LRUCache[Hashable, Strip] = LRUCache(2048)
        self._generation = 0
        # The widget's own style, read once per frame rather than once per
        # line: Textual works it out from every ancestor each time.
        self._base_style: Style | None = None

    # --- what subclasses provide -------------------------------------------

    @property
    def row_count(self) -> int:
        raise NotImplementedError

    def render_row(self, index: int, width: int) -> list[Segment]:
        raise NotImplementedError

    def render_header(self, width: int) -> str:
        return ""

    def is_selectable(self, index: int) -> bool:
        """Whether the cursor may rest on row ``index`` (headings may not)."""
        return True

    def empty_text(self) -> str:
        """What the list says when it has no rows (a line per row)."""
        return ""

    def row_cache_key(self, index: int) -> Hashable | None:
        """A key that changes when the row's look changes; None: do not cache."""
        return index

    # --- what subclasses call ------------------------------------------------

    def rows_changed(self) -> None:
        """Rows were added, removed or changed: forget cached rows and resize."""
        self._generation += 1
        self._cache.clear()
        self._fit_rows()
        if self.row_count and self.cursor >= self.row_count:
            self.cursor = self.row_count - 1
        self.refresh()

    def rows_moved(self) -> None:
        """Rows were added, removed or moved, and each row's cache key says
        what it shows (``row_cache_key``): resize and redraw, keeping the
        rows drawn already (a list following a stream, or patched in place,
        draws only what is new on screen)."""
        self._fit_rows()
        if self.row_count and self.cursor >= self.row_count:
            self.cursor = self.row_count - 1
        self.refresh()

    def rows_grew(self) -> None:
        """Rows were added after the ones on screen: resize (the scrollbar),
        and redraw only if the new rows show."""
        shown = self.visible_rows()
        self._fit_rows()
        if self.visible_rows() != shown:
            self.refresh()

    def _fit_rows(self) -> None:
        """The scrollable height follows the row count. The list's own
        height is its pane's, whatever its rows: a longer list moves the
        scrollbar, not the screen's layout, so the size is set without the
        layout pass of the whole screen that setting ``virtual_size``
        asks for (a Log following agents' streams grows ten times a
        second). A scrollbar that appears or goes still asks for one
        (``_scroll_update``)."""
        size = Size(self.size.width, self.row_count + self.header_lines)
        old = self.virtual_size
        if size == old:
            return
        height = self.styles.height
        if not self.is_mounted or old.width != size.width or height is None or height.is_auto:
            self.virtual_size = size
            if self.is_mounted:
                # The scrollbar follows now, not at the next layout: until
                # it shows, Textual ignores a scroll, and a cursor moved onto
                # rows that arrived this frame would stay out of sight.
                self._scroll_update(size)
            return
        self.set_reactive(VirtualList.virtual_size, size)
        self._scroll_update(size)

    @property
    def page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - self.header_lines)

    def repaint_now(self) -> None:
        """Draw this list's change now, in the key's own handler.

        Textual draws what changed on its screen's 60 Hz timer: a change
        waits for the widget's idle, then the screen's, then the timer's
        next tick (up to 17 ms later, on a fixed grid, while other panes
        keep the screen busy: agents streaming), so a key's effect reached
        the screen 10 to 30 ms after the key. Here the list hands the
        screen its scroll and its repaint and the screen draws at once (what
        its timer would do); the next tick finds nothing left. Anything else
        (a layout pending, a batch, a screen not on top) leaves it to the
        timer. It reaches into Textual's screen update (pinned in
        pyproject); should that change shape it falls back to the timer."""
        if not self.is_mounted or self._closing or self._closed:
            return
        try:
            screen = self.screen
        except NoScreen:
            return  # going away with its screen: nothing to draw
        try:
            if self._layout_required or screen._layout_required or not screen.is_current or self.app._batch_count:
                return
            if self._scroll_required:
                self._scroll_required = False
                screen._scroll_required = True
            dirty = [widget for widget in (self, self._vertical_scrollbar)
                     if widget is not None and widget._repaint_required]
            for widget in dirty:
                widget._repaint_required = False
                screen._dirty_widgets.add(widget)
            screen._on_timer_update()
        except AttributeError:  # pragma: no cover - another Textual
            self.refresh()

    def visible_rows(self) -> range:
        top = round(self.scroll_offset.y)
        return range(top, min(self.row_count, top + self.page_height))

    # --- rendering -----------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        self._base_style = None  # an ancestor's style may have changed since the last frame
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._base_style
        if base is None:
            base = self._base_style = self.rich_style
        if y < self.header_lines:
            header_style = self.get_component_rich_style("virtual-list--header")
            return Strip([Segment(fit(self.render_header(width), width), base + header_style)], width)
        index = round(self.scroll_offset.y) + y - self.header_lines
        if index >= self.row_count:
            if self.row_count == 0:
                # The empty list's word, a line per row (a hint may take a few).
                lines = self.empty_text().splitlines()
                if index < len(lines):
                    muted = self.get_component_rich_style("virtual-list--header")
                    return Strip([Segment(fit(" " + lines[index], width), base + muted)], width)
            return Strip.blank(width, base)
        selected = index == self.cursor
        row_key = self.row_cache_key(index)
        key = (row_key, width, selected, self.has_focus, self._generation)
        strip = self._cache.get(key) if row_key is not None else None
        if strip is None:
            # One Strip a row (each costs Textual a handful of caches): the
            # row's segments fitted, then the list's style (and the cursor's)
            # put under each segment's own.
            segments = self.render_row(index, width)
            if Segment.get_line_length(segments) != width:
                segments = list(Strip(segments).crop_extend(0, width, None))
            under = base
            if selected:
                cursor_style = self.get_component_rich_style(
                    "virtual-list--cursor" if self.has_focus else "virtual-list--cursor-blurred"
                )
                segments = readable_on(segments, cursor_style)
                under = base + cursor_style
            strip = Strip([Segment(text, under + style if style is not None else under)
                           for text, style, _ in segments], width)
            if row_key is not None:
                self._cache[key] = strip
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base_style = None
        self._cache.clear()

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, self.row_count + self.header_lines)
        self._cache.clear()
        self.scroll_to_cursor()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # --- the cursor ----------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        self.scroll_to_cursor()
        # The size may not be known yet (first load): try again once it is.
        self.call_after_refresh(self.scroll_to_cursor)
        self.refresh()

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, self.row_count - 1)) if self.row_count else 0

    def scroll_to_cursor(self) -> None:
        top = round(self.scroll_offset.y)
        height = self.page_height
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def nearest_selectable(self, index: int, direction: int) -> int | None:
        """The first selectable row from ``index`` on in ``direction`` (±1),
        else the first one the other way, else None."""
        count = self.row_count
        index = max(0, min(index, count - 1))
        for step in (direction, -direction):
            probe = index
            while 0 <= probe < count:
                if self.is_selectable(probe):
                    return probe
                probe += step
        return None

    def move_cursor(self, index: int, direction: int) -> None:
        target = self.nearest_selectable(index, direction)
        if target is not None:
            self.cursor = target

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor - 1, -1)
        self.repaint_now()

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + 1, +1)
        self.repaint_now()

    def action_page_up(self) -> None:
        step = self.page_height
        self.scroll_to(y=max(0, round(self.scroll_offset.y) - step), animate=False, immediate=True)
        self.move_cursor(self.cursor - step, -1)
        self.repaint_now()

    def action_page_down(self) -> None:
        step = self.page_height
        self.scroll_to(y=round(self.scroll_offset.y) + step, animate=False, immediate=True)
        self.move_cursor(self.cursor + step, +1)
        self.repaint_now()

    def action_first(self) -> None:
        self.move_cursor(0, +1)
        # Show the heading above the first row too.
        self.scroll_to(y=0, animate=False, immediate=True)
        self.repaint_now()

    def action_last(self) -> None:
        self.go_last()
        self.repaint_now()

    def go_last(self) -> None:
        """The cursor to the last row, drawn at the next frame (a list
        following a stream: its rows come ten times a second, with other
        panes' changes that share the frame)."""
        self.move_cursor(self.row_count - 1, -1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < self.header_lines:
            return
        index = round(self.scroll_offset.y) + offset.y - self.header_lines
        if 0 <= index < self.row_count and self.is_selectable(index):
            self.cursor = index
            if event.chain == 2:
                self.on_double_click()

    def on_double_click(self) -> None:
        """A row was double-clicked (the cursor is on it)."""


Row = TypeVar("Row")


class RowList(VirtualList, Generic[Row]):
    """A VirtualList over a list of rows, in the order ``order`` gives; when
    the rows are replaced the cursor stays on the row with the same
    ``row_key`` (a new row above it does not move the operator's place)."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.rows: list[Row] = []
        self.loaded = False

    def row_key(self, row: Row) -> Hashable:
        raise NotImplementedError

    def order(self, rows: list[Row]) -> list[Row]:
        return rows

    def replace_rows(self, rows: list[Row]) -> None:
        selected = self.selected_row
        kept = self.row_key(selected) if selected is not None else None
        self.rows = self.order(rows)
        self.loaded = True
        self.rows_changed()
        if kept is not None:
            self.cursor = next((n for n, row in enumerate(self.rows) if self.row_key(row) == kept), self.cursor)

    @property
    def selected_row(self) -> Row | None:
        return self.rows[self.cursor] if self.rows and self.cursor < len(self.rows) else None

    @property
    def row_count(self) -> int:
        return len(self.rows)
