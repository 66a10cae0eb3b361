"""The shell and editor the console opens in a worktree (``o``, ``e``): their
environment points ``factory`` at the base the console shows, and never
makes the operator look like an agent. Plainly, then through a real
``factory status`` run from inside a real task worktree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog
from factory_tui.backends.worktrees import Worktrees
from factory_tui.errors import FactoryError
from factory_tui.model import NewTask
from factory_tui.worktree_shell import editor_argv, operator_environment, shell_argv


def test_the_operator_environment_names_the_base_and_no_agent_run() -> None:
    console_env = {
        "PATH": "/usr/bin",
        "HOME": "/home/op",
        "FACTORY_BASE": "/elsewhere",
        "FACTORY_TASK": "T-3",
        "FACTORY_RUN": "/b/.factory/runs/T-3/1",
        "FACTORY_TOKEN": "secret",
        "FACTORY_DEMO_SECONDS": "5",
    }
    env = operator_environment(Path("/work/shop"), console_env)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/op",
        "FACTORY_BASE": "/work/shop",
        "FACTORY_DEMO_SECONDS": "5",
    }
    # The console's own environment is left as it was.
    assert console_env["FACTORY_TASK"] == "T-3"


def test_the_operator_environment_defaults_to_this_process(monkeypatch) -> None:
    monkeypatch.setenv("FACTORY_TASK", "T-9")
    monkeypatch.setenv("SOME_SETTING", "kept")
    env = operator_environment(Path("/work/shop"))
    assert "FACTORY_TASK" not in env
    assert env["SOME_SETTING"] == "kept" and env["FACTORY_BASE"] == "/work/shop"


def test_shell_and_editor_commands() -> None:
    assert shell_argv({"SHELL": "/bin/zsh"}) == ["/bin/zsh"]
    assert shell_argv({})[0]  # bash or sh
    assert editor_argv({"VISUAL": "code --wait", "EDITOR": "nano"}) == ["code", "--wait", "."]
    assert editor_argv({"EDITOR": "'/opt/my editor/bin/ed' -n"}) == ["/opt/my editor/bin/ed", "-n", "."]
    assert editor_argv({}) == ["vi", "."]
    assert editor_argv({"EDITOR": "  "}) == ["vi", "."]
    with pytest.raises(FactoryError, match="cannot read the editor command"):
        editor_argv({"EDITOR": "'unclosed"})


@pytest.fixture
def worktree(base: FactoryBase) -> Path:
    """A real task worktree of a base whose .factory/ is tracked, as a
    user's is: the worktree holds its own copy of factory.toml."""
    with ExecutionLog.open(base.log_path) as log:
        log.add_task(NewTask(title="Look around"), actor="test")
    subprocess.run(["git", "-C", str(base.root), "add", ".factory"], check=True)
    subprocess.run(["git", "-C", str(base.root), "commit", "-q", "-m", "factory base"], check=True)
    path = Worktrees(base.root, base_branch="main").create_for("T-1")
    assert (path / ".factory" / "factory.toml").is_file()
    return path


def factory_status(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "factory_tui", "status", "--json"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )


def test_factory_in_the_operators_shell_reports_the_main_base(base: FactoryBase, worktree: Path) -> None:
    # The console's environment as an agent's might have been.
    console_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")},
        "FACTORY_TASK": "T-1",
        "FACTORY_RUN": str(base.runs_dir / "T-1" / "1"),
        "FACTORY_TOKEN": "not-the-operators",
    }

    done = factory_status(worktree, operator_environment(base.root, console_env))

    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["base"] == str(base.root)
    assert status["total"] == 1
    # Without it, `factory` there finds the worktree's copy of the base and
    # has no log to show: what the console used to hand the operator.
    bare = {k: v for k, v in console_env.items() if not k.startswith("FACTORY_")}
    without = factory_status(worktree, bare)
    assert without.returncode == 1
    assert "run `factory init`" in without.stderr
    assert not (worktree / ".factory" / "log.db").exists()


def test_a_program_not_on_the_path_is_refused_in_one_line(tmp_path) -> None:
    import pytest

    from factory_tui.errors import FactoryError
    from factory_tui.worktree_shell import runnable

    (tmp_path / "ed").write_text("#!/bin/sh\n")
    (tmp_path / "ed").chmod(0o755)
    assert runnable(["ed", "note.md"], {"PATH": str(tmp_path)}) == ["ed", "note.md"]
    with pytest.raises(FactoryError, match=r"^cannot open nano: not found$"):
        runnable(["nano"], {"PATH": str(tmp_path)})
