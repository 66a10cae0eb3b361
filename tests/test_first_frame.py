"""The console's first frame: what it imports, reads and runs before it is
drawn, and what waits until after it (the rest of a big plan, the engine,
the worktrees' line counts). Behaviour only; bench_console.py times it.
(The first-look limits are lowered so that a small base is "big".)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from factory_tui.app import FactoryApp
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.feed import LogFeed
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.session import FactorySession
from factory_tui.backends.worktree_list import list_from_files
from factory_tui.backends.worktrees import Worktrees
from factory_tui.filters import plan_matches
from factory_tui.messages import LogCompleted
from factory_tui.model import Action, NewTask, State, WorktreeReport, WorktreeStatus
from factory_tui.plan_rows import prepare_plan
from tests.console_helpers import ready, wait_until
from tests.engine_helpers import git
from tests.test_first_look import seed, small_limits  # noqa: F401 (a fixture)
from tests.test_plan_rows import rows_from_scratch
from tests.test_worktree_watch import ProcessCount

ROOT = Path(__file__).resolve().parent.parent


# --- what the console imports -------------------------------------------------------

# What the first frame draws nothing of: imported where it is used.
NOT_AT_START = (
    "git",  # GitPython: the worktrees are listed from git's files
    "factory_tui.engine",  # the engine starts after the first frame, or not at all
    "markdown_it",
    "yaml",
    "frontmatter",
    "ulid",
    "factory_tui.screens.artifacts",
    "factory_tui.screens.mail",
    "factory_tui.screens.qa",
    "factory_tui.widgets.task_body",
)


def test_the_console_s_module_leaves_what_the_first_frame_does_not_draw():
    probe = (
        "import sys, factory_tui.app; "
        f"print(' '.join(name for name in {NOT_AT_START!r} if name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.stdout.split() == []


# --- what the first look reads --------------------------------------------------------


def test_the_first_look_reads_index_ranges_only(base, log, small_limits):  # noqa: F811
    """Every query of a big base's first look, as SQLite plans it: a search
    of an index (or the events' ids), never a scan of a table or an index."""
    seed(log)
    planned: list[str] = []
    feed = LogFeed(base.log_path)
    try:
        feed._conn.set_trace_callback(planned.append)
        first = feed.first_look()
        feed._conn.set_trace_callback(None)
        assert not first.complete
        queries = [sql for sql in planned if sql.lstrip().upper().startswith("SELECT")]
        assert queries
        for sql in queries:
            plan = " ".join(row[3] for row in feed._conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            assert "SCAN" not in plan, (sql, plan)
    finally:
        feed.close()


# --- the worktrees listed from git's files ------------------------------------------


def worktrees_of_every_kind(base: FactoryBase) -> Worktrees:
    """Task worktrees as the engine makes them; one whose folder is gone;
    one on a factory branch outside the folder; a folder git does not know;
    a detached one; and the user's own, which is not listed."""
    worktrees = Worktrees.for_config(base.root, base.config())
    for task_id in ("T-1", "T-2", "T-3"):
        worktrees.prepare_for(task_id, owned=False)
    shutil.rmtree(worktrees.path_for("T-3"))  # registered, folder gone
    outside = base.root.parent / f"{base.root.name}-elsewhere"
    git(base.root, "worktree", "add", "-b", "factory/T-5", str(outside / "T-5"))
    git(base.root, "worktree", "add", "--detach", str(base.worktrees_dir / "T-6"))
    git(base.root, "worktree", "add", "-b", "mine", str(outside / "mine"))
    (base.worktrees_dir / "T-9").mkdir()
    return worktrees


def test_the_worktrees_listed_from_git_s_files_are_git_s_own_list(base):
    worktrees = worktrees_of_every_kind(base)
    from_git = worktrees.list()
    assert {info.task_id for info in from_git} == {"T-1", "T-2", "T-3", "T-5", "T-6", "T-9"}
    assert list_from_files(base.root) == from_git


def test_a_worktree_listed_while_git_makes_it_is_left_out(base):
    worktrees = worktrees_of_every_kind(base)
    common = Path(git(base.root, "rev-parse", "--git-common-dir"))
    if not common.is_absolute():
        common = base.root / common
    (common / "worktrees" / "T-7").mkdir()  # no gitdir file yet
    assert list_from_files(base.root) == worktrees.list()


def test_a_repository_that_is_itself_a_worktree_is_listed_by_git(base, tmp_path):
    worktrees_of_every_kind(base)
    linked = tmp_path / "linked"
    git(base.root, "worktree", "add", "-b", "side", str(linked))
    assert list_from_files(linked) is None  # its .git is a file: git says


def test_the_first_listing_runs_no_git(base, log, monkeypatch):
    worktrees_of_every_kind(base)
    log.add_tasks([NewTask(title=f"task {k}") for k in range(3)], actor="test")
    processes = ProcessCount(monkeypatch)
    session = FactorySession(base)
    try:
        rows = session.worktree_report(with_changes=False)
    finally:
        session.close()
    assert processes.started == []
    assert {row.task_id: row.status for row in rows}["T-1"] is WorktreeStatus.WAITING
    assert all(row.added is None for row in rows)


# --- the console --------------------------------------------------------------------


class Watched(FactoryApp):
    """The console, noting whether the first look was drawn when the rest
    of the plan arrived."""

    drawn_before_rest: list[bool]

    def on_log_completed(self, message: LogCompleted) -> None:
        self.drawn_before_rest.append(self.first_drawn.is_set())


async def test_a_big_base_s_rest_is_read_after_the_first_frame(base, log, small_limits):  # noqa: F811
    seed(log)
    app = Watched(base, engine=False)
    app.drawn_before_rest = []
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        assert app.drawn_before_rest == [True]
        assert app.plan.complete and len(app.plan.tasks) == 40


async def test_listed_worktrees_never_hide_their_counts(base, log):
    worktrees_of_every_kind(base)
    log.add_tasks([NewTask(title=f"task {k}") for k in range(3)], actor="test")
    worktrees = Worktrees.for_config(base.root, base.config())
    (worktrees.path_for("T-1") / "new.txt").write_text("one\ntwo\n", encoding="utf-8")
    git(worktrees.path_for("T-1"), "add", "new.txt")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        table = app.worktree_table
        await wait_until(pilot, lambda: any(row.added for row in table.rows), "the lines counted")
        counted = {row.task_id: (row.added, row.removed) for row in table.rows}
        # A listing that lands late (its worker was slow) changes nothing.
        listed = [WorktreeReport(task_id=row.task_id, status=row.status, branch=row.branch, path=row.path)
                  for row in table.rows]
        table._listed(table.Listed(listed))  # as the message's handler takes it
        assert {row.task_id: (row.added, row.removed) for row in table.rows} == counted
        assert counted["T-1"] == (2, 0)


async def test_the_never_runs_worker_is_not_described_by_the_plan(base, log):
    log.add_tasks([NewTask(title=f"task {k}") for k in range(50)], actor="test")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        app.plan.fetch_never_runs()
        workers = [worker for worker in app.workers if worker.group == "plan-never-runs"]
        assert workers
        # Textual would say every argument's repr: a 100,000-task plan's is
        # hundreds of megabytes.
        assert all(len(worker.description) < 100 for worker in workers)


def test_the_benchmark_s_frames_are_said_in_order(base, log):
    log.add_tasks([NewTask(title=f"task {k}") for k in range(5)], actor="test")
    done = subprocess.run(
        [sys.executable, "-m", "factory_tui", "--base", str(base.root), "console", "--bench-first-frame"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm-256color", COLUMNS="120", LINES="40"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    said = [line.split()[0] for line in done.stderr.splitlines() if line.startswith(("first-frame", "whole-plan"))]
    assert said == ["first-frame", "whole-plan"]


def test_tasks_read_whole_share_their_common_values(base, log):
    """A plan read whole holds one object per profile, source and set of
    labels that many tasks share, and each task still says its own."""
    log.add_tasks([NewTask(title=f"task {k}", profile="demo", labels=("ui", "api") if k % 2 else ())
                   for k in range(6)], actor="test")
    tasks = log.list_tasks(bodies=False)
    assert [task.labels for task in tasks] == [(), ("ui", "api")] * 3
    assert len({id(task.profile) for task in tasks}) == 1
    assert len({id(task.labels) for task in tasks if task.labels}) == 1
    assert all(task.profile == "demo" for task in tasks)


async def test_keys_are_answered_while_the_rest_loads_and_nothing_is_lost(base, log, small_limits, monkeypatch):  # noqa: F811
    """The rest of a big plan held back (its read made to wait): the Plan
    answers keys meanwhile, a change written meanwhile shows, and once the
    rest lands the whole plan is there with that change."""
    seed(log)
    release = threading.Event()
    reading = threading.Event()
    real_rest = LogFeed.rest

    def slow_rest(feed):
        reading.set()
        assert release.wait(20)
        return real_rest(feed)

    monkeypatch.setattr(LogFeed, "rest", slow_rest)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        plan = app.plan
        await wait_until(pilot, reading.is_set, "the rest being read")
        assert not plan.complete and not app.plan_ready
        before = plan.cursor
        await pilot.press("j")
        await wait_until(pilot, lambda: plan.cursor != before, "the cursor moved by a key")
        with ExecutionLog.open(base.log_path) as writer:
            writer.apply("T-40", Action.HOLD, actor="meanwhile")
        release.set()
        await wait_until(pilot, lambda: app.plan_ready, "the rest")
        await wait_until(pilot, lambda: plan.task_by_id("T-40").state is State.HELD, "the change made meanwhile")
        assert len(plan.tasks) == 40
        assert [plan._plan.row(i) for i in range(plan.row_count)] == rows_from_scratch(plan.tasks)
        assert app.header.counts[State.HELD] == 6


async def test_the_whole_plan_made_ready_off_screen_is_the_plan_rebuilt(base, log, small_limits):  # noqa: F811
    seed(log)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        plan = app.plan
        assert [plan._plan.row(i) for i in range(plan.row_count)] == rows_from_scratch(plan.tasks)
        assert plan.counts == log.counts()
        # A filter typed before the rest lands still applies to it.
        feed = LogFeed(base.log_path)
        try:
            feed.first_look()
            rest = feed.rest()
        finally:
            feed.close()
        plan.apply_filter("task 1")
        held = plan.tasks
        app.post_message(LogCompleted(rest, prepare_plan(rest.tasks)))
        await wait_until(pilot, lambda: plan.tasks is not held, "the prepared plan taken over")
        shown = {plan._plan.row(i) for i in range(plan.row_count)} - set(State)
        assert shown == {task_id for task_id, task in plan.tasks.items() if plan_matches(task, "task 1")}
        assert len(shown) < len(plan.tasks)
