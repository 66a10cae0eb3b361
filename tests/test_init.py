"""``factory init`` on repositories as they come: the base branch found on a
detached HEAD, and task branches or worktrees left by another plan named
when the log is new (issue 6 §7, §8). Real git repositories, the real
command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase

ENV = {k: v for k, v in os.environ.items() if not k.startswith("FACTORY_")}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def make_repo(path: Path, branch: str = "main") -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", branch)
    (path / "README.md").write_text("# a project\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "start")
    return path


def commit(repo: Path, message: str) -> str:
    (repo / "file.txt").write_text(message)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def factory(repo: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "factory_tui", *args], cwd=repo, capture_output=True, text=True,
        env=ENV, timeout=60, check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def init_base_branch(repo: Path) -> str:
    done = factory(repo, "init")
    assert done.returncode == 0, done.stderr
    return FactoryBase(repo.resolve()).config().base_branch


# --- the base branch ------------------------------------------------------------------


def test_the_branch_head_names_is_the_base(tmp_path: Path) -> None:
    assert init_base_branch(make_repo(tmp_path / "a", "master")) == "master"
    trunk = make_repo(tmp_path / "b", "trunk")
    git(trunk, "branch", "main")  # HEAD's own branch wins over the usual names
    assert init_base_branch(trunk) == "trunk"
    unborn = tmp_path / "c"
    unborn.mkdir()
    git(unborn, "init", "-q", "-b", "develop")
    git(unborn, "commit", "-q", "--allow-empty", "-m", "start")
    assert init_base_branch(unborn) == "develop"


def test_a_detached_head_in_a_master_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "master")
    commit(repo, "second")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    assert init_base_branch(repo) == "master"


def test_a_detached_head_with_main_and_master(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "main")
    git(repo, "branch", "master")
    commit(repo, "main moves on")
    git(repo, "checkout", "-q", "--detach", "master")
    assert init_base_branch(repo) == "master"  # the one at HEAD
    other = make_repo(tmp_path / "other", "main")
    git(other, "branch", "master")
    commit(other, "main moves on")
    git(other, "checkout", "-q", "--detach", "HEAD")
    git(other, "commit", "-q", "--allow-empty", "-m", "detached work")
    assert init_base_branch(other) == "main"  # neither at HEAD


def test_a_detached_head_with_one_other_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "trunk")
    git(repo, "checkout", "-q", "--detach", "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "detached work")
    git(repo, "branch", "factory/T-1")  # a task branch is never the base
    assert init_base_branch(repo) == "trunk"


def test_a_detached_head_at_the_tip_of_one_of_several_branches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "trunk")
    git(repo, "checkout", "-q", "-b", "stable")
    commit(repo, "stable moves on")
    git(repo, "checkout", "-q", "--detach", "stable")
    assert init_base_branch(repo) == "stable"


def test_a_detached_head_with_nothing_to_go_by(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "trunk")
    git(repo, "branch", "stable")
    git(repo, "checkout", "-q", "--detach", "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "detached work")
    assert init_base_branch(repo) == "main"


# --- another plan's branches and worktrees ----------------------------------------------


def test_init_names_task_branches_and_worktrees_of_another_plan(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    for name in ("factory/T-1", "factory/T-2", "factory/T-10", "factory/mail/backend"):
        git(repo, "branch", name)
    (repo / ".factory" / "worktrees" / "T-7").mkdir(parents=True)

    done = factory(repo, "init")

    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("Initialised a factory base in ")
    assert second == (
        "Found 3 task branches and 1 worktree from an earlier plan (factory/T-1, factory/T-10, "
        "factory/T-2, …); tasks of this log with those ids will refuse them until they are "
        "renamed or deleted."
    )
    data = json.loads(factory(repo, "init", "--json").stdout)
    assert data["created"] is False
    assert data["leftovers"] == {
        "branches": ["factory/T-1", "factory/T-10", "factory/T-2"], "worktrees": ["T-7"],
    }


def test_init_says_nothing_of_a_logs_own_branches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert factory(repo, "init").returncode == 0
    added = factory(repo, "plan", "add", "a task")
    assert added.returncode == 0, added.stderr
    git(repo, "branch", "factory/T-1")  # as the engine would make it
    again = factory(repo, "init")
    assert again.stdout.splitlines() == [f"{repo.resolve() / '.factory'} is already a factory base; nothing to do"]
    assert json.loads(factory(repo, "init", "--json").stdout)["leftovers"] == {"branches": [], "worktrees": []}
    # The log deleted and made again: ids restart at T-1, and init says so.
    for path in (repo / ".factory").glob("log.db*"):
        path.unlink()
    fresh = factory(repo, "init")
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.splitlines()[-1].startswith("Found 1 task branch from an earlier plan (factory/T-1);")


@pytest.mark.parametrize("as_json", [False, True])
def test_init_of_a_clean_repository_names_nothing(tmp_path: Path, as_json: bool) -> None:
    repo = make_repo(tmp_path / "repo")
    done = factory(repo, "init", *(["--json"] if as_json else []))
    assert done.returncode == 0, done.stderr
    if as_json:
        assert json.loads(done.stdout)["leftovers"] == {"branches": [], "worktrees": []}
    else:
        assert len(done.stdout.splitlines()) == 1


# --- a repository with no commit, and the ignore rules ------------------------------------


def test_a_repository_with_no_commit_is_refused_with_what_to_do(tmp_path: Path) -> None:
    repo = tmp_path / "new"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "develop")
    done = factory(repo, "init")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"factory: {repo.resolve()} has no commit on develop yet; make a first commit: "
        "git commit --allow-empty -m start"
    ]
    assert not (repo / ".factory").exists()
    # Doing what it says is enough.
    git(repo, "commit", "-q", "--allow-empty", "-m", "start")
    assert init_base_branch(repo) == "develop"


def test_the_engine_log_is_ignored(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert factory(repo, "init").returncode == 0
    (repo / ".factory" / "engine.log").write_text("a headless engine's output\n")
    ignored = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", ".factory/engine.log"])
    assert ignored.returncode == 0
    assert "engine.log" not in git(repo, "status", "--porcelain", "--untracked-files=all")


def test_init_again_adds_the_rules_an_older_base_lacks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert factory(repo, "init").returncode == 0
    gitignore = repo / ".factory" / ".gitignore"
    # A base made before engine.log was ignored, with a rule of the user's own.
    older = gitignore.read_text().replace("engine.log\n", "") + "my-notes.txt"
    gitignore.write_text(older)
    done = factory(repo, "init", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ignore_rules_added"] == ["engine.log"]
    text = gitignore.read_text()
    assert text.startswith(older + "\n")  # the user's lines kept as they were
    assert text.splitlines()[-1] == "engine.log"
    again = factory(repo, "init")
    assert again.returncode == 0
    assert "nothing to do" in again.stdout
    assert gitignore.read_text() == text


def test_init_takes_the_base_option_as_its_folder_but_not_factory_base_from_the_environment(tmp_path: Path) -> None:
    target = make_repo(tmp_path / "target")
    here = make_repo(tmp_path / "here")
    done = factory(here, "--base", str(target), "init")
    assert done.returncode == 0, done.stderr
    assert (target / ".factory" / "factory.toml").exists() and not (here / ".factory").exists()
    # A worktree's shell sets FACTORY_BASE to its base: init there means the folder named, or here.
    elsewhere = make_repo(tmp_path / "elsewhere")
    done = subprocess.run([sys.executable, "-m", "factory_tui", "init"], cwd=elsewhere, capture_output=True,
                          text=True, env={**ENV, "FACTORY_BASE": str(target)}, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (elsewhere / ".factory" / "factory.toml").exists()
