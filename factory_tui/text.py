"""Showing text from outside (titles, notes, agent output, file names)
literally.

Terminal control characters become visible symbols (ESC shows as ␛), so a
title can neither colour nor move the operator's terminal, and bidirectional
overrides and invisible characters (zero-width spaces and joiners, the byte
order mark, soft hyphens, line and paragraph separators) are shown as
escapes (``\\u200b``) so that text cannot disguise itself: two titles that
look alike are told apart, and nothing hides inside a word. Rich markup needs
no treatment here: every widget builds ``Text``/``Content`` from these strings
without parsing markup.
"""

from __future__ import annotations

import json
import re

# C0 controls and DEL map to the Unicode "control pictures" block.
_C0 = {code: chr(0x2400 + code) for code in range(0x20)}
_C0[0x7F] = "\u2421"
_C0.pop(0x09)  # tab is handled by expand
# Shown as \uXXXX escapes: C1 controls, bidi marks and overrides, and the
# characters that take no room: zero-width space, non-joiner and joiner
# (U+200B-U+200D), word joiner and invisible operators (U+2060-U+2064), the
# byte order mark / zero-width no-break space (U+FEFF), the soft hyphen
# (U+00AD), the Mongolian vowel separator (U+180E), and the line and
# paragraph separators (U+2028, U+2029) that some terminals break lines on.
_ESCAPED = (
    "\x80-\x9f"
    "\u202a-\u202e\u2066-\u2069\u200e\u200f"
    "\u200b-\u200d\u2060-\u2064\ufeff\u00ad\u180e\u2028\u2029"
)
_C1_AND_BIDI = re.compile(f"[{_ESCAPED}]")
_NEEDS_WORK = re.compile(f"[\x00-\x1f\x7f{_ESCAPED}]")


def _escape(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def needs_literal(text: str) -> bool:
    """Whether ``literal`` would change ``text`` (apart from cutting it)."""
    return _NEEDS_WORK.search(text) is not None


def literal(text: str, *, multiline: bool = False, tab: int = 4) -> str:
    """``text`` with every control character made visible.

    One-line text shows a newline as ⏎ (U+23CE); with ``multiline`` newlines
    stay. Tabs become spaces.
    """
    if not _NEEDS_WORK.search(text):
        return text
    if "\t" in text:
        text = text.expandtabs(tab)
    table = dict(_C0)
    if multiline:
        text = text.replace("\r\n", "\n")
        del table[0x0A]
    else:
        table[0x0A] = "\u23ce"
    text = text.translate(table)
    return _C1_AND_BIDI.sub(_escape, text)


def one_line(text: str, width: int) -> str:
    """``literal`` text cut to ``width`` characters with an ellipsis."""
    return cut(literal(text), width)


def cut(text: str, width: int) -> str:
    """``text`` (already fit to show) cut to ``width`` characters with an
    ellipsis."""
    if len(text) <= width:
        return text
    if width <= 0:
        # No room even for the ellipsis: anything shown would overflow.
        return ""
    return text[: width - 1] + "…"


def dumps_json(data: object) -> str:
    """JSON for the terminal: readable Unicode, but no C1 control or bidi
    override left raw (json already escapes C0)."""
    return _C1_AND_BIDI.sub(_escape, json.dumps(data, indent=2, ensure_ascii=False))
