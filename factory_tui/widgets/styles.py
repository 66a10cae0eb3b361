"""How states and event kinds look on screen: a symbol and a colour each, so
that a state reads without colour too."""

from __future__ import annotations

from rich.style import Style

from factory_tui.model import State

STATE_SYMBOL: dict[State, str] = {
    State.PROPOSED: "?",
    State.QUEUED: "○",
    State.HELD: "‖",
    State.RUNNING: "▶",
    State.REVIEW: "◆",
    State.FAILED: "✗",
    State.DONE: "✓",
    State.CANCELLED: "⊘",
}

STATE_COLOUR: dict[State, str] = {
    State.PROPOSED: "#c678dd",
    State.QUEUED: "#61afef",
    State.HELD: "#d19a66",
    State.RUNNING: "#56b6c2",
    State.REVIEW: "#e5c07b",
    State.FAILED: "#e06c75",
    State.DONE: "#98c379",
    State.CANCELLED: "#7f848e",
}

STATE_STYLE: dict[State, Style] = {
    state: Style(color=colour) for state, colour in STATE_COLOUR.items()
}
STATE_HEADING_STYLE: dict[State, Style] = {
    state: Style(color=colour, bold=True) for state, colour in STATE_COLOUR.items()
}

DIM = Style(dim=True)
ID_STYLE = Style(color="#abb2bf", bold=True)
BLOCKED_STYLE = Style(color="#d19a66")

KIND_STYLE: dict[str, Style] = {
    "created": Style(color="#61afef"),
    "approved": Style(color="#98c379"),
    "requeued": Style(color="#e5c07b"),
    "cancelled": Style(color="#7f848e"),
    "held": Style(color="#d19a66"),
    "released": Style(color="#61afef"),
    "claimed": Style(color="#56b6c2"),
    "finished": Style(color="#e5c07b"),
    "failed": Style(color="#e06c75"),
    "expired": Style(color="#e06c75"),
    "priority": Style(color="#abb2bf"),
    "depends": Style(color="#abb2bf"),
    "note": Style(color="#c678dd"),
    "progress": Style(color="#7f848e"),
    "warning": Style(color="#e5c07b", bold=True),
    "stopped": Style(color="#d19a66"),
}
