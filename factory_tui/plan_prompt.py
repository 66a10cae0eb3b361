"""The planner's prompt: what ``factory plan draft`` asks a planner, and how
a planner (the demo planner) reads it back.

The prompt comes from a template in the package (``templates/
planner-draft.md``, or ``planner-revise.md`` for ``--revise``) with the
plan format's description (``templates/plan-format.md``, and for a
revision ``plan-changes.md``), the file the planner must write the plan
to, and the material: the spec, and the log's tasks as JSON lines (only
for a revision; a first draft gets the tasks drafted from the same spec
before). The material is fenced as a judge's is (``qa_verdict.fence``):
the spec is the operator's, but task titles and feedback may come from
anywhere, and none of it can end its frame.

Two lines of the frame, outside every fence, are read back by a planner
program: ``PLAN FILE: <path>`` and ``SPEC SOURCE: <source>``.

Pure, but for reading the package's templates.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources

from factory_tui.model import State, Task
from factory_tui.qa_verdict import fence, fenced_pieces

# A spec larger than this is refused: a prompt passed as one argv item
# ({prompt}) must stay under the kernel's 128 KiB limit for one argument,
# and the log and the frame need room beside it.
SPEC_LIMIT = 64 * 1024
# The log's share of a revision's prompt, in bytes of JSON lines; what does
# not fit is said in a last line.
LOG_LIMIT = 40 * 1024
TITLE_LIMIT, FEEDBACK_LIMIT, FAILURE_LIMIT = 200, 500, 300
PLAN_FILE_LINE = "PLAN FILE: "
SOURCE_LINE = "SPEC SOURCE: "
_FRAME_LINE = re.compile(r"^(PLAN FILE|SPEC SOURCE): (.+)$")


def template(name: str) -> str:
    return resources.files("factory_tui").joinpath("templates", name).read_text(encoding="utf-8")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def task_line(task: Task, failure: str | None = None) -> dict:
    """One task as the planner reads it."""
    line: dict = {
        "id": task.id, "title": _cut(task.title, TITLE_LIMIT), "state": str(task.state),
        "priority": task.priority, "attempts": task.attempts, "labels": list(task.labels),
        "after": list(task.depends_on), "source": task.source,
    }
    if task.feedback:
        line["feedback"] = _cut(task.feedback, FEEDBACK_LIMIT)
    if failure:
        line["failure"] = _cut(failure, FAILURE_LIMIT)
    return line


def log_lines(tasks: Iterable[Task], *, source: str, failures: dict[str, str] | None = None,
              limit: int = LOG_LIMIT) -> str:
    """The log as JSON lines, the tasks that matter most first: those drafted
    from this spec, then the others still open, then the rest (done and
    cancelled ones of other origins); within each, in id order. Cut at
    ``limit`` bytes, with a last line saying how many were left out."""
    failures = failures or {}
    ordered = sorted(
        tasks,
        key=lambda task: (
            0 if task.source == source else 1 if task.state not in (State.DONE, State.CANCELLED) else 2,
            task.seq,
        ),
    )
    lines: list[str] = []
    size = 0
    for index, task in enumerate(ordered):
        text = json.dumps(task_line(task, failures.get(task.id)), ensure_ascii=False)
        if size + len(text.encode()) + 1 > limit:
            lines.append(f"[… {len(ordered) - index:,} more tasks not shown …]")
            break
        lines.append(text)
        size += len(text.encode()) + 1
    return "\n".join(lines) if lines else "(the log holds no tasks)"


def drafted_lines(tasks: Iterable[Task], *, limit: int = LOG_LIMIT) -> str:
    """The tasks an earlier draft of the spec made: ``T-3 [state] title``."""
    lines: list[str] = []
    size = 0
    listed = list(tasks)
    for index, task in enumerate(listed):
        text = f"{task.id} [{task.state}] {_cut(task.title, TITLE_LIMIT)}"
        if size + len(text.encode()) + 1 > limit:
            lines.append(f"[… {len(listed) - index:,} more tasks not shown …]")
            break
        lines.append(text)
        size += len(text.encode()) + 1
    return "\n".join(lines) if lines else "(none: this is the spec's first draft)"


def planner_prompt(
    *, spec: str, spec_name: str, plan_file: str, source: str, revise: bool, log: str = "", drafted: str = "",
) -> str:
    """The prompt for a draft (``revise=False``: ``drafted`` lists the tasks
    made from this spec before) or a revision (``log``: ``log_lines``)."""
    values = {
        "format": template("plan-format.md").rstrip("\n"),
        "changes": template("plan-changes.md").rstrip("\n"),
        "plan_file": _frame_value(plan_file),
        "source": _frame_value(source),
        "spec_name": _frame_value(spec_name),
        "spec": fence(spec, "spec"),
        "log": fence(log, "log"),
        "drafted": fence(drafted, "drafted"),
    }
    name = "planner-revise.md" if revise else "planner-draft.md"
    return string.Template(template(name)).safe_substitute(values)


def _frame_value(text: str) -> str:
    # Ours (a path, a source, a file name), but a file name may hold a
    # newline: the frame's lines must stay one line each.
    return " ".join(text.split())


@dataclass
class PromptParts:
    """What a planner program reads back from its prompt."""

    spec: str
    plan_file: str | None = None
    source: str | None = None
    revise: bool = False
    tasks: list[dict] = field(default_factory=list)


def read_prompt(prompt: str) -> PromptParts:
    """The spec, the log's tasks (a revision's), the plan file and the
    spec's source, from a prompt ``planner_prompt`` made. Only the frame's
    own lines and fences count: nothing inside the material can name
    another plan file."""
    pieces = fenced_pieces(prompt)
    parts = PromptParts(spec="")
    for label, material in pieces:
        if label == "spec":
            parts.spec = material
        elif label == "log":
            parts.revise = True
            for line in material.splitlines():
                try:
                    task = json.loads(line)
                except ValueError:
                    continue
                if isinstance(task, dict) and isinstance(task.get("id"), str):
                    parts.tasks.append(task)
    for line in _frame_lines(prompt):
        match = _FRAME_LINE.match(line)
        if match is None:
            continue
        if match.group(1) == "PLAN FILE" and parts.plan_file is None:
            parts.plan_file = match.group(2).strip()
        elif match.group(1) == "SPEC SOURCE" and parts.source is None:
            parts.source = match.group(2).strip()
    return parts


def _frame_lines(prompt: str) -> list[str]:
    """The prompt's lines outside every fence (read as ``fenced_pieces``
    reads them: a fence ends only at the END line with its own nonce)."""
    outside: list[str] = []
    nonce: str | None = None
    fence_line = re.compile(r"^<<<MATERIAL (?P<nonce>[0-9a-f]+) (?P<end>BEGIN|END) [A-Za-z0-9_ -]*>>>$")
    for line in prompt.split("\n"):
        match = fence_line.match(line)
        if nonce is None:
            if match and match.group("end") == "BEGIN":
                nonce = match.group("nonce")
                continue
            outside.append(line)
        elif match and match.group("end") == "END" and match.group("nonce") == nonce:
            nonce = None
    return outside
