"""The Plan's rows, kept in order as tasks change: every task grouped by
state (``STATE_ORDER``: what needs the operator first), within a group by
priority, highest first, then by id, under a heading per group that has
tasks; and how many tasks each state holds.

A changed task costs two binary searches in its groups and a list insert,
not a re-sort of the plan: at 100,000 tasks a full rebuild takes tens of
milliseconds and a patch a few microseconds. A group is a sorted list of
one int per task (its priority and sequence number packed, so that the
order is the ints' order); the row at an index, and the index of a task,
are found from the groups' sizes.

Pure: no Textual, no SQLite. The Plan's table (widgets/plan_table.py)
holds one and draws from it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from factory_tui.model import PRIORITY_MAX, STATE_ORDER, State, Task
from factory_tui.plan_notes import dependents_of

# A task's place within its group: higher priority first, then lower seq.
_SEQ_BITS = 32
_SEQ_MASK = (1 << _SEQ_BITS) - 1


def order_key(task: Task) -> int:
    """The int a task sorts by within its group."""
    return ((PRIORITY_MAX - task.priority) << _SEQ_BITS) | task.seq


def _task_id(key: int) -> str:
    return f"T-{key & _SEQ_MASK}"


Row = str | State
"""A task id, or a State: the heading of that state's group. (A State is a
str too: headings are told apart by their type.)"""


class PlanRows:
    """The rows of the tasks ``matches`` accepts (all, without a filter)."""

    def __init__(self, matches: Callable[[Task], bool] | None = None) -> None:
        self._matches = matches
        self._groups: dict[State, list[int]] = {state: [] for state in STATE_ORDER}
        # Each shown group's first row (its heading), in order; None: to be
        # worked out again (after a group emptied or filled).
        self._starts: list[tuple[int, State]] | None = None
        self._count = 0

    # --- building and patching ------------------------------------------------

    def load(self, tasks: Iterable[Task]) -> None:
        """Every row again, from ``tasks`` (the whole plan)."""
        groups: dict[State, list[int]] = {state: [] for state in STATE_ORDER}
        matches = self._matches
        for task in tasks:
            if matches is None or matches(task):
                groups[task.state].append(order_key(task))
        for keys in groups.values():
            keys.sort()
        self._groups = groups
        self._starts = None

    def patch(self, before: Task | None, after: Task) -> None:
        """``after`` replaces ``before`` (None: a new task)."""
        if before is not None and (self._matches is None or self._matches(before)):
            keys = self._groups[before.state]
            key = order_key(before)
            at = bisect_left(keys, key)
            if at < len(keys) and keys[at] == key:
                del keys[at]
        if self._matches is None or self._matches(after):
            insort(self._groups[after.state], order_key(after))
        # The groups after it start elsewhere now: nine sums, on demand.
        self._starts = None

    # --- reading ------------------------------------------------------------------

    def _layout(self) -> list[tuple[int, State]]:
        if self._starts is None:
            starts = []
            at = 0
            for state in STATE_ORDER:
                size = len(self._groups[state])
                if size:
                    starts.append((at, state))
                    at += 1 + size
            self._starts = starts
            self._count = at
        return self._starts

    def __len__(self) -> int:
        self._layout()
        return self._count

    def row(self, index: int) -> Row:
        """The row at ``index`` (0 ≤ index < len)."""
        found: tuple[int, State] | None = None
        for start, state in self._layout():
            if start > index:
                break
            found = (start, state)
        if found is None or index >= self._count:
            raise IndexError(index)
        start, state = found
        return state if index == start else _task_id(self._groups[state][index - start - 1])

    def index_of(self, task: Task) -> int | None:
        """The row showing ``task`` (as the rows know it), or None."""
        keys = self._groups[task.state]
        key = order_key(task)
        at = bisect_left(keys, key)
        if at == len(keys) or keys[at] != key:
            return None
        for start, state in self._layout():
            if state is task.state:
                return start + 1 + at
        return None

    def heading_index(self, state: State) -> int | None:
        """The row of ``state``'s heading, or None (no task in it shown)."""
        return next((start for start, shown in self._layout() if shown is state), None)

    def group_size(self, state: State) -> int:
        return len(self._groups[state])

    def group(self, state: State) -> list[str]:
        """The ids of ``state``'s group, in order."""
        return [_task_id(key) for key in self._groups[state]]

    def rows(self) -> list[Row]:
        """Every row, in order (for tests and small plans)."""
        out: list[Row] = []
        for _, state in self._layout():
            out.append(state)
            out.extend(_task_id(key) for key in self._groups[state])
        return out


def count_states(tasks: Iterable[Task]) -> dict[State, int]:
    """How many of ``tasks`` are in each state (every state, maybe 0)."""
    counts = dict.fromkeys(State, 0)
    for task in tasks:
        counts[task.state] += 1
    return counts


def count_change(counts: dict[State, int], before: Task | None, after: Task) -> None:
    """``counts`` after ``after`` replaced ``before`` (None: a new task)."""
    if before is not None:
        if before.state is after.state:
            return
        counts[before.state] -= 1
    counts[after.state] = counts.get(after.state, 0) + 1


@dataclass(slots=True)
class PreparedPlan:
    """A whole plan made ready for the Plan's table away from the screen's
    thread (a worker): the tasks by id, the counts, who waits on whom and
    the unfiltered rows. At 100,000 tasks this is most of a second the
    screen would otherwise stand still for."""

    tasks: dict[str, Task]
    counts: dict[State, int]
    dependents: dict[str, set[str]]
    rows: PlanRows


def prepare_plan(tasks: Iterable[Task]) -> PreparedPlan:
    by_id = {task.id: task for task in tasks}
    rows = PlanRows()
    rows.load(by_id.values())
    return PreparedPlan(by_id, count_states(by_id.values()), dependents_of(by_id.values()), rows)
