"""The operator's review loop from the command line (issue 7): several ids
per action, why a task failed, dependencies that can never be met and
dropping them, JSON errors, approvals that were refused, idempotent
imports, cancel messages. Real bases in temporary git repositories, through
click's CliRunner as tests/test_cli.py does, and real subprocesses where
the process boundary matters."""

from __future__ import annotations

import json
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.operator import Operator
from factory_tui.backends.worktrees import Worktrees
from factory_tui.model import Action, State
from tests.engine_helpers import ACTOR
from tests.test_cli import add, ok, ok_json, refused, run


def worktrees(base: FactoryBase) -> Worktrees:
    return Worktrees(base.root, base_branch="main")


# --- cancel says nothing of a branch a task never had ------------------------------------


def test_cancelling_a_task_that_never_ran_mentions_no_branch(base) -> None:
    never = add(base, "never ran")
    with ExecutionLog.open(base.log_path) as log:
        detail = Operator(base, log).cancel_detail(log.get_task(never))
    assert "branch" not in detail and "factory/" not in detail
    assert "never ran" in detail
    message = ok(base, "task", "cancel", never).stdout
    assert message == f"{never}: queued → cancelled\n"


def test_cancelling_a_task_with_a_branch_says_where_its_work_is(base) -> None:
    ran = add(base, "ran once")
    worktrees(base).create_for(ran)
    worktrees(base).remove(ran)  # the branch stays, the worktree is gone
    with ExecutionLog.open(base.log_path) as log:
        detail = Operator(base, log).cancel_detail(log.get_task(ran))
    assert f"factory/{ran}" in detail
    assert ok(base, "task", "cancel", ran).stdout == f"{ran}: queued → cancelled; its work stays on factory/{ran}\n"


# --- the demo says where its base is -------------------------------------------------------


def test_the_demo_says_where_its_base_is_when_the_console_has_gone(tmp_path: Path) -> None:
    from factory_tui.cli import demo_farewell

    root = tmp_path / "shopfront"
    assert str(root) in demo_farewell(root, kept=True, engine_stays=False)
    assert "kept" in demo_farewell(root, kept=True, engine_stays=False)
    stays = demo_farewell(root, kept=False, engine_stays=True)
    assert str(root) in stays and "engine stop" in stays
    gone = demo_farewell(root, kept=False, engine_stays=False)
    assert str(root) in gone and "removed" in gone and "--path" in gone


def test_the_demo_says_its_agent_fails_on_purpose(tmp_path: Path) -> None:
    help_text = ok(None, "demo", "--help").stdout
    assert "fails one run in ten on purpose" in " ".join(help_text.split())
    built = ok(None, "demo", "--no-console", "--path", str(tmp_path / "demo")).stdout.strip()
    # The printed path is the base, and `status` names it too.
    assert ok_json(built, "status")["base"] == built
