"""Scenario files: reading ``.factory/qa/NAME.md`` into a ``Scenario`` (or an
``InvalidScenario`` saying which line is wrong and why), deciding whether one
applies to a task's change, and the commented template ``factory qa new``
writes.

Pure apart from reading files: no Textual, no git, no SQLite. The front
matter is YAML, read with python-frontmatter; the body is markdown. A file
that cannot be used is never an exception here: it is an ``InvalidScenario``
that the QA pane and ``factory qa list`` show, and that is never run.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import shlex
from collections.abc import Collection, Iterable
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from factory_tui.config import unknown_key
from factory_tui.front_matter import FrontMatter, FrontMatterError, read_limited, type_name
from factory_tui.front_matter import split as split_front_matter
from factory_tui.front_matter_fields import FieldError, shown, when_field
from factory_tui.qa_model import (
    COMMAND_KINDS,
    JUDGED_KINDS,
    MAX_SCENARIO_STEPS,
    Gate,
    InvalidScenario,
    QaKind,
    Scenario,
)

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

# A scenario is a page a person writes, not a data file: anything larger is
# a mistake (a log pasted in), and a judge's prompt could not hold it anyway.
MAX_FILE_BYTES = 256 * 1024
# Files in the QA folder that are not scenarios.
README_NAME = "README.md"
JUDGE_PROMPT_NAME = "judge-prompt.md"
RESERVED_NAMES = frozenset({"README", "judge-prompt"})
# What ``factory qa new`` accepts as NAME: a file name, never a path.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

DEFAULT_TIMEOUT = {QaKind.TEST: 600.0, QaKind.VERIFY: 600.0, QaKind.EVAL: 900.0, QaKind.SCENARIO: 900.0}
# A failing test is run once more, so that a flaky one is told from a broken one.
DEFAULT_RETRIES = {QaKind.TEST: 1}
# Bounds that keep one file from running a check without end: a retry or a
# vote is a whole run of a command or a judge.
MAX_RETRIES = 5
MAX_VOTES = 9
# A day: longer is a typo (``1e308``) and would overflow the clocks and
# lock waits that a timeout sets.
MAX_TIMEOUT = 24 * 3600.0
# Patterns per ``expect`` or ``expect_not``: each is searched over up to
# 2 MB of output, so thousands of them would be a check without end.
MAX_PATTERNS = 100

KNOWN_KEYS = ("kind", "run", "judge", "gate", "timeout", "when", "retries", "votes", "expect", "expect_not")


# --- reading -------------------------------------------------------------------


def read_scenario(path: Path, *, root: Path, profiles: Collection[str]) -> Scenario | InvalidScenario:
    """The scenario in ``path``, checked; ``profiles`` are the agent profiles
    a judge may name. Never raises for what the file holds."""
    name = path.stem
    relative = _relative(path, root)

    def invalid(reason: str, line: int | None = None) -> InvalidScenario:
        return InvalidScenario(name=name, path=relative, reason=_one_line(reason), line=line)

    data, problem = _read_bytes(path, root)
    if data is None:
        return invalid(problem)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return invalid("not UTF-8 text", data[: error.start].count(b"\n") + 1)
    version = hashlib.sha256(data).hexdigest()[:12]
    try:
        front = split_front_matter(text)
    except FrontMatterError as error:
        return invalid(error.reason, error.line)
    try:
        return _scenario(name, relative, version, front, profiles)
    except FieldError as error:
        return invalid(error.reason, front.key_lines.get(error.key) if error.key else None)


def load_scenarios(qa_dir: Path, *, root: Path, profiles: Collection[str]) -> list[Scenario | InvalidScenario]:
    """Every scenario file directly in ``qa_dir`` (``*.md`` but the README and
    the judge's prompt override), sorted by name; none when it is missing."""
    try:
        entries = sorted(qa_dir.iterdir(), key=lambda p: p.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found: list[Scenario | InvalidScenario] = []
    for entry in entries:
        if entry.suffix != ".md" or entry.name.lower() in (README_NAME.lower(), JUDGE_PROMPT_NAME):
            continue
        if entry.is_dir() and not entry.is_symlink():
            continue  # a folder named like a file: not a scenario, and nothing to say about it
        found.append(read_scenario(entry, root=root, profiles=profiles))
    return found


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _read_bytes(path: Path, root: Path) -> tuple[bytes | None, str]:
    """The file's bytes, or None and why not: a link out of the repository,
    something that is not a regular file, or a file too large."""
    return read_limited(path, inside=root, limit=MAX_FILE_BYTES, what="a scenario file")


# --- checking ------------------------------------------------------------------


def _scenario(name: str, path: str, version: str, front: FrontMatter, profiles: Collection[str]) -> Scenario:
    data = front.data
    for key in data:
        if not isinstance(key, str) or key not in KNOWN_KEYS:
            raise FieldError(unknown_key(str(key), KNOWN_KEYS), str(key))
    kind = _kind(data)
    judged = kind in JUDGED_KINDS
    for key, allowed, who in (
        ("run", COMMAND_KINDS, "test and verify (an eval or a scenario is done by its judge)"),
        ("judge", JUDGED_KINDS, "eval and scenario"),
        ("votes", JUDGED_KINDS, "eval and scenario"),
        ("expect", {QaKind.VERIFY}, "verify"),
        ("expect_not", {QaKind.VERIFY}, "verify"),
    ):
        if key in data and kind not in allowed:
            raise FieldError(f"{key} is for {who}, not {kind}", key)
    run: tuple[str, ...] = ()
    judge: str | None = None
    if judged:
        judge = _judge(data, profiles)
    else:
        run = _run(data)
    expect = _patterns(data, "expect")
    expect_not = _patterns(data, "expect_not")
    if kind is QaKind.VERIFY and not expect and not expect_not:
        raise FieldError("a verify needs expect or expect_not (patterns its output must or must not match); without them it is a test")
    body = front.body
    if judged and not body.strip():
        needs = "an eval's judge needs a rubric" if kind is QaKind.EVAL else "a scenario's judge needs the steps to follow"
        raise FieldError(f"the body is empty: {needs}")
    when_paths, when_labels = _when(data)
    steps = count_steps(body)
    warnings: tuple[str, ...] = ()
    if kind is QaKind.SCENARIO and steps > MAX_SCENARIO_STEPS:
        warnings = (f"{steps} steps: split it into scenarios of {MAX_SCENARIO_STEPS} or fewer",)
    return Scenario(
        name=name,
        path=path,
        kind=kind,
        gate=_gate(data),
        body=body,
        version=version,
        run=run,
        judge=judge,
        timeout=_timeout(data, kind),
        when_paths=when_paths,
        when_labels=when_labels,
        retries=_count(data, "retries", DEFAULT_RETRIES.get(kind, 0), low=0, high=MAX_RETRIES),
        votes=_votes(data),
        expect=expect,
        expect_not=expect_not,
        steps=steps,
        warnings=warnings,
    )


def _kind(data: dict) -> QaKind:
    if "kind" not in data:
        raise FieldError(f"kind is required ({_choices(QaKind)})")
    value = data["kind"]
    if isinstance(value, str) and value in QaKind._value2member_map_:
        return QaKind(value)
    raise FieldError(f"unknown kind {shown(value)}{_nearest(value, [k.value for k in QaKind])} (kinds: {_choices(QaKind)})", "kind")


def _gate(data: dict) -> Gate:
    value = data.get("gate", Gate.REQUIRED.value)
    if isinstance(value, str) and value in Gate._value2member_map_:
        return Gate(value)
    raise FieldError(f"gate must be {' or '.join(g.value for g in Gate)}, not {shown(value)}", "gate")


def _judge(data: dict, profiles: Collection[str]) -> str:
    known = ", ".join(sorted(profiles)) or "none"
    if "judge" not in data:
        raise FieldError(f"judge is required: the agent profile that judges it (profiles: {known})")
    value = data["judge"]
    if not isinstance(value, str) or value not in profiles:
        raise FieldError(f"unknown judge profile {shown(value)}{_nearest(value, profiles)} (profiles: {known})", "judge")
    return value


def _run(data: dict) -> tuple[str, ...]:
    if "run" not in data:
        raise FieldError("run is required: the command, as a list ([pytest, -q]) or a line split like a shell would (never run by one)")
    value = data["run"]
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as error:  # an unclosed quote
            raise FieldError(f"run: {error}", "run") from None
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, bool) or item is None:
                # YAML reads true, no, on, null… as values, not words.
                raise FieldError(f"run: quote {shown(item)} ('…'): unquoted, YAML reads it as a value, not a word", "run")
            if not _is_word(item):
                raise FieldError("run must be a list of words (strings or numbers)", "run")
        argv = [str(item) for item in value]
    else:
        raise FieldError(f"run must be a command (a list or a line), not a {type_name(value)}", "run")
    if not argv or not argv[0]:
        raise FieldError("run is empty: name the command", "run")
    if any("\x00" in word for word in argv):
        raise FieldError("run holds a NUL character", "run")
    return tuple(argv)


def _timeout(data: dict, kind: QaKind) -> float:
    if "timeout" not in data:
        return DEFAULT_TIMEOUT[kind]
    value = data["timeout"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(f"timeout must be a number of seconds, not {shown(value)}", "timeout")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise FieldError(f"timeout must be a positive, finite number of seconds, not {shown(value)}", "timeout")
    if seconds > MAX_TIMEOUT:
        raise FieldError(f"timeout may be {MAX_TIMEOUT:g} seconds (a day) at most, not {shown(value)}", "timeout")
    return seconds


def _count(data: dict, key: str, default: int, *, low: int, high: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FieldError(f"{key} must be a whole number from {low} to {high}, not {shown(value)}", key)
    return value


def _votes(data: dict) -> int:
    votes = _count(data, "votes", 1, low=1, high=MAX_VOTES)
    if votes % 2 == 0:
        raise FieldError(f"votes must be odd (a majority needs one), not {votes}", "votes")
    return votes


def _patterns(data: dict, key: str) -> tuple[str, ...]:
    if key not in data:
        return ()
    patterns = _strings(data[key], key, what="a regular expression or a list of them")
    if len(patterns) > MAX_PATTERNS:
        raise FieldError(f"{key} has {len(patterns):,} patterns: {MAX_PATTERNS} at most", key)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise FieldError(f"{key}: bad regular expression {shown(pattern)}: {error}", key) from None
    return patterns


def _when(data: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return when_field(data, label_items=False, never="it would never run; leave when out to run always")


def _strings(value: object, name: str, *, what: str, key: str | None = None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise FieldError(f"{name} must be {what}", key or name)
    return tuple(value)


def _is_word(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _choices(enum: Iterable) -> str:
    return ", ".join(member.value for member in enum)


def _nearest(value: object, known: Iterable[str]) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""




def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- the body ------------------------------------------------------------------


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # Imported at the first body read, not with the module: the console's
    # first frame reads no scenario.
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")


def count_steps(body: str) -> int:
    """Numbered (``1.``) and bulleted (``-``, ``*``) items at the top level
    of ``body``; items nested in them, or inside code blocks, are no steps."""
    try:
        tokens = _markdown().parse(body)
    except RecursionError:
        return 0
    return sum(1 for token in tokens if token.type == "list_item_open" and token.level == 1)


# --- when ----------------------------------------------------------------------


def applies(scenario: Scenario, changed_paths: Collection[str], labels: Collection[str]) -> bool:
    """Whether ``scenario`` runs for a task: always without ``when``; else
    when a changed path matches one of its globs, or the task carries one of
    its labels."""
    if not scenario.when_paths and not scenario.when_labels:
        return True
    if scenario.when_labels and not set(scenario.when_labels).isdisjoint(labels):
        return True
    return any(glob_matches(glob, path) for glob in scenario.when_paths for path in changed_paths)


def glob_matches(glob: str, path: str) -> bool:
    """Whether the repository path ``path`` (posix) matches ``glob``: ``*``
    and ``?`` stay inside one folder name, ``**`` spans folders, ``[abc]``
    is a set; a glob without a ``/`` matches a file name in any folder
    (``*.py``), as in .gitignore, one with a ``/`` matches from the root."""
    return _glob_regex(glob).fullmatch(PurePosixPath(path).as_posix()) is not None


@lru_cache(maxsize=512)
def _glob_regex(glob: str) -> re.Pattern[str]:
    glob = glob.removeprefix("./")
    if "/" not in glob.rstrip("/"):
        glob = "**/" + glob
    parts = glob.split("/")
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            # Any number of whole folders, none included; at the end, anything below.
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(_segment(part) + ("" if last else "/"))
    if parts[-1] == "":  # "docs/": everything below docs
        out.append(".*")
    return re.compile("".join(out), re.DOTALL)


def _segment(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            while i < len(part) and part[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if char == "?":
            out.append("[^/]")
        elif char == "[":
            end = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                inner = part[i + 1 : end]
                negate = inner.startswith("!")
                inner = inner[1:] if negate else inner
                escaped = inner.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
                out.append(f"[^/{escaped}]" if negate else f"[{escaped}]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


# --- as JSON -------------------------------------------------------------------


def scenario_json(found: Scenario | InvalidScenario) -> dict[str, Any]:
    """A scenario file as ``factory qa list --json`` shows it."""
    if isinstance(found, InvalidScenario):
        return {"name": found.name, "path": found.path, "valid": False, "line": found.line, "reason": found.reason}
    return {
        "name": found.name,
        "path": found.path,
        "valid": True,
        "kind": str(found.kind),
        "gate": str(found.gate),
        "run": list(found.run),
        "judge": found.judge,
        "timeout": found.timeout,
        "when": {"paths": list(found.when_paths), "labels": list(found.when_labels)},
        "retries": found.retries,
        "votes": found.votes,
        "expect": list(found.expect),
        "expect_not": list(found.expect_not),
        "steps": found.steps,
        "warnings": list(found.warnings),
        "version": found.version,
    }


# --- templates -----------------------------------------------------------------


def valid_name(name: str) -> bool:
    """Whether ``name`` can name a scenario file: a plain file name, not the
    README or the judge's prompt."""
    stem = name.removesuffix(".md")
    return NAME_PATTERN.fullmatch(stem) is not None and stem not in RESERVED_NAMES and stem.lower() != "readme"


_COMMON_KEYS = """\
# gate: required (a failure keeps the task from review) or advisory (shown
#   and recorded, never blocks). Default: required.
gate: required
# timeout: seconds per attempt; a run that takes longer is an ERROR.
timeout: {timeout}
# when: run only for some changes. A list of path globs (* and ? stay in one
#   folder, ** spans folders, a glob without / matches a file name anywhere),
#   or {{paths: [...], labels: [...]}} to run for task labels too; either one
#   matching is enough. Leave it out to run for every task.
# when:
#   paths: ["src/**/*.py", "tests/**"]
#   labels: [backend]
"""

_TEMPLATES = {
    QaKind.TEST: """\
---
# kind: test runs a command in a clean checkout of the task's commit; exit 0
#   passes. When the command writes JUnit XML, each test gets its own verdict,
#   and tests that already fail on the base branch are not blamed on the task.
kind: test
# run: the command, as a list of words (or one line, split like a shell
#   would; it is never run by a shell: no pipes, no $VARS).
run: [python, -m, pytest, -q]
{common}# retries: how many times a failure is run again; a pass on a retry is
#   recorded as FLAKY (it passes the gate, and is counted). Default for a test: 1.
retries: 1
---

# {name}

The project's test suite passes on the task's commit.
""",
    QaKind.VERIFY: """\
---
# kind: verify runs a command and checks its output (stdout and stderr) with
#   regular expressions: every expect must match, no expect_not may.
kind: verify
# run: the command, as a list of words (or one line, split like a shell
#   would; it is never run by a shell: no pipes, no $VARS).
run: [python, -m, pip, check]
# expect: a regular expression, or a list of them, the output must match.
expect:
  - "No broken requirements"
# expect_not: ones it must not match.
expect_not:
  - "has requirement .* but you have"
  - "which is not installed"
{common}# retries: how many times a failure is run again (a pass then is FLAKY). Default: 0.
retries: 0
---

# {name}

Every installed package has the versions of its dependencies that it asks for.
""",
    QaKind.EVAL: """\
---
# kind: eval asks a judge agent to read the task, its diff and its agent's
#   last words, with this file's body as the rubric. The judge ends with
#   VERDICT: PASS or VERDICT: FAIL <reason>; no verdict is an ERROR, never a pass.
kind: eval
# judge: the agent profile that judges (a name from [agents] in factory.toml).
judge: {judge}
# votes: how many times the judge is asked; the majority counts (odd, 1 to 9).
votes: 1
{common}---

# {name}

Judge the change against this rubric. Every point must hold for a PASS.

1. The change does what the task asked, and nothing it did not ask for.
2. New behaviour comes with a test that would fail without the change.
3. Errors a user can cause are reported in one clear line, never as a traceback.
4. No secret, token or local path is written into the repository.

Answer FAIL with the first point that does not hold, and the file and line that shows it.
""",
    QaKind.SCENARIO: """\
---
# kind: scenario gives a judge agent the steps below, written as a user would
#   do them, to follow in a clean checkout of the task's commit. Keep it to 7
#   steps or fewer: a small scenario is done whole.
kind: scenario
# judge: the agent profile that follows the steps (a name from [agents] in factory.toml).
judge: {judge}
# votes: how many times it is done; the majority counts (odd, 1 to 9).
votes: 1
{common}---

# {name}

You are a new user of this project, working in a terminal in its folder.

1. Read the README and install the project the way it says.
2. Run the command the README shows first.
3. Check that it prints what the README says it prints.
4. Give it a wrong argument and check that it says what is wrong in one line.

End your answer with one last line: `VERDICT: PASS` when every step worked as
described, or `VERDICT: FAIL <reason>` naming the first step that did not.
""",
}


def template(kind: QaKind, name: str, *, judge: str = "demo") -> str:
    """A commented scenario file of ``kind``, valid as written: each key is
    explained in a YAML comment; ``judge`` is the profile an eval or a
    scenario names."""
    kind = QaKind(kind)
    common = _COMMON_KEYS.format(timeout=int(DEFAULT_TIMEOUT[kind]))
    return _TEMPLATES[kind].format(common=common, name=name, judge=judge)
