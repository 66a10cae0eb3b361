"""A list that renders only the rows on screen: the base of the Plan and Log
panes.

Subclasses say how many rows there are and how one row looks; this class
keeps the cursor, scrolls, draws a fixed column-header line, and caches
rendered rows (as Toolong does) so that paging through 100,000 rows costs the
rows on screen, not the rows in the list.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from factory_tui.keys import bindings


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
    """A column of a list: a fixed ``width``, or 0 for the one that takes
    what is left. When the list is narrow, columns with the highest ``drop``
    go first (0: never dropped)."""

    name: str
    title: str
    width: int = 0
    right: bool = False
    drop: int = 0


@lru_cache(maxsize=64)
def layout_columns(columns: tuple[Column, ...], width: int, min_flex: int) -> tuple[tuple[Column, int], ...]:
    """The columns that fit in ``width`` with their widths (a space between
    each), dropping optional ones until the flexible column has ``min_flex``."""
    shown = list(columns)
    while True:
        fixed = sum(c.width for c in shown) + len(shown) - 1
        flex = width - fixed
        droppable = [c for c in shown if c.drop]
        if flex >= min_flex or not droppable:
            break
        shown.remove(max(droppable, key=lambda c: c.drop))
    return tuple((c, c.width or max(1, flex)) for c in shown)


def render_cells(
    layout: Sequence[tuple[Column, int]],
    cells: Mapping[str, tuple[str, Style | None]],
) -> list[Segment]:
    """A row's segments: each column's (text, style), fitted to the layout."""
    segments: list[Segment] = []
    for n, (column, width) in enumerate(layout):
        if n:
            segments.append(Segment(" "))
        text, style = cells.get(column.name, ("", None))
        segments.append(Segment(fit(text, width, right=column.right), style))
    return segments


def header_text(layout: Sequence[tuple[Column, int]]) -> str:
    return " ".join(fit(column.title, width, right=column.right) for column, width in layout)


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
        """What the list says when it has no rows."""
        return ""

    def row_cache_key(self, index: int) -> Hashable | None:
        """A key that changes when the row's look changes; None: do not cache."""
        return index

    # --- what subclasses call ------------------------------------------------

    def rows_changed(self) -> None:
        """Rows were added, removed or changed: forget cached rows and resize."""
        self._generation += 1
        self._cache.clear()
        self.virtual_size = Size(self.size.width, self.row_count + self.header_lines)
        if self.row_count and self.cursor >= self.row_count:
            self.cursor = self.row_count - 1
        self.refresh()

    @property
    def page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - self.header_lines)

    def visible_rows(self) -> range:
        top = round(self.scroll_offset.y)
        return range(top, min(self.row_count, top + self.page_height))

    # --- rendering -----------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y < self.header_lines:
            header_style = self.get_component_rich_style("virtual-list--header")
            return Strip([Segment(fit(self.render_header(width), width), base + header_style)], width)
        index = round(self.scroll_offset.y) + y - self.header_lines
        if index >= self.row_count:
            if index == 0 and self.row_count == 0:
                muted = self.get_component_rich_style("virtual-list--header")
                return Strip([Segment(fit(" " + self.empty_text(), width), base + muted)], width)
            return Strip.blank(width, base)
        selected = index == self.cursor
        row_key = self.row_cache_key(index)
        key = (row_key, width, selected, self.has_focus, self._generation)
        strip = self._cache.get(key) if row_key is not None else None
        if strip is None:
            strip = Strip(self.render_row(index, width)).crop_extend(0, width, None)
            if selected:
                cursor_style = self.get_component_rich_style(
                    "virtual-list--cursor" if self.has_focus else "virtual-list--cursor-blurred"
                )
                strip = strip.apply_style(cursor_style)
            strip = strip.apply_style(base)
            if row_key is not None:
                self._cache[key] = strip
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
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

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor + 1, +1)

    def action_page_up(self) -> None:
        step = self.page_height
        self.scroll_to(y=max(0, round(self.scroll_offset.y) - step), animate=False, immediate=True)
        self.move_cursor(self.cursor - step, -1)

    def action_page_down(self) -> None:
        step = self.page_height
        self.scroll_to(y=round(self.scroll_offset.y) + step, animate=False, immediate=True)
        self.move_cursor(self.cursor + step, +1)

    def action_first(self) -> None:
        self.move_cursor(0, +1)
        # Show the heading above the first row too.
        self.scroll_to(y=0, animate=False, immediate=True)

    def action_last(self) -> None:
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
