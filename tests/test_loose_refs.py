"""A merged task branch deleted without a git process (backends/loose_refs.py)
where git would only unlink its loose ref and reflog, and by git in every
other case: packed refs, hooks, configuration, a branch in use, a lock."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from factory_tui.backends.loose_refs import delete_loose_branch
from factory_tui.backends.worktrees import Worktrees
from tests.test_worktrees import commit_file, git, git_runs, sha


@pytest.fixture
def root(base) -> Path:
    return base.root


@pytest.fixture
def trees(root: Path) -> Worktrees:
    return Worktrees(root, base_branch="main")


def merged_task(root: Path, trees: Worktrees, task_id: str = "T-1") -> Path:
    """A task branch fast-forwarded into main, its worktree removed."""
    path = trees.create_for(task_id)
    commit_file(path, f"{task_id}.txt", "work\n")
    trees.merge(task_id, f"merge {task_id}")
    trees.remove(task_id)
    return path


def branches(root: Path) -> list[str]:
    return git(root, "for-each-ref", "--format=%(refname)", "refs/heads/factory/").split()


def deleted_by(trees: Worktrees, monkeypatch: pytest.MonkeyPatch, task_id: str = "T-1") -> list[tuple]:
    ran = git_runs(trees, monkeypatch)
    trees.remove(task_id, delete_branch=True)
    return [args for args in ran if args[0] == "branch"]


def test_a_merged_loose_branch_goes_without_git_as_git_would_delete_it(
    root: Path, trees: Worktrees, monkeypatch: pytest.MonkeyPatch,
) -> None:
    merged_task(root, trees)
    common = root / ".git"
    assert (common / "logs" / "refs" / "heads" / "factory" / "T-1").is_file()

    assert deleted_by(trees, monkeypatch) == []

    assert branches(root) == []
    assert not (common / "refs" / "heads" / "factory").exists()  # its empty folder too
    assert not (common / "logs" / "refs" / "heads" / "factory").exists()
    assert not list((common / "refs").rglob("*.lock")) and not (common / "packed-refs.lock").exists()
    assert subprocess.run(["git", "-C", str(root), "reflog", "exists", "refs/heads/factory/T-1"]).returncode != 0
    assert git(root, "fsck", "--no-progress") == ""
    # The name is free again, for git as for us.
    trees.create_for("T-1")
    assert branches(root) == ["refs/heads/factory/T-1"]


def test_a_branch_kept_beside_it_keeps_its_folder(root: Path, trees: Worktrees, monkeypatch) -> None:
    merged_task(root, trees, "T-1")
    trees.create_for("T-2")
    assert deleted_by(trees, monkeypatch) == []
    assert branches(root) == ["refs/heads/factory/T-2"]


def test_a_packed_branch_is_deleted_by_git(root: Path, trees: Worktrees, monkeypatch) -> None:
    merged_task(root, trees)
    git(root, "pack-refs", "--all")
    assert "refs/heads/factory/T-1" in (root / ".git" / "packed-refs").read_text()

    assert deleted_by(trees, monkeypatch) != []

    assert branches(root) == []
    assert "factory/T-1" not in (root / ".git" / "packed-refs").read_text()


def test_a_branch_both_packed_and_loose_is_deleted_by_git_so_the_packed_copy_never_comes_back(
    root: Path, trees: Worktrees, monkeypatch,
) -> None:
    path = trees.create_for("T-1")
    git(root, "pack-refs", "--all")  # the packed copy is at the branch's start
    commit_file(path, "T-1.txt", "work\n")  # the loose file moves on
    trees.merge("T-1", "merge T-1")
    trees.remove("T-1")

    assert deleted_by(trees, monkeypatch) != []
    assert branches(root) == []


def test_a_reference_transaction_hook_is_run_by_git(root: Path, trees: Worktrees, monkeypatch) -> None:
    merged_task(root, trees)
    seen = root / "hook-saw"
    hook = root / ".git" / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ncat >> '{seen}'\n")
    hook.chmod(0o755)

    assert deleted_by(trees, monkeypatch) != []

    assert branches(root) == []
    assert "refs/heads/factory/T-1" in seen.read_text()


@pytest.mark.parametrize("config", [
    ["core.hooksPath", "elsewhere"],
    ["include.path", "more.config"],
    ["branch.factory/T-1.description", "kept with the branch until it goes"],
])
def test_configuration_that_git_would_act_on_leaves_the_deletion_to_git(
    root: Path, trees: Worktrees, monkeypatch, config: list[str],
) -> None:
    merged_task(root, trees)
    git(root, "config", *config)

    assert deleted_by(trees, monkeypatch) != []

    assert branches(root) == []
    if config[0].startswith("branch."):
        assert "factory/T-1" not in (root / ".git" / "config").read_text()  # git took its section too


def test_configuration_in_the_environment_leaves_the_deletion_to_git(
    root: Path, trees: Worktrees, monkeypatch,
) -> None:
    merged_task(root, trees)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(root / "elsewhere.config"))
    assert deleted_by(trees, monkeypatch) != []
    assert branches(root) == []


def test_a_held_lock_or_a_moved_ref_leaves_everything_as_it_was(root: Path, trees: Worktrees) -> None:
    merged_task(root, trees)
    common = root / ".git"
    tip = sha(root, "factory/T-1")
    admins = [common]
    lock = common / "refs" / "heads" / "factory" / "T-1.lock"
    lock.write_text("someone else's\n")
    assert not delete_loose_branch(common, "factory/T-1", tip, admins)
    assert lock.read_text() == "someone else's\n"  # not ours to remove
    lock.unlink()

    packed_lock = common / "packed-refs.lock"
    packed_lock.write_text("")
    assert not delete_loose_branch(common, "factory/T-1", tip, admins)
    assert packed_lock.exists() and not lock.exists()
    packed_lock.unlink()

    assert not delete_loose_branch(common, "factory/T-1", "0" * 40, admins)
    assert branches(root) == ["refs/heads/factory/T-1"]
    assert delete_loose_branch(common, "factory/T-1", tip, admins)
    assert branches(root) == []


def test_a_branch_in_use_in_any_checkout_is_not_deleted(root: Path, trees: Worktrees, tmp_path: Path) -> None:
    merged_task(root, trees)
    common = root / ".git"
    tip = sha(root, "factory/T-1")
    elsewhere = tmp_path / "users-own"
    git(root, "worktree", "add", "-q", str(elsewhere), "factory/T-1")
    admins = [common, *(common / "worktrees").iterdir()]
    assert not delete_loose_branch(common, "factory/T-1", tip, admins)
    git(root, "worktree", "remove", str(elsewhere))

    (common / "BISECT_START").write_text("main\n")
    assert not delete_loose_branch(common, "factory/T-1", tip, [common])
    (common / "BISECT_START").unlink()
    (common / "rebase-merge").mkdir()
    assert not delete_loose_branch(common, "factory/T-1", tip, [common])
    (common / "rebase-merge").rmdir()
    assert branches(root) == ["refs/heads/factory/T-1"]


def test_a_symbolic_ref_or_a_reftable_repository_is_left_to_git(root: Path, trees: Worktrees) -> None:
    merged_task(root, trees)
    common = root / ".git"
    tip = sha(root, "factory/T-1")
    git(root, "symbolic-ref", "refs/heads/factory/T-2", "refs/heads/factory/T-1")
    assert not delete_loose_branch(common, "factory/T-2", tip, [common])
    git(root, "symbolic-ref", "--delete", "refs/heads/factory/T-2")

    (common / "reftable").mkdir()
    try:
        assert not delete_loose_branch(common, "factory/T-1", tip, [common])
    finally:
        (common / "reftable").rmdir()
    assert branches(root) == ["refs/heads/factory/T-1"]
