"""What every part of the console reaches through the app: the base's
session (backends/session.py), the name actions are recorded under, and
what "now" is. Panes and screens take these from here rather than from
``FactoryApp`` itself, so that no module of theirs imports the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from factory_tui.actions import TaskActions
    from factory_tui.backends.base import FactoryBase
    from factory_tui.backends.session import FactorySession
    from factory_tui.engine_host import EngineHost
    from factory_tui.model import Task


class Console(Protocol):
    base: FactoryBase
    session: FactorySession
    actor: str
    actions: TaskActions
    engine: EngineHost

    def clock(self) -> float: ...

    def task_by_id(self, task_id: str) -> Task | None: ...


def console(node: DOMNode) -> Console:
    return cast("Console", node.app)
