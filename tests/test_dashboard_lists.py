"""The dashboard's lists (issue 7): marking rows and acting on them
together, the cursor going on to the next review after an approval, what a
Plan row says (why it failed, that it can never run, its cost and age), the
Worktrees pane's merge check, and the Log hiding kinds.

Real keys on the real console over real bases (the demo, or tasks brought
to review on real branches), then a look at the log and at git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from factory_tui.app import FactoryApp
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog, LogReader
from factory_tui.backends.worktrees import Worktrees
from factory_tui.filters import LogFilter
from factory_tui.model import Action, NewTask, State
from factory_tui.screens.dialogs import ConfirmDialog, NoteDialog
from factory_tui.widgets.plan_table import COLUMNS, MIN_TITLE
from factory_tui.widgets.virtual_list import layout_columns
from tests.conftest import DEMO_START
from tests.console_helpers import move_to, move_worktrees_to, ready, row_text, wait_until

SIZE = (160, 48)
NOW = DEMO_START + 2 * 3600
OPERATOR = "test:operator"


def states(base: FactoryBase, *task_ids: str) -> dict[str, State]:
    with ExecutionLog.open(base.log_path) as log:
        return {task.id: task.state for task in log.get_tasks(list(task_ids))}


def console_events(base: FactoryBase, task_id: str, kind: str):
    """The console's events of ``kind`` for ``task_id``."""
    with ExecutionLog.open(base.log_path) as log:
        return [e for e in log.events(task_id=task_id, kinds=[kind]) if e.actor.startswith("console:")]


def git(base: FactoryBase, *args: str) -> str:
    return subprocess.run(["git", "-C", str(base.root), *args], capture_output=True, text=True, check=True).stdout


def bring_to_review(base: FactoryBase, log: ExecutionLog, files: dict[str, str]) -> str:
    """Run the next ready task as the engine would, without an agent: its
    worktree and branch made, ``files`` written and committed there, the
    run finished for review."""
    claim = log.claim_next("engine:test", lease_seconds=600)
    assert claim is not None
    task_id = claim.task.id
    worktrees = Worktrees.for_config(base.root, base.config())
    prepared = worktrees.prepare_for(task_id, owned=False)
    if prepared.start:
        log.record_branch_start(task_id, prepared.start)
    for name, text in files.items():
        (prepared.path / name).write_text(text)
    worktrees.commit_all(task_id, f"{task_id}: {', '.join(files)}")
    log.finish(claim.token, State.REVIEW, note="agent finished")
    return task_id


@pytest.fixture
def three_reviews(base: FactoryBase) -> FactoryBase:
    """Three tasks in review, each on a branch of its own with a file."""
    with ExecutionLog.open(base.log_path) as log:
        for n in range(3):
            log.add_task(NewTask(title=f"write part {n + 1}", priority=3 - n), actor=OPERATOR)
        for n in range(3):
            bring_to_review(base, log, {f"part{n + 1}.txt": f"part {n + 1}\n"})
    return base


def marked(app: FactoryApp) -> set[str]:
    return set(app.plan.marked)


async def mark(pilot, *task_ids: str) -> None:
    for task_id in task_ids:
        await move_to(pilot, task_id)
        await pilot.press("space")
    app: FactoryApp = pilot.app
    assert set(task_ids) <= marked(app)


def messages(app: FactoryApp) -> list[str]:
    return [notification.message for notification in app._notifications]


# --- 1. marking rows, and acting on all of them -------------------------------------


async def test_space_marks_rows_and_approve_acts_on_every_marked_task(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await mark(pilot, "T-9", "T-10", "T-1")
        # Each mark shows in its row's mark column and in the header line.
        assert row_text(app, "T-9").startswith("●")
        assert "3 marked" in app.plan.render_header(200)
        await pilot.press("a")
        await wait_until(pilot, lambda: states(demo_base, "T-9", "T-10") == {"T-9": State.QUEUED, "T-10": State.QUEUED},
                         "T-9 and T-10 approved")
        await wait_until(pilot, lambda: any("Approved 2 of 2" in m or "T-10" in m for m in messages(app)), "the outcomes")
    # Each task its own event, by the console; the done one untouched, and said so.
    for task_id in ("T-9", "T-10"):
        (event,) = console_events(demo_base, task_id, "approved")
        assert (event.from_state, event.to_state) == ("proposed", "queued")
    assert states(demo_base, "T-1") == {"T-1": State.DONE}
    assert any("Skipped 1 task" in m and "T-1 (done)" in m for m in messages(app))
    assert marked(app) == set()  # acted on: the marks are spent


async def test_cancel_of_marked_tasks_asks_once_naming_how_many(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await mark(pilot, "T-4", "T-12", "T-13")
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "one question")
        assert "Cancel 3 tasks" in app.screen.question
        assert "branch" not in app.screen.detail  # none of them ever ran
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmDialog), "the question gone")
        # No: nothing changed, and the marks are still there to act on.
        assert marked(app) == {"T-4", "T-12", "T-13"}
        assert set(states(demo_base, "T-4", "T-12", "T-13").values()) == {State.QUEUED}
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question again")
        await pilot.press("y")
        await wait_until(pilot, lambda: set(states(demo_base, "T-4", "T-12", "T-13").values()) == {State.CANCELLED},
                         "all three cancelled")
    for task_id in ("T-4", "T-12", "T-13"):
        assert len(console_events(demo_base, task_id, "cancelled")) == 1


async def test_requeue_of_marked_tasks_takes_one_note_for_all(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await mark(pilot, "T-8", "T-11", "T-5")  # failed, cancelled, running
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "one note")
        assert "Re-queue 2 tasks" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press(*"Mind the clock", "ctrl+s")
        await wait_until(pilot, lambda: states(demo_base, "T-8", "T-11") == {"T-8": State.QUEUED, "T-11": State.QUEUED},
                         "both re-queued")
        await wait_until(pilot, lambda: any("T-5 (running)" in m for m in messages(app)), "the running one skipped")
    for task_id in ("T-8", "T-11"):
        (event,) = console_events(demo_base, task_id, "requeued")
        assert event.note == "Mind the clock"
    assert states(demo_base, "T-5") == {"T-5": State.RUNNING}


async def test_hold_on_marked_tasks_holds_the_queued_and_releases_the_held(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await mark(pilot, "T-7", "T-6")
        await pilot.press("h")
        await wait_until(pilot, lambda: states(demo_base, "T-6", "T-7") == {"T-6": State.HELD, "T-7": State.QUEUED},
                         "T-6 held, T-7 released")
    assert len(console_events(demo_base, "T-6", "held")) == 1
    assert len(console_events(demo_base, "T-7", "released")) == 1


async def test_marks_survive_filtering_and_live_changes_and_esc_clears_them(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await mark(pilot, "T-9", "T-10")
        await pilot.press("slash", *"csv")
        await wait_until(pilot, lambda: app.plan.filter_text == "csv", "the filter")
        assert app.plan.index_of("T-9") is None  # out of sight, still marked
        assert marked(app) == {"T-9", "T-10"}
        await pilot.press("enter")
        assert "1 filtered out" in app.plan.render_header(200)
        # Another process changes a marked task: the mark stays on it.
        with ExecutionLog.open(demo_base.log_path) as log:
            log.apply("T-10", Action.APPROVE, actor=OPERATOR)
        await wait_until(pilot, lambda: app.plan.task_by_id("T-10").state is State.QUEUED, "the change to show")
        assert marked(app) == {"T-9", "T-10"}
        # esc clears the open filter first, then the marks.
        await pilot.press("escape")
        assert app.plan.filter_text == "" and marked(app) == {"T-9", "T-10"}
        await pilot.press("escape")
        assert marked(app) == set()
        # Without marks the keys act on the cursor's task again.
        await move_to(pilot, "T-9")
        await pilot.press("a")
        await wait_until(pilot, lambda: states(demo_base, "T-9") == {"T-9": State.QUEUED}, "T-9 approved alone")


async def test_marked_rows_in_the_worktrees_pane_are_cancelled_together(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        table = app.worktree_table
        await pilot.press("2")
        for task_id in ("T-3", "T-8"):
            await move_worktrees_to(pilot, task_id)
            await pilot.press("space")
        assert table.marked == {"T-3", "T-8"}
        assert "2 marked" in table.render_header(200)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "one question")
        assert "Cancel 2 tasks" in app.screen.question and "stays on their branches" in app.screen.detail
        await pilot.press("y")
        await wait_until(pilot, lambda: set(states(demo_base, "T-3", "T-8").values()) == {State.CANCELLED},
                         "both cancelled")
        await wait_until(pilot, lambda: not table.marked, "the marks spent")
    for task_id in ("T-3", "T-8"):
        assert len(console_events(demo_base, task_id, "cancelled")) == 1
    # Their work is kept on their branches.
    assert "factory/T-3" in git(demo_base, "branch", "--list")


# --- 2. a run of reviews is a run of keystrokes --------------------------------------


async def test_approving_in_the_plan_moves_the_cursor_to_the_next_review(three_reviews):
    base = three_reviews
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-1")
        for task_id, following in (("T-1", "T-2"), ("T-2", "T-3")):
            await pilot.press("a")
            assert app.plan.selected_task.id == following
            await wait_until(pilot, lambda task_id=task_id: states(base, task_id)[task_id] is State.DONE, f"{task_id} merged")
            await wait_until(pilot, lambda task_id=task_id: app.plan.task_by_id(task_id).state is State.DONE, "the plan")
            assert app.plan.selected_task.id == following  # the cursor stays there as rows move
        await pilot.press("a")
        await wait_until(pilot, lambda: states(base, "T-3")["T-3"] is State.DONE, "T-3 merged")
    files = git(base, "ls-tree", "-r", "--name-only", "main").split()
    assert {"part1.txt", "part2.txt", "part3.txt"} <= set(files)
    for task_id in ("T-1", "T-2", "T-3"):
        assert len(console_events(base, task_id, "approved")) == 1


async def test_approving_the_last_review_row_goes_back_to_the_first(three_reviews):
    app = FactoryApp(three_reviews, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-3")
        await pilot.press("a")
        assert app.plan.selected_task.id == "T-1"
        await wait_until(pilot, lambda: states(three_reviews, "T-3")["T-3"] is State.DONE, "T-3 merged")


async def test_approving_in_the_worktrees_pane_moves_to_the_next_review_row(three_reviews):
    base = three_reviews
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        table = app.worktree_table
        await wait_until(pilot, lambda: len(table.rows) == 3, "three review rows")
        await pilot.press("2")
        assert table.selected_row.task_id == "T-1"
        await pilot.press("a")
        assert table.selected_row.task_id == "T-2"
        await wait_until(pilot, lambda: states(base, "T-1")["T-1"] is State.DONE, "T-1 merged")
        await wait_until(pilot, lambda: "T-1" not in {row.task_id for row in table.rows}, "its worktree gone")
        assert table.selected_row.task_id == "T-2"
        await pilot.press("a")
        await wait_until(pilot, lambda: states(base, "T-2")["T-2"] is State.DONE, "T-2 merged")
        assert table.selected_row.task_id == "T-3"
    assert {"part1.txt", "part2.txt"} <= set(git(base, "ls-tree", "-r", "--name-only", "main").split())


# --- 3. what a Plan row says ----------------------------------------------------------


async def test_a_failed_row_says_why_and_a_new_failure_shows_live(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: "test_session_expiry still fails" in row_text(app, "T-8"), "T-8's reason")
        # A run fails in another process: its reason reaches its row.
        with ExecutionLog.open(demo_base.log_path) as log:
            claim = log.claim_next("engine:test")
            assert claim is not None and claim.task.id == "T-6"
            log.finish(claim.token, State.FAILED, note="agent exited 3",
                       data={"failure": "exit", "reason": "agent exited 3: no [b]docs[/b] tool", "exit_code": 3})
        await wait_until(pilot, lambda: "agent exited 3: no [b]docs[/b] tool" in row_text(app, "T-6"), "T-6's reason")


async def test_a_task_that_can_never_run_says_so(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert "never runs" not in row_text(app, "T-4")
        assert "after T-3" in row_text(app, "T-4")
        with ExecutionLog.open(demo_base.log_path) as log:
            log.apply("T-3", Action.CANCEL, actor=OPERATOR)
        # T-4 waits for T-3; T-12 for T-4 (through it, for T-3 too).
        await wait_until(pilot, lambda: "never runs: T-3 cancelled" in row_text(app, "T-4"), "T-4 marked")
        assert "never runs: T-3 cancelled" in row_text(app, "T-12")
        with ExecutionLog.open(demo_base.log_path) as log:
            log.remove_dependency("T-4", "T-3", actor=OPERATOR)
        await wait_until(pilot, lambda: "never runs" not in row_text(app, "T-4"), "T-4 free again")


async def test_a_row_shows_its_cost_and_the_header_the_totals(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert "$" not in row_text(app, "T-6")
        await wait_until(pilot, lambda: app.header.usage is not None, "the header's first totals")
        before = app.header.usage[1].cost_usd
        assert before > 0  # the demo's history has runs that cost something
        with ExecutionLog.open(demo_base.log_path) as log:
            claim = log.claim_next("engine:test")
            assert claim is not None and claim.task.id == "T-6"
            log.finish(claim.token, State.REVIEW, note="agent finished", data={
                "run": ".factory/runs/T-6/1", "cost_usd": 0.3125, "input_tokens": 95_000, "output_tokens": 4_200,
            })
        await wait_until(pilot, lambda: "$0.31 99k" in row_text(app, "T-6"), "T-6's cost")
        await wait_until(pilot, lambda: app.header.usage is not None and app.header.usage[1].cost_usd == pytest.approx(before + 0.3125),
                         "the header's totals")
        assert f"${before + 0.3125:.2f}" in app.header.render().plain


def test_the_cost_column_drops_at_narrow_widths_and_the_age_stays():
    wide = {column.name for column, _ in layout_columns(COLUMNS, 120, MIN_TITLE)}
    narrow = {column.name for column, _ in layout_columns(COLUMNS, 50, MIN_TITLE)}
    assert {"usage", "age", "why", "title"} <= wide
    assert "usage" not in narrow and {"age", "title", "state", "id"} <= narrow


async def test_the_age_column_says_how_long_a_task_is_in_its_state(demo_base):
    app = FactoryApp(demo_base, engine=False, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        with ExecutionLog.open(demo_base.log_path) as log:
            updated = {task.id: task.updated_at for task in log.get_tasks(["T-3", "T-5", "T-9"])}
        # T-3 in review for 1h06, T-5 running for 1h04, T-9 proposed for 1h55.
        assert int(NOW - updated["T-3"]) // 60 == 66
        assert " 1h06 " in row_text(app, "T-3")
        assert " 1h04 " in row_text(app, "T-5")
        assert " 1h55 " in row_text(app, "T-9")


# --- 4. does a review still merge cleanly? ----------------------------------------

HAS_MERGE_CHECK = hasattr(Worktrees, "merge_check")


@pytest.mark.skipif(not HAS_MERGE_CHECK, reason="the backend's Worktrees.merge_check is not on this branch yet")
async def test_review_rows_say_whether_they_still_merge_cleanly(base: FactoryBase):
    with ExecutionLog.open(base.log_path) as log:
        for title in ("clean one", "conflicting one"):
            log.add_task(NewTask(title=title), actor=OPERATOR)
        bring_to_review(base, log, {"new.txt": "new\n"})
        bring_to_review(base, log, {"README.md": "# the task's readme\n"})
    # The base branch moves on in the same lines the second task changed.
    (Path(base.root) / "README.md").write_text("# the base's readme\n")
    git(base, "commit", "-qam", "readme on main")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        table = app.worktree_table
        await wait_until(pilot, lambda: {"T-1", "T-2"} <= set(table.merges), "the merge checks")
        assert str(table.merges["T-1"].status) == "clean"
        assert str(table.merges["T-2"].status) == "conflicts"
        rows = {row.task_id: "".join(s.text for s in table.render_row(n, 120)) for n, row in enumerate(table.rows)}
        assert "merges cleanly" in rows["T-1"]
        assert "conflicts in README.md" in rows["T-2"] and "review ✗" in rows["T-2"]


# --- 5. the Log hides kinds -----------------------------------------------------------


def test_a_minus_hides_a_kind():
    assert LogFilter.parse("-progress") == LogFilter(exclude_kinds=("progress",))
    assert LogFilter.parse("T-3 -kind:Note -progress -note") == LogFilter(task_id="T-3", exclude_kinds=("note", "progress"))
    assert LogFilter.parse("-1") == LogFilter(text="-1")  # not a kind: text
    assert not LogFilter.parse("-progress").is_empty
    progress = LogFilter.parse("-progress")
    assert not progress.matches(_event(kind="progress"))
    assert progress.matches(_event(kind="claimed"))
    assert progress.query_args()["exclude_kinds"] == ("progress",)
    assert "exclude_kinds" not in LogFilter.parse("T-3").query_args()


@pytest.mark.parametrize("query", ["-progres", "-kind:nonsense"])
def test_a_minus_before_no_kind_is_refused(query):
    from factory_tui.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown event kind"):
        LogFilter.parse(query)


def _event(**fields):
    from factory_tui.model import Event

    defaults = dict(id=1, at=0.0, task_id="T-1", kind="note", actor="alice", note="Hello")
    return Event(**{**defaults, **fields})


def test_the_sql_side_hides_the_same_kinds(demo_base):
    with ExecutionLog.open(demo_base.log_path) as log:
        events = log.events()
    reader = LogReader(demo_base.log_path)
    try:
        for query in ("-progress", "-note -claimed", "T-5 -progress", "engine -finished"):
            wanted = LogFilter.parse(query)
            expected = [e.id for e in events if wanted.matches(e)]
            assert list(reader.event_ids(**wanted.query_args())) == expected, query
    finally:
        reader.close()


async def test_the_log_pane_hides_progress(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        with ExecutionLog.open(demo_base.log_path) as log:
            everything = log.events()
        await pilot.press("6", "slash", *"-progress")
        without = [e for e in everything if e.kind != "progress"]
        await wait_until(pilot, lambda: app.event_log.event_count == len(without) and not messages(app),
                         "the progress hidden", limit=5)
        # New progress while the filter holds stays hidden; a transition shows.
        with ExecutionLog.open(demo_base.log_path) as log:
            token = next(lease[0] for lease in log.live_leases() if lease[1] == "T-5")
            log.add_progress(token, "⚙ Edit: more")
            log.apply("T-9", Action.APPROVE, actor=OPERATOR)
        await wait_until(pilot, lambda: app.event_log.event_count == len(without) + 1, "only the approval added")
