"""How the console writes what runs cost: dollars and token counts, short
enough for a column (``$0.48``, ``188k``) and the header."""

from __future__ import annotations

from factory_tui.model import Totals


def money(dollars: float) -> str:
    """At most six characters: $0.48, $12.34, $123, $1.2k."""
    if dollars < 99.995:
        return f"${dollars:.2f}"
    if dollars < 999.5:
        return f"${dollars:.0f}"
    return f"${dollars / 1000:.1f}k"


def token_count(n: int) -> str:
    """At most four characters: 950, 1.2k, 188k, 1.2M, 12M."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n // 100 / 10:.1f}k"  # floored: 9,999 is 9.9k, not 10.0k
    if n < 1_000_000:
        return f"{n // 1000}k"
    if n < 10_000_000:
        return f"{n // 100_000 / 10:.1f}M"
    return f"{n // 1_000_000}M"


def usage_text(totals: Totals | None) -> str:
    """``$0.48 188k`` (cost, then tokens in and out), what of it was
    reported, or nothing."""
    if totals is None:
        return ""
    parts = []
    if totals.cost_usd:
        parts.append(money(totals.cost_usd))
    tokens = totals.input_tokens + totals.output_tokens
    if tokens:
        parts.append(token_count(tokens))
    return " ".join(parts)
