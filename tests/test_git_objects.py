"""Ancestry read from loose objects, against real git repositories: every
yes it gives is git's yes, and whatever it cannot see (packed commits,
replace refs, a long walk) it leaves to git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from factory_tui.backends import git_objects
from factory_tui.backends.git_objects import descends_through_loose_commits, loose_parents


def git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def git_says(where: Path, older: str, newer: str) -> bool:
    return subprocess.run(["git", "-C", str(where), "merge-base", "--is-ancestor", older, newer],
                          capture_output=True, check=False).returncode == 0


def commit(where: Path, name: str) -> str:
    (where / name).write_text(name + "\n", encoding="utf-8")
    git(where, "add", name)
    git(where, "commit", "-q", "-m", f"add {name}")
    return git(where, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "t")
    git(root, "config", "user.email", "t@localhost")
    commit(root, "first.txt")
    return root


def test_a_few_fresh_commits_are_walked_and_agree_with_git(repo: Path) -> None:
    common = repo / ".git"
    start = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "side")
    side = commit(repo, "side.txt")
    git(repo, "checkout", "-q", "main")
    main = commit(repo, "main.txt")
    git(repo, "merge", "-q", "--no-edit", "side")
    merged = git(repo, "rev-parse", "HEAD")
    assert loose_parents(common / "objects", merged) == [main, side]
    for older, newer in [(start, merged), (side, merged), (main, merged), (start, side), (merged, merged)]:
        assert descends_through_loose_commits(common, older, newer) is True
        assert git_says(repo, older, newer)
    # Not an ancestor: never a yes (git says no too).
    assert descends_through_loose_commits(common, side, main) is False
    assert not git_says(repo, side, main)
    assert descends_through_loose_commits(common, merged, start) is False


def test_what_it_cannot_see_is_left_to_git(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    common = repo / ".git"
    start = git(repo, "rev-parse", "HEAD")
    head = commit(repo, "second.txt")
    assert descends_through_loose_commits(common, start, head)
    # A walk longer than the limit.
    monkeypatch.setattr(git_objects, "WALK_LIMIT", 1)
    third = commit(repo, "third.txt")
    assert not descends_through_loose_commits(common, start, third)
    monkeypatch.undo()
    assert descends_through_loose_commits(common, start, third)
    # Replace refs change what git calls history: only git answers then.
    git(repo, "replace", head, start)
    assert not descends_through_loose_commits(common, start, third)
    git(repo, "replace", "-d", head)
    # Packed commits are not read here.
    git(repo, "gc", "-q", "--prune=now")
    assert loose_parents(common / "objects", third) is None
    assert not descends_through_loose_commits(common, start, third)
    assert git_says(repo, start, third)
    # Not a commit, or not an object at all.
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    assert loose_parents(common / "objects", tree) is None
    assert loose_parents(common / "objects", "0" * 40) is None


def test_worktrees_ask_git_only_for_what_the_walk_cannot_tell(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from factory_tui.backends.worktrees import Worktrees
    from tests.test_worktrees import git_runs

    (repo / ".factory").mkdir()
    trees = Worktrees(repo, base_branch="main")
    start = git(repo, "rev-parse", "HEAD")
    path = trees.create_for("T-1")
    commit(path, "work.txt")
    ran = git_runs(trees, monkeypatch)
    assert trees.branch_descends_from("T-1", start)
    assert ran == []  # the fresh commit was read, no git process
    git(repo, "gc", "-q", "--prune=now")
    trees = Worktrees(repo, base_branch="main")
    ran = git_runs(trees, monkeypatch)
    assert trees.branch_descends_from("T-1", start)
    assert [args[0] for args in ran] == ["merge-base"]
