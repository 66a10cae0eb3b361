"""A dashboard pane's frame: a bordered box with a number key and a title,
holding the pane's body and, for bodies that filter, a ``/`` filter bar.

The list decides what its filter means (``apply_filter``); the pane only
shows the bar, forwards what is typed, and says in its border what is
filtered.
"""

from __future__ import annotations

from typing import Protocol, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Input

from factory_tui.errors import FactoryError
from factory_tui.keys import bindings
from factory_tui.text import literal


class Filterable(Protocol):
    def apply_filter(self, text: str) -> None:
        """Show only what ``text`` matches; raise FactoryError if it is not
        a filter this list understands."""


class FilterBar(Input):
    """The one-line filter under a list."""

    BINDINGS = [Binding("escape", "clear", "Clear filter", show=False, id="pane.clear-filter")]

    def action_clear(self) -> None:
        self.value = ""
        pane = self.parent
        if isinstance(pane, Pane):
            pane.close_filter()


class Pane(Vertical):
    """One of the six dashboard panes."""

    ALLOW_MAXIMIZE = True  # `z` zooms the whole pane, border and filter bar included

    BINDINGS = bindings("pane.filter", "pane.clear-filter")

    def __init__(self, number: int, title: str, body: Widget, *, filterable: bool = False, id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self.number = number
        self.title = title
        self.body = body
        self.filterable = filterable
        self.border_title = f"{number} {title}"

    def compose(self) -> ComposeResult:
        yield self.body
        if self.filterable:
            bar = FilterBar(placeholder="filter…  (enter keeps it, esc clears it)", classes="filter-bar")
            bar.display = False
            yield bar

    @property
    def filter_bar(self) -> FilterBar | None:
        bars = self.query(FilterBar)
        return bars.first() if bars else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("filter", "clear_filter"):
            return self.filterable
        return True

    def action_filter(self) -> None:
        bar = self.filter_bar
        if bar is None:
            return
        bar.display = True
        bar.focus()

    def action_clear_filter(self) -> None:
        bar = self.filter_bar
        if bar is not None and bar.value:
            bar.value = ""
        self.close_filter()

    def close_filter(self) -> None:
        bar = self.filter_bar
        if bar is not None and not bar.value:
            bar.display = False
        self.body.focus()

    @on(Input.Changed, ".filter-bar")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        text = event.value
        try:
            cast(Filterable, self.body).apply_filter(text)
        except FactoryError as error:
            self.border_subtitle = Content(literal(str(error)))
            event.input.add_class("-invalid")
            return
        event.input.remove_class("-invalid")
        # Content, not a str: what was typed must not be read as markup.
        self.border_subtitle = Content(f"filter: {literal(text)}") if text.strip() else None

    @on(Input.Submitted, ".filter-bar")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.close_filter()
