"""A ``verify`` scenario's patterns searched over its output, with a time limit.

What it owns: ``search_patterns(text, expect, expect_not, seconds)``, which
says which ``expect`` patterns are missing from the output and which
``expect_not`` ones are in it.

Why a child process: Python's ``re`` backtracks, so a pattern such as
``(a+)+$`` against a long line of ``a``'s ending in ``b`` runs for longer
than anyone waits, and it holds the GIL while it does (a thread could
neither be stopped nor let the engine's other threads run). Refusing
"dangerous" patterns at load cannot be done right: nested quantifiers are
one shape of many (``(a|aa)*$``, ``(\\w+\\s?)*$``), and the same shapes are
harmless on most text. A child process can be killed at its deadline, whatever
the pattern; it costs one interpreter start (about 20 ms) per verify,
next to a command that took far longer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

# Run by ``python -I -S -c``: no site, no user paths, the standard library only.
_CHILD = r"""
import json, re, sys
job = json.loads(sys.stdin.buffer.read().decode("utf-8"))
text = job["text"]
missing = [p for p in job["expect"] if not re.search(p, text, re.MULTILINE)]
found = [p for p in job["expect_not"] if re.search(p, text, re.MULTILINE)]
sys.stdout.write(json.dumps({"missing": missing, "found": found}))
"""


class PatternsTimedOut(Exception):
    """The patterns were not searched within their time."""


class PatternsFailed(Exception):
    """The search could not be made (a bad pattern, a child that died)."""


@dataclass(frozen=True, slots=True)
class PatternReport:
    missing: tuple[str, ...]  # expect patterns not found
    found: tuple[str, ...]  # expect_not patterns found


def search_patterns(text: str, expect: tuple[str, ...], expect_not: tuple[str, ...], *,
                    seconds: float) -> PatternReport:
    """Search every pattern over ``text`` (MULTILINE) in a child process
    killed after ``seconds``: PatternsTimedOut then, PatternsFailed when
    the child fails otherwise."""
    job = json.dumps({"text": text, "expect": list(expect), "expect_not": list(expect_not)},
                     ensure_ascii=False).encode("utf-8")
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _CHILD], input=job, capture_output=True,
                              timeout=seconds)
    except subprocess.TimeoutExpired:
        # subprocess.run killed the child and reaped it.
        raise PatternsTimedOut(f"the patterns were not searched within {seconds:g} s") from None
    except OSError as error:
        raise PatternsFailed(f"cannot search the patterns: {error.strerror or error}") from None
    if done.returncode != 0:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise PatternsFailed(f"cannot search the patterns: {last[0]}")
    answer = json.loads(done.stdout)
    return PatternReport(tuple(answer["missing"]), tuple(answer["found"]))
