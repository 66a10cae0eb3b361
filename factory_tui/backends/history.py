"""The session history as a document: the landings (newest first) rendered
to the text of ``.factory/artifacts/history.md``.

Pure: the log's landings in, markdown out. Only the newest landings that
fit in ``HISTORY_BUDGET`` are rendered (the rest are counted), so that a
base with 10,000 landings renders its history as fast as one with ten,
and the whole of it fits in a prompt by its own budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from factory_tui.artifacts_model import Landing

# Bytes of the history's body: its budget in a prompt, and all it renders.
HISTORY_BUDGET = 12_000
TITLE_LIMIT = 200
LAST_WORDS_LIMIT = 400
# Room kept for the closing line that counts the landings left out.
_FOOTER_ROOM = 160
FRONT_MATTER = f"""---
title: Session history
generated: true
budget: {HISTORY_BUDGET}
---
"""
INTRO = (
    "# Session history\n\n"
    "_Written by the factory from its execution log at every landing: it is rewritten "
    "each time, so edits made here are lost._\n"
)


def render_history(landings: Iterable[Landing], total: int, *, budget: int = HISTORY_BUDGET) -> str:
    """The whole file: front matter, then as many of ``landings`` (newest
    first) as fit in ``budget`` bytes of body; ``total``: landings in all."""
    return FRONT_MATTER + render_body(landings, total, budget=budget)


def render_body(landings: Iterable[Landing], total: int, *, budget: int = HISTORY_BUDGET) -> str:
    if total == 0:
        return INTRO + "\nNo task has landed yet.\n"
    parts = [INTRO, f"\n{_count(total, 'task')} landed; the newest first.\n"]
    used = sum(_size(part) for part in parts)
    shown = 0
    for landing in landings:
        entry = "\n" + render_entry(landing)
        if used + _size(entry) > budget - _FOOTER_ROOM:
            break
        parts.append(entry)
        used += _size(entry)
        shown += 1
    if shown < total:
        parts.append(f"\n… and {_count(total - shown, 'earlier landing')}, kept in the factory's execution log.\n")
    return "".join(parts)


def render_entry(landing: Landing) -> str:
    title = _one_line(landing.title)[:TITLE_LIMIT]
    lines = [f"## {landing.task_id}: {title}", ""]
    landed = f"- Landed {stamp(landing.at)}, approved by {_one_line(landing.actor)}"
    if landing.commit:
        landed += f"; commit `{landing.commit[:10]}`"
    else:
        landed += "; nothing to merge"
    lines.append(landed)
    agent = landing.profile or "no agent run"
    if landing.profile and landing.agent:
        agent += f" (`{_one_line(landing.agent)}`)"
    lines.append(f"- Agent: {_one_line(agent)}, {_count(landing.attempts, 'attempt')}"
                 + (" (the factory's update of its living documents)" if landing.refresh else ""))
    if landing.qa:
        verdicts = "; ".join(f"{_one_line(item.scenario)} {item.verdict} ({item.gate})" for item in landing.qa)
        lines.append(f"- QA: {verdicts}")
    else:
        lines.append("- QA: none ran")
    lines.append(f"- Cost: {cost(landing)}")
    words = _one_line(landing.last_words or "")
    if words:
        if len(words) > LAST_WORDS_LIMIT:
            words = words[: LAST_WORDS_LIMIT - 1] + "…"
        lines.append(f"- Last words: {words}")
    return "\n".join(lines) + "\n"


def cost(landing: Landing) -> str:
    if landing.cost_usd is None and landing.input_tokens is None and landing.output_tokens is None:
        return "not reported"
    parts = []
    if landing.cost_usd is not None:
        parts.append(f"${landing.cost_usd:.4f}")
    if landing.input_tokens is not None or landing.output_tokens is not None:
        parts.append(f"{landing.input_tokens or 0:,} tokens in, {landing.output_tokens or 0:,} out")
    return "; ".join(parts)


def stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
