"""The dashboard's panes: one registry the app composes from.

A pane is a module here holding its widget, the workers that feed it and
the messages they post (``plan.py``, ``worktrees.py``, ``log.py``). Adding a
pane means writing its module and adding a line below: its number (also its
key), its name, where on the dashboard it goes, and whether ``/`` filters
it. Nothing in the app changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from textual.widget import Widget

from factory_tui.panes.artifacts import ArtifactsPane
from factory_tui.panes.log import LogPane
from factory_tui.panes.mail import MailPane
from factory_tui.panes.plan import PlanPane
from factory_tui.panes.qa import QaPane
from factory_tui.panes.worktrees import WorktreesPane


class Area(StrEnum):
    """Where a pane sits on the dashboard (the layout is app.tcss's)."""

    LEFT = "left"
    RIGHT_TOP = "right-top"
    RIGHT_MIDDLE = "right-middle"
    RIGHT_BOTTOM = "right-bottom"
    BOTTOM = "bottom"


@dataclass(frozen=True, slots=True)
class PaneSpec:
    number: int
    name: str
    make: Callable[..., Widget]
    area: Area
    filterable: bool = False

    @property
    def key(self) -> str:
        return str(self.number)

    @property
    def widget_id(self) -> str:
        return self.name.lower()


PANES: tuple[PaneSpec, ...] = (
    PaneSpec(1, "Plan", PlanPane, Area.LEFT, filterable=True),
    PaneSpec(2, "Worktrees", WorktreesPane, Area.RIGHT_TOP),
    PaneSpec(3, "Artifacts", ArtifactsPane, Area.RIGHT_MIDDLE),
    PaneSpec(4, "QA", QaPane, Area.RIGHT_MIDDLE),
    PaneSpec(5, "Mail", MailPane, Area.RIGHT_BOTTOM, filterable=True),
    PaneSpec(6, "Log", LogPane, Area.BOTTOM, filterable=True),
)
PANE_NUMBERS: tuple[int, ...] = tuple(spec.number for spec in PANES)
