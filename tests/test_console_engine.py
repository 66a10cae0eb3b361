"""Pilot tests of the production line in the console: the Worktrees pane,
the run screen, approving (a real merge), stopping an agent, and quitting
while agents work. Real git, real demo agents, real engine threads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.app import FactoryApp
from factory_tui.backends.log import ExecutionLog
from factory_tui.engine import EngineLock
from factory_tui.model import NewTask, State
from factory_tui.screens.dialogs import ChoiceDialog, ConfirmDialog
from factory_tui.screens.run import RunScreen, TranscriptView
from tests.console_helpers import move_to, move_worktrees_to, ready, wait_until

SIZE = (160, 48)


def state_of(base, task_id: str) -> State:
    with ExecutionLog.open(base.log_path) as log:
        return log.get_task(task_id).state


def git(base, *args: str) -> str:
    return subprocess.run(["git", "-C", str(base.root), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def slow_agents(monkeypatch):
    """Demo agents that stay at work long enough to be looked at."""
    monkeypatch.setenv("FACTORY_DEMO_SECONDS", "30")
    monkeypatch.setenv("FACTORY_DEMO_FAIL_RATE", "0")


@pytest.fixture
def quick_agents(monkeypatch):
    monkeypatch.setenv("FACTORY_DEMO_SECONDS", "0")
    monkeypatch.setenv("FACTORY_DEMO_FAIL_RATE", "0")


async def test_worktrees_pane_lists_the_demo_worktrees(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        rows = {row.task_id: row for row in app.worktree_table.rows}
        assert {"T-3", "T-5", "T-8"} <= set(rows)
        assert rows["T-3"].status == "review"
        assert rows["T-5"].status == "running"
        assert rows["T-8"].status == "failed"
        assert rows["T-3"].added and rows["T-3"].added > 0


async def test_o_and_e_open_a_shell_and_an_editor_that_work_on_this_base(demo_base, tmp_path, monkeypatch):
    # Stand-ins for the operator's shell and editor: real programs that
    # record where they ran, their factory variables, and what `factory
    # status` says there.
    script = tmp_path / "record.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'out="{tmp_path}/${{1:-shell}}"\n'
        'pwd > "$out.cwd"\n'
        'env | grep -E "^FACTORY_(BASE|TASK|RUN|TOKEN)=" | sort > "$out.env"\n'
        f'"{sys.executable}" -m factory_tui status --json > "$out.status" 2>&1\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("SHELL", str(script))
    monkeypatch.setenv("EDITOR", f"{script} editor")
    monkeypatch.delenv("VISUAL", raising=False)
    # The console itself may have been started from an agent's shell.
    monkeypatch.setenv("FACTORY_TASK", "T-5")
    monkeypatch.setenv("FACTORY_TOKEN", "an-agents-token")
    # Pilot has no terminal to hand over; the programs run all the same.
    monkeypatch.setattr(FactoryApp, "suspend", lambda self: contextlib.nullcontext())
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("2")
        table = app.worktree_table
        for _ in range(len(table.rows)):
            if table.selected_row.task_id == "T-3":
                break
            await pilot.press("j")
        assert table.selected_row.task_id == "T-3"
        await pilot.press("o")
        await wait_until(pilot, lambda: (tmp_path / "shell.status").exists(), "the shell")
        await pilot.press("e")
        await wait_until(pilot, lambda: (tmp_path / "editor.status").exists(), "the editor")
        assert not app._notifications, [n.message for n in app._notifications]
    worktree = demo_base.worktrees_dir / "T-3"
    for program in ("shell", "editor"):
        assert Path((tmp_path / f"{program}.cwd").read_text().strip()) == worktree
        assert (tmp_path / f"{program}.env").read_text() == f"FACTORY_BASE={demo_base.root}\n"
        status = json.loads((tmp_path / f"{program}.status").read_text())
        assert status["base"] == str(demo_base.root)


async def test_run_screen_shows_transcript_and_diff(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("2")
        await move_worktrees_to(pilot, "T-3")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
        view = app.screen.query_one(TranscriptView)
        await wait_until(pilot, lambda: view.row_count >= 10, "the transcript")
        assert "login.py" in "".join(view.line(n) for n in range(view.row_count))
        await pilot.press("d")
        await wait_until(pilot, lambda: app.screen.diff_loaded, "the diff")
        files = app.screen.query_one("#diff-view").files
        assert [f.path for f in files] == ["shopfront/login.py"]
        assert files[0].status == "added" and "+from argon2" in files[0].patch
        # The review happens where the operator looks: `a` on the run
        # screen approves the task (its branch lands on main).
        await pilot.press("a")
        await wait_until(pilot, lambda: state_of(demo_base, "T-3") is State.DONE, "T-3 approved from the run screen")
        assert "shopfront/login.py" in git(demo_base, "ls-tree", "-r", "--name-only", "main")
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)


async def test_approving_a_task_in_review_merges_it(demo_base):
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-3")
        await pilot.press("a")
        await wait_until(pilot, lambda: state_of(demo_base, "T-3") is State.DONE, "T-3 done")
        await wait_until(pilot, lambda: "T-3" not in {r.task_id for r in app.worktree_table.rows}, "the worktree gone")
    assert "shopfront/login.py" in git(demo_base, "ls-tree", "-r", "--name-only", "main")
    assert "factory/T-3" not in git(demo_base, "branch", "--list")
    assert not (demo_base.worktrees_dir / "T-3").exists()


async def test_engine_runs_queued_tasks_from_the_console(demo_base, quick_agents):
    app = FactoryApp(demo_base)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: app.engine.mode == "embedded", "the engine")
        # T-6 is ready (priority 1); T-5's demo lease belongs to no agent.
        await wait_until(pilot, lambda: state_of(demo_base, "T-6") is State.REVIEW, "T-6 in review", limit=60)
        assert "engine: in console" in app.header.engine
        await wait_until(pilot, lambda: any(r.task_id == "T-6" for r in app.worktree_table.rows), "T-6's worktree")
        await wait_until(pilot, lambda: not app.engine.running, "the agents to finish", limit=60)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the console to quit", limit=30)
    assert EngineLock.holder(demo_base) is None


async def test_stop_an_agent_with_x_in_the_worktrees_pane(demo_base, slow_agents):
    app = FactoryApp(demo_base)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_until(
            pilot,
            lambda: any(r.task_id == "T-6" and r.status == "running" for r in app.worktree_table.rows),
            "T-6 running",
            limit=30,
        )
        await pilot.press("2")
        await move_worktrees_to(pilot, "T-6")
        # x cancels, as in the Plan; k moves up, as in every list.
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirm dialog")
        await pilot.press("y")
        await wait_until(pilot, lambda: state_of(demo_base, "T-6") is State.CANCELLED, "T-6 cancelled")
        # The engine stops the agent, commits its work and tidies the worktree away.
        await wait_until(pilot, lambda: not (demo_base.worktrees_dir / "T-6").exists(), "the worktree removed", limit=30)
        await asyncio.to_thread(app.engine.stop, stop_agents=True)
    assert "factory/T-6" in git(demo_base, "branch", "--list")


async def test_quit_while_agents_work_can_stop_them(demo_base, slow_agents):
    app = FactoryApp(demo_base)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: len(app.engine.running) == 2, "two agents at work", limit=30)
        running = list(app.engine.running)
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the quit question")
        await pilot.press("s")
        await wait_until(pilot, lambda: not app.is_running, "the console to quit", limit=30)
    with ExecutionLog.open(demo_base.log_path) as log:
        for task_id in running:
            task = log.get_task(task_id)
            assert task.state is State.QUEUED
            assert log.events(task_id=task_id)[-1].kind == "stopped"
    assert EngineLock.holder(demo_base) is None


async def test_quit_while_agents_work_can_leave_them_to_a_headless_engine(demo_base, slow_agents):
    app = FactoryApp(demo_base)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_until(pilot, lambda: len(app.engine.running) == 2, "two agents at work", limit=30)
        running = list(app.engine.running)
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "the quit question")
        await pilot.press("l")
        await wait_until(pilot, lambda: not app.is_running, "the console to quit", limit=30)
    assert app.farewell and "headless engine" in app.farewell
    holder = None
    try:
        for _ in range(100):
            holder = EngineLock.holder(demo_base)
            if holder:
                break
            await _sleep(0.1)
        assert holder and holder["mode"] == "headless"
        with ExecutionLog.open(demo_base.log_path) as log:
            for task_id in running:
                assert log.get_task(task_id).state is State.RUNNING
    finally:
        if holder:
            os.kill(holder["pid"], signal.SIGTERM)
            for _ in range(200):
                if EngineLock.holder(demo_base) is None:
                    break
                await _sleep(0.1)


async def test_a_console_attaches_to_a_running_engine(demo_base):
    lock = EngineLock(demo_base)
    lock.acquire("headless")
    try:
        app = FactoryApp(demo_base)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await wait_until(pilot, lambda: app.engine.mode == "attached", "attaching")
            await wait_until(pilot, lambda: "attached" in app.header.engine, "the header")
            assert f"pid {os.getpid()}" in app.header.engine
            await pilot.press("q")
    finally:
        lock.release()


async def test_outside_text_in_a_transcript_is_literal(base, tmp_path):
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="t"), actor="test")
    transcript = tmp_path / "transcript.log"
    transcript.write_text("[bold]not bold[/]\n\x1b[31mred\n", encoding="utf-8")
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await app.push_screen(RunScreen("T-1", title="[b]t", transcript=transcript, worktree=tmp_path, branch="factory/T-1"))
        view = app.screen.query_one(TranscriptView)
        await wait_until(pilot, lambda: view.row_count == 2, "the transcript")
        rendered = ["".join(s.text for s in view.render_row(n, 80)) for n in range(2)]
        assert "[bold]not bold[/]" in rendered[0]
        assert "␛[31mred" in rendered[1] and "\x1b" not in rendered[1]


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_worktree_scans_never_overlap_and_a_burst_ends_in_one_fresh_scan(demo_base):
    """A scan runs git for every worktree; asking again while one runs must
    not start a second beside it (a thread cannot be cancelled), only one
    more after it, and that one sees what changed meanwhile."""
    import threading

    from factory_tui.messages import WorktreesChanged

    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        session = app.session
        real = session.worktree_report
        lock = threading.Lock()
        seen = {"now": 0, "most": 0, "calls": 0, "fresh": 0}

        def counted(**kwargs):
            with lock:
                seen["now"] += 1
                seen["calls"] += 1
                seen["most"] = max(seen["most"], seen["now"])
                seen["fresh"] += not kwargs.get("reuse", False)
            try:
                return real(**kwargs)
            finally:
                with lock:
                    seen["now"] -= 1

        session.worktree_report = counted  # the real report, counted
        table = app.worktree_table
        for _ in range(20):
            table.post_message(WorktreesChanged())
            await pilot.pause(0.005)
        # Meanwhile T-3's worktree gains a file: the scan after the burst shows it.
        before = next(r for r in table.rows if r.task_id == "T-3").added
        path = Path(next(r for r in table.rows if r.task_id == "T-3").path)
        (path / "extra.txt").write_text("a\nb\nc\n")
        table.post_message(WorktreesChanged())
        await wait_until(
            pilot, lambda: next(r for r in table.rows if r.task_id == "T-3").added == before + 3,
            "the scan after the burst counting T-3's new file",
        )
        # The asks are answered, and then the scans stop: nothing looks at
        # git again until something changes (it once scanned without end, a
        # message bubbling from the pane to the app and back).
        await wait_until(pilot, lambda: not table._scanning, "the scans to end")
        assert seen["most"] == 1, seen
        assert seen["calls"] < 10, seen  # 21 asks, folded into a few scans
