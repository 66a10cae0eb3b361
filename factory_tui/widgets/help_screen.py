"""``?``: every key that works where the operator is, hidden ones included,
grouped by where they come from (the pane, the list, the whole console)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# Friendlier names for the places bindings come from.
_ORIGIN = {
    "PlanTable": "Plan",
    "EventLog": "Log",
    "VirtualList": "Lists",
    "Pane": "Pane",
    "FactoryApp": "Everywhere",
    "TaskScreen": "Task",
    "DashboardScreen": "Everywhere",
}


def describe_bindings(app, bindings: dict[str, ActiveBinding]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """[(origin, [(keys, description, tooltip), …]), …] in a stable order."""
    grouped: dict[tuple[str, str], tuple[list[str], Binding]] = {}
    origin_of: dict[tuple[str, str], str] = {}
    for key, active in bindings.items():
        binding = active.binding
        if binding.system or binding.action in ("command_palette",):
            continue
        origin = _ORIGIN.get(type(active.node).__name__, type(active.node).__name__)
        ident = (origin, binding.action)
        keys, _ = grouped.setdefault(ident, ([], binding))
        keys.append(app.get_key_display(Binding(key, binding.action)))
        origin_of[ident] = origin
    sections: dict[str, list[tuple[str, str, str]]] = {}
    for ident, (keys, binding) in grouped.items():
        sections.setdefault(origin_of[ident], []).append(
            (" ".join(dict.fromkeys(keys)), binding.description or binding.action, binding.tooltip)
        )
    order = ["Task", "Plan", "Log", "Pane", "Lists", "Everywhere"]
    return sorted(sections.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99)


class HelpScreen(ModalScreen[None]):
    """Keys for the focused pane; any key closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, title: str, bindings: dict[str, ActiveBinding]) -> None:
        super().__init__(classes="dialog-screen")
        self.help_title = title
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_column(style="dim")
        for origin, rows in describe_bindings(self.app, self.bindings):
            table.add_row(Text(origin, style="bold underline"), "", "")
            for keys, description, tooltip in rows:
                table.add_row(Text(keys), Text(description), Text(tooltip or ""))
            table.add_row("", "", "")
        table.add_row(Text("ctrl+p", style="bold"), "Command palette", Text("every action by name", style="dim"))
        with Vertical(classes="dialog help"):
            yield Static(f"Keys: {self.help_title}", classes="dialog-title", markup=False)
            with VerticalScroll():
                yield Static(table)
            yield Static("esc closes this help", classes="dialog-detail", markup=False)
