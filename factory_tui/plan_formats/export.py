"""The plan written out, one task at a time (``factory plan export``).

JSON lines: one object per line, ``{"type": "task", …}`` for each task in
id order, then with ``--events`` ``{"type": "event", …}`` for each event,
oldest first. A task's ``sources`` are its ids in other tools, each with
its state and priority in that tool's words (vocabulary.py), so that a
script can write them back.

Markdown: the import checklist (plan_file.py), so that ``factory plan
import`` of the export makes the same plan: each task an item labelled
``#task-N`` with its dependencies, priority, profile and labels, its body
indented under it, ``[x]`` when done. The checklist has no word for
cancelled: cancelled tasks are left out, and so are dependencies on them
(as the other tools drop a dependency on a dropped task). A body line
that the checklist would read as an item of its own (``- [ ] criterion``)
is written with its bracket escaped (``- \\[ ] criterion``), which markdown
shows the same.

Pure: a task in, text out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from factory_tui.model import Event, State, Task, iso_time
from factory_tui.plan_formats.vocabulary import their_terms

# The checklist's item line (plan_file._ITEM), which a body line must not be.
_ITEM_LIKE = re.compile(r"^(?P<lead>\s*(?:[-*+]|\d+[.)])\s+)\[(?P<box>[^\]]*)\](?P<rest>.*)$")
# A profile the checklist's `profile=NAME` can carry (one word, no braces).
_WORD = re.compile(r"^[^\s{}]+$")


def json_line(data: dict) -> str:
    """One line of JSON, ASCII only: no control character or escape
    sequence from a title reaches a terminal raw."""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def task_record(task: Task, sources: Iterable[tuple[str, str]]) -> dict:
    """A task as a line of the export; ``sources``: (tool, id) pairs."""
    return {
        "type": "task",
        "id": task.id,
        "title": task.title,
        "state": task.state.value,
        "priority": task.priority,
        "labels": list(task.labels),
        "depends_on": list(task.depends_on),
        "body": task.body,
        "profile": task.profile,
        "attempts": task.attempts,
        "source": task.source,
        "sources": [
            {"kind": kind, "id": source_id, **their_terms(kind, task.state.value, task.priority)}
            for kind, source_id in sources
        ],
        "created": iso_time(task.created_at),
        "updated": iso_time(task.updated_at),
    }


def event_record(event: Event) -> dict:
    return {"type": "event", **event.to_json()}


def item_label(task_id: str) -> str:
    """``T-12`` → ``task-12``: a checklist label (one that is no task id)."""
    return "task-" + task_id[2:]


def markdown_header(name: str) -> str:
    return (
        f"# The plan of {' '.join(name.split()) or 'a factory'}\n\n"
        "Written by `factory plan export --format markdown`; `factory plan import` reads it back.\n"
    )


def markdown_item(task: Task, cancelled: set[str]) -> str:
    """One task as a checklist item and its body (ending with a newline);
    empty for a cancelled task."""
    if task.state is State.CANCELLED:
        return ""
    attrs = [f"#{item_label(task.id)}"]
    after = [item_label(dep) for dep in task.depends_on if dep not in cancelled]
    if after:
        attrs.append("after=" + ",".join(after))
    if task.priority:
        attrs.append(f"priority={task.priority}")
    if task.profile and _WORD.match(task.profile):
        attrs.append(f"profile={task.profile}")
    if task.labels:
        attrs.append("labels=" + ",".join(task.labels))
    box = "x" if task.state is State.DONE else " "
    lines = [f"- [{box}] {' '.join(task.title.split())} {{{' '.join(attrs)}}}"]
    # splitlines, as the checklist's reader splits: a line separator in a
    # body is a line break when read back, never the end of the item.
    for line in task.body.splitlines() if task.body else ():
        if not line.strip():
            lines.append("")
            continue
        match = _ITEM_LIKE.match(line)
        if match and match.group("rest")[:1] not in ("(", "["):
            line = f"{match.group('lead')}\\[{match.group('box')}]{match.group('rest')}"
        lines.append("  " + line)
    # A blank line after a body, so that the next item stands apart.
    return "\n".join(lines).rstrip("\n") + ("\n\n" if len(lines) > 1 else "\n")
