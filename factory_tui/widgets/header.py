"""The console's one-line header: which factory, its base branch, the
engine, how many tasks are in each state, unread mail and requests waiting
for us, and what runs cost today and in all.

The counts are never cut: at the right of the line, in the longest form
that leaves room for the factory's name (``▶ 1 running  ○ 4 queued``, then
``▶1 ○4 ◆1``, then only the states that have tasks); the left part (name,
branch, engine, agent) gives way first, ending in an ellipsis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from factory_tui.model import State, Totals
from factory_tui.text import literal
from factory_tui.widgets.figures import money, token_count, usage_text
from factory_tui.widgets.styles import STATE_SYMBOL, palette

if TYPE_CHECKING:
    from factory_tui.backends.mail_log import MailCounts

_SHOWN = (State.RUNNING, State.CHECKING, State.QUEUED, State.REVIEW, State.FAILED, State.PROPOSED, State.HELD,
          State.DONE)
# Shown only while there are some: most of the time none is being checked.
_WHEN_ANY = frozenset({State.CHECKING})
# What of the left part stays however narrow the header is: " factory "
# and this much of the name.
_MIN_NAME = 12


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
    usage: reactive[tuple[Totals, Totals] | None] = reactive(None)
    """What runs cost today, and in all (the Plan pane reads it when runs end)."""
    mail: reactive[MailCounts | None] = reactive(None)
    """Unread mail and requests waiting for us (the Mail pane reads them)."""

    # --- the parts ------------------------------------------------------------

    def _left(self) -> Text:
        muted = palette(self).muted
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" factory ", style="bold reverse")
        text.append(" ")
        text.append(literal(self.factory_name), style="bold")
        if self.base_branch:
            text.append(f"  on {literal(self.base_branch)}", style=muted)
        text.append(f"  {self.engine}", style=muted)
        if self.agent:
            text.append(f" · agent {literal(self.agent)}", style=muted)
        return text

    def count_forms(self) -> list[Text]:
        """The counts, longest form first."""
        colours = palette(self)
        counts = self.counts
        full, compact, busy = Text(), Text(), Text()
        for state in _SHOWN:
            n = counts.get(state, 0)
            if not n and state in _WHEN_ANY:
                continue
            style = colours.state[state]
            full.append(f"{STATE_SYMBOL[state]} {n} {state.value}  ", style=style)
            compact.append(f"{STATE_SYMBOL[state]}{n} ", style=style)
            if n:
                busy.append(f"{STATE_SYMBOL[state]}{n} ", style=style)
        return [full, compact, busy]

    def usage_forms(self) -> list[str]:
        """What runs cost, longest form first; nothing when no run reported
        a figure."""
        if self.usage is None:
            return [""]
        today, total = self.usage
        if not usage_text(total):
            return [""]

        def brief(totals: Totals) -> str:
            if totals.cost_usd:
                return money(totals.cost_usd)
            tokens = totals.input_tokens + totals.output_tokens
            return f"{token_count(tokens)} tok" if tokens else "$0"

        nothing_yet = "$0.00" if total.cost_usd else "0"
        return [
            f"today {usage_text(today) or nothing_yet} · in all {usage_text(total)}  ",
            f"{brief(today)} today · {brief(total)} in all  ",
            f"{brief(today)}/{brief(total)} ",
            "",
        ]

    def mail_forms(self) -> list[Text]:
        """Unread mail and waiting requests, longest form first; nothing
        when there are none."""
        counts = self.mail
        if counts is None or not (counts.unread or counts.waiting_requests):
            return [Text()]
        colours = palette(self)
        style = colours.blocked if counts.waiting_requests else colours.muted
        full, compact = Text(style=style), Text(style=style)
        full.append(f"✉ {counts.unread} unread")
        compact.append(f"✉{counts.unread}")
        if counts.waiting_requests:
            full.append(f" · {counts.waiting_requests} request{'s' if counts.waiting_requests != 1 else ''}")
            # Not "?N": the task counts beside it use ? for proposed tasks.
            compact.append(f"·{counts.waiting_requests}req")
        full.append("  ")
        compact.append(" ")
        return [full, compact]

    def _right(self, width: int, lefts: list[int]) -> Text:
        """The longest counts and cost that leave room for the left part:
        all of it if any form allows, else as far as the engine, else the
        name (``lefts``, longest first)."""
        muted = palette(self).muted
        counts = self.count_forms()
        costs = self.usage_forms()
        # Readable words first: the counts' words give way before the
        # cost's; the cost's shortest form comes only after both count
        # forms with words for it, and it goes altogether only when even the
        # shortest counts need its room. Within each tier, the whole left
        # part is kept if it can be, else as far as the engine.
        full, compact, busy = counts
        if costs == [""]:
            tiers = [[(full, ""), (compact, "")], [(busy, "")]]
        else:
            long_cost, short_cost, brief_cost, _ = costs
            tiers = [
                [(full, long_cost), (full, short_cost), (compact, long_cost), (compact, short_cost)],
                [(full, brief_cost), (compact, brief_cost)],
                [(busy, short_cost), (busy, brief_cost), (busy, "")],
            ]
        # The mail's counts go with every choice above, long or short, and
        # go altogether only when nothing fits with them.
        fitting = (
            (c, u, m) for mails in (self.mail_forms(), [Text()]) for tier in tiers for left in lefts
            for c, u in tier for m in mails
            if cell_len(m.plain) + cell_len(c.plain) + cell_len(u) + left < width
        )
        count, cost, mail = next(fitting, (busy, "", Text()))
        line = Text(no_wrap=True)
        line.append_text(mail)
        line.append_text(count)
        if cost:
            line.append(" " if count.plain.endswith("  ") else "")
            line.append(cost, style=muted)
        return line

    def render(self) -> Text:
        width = self.size.width
        left = self._left()
        if not self.counts:
            left.append("  loading…", style=palette(self).muted + Style(italic=True))
            left.truncate(width, overflow="ellipsis")
            return left
        name = cell_len(" factory  ") + cell_len(literal(self.factory_name))
        through_engine = left.cell_len - (cell_len(f" · agent {literal(self.agent)}") if self.agent else 0)
        right = self._right(width, [left.cell_len, through_engine, min(name, cell_len(" factory  ") + _MIN_NAME) + 2])
        room = max(0, width - right.cell_len - 1)
        if left.cell_len > room:
            left.truncate(room, overflow="ellipsis")
        line = left
        line.append(" " * max(1, width - left.cell_len - right.cell_len))
        line.append_text(right)
        return line
