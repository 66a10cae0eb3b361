"""A judge's verdict, and the prompt that asks for it, made so that the work
under judgement cannot talk the judge round.

Owns four things, all pure (no I/O but reading a template file):

- ``parse_verdict``: the verdict of a judge's answer. The LAST line that
  reads ``VERDICT: PASS`` or ``VERDICT: FAIL <reason>`` decides; anything
  earlier does not count. ``VERDICT`` must be written in capitals (prose
  such as "my verdict: pass" is not a verdict line); the word after it may
  be in any case (``VERDICT: Pass`` is a pass: a model that wrote it meant
  it). Markdown emphasis or backticks around the line are allowed
  (``**VERDICT: PASS**``). No verdict line, or a last one with another word
  (``VERDICT: MAYBE``, ``VERDICT: PASSED``), is ``Verdict.ERROR``: never a
  pass.
- ``fence``: wraps untrusted text (a diff, a transcript, a task's body) in a
  frame whose marker carries a random nonce checked not to occur in the
  text, so the text cannot close its frame or open a forged one; and every
  line of it that ``parse_verdict`` would read as a verdict is prefixed
  with ``[quoted]``, so a judge that echoes the material back cannot be
  parsed as agreeing with it.
- ``judge_prompt`` and ``judge_template``: the prompt, from a template in the
  package (``templates/judge-prompt.md`` for ``eval``,
  ``templates/judge-scenario.md`` for ``scenario``) that ``.factory/qa/``
  may override, with every piece of material fenced.
- ``majority``: the verdict of several votes.

The limit of all this: only the judge's own answer is parsed, and its last
verdict line counts. A judge that quotes planted text at the very end of its
answer can still be made to end on a verdict it did not reach; fencing makes
the planted line read ``[quoted] VERDICT: …`` when it is copied whole, and
the prompt asks the judge to end with its own verdict line, but a model that
retypes what it read cannot be stopped by its input. That is why a judge's
PASS never overrides a red ``test`` gate elsewhere.
"""

from __future__ import annotations

import re
import secrets
import string
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from factory_tui.errors import ConfigError
from factory_tui.qa_model import QaKind, Verdict

# One verdict line. ``VERDICT`` in capitals; markdown decoration (emphasis,
# backticks, a quote mark or heading) may stand before it. The word after it
# is taken whole, so that ``PASSED`` is an unknown verdict, not a pass.
_VERDICT_LINE = re.compile(r"^[\s*_`>#]*VERDICT\s*:\s*(?P<word>[^\s*_`:.,;!]*)(?P<rest>.*)$")
# What may stand between the verdict and its reason, and decoration after it.
_REASON_TRIM = " \t-–—:.,;*_`"
MAX_REASON = 300
NO_VERDICT = "the judge gave no verdict"
NO_REASON = "the judge gave no reason"
QUOTED = "[quoted] "

# Material is cut to these many characters per piece (the head is kept): a
# prompt passed as one argv item ({prompt}) must stay under the kernel's
# 128 KiB limit for a single argument, and a judge reads a short diff better.
MATERIAL_LIMITS = {
    "task_title": 500,
    "task_body": 16_000,
    "diff": 60_000,
    "last_words": 8_000,
    "rubric": 16_000,
}
TEMPLATE_FILES = {QaKind.EVAL: "judge-prompt.md", QaKind.SCENARIO: "judge-scenario.md"}
FENCE_OPEN = "<<<MATERIAL {nonce} BEGIN {label}>>>"
FENCE_CLOSE = "<<<MATERIAL {nonce} END {label}>>>"


def _lines(text: str) -> list[str]:
    # str.splitlines, the same splitting for parsing and for fencing: a
    # line separator only one of them knew (\u2028, \x1e, \r) would let a
    # planted verdict through as a line of its own.
    return text.splitlines()


def _one_line(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_verdict(output: str) -> tuple[Verdict, str]:
    """The verdict of a judge's answer and its one-line reason."""
    last: re.Match[str] | None = None
    for line in _lines(output):
        match = _VERDICT_LINE.match(line)
        if match:
            last = match
    if last is None:
        return Verdict.ERROR, NO_VERDICT
    word = last.group("word")
    reason = _one_line(last.group("rest").strip(_REASON_TRIM))
    if word.upper() == "PASS":
        return Verdict.PASS, reason
    if word.upper() == "FAIL":
        return Verdict.FAIL, reason or NO_REASON
    shown = _one_line(word, 40) if word else "(none)"
    return Verdict.ERROR, f"unknown verdict {shown}"


def neutralise(material: str) -> str:
    """``material`` with each line a verdict parser would read prefixed by
    ``[quoted]``; line ends are kept as they were."""
    out = []
    for line in material.splitlines(keepends=True):
        out.append(QUOTED + line if _VERDICT_LINE.match(line) else line)
    return "".join(out)


def _nonce(material: str) -> str:
    while True:
        nonce = secrets.token_hex(8)
        if nonce not in material:
            return nonce


def fence(material: str, label: str) -> str:
    """``material`` framed so that nothing in it can end the frame, forge
    another, or be read as a verdict. ``label`` names the piece (``diff``)."""
    label = re.sub(r"[^A-Za-z0-9_ -]", "", label).strip() or "material"
    nonce = _nonce(material)
    body = neutralise(material)
    # The closing line starts a line of its own in every reading (\n), not
    # only in str.splitlines' (a body ending in \r).
    if body and not body.endswith("\n"):
        body += "\n"
    return FENCE_OPEN.format(nonce=nonce, label=label) + "\n" + body + FENCE_CLOSE.format(nonce=nonce, label=label)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit:,} more characters not shown …]\n"


def judge_prompt(
    template: str, *, scenario: str, task_title: str, task_body: str, diff: str, last_words: str, rubric: str
) -> str:
    """The template with ``$scenario``, ``$task_title``, ``$task_body``,
    ``$diff``, ``$last_words`` and ``$rubric`` filled in, each fenced.

    ``string.Template.safe_substitute``: the material is inserted once and
    never read again, so a ``$`` or a brace in it stays as it is, and an
    unknown ``$name`` in an operator's template is left alone."""
    pieces = {
        "task_title": task_title,
        "task_body": task_body,
        "diff": diff,
        "last_words": last_words,
        "rubric": rubric,
    }
    values = {name: fence(_cut(text, MATERIAL_LIMITS[name]), name) for name, text in pieces.items()}
    values["scenario"] = fence(_cut(scenario, 200), "scenario")
    return string.Template(template).safe_substitute(values)


def default_template(kind: QaKind = QaKind.EVAL) -> str:
    name = TEMPLATE_FILES.get(kind, TEMPLATE_FILES[QaKind.EVAL])
    return resources.files("factory_tui").joinpath("templates", name).read_text(encoding="utf-8")


def judge_template(qa_dir: Path, kind: QaKind = QaKind.EVAL) -> str:
    """The judge's prompt template: ``qa_dir/judge-prompt.md`` (or
    ``judge-scenario.md`` for a ``scenario``) when the base has one, else
    the package's."""
    name = TEMPLATE_FILES.get(kind, TEMPLATE_FILES[QaKind.EVAL])
    override = qa_dir / name
    try:
        return override.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default_template(kind)
    except (OSError, UnicodeDecodeError) as error:
        why = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"cannot read the judge's prompt template {override}: {why}") from None


def majority(verdicts: Sequence[Verdict]) -> Verdict:
    """The verdict more than half the votes gave; ``ERROR`` when none did.

    A tie (PASS, FAIL) is ERROR, never a pass; so is no vote at all. A vote
    that is ERROR counts against every side: PASS, PASS, ERROR passes, but
    PASS, FAIL, ERROR does not."""
    if not verdicts:
        return Verdict.ERROR
    top, count = Counter(verdicts).most_common(1)[0]
    if count * 2 > len(verdicts) and top in (Verdict.PASS, Verdict.FAIL):
        return top
    return Verdict.ERROR


_FENCE_LINE = re.compile(r"^<<<MATERIAL (?P<nonce>[0-9a-f]+) (?P<end>BEGIN|END) (?P<label>[A-Za-z0-9_ -]*)>>>$")


def fenced_pieces(prompt: str) -> list[tuple[str, str]]:
    """The (label, material) of each fence in a prompt, read the way a
    careful judge reads it: a fence opened outside any other ends only at
    the END line with its own nonce, so nothing inside it (a forged BEGIN or
    END) starts or ends a piece. ``[quoted]`` prefixes stay."""
    pieces: list[tuple[str, str]] = []
    current: tuple[str, str] | None = None  # (nonce, label)
    body: list[str] = []
    for line in prompt.split("\n"):
        match = _FENCE_LINE.match(line)
        if current is None:
            if match and match.group("end") == "BEGIN":
                current, body = (match.group("nonce"), match.group("label")), []
            continue
        if match and match.group("end") == "END" and match.group("nonce") == current[0]:
            pieces.append((current[1], "\n".join(body)))
            current = None
            continue
        body.append(line)
    return pieces
