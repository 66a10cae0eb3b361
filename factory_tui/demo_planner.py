"""The demo planner: a real program that turns a spec into a plan the way a
planner agent does, offline and deterministically, so that ``factory plan
draft``, ``factory init --spec`` and the tests work without a model.

``python -m factory_tui.demo_planner [--prompt-file F]`` (else the prompt
comes on stdin). It reads the prompt ``factory plan draft`` gives a planner
(``factory_tui.plan_prompt``): the spec from its fence, the file to write
from the frame's ``PLAN FILE:`` line (default ``plan.md`` here), and for a
revision the log's tasks. It writes the plan in the import format
(``factory_tui.plan_file``) and prints what it did.

How a spec reads (``draft``):

- Every heading starts a section; its name, made a slug, is the label of
  the tasks under it (``## Checkout flow`` → ``checkout-flow``).
- A list item at a list's first level is a task (its box, if it has one, is
  dropped); nested list items and indented lines under it are its body.
  Paragraphs and tables are passed over.
- Order: a task waits for the task before it in its section. Words name
  another task instead: ``after X``, ``depends on X``, ``requires X`` or
  ``needs X``, where X (quoted with "…" or `…`, or the rest of the clause)
  is contained in another task's title, case aside; the words are then
  taken out of the title. Words that name no task stay in the title and the
  order holds.
- Priority: earlier sections go first: of n headings the first gives its
  tasks priority n-1, the last 0 (tasks before the first heading get n; at
  most 9). A marker in the item adds to
  it and is taken out: ``(must)`` 20, ``(should)`` 10, ``(could)`` 0;
  ``(won't)`` leaves the item out.

A revision (``revise``) compares the spec with the log's tasks that came
from it (their source is the prompt's ``SPEC SOURCE``) and proposes: the
spec's tasks no task has the title of (new tasks, waiting for the tasks
that are there by id); cancelling every task of the spec that is not done or
cancelled and whose item is gone from the spec; and for every task that
failed twice or more, a priority one below every other open task (unless it
is below them already), so that the rest of the plan goes first while the
operator looks at it.

Environment knobs: ``FACTORY_DEMO_PLANNER_SECONDS`` (default 0): a pause
before it writes (so that a test can stop it mid-way).

Exit codes: 0 planned (an empty plan is a plan), 2 cannot start (no
prompt, no spec, a bad knob, the plan file cannot be written; one line on
stderr). Standard library and factory_tui's pure modules only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from factory_tui.demo_agent import CannotStart, float_knob, read_prompt
from factory_tui.plan_prompt import read_prompt as read_planner_prompt

NAME = "demo_planner"
EXIT_CANNOT_START = 2
MAX_ORDER_PRIORITY = 9
MARKERS = {"must": 20, "should": 10, "could": 0}
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^(?P<indent>\s*)(?:[-*+]|\d+[.)])\s+(?P<text>.*)$")
_BOX = re.compile(r"^\[[ xX]\]\s+")
_MARKER = re.compile(r"\s*\((?P<word>must|should|could|won'?t)(?: have)?\)\s*", re.IGNORECASE)
_DEPENDENCY = re.compile(
    r"[,;]?\s*\b(?:after|depends on|requires|needs)\s+"
    r"(?:\"(?P<quoted>[^\"]+)\"|`(?P<ticked>[^`]+)`|(?P<bare>[^.;,()]+?))\s*(?=[.;,()]|$)",
    re.IGNORECASE,
)
_SLUG = re.compile(r"[^a-z0-9]+")
_TASK_ID = re.compile(r"^[Tt]-?\d+$")
# Characters a title cannot hold in the plan format: a `{…}` at the end of
# its line would be read as attributes.
_BRACES = str.maketrans({"{": "(", "}": ")"})


@dataclass
class SpecItem:
    """A task as the spec has it."""

    title: str
    section: str | None
    section_index: int
    body: list[str] = field(default_factory=list)
    priority: int = 0
    refs: list[str] = field(default_factory=list)  # what its words say it waits for
    handle: str = ""
    after: list[str] = field(default_factory=list)  # handles (or task ids) it waits for


def slug(text: str, limit: int = 40) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:limit].strip("-")


def read_spec(spec: str) -> list[SpecItem]:
    """The spec's tasks, in order, with their sections, bodies, markers and
    dependency words (not yet resolved)."""
    items: list[SpecItem] = []
    section: str | None = None
    sections = 0
    current: SpecItem | None = None
    item_indent = 0
    skipping = False  # under a (won't) item: its body goes with it
    in_code = False
    for raw in spec.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
            if current is not None:
                current.body.append(line)
            continue
        if in_code:
            if current is not None:
                current.body.append(line)
            continue
        heading = _HEADING.match(line)
        if heading:
            section = heading.group(2).strip() or None
            sections += 1
            current, skipping = None, False
            continue
        match = _ITEM.match(line)
        indent = len(line) - len(line.lstrip())
        if match and (current is None and not skipping or indent <= item_indent):
            text = _BOX.sub("", match.group("text").strip())
            item = _item(text, section, sections)
            item_indent = indent
            if item is None:
                current, skipping = None, True
                continue
            current, skipping = item, False
            items.append(item)
            continue
        if (current is not None or skipping) and (not line.strip() or indent > item_indent):
            if current is not None:
                current.body.append(line)
            continue
        current, skipping = None, False
    _order_priorities(items, sections)
    return items


def _item(text: str, section: str | None, section_index: int) -> SpecItem | None:
    priority = 0
    for marker in _MARKER.finditer(text):
        word = marker.group("word").lower().replace("'", "")
        if word == "wont":
            return None
        priority = max(priority, MARKERS[word])
    text = _MARKER.sub(" ", text)
    refs = []
    for found in _DEPENDENCY.finditer(text):
        refs.append((found.group("quoted") or found.group("ticked") or found.group("bare")).strip())
    title = " ".join(text.split()).translate(_BRACES)
    if not title:
        return None
    return SpecItem(title=title, section=section, section_index=section_index, priority=priority, refs=refs)


def _order_priorities(items: list[SpecItem], sections: int) -> None:
    """The k-th of n headings gives its items n-k (items before the first
    heading, k = 0, get n), at most MAX_ORDER_PRIORITY."""
    for item in items:
        item.priority += min(MAX_ORDER_PRIORITY, sections - item.section_index)


def _strip_refs(title: str) -> str:
    stripped = " ".join(_DEPENDENCY.sub("", title).split()).strip(" ,;")
    return stripped or title


def _resolve(items: list[SpecItem], ref: str, me: SpecItem) -> SpecItem | None:
    wanted = ref.lower()
    for other in items:
        if other is not me and wanted in _strip_refs(other.title).lower():
            return other
    return None


def _handles(items: list[SpecItem]) -> None:
    used: set[str] = set()
    for number, item in enumerate(items, start=1):
        base = slug(_strip_refs(item.title), 30)
        if not base or not base[0].isalpha() or _TASK_ID.match(base):
            base = f"item-{number}"
        handle, n = base, 2
        while handle in used:
            handle, n = f"{base}-{n}", n + 1
        used.add(handle)
        item.handle = handle


def plan_items(spec: str) -> list[SpecItem]:
    """The spec's tasks with handles, titles without their dependency words,
    and ``after``: the task before in the section, or what the words name."""
    items = read_spec(spec)
    _handles(items)
    previous: dict[tuple[int, str | None], SpecItem] = {}
    for item in items:
        named = [found for ref in item.refs if (found := _resolve(items, ref, item)) is not None]
        if named:
            item.title = _strip_refs(item.title)
            item.after = list(dict.fromkeys(found.handle for found in named))
        else:
            before = previous.get((item.section_index, item.section))
            item.after = [before.handle] if before is not None else []
        previous[(item.section_index, item.section)] = item
    _break_loops(items)
    return items


def _break_loops(items: list[SpecItem]) -> None:
    """Words may name tasks in a loop (a after b, b after a): a dependency
    that closes one is dropped, first come first kept."""
    by_handle = {item.handle: item for item in items}
    kept: dict[str, list[str]] = {}

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            handle = stack.pop()
            if handle == goal:
                return True
            if handle not in seen:
                seen.add(handle)
                stack.extend(kept.get(handle, ()))
        return False

    for item in items:
        kept[item.handle] = []
        for target in item.after:
            if target in by_handle and not reaches(target, item.handle):
                kept[item.handle].append(target)
        item.after = kept[item.handle]


def _label(section: str | None) -> str | None:
    if not section:
        return None
    label = slug(section)
    return label if label and label[0].isalnum() else None


def _render(item: SpecItem, after: list[str]) -> list[str]:
    attrs = [f"#{item.handle}"]
    if after:
        attrs.append("after=" + ",".join(after))
    if item.priority:
        attrs.append(f"priority={item.priority}")
    label = _label(item.section)
    if label:
        attrs.append(f"labels={label}")
    lines = [f"- [ ] {item.title} {{{' '.join(attrs)}}}"]
    body = _dedent(item.body)
    lines.extend(f"  {_BULLET_BRACKET.sub(_escaped, line)}" if line.strip() else "" for line in body)
    return lines


# A bullet of the body that starts with a bracket would be read as a
# checklist item (or a malformed one): its bracket is escaped.
_BULLET_BRACKET = re.compile(r"^(\s*(?:[-*+]|\d+[.)])\s+)\[")


def _escaped(match: re.Match) -> str:
    return match.group(1) + "\\["


def _dedent(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    while lines and not lines[0].strip():
        lines = lines[1:]
    cut = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return [line[cut:] for line in lines]


def draft(spec: str) -> str:
    """The plan for ``spec``, grouped by section under headings."""
    items = plan_items(spec)
    out: list[str] = ["# Plan drafted by the demo planner", ""]
    section: object = object()
    for item in items:
        if item.section != section:
            section = item.section
            if out[-1]:
                out.append("")
            out.extend([f"## {_one_line(item.section or 'General')}", ""])
        out.extend(_render(item, item.after))
    return "\n".join(out).rstrip("\n") + "\n"


def revise(spec: str, tasks: list[dict], source: str | None) -> str:
    """Proposals for the plan as the log has it (``tasks``: the prompt's
    JSON lines): the spec's new tasks, cancellations of tasks whose item is
    gone, and a lower priority for tasks that failed twice or more."""
    items = plan_items(spec)
    ours = [task for task in tasks if source is not None and task.get("source") == source]
    have = {str(task.get("title", "")): task for task in ours}
    titles = {item.title for item in items}
    out: list[str] = ["# Revision by the demo planner", ""]
    by_handle = {item.handle: item for item in items}
    new = [item for item in items if item.title not in have]
    if new:
        out.extend(["## New tasks", ""])
        for item in new:
            after = []
            for handle in item.after:
                made = have.get(by_handle[handle].title)
                if made is None:
                    after.append(handle)
                elif made.get("state") != "cancelled":
                    after.append(str(made["id"]))
            out.extend(_render(item, after))
        out.append("")
    changes: list[str] = []
    for task in ours:
        state = task.get("state")
        if state in ("done", "cancelled") or task.get("title") in titles:
            continue
        changes.append(f"- [ ] Drop {_one_line(task.get('title'))} {{id={task['id']} cancel}}")
        changes.append("  Its item is no longer in the spec.")
    open_tasks = [task for task in tasks if task.get("state") not in ("done", "cancelled")]
    for task in tasks:
        attempts = task.get("attempts")
        priority = task.get("priority")
        if task.get("state") != "failed" or not isinstance(attempts, int) or attempts < 2:
            continue
        if not isinstance(priority, int) or any(line.endswith(f"{{id={task['id']} cancel}}") for line in changes):
            continue
        # Below every other open task, once: a revision after the operator
        # accepted it proposes nothing more.
        others = [other["priority"] for other in open_tasks
                  if other is not task and isinstance(other.get("priority"), int)]
        if not others or priority < min(others) or min(others) <= -99:
            continue
        why = task.get("failure") or task.get("feedback") or "no reason recorded"
        changes.append(f"- [ ] Let the rest go before {_one_line(task.get('title'))} "
                       f"{{id={task['id']} priority={min(others) - 1}}}")
        changes.append(f"  It failed {attempts} times (last: {_one_line(why)}); the rest of the plan goes first")
        changes.append("  while the operator looks at it.")
    if changes:
        out.extend(["## Changes to tasks in the log", "", *changes])
    return "\n".join(out).rstrip("\n") + "\n"


def _one_line(value: object, limit: int = 120) -> str:
    text = " ".join(str(value or "").split()).translate(_BRACES)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=NAME, description="The demo planner: a spec becomes a plan.")
    parser.add_argument("--prompt-file", help="the prompt (default: standard input)")
    args = parser.parse_args(argv)
    try:
        pause = float_knob(dict(os.environ), "FACTORY_DEMO_PLANNER_SECONDS", 0.0)
        parts = read_planner_prompt(read_prompt(args.prompt_file))
        if not parts.spec.strip():
            raise CannotStart("the prompt holds no spec")
        plan = revise(parts.spec, parts.tasks, parts.source) if parts.revise else draft(parts.spec)
        target = Path(parts.plan_file or "plan.md")
        if pause > 0:
            time.sleep(pause)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(plan, encoding="utf-8")
            os.replace(temporary, target)
        except OSError as error:
            raise CannotStart(f"cannot write {target}: {error.strerror or error}") from None
    except CannotStart as error:
        print(f"{NAME}: {error}", file=sys.stderr)
        return EXIT_CANNOT_START
    tasks = sum(1 for line in plan.splitlines() if line.startswith("- [ ]") and "{id=" not in line)
    changes = sum(1 for line in plan.splitlines() if line.startswith("- [ ]") and "{id=" in line)
    print(f"{'Revised' if parts.revise else 'Drafted'}: {tasks} task(s), {changes} change(s), written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
