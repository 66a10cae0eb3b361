"""What needs the operator now: the moments a task reaches review, fails,
or can no longer run as the plan is (it waits for a cancelled or failed
task), and a request from another factory arriving. Pure: the console turns these into a notification, the terminal
bell and its window title, as ``[console]`` in factory.toml allows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from factory_tui.model import KIND_MAIL_RECEIVED, Event, State, Task, never_runs
from factory_tui.text import one_line


class Need(StrEnum):
    REVIEW = "review"
    FAILED = "failed"
    BLOCKED = "blocked"
    REQUEST = "request"


@dataclass(frozen=True, slots=True)
class Notice:
    need: Need
    task_id: str
    text: str


def notices(before: Mapping[str, State], changed: Iterable[Task], plan: Iterable[Task]) -> list[Notice]:
    """What the changes from ``before`` (task id → state as the console
    showed it) to ``changed`` ask of the operator. ``plan`` is the whole plan
    after the change (to find the tasks it leaves unable to run)."""
    found: list[Notice] = []
    died = False
    for task in changed:
        was = before.get(task.id)
        if task.state is was:
            continue
        title = one_line(task.title, 60)
        if task.state is State.REVIEW:
            found.append(Notice(Need.REVIEW, task.id, f"{task.id} is ready for review: {title}"))
        elif task.state is State.FAILED:
            found.append(Notice(Need.FAILED, task.id, f"{task.id} failed: {title}"))
        if task.state in (State.FAILED, State.CANCELLED):
            died = True
    if died:
        plan = list(plan)
        stuck = never_runs(plan)
        stuck_before = never_runs([_with_state(task, before.get(task.id)) for task in plan])
        for task_id, why in stuck.items():
            if task_id not in stuck_before:
                found.append(Notice(Need.BLOCKED, task_id, f"{task_id} can never run as it is: {why.text}"))
    return found


def mail_notices(events: Iterable[Event]) -> list[Notice]:
    """A notice for each request from a peer that has just arrived
    (received into our inbox or a source, and addressed to us)."""
    found = []
    for event in events:
        data = event.data or {}
        if event.kind != KIND_MAIL_RECEIVED or data.get("kind") != "request" or data.get("to_us") is False:
            continue
        subject = one_line(event.note or "", 60)
        found.append(Notice(Need.REQUEST, str(data.get("key", "")),
                            f"{one_line(event.actor, 30)} asks: {subject} (5 Mail, t makes it a task)"))
    return found


def review_count(plan: Iterable[Task]) -> int:
    return sum(1 for task in plan if task.state is State.REVIEW)


def window_title(name: str, waiting: int) -> str:
    """The terminal's title: the factory and how many tasks wait for review."""
    if not waiting:
        return f"factory: {name}"
    return f"factory: {name} · {waiting} in review"


def _with_state(task: Task, state: State | None) -> Task:
    if state is None or state is task.state:
        return task
    return replace(task, state=state)
