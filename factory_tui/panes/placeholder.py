"""A pane whose contents arrive with a later part of the base (Artifacts,
QA, Mail): it says what will be there."""

from __future__ import annotations

from textual.widgets import Static

from factory_tui.panes.feed import FeedListener


class PlaceholderPane(Static, FeedListener, can_focus=True):
    def __init__(self, text: str, *, id: str | None = None) -> None:
        super().__init__(text, id=id, classes="coming", markup=False)
