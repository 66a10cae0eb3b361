"""The review screens (issue 7): the diff (wrapped lines, file and hunk
keys, j/k), approving, re-queueing and cancelling from the run screen and
the diff, the review going on to the next task in review, the task screen
(its run, why it failed, a dependency that can never be met), searching a
transcript and opening earlier attempts, the multi-line re-queue note and
$EDITOR, the new-task form's agent profile, and dialogs that count.

Real bases in temporary git repositories, real worktrees and merges, the
real console driven by Pilot; each test checks the log and git, not only
the screen."""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path

import pytest
from textual.widgets import Select

from factory_tui.app import FactoryApp
from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.worktrees import Worktrees
from factory_tui.model import Action, NewTask, State
from factory_tui.screens.dialogs import ConfirmDialog, NewTaskDialog, NoteDialog, counted
from factory_tui.screens.task import TaskScreen
from tests.console_helpers import move_to, ready, wait_until
from tests.engine_helpers import agent_profile, configure

SIZE = (160, 48)
PROJECT = Path(__file__).resolve().parent.parent


# --- a base with tasks in review (what the engine leaves, minus the agent) --------------


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def commit_on_main(base: FactoryBase, files: dict[str, str]) -> None:
    for name, text in files.items():
        (base.root / name).write_text(text)
    git(base.root, "add", *files)
    git(base.root, "commit", "-q", "-m", "files to change")


def to_review(base: FactoryBase, title: str, files: dict[str, str], *, priority: int = 0) -> str:
    """A task claimed, its worktree and branch made, ``files`` committed on
    the branch and its run ended in review: real git, the real log."""
    worktrees = Worktrees.for_config(base.root, base.config())
    with ExecutionLog.open(base.log_path) as log:
        task = log.add_task(NewTask(title=title, priority=priority), actor="test")
        claim = log.claim_next("test-engine")
        assert claim is not None and claim.task.id == task.id
        prepared = worktrees.prepare_for(task.id, owned=False)
        log.record_branch_start(task.id, prepared.start)
        for name, text in files.items():
            path = prepared.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert worktrees.commit_all(task.id, f"work on {task.id}")
        log.finish(claim.token, State.REVIEW)
    return task.id


def task_of(base: FactoryBase, task_id: str):
    with ExecutionLog.open(base.log_path) as log:
        return log.get_task(task_id)


def events_of(base: FactoryBase, task_id: str) -> list:
    with ExecutionLog.open(base.log_path) as log:
        return log.events(task_id=task_id)


def has_branch(base: FactoryBase, branch: str) -> bool:
    return bool(git(base.root, "branch", "--list", branch).strip())


def on_main(base: FactoryBase) -> set[str]:
    return set(git(base.root, "ls-tree", "-r", "--name-only", "main").split())


async def open_task_screen(pilot, task_id: str) -> TaskScreen:
    app = pilot.app
    await move_to(pilot, task_id)
    await pilot.press("enter")
    await wait_until(
        pilot, lambda: isinstance(app.screen, TaskScreen) and app.screen.why_loaded, f"{task_id}'s screen"
    )
    return app.screen


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


# --- 5. the re-queue note: several lines, or $EDITOR --------------------------------------------


@pytest.fixture
def no_terminal(monkeypatch):
    # Pilot has no terminal to hand over; the editor runs all the same.
    monkeypatch.setattr(FactoryApp, "suspend", lambda self: contextlib.nullcontext())


async def test_ctrl_e_writes_the_note_in_the_editor(demo_base, tmp_path, monkeypatch, no_terminal):
    editor = tmp_path / "editor.sh"
    editor.write_text(
        "#!/bin/sh\n"
        f'env | grep -E "^FACTORY_" | sort > "{tmp_path}/editor.env"\n'
        '{ cat "$1"; printf "\\nwritten in the editor\\n"; } > "$1.new" && mv "$1.new" "$1"\n'
    )
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", f"{editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("FACTORY_TOKEN", "an-agents-token")
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-8")
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the note")
        dialog = app.screen
        await pilot.press(*"typed first", "ctrl+e")
        await wait_until(pilot, lambda: "written in the editor" in dialog.text_area.text, "the editor's text")
        assert dialog.text_area.text == "typed first\nwritten in the editor"
        assert not notes(app)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: task_of(demo_base, "T-8").state is State.QUEUED, "re-queued")
    assert task_of(demo_base, "T-8").feedback == "typed first\nwritten in the editor"
    # The editor ran as the operator, on this base, with no agent's token.
    assert (tmp_path / "editor.env").read_text() == f"FACTORY_BASE={demo_base.root}\n"


async def test_an_editor_that_cannot_start_is_a_notification(demo_base, monkeypatch, no_terminal):
    monkeypatch.setenv("EDITOR", "/no/such/editor --wait")
    monkeypatch.delenv("VISUAL", raising=False)
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await move_to(pilot, "T-8")
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, NoteDialog), "the note")
        dialog = app.screen
        await pilot.press(*"keep me", "ctrl+e")
        await wait_until(pilot, lambda: any("cannot open /no/such/editor" in m for m in notes(app)), "the notification")
        # Nothing lost: the dialog is open with what was typed.
        assert app.screen is dialog and dialog.text_area.text == "keep me"
        assert task_of(demo_base, "T-8").state is State.FAILED
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, NoteDialog), "the dialog closed")
    assert task_of(demo_base, "T-8").state is State.FAILED


# --- 6. the new-task form's agent profile -------------------------------------------------------


async def test_the_new_task_form_picks_the_agent_profile(base, agent):
    configure(base, agents={"careful": agent_profile(agent)})
    app = FactoryApp(base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewTaskDialog), "the form")
        profile = app.screen.query_one("#profile", Select)
        assert [str(option[0]) for option in profile._options] == ["default", "demo", "careful"]
        await pilot.press(*"Careful")
        profile.focus()
        await pilot.press("enter", "down", "down", "enter")
        await wait_until(pilot, lambda: profile.value == "careful", "careful chosen")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewTaskDialog), "the form closed")
        # And one with the default: no profile set on the task.
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewTaskDialog), "the form")
        await pilot.press(*"Default", "ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, NewTaskDialog), "the form closed")
    assert task_of(base, "T-1").profile == "careful"
    assert task_of(base, "T-2").profile is None


# --- 7. dialogs count ----------------------------------------------------------------------------


def test_counted_chooses_the_form_by_count():
    assert counted(1, "agent") == "1 agent"
    assert counted(2, "agent") == "2 agents"
    assert counted(0, "worktree") == "0 worktrees"
    assert counted(1, "dependency", "dependencies") == "1 dependency"
    assert counted(3, "dependency", "dependencies") == "3 dependencies"


def test_no_console_text_says_agent_s_or_worktree_s():
    pattern = re.compile(r"\w\(s\)")
    console_sources = [
        *(PROJECT / "factory_tui" / "screens").glob("*.py"),
        *(PROJECT / "factory_tui" / "panes").glob("*.py"),
        *(PROJECT / "factory_tui" / "widgets").glob("*.py"),
        PROJECT / "factory_tui" / "app.py",
        PROJECT / "factory_tui" / "actions.py",
    ]
    offenders = [
        f"{path.name}: {line.strip()}"
        for path in console_sources
        for line in path.read_text().splitlines()
        if pattern.search(line)
    ]
    assert offenders == []


async def test_the_clean_up_dialog_counts_its_worktrees(demo_base):
    # Cancelled in the log alone: their worktrees stay, orphaned.
    with ExecutionLog.open(demo_base.log_path) as log:
        log.apply("T-8", Action.CANCEL, actor="test")
    app = FactoryApp(demo_base, engine=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("2")
        await wait_until(pilot, lambda: any(r.task_id == "T-8" and r.status == "orphaned" for r in app.worktree_table.rows),
                         "T-8 orphaned")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
        assert app.screen.question == "Remove 1 orphaned worktree?"
        await pilot.press("n")
        with ExecutionLog.open(demo_base.log_path) as log:
            log.apply("T-3", Action.CANCEL, actor="test")
        await wait_until(pilot, lambda: sum(r.status == "orphaned" for r in app.worktree_table.rows) == 2, "two orphans")
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
        assert app.screen.question == "Remove 2 orphaned worktrees?"
