"""How states and event kinds look on screen: a symbol and a colour each, so
that a state reads without colour too.

The colours come from the theme (``palette(node)``): what has a meaning in
every theme takes the theme's own text colour for it (review is
``$text-warning``, failed ``$text-error``, done ``$text-success``, queued
``$text-primary``); the states no theme names (running, proposed, held)
keep a hue of their own. Every colour is then made readable on the theme's
background (a contrast of at least 4.5:1, WCAG's mark for text), by moving
it toward the theme's foreground: hard-coded colours that suit a dark
background are unreadable on a light one (#e5c07b on textual-light is
1.3:1).

The module-level ``STATE_STYLE`` and ``KIND_STYLE`` are the dark theme's,
for what has no node to ask (and for the screens until they ask too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.style import Style
from textual.color import Color, ColorParseError

from factory_tui.model import State, WorktreeStatus

if TYPE_CHECKING:
    from textual.dom import DOMNode

STATE_SYMBOL: dict[State, str] = {
    State.PROPOSED: "?",
    State.QUEUED: "○",
    State.HELD: "‖",
    State.RUNNING: "▶",
    State.CHECKING: "…",
    State.REVIEW: "◆",
    State.FAILED: "✗",
    State.DONE: "✓",
    State.CANCELLED: "⊘",
}

# The mark of a row picked for a bulk action (space).
MARK_SYMBOL = "●"

# The dark palette the console was drawn with before it asked its theme.
STATE_COLOUR: dict[State, str] = {
    State.PROPOSED: "#c678dd",
    State.QUEUED: "#61afef",
    State.HELD: "#d19a66",
    State.RUNNING: "#56b6c2",
    State.CHECKING: "#56b6c2",
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

# --- what each state and event kind stands for --------------------------------

# A role is a theme variable (``text-warning``) or a hue of our own
# (``#56b6c2``); ``muted`` is the foreground faded toward the background.
STATE_ROLE: dict[State, str] = {
    State.PROPOSED: "#c678dd",
    State.QUEUED: "text-primary",
    State.HELD: "#d19a66",
    State.RUNNING: "#56b6c2",
    State.CHECKING: "#56b6c2",
    State.REVIEW: "text-warning",
    State.FAILED: "text-error",
    State.DONE: "text-success",
    State.CANCELLED: "muted",
}

# Event kinds take the colour of the state they lead to, or of what they are.
KIND_STATE: dict[str, State | str] = {
    "created": State.QUEUED,
    "approved": State.DONE,
    "requeued": State.REVIEW,
    "cancelled": State.CANCELLED,
    "held": State.HELD,
    "released": State.QUEUED,
    "claimed": State.RUNNING,
    "adopted": State.RUNNING,
    "finished": State.REVIEW,
    "failed": State.FAILED,
    "expired": State.FAILED,
    "stopped": State.HELD,
    "checking": State.CHECKING,
    "passed": State.REVIEW,
    "rejected": State.QUEUED,
    "qa": State.CHECKING,
    "note": State.PROPOSED,
    "progress": "muted",
    "priority": "plain",
    "depends": "plain",
    "undepends": "plain",
    "warning": State.REVIEW,
}

KIND_STYLE: dict[str, Style] = {
    kind: (Style(color=STATE_COLOUR[role]) if isinstance(role, State)
           else Style(color="#7f848e") if role == "muted" else Style(color="#abb2bf"))
    for kind, role in KIND_STATE.items()
}
KIND_STYLE["warning"] = Style(color=STATE_COLOUR[State.REVIEW], bold=True)

WORKTREE_STATE: dict[WorktreeStatus, State] = {
    WorktreeStatus.RUNNING: State.RUNNING,
    WorktreeStatus.REVIEW: State.REVIEW,
    WorktreeStatus.FAILED: State.FAILED,
    WorktreeStatus.WAITING: State.QUEUED,
    WorktreeStatus.ORPHANED: State.CANCELLED,
}

# WCAG's contrast for ordinary text.
MIN_CONTRAST = 4.5


@dataclass(frozen=True, slots=True)
class Palette:
    """The console's colours under one theme."""

    state: dict[State, Style]
    heading: dict[State, Style]
    kind: dict[str, Style]
    worktree: dict[WorktreeStatus, Style]
    muted: Style
    """Secondary text (times, actors, placeholders): readable, unlike dim."""
    ident: Style
    """Task ids."""
    blocked: Style
    """What a waiting task waits for."""
    problem: Style
    """Why a task failed, a task that can never run, a conflict."""
    good: Style
    """Added lines, a clean merge."""
    mark: Style
    """The mark of a row picked for a bulk action."""


def contrast(one: Color, other: Color) -> float:
    """WCAG's contrast ratio of two opaque colours (1 to 21)."""

    def luminance(colour: Color) -> float:
        def channel(value: int) -> float:
            c = value / 255
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        r, g, b = colour.rgb
        return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)

    lighter, darker = sorted((luminance(one), luminance(other)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def readable(colour: Color, backgrounds: list[Color], foreground: Color, *, ratio: float = MIN_CONTRAST) -> Color:
    """``colour``, moved toward ``foreground`` just enough to stand out
    from every one of ``backgrounds`` by ``ratio`` (the hue is kept as far
    as it can be)."""
    def enough(candidate: Color) -> bool:
        return min(contrast(candidate, bg) for bg in backgrounds) >= ratio

    step = 0.0
    moved = colour
    while step < 1.0 and not enough(moved):
        step = round(step + 0.05, 2)
        moved = colour.blend(foreground, step)
    # A theme whose own foreground is short of the mark on its panel (the
    # solarized-light one): on toward black, or white on a dark theme.
    extreme = Color(0, 0, 0) if foreground.brightness < 0.5 else Color(255, 255, 255)
    start, step = moved, 0.0
    while step < 1.0 and not enough(moved):
        step = round(step + 0.05, 2)
        moved = start.blend(extreme, step)
    return moved


def _palette(variables: dict[str, str]) -> Palette:
    def parse(name: str, fallback: str) -> Color:
        try:
            return Color.parse(variables.get(name, fallback))
        except ColorParseError:
            return Color.parse(fallback)

    background = parse("background", "#121212")
    foreground = background + parse("foreground", "#e0e0e0")
    # Rows sit on the background, the header on the panel, a focused
    # filter on the surface: readable on all of them.
    backgrounds = [background, background + parse("surface", "#1e1e1e"), background + parse("panel", "#242f38")]

    def colour(role: str) -> Color:
        if role == "muted":
            return readable(background.blend(foreground, 0.6), backgrounds, foreground)
        if role.startswith("#"):
            found = Color.parse(role)
        else:
            found = background + parse(role, "#e0e0e0")
        return readable(found, backgrounds, foreground)

    state_colour = {state: colour(role).rich_color for state, role in STATE_ROLE.items()}
    muted = colour("muted").rich_color
    plain = foreground.rich_color
    kind: dict[str, Style] = {}
    for name, role in KIND_STATE.items():
        if isinstance(role, State):
            kind[name] = Style(color=state_colour[role])
        else:
            kind[name] = Style(color=muted if role == "muted" else plain)
    kind["warning"] = kind["warning"] + Style(bold=True)
    worktree = {status: Style(color=state_colour[state]) for status, state in WORKTREE_STATE.items()}
    worktree[WorktreeStatus.RUNNING] += Style(bold=True)
    worktree[WorktreeStatus.ORPHANED] += Style(italic=True)
    return Palette(
        state={state: Style(color=c) for state, c in state_colour.items()},
        heading={state: Style(color=c, bold=True) for state, c in state_colour.items()},
        kind=kind,
        worktree=worktree,
        muted=Style(color=muted),
        ident=Style(color=plain, bold=True),
        blocked=Style(color=state_colour[State.HELD]),
        problem=Style(color=state_colour[State.FAILED]),
        good=Style(color=state_colour[State.DONE]),
        mark=Style(color=colour("text-accent").rich_color, bold=True),
    )


_PALETTES: dict[str, Palette] = {}


def palette(node: DOMNode) -> Palette:
    """The colours for ``node``'s app under its current theme (made once
    per theme name: rows ask for it as they are drawn)."""
    app = node.app
    found = _PALETTES.get(app.theme)
    if found is None:
        found = _PALETTES[app.theme] = _palette(app.get_css_variables())
    return found
