"""What every importer hands on: one ``SourceRecord`` per task of the other
tool, in a ``SourceBatch``, and the checks a batch passes before the log
is touched.

A record keeps the tool's own id (``bd-a3f8``, ``TASK-12``, ``3.1``), its
status as written there and what that status means here (an ``Intent``),
our priority, labels that follow our label rule, and the ids of the same
tool it waits for. ``where`` names the file and the line or the record, so
that every error about it is one line a user can find.

Pure: text in, records out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from factory_tui.dependency_graph import find_cycle
from factory_tui.errors import InvalidInput, path_text
from factory_tui.model import LABEL_PATTERN, PRIORITY_MAX, PRIORITY_MIN, State


class Kind(StrEnum):
    """The tools a plan can come from (``--from``), markdown being ours."""

    BEADS = "beads"
    BACKLOG = "backlog"
    TASKMASTER = "taskmaster"


class Intent(StrEnum):
    """What another tool's status says about a task here."""

    OPEN = "open"  # work still to do: the import's start state (proposed unless --state says)
    HELD = "held"  # parked there (deferred): held here
    DONE = "done"
    CANCELLED = "cancelled"


class SourceError(InvalidInput):
    """A record (or a whole file) of another tool's plan that cannot be
    imported: the message starts with the file and the line or record."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(slots=True)
class SourceRecord:
    source_id: str
    title: str
    status: str  # the tool's own, as written (or its default when none is)
    intent: Intent
    where: str  # "issues.jsonl:12 (bd-7)": the file and the line or record
    path: str  # the file it was read from, as stored with the task
    body: str = ""
    priority: int = 0
    labels: tuple[str, ...] = ()
    after: tuple[str, ...] = ()  # ids of the same tool this one waits for


@dataclass(slots=True)
class SourceBatch:
    """One import: the records in the order read, and ``gone``: ids the tool
    has dropped (Backlog.md's archive), whose tasks are cancelled if they
    were imported before and have not started here."""

    kind: Kind
    records: list[SourceRecord]
    gone: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """How one tool's statuses and priorities read here, and ours there.
    ``statuses_in`` is every status the tool has (any other is refused);
    ``priority_out`` turns our priority into the tool's."""

    kind: Kind
    statuses_in: Mapping[str, Intent]
    statuses_out: Mapping[State, str]
    priority_out: Callable[[int], object]


def where(path: str, line: int | None = None, record: str | None = None) -> str:
    """``issues.jsonl:12 (bd-7)``, ``tasks.json (task 3.1)``, ``x.md:4``."""
    text = f"{path}:{line}" if line is not None else path
    return f"{text} ({record})" if record else text


def short(value: object, limit: int = 40) -> str:
    """A value quoted for an error message, cut short: a record's text may
    be long, and the message is one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode_lines(data: bytes, path: str, *, max_line: int) -> str:
    """``data`` as text, refused with the line to blame when a line is longer
    than ``max_line`` bytes or the bytes are not UTF-8 (a byte order mark
    at the start is dropped)."""
    start = 0
    number = 1
    while True:
        end = data.find(b"\n", start)
        stop = len(data) if end < 0 else end
        if stop - start > max_line:
            raise SourceError(
                where(path, number),
                f"a line of {stop - start:,} bytes; a line may have {max_line:,} at most",
            )
        if end < 0:
            break
        start = end + 1
        number += 1
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SourceError(where(path, line), "not UTF-8 text") from None


def clean_title(value: object, at: str) -> str:
    """A title as one line: line breaks and runs of white space become one
    space (every other character is kept, and shown literally)."""
    if not isinstance(value, str):
        raise SourceError(at, f"the title must be text, not {short(value)}")
    title = " ".join(value.split())
    if not title:
        raise SourceError(at, "the title is empty")
    return title


def text_field(value: object, name: str, at: str) -> str:
    """An optional text field: absent or null is empty."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SourceError(at, f"{name} must be text, not {short(value)}")
    return value


def list_field(value: object, name: str, at: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(at, f"{name} must be a list, not {short(value)}")
    return value


_NOT_IN_LABEL = re.compile(r"[^A-Za-z0-9_./:-]+")


def source_label(text: str) -> str | None:
    """Another tool's label made to follow ours (model.LABEL_RULE): what a
    label may not hold becomes ``-``, punctuation at either end goes, and
    it is cut to 40 characters; None if nothing is left."""
    label = _NOT_IN_LABEL.sub("-", text.strip())
    label = label.strip("-_./:")[:40].rstrip("-_./:")
    return label if label and LABEL_PATTERN.fullmatch(label) else None


def source_labels(values: Iterable[object], at: str) -> tuple[str, ...]:
    labels: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            raise SourceError(at, f"a label must be text, not {short(value)}")
        label = source_label(value)
        if label:
            labels[label] = None
    return tuple(labels)


def bounded_priority(value: int) -> int:
    return max(PRIORITY_MIN, min(PRIORITY_MAX, value))


def status_intent(vocabulary: Mapping[str, Intent], status: str, at: str, tool: str) -> Intent:
    intent = vocabulary.get(status)
    if intent is None:
        raise SourceError(
            at, f"unknown status {short(status)} ({tool} statuses: {', '.join(vocabulary)})"
        )
    return intent


def section(heading: str, text: str) -> str:
    text = text.strip("\n")
    return f"## {heading}\n\n{text}" if text.strip() else ""


def join_sections(*parts: str) -> str:
    return "\n\n".join(part.strip("\n") for part in parts if part.strip())


def check_batch(batch: SourceBatch) -> None:
    """What can be told without the log: every id once, no record waiting
    for itself, no loop among the batch's own records. Waiting for a
    record the tool has cancelled (or dropped) is no wait at all there, so
    such ids are taken out of ``after`` here."""
    by_id: dict[str, SourceRecord] = {}
    for record in batch.records:
        first = by_id.get(record.source_id)
        if first is not None:
            raise SourceError(record.where, f"the id {record.source_id} is given twice (first at {first.where})")
        by_id[record.source_id] = record
    for record in batch.records:
        if record.source_id in record.after:
            raise SourceError(record.where, f"{record.source_id} depends on itself")
        record.after = tuple(
            ref for ref in dict.fromkeys(record.after)
            if ref not in batch.gone
            and not (ref in by_id and by_id[ref].intent is Intent.CANCELLED)
        )
    loop = find_cycle(
        by_id, lambda source_id: [ref for ref in by_id[source_id].after if ref in by_id]
    )
    if loop is not None:
        raise SourceError(by_id[loop[0]].where, "dependency cycle: " + path_text(loop))
