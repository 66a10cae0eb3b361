"""What the console's ``/`` filters mean. Pure functions, shared by the
panes (which match live rows in memory) and the workers (which ask SQLite).

Plan filter: every word must appear in the task's id, state or title
(case-insensitive).

Log filter: ``T-12`` (or ``task:T-12``) keeps one task's events; an event
kind (``approved``, or ``kind:approved``) keeps that kind, several kinds
widen it; a kind with a minus (``-progress``, or ``-kind:progress``) hides
that kind, so that several agents' progress does not drown the
transitions; every other word must appear in the note or the actor.
"""

from __future__ import annotations

from dataclasses import dataclass

from factory_tui.errors import InvalidInput
from factory_tui.model import EVENT_KINDS, Event, Task, normalize_task_id


def plan_matches(task: Task, text: str) -> bool:
    words = text.lower().split()
    if not words:
        return True
    haystack = f"{task.id} {task.state.value} {task.title}".lower()
    return all(word in haystack for word in words)


@dataclass(frozen=True, slots=True)
class LogFilter:
    task_id: str | None = None
    kinds: tuple[str, ...] = ()
    text: str = ""
    exclude_kinds: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.task_id is None and not self.kinds and not self.text and not self.exclude_kinds

    @classmethod
    def parse(cls, query: str) -> LogFilter:
        task_id: str | None = None
        kinds: list[str] = []
        excluded: list[str] = []
        words: list[str] = []
        for word in query.split():
            hidden = word[1:].lower().removeprefix("kind:") if word.startswith("-") else ""
            if hidden.isalpha():
                # -progress, -kind:progress: hide a kind. Other letters after
                # the minus are a mistyped kind, said so rather than searched
                # for as text, matching nothing. (-1 is still text.)
                excluded.append(_kind(hidden))
                continue
            key, colon, value = word.partition(":")
            lowered = word.lower()
            if colon and key.lower() == "task":
                task_id = normalize_task_id(value)
            elif colon and key.lower() == "kind":
                kinds.append(_kind(value.lower()))
            elif lowered in EVENT_KINDS:
                kinds.append(lowered)
            else:
                as_id = normalize_task_id_or_none(word)
                if as_id is not None:
                    task_id = as_id
                else:
                    words.append(lowered)
        return cls(
            task_id=task_id, kinds=tuple(dict.fromkeys(kinds)), text=" ".join(words),
            exclude_kinds=tuple(dict.fromkeys(excluded)),
        )

    def matches(self, event: Event) -> bool:
        if self.task_id is not None and event.task_id != self.task_id:
            return False
        if self.kinds and event.kind not in self.kinds:
            return False
        if event.kind in self.exclude_kinds:
            return False
        if self.text:
            haystack = f"{event.note or ''} {event.actor}".lower()
            return all(word in haystack for word in self.text.split())
        return True

    def query_args(self) -> dict:
        """Keyword arguments for ``LogReader.event_ids``. ``exclude_kinds``
        is there only when a kind is hidden (``backends/log.py``'s
        ``event_filter`` takes it)."""
        args: dict = {"task_id": self.task_id, "kinds": self.kinds or None, "texts": self.text.split()}
        if self.exclude_kinds:
            args["exclude_kinds"] = self.exclude_kinds
        return args


def _kind(name: str) -> str:
    if name not in EVENT_KINDS:
        raise InvalidInput(f"unknown event kind {name!r} (kinds: {', '.join(sorted(EVENT_KINDS))})")
    return name


def normalize_task_id_or_none(word: str) -> str | None:
    try:
        return normalize_task_id(word) if word[:1] in "Tt" else None
    except InvalidInput:
        return None
