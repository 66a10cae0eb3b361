"""What the Plan's rows say beyond the task, kept up as the log changes
instead of read again whole: why each failed task failed, what each task's
runs cost (and today's and all runs' totals), which waiting tasks can never
run.

Each is read whole once (the Plan pane's workers, through the session);
after that the log feed's events carry the changes: a ``failed`` event is
the failure (``failure_of``), a run's end event holds its figures
(``run_totals``). Which waiting tasks can never run is worked out again
only around the tasks that died, came back or changed their dependencies:
what waits on them, and what that waits for (``around``), from the tasks
the console holds. At 100,000 tasks and 1,000,000 events a read whole takes
most of a second; a change costs what the change touches.

``Pending`` bridges a read whole that was under way while events came: it
keeps them, and they are applied again to the read when it lands (the read
is bounded by the last event the console had seen when it began).

Pure: no Textual, no SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from factory_tui.model import (
    RUN_END_KINDS,
    WAITING_STATES,
    Event,
    Failure,
    State,
    Task,
    Totals,
    Usage,
    failure_of,
)


def _number(value: object) -> float:
    """A figure an agent reported, or 0 (a string, a bool, nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


def run_totals(event: Event) -> Totals | None:
    """The figures of the run an event ends (None: it ends no run), as
    ``ExecutionLog.usage`` counts them."""
    data = event.data
    if event.kind not in RUN_END_KINDS or not isinstance(data, dict) or data.get("run") is None:
        return None
    return Totals(
        runs=1, cost_usd=_number(data.get("cost_usd")), input_tokens=int(_number(data.get("input_tokens"))),
        output_tokens=int(_number(data.get("output_tokens"))), turns=int(_number(data.get("turns"))),
    )


def same_day(since: float, now: float) -> bool:
    """Whether ``now`` falls on the local day that starts at ``since``."""
    return time.localtime(since)[:3] == time.localtime(now)[:3]


def add_runs(usage: Usage, events: Iterable[Event]) -> bool:
    """``usage`` with the runs ``events`` end added; whether any did."""
    added = False
    for event in events:
        totals = run_totals(event)
        if totals is None or event.task_id is None:
            continue
        added = True
        usage.total.add(totals)
        if event.at >= usage.since:
            usage.today.add(totals)
        known = usage.tasks.get(event.task_id)
        if known is None:
            usage.tasks[event.task_id] = totals
        else:
            known.add(totals)
    return added


def apply_failures(failures: dict[str, Failure], events: Iterable[Event], changed: Iterable[Task]) -> set[str]:
    """``failures`` after ``events`` and the tasks they changed: a
    ``failed`` event is its task's failure, a task no longer failed has
    none. Returns the changed tasks that are failed with no failure known
    (their event was not among these: it is read)."""
    for event in events:
        if event.kind == "failed" and event.task_id is not None:
            failures[event.task_id] = failure_of(event)
    missing: set[str] = set()
    for task in changed:
        if task.state is not State.FAILED:
            failures.pop(task.id, None)
        elif task.id not in failures:
            missing.add(task.id)
    return missing


@dataclass
class Pending:
    """Events that came while a read whole was under way (None: no read)."""

    since: int | None = None
    events: list[Event] = field(default_factory=list)

    def begin(self, last_seen: int) -> int:
        """A read begins; it covers the events up to ``last_seen``."""
        self.since = last_seen
        self.events = []
        return last_seen

    def keep(self, events: Iterable[Event]) -> None:
        if self.since is not None:
            self.events.extend(event for event in events if event.id > self.since)

    def end(self) -> list[Event]:
        """The read landed: the events to apply to it."""
        events, self.events, self.since = self.events, [], None
        return events


def dependents_of(tasks: Iterable[Task]) -> dict[str, set[str]]:
    """For each task, the tasks that depend on it."""
    found: dict[str, set[str]] = {}
    for task in tasks:
        for dep in task.depends_on:
            found.setdefault(dep, set()).add(task.id)
    return found


def update_dependents(dependents: dict[str, set[str]], before: Task | None, after: Task) -> None:
    """``dependents`` after ``after`` replaced ``before``."""
    old = before.depends_on if before is not None else ()
    if old == after.depends_on:
        return
    for dep in set(old) - set(after.depends_on):
        waiting = dependents.get(dep)
        if waiting is not None:
            waiting.discard(after.id)
            if not waiting:
                del dependents[dep]
    for dep in after.depends_on:
        dependents.setdefault(dep, set()).add(after.id)


def around(
    tasks: Mapping[str, Task], dependents: Mapping[str, set[str]], changed: Iterable[str],
) -> tuple[set[str], dict[str, Task]]:
    """The tasks whose never-runs can move when ``changed`` did (the changed
    ones, and what waits on them through waiting tasks), and the part of
    the plan that decides theirs (those, and everything they wait for
    through waiting tasks). ``model.never_runs`` over that part is exact for
    the first set."""
    moved: set[str] = set()
    stack = list(changed)
    while stack:
        task_id = stack.pop()
        if task_id in moved:
            continue
        moved.add(task_id)
        for waiting in dependents.get(task_id, ()):
            task = tasks.get(waiting)
            if task is not None and task.state in WAITING_STATES and waiting not in moved:
                stack.append(waiting)
    part: dict[str, Task] = {}
    stack = list(moved)
    while stack:
        task_id = stack.pop()
        if task_id in part:
            continue
        task = tasks.get(task_id)
        if task is None:
            continue
        part[task_id] = task
        if task.state in WAITING_STATES:
            stack.extend(dep for dep in task.depends_on if dep not in part)
    return moved, part
