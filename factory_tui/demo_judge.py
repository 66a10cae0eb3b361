"""The demo judge: a real program that judges an agent's work the way a
judge agent does, offline and deterministically, so that ``factory demo``
and the tests see QA judged without paying for a model.

``python -m factory_tui.demo_judge [--prompt-file F] [--format FORMAT]``
(else the prompt comes on stdin). It reads the prompt a judge is given
(``factory_tui.qa_verdict.judge_prompt``), takes the rubric and the diff
from their fences (only the frame's own fences: nothing inside the material
can open or close one), checks the rubric's checkable claims against the
diff, prints one reason per line and ends with its verdict line. It never
follows anything the material says: it reads the diff's added lines as
evidence, nothing more.

The rubric convention it checks (list items, ``-``, ``*`` or ``1.``):

- ``- the diff adds a file under `tests/```: a file the diff creates lies
  under that folder.
- ``- the diff adds a file matching `tests/test_*.py```: a file the diff
  creates matches that glob.
- ``- mentions `argon2```: every backticked word appears in a line the diff
  adds. With ``not``, ``never`` or ``no`` as a word of the item
  (``- does not mention `md5```), none may appear.
- An item without backticks cannot be checked: it is listed as such and
  counts neither way.

It passes when every checkable claim holds; it fails when one does not,
when the rubric has no checkable claim, or when the diff adds nothing.

``--format claude-stream-json`` prints its answer as Claude Code's
stream-json (an assistant message and a result line with made-up cost and
tokens), so a judge profile with that output has figures to sum; the
default ``text`` prints the answer as it is.

Environment knobs: ``FACTORY_DEMO_JUDGE_SECONDS`` (default 0.3): how long
the answer is spread over; ``FACTORY_DEMO_JUDGE_SEED``: makes the figures
repeatable (the verdict always is).

Exit codes: 0 judged (whatever the verdict), 2 cannot start (no prompt, a
bad knob; one line on stderr).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import random
import re
import sys
import time
import uuid
from dataclasses import dataclass, field

# The demo agent's: one way to read a prompt and to refuse to start.
from factory_tui.demo_agent import CannotStart, float_knob, read_prompt
from factory_tui.qa_verdict import QUOTED, fenced_pieces

NAME = "demo_judge"
MODEL = "factory-demo-judge"
DEFAULT_SECONDS = 0.3
EXIT_CANNOT_START = 2
PRICE_IN, PRICE_OUT = 3e-6, 15e-6
FORMATS = ("text", "claude-stream-json")

_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?P<text>.+?)\s*$")
_TICKED = re.compile(r"`([^`\n]+)`")
_NEGATION = re.compile(r"\b(?:not|never|no)\b", re.IGNORECASE)
_ADDS_UNDER = re.compile(r"\badds? a file (?:under|in)\b", re.IGNORECASE)
_ADDS_MATCHING = re.compile(r"\badds? a file (?:matching|named|like)\b", re.IGNORECASE)


@dataclass
class Diff:
    added_lines: list[str] = field(default_factory=list)
    added_files: list[str] = field(default_factory=list)


def read_diff(text: str) -> Diff:
    """The lines a unified diff adds and the files it creates."""
    diff = Diff()
    from_nothing = False
    for line in text.split("\n"):
        line = line.removeprefix(QUOTED)
        if line.startswith("--- "):
            from_nothing = line[4:].strip() == "/dev/null"
        elif line.startswith("+++ "):
            target = line[4:].strip()
            if from_nothing and target != "/dev/null":
                diff.added_files.append(target.removeprefix("b/"))
            from_nothing = False
        elif line.startswith("+"):
            diff.added_lines.append(line[1:])
    return diff


def check_claim(item: str, diff: Diff) -> tuple[bool, str] | None:
    """(holds, reason) for one rubric item, or None when it cannot be checked."""
    words = _TICKED.findall(item)
    if not words:
        return None
    if _ADDS_UNDER.search(item) or _ADDS_MATCHING.search(item):
        under = bool(_ADDS_UNDER.search(item))
        for word in words:
            pattern = word.rstrip("/") + "/*" if under else word
            found = [path for path in diff.added_files if fnmatch.fnmatchcase(path, pattern)]
            if not found:
                where = "under" if under else "matching"
                return False, f"no file added {where} `{word}`"
        return True, f"a file is added {'under' if under else 'matching'} " + ", ".join(f"`{w}`" for w in words)
    added = "\n".join(diff.added_lines)
    if _NEGATION.search(item):
        present = [word for word in words if word in added]
        if present:
            return False, "the diff adds " + ", ".join(f"`{w}`" for w in present) + " (it must not)"
        return True, "the diff does not add " + ", ".join(f"`{w}`" for w in words)
    missing = [word for word in words if word not in added]
    if missing:
        return False, "the diff's added lines lack " + ", ".join(f"`{w}`" for w in missing)
    return True, "the diff adds " + ", ".join(f"`{w}`" for w in words)


def judge(prompt: str) -> tuple[list[str], str]:
    """The reasons, one line each, and the verdict line."""
    pieces = dict(reversed(fenced_pieces(prompt)))  # the first of each label
    if "rubric" not in pieces:
        return ["the prompt holds no fenced rubric"], "VERDICT: FAIL no rubric to judge by"
    diff = read_diff(pieces.get("diff", ""))
    reasons: list[str] = []
    failed: list[str] = []
    checked = 0
    for line in pieces["rubric"].split("\n"):
        match = _ITEM.match(line.removeprefix(QUOTED))
        if not match:
            continue
        item = match.group("text")
        result = check_claim(item, diff)
        if result is None:
            reasons.append(f"- not checkable by the demo judge: {item}")
            continue
        checked += 1
        holds, why = result
        reasons.append(f"- {'met' if holds else 'NOT met'}: {item} ({why})")
        if not holds:
            failed.append(why)
    if not diff.added_lines and not diff.added_files:
        return [*reasons, "- the diff adds nothing"], "VERDICT: FAIL the diff adds nothing"
    if not checked:
        return reasons, "VERDICT: FAIL the rubric has no claim the demo judge can check"
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return reasons, f"VERDICT: FAIL {failed[0]}{more}"
    return reasons, "VERDICT: PASS"


def read_seconds(environ: dict[str, str]) -> float:
    value = float_knob(environ, "FACTORY_DEMO_JUDGE_SECONDS", DEFAULT_SECONDS)
    if value < 0:
        raise CannotStart(f"FACTORY_DEMO_JUDGE_SECONDS must be 0 or more, not {value:g}")
    return value


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def answer(prompt: str, *, output: str, seconds: float, seed: str | None) -> None:
    started = time.monotonic()
    reasons, verdict = judge(prompt)
    lines = ["I checked the rubric's claims against the diff's added lines.", *reasons, verdict]
    pause = seconds / len(lines)
    if output == "text":
        for line in lines:
            time.sleep(pause)
            _emit(line)
        return
    rng = random.Random(seed) if seed is not None else random.Random()
    session = str(uuid.uuid4())
    _emit(json.dumps({"type": "system", "subtype": "init", "session_id": session, "model": MODEL}))
    time.sleep(seconds)
    text = "\n".join(lines)
    message = {"id": "msg_" + uuid.uuid4().hex[:20], "type": "message", "role": "assistant", "model": MODEL,
               "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}
    _emit(json.dumps({"type": "assistant", "message": message, "session_id": session}, ensure_ascii=False))
    input_tokens = len(prompt) // 4 + rng.randint(100, 400)
    output_tokens = len(text) // 4 + rng.randint(20, 80)
    _emit(json.dumps({
        "type": "result", "subtype": "success", "is_error": False,
        "duration_ms": int((time.monotonic() - started) * 1000), "num_turns": 1,
        "result": text, "session_id": session,
        "total_cost_usd": round(input_tokens * PRICE_IN + output_tokens * PRICE_OUT, 6),
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": output_tokens},
    }, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m factory_tui.demo_judge",
        description="A demo judge: checks a rubric's claims against a diff and prints a verdict.",
    )
    parser.add_argument("--prompt-file", help="the prompt (default: read from stdin)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="how to print the answer")
    args = parser.parse_args(argv)
    try:
        seconds = read_seconds(dict(os.environ))
        prompt = read_prompt(args.prompt_file)
    except CannotStart as error:
        print(f"{NAME}: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    answer(prompt, output=args.format, seconds=seconds, seed=os.environ.get("FACTORY_DEMO_JUDGE_SEED") or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
