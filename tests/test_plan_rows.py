"""The Plan's rows patched task by task equal the rows a full sort makes,
and the counts kept by deltas equal a recount (plan_rows.py), for any
sequence of changes: state moves, priority changes, new tasks, a filter."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from factory_tui.filters import plan_matches
from factory_tui.model import PRIORITY_MAX, PRIORITY_MIN, STATE_ORDER, State, Task
from factory_tui.plan_rows import PlanRows, count_change, count_states, order_key

STATES = list(State)


def rows_from_scratch(tasks: dict[str, Task], matches=None) -> list:
    """What the console used to do on every change: group and sort it all."""
    shown = [task for task in tasks.values() if matches is None or matches(task)]
    out: list = []
    for state in STATE_ORDER:
        members = sorted((t for t in shown if t.state is state), key=lambda t: (-t.priority, t.seq))
        if members:
            out.append(state)
            out.extend(t.id for t in members)
    return out


def make(seq: int, state: State, priority: int, title: str = "") -> Task:
    return Task(id=f"T-{seq}", title=title or f"task {seq} {'odd' if seq % 2 else 'even'}",
                state=state, priority=priority)


priorities = st.integers(PRIORITY_MIN, PRIORITY_MAX)
tasks_strategy = st.lists(st.tuples(st.sampled_from(STATES), st.integers(-3, 3)), max_size=40)
# A change: (which task, by index mod the plan's size, or a new one), its new state, its new priority.
changes_strategy = st.lists(
    st.tuples(st.integers(0, 1000), st.booleans(), st.sampled_from(STATES), priorities | st.integers(-3, 3)),
    max_size=60,
)


def check(rows: PlanRows, tasks: dict[str, Task], matches=None) -> None:
    expected = rows_from_scratch(tasks, matches)
    assert rows.rows() == expected
    assert len(rows) == len(expected)
    for index, row in enumerate(expected):
        assert rows.row(index) == row
        if isinstance(row, State):
            assert rows.heading_index(row) == index
        else:
            assert rows.index_of(tasks[row]) == index
    for state in State:
        assert rows.group_size(state) == sum(1 for r in expected if not isinstance(r, State)
                                             and tasks[r].state is state)


@settings(max_examples=300, deadline=None)
@given(tasks_strategy, changes_strategy, st.sampled_from(["", "odd", "T-1", "queued", "odd review"]))
def test_patched_rows_equal_rows_rebuilt_from_scratch(start, changes, text):
    matches = (lambda task: plan_matches(task, text)) if text else None
    tasks = {f"T-{n + 1}": make(n + 1, state, priority) for n, (state, priority) in enumerate(start)}
    rows = PlanRows(matches)
    rows.load(tasks.values())
    counts = count_states(tasks.values())
    check(rows, tasks, matches)
    for pick, new, state, priority in changes:
        if new or not tasks:
            seq = len(tasks) + 1
            before = None
            after = make(seq, state, priority)
        else:
            before = list(tasks.values())[pick % len(tasks)]
            after = replace(before, state=state, priority=priority)
        tasks[after.id] = after
        rows.patch(before, after)
        count_change(counts, before, after)
        check(rows, tasks, matches)
        assert counts == count_states(tasks.values())


def test_an_unchanged_task_patched_stays_where_it_is():
    tasks = {f"T-{n}": make(n, State.QUEUED, n % 3) for n in range(1, 20)}
    rows = PlanRows()
    rows.load(tasks.values())
    before = rows.rows()
    rows.patch(tasks["T-7"], tasks["T-7"])
    assert rows.rows() == before


def test_order_is_priority_then_id_across_the_whole_range():
    high, low = make(900_000_000, State.QUEUED, PRIORITY_MAX), make(1, State.QUEUED, PRIORITY_MIN)
    middle = make(5, State.QUEUED, 0)
    assert sorted([low, middle, high], key=order_key) == [high, middle, low]


def test_a_row_past_the_end_is_an_index_error():
    rows = PlanRows()
    rows.load([make(1, State.DONE, 0)])
    assert rows.rows() == [State.DONE, "T-1"]
    try:
        rows.row(2)
    except IndexError:
        pass
    else:  # pragma: no cover
        raise AssertionError("row 2 of 2 rows")
