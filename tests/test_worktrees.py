"""Task worktrees against real git repositories: creation and recovery, set-up,
commits, diffs, every way a merge can go, removal and listing.

Every test works in a throwaway repository made by the ``base`` fixture (a
repository with one commit on ``main`` and a ``.factory/`` folder); git is
never mocked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.worktrees import (
    BranchCollision,
    DiffStat,
    MergeConflict,
    MergeRefused,
    Prepared,
    Worktrees,
)
from factory_tui.errors import (
    ConfigError,
    FactoryError,
    InvalidInput,
    NotAGitRepository,
)


def git(where: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def sha(where: Path, ref: str) -> str:
    return git(where, "rev-parse", ref)


def commit_file(where: Path, name: str, text: str, message: str | None = None) -> str:
    target = where / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(where, "add", name)
    git(where, "commit", "-q", "-m", message or f"write {name}")
    return sha(where, "HEAD")


def branch_exists(where: Path, branch: str) -> bool:
    return subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
        capture_output=True,
        check=False,
    ).returncode == 0


def registered_paths(where: Path) -> list[Path]:
    out = git(where, "worktree", "list", "--porcelain")
    return [Path(line[len("worktree "):]) for line in out.splitlines() if line.startswith("worktree ")]


def status(where: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True, text=True, check=True,
    )
    return result.stdout.rstrip("\n")  # not strip(): " M" starts with a space


@pytest.fixture
def root(base: FactoryBase) -> Path:
    return base.root


@pytest.fixture
def trees(root: Path) -> Worktrees:
    return Worktrees(root, base_branch="main")


# --- create ------------------------------------------------------------------------


def test_create_makes_a_worktree_on_a_new_branch_from_the_base(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")

    assert path == root / ".factory" / "worktrees" / "T-1"
    assert trees.path_for("T-1") == path and trees.branch_for("T-1") == "factory/T-1"
    assert (path / "README.md").read_text() == "# a project\n"
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/factory/T-1"
    assert sha(root, "factory/T-1") == sha(root, "main")
    assert path in registered_paths(root)
    # The main checkout did not move.
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/main"


def test_create_starts_from_the_base_branch_even_when_another_is_checked_out(root: Path) -> None:
    main_sha = sha(root, "main")
    git(root, "checkout", "-q", "-b", "elsewhere")
    commit_file(root, "elsewhere.txt", "not on main\n")
    path = Worktrees(root, base_branch="main").create_for("T-1")
    assert sha(path, "HEAD") == main_sha
    assert not (path / "elsewhere.txt").exists()


def test_create_reuses_an_existing_worktree_as_it_is(trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    (path / "scratch.txt").write_text("uncommitted\n")
    head = sha(path, "HEAD")

    assert trees.create_for("T-1") == path
    assert (path / "scratch.txt").read_text() == "uncommitted\n"
    assert sha(path, "HEAD") == head


def test_create_after_removal_goes_on_in_the_same_branch(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    first = commit_file(path, "step1.txt", "first attempt\n")
    trees.remove("T-1")
    assert not path.exists()
    assert sha(root, "factory/T-1") == first

    again = trees.create_for("T-1")
    assert again == path
    assert (path / "step1.txt").read_text() == "first attempt\n"
    assert sha(path, "HEAD") == first
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/factory/T-1"


def test_create_after_the_folder_was_deleted_by_hand(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    kept = commit_file(path, "kept.txt", "committed before the folder went\n")
    shutil.rmtree(path)

    assert trees.create_for("T-1") == path
    assert (path / "kept.txt").read_text() == "committed before the folder went\n"
    assert sha(path, "HEAD") == kept
    listing = git(root, "worktree", "list", "--porcelain")
    assert "prunable" not in listing
    assert registered_paths(root).count(path) == 1


def test_create_refuses_a_folder_that_is_not_a_worktree(root: Path, trees: Worktrees) -> None:
    stray = trees.path_for("T-1")
    stray.mkdir(parents=True)
    (stray / "notes.txt").write_text("someone's files\n")
    with pytest.raises(FactoryError, match="not a worktree"):
        trees.create_for("T-1")
    assert (stray / "notes.txt").read_text() == "someone's files\n"
    assert not branch_exists(root, "factory/T-1")


# --- prepare_for: never take over another plan's branch (issue 6 §7) -----------------


def test_prepare_a_new_branch_says_where_it_started(root: Path, trees: Worktrees) -> None:
    prepared = trees.prepare_for("T-1", owned=False)
    assert prepared == Prepared(trees.path_for("T-1"), sha(root, "main"))
    assert sha(root, "factory/T-1") == sha(root, "main")
    # Again, now that the plan recorded it: reused, no new start.
    assert trees.prepare_for("T-1", owned=True) == Prepared(prepared.path, None)


def test_prepare_refuses_a_branch_with_commits_the_plan_did_not_make(root: Path, trees: Worktrees) -> None:
    # Someone's branch of the same name, from before this plan had a T-1.
    git(root, "checkout", "-q", "-b", "factory/T-1")
    commit_file(root, "theirs.txt", "someone's work\n")
    theirs = commit_file(root, "theirs2.txt", "more of it\n")
    git(root, "checkout", "-q", "main")

    with pytest.raises(BranchCollision) as refused:
        trees.prepare_for("T-1", owned=False)

    assert str(refused.value) == (
        "branch factory/T-1 exists with 2 commits this plan did not make (an earlier plan's?); "
        "rename it (`git branch -m factory/T-1 old/T-1`) or delete it, then re-queue T-1"
    )
    assert sha(root, "factory/T-1") == theirs
    assert not trees.path_for("T-1").exists()
    assert trees.path_for("T-1") not in registered_paths(root)
    # The plan's own branch (a re-queued task) is taken as it is.
    assert trees.prepare_for("T-1", owned=True).start is None
    assert sha(trees.path_for("T-1"), "HEAD") == theirs


def test_prepare_takes_a_branch_without_commits_of_its_own_from_the_base(root: Path, trees: Worktrees) -> None:
    old_base = sha(root, "main")
    git(root, "branch", "factory/T-1")  # made just before a crash, say
    new_base = commit_file(root, "later.txt", "main moved on\n")

    prepared = trees.prepare_for("T-1", owned=False)

    assert prepared.start == new_base != old_base
    assert sha(root, "factory/T-1") == new_base
    assert git(prepared.path, "symbolic-ref", "HEAD") == "refs/heads/factory/T-1"


def test_prepare_refuses_a_worktree_holding_work_the_plan_did_not_make(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")  # an earlier plan's T-1
    (path / "unsaved.txt").write_text("their uncommitted work\n")

    with pytest.raises(BranchCollision) as refused:
        trees.prepare_for("T-1", owned=False)

    message = str(refused.value)
    assert message.startswith(f"a worktree for T-1 exists at {path} with work this plan did not make")
    assert message.endswith("then re-queue T-1") and "\n" not in message
    assert (path / "unsaved.txt").read_text() == "their uncommitted work\n"

    (path / "unsaved.txt").unlink()
    commit_file(path, "theirs.txt", "their committed work\n")
    with pytest.raises(BranchCollision):
        trees.prepare_for("T-1", owned=False)
    assert (path / "theirs.txt").exists()


def test_prepare_starts_afresh_in_an_empty_leftover_worktree(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    new_base = commit_file(root, "later.txt", "main moved on\n")

    prepared = trees.prepare_for("T-1", owned=False)

    assert prepared == Prepared(path, new_base)
    assert sha(path, "HEAD") == new_base
    assert (path / "later.txt").exists()


def test_branch_descends_from(root: Path, trees: Worktrees) -> None:
    start = sha(root, "main")
    path = trees.create_for("T-1")
    tip = commit_file(path, "feature.txt", "feature\n")
    assert trees.branch_descends_from("T-1", start)
    assert trees.branch_descends_from("T-1", tip)
    assert not trees.branch_descends_from("T-1", "f" * 40)
    assert not trees.branch_descends_from("T-2", start)  # no branch at all


def git_runs(trees: Worktrees, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The git commands ``trees`` runs from now on (each still runs)."""
    ran: list[tuple] = []
    real = Worktrees._run

    def counted(self, where, *args, **kwargs):
        ran.append(args)
        return real(self, where, *args, **kwargs)

    monkeypatch.setattr(Worktrees, "_run", counted)
    return ran


def test_an_answer_about_ancestry_is_asked_of_git_once(
    root: Path, trees: Worktrees, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits never change, so whether one descends from another is known
    for good: an approval asks it before its lock and again under it."""
    start = sha(root, "main")
    path = trees.create_for("T-1")
    commit_file(path, "feature.txt", "feature\n")
    # Packed, the commits cannot be read without git (tests/test_git_objects.py).
    git(root, "gc", "-q", "--prune=now")
    ran = git_runs(trees, monkeypatch)
    assert trees.branch_descends_from("T-1", start)
    assert trees.branch_descends_from("T-1", start)
    assert [args[0] for args in ran] == ["merge-base"]
    # A commit git does not know is no answer: asked again each time (it
    # may be fetched later).
    assert not trees.branch_descends_from("T-1", "f" * 40)
    assert not trees.branch_descends_from("T-1", "f" * 40)
    assert len(ran) == 3
    # The branch moved: its new head is another question (its new commit is
    # loose, but its parent is packed: git answers).
    tip = commit_file(path, "more.txt", "more\n")
    assert trees.branch_descends_from("T-1", start) and sha(root, "factory/T-1") == tip
    assert len(ran) == 4


# --- copy and setup ------------------------------------------------------------------


def count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_copy_and_setup_run_in_a_new_worktree_only(root: Path) -> None:
    (root / ".env").write_text("SECRET=1\n")
    (root / "conf").mkdir()
    (root / "conf" / "local.ini").write_text("[local]\n")
    setup = [sys.executable, "-c", "open('setup-ran.txt', 'a').write('ran\\n')"]
    trees = Worktrees(
        root, base_branch="main", copy=[".env", "conf/local.ini", "missing.txt"], setup=setup
    )

    path = trees.create_for("T-1")
    assert (path / ".env").read_text() == "SECRET=1\n"
    assert (path / "conf" / "local.ini").read_text() == "[local]\n"
    assert not (path / "missing.txt").exists()
    assert count_lines(path / "setup-ran.txt") == 1  # ran with cwd = the worktree
    assert not (root / "setup-ran.txt").exists()

    (root / ".env").write_text("SECRET=2\n")
    trees.create_for("T-1")  # reused: neither copied again nor set up again
    assert (path / ".env").read_text() == "SECRET=1\n"
    assert count_lines(path / "setup-ran.txt") == 1


def test_copy_never_overwrites_a_file_the_branch_tracks(root: Path) -> None:
    commit_file(root, "settings.txt", "tracked version\n")
    (root / "settings.txt").write_text("user's local edit\n")
    path = Worktrees(root, base_branch="main", copy=["settings.txt"]).create_for("T-1")
    assert (path / "settings.txt").read_text() == "tracked version\n"


@pytest.mark.parametrize("bad", ["../outside.txt", "/etc/hostname", "conf/../../x"])
def test_copy_refuses_paths_outside_the_repository(root: Path, bad: str) -> None:
    trees = Worktrees(root, base_branch="main", copy=[bad])
    with pytest.raises(ConfigError, match="inside the repository"):
        trees.create_for("T-1")
    assert not trees.path_for("T-1").exists()
    assert not branch_exists(root, "factory/T-1")


def test_copy_refuses_a_symlink_that_leads_outside(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside\n")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    trees = Worktrees(root, base_branch="main", copy=["link.txt"])
    with pytest.raises(ConfigError, match="outside the repository"):
        trees.create_for("T-1")
    assert not trees.path_for("T-1").exists()
    assert not branch_exists(root, "factory/T-1")


def test_a_failing_setup_names_the_command_status_and_last_line(root: Path) -> None:
    script = "print('installing'); print('boom: no network'); raise SystemExit(3)"
    trees = Worktrees(root, base_branch="main", setup=[sys.executable, "-c", script])
    with pytest.raises(FactoryError) as caught:
        trees.create_for("T-1")
    message = str(caught.value)
    assert "\n" not in message
    assert "exit status 3" in message
    assert "boom: no network" in message
    assert sys.executable in message
    # Nothing half-made is left: the next attempt starts over and sets up again.
    assert not trees.path_for("T-1").exists()
    assert not branch_exists(root, "factory/T-1")
    assert trees.path_for("T-1") not in registered_paths(root)

    fixed = Worktrees(root, base_branch="main", setup=[sys.executable, "-c", "open('ok', 'w')"])
    assert (fixed.create_for("T-1") / "ok").exists()


def test_a_failing_setup_on_a_requeued_task_keeps_its_branch(root: Path) -> None:
    trees = Worktrees(root, base_branch="main")
    path = trees.create_for("T-1")
    work = commit_file(path, "work.txt", "earlier attempt\n")
    trees.remove("T-1")
    failing = Worktrees(root, base_branch="main", setup=[sys.executable, "-c", "raise SystemExit(1)"])
    with pytest.raises(FactoryError, match="exit status 1"):
        failing.create_for("T-1")
    assert sha(root, "factory/T-1") == work
    assert not path.exists()


def test_a_setup_command_that_does_not_exist(root: Path) -> None:
    trees = Worktrees(root, base_branch="main", setup=["no-such-command-for-factory-tests"])
    with pytest.raises(FactoryError, match="could not start"):
        trees.create_for("T-1")
    assert not trees.path_for("T-1").exists()


# --- commit_all ------------------------------------------------------------------------


def test_commit_all_with_nothing_to_commit(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    before = sha(path, "HEAD")
    assert trees.commit_all("T-1", "nothing here") is False
    assert sha(path, "HEAD") == before


def test_commit_all_commits_new_changed_and_deleted_files(root: Path, trees: Worktrees) -> None:
    commit_file(root, "old.txt", "to be deleted\n")
    path = trees.create_for("T-1")
    (path / "new.txt").write_text("untracked\n")
    (path / "README.md").write_text("# changed\n")
    (path / "old.txt").unlink()

    assert trees.commit_all("T-1", "the agent's work") is True
    assert status(path) == ""
    assert git(root, "show", "factory/T-1:new.txt") == "untracked"
    assert git(root, "show", "factory/T-1:README.md") == "# changed"
    assert "old.txt" not in git(root, "ls-tree", "--name-only", "factory/T-1")
    assert git(root, "log", "-1", "--format=%s", "factory/T-1") == "the agent's work"


def test_commits_use_the_repository_identity(root: Path, trees: Worktrees, monkeypatch) -> None:
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key, raising=False)
    git(root, "config", "user.name", "Repo Person")
    git(root, "config", "user.email", "repo@example.invalid")
    path = trees.create_for("T-1")
    (path / "a.txt").write_text("a\n")
    assert trees.commit_all("T-1", "work")
    assert git(path, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == (
        "Repo Person <repo@example.invalid>|Repo Person <repo@example.invalid>"
    )


def no_identity(monkeypatch, tmp_path: Path) -> None:
    """No identity anywhere: no env, an empty global config, and git told not
    to guess one from the host name (so the test means the same everywhere)."""
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / "empty-gitconfig").write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "empty-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.useConfigOnly")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "true")


def test_commits_fall_back_to_a_factory_identity(root: Path, monkeypatch, tmp_path: Path) -> None:
    no_identity(monkeypatch, tmp_path)
    # Sanity: plain git really has no identity here.
    probe = subprocess.run(
        ["git", "-C", str(root), "var", "GIT_COMMITTER_IDENT"], capture_output=True, check=False
    )
    assert probe.returncode != 0

    trees = Worktrees(root, base_branch="main")
    path = trees.create_for("T-1")
    (path / "a.txt").write_text("a\n")
    assert trees.commit_all("T-1", "work") is True
    expected = "factory-tui <factory@localhost>"
    assert git(path, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == f"{expected}|{expected}"
    # Once learned, the fallback is used straight away.
    (path / "b.txt").write_text("b\n")
    assert trees.commit_all("T-1", "more") is True
    assert git(path, "log", "-1", "--format=%an <%ae>") == expected
    # A merge commit falls back too (a fresh object learns it from the merge).
    merged = Worktrees(root, base_branch="main", merge="merge").merge("T-1", "merge T-1")
    assert git(root, "log", "-1", "--format=%an <%ae>", merged) == expected
    assert sha(root, "main") == merged
    # The repository's config was not changed to get there.
    assert "user." not in git(root, "config", "--local", "--list")


# --- diff ------------------------------------------------------------------------------


@pytest.fixture
def diffed(root: Path, trees: Worktrees) -> Path:
    """A worktree with committed, staged, unstaged and untracked changes,
    while the base branch moved on with a change of its own."""
    commit_file(root, "lib.txt", "".join(f"line {n}\n" for n in range(1, 11)))
    commit_file(root, "gone.txt", "soon deleted\n")
    commit_file(root, "moved.txt", "".join(f"row {n}\n" for n in range(1, 21)))
    path = trees.create_for("T-1")
    # Committed: one line changed in lib.txt, gone.txt deleted, moved.txt renamed.
    (path / "lib.txt").write_text((path / "lib.txt").read_text().replace("line 5\n", "line five\n"))
    git(path, "rm", "-q", "gone.txt")
    git(path, "mv", "moved.txt", "renamed.txt")
    git(path, "commit", "-q", "-am", "committed work")
    # Staged but not committed.
    (path / "staged.txt").write_text("staged\n")
    git(path, "add", "staged.txt")
    # Uncommitted edit of a tracked file: one line added.
    (path / "README.md").write_text("# a project\nmore\n")
    # Untracked: a text file without a final newline, and a binary file.
    (path / "new.txt").write_text("one\ntwo\nthree")
    (path / "blob.bin").write_bytes(b"\0\1\2binary")
    # Ignored files are not part of the work.
    (path / ".gitignore").write_text("*.log\n")
    (path / "debug.log").write_text("noise\n")
    # The base moved on meanwhile: that change is not the task's.
    commit_file(root, "base-only.txt", "base\n")
    return path


def test_diff_stat_counts_committed_uncommitted_and_untracked(trees: Worktrees, diffed: Path) -> None:
    stat = trees.diff_stat("T-1")
    # lib (+1 -1), gone (-1), renamed (0), staged (+1), README (+1),
    # new.txt (+3), blob.bin (binary), .gitignore (+1)
    assert stat == DiffStat(files=8, added=7, removed=2)


def test_a_settled_diff_stat_is_reused_until_commits_index_or_base_move(
    root: Path, trees: Worktrees, diffed: Path
) -> None:
    first = trees.diff_stat("T-1", settled=True)
    assert first == DiffStat(files=8, added=7, removed=2)
    # A file edited without `git add`: a settled look keeps the figure (no
    # git runs), a look that is not settled sees the edit.
    (diffed / "new.txt").write_text("one\ntwo\nthree\nfour\n")
    assert trees.diff_stat("T-1", settled=True) == first
    edited = trees.diff_stat("T-1")
    assert edited == DiffStat(files=8, added=8, removed=2)
    # Staged: the index moved, so even a settled look counts again.
    (diffed / "more.txt").write_text("x\n")
    git(diffed, "add", "more.txt")
    assert trees.diff_stat("T-1", settled=True) == DiffStat(files=9, added=9, removed=2)
    # Committed: the branch moved.
    git(diffed, "commit", "-q", "-m", "more")
    (diffed / "later.txt").write_text("y\n")
    assert trees.diff_stat("T-1", settled=True) == DiffStat(files=10, added=10, removed=2)
    # The base branch took the task's file: the range changed.
    git(root, "merge", "-q", "--no-edit", "factory/T-1")
    merged = trees.diff_stat("T-1", settled=True)
    # Left: README's edit and the untracked new.txt, later.txt, blob.bin, .gitignore.
    assert merged == DiffStat(files=5, added=7, removed=0)
    assert merged == trees.diff_stat("T-1")


def test_diff_per_file(trees: Worktrees, diffed: Path) -> None:
    files = {item.path: item for item in trees.diff("T-1")}
    assert set(files) == {
        "lib.txt", "gone.txt", "renamed.txt", "staged.txt", "README.md",
        "new.txt", "blob.bin", ".gitignore",
    }
    assert "base-only.txt" not in files and "debug.log" not in files
    assert [files[p].status for p in ("lib.txt", "gone.txt", "renamed.txt", "staged.txt",
                                      "README.md", "new.txt", "blob.bin")] == [
        "modified", "deleted", "renamed", "added", "modified", "added", "added"]

    lib = files["lib.txt"]
    assert (lib.added, lib.removed) == (1, 1)
    assert lib.patch.startswith("diff --git a/lib.txt b/lib.txt\n")
    assert "-line 5\n" in lib.patch and "+line five\n" in lib.patch
    assert "diff --git" not in lib.patch[1:]  # one file per patch

    assert (files["gone.txt"].added, files["gone.txt"].removed) == (0, 1)
    assert "-soon deleted" in files["gone.txt"].patch
    assert "rename from moved.txt" in files["renamed.txt"].patch
    assert "+more\n" in files["README.md"].patch

    new = files["new.txt"]
    assert (new.added, new.removed) == (3, 0)
    assert "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,3 @@\n+one\n+two\n+three\n" in new.patch
    assert new.patch.endswith("\\ No newline at end of file\n")
    assert "Binary files" in files["blob.bin"].patch
    assert (files["blob.bin"].added, files["blob.bin"].removed) == (0, 0)


def test_untracked_patch_matches_git(trees: Worktrees, root: Path) -> None:
    path = trees.create_for("T-1")
    (path / "poem.txt").write_bytes(b"roses\r\nare\x0cred\nviolets\n")
    ours = next(item for item in trees.diff("T-1") if item.path == "poem.txt")
    theirs = subprocess.run(
        ["git", "-C", str(path), "diff", "--no-color", "--no-index", "/dev/null", "poem.txt"],
        capture_output=True,
        check=False,  # --no-index exits 1 when the files differ
    ).stdout.decode()
    # Only the "index 0000000..sha" line differs.
    assert ours.patch[ours.patch.index("--- "):] == theirs[theirs.index("--- "):]
    assert ours.added == 3


def test_looking_at_a_diff_never_rewrites_the_index(trees: Worktrees, root: Path) -> None:
    # A diff that refreshed the index would hold index.lock, and an agent
    # committing at that moment would fail.
    path = trees.create_for("T-1")
    index = Path(git(path, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    os.utime(path / "README.md", (1_000_000_000, 1_000_000_000))  # stale stat data
    before = index.stat().st_mtime_ns, index.read_bytes()
    trees.diff_stat("T-1")
    trees.diff("T-1")
    trees.list()
    assert (index.stat().st_mtime_ns, index.read_bytes()) == before


def test_diff_of_a_fresh_worktree_is_empty(trees: Worktrees) -> None:
    trees.create_for("T-1")
    assert trees.diff_stat("T-1") == DiffStat(0, 0, 0)
    assert trees.diff("T-1") == []


def test_diff_when_the_folder_was_deleted_shows_the_branch(trees: Worktrees, root: Path) -> None:
    path = trees.create_for("T-1")
    commit_file(path, "done.txt", "a\nb\n")
    (path / "lost.txt").write_text("deleted with the folder\n")
    shutil.rmtree(path)
    assert trees.diff_stat("T-1") == DiffStat(1, 2, 0)
    assert [item.path for item in trees.diff("T-1")] == ["done.txt"]


# --- merge -------------------------------------------------------------------------------


def parents(where: Path, commit: str) -> list[str]:
    return git(where, "rev-list", "--parents", "-n", "1", commit).split()[1:]


def test_merge_fast_forwards_and_commits_leftovers(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    committed = commit_file(path, "feature.txt", "feature\n")
    (path / "leftover.txt").write_text("the agent forgot to commit this\n")

    new = trees.merge("T-1", "merge T-1")

    assert new == sha(root, "main") == sha(root, "factory/T-1")
    assert parents(root, new) == [committed]  # a fast-forward: no merge commit
    assert (root / "feature.txt").read_text() == "feature\n"
    assert (root / "leftover.txt").read_text() == "the agent forgot to commit this\n"
    assert status(path) == ""
    assert "leftover" not in status(root) and "feature" not in status(root)


def test_merge_makes_a_merge_commit_when_the_base_moved_on(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    branch_tip = commit_file(path, "feature.txt", "feature\n")
    base_tip = commit_file(root, "other.txt", "meanwhile on main\n")

    new = trees.merge("T-1", "merge T-1")

    assert new == sha(root, "main")
    assert parents(root, new) == [base_tip, branch_tip]  # base first
    assert git(root, "log", "-1", "--format=%s", new) == "merge T-1"
    assert (root / "feature.txt").read_text() == "feature\n"
    assert (root / "other.txt").read_text() == "meanwhile on main\n"
    # Nothing but the (uncommitted) .factory folder of the fixture shows.
    assert all(line.startswith("?? .factory/") for line in status(root).splitlines())
    # The worktree is back on its branch, which main now holds.
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/factory/T-1"
    assert status(path) == ""
    git(root, "merge-base", "--is-ancestor", "factory/T-1", "main")


def test_merge_mode_always_makes_a_merge_commit(root: Path) -> None:
    trees = Worktrees(root, base_branch="main", merge="merge")
    start = sha(root, "main")
    path = trees.create_for("T-1")
    branch_tip = commit_file(path, "feature.txt", "feature\n")

    new = trees.merge("T-1", "merge T-1 with a commit")

    assert parents(root, new) == [start, branch_tip]
    assert sha(root, "main") == new
    assert (root / "feature.txt").exists()


def test_merge_of_a_branch_without_work_changes_nothing(root: Path, trees: Worktrees) -> None:
    trees.create_for("T-1")
    before = sha(root, "main")
    assert trees.merge("T-1", "nothing") == before
    assert sha(root, "main") == before


def test_merge_conflict_leaves_everything_as_it_was(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    branch_tip = commit_file(path, "README.md", "# the agent's title\n")
    base_tip = commit_file(root, "README.md", "# the user's title\n")
    main_status = status(root)

    with pytest.raises(MergeConflict) as caught:
        trees.merge("T-1", "merge T-1")

    assert caught.value.files == ["README.md"]
    assert "README.md" in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, FactoryError)
    assert sha(root, "factory/T-1") == branch_tip
    assert sha(root, "main") == base_tip
    assert (root / "README.md").read_text() == "# the user's title\n"
    assert status(root) == main_status
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/factory/T-1"
    assert status(path) == ""
    assert (path / "README.md").read_text() == "# the agent's title\n"


@pytest.mark.parametrize("mode", ["ff", "merge"])
def test_merge_keeps_a_users_unrelated_uncommitted_change(root: Path, mode: str) -> None:
    trees = Worktrees(root, base_branch="main", merge=mode)
    path = trees.create_for("T-1")
    commit_file(path, "feature.txt", "feature\n")
    (root / "README.md").write_text("# a project\nthe user is editing this\n")

    new = trees.merge("T-1", "merge T-1")

    assert sha(root, "main") == new
    assert (root / "feature.txt").read_text() == "feature\n"
    assert (root / "README.md").read_text() == "# a project\nthe user is editing this\n"
    assert " M README.md" in status(root).splitlines()


@pytest.mark.parametrize("autostash", [False, True], ids=["plain", "autostash"])
@pytest.mark.parametrize("mode", ["ff", "merge"])
def test_merge_refuses_to_overwrite_a_users_uncommitted_change(
    root: Path, mode: str, autostash: bool
) -> None:
    if autostash:  # git must not stash the user's change away and back
        git(root, "config", "merge.autoStash", "true")
    trees = Worktrees(root, base_branch="main", merge=mode)
    path = trees.create_for("T-1")
    branch_tip = commit_file(path, "README.md", "# the agent's version\n")
    base_tip = sha(root, "main")
    (root / "README.md").write_text("# the user's unsaved work\n")
    main_status = status(root)

    with pytest.raises(MergeRefused) as caught:
        trees.merge("T-1", "merge T-1")

    message = str(caught.value)
    assert "\n" not in message
    assert "README.md" in message and "overwritten" in message
    assert sha(root, "main") == base_tip
    assert sha(root, "factory/T-1") == branch_tip
    assert (root / "README.md").read_text() == "# the user's unsaved work\n"
    assert status(root) == main_status
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/factory/T-1"
    assert status(path) == ""
    # Once the user has committed their work elsewhere, the merge goes through.
    (root / "README.md").write_text("# a project\n")
    if mode == "ff":
        assert trees.merge("T-1", "merge T-1") == branch_tip
    else:
        assert parents(root, trees.merge("T-1", "merge T-1")) == [base_tip, branch_tip]


def test_merge_refuses_to_overwrite_a_users_untracked_file(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    commit_file(path, "notes.txt", "from the agent\n")
    base_tip = sha(root, "main")
    (root / "notes.txt").write_text("the user's own untracked notes\n")
    with pytest.raises(MergeRefused, match="notes.txt"):
        trees.merge("T-1", "merge T-1")
    assert sha(root, "main") == base_tip
    assert (root / "notes.txt").read_text() == "the user's own untracked notes\n"


def test_merge_into_a_base_branch_checked_out_nowhere(root: Path, trees: Worktrees) -> None:
    git(root, "checkout", "-q", "-b", "side")
    path = trees.create_for("T-1")
    branch_tip = commit_file(path, "feature.txt", "feature\n")

    assert trees.merge("T-1", "merge T-1") == branch_tip
    assert sha(root, "main") == branch_tip
    # The main checkout stays on its own branch, its files untouched.
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/side"
    assert not (root / "feature.txt").exists()
    # "Merged" means merged into the base, whatever the main checkout has out.
    trees.remove("T-1", delete_branch=True)
    assert not branch_exists(root, "factory/T-1")


def test_merge_commit_into_a_base_branch_checked_out_nowhere(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    branch_tip = commit_file(path, "feature.txt", "feature\n")
    base_tip = commit_file(root, "other.txt", "other\n")
    git(root, "checkout", "-q", "-b", "side")

    new = trees.merge("T-1", "merge T-1")
    assert parents(root, new) == [base_tip, branch_tip]
    assert sha(root, "main") == new
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/side"


def test_merge_fast_forwards_a_base_checked_out_in_another_worktree(root: Path, tmp_path: Path,
                                                                  trees: Worktrees) -> None:
    git(root, "checkout", "-q", "-b", "side")
    other = tmp_path / "main-elsewhere"
    git(root, "worktree", "add", "-q", str(other), "main")
    path = trees.create_for("T-1")
    commit_file(path, "feature.txt", "feature\n")
    (other / "README.md").write_text("dirty there\n")

    new = trees.merge("T-1", "merge T-1")
    assert sha(root, "main") == new
    assert (other / "feature.txt").read_text() == "feature\n"
    assert (other / "README.md").read_text() == "dirty there\n"


def test_merge_refuses_while_the_base_branch_is_being_rebased(root: Path, trees: Worktrees) -> None:
    start = sha(root, "main")
    commit_file(root, "a.txt", "a\n")
    before = commit_file(root, "b.txt", "b\n")
    # An interactive rebase stopped at its first step: HEAD is detached.
    subprocess.run(["git", "-C", str(root), "rebase", "-q", "-i", start], check=True,
                   env={**os.environ, "GIT_SEQUENCE_EDITOR": "sed -i 1s/^pick/edit/"},
                   capture_output=True)
    path = trees.create_for("T-1")
    commit_file(path, "feature.txt", "feature\n")
    with pytest.raises(MergeRefused, match="being rebased"):
        trees.merge("T-1", "merge T-1")
    assert sha(root, "main") == before


def test_merge_after_the_worktree_folder_was_deleted(root: Path) -> None:
    trees = Worktrees(root, base_branch="main", merge="merge")
    path = trees.create_for("T-1")
    branch_tip = commit_file(path, "feature.txt", "feature\n")
    shutil.rmtree(path)
    new = trees.merge("T-1", "merge T-1")
    assert parents(root, new)[1] == branch_tip
    assert (root / "feature.txt").exists()


# --- a base that moves while a merge is made (issue 6 §6) --------------------------

# Commits on main in the main checkout (or, with $USER_COMMIT_REF, straight to
# the ref) the first time it runs: the user committing while an approval is
# between reading the base branch and landing on it.
USER_COMMIT_HOOK = """#!/bin/sh
[ -n "$USER_COMMIT_ONCE" ] || exit 0
[ -e "$USER_COMMIT_ONCE" ] && exit 0
touch "$USER_COMMIT_ONCE"
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_PREFIX
if [ -n "$USER_COMMIT_REF" ]; then
    new=$(git -C "$USER_ROOT" commit-tree -p main -m "the user's commit" "main^{tree}")
    git -C "$USER_ROOT" update-ref refs/heads/main "$new"
else
    echo "the user's line" > "$USER_ROOT/user.txt"
    git -C "$USER_ROOT" add user.txt
    git -C "$USER_ROOT" commit -q -m "the user's commit"
fi
"""


@pytest.mark.parametrize("mode, hook, checked_out", [
    # ff: leftovers are committed (post-commit) after the base was read.
    ("ff", "post-commit", True),
    # merge: the merge commit is made (post-merge) on the base it read.
    ("merge", "post-merge", True),
    ("merge", "post-merge", False),
])
def test_a_merge_lands_on_a_base_that_moved_meanwhile(
    root: Path, tmp_path: Path, monkeypatch, mode: str, hook: str, checked_out: bool,
) -> None:
    trees = Worktrees(root, base_branch="main", merge=mode)
    path = trees.create_for("T-1")
    tip = commit_file(path, "feature.txt", "feature\n")
    (path / "leftover.txt").write_text("left uncommitted\n")
    hooks = root / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / hook).write_text(USER_COMMIT_HOOK)
    (hooks / hook).chmod(0o755)
    if not checked_out:
        git(root, "checkout", "-q", "-b", "side")
        monkeypatch.setenv("USER_COMMIT_REF", "1")
    monkeypatch.setenv("USER_COMMIT_ONCE", str(tmp_path / "committed"))
    monkeypatch.setenv("USER_ROOT", str(root))
    before = sha(root, "main")

    new = trees.merge("T-1", "merge T-1")

    assert (tmp_path / "committed").exists()  # the user did commit meanwhile
    users = git(root, "log", "-1", "--format=%H", "--grep=the user's commit", "main")
    assert users and users != before
    assert new == sha(root, "main")
    assert parents(root, new)[0] == users  # landed on the moved base
    git(root, "merge-base", "--is-ancestor", tip, "main")
    shown = git(root, "show", "main:leftover.txt")
    assert shown == "left uncommitted"
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/factory/T-1"
    if checked_out:
        assert (root / "feature.txt").exists() and (root / "user.txt").exists()


# --- remove ------------------------------------------------------------------------------


def test_remove_commits_leftovers_first(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    (path / "unsaved.txt").write_text("never lose me\n")
    (path / "README.md").write_text("# edited, not committed\n")

    trees.remove("T-1")

    assert not path.exists()
    assert path not in registered_paths(root)
    assert git(root, "show", "factory/T-1:unsaved.txt") == "never lose me"
    assert git(root, "show", "factory/T-1:README.md") == "# edited, not committed"


def test_remove_deletes_the_branch_only_when_merged(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    commit_file(path, "feature.txt", "feature\n")
    trees.remove("T-1", delete_branch=True)
    assert branch_exists(root, "factory/T-1")  # not merged: kept

    trees.create_for("T-1")
    trees.merge("T-1", "merge T-1")
    trees.remove("T-1", delete_branch=True)
    assert not branch_exists(root, "factory/T-1")
    assert (root / "feature.txt").exists()


def test_remove_judges_merged_against_the_base_not_the_checkout(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    tip = commit_file(path, "feature.txt", "feature\n")
    # The main checkout is on a branch that holds the task's work; main does not.
    git(root, "checkout", "-q", "-b", "side", tip)
    trees.remove("T-1", delete_branch=True)
    assert sha(root, "factory/T-1") == tip


def test_remove_after_a_merge_commit_deletes_the_branch(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    commit_file(path, "feature.txt", "feature\n")
    commit_file(root, "other.txt", "other\n")
    trees.merge("T-1", "merge T-1")
    trees.remove("T-1", delete_branch=True)
    assert not path.exists()
    assert not branch_exists(root, "factory/T-1")


def test_remove_of_a_folder_deleted_by_hand_and_twice(root: Path, trees: Worktrees) -> None:
    path = trees.create_for("T-1")
    shutil.rmtree(path)
    trees.remove("T-1")
    assert path not in registered_paths(root)
    trees.remove("T-1")  # nothing left: still fine
    assert branch_exists(root, "factory/T-1")


def test_remove_keeps_ignored_files_out_of_the_branch(root: Path, trees: Worktrees) -> None:
    commit_file(root, ".gitignore", "*.log\n")
    path = trees.create_for("T-1")
    (path / "build.log").write_text("noise\n")
    trees.remove("T-1")
    assert not path.exists()
    assert "build.log" not in git(root, "ls-tree", "--name-only", "factory/T-1")


# --- submodules (issue 6 §6d) ----------------------------------------------------------


@pytest.fixture
def with_submodule(root: Path, tmp_path: Path) -> Path:
    """``root`` with a submodule ``lib`` (a local repository) on main."""
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q", "-b", "main")
    commit_file(lib, "lib.txt", "the library\n")
    git(root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    git(root, "commit", "-q", "-m", "add lib")
    return lib


def with_lib(trees: Worktrees) -> Path:
    path = trees.create_for("T-1")
    git(path, "-c", "protocol.file.allow=always", "submodule", "update", "--init", "-q")
    assert (path / "lib" / "lib.txt").exists()
    return path


def test_remove_a_worktree_with_an_initialised_submodule(root: Path, trees: Worktrees, with_submodule: Path) -> None:
    path = with_lib(trees)
    (path / "leftover.txt").write_text("left in the superproject\n")

    trees.remove("T-1")

    assert not path.exists()
    assert path not in registered_paths(root)
    assert not (root / ".git" / "worktrees" / "T-1").exists()
    assert git(root, "show", "factory/T-1:leftover.txt") == "left in the superproject"


def test_remove_refuses_a_submodule_with_uncommitted_changes(root: Path, trees: Worktrees,
                                                              with_submodule: Path) -> None:
    path = with_lib(trees)
    (path / "lib" / "lib.txt").write_text("changed in the submodule\n")

    with pytest.raises(FactoryError) as refused:
        trees.remove("T-1")

    assert str(refused.value) == (
        "cannot remove the worktree of T-1: its submodule lib has uncommitted changes; "
        "commit and push them (or discard them) first; nothing was removed"
    )
    assert (path / "lib" / "lib.txt").read_text() == "changed in the submodule\n"
    assert path in registered_paths(root)


def test_remove_refuses_a_submodule_with_commits_that_exist_nowhere_else(
    root: Path, trees: Worktrees, with_submodule: Path,
) -> None:
    path = with_lib(trees)
    only_here = commit_file(path / "lib", "new.txt", "committed in the submodule only\n")

    with pytest.raises(FactoryError) as refused:
        trees.remove("T-1")

    assert str(refused.value) == (
        "cannot remove the worktree of T-1: its submodule lib has 1 commit that exists nowhere else; "
        "push it first; nothing was removed"
    )
    assert sha(path / "lib", "HEAD") == only_here
    # Pushed, it can go.
    git(path / "lib", "push", "-q", "origin", "HEAD:refs/heads/pushed")
    trees.remove("T-1")
    assert not path.exists()
    assert sha(with_submodule, "pushed") == only_here


# --- list --------------------------------------------------------------------------------


def test_list_shows_worktrees_orphans_and_lost_folders(root: Path, trees: Worktrees,
                                                      tmp_path: Path) -> None:
    one = trees.create_for("T-1")
    two = trees.create_for("T-2")
    shutil.rmtree(two)  # deleted by hand: registered, but no folder
    orphan = trees.worktrees_dir / "T-9"
    orphan.mkdir()
    (orphan / "left.txt").write_text("no git here\n")
    outside = tmp_path / "elsewhere"
    git(root, "worktree", "add", "-q", "-b", "factory/T-7", str(outside), "main")
    git(root, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "users-own"), "main")

    infos = {info.task_id: info for info in trees.list()}

    assert set(infos) == {"T-1", "T-2", "T-7", "T-9"}
    assert (infos["T-1"].path, infos["T-1"].branch, infos["T-1"].exists, infos["T-1"].registered) \
        == (one, "factory/T-1", True, True)
    assert (infos["T-2"].exists, infos["T-2"].registered) == (False, True)
    assert (infos["T-9"].path, infos["T-9"].branch, infos["T-9"].exists, infos["T-9"].registered) \
        == (orphan, None, True, False)
    assert (infos["T-7"].path, infos["T-7"].branch) == (outside, "factory/T-7")

    # Cleaning up: the deleted one is pruned; the orphan folder is never deleted
    # blindly, but an emptied one is.
    trees.remove("T-2")
    with pytest.raises(FactoryError, match="not a worktree"):
        trees.remove("T-9")
    assert (orphan / "left.txt").exists()
    (orphan / "left.txt").unlink()
    trees.remove("T-9")
    assert {info.task_id for info in trees.list()} == {"T-1", "T-7"}


def test_list_of_a_repository_without_task_worktrees(trees: Worktrees) -> None:
    assert trees.list() == []


# --- faults a user can cause ---------------------------------------------------------------


def test_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(NotAGitRepository, match="not a git repository"):
        Worktrees(tmp_path, base_branch="main")


def test_a_missing_base_branch(root: Path) -> None:
    trees = Worktrees(root, base_branch="trunk")
    for action in (lambda: trees.create_for("T-1"), lambda: trees.merge("T-1", "m")):
        with pytest.raises(FactoryError) as caught:
            action()
        assert "trunk" in str(caught.value) and "\n" not in str(caught.value)
    assert not branch_exists(root, "factory/T-1")


@pytest.mark.parametrize("bad", ["../T-1", "T/1", "", "-x", "T-1.lock", "a..b"])
def test_task_ids_that_cannot_be_paths_or_branches(trees: Worktrees, bad: str) -> None:
    with pytest.raises(InvalidInput):
        trees.create_for(bad)


def test_git_errors_become_one_line_factory_errors(root: Path, trees: Worktrees) -> None:
    git(root, "branch", "factory/T-1")
    git(root, "checkout", "-q", "factory/T-1")  # the user took the task's branch
    with pytest.raises(FactoryError) as caught:
        trees.create_for("T-1")
    message = str(caught.value)
    assert "\n" not in message and "already" in message
    assert type(caught.value).__module__.startswith("factory_tui")


def test_using_a_worktree_that_is_not_there(trees: Worktrees) -> None:
    with pytest.raises(FactoryError, match="no worktree"):
        trees.commit_all("T-5", "nothing")
    with pytest.raises(FactoryError, match="no worktree and no branch"):
        trees.diff_stat("T-5")
    with pytest.raises(FactoryError, match="no branch"):
        trees.merge("T-5", "nothing")


def test_bad_merge_mode(root: Path) -> None:
    with pytest.raises(ConfigError):
        Worktrees(root, base_branch="main", merge="rebase")


# --- the look for uncommitted work, taken while the caller gathers ------------------------


@pytest.mark.parametrize("leftover", [True, False])
def test_a_look_for_uncommitted_work_started_before_the_merge_is_what_the_merge_takes(
    root: Path, trees: Worktrees, leftover: bool,
) -> None:
    path = trees.create_for("T-1")
    commit_file(path, "feature.txt", "feature\n")
    if leftover:
        (path / "leftover.txt").write_text("left uncommitted\n")
    looked = trees.look_for_uncommitted("T-1")
    assert looked is not None and looked.result() is leftover

    new = trees.merge("T-1", "merge T-1", looked=looked)

    assert new == sha(root, "main")
    files = git(root, "ls-tree", "--name-only", "main").split()
    assert "feature.txt" in files and ("leftover.txt" in files) is leftover
    assert status(path) == ""


def test_there_is_no_look_without_a_worktree_and_a_failed_look_is_the_merges_error(
    root: Path,
) -> None:
    # A merge commit (merge mode) is made in the worktree, so the look's
    # answer comes first: a failed look is the merge's error, nothing landed.
    trees = Worktrees(root, base_branch="main", merge="merge")
    assert trees.look_for_uncommitted("T-9") is None
    path = trees.create_for("T-1")
    commit_file(path, "feature.txt", "feature\n")
    # git cannot read the worktree's index: the look fails, and so does the
    # merge, with git's reason and nothing landed.
    admin = root / ".git" / "worktrees" / "T-1"
    (admin / "index").write_bytes(b"DIRC not an index")
    before = sha(root, "main")
    looked = trees.look_for_uncommitted("T-1")
    assert looked is not None
    with pytest.raises(FactoryError, match="cannot read the state"):
        trees.merge("T-1", "merge T-1", looked=looked)
    assert sha(root, "main") == before


def test_a_fast_forward_made_while_the_look_failed_lands_the_branch_and_keeps_the_worktree(
    root: Path, trees: Worktrees,
) -> None:
    # ff mode: the fast-forward does not wait for the look. The branch's
    # committed work lands; the worktree that could not be looked at stays.
    path = trees.create_for("T-1")
    tip = commit_file(path, "feature.txt", "feature\n")
    (path / "leftover.txt").write_text("left uncommitted\n")
    admin = root / ".git" / "worktrees" / "T-1"
    (admin / "index").write_bytes(b"DIRC not an index")
    looked = trees.look_for_uncommitted("T-1")
    assert looked is not None

    landed = trees.land("T-1", "merge T-1", looked=looked)

    assert landed.sha == tip == sha(root, "main")
    assert landed.kept is not None and "cannot read the state" in landed.kept
    assert (path / "leftover.txt").read_text() == "left uncommitted\n"


def test_work_left_uncommitted_lands_by_a_second_fast_forward_after_the_first(
    root: Path, trees: Worktrees,
) -> None:
    path = trees.create_for("T-1")
    tip = commit_file(path, "feature.txt", "feature\n")
    (path / "leftover.txt").write_text("left uncommitted\n")
    (path / "feature.txt").write_text("feature, edited by hand\n")
    looked = trees.look_for_uncommitted("T-1")
    assert looked is not None

    landed = trees.land("T-1", "merge T-1", looked=looked)

    assert landed.kept is None
    main = sha(root, "main")
    assert landed.sha == main == sha(root, "factory/T-1")
    # One commit of the leftovers on top of the branch's own, landed whole.
    assert git(root, "rev-parse", f"{main}^").strip() == tip
    assert git(root, "show", "main:leftover.txt") == "left uncommitted"
    assert git(root, "show", "main:feature.txt") == "feature, edited by hand"
    assert status(path) == ""
    assert git(root, "diff", "--name-only", "HEAD") == ""  # the main checkout moved with main


def test_leftovers_that_cannot_land_stay_committed_on_the_branch_and_the_worktree_is_kept(
    root: Path, trees: Worktrees,
) -> None:
    path = trees.create_for("T-1")
    tip = commit_file(path, "feature.txt", "feature\n")
    (path / "notes.txt").write_text("left uncommitted in the worktree\n")
    # The user's own uncommitted file in the main checkout is in the way of
    # the leftovers (not of the branch's committed work).
    (root / "notes.txt").write_text("the user's own notes\n")
    looked = trees.look_for_uncommitted("T-1")
    assert looked is not None

    landed = trees.land("T-1", "merge T-1", looked=looked)

    assert landed.sha == tip == sha(root, "main")
    assert landed.kept is not None and "did not land on main" in landed.kept
    branch_tip = sha(root, "factory/T-1")
    assert branch_tip != tip and git(root, "show", f"{branch_tip}:notes.txt") == "left uncommitted in the worktree"
    assert (root / "notes.txt").read_text() == "the user's own notes\n"
    assert status(path) == ""
