"""Worktree status refreshed when something changed, not by polling: the
files git writes (backends/worktree_watch.py) say which worktree moved, a
running agent's progress events re-count its worktree, and an idle console
runs no git at all (processes counted as they start, over an interval
measured by the pane's own clock ticks)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from factory_tui.app import FactoryApp
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.worktree_watch import Touched, watch_worktrees
from factory_tui.backends.worktrees import Worktrees
from factory_tui.model import NewTask, State
from tests.console_helpers import ready, wait_until
from tests.engine_helpers import git


def make_worktree(base: FactoryBase, log: ExecutionLog, task_id: str, text: str) -> Path:
    """The task's worktree as the engine makes it, with one commit."""
    worktrees = Worktrees.for_config(base.root, base.config())
    prepared = worktrees.prepare_for(task_id, owned=False)
    assert prepared.start is not None
    log.record_branch_start(task_id, prepared.start)
    (prepared.path / f"{task_id}.txt").write_text(text, encoding="utf-8")
    worktrees.commit_all(task_id, f"{task_id}: work")
    return prepared.path


@pytest.fixture
def busy(base: FactoryBase, log: ExecutionLog):
    """T-1 in review with a worktree (two lines of work), T-2 running in
    one (its lease token kept for progress events)."""
    log.add_tasks([NewTask(title="reviewed"), NewTask(title="running")], actor="test")
    first = log.claim_next("engine:test", lease_seconds=3600)
    assert first is not None and first.task.id == "T-1"
    make_worktree(base, log, "T-1", "one\ntwo\n")
    log.finish(first.token, State.REVIEW, note="done")
    second = log.claim_next("engine:test", lease_seconds=3600)
    assert second is not None and second.task.id == "T-2"
    make_worktree(base, log, "T-2", "a\n")
    return second.token


class Collected:
    def __init__(self, common: Path, base_branch: str) -> None:
        self.stop = threading.Event()
        self.seen: list[Touched] = []
        self.rounds = 0

        def run() -> None:
            for touched in watch_worktrees(common, base_branch, stop=self.stop):
                self.rounds += 1
                if touched:
                    self.seen.append(touched)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, condition, what: str, limit: float = 20.0) -> None:
        deadline = time.monotonic() + limit
        while not condition():
            assert time.monotonic() < deadline, f"gave up waiting for {what}: {self.seen}"
            time.sleep(0.02)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def test_git_s_own_files_say_which_worktree_moved(base, log, busy):
    common = Path(git(base.root, "rev-parse", "--git-common-dir").strip())
    common = common if common.is_absolute() else (base.root / common).resolve()
    watch = Collected(common, "main")
    try:
        watch.wait(lambda: watch.rounds, "the watch to be up")
        # A commit in T-1's worktree.
        where = base.worktree_path("T-1")
        (where / "more.txt").write_text("x\n")
        git(where, "add", "more.txt")
        git(where, "commit", "-q", "-m", "more")
        watch.wait(lambda: any("T-1" in t.tasks for t in watch.seen), "T-1's commit")
        assert not any("T-2" in t.tasks for t in watch.seen)
        # A worktree added by hand is a change of the list.
        watch.seen.clear()
        git(base.root, "worktree", "add", "-q", "-b", "factory/T-9", str(base.worktrees_dir / "T-9"), "main")
        watch.wait(lambda: any(t.listing for t in watch.seen), "the new worktree")
        assert any("T-9" in t.tasks for t in watch.seen)
        # The base branch moving.
        watch.seen.clear()
        git(base.root, "commit", "-q", "--allow-empty", "-m", "on main")
        watch.wait(lambda: any(t.base for t in watch.seen), "the base branch moving")
        # Removing a worktree is a change of the list too.
        watch.seen.clear()
        git(base.root, "worktree", "remove", str(base.worktrees_dir / "T-9"))
        watch.wait(lambda: any(t.listing for t in watch.seen), "the removal")
    finally:
        watch.close()


def test_a_repository_without_worktrees_yet_is_watched_until_it_has_one(git_repo):
    base, _ = FactoryBase.init(git_repo)
    common = base.root / ".git"
    assert not (common / "worktrees").exists()
    watch = Collected(common, "main")
    try:
        watch.wait(lambda: watch.rounds, "the watch to be up")
        git(base.root, "worktree", "add", "-q", "-b", "factory/T-1", str(base.worktrees_dir / "T-1"), "main")
        watch.wait(lambda: any(t.listing or "T-1" in t.tasks for t in watch.seen), "the first worktree")
        # Now the worktrees' own folder is watched: a commit there is seen.
        watch.seen.clear()
        where = base.worktrees_dir / "T-1"
        git(where, "commit", "-q", "--allow-empty", "-m", "work")
        watch.wait(lambda: any("T-1" in t.tasks for t in watch.seen), "the commit in it")
    finally:
        watch.close()


class ProcessCount:
    """Every process this test's process starts (the console runs in it),
    counted as it starts: the real subprocess machinery, counted, not
    replaced."""

    def __init__(self, monkeypatch) -> None:
        self.started: list[str] = []
        real = subprocess.Popen._execute_child  # type: ignore[attr-defined]
        started = self.started

        def counted(popen, args, *rest, **kwargs):
            started.append(" ".join(map(str, args)) if not isinstance(args, (str, bytes)) else str(args))
            return real(popen, args, *rest, **kwargs)

        monkeypatch.setattr(subprocess.Popen, "_execute_child", counted)


def row(app: FactoryApp, task_id: str):
    return next((r for r in app.worktree_table.rows if r.task_id == task_id), None)


async def test_a_commit_in_a_worktree_shows_without_a_poll_and_idle_runs_no_git(base, busy, monkeypatch):
    processes = ProcessCount(monkeypatch)
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        table = app.worktree_table
        await wait_until(pilot, lambda: row(app, "T-1") is not None and row(app, "T-1").added == 2, "T-1's row")
        await wait_until(pilot, lambda: not table._scanning and table._wanted is None, "the first look to end")

        # Idle: over five of the pane's one-second ticks (the old pane
        # scanned every three seconds), not one process starts.
        processes.started.clear()
        ticks: set[int] = set()
        await wait_until(pilot, lambda: ticks.add(int(table.now)) or len(ticks) > 5, "five ticks", limit=20)
        assert processes.started == [], processes.started
        looks = table.scans

        # A commit in T-1's worktree (by another process: git) shows.
        where = base.worktree_path("T-1")
        (where / "three.txt").write_text("1\n2\n3\n")
        git(where, "add", "three.txt")
        git(where, "commit", "-q", "-m", "three more lines")
        await wait_until(pilot, lambda: row(app, "T-1").added == 5, "T-1's new commit counted")
        assert table.scans > looks


async def test_a_running_agents_progress_recounts_its_worktree(base, busy):
    token = busy
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: row(app, "T-2") is not None and row(app, "T-2").added == 1, "T-2's row")
        # The agent edits a file (no git add: git's files do not move)...
        (base.worktree_path("T-2") / "edit.py").write_text("print(1)\nprint(2)\n")
        # ...and says so in the log, from another connection.
        with ExecutionLog.open(base.log_path) as agent:
            agent.add_progress(token, "⚙ Edit: edit.py")
        await wait_until(pilot, lambda: row(app, "T-2").added == 3, "T-2's edit counted")
        assert row(app, "T-2").progress == "⚙ Edit: edit.py"
        # The look was for T-2's row alone (a console with hundreds of
        # worktrees in review looks at the one being worked in): T-1's
        # row stands as it was, figure and all.
        assert app.worktree_table.looked == 1
        assert row(app, "T-1").added == 2
        assert [r.task_id for r in app.worktree_table.rows] == ["T-2", "T-1"]


async def test_the_base_branch_moving_beside_a_task_looks_at_every_row(base, busy):
    """An approval moves the base branch and deletes the task's branch in
    one go: git's files say both, and every review row's merge is looked
    at again, not only the task's row."""
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        table = app.worktree_table
        await wait_until(pilot, lambda: table.loaded and not table._scanning and table._wanted is None,
                         "the first look to end")
        looks = table.scans
        table.post_message(table.GitMoved(Touched(frozenset({"T-2"}), base=True)))
        await wait_until(pilot, lambda: table.scans > looks and not table._scanning, "the look it asked for")
        assert table.looked == 2
