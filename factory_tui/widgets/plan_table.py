"""The Plan pane's table: every task, grouped by state (what needs the
operator first), sorted by priority within a group.

A row says what the operator needs to know about its task without opening
it: how long it has been in its state, why it failed, what it waits for (or
that it can never run as the plan is), and what its runs cost. The task
list comes from the log feed; the failures, the tasks that can never run
and the costs come from the Plan pane's workers (``set_notes``), fetched
when they can have changed, never per render.

It holds what it was given and updates it by id, patching only the rows
and counts that changed (``plan_rows.py``): one changed task in a
100,000-task plan costs microseconds, not a re-sort. It never reads the
log.
Keys post ``TaskCommand`` (or, with rows marked, ``MarkedCommand``) for the
app to confirm and carry out; the Plan pane (panes/plan.py) feeds it.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.reactive import reactive

from factory_tui.filters import plan_matches
from factory_tui.keys import bindings
from factory_tui.messages import Command, NewTaskWanted, TaskCommand
from factory_tui.model import Failure, NeverRuns, State, Task, Totals
from factory_tui.plan_notes import dependents_of, update_dependents
from factory_tui.plan_rows import PlanRows, PreparedPlan, Row, count_change, count_states
from factory_tui.qa_marks import TaskQaBook
from factory_tui.text import literal
from factory_tui.times import SPAN_WIDTH, span
from factory_tui.widgets.figures import usage_text
from factory_tui.widgets.marks import MarkableList
from factory_tui.widgets.qa_table import mark_style
from factory_tui.widgets.styles import MARK_SYMBOL, STATE_SYMBOL, palette
from factory_tui.widgets.virtual_list import (
    Column,
    Part,
    column_width,
    first_fitting,
    fit,
    header_text,
    layout_columns,
    render_cells,
    span_into,
)

# Blocked-by is shown only where it explains why a task is not running.
_WAITING = (State.QUEUED, State.HELD, State.PROPOSED)
# The WHY column says what holds a task: what it waits for, that it can
# never run as the plan is, or why it failed; a row with nothing there
# gives its room to the title. Narrow, the list first drops
# tries, then costs, priority, WHY (a failure's reason then follows the
# title), and last how long a task has been in its state.
COLUMNS = (
    Column("mark", "", 1),
    Column("id", "ID", 6),
    Column("state", "STATE", 11),
    Column("qa", "QA", 2, drop=6),
    Column("age", "AGE", SPAN_WIDTH, right=True, drop=1),
    Column("title", "TITLE", grow=3),
    Column("why", "WHY", grow=3, least=12, drop=2),
    Column("priority", "PRI", 3, right=True, drop=3),
    Column("attempts", "TRIES", 5, right=True, drop=5),
    Column("usage", "COST TOKENS", 11, right=True, drop=4),
)
MIN_TITLE = 20


class PlanTable(MarkableList):
    """Tasks grouped by state under a heading each."""

    BINDINGS = bindings(
        "task.approve", "task.requeue", "task.cancel", "task.new", "task.hold",
        "task.priority-up", "task.priority-down", "task.open", "task.mark", "task.clear-marks", "qa.run",
    )

    filter_text: reactive[str] = reactive("")
    """Only tasks whose id, state or title hold every word are shown."""

    now: reactive[float] = reactive(0.0)
    """The time ages count to (the pane ticks it; 0: no ages yet)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._tasks: dict[str, Task] = {}
        self._plan = PlanRows()
        # Tasks per state, filter or not (the header shows them).
        self.counts: dict[State, int] = count_states(())
        # For each task, the tasks that depend on it (never-runs is worked
        # out again around a task that dies).
        self.dependents: dict[str, set[str]] = {}
        self.failures: dict[str, Failure] = {}
        self.never_runs: dict[str, NeverRuns] = {}
        self.usage: dict[str, Totals] = {}
        # Each task's latest QA verdicts: the QA column.
        self.qa = TaskQaBook()
        self.loaded = False
        # False while only the plan's first rows are held (a big base's
        # first look): the headings then say how many the state holds.
        self.complete = True

    # --- data in -------------------------------------------------------------

    def load(self, tasks: list[Task], *, counts: dict[State, int] | None = None, complete: bool = True) -> None:
        """The plan (``complete`` false: only its first rows, and ``counts``
        says how many tasks each state holds)."""
        self._tasks = {task.id: task for task in tasks}
        self.counts = dict(counts) if counts is not None else count_states(self._tasks.values())
        self.dependents = dependents_of(self._tasks.values())
        self.complete = complete
        self.loaded = True
        self._rebuild()

    def load_prepared(self, prepared: PreparedPlan) -> None:
        """The whole plan, made ready by a worker (plan_rows.prepare_plan):
        the screen only takes it over (its rows are rebuilt here only if a
        filter is on)."""
        self._tasks = prepared.tasks
        self.counts = prepared.counts
        self.dependents = prepared.dependents
        self.complete = True
        self.loaded = True
        if self._matcher() is not None:
            self._rebuild()
            return
        kept = self._row_at(self.cursor)
        self._plan = prepared.rows
        self.rows_changed()
        self._keep_cursor(kept)

    def update_tasks(self, tasks: list[Task]) -> None:
        """Tasks changed (or new): their rows move, the rest stay put."""
        kept = self._row_at(self.cursor)
        plan, known, counts = self._plan, self._tasks, self.counts
        for task in tasks:
            before = known.get(task.id)
            known[task.id] = task
            plan.patch(before, task)
            count_change(counts, before, task)
            update_dependents(self.dependents, before, task)
        # Each row's cache key says what it shows: rows that only moved
        # are drawn from the cache.
        self.rows_moved()
        self._keep_cursor(kept)

    def set_notes(
        self,
        *,
        failures: dict[str, Failure] | None = None,
        never_runs: dict[str, NeverRuns] | None = None,
        usage: dict[str, Totals] | None = None,
    ) -> None:
        """What the pane's workers found out about the tasks: why the
        failed ones failed, which can never run, what their runs cost. Each
        given one replaces what was known."""
        if failures is not None:
            self.failures = failures
        if never_runs is not None:
            self.never_runs = never_runs
        if usage is not None:
            self.usage = usage
        self.rows_changed()

    def task_by_id(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    @property
    def tasks(self) -> dict[str, Task]:
        return self._tasks

    def apply_filter(self, text: str) -> None:
        self.filter_text = text

    def watch_filter_text(self) -> None:
        self._rebuild()

    def watch_now(self, old: float, new: float) -> None:
        # Only the rows on screen are drawn again, and of them only those
        # whose age reads differently (the age is in their cache key).
        if len(self._plan) and int(old) != int(new):
            self.refresh()

    def _matcher(self):
        text = self.filter_text
        return (lambda task: plan_matches(task, text)) if text.strip() else None

    def _rebuild(self) -> None:
        kept = self._row_at(self.cursor)
        self._plan = PlanRows(self._matcher())
        self._plan.load(self._tasks.values())
        self.rows_changed()
        self._keep_cursor(kept)

    def _row_at(self, index: int) -> Row | None:
        return self._plan.row(index) if 0 <= index < len(self._plan) else None

    def _keep_cursor(self, kept: Row | None) -> None:
        """The cursor back on the row it was on (a task that moved, its
        new place), or the nearest task row."""
        index = self.cursor
        if isinstance(kept, State):
            heading = self._plan.heading_index(kept)
            index = heading if heading is not None else index
        elif kept is not None:
            found = self.index_of(kept)
            index = found if found is not None else index
        target = self.nearest_selectable(index, +1)
        if target is not None:
            self.cursor = target

    # --- what the cursor is on ----------------------------------------------

    @property
    def selected_task(self) -> Task | None:
        row = self._row_at(self.cursor)
        return None if row is None or isinstance(row, State) else self._tasks.get(row)

    def index_of(self, task_id: str) -> int | None:
        """The row showing ``task_id``, or None if it is filtered out."""
        task = self._tasks.get(task_id)
        return self._plan.index_of(task) if task is not None else None

    def select_task(self, task_id: str) -> bool:
        index = self.index_of(task_id)
        if index is None:
            return False
        self.cursor = index
        return True

    def blocked_by(self, task: Task) -> list[str]:
        return [
            dep for dep in task.depends_on
            if (other := self._tasks.get(dep)) is None or other.state is not State.DONE
        ]

    # --- marks (widgets/marks.py) ---------------------------------------------

    def task_at(self, index: int) -> str | None:
        row = self._plan.row(index)
        return None if isinstance(row, State) else row

    def row_of(self, task_id: str) -> int | None:
        return self.index_of(task_id)

    # --- rendering ----------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._plan)

    def _layout(self, width: int):
        return layout_columns(COLUMNS, width, MIN_TITLE)

    def render_header(self, width: int) -> str:
        marks = self.marks_text()
        if not marks:
            return header_text(self._layout(width))
        # The count takes the WHY column's title too: it must be read whole.
        return header_text(span_into(self._layout(width), "title", "why"), {"title": f"TITLE · {marks} · esc unmarks"})

    def _age(self, task: Task) -> str:
        if not self.now or not task.updated_at:
            return ""
        return span(self.now - task.updated_at)

    def _why(self, task: Task, width: int) -> Part:
        """What holds ``task``, in the longest form that fits ``width``."""
        colours = palette(self)
        if task.state is State.FAILED:
            failure = self.failures.get(task.id)
            return (literal(failure.reason), colours.problem) if failure else ("", None)
        if task.state not in _WAITING:
            return ("", None)
        never = self.never_runs.get(task.id)
        if never is not None:
            with_states = ", ".join(f"{task_id} {state.value}" for task_id, state in never.dead)
            ids = ",".join(task_id for task_id, _ in never.dead)
            texts = [f"never runs: {with_states}", f"never runs: {ids}", f"never: {ids}"]
            return (first_fitting(texts, width), colours.problem)
        blocked = ",".join(self.blocked_by(task))
        if not blocked:
            return ("", None)
        # One wording on every row, short enough for a narrow column: it
        # runs after these.
        return (f"after {blocked}", colours.blocked)

    def render_row(self, index: int, width: int) -> list[Segment]:
        row = self._plan.row(index)
        colours = palette(self)
        if isinstance(row, State):
            return self._render_heading(row, width)
        task = self._tasks[row]
        layout = self._layout(width)
        why = self._why(task, column_width(layout, "why"))
        title: list[Part] = [(literal(task.title), None)]
        if not why[0]:
            # Nothing holds it: its title has the WHY column's room too.
            layout = span_into(layout, "title", "why")
        elif task.state is State.FAILED and not column_width(layout, "why"):
            title.append(("  " + why[0], why[1]))
        usage = usage_text(self.usage.get(task.id))
        return render_cells(
            layout,
            {
                "mark": (MARK_SYMBOL, colours.mark) if task.id in self.marked else ("", None),
                "id": (task.id, colours.ident),
                "state": (f"{STATE_SYMBOL[task.state]} {task.state.value}", colours.state[task.state]),
                "qa": (str(mark := self.qa.mark(task.id, task.state)), mark_style(mark, colours)),
                "age": (self._age(task), colours.muted),
                "title": title,
                "priority": (str(task.priority), None) if task.priority else ("·", colours.muted),
                "why": why,
                "attempts": (str(task.attempts), None) if task.attempts else ("·", colours.muted),
                "usage": (usage, None) if usage else ("·", colours.muted),
            },
        )

    def empty_text(self) -> str:
        if not self.loaded:
            return "Reading the log…"
        if self._tasks:
            return "No task matches the filter; esc clears it."
        return "The plan is empty: press n to add a task, or run `factory plan import FILE.md`."

    def is_selectable(self, index: int) -> bool:
        return not isinstance(self._plan.row(index), State)

    def _render_heading(self, state: State, width: int) -> list[Segment]:
        colours = palette(self)
        label = f"{STATE_SYMBOL[state]} {state.value.upper()} · {self._group_count(state)} "
        return [Segment(fit(label, min(width, len(label))), colours.heading[state]),
                Segment("─" * max(0, width - len(label)), colours.muted)]

    def _group_count(self, state: State) -> int:
        if self.complete or self.filter_text.strip():
            return self._plan.group_size(state)
        return self.counts.get(state, 0)

    def row_cache_key(self, index: int):
        row = self._plan.row(index)
        if isinstance(row, State):
            return ("heading", row, self._group_count(row))
        task = self._tasks[row]
        failure = self.failures.get(row)
        never = self.never_runs.get(row)
        usage = self.usage.get(row)
        return (
            row, task.state, task.priority, task.attempts, task.title, tuple(self.blocked_by(task)),
            row in self.marked, self._age(task), failure.reason if failure else None,
            never.dead if never else None, usage_text(usage), self.qa.mark(row, task.state),
        )

    # --- keys ------------------------------------------------------------------

    def action_command(self, command: str) -> None:
        wanted = Command(command)
        if self.command_for_marked(wanted):
            return
        task = self.selected_task
        if task is None:
            self.notify("Move the cursor to a task first.", severity="warning", timeout=3)
            return
        self.post_message(TaskCommand(task.id, wanted))
        if wanted is Command.APPROVE and task.state is State.REVIEW:
            self._to_next_review(task.id)

    def _to_next_review(self, approved: str) -> None:
        """After approving a task in review, the cursor goes on to the next
        one (the next row of the group, else its first row), so that a run
        of reviews is a run of keystrokes."""
        reviews = [row for row in self._plan.group(State.REVIEW) if row != approved]
        if not reviews:
            return
        start = self._plan.heading_index(State.REVIEW) or 0
        # The group's rows follow its heading in order.
        places = {row: start + 1 + n for n, row in enumerate(self._plan.group(State.REVIEW))}
        after = [row for row in reviews if places[row] > self.cursor]
        self.cursor = places[(after or reviews)[0]]

    def on_double_click(self) -> None:
        self.action_command(Command.OPEN)

    def action_run_qa(self) -> None:
        """Its pane runs it (a worker through the session)."""

    def action_new_task(self) -> None:
        self.post_message(NewTaskWanted())
