"""Backlog.md's task files read as import records.

A task is a markdown file (``backlog/tasks/task-12 - Title.md``, done
ones often in ``backlog/completed/``) with YAML front matter: ``id``
(``task-12``, ``BACK-3.1``: a prefix, a number, dotted for a subtask),
``title``, ``status``, ``priority`` (``high``/``medium``/``low``),
``labels``, ``dependencies`` (ids) and ``parent_task_id``; its body has
"## Description", "## Acceptance Criteria" and other sections.

* Ids compare as Backlog.md compares them: case aside and leading zeros
  aside (``task-012`` is ``TASK-12``); a bare number takes the project's
  prefix. They are kept upper case: ``TASK-12``.
* Statuses are those of ``backlog/config.yml`` (``To Do``, ``In Progress``,
  ``Done`` unless it says otherwise), compared case aside: the last one is
  done (Backlog.md's own rule), every other one is work still to do. An
  empty status is the config's ``default_status``.
* The body is the file's markdown body, without Backlog.md's section
  markers (``<!-- SECTION:…:BEGIN -->`` and the like).
* ``parent_task_id`` does not order the work (Backlog.md does not make a
  parent wait for its subtasks); it becomes the line "Part of TASK-3" at
  the top of the body.
* Read and not kept: ``assignee``, ``reporter``, dates, ``milestone``,
  ``ordinal``, ``references``, ``documentation``, ``type``.

Priorities: the config's ``priorities`` (``high``, ``medium``, ``low``
unless it says otherwise), the middle one is ours 0 and each step one
more or less (high 1, medium 0, low -1); none given is 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from factory_tui.front_matter import FrontMatterError, split
from factory_tui.model import State
from factory_tui.plan_formats.records import (
    Intent,
    Kind,
    SourceError,
    SourceRecord,
    Vocabulary,
    clean_title,
    list_field,
    short,
    source_labels,
    where,
)

DEFAULT_STATUSES = ("To Do", "In Progress", "Done")
DEFAULT_PRIORITIES = ("high", "medium", "low")
DEFAULT_PREFIX = "task"
# Cancelled here is archived there: Backlog.md keeps dropped tasks in
# backlog/archive/tasks/ (and takes them out of other tasks' dependencies).
ARCHIVED = "archived"
STATUSES_OUT = {
    State.PROPOSED: "To Do",
    State.QUEUED: "To Do",
    State.HELD: "To Do",
    State.RUNNING: "In Progress",
    State.CHECKING: "In Progress",
    State.REVIEW: "In Progress",
    State.FAILED: "In Progress",
    State.DONE: "Done",
    State.CANCELLED: ARCHIVED,
}


def priority_out(priority: int) -> str:
    return "high" if priority > 0 else "low" if priority < 0 else "medium"


VOCABULARY = Vocabulary(
    Kind.BACKLOG,
    {status: Intent.DONE if status == DEFAULT_STATUSES[-1] else Intent.OPEN for status in DEFAULT_STATUSES},
    STATUSES_OUT,
    priority_out,
)

_ID = re.compile(r"^(?:(?P<prefix>[A-Za-z]+)-)?(?P<number>\d+(?:\.\d+)*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?:SECTION|AC|DOD):[A-Z_:]*\s*-->\s*$")
# An archived task's id, from its file name ("task-12 - Title.md").
_FILE_ID = re.compile(r"^([A-Za-z]+-\d+(?:\.\d+)*)\b")


@dataclass(frozen=True, slots=True)
class BacklogConfig:
    statuses: tuple[str, ...] = DEFAULT_STATUSES
    default_status: str = DEFAULT_STATUSES[0]
    priorities: tuple[str, ...] = DEFAULT_PRIORITIES
    prefix: str = DEFAULT_PREFIX

    def intent(self, status: str, at: str) -> Intent:
        folded = [known.casefold() for known in self.statuses]
        if status.casefold() not in folded:
            raise SourceError(at, f"unknown status {short(status)} (the project's statuses: {', '.join(self.statuses)})")
        return Intent.DONE if status.casefold() == folded[-1] else Intent.OPEN

    def priority(self, value: object, at: str) -> int:
        if value is None or value == "":
            return 0
        if not isinstance(value, str):
            raise SourceError(at, f"priority must be text ({', '.join(self.priorities)}), not {short(value)}")
        folded = [known.casefold() for known in self.priorities]
        if value.strip().casefold() not in folded:
            raise SourceError(at, f"unknown priority {short(value)} (the project's priorities: {', '.join(self.priorities)})")
        return (len(folded) - 1) // 2 - folded.index(value.strip().casefold())


def parse_config(text: str, path: str) -> BacklogConfig:
    """``backlog/config.yml``: the statuses, priorities and id prefix."""
    import yaml  # type: ignore[import-untyped]

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise SourceError(where(path, mark.line + 1 if mark else None), f"YAML: {getattr(error, 'problem', None) or error}") from None
    if data is None:
        return BacklogConfig()
    if not isinstance(data, dict):
        raise SourceError(path, "the config must be keys and values")
    statuses = _names(data.get("statuses"), "statuses", path) or DEFAULT_STATUSES
    priorities = _names(data.get("priorities"), "priorities", path) or DEFAULT_PRIORITIES
    default = data.get("default_status") or statuses[0]
    prefix = data.get("task_prefix") or DEFAULT_PREFIX
    if not isinstance(default, str) or not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z]+", prefix):
        raise SourceError(path, "default_status must be text and task_prefix letters")
    return BacklogConfig(statuses, default, priorities, prefix)


def _names(value: object, key: str, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise SourceError(path, f"{key} must be a list of names, not {short(value)}")
    return tuple(item.strip() for item in value)


def canonical_id(value: object, prefix: str, at: str) -> str:
    """``task-012`` → ``TASK-12``; ``7`` → ``TASK-7`` (the project's prefix)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SourceError(at, f"a task id must be text like task-12, not {short(value)}")
    match = _ID.match(str(value).strip())
    if match is None:
        raise SourceError(at, f"not a task id: {short(value)} (ids look like task-12 or task-12.1)")
    number = ".".join(str(int(part)) for part in match.group("number").split("."))
    return f"{(match.group('prefix') or prefix).upper()}-{number}"


def archived_id(file_name: str) -> str | None:
    """The id an archived task's file name starts with, upper case."""
    match = _FILE_ID.match(file_name)
    if match is None:
        return None
    prefix, _, number = match.group(1).partition("-")
    return f"{prefix.upper()}-{'.'.join(str(int(part)) for part in number.split('.'))}"


_PERSON = re.compile(r"^(?P<key>\s*(?:assignee|reporter):[ \t]*)(?P<value>(?:@|\[[^\]]*@).*?)[ \t]*$")


def _quote_people(text: str) -> str:
    """Backlog.md writes ``assignee: @name`` (and ``[@a, @b]``), which is
    not YAML, and quotes such values before its own YAML reader sees them;
    so does this (their value is not kept here anyway)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return text
    for number in range(1, len(lines)):
        if lines[number].strip() == "---":
            break
        match = _PERSON.match(lines[number])
        if match:
            value = match.group("value").replace("\\", "\\\\").replace('"', '\\"')
            lines[number] = f'{match.group("key")}"{value}"'
    return "\n".join(lines)


def parse_task(text: str, path: str, config: BacklogConfig) -> SourceRecord:
    """One task file."""
    try:
        # Files written on Windows end their lines with \r\n.
        found = split(_quote_people(text.replace("\r\n", "\n")), example="id: task-1", least="id and title")
    except FrontMatterError as error:
        raise SourceError(where(path, error.line), error.reason) from None
    data = found.data
    source_id = canonical_id(data.get("id"), config.prefix, where(path, found.key_lines.get("id", 1)))
    at = where(path, None, source_id)
    title = data.get("title")
    if isinstance(title, int | float) and not isinstance(title, bool):
        title = str(title)  # `title: 2048` is a title, as Backlog.md reads it
    title = clean_title(title, at)
    status = data.get("status")
    if status is None or status == "":
        status = config.default_status
    if not isinstance(status, str):
        raise SourceError(at, f"status must be text, not {short(status)}")
    after = tuple(
        canonical_id(ref, config.prefix, at)
        for ref in list_field(data.get("dependencies"), "dependencies", at)
    )
    parent = data.get("parent_task_id")
    lines = [line for line in found.body.split("\n") if not _MARKER.match(line)]
    body = "\n".join(lines).strip("\n")
    if parent not in (None, ""):
        body = f"Part of {canonical_id(parent, config.prefix, at)}." + (f"\n\n{body}" if body else "")
    return SourceRecord(
        source_id=source_id,
        title=title,
        status=status.strip(),
        intent=config.intent(status.strip(), at),
        where=at,
        path=path,
        body=body,
        priority=config.priority(data.get("priority"), at),
        labels=source_labels(list_field(data.get("labels"), "labels", at), at),
        after=after,
    )


def follow_renamed_prefix(records: list[SourceRecord], prefix: str) -> None:
    """A project that changed its id prefix (``task`` to ``back``) keeps
    dependencies written with the old one: one that names no task, but
    whose number is a task's with the project's prefix, names that task."""
    ids = {record.source_id for record in records}
    ours = prefix.upper()
    for record in records:
        if all(ref in ids for ref in record.after):
            continue
        record.after = tuple(
            ref if ref in ids or f"{ours}-{ref.partition('-')[2]}" not in ids else f"{ours}-{ref.partition('-')[2]}"
            for ref in record.after
        )
