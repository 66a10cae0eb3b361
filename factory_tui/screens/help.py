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

from factory_tui.keys import SECTIONS, section_of

_RENAMED = {"app.focus_next": "Next pane", "app.focus_previous": "Previous pane"}
# The list widgets scroll by rows only; ScrollView's sideways keys do nothing.
_HIDDEN = {
    "scroll_left", "scroll_right", "page_left", "page_right", "scroll_home", "scroll_end",
    "command_palette", "screen.copy_text",
}


def describe_bindings(app, bindings: dict[str, ActiveBinding]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """[(section, [(keys, description, tooltip), …]), …]: the focused
    pane's own keys first, then moving about, then keys that work anywhere."""
    rows: dict[tuple[str, str], tuple[list[str], Binding]] = {}
    for key, active in bindings.items():
        binding = active.binding
        action = binding.action
        if binding.system or action in _HIDDEN:
            continue
        # Sections come from the keys' own registry, never from class names.
        section = section_of(binding.id) or "Everywhere"
        if action.startswith("focus_pane("):
            # One row for the six number keys.
            action, binding = "focus_pane", Binding(key, "focus_pane", "Go to pane 1–6 (1 Plan … 6 Log)")
        keys, _ = rows.setdefault((section, action), ([], binding))
        keys.append(app.get_key_display(Binding(key, binding.action)))
    sections: dict[str, list[tuple[str, str, str]]] = {}
    for (section, action), (keys, binding) in rows.items():
        sections.setdefault(section, []).append(
            (" ".join(dict.fromkeys(keys)), _RENAMED.get(action, binding.description or action), binding.tooltip)
        )
    return sorted(sections.items(), key=lambda item: SECTIONS.index(item[0]) if item[0] in SECTIONS else len(SECTIONS))


class HelpScreen(ModalScreen[None]):
    """Keys for the focused pane; any key closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]  # a dialog's own

    def __init__(self, title: str, bindings: dict[str, ActiveBinding], *, note: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.help_title = title
        self.bindings = bindings
        # A word about the state of things (no engine running, say).
        self.note = note

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
            if self.note:
                yield Static(self.note, classes="dialog-detail help-note", markup=False)
            with VerticalScroll():
                yield Static(table)
            yield Static("esc closes this help", classes="dialog-detail", markup=False)
