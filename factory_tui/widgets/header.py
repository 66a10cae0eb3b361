"""The console's one-line header: which factory, its base branch, the engine,
and how many tasks wait in each state that matters."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from factory_tui.model import State
from factory_tui.text import literal
from factory_tui.widgets.styles import STATE_STYLE, STATE_SYMBOL

_SHOWN = (State.RUNNING, State.QUEUED, State.REVIEW, State.FAILED, State.PROPOSED, State.HELD, State.DONE)


class FactoryHeader(Widget):
    DEFAULT_CSS = """
    FactoryHeader {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    factory_name: reactive[str] = reactive("")
    """The factory's name, from factory.toml."""
    base_branch: reactive[str] = reactive("")
    """The branch approved work lands on."""
    engine: reactive[str] = reactive("engine: none")
    """Which engine drives the base, as the operator should read it."""
    agent: reactive[str] = reactive("")
    """The agent profile tasks run with by default."""
    counts: reactive[dict] = reactive(dict, always_update=True)
    """Tasks per state."""

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" factory ", style="bold reverse")
        text.append(" ")
        text.append(literal(self.factory_name), style="bold")
        if self.base_branch:
            text.append(f"  on {literal(self.base_branch)}", style="dim")
        text.append(f"  {self.engine}", style="dim")
        if self.agent:
            text.append(f" · agent {literal(self.agent)}", style="dim")
        if not self.counts:
            text.append("  loading…", style="dim italic")
            return text
        text.append("   ")
        for state in _SHOWN:
            text.append(f"{STATE_SYMBOL[state]} {self.counts.get(state, 0)} {state.value}", style=STATE_STYLE[state])
            text.append("  ")
        return text
