"""Task Master's ``.taskmaster/tasks/tasks.json`` read as import records.

The file is tagged, ``{"master": {"tasks": [...], "metadata": {...}}, "other-tag":
{...}}``, or (written by older versions) ``{"tasks": [...]}``, which is the
``master`` tag. One tag is read: ``master`` unless another is named, or
the only one the file has.

A task: ``id`` (a number), ``title``, ``description``, ``details``,
``testStrategy``, ``status``, ``priority`` (``critical``, ``high``,
``medium``, ``low``; medium when absent), ``dependencies`` (task ids, or
``"3.1"`` for a subtask) and ``subtasks``: each with an ``id`` local to its
parent, its own ``dependencies`` (a number is a sibling subtask, text is
a task id or ``"3.1"``, as Task Master reads them) and the same text
fields (and ``acceptanceCriteria``).

* Ids are Task Master's: ``3`` and ``3.1``; for a tag other than master
  the tag comes first, ``feature-x:3.1``.
* A subtask is a task of its own. Its parent waits for all its subtasks
  (the parent's run puts the parts together), and each subtask waits for
  what its parent waits for.
* The body is the description, then the details, the test strategy and
  the acceptance criteria under their headings (a subtask's starts with
  "Part of task 3: <its title>").
* Read and not kept: ``complexity``, ``recommendedSubtasks``,
  ``expansionPrompt``, ``updatedAt``, ``previousStatus``, the metadata.

Priorities: critical 2, high 1, medium 0, low -1; back, 2 and above is
critical, 1 high, 0 medium, below low. A subtask without a priority has
its parent's.
"""

from __future__ import annotations

import json

from factory_tui.model import State
from factory_tui.plan_formats.records import (
    Intent,
    Kind,
    SourceError,
    SourceRecord,
    Vocabulary,
    clean_title,
    join_sections,
    list_field,
    section,
    short,
    status_intent,
    text_field,
    where,
)

MASTER = "master"
STATUSES_IN = {
    "pending": Intent.OPEN,
    "in-progress": Intent.OPEN,
    "blocked": Intent.OPEN,  # what it waits for is its dependencies here
    "review": Intent.HELD,  # finished there, waiting for a person: not to be run again blindly
    "deferred": Intent.HELD,
    "done": Intent.DONE,
    "completed": Intent.DONE,
    "cancelled": Intent.CANCELLED,
}
STATUSES_OUT = {
    State.PROPOSED: "pending",
    State.QUEUED: "pending",
    State.HELD: "deferred",
    State.RUNNING: "in-progress",
    State.CHECKING: "in-progress",
    State.REVIEW: "review",
    State.FAILED: "blocked",
    State.DONE: "done",
    State.CANCELLED: "cancelled",
}
PRIORITIES_IN = {"critical": 2, "high": 1, "medium": 0, "low": -1}


def priority_out(priority: int) -> str:
    if priority >= 2:
        return "critical"
    return {1: "high", 0: "medium"}.get(priority, "low")


VOCABULARY = Vocabulary(Kind.TASKMASTER, STATUSES_IN, STATUSES_OUT, priority_out)


def parse_taskmaster(text: str, path: str, tag: str | None = None) -> list[SourceRecord]:
    """The tasks (each followed by its subtasks) of one tag of the file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceError(where(path, error.lineno), f"not JSON: {error.msg} (column {error.colno})") from None
    except RecursionError:
        raise SourceError(path, "not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise SourceError(path, f"the file must hold a JSON object, not {short(data)}")
    tasks, name = _tasks_of(data, path, tag)
    at_file = path if name == MASTER else f"{path} [{name}]"
    prefix = "" if name == MASTER else f"{name}:"
    records: list[SourceRecord] = []
    for position, task in enumerate(list_field(tasks, "tasks", at_file)):
        records.extend(_task_records(task, position, at_file, path, prefix))
    return records


def _tasks_of(data: dict, path: str, tag: str | None) -> tuple[object, str]:
    if "tasks" in data and tag in (None, MASTER):
        return data["tasks"], MASTER
    tags = [name for name, value in data.items() if isinstance(value, dict) and "tasks" in value]
    if tag is None:
        tag = MASTER if MASTER in tags else tags[0] if len(tags) == 1 else None
        if tag is None:
            raise SourceError(
                path,
                "no master tag and several others: name one with --tag"
                + (f" ({', '.join(tags)})" if tags else "; no tag holds tasks"),
            )
    if tag not in tags:
        raise SourceError(path, f"no tag {short(tag)} with tasks" + (f" (tags: {', '.join(tags)})" if tags else ""))
    return data[tag]["tasks"], tag


def _local_id(value: object, at: str, what: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SourceError(at, f"{what} must be a whole number, not {short(value)}")
    return value


def _reference(value: object, at: str) -> str:
    """A dependency written as 3, "3" or "3.1": the id it names."""
    if isinstance(value, str):
        parts = value.strip().split(".")
        if 1 <= len(parts) <= 2 and all(part.isdigit() for part in parts):
            return ".".join(str(int(part)) for part in parts)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    raise SourceError(at, f"a dependency must be a task id like 3 or \"3.1\", not {short(value)}")


def _priority(value: object, at: str) -> int | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.strip().lower() not in PRIORITIES_IN:
        raise SourceError(at, f"unknown priority {short(value)} (Task Master priorities: {', '.join(PRIORITIES_IN)})")
    return PRIORITIES_IN[value.strip().lower()]


def _status(value: object, at: str) -> str:
    if value is None or value == "":
        return "pending"
    if not isinstance(value, str):
        raise SourceError(at, f"status must be text, not {short(value)}")
    return value


def _body(item: dict, at: str, first: str = "") -> str:
    return join_sections(
        first,
        text_field(item.get("description"), "description", at),
        section("Details", text_field(item.get("details"), "details", at)),
        section("Test strategy", text_field(item.get("testStrategy"), "testStrategy", at)),
        section("Acceptance criteria", text_field(item.get("acceptanceCriteria"), "acceptanceCriteria", at)),
    )


def _task_records(task: object, position: int, at_file: str, path: str, prefix: str) -> list[SourceRecord]:
    # A record is named by its id and by where it is in the file: two
    # records with one id are told apart.
    place = where(at_file, None, f"tasks[{position}]")
    if not isinstance(task, dict):
        raise SourceError(place, f"a task must be a JSON object, not {short(task)}")
    number = _local_id(task.get("id"), place, "a task's id")
    source_id = f"{prefix}{number}"
    at = where(at_file, None, f"task {source_id}, tasks[{position}]")
    status = _status(task.get("status"), at)
    priority = _priority(task.get("priority"), at)
    priority = 0 if priority is None else priority
    after = [prefix + _reference(ref, at) for ref in list_field(task.get("dependencies"), "dependencies", at)]
    title = clean_title(task.get("title"), at)
    parts: list[SourceRecord] = []
    for index, subtask in enumerate(list_field(task.get("subtasks"), "subtasks", at)):
        place = where(at_file, None, f"task {source_id}, subtasks[{index}]")
        if not isinstance(subtask, dict):
            raise SourceError(place, f"a subtask must be a JSON object, not {short(subtask)}")
        local = _local_id(subtask.get("id"), place, "a subtask's id")
        sub_id = f"{source_id}.{local}"
        sub_at = where(at_file, None, f"task {sub_id}, subtasks[{index}] of tasks[{position}]")
        sub_after = []
        for ref in list_field(subtask.get("dependencies"), "dependencies", sub_at):
            if isinstance(ref, int) and not isinstance(ref, bool):
                sub_after.append(f"{source_id}.{_local_id(ref, sub_at, 'a dependency')}")
            else:
                sub_after.append(prefix + _reference(ref, sub_at))
        sub_status = _status(subtask.get("status"), sub_at)
        sub_priority = _priority(subtask.get("priority"), sub_at)
        parts.append(SourceRecord(
            source_id=sub_id,
            title=clean_title(subtask.get("title"), sub_at),
            status=sub_status,
            intent=status_intent(STATUSES_IN, sub_status, sub_at, "Task Master"),
            where=sub_at,
            path=path,
            body=_body(subtask, sub_at, first=f"Part of task {source_id}: {title}"),
            priority=priority if sub_priority is None else sub_priority,
            # What the parent waits for, each part waits for too.
            after=tuple(dict.fromkeys([*sub_after, *after])),
        ))
    record = SourceRecord(
        source_id=source_id,
        title=title,
        status=status,
        intent=status_intent(STATUSES_IN, status, at, "Task Master"),
        where=at,
        path=path,
        body=_body(task, at),
        priority=priority,
        after=tuple(dict.fromkeys([*after, *(part.source_id for part in parts)])),
    )
    return [record, *parts]
