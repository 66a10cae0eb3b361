"""Workspaces: one git worktree and one branch per task, and landing a task's
branch on the base branch.

``Worktrees`` owns everything under ``<root>/.factory/worktrees/`` and every
``factory/<task_id>`` branch: creating a worktree for a task (and its set-up:
files copied in, a command run), committing what an agent left behind,
measuring and showing its diff against the base branch, merging it, removing
it, and listing what is there (including worktrees that no task owns any
more, and folders or registrations that lost their other half).

Rules it keeps (issue 3 §2):

* Work in a worktree is never deleted uncommitted: ``remove`` and ``merge``
  commit leftovers to the task branch first, and ``git worktree remove`` runs
  without ``--force`` so that git itself double-checks.
* The user's main checkout only ever sees a fast-forward made by
  ``git merge --ff-only``, which git refuses if it would overwrite the user's
  uncommitted changes. Every risky step (a merge commit, a conflict) happens in
  the task's own worktree.
* Every failure a user can cause is a ``FactoryError`` with one line of text;
  git's multi-line complaints are boiled down to the line that matters.
* A task never takes over a branch or worktree that its plan did not make
  (issue 6 §7): ``prepare_for`` is told whether the plan made the branch
  before, and refuses someone else's work with ``BranchCollision``.
* Landing retries when the base branch moved under it (another approval, the
  user's own commit): the base is read again and the merge made again.
* A worktree with initialised submodules is removed only when no submodule
  holds uncommitted changes or commits that exist nowhere else; removing it
  deletes the submodules' repositories with it.

All git runs through GitPython (``git.Git``/``git.Repo``) as argv lists, never
a shell string. Cheap facts (does a ref exist, is a folder a registered
worktree, which branch is checked out where) are read from the files that
gitrepository-layout(5) documents instead of spawning git, because the engine
pays for every process per task.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal, overload

from factory_tui.backends.aside import Aside
from factory_tui.backends.base import BRANCH_PREFIX, task_branch
from factory_tui.backends.git_objects import descends_through_loose_commits
from factory_tui.backends.locks import worktree_admin
from factory_tui.backends.loose_refs import delete_loose_branch
from factory_tui.config import FactoryConfig
from factory_tui.errors import (
    ConfigError,
    FactoryError,
    InvalidInput,
    NotAGitRepository,
)
from factory_tui.model import DiffStat, FileDiff

WORKTREES_SUBDIR = Path(".factory") / "worktrees"
MERGE_MODES = ("ff", "merge")

# Used only when the repository has no identity of its own: a commit must
# never fail (and work never stay uncommitted) because user.email is unset.
FALLBACK_NAME = "factory-tui"
FALLBACK_EMAIL = "factory@localhost"

# A task id becomes a folder name and part of a branch name, so it must be
# safe as both: no slashes, no "..", nothing git's ref rules refuse.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# What git says when it has no identity to commit with (GitPython runs git
# with LC_ALL=C, so these are stable English texts).
_IDENTITY_HINTS = ("identity unknown", "empty ident name", "unable to auto-detect email")

# Options for every diff we parse or show: the user's config must not add
# colour, external diff tools or text conversion to what we read.
_DIFF_OPTIONS = ("--no-color", "--no-ext-diff", "--no-textconv", "-M")

_NO_OPTIONAL_LOCKS = {"GIT_OPTIONAL_LOCKS": "0"}

# git reads at most this much of a file to decide whether it is binary.
_BINARY_SNIFF = 8000

# What `git commit` says when there is nothing to commit: "nothing to commit",
# "nothing added to commit" and, when only a submodule's own files changed,
# "no changes added to commit".
_NOTHING_TO_COMMIT = ("nothing to commit", "nothing added to commit", "no changes added to commit")

# A merge whose base branch moved meanwhile is made again on the new base;
# this many times in a row at most (each time somebody else landed first).
MERGE_ATTEMPTS = 5

_GITLINK_MODE = "160000"


class MergeRefused(FactoryError):
    """The merge could not be done safely (for instance it would overwrite the
    user's uncommitted changes in the main checkout); nothing was changed and
    the task can stay in review."""


class BranchCollision(FactoryError):
    """A task's branch or worktree exists with work its plan did not make
    (an earlier plan's, or someone's own): it is never taken over."""


class _BaseMoved(Exception):
    """The base branch moved between reading it and landing on it; nothing
    was landed, and the merge is to be made again on the new base."""


class MergeConflict(FactoryError):
    """The task branch conflicts with the base branch. The merge was aborted:
    the branch and the main checkout are exactly as before."""

    def __init__(self, message: str, files: Sequence[str]) -> None:
        super().__init__(message)
        self.files = list(files)


class MergeStatus(StrEnum):
    """What a dry-run merge of a task's branch into the base branch found."""

    CLEAN = "clean"            # it would merge without a conflict
    CONFLICTS = "conflicts"    # it would conflict, in ``files``
    NOTHING = "nothing"        # no branch, or nothing on it the base lacks
    ERROR = "error"            # git could not tell (``message`` says why)
    UNKNOWN = "unknown"        # this git is older than 2.38 (no merge-tree --write-tree)


# ``git status`` of a worktree running in a thread of its own; its answer
# (or the error it raised) waits in ``result``.
UncommittedLook = Aside[bool]


@dataclass(frozen=True, slots=True)
class MergeCheck:
    """Whether a task's branch still merges cleanly into the base branch,
    as its commits stand (work not yet committed in the worktree is not
    looked at): ``base`` and ``head`` are the commits compared."""

    status: MergeStatus
    files: tuple[str, ...] = ()
    message: str = ""
    base: str | None = None
    head: str | None = None
    # A clean merge that is a fast-forward (the base has not moved on).
    fast_forward: bool = False

    @property
    def text(self) -> str:
        """One short phrase for a row: ``merges cleanly``, ``conflicts in
        a.py, b.py``, ``nothing to merge``."""
        if self.status is MergeStatus.CLEAN:
            return "merges cleanly" + (" (fast-forward)" if self.fast_forward else "")
        if self.status is MergeStatus.CONFLICTS:
            shown = ", ".join(self.files[:3]) + (f" and {len(self.files) - 3} more" if len(self.files) > 3 else "")
            return f"conflicts in {shown}"
        if self.status is MergeStatus.NOTHING:
            return "nothing to merge"
        if self.status is MergeStatus.UNKNOWN:
            return "not checked (git 2.38 or later checks it)"
        return f"cannot check: {self.message}"

    def to_json(self) -> dict:
        return {
            "status": self.status.value, "files": list(self.files), "message": self.message or None,
            "base": self.base, "head": self.head, "fast_forward": self.fast_forward, "text": self.text,
        }


# `git merge-tree --write-tree` (a merge without a worktree or index) came in 2.38.
MERGE_TREE_VERSION = (2, 38)
# Dry-run results kept per (base, branch) commit pair: the answer for two
# commits never changes, so a console asking every few seconds pays for git
# only when a branch or the base moved.
MERGE_CHECK_CACHE = 512
# A conflict marker at the start of a line, as git writes them
# ("<<<<<<< ours", ">>>>>>> theirs"); "=======" alone is often plain text.
_CONFLICT_MARKER = re.compile(rb"^(?:<{7}|>{7})(?: |$)", re.MULTILINE)
# Files larger than this are not searched for markers (git does not merge
# what it takes for binary anyway).
MARKER_SCAN_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Landed:
    """A task branch landed on the base branch (``Worktrees.land``): the
    base branch's new commit, and, when the task's worktree must stay
    where it is after all, why (``kept``): the look for uncommitted work
    in it failed, or the work found there could not land with the rest.
    That work is never lost either way: it is in the worktree, or
    committed to the task's branch."""

    sha: str
    kept: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A task's worktree, ready for a run. ``start`` is the base commit a
    new branch was made at (for the log to record as the plan's own), or
    None when an existing branch (or worktree) of the plan was reused."""

    path: Path
    start: str | None


@dataclass(slots=True)
class WorktreeInfo:
    task_id: str | None
    path: Path
    branch: str | None
    exists: bool
    registered: bool


@dataclass(slots=True)
class _DiffScope:
    """One diff's settings: where git runs, the commit it starts from, the
    commit it ends at (None: the working tree) and its environment."""

    owner: Worktrees
    task_id: str
    where: Path
    since: str
    until: str | None
    env: dict[str, str] | None

    def diff(self, *options: str) -> bytes:
        ends = [self.since] if self.until is None else [self.since, self.until]
        status, out, err = self.owner._run(
            self.where, "diff", *_DIFF_OPTIONS, *options, *ends,
            raw=True, read_only=True, env=self.env,
        )
        if status != 0:
            raise FactoryError(f"cannot diff {self.task_id}: {_one_line(_text(err))}")
        return out

    def untracked(self) -> list[str]:
        if self.until is not None:
            return []  # a branch has no untracked files
        status, out, err = self.owner._run(
            self.where, "ls-files", "--others", "--exclude-standard", "-z", raw=True,
            read_only=True,
        )
        if status != 0:
            raise FactoryError(f"cannot list new files of {self.task_id}: {_one_line(_text(err))}")
        return [name for name in _split_z(out) if name]


# A commit's full id (only those name one commit for good: a ref or an
# abbreviation may come to mean another).
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# Answers about ancestry kept per Worktrees (a few bytes each).
ANCESTRY_KEPT = 4096

class Worktrees:
    """The task worktrees of one repository (``root`` is its main checkout)."""

    def __init__(
        self,
        root: Path,
        *,
        base_branch: str,
        merge: str = "ff",
        copy: Iterable[str] = (),
        setup: Sequence[str] | None = None,
    ) -> None:
        if merge not in MERGE_MODES:
            raise ConfigError(f"merge must be one of {', '.join(MERGE_MODES)}, not {merge!r}")
        if not base_branch or not isinstance(base_branch, str):
            raise ConfigError("base_branch must be a branch name")
        root = Path(root).expanduser()
        # GitPython costs ~0.1 s to import: it is imported where git first
        # runs (a console's first frame lists the worktrees from git's files).
        import git

        try:
            # One Repo per root, kept for the object's life: opening it reads
            # .git, and every command below reuses its git runner.
            self._repo = git.Repo(root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise NotAGitRepository(f"not a git repository: {root}") from None
        if self._repo.bare or self._repo.working_tree_dir is None:
            raise NotAGitRepository(f"{root} is a bare repository; worktrees need a main checkout")
        self.root = Path(self._repo.working_tree_dir).resolve()
        self.base_branch = base_branch
        self.merge_mode = merge
        self.copy = list(copy)
        self.setup = list(setup) if setup else None
        self.worktrees_dir = self.root / WORKTREES_SUBDIR
        self._git_dir = Path(self._repo.git_dir).resolve()
        self._common_dir = Path(self._repo.common_dir).resolve()
        # None: not known yet. Learned from the first commit that needs it,
        # so that a configured identity costs no extra git process.
        self._needs_fallback_identity: bool | None = None
        self._identity_lock = threading.Lock()
        # Two merges at once from one engine would race for the main
        # checkout's index lock; one after the other they both land.
        self._merge_lock = threading.Lock()
        self._merge_checks: dict[tuple[str, str], MergeCheck] = {}
        # The last diff stat of each task, with what it was read from (see
        # diff_stat's ``settled``).
        self._diff_stats: dict[str, tuple[tuple, DiffStat]] = {}
        # Each worktree's administrative folder, by the text of its .git
        # file: a pane's look at hundreds of worktrees resolves none again.
        self._admin_dirs: dict[Path, tuple[str, Path | None]] = {}
        # Whether one commit is an ancestor of another, by their ids: commits
        # never change, so the answer holds for good (an approval asks it
        # twice: before the operator lock and again under it).
        self._ancestry: dict[tuple[str, str], bool] = {}

    @property
    def common_dir(self) -> Path:
        """The repository's git folder that its worktrees share (``.git``
        of the main checkout): refs, and ``worktrees/<name>/`` per worktree."""
        return self._common_dir

    @classmethod
    def for_config(cls, root: Path, config: FactoryConfig) -> Worktrees:
        """The worktrees of the base at ``root`` as its factory.toml says."""
        return cls(
            root,
            base_branch=config.base_branch,
            merge=config.merge,
            copy=config.worktree_copy,
            setup=config.worktree_setup,
        )

    # --- names -------------------------------------------------------------

    def path_for(self, task_id: str) -> Path:
        return self.worktrees_dir / _check_id(task_id)

    def has_branch(self, task_id: str) -> bool:
        return self._ref(f"refs/heads/{self.branch_for(task_id)}") is not None

    def branch_for(self, task_id: str) -> str:
        return task_branch(_check_id(task_id))

    def branch_head(self, task_id: str) -> str | None:
        """The commit the task's branch points at, or None (no branch)."""
        return self._ref(f"refs/heads/{self.branch_for(task_id)}")

    def base_head(self) -> str:
        """The commit the base branch points at (FactoryError: no such branch)."""
        return self._base_sha()

    def branch_has_work(self, task_id: str) -> bool:
        """Whether the task's branch holds commits the base branch lacks:
        something to review and merge."""
        sha = self.branch_head(task_id)
        return sha is not None and not self._is_ancestor(sha, self._base_sha())

    def is_worktree(self, task_id: str) -> bool:
        """Whether the task's folder is still a working worktree of this
        repository (an agent may have deleted its ``.git``)."""
        return self._admin_dir(self.path_for(task_id)) is not None

    # --- create ------------------------------------------------------------

    def create_for(self, task_id: str) -> Path:
        """The task's worktree, made if needed, for a task whose plan made
        its branch (``prepare_for(task_id, owned=True).path``)."""
        return self.prepare_for(task_id, owned=True).path

    def prepare_for(self, task_id: str, *, owned: bool) -> Prepared:
        """The task's worktree, made if needed.

        ``owned``: this plan's log recorded making the task's branch before.
        Then a worktree that is there is reused as it is, and an existing
        branch (a re-queued task) gets a worktree again with its commits.
        Otherwise an existing branch with commits that are not on the base
        branch, or an existing worktree holding any work, belongs to someone
        else: ``BranchCollision``, and nothing is touched. A branch with no
        commits of its own (ours, made just before a crash) is taken and
        started afresh at the base. A new branch starts at the base branch.
        Copy and set-up run only when the folder is new."""
        path = self.path_for(task_id)
        branch = self.branch_for(task_id)
        if self._admin_dir(path) is not None:
            if owned:
                return Prepared(path, None)  # a re-run: no git process at all
            self._refuse_foreign_worktree(task_id, path, branch)
            # Clean, and nothing on its branch: a leftover with no work in it.
            self._check(None, "worktree", "remove", str(path),
                        what=f"remove the empty worktree of {task_id}")
        if path.exists():
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()  # an empty leftover (a crash mid-add): nothing to keep
            else:
                raise BranchCollision(
                    f"{path} exists but is not a worktree of this repository; "
                    "move it away (it may hold work) and try again"
                )
        # Check the set-up before anything is made, so a bad config leaves no trace.
        copies = self._copy_plan()
        if path in self._registrations():
            # The folder was deleted by hand: drop git's stale record of it,
            # or `worktree add` refuses the path.
            self._check(None, "worktree", "prune", what=f"prune the stale worktree of {task_id}")
        branch_sha = self._ref(f"refs/heads/{branch}")
        start: str | None = None
        if branch_sha is not None and owned:
            # A re-queued task goes on where it left off, in the same branch.
            self._check(None, "worktree", "add", str(path), branch,
                        what=f"create the worktree for {task_id}")
        else:
            start = self._base_sha()
            if branch_sha is not None:
                self._refuse_foreign_branch(task_id, branch, start, branch_sha)
            # Start from the sha already read, not the name: a tag or a
            # remote-tracking ref of the same name cannot get in the way.
            # -B: a branch without commits of its own is moved to the base.
            self._check(None, "worktree", "add", "-B" if branch_sha else "-b", branch,
                        str(path), start, what=f"create the worktree for {task_id}")
        try:
            self._copy_in(path, copies)
            if self.setup:
                self._run_setup(path)
        except BaseException:
            # Undo a half-made worktree so that the next attempt starts clean
            # and runs the set-up again; the branch stays if it was there.
            self._discard_new_worktree(path, branch, delete_branch=branch_sha is None)
            raise
        return Prepared(path, start)

    def _refuse_foreign_branch(self, task_id: str, branch: str, base_sha: str, branch_sha: str) -> None:
        extra = self._count_commits(base_sha, branch_sha)
        if extra:
            raise BranchCollision(
                f"branch {branch} exists with {extra} commit{'s' if extra != 1 else ''} this plan "
                f"did not make (an earlier plan's?); rename it (`git branch -m {branch} old/{task_id}`) "
                f"or delete it, then re-queue {task_id}"
            )

    def _refuse_foreign_worktree(self, task_id: str, path: Path, branch: str) -> None:
        admin = self._admin_dir(path)
        head = _read_text(admin / "HEAD").strip() if admin else ""
        on_branch = head == f"ref: refs/heads/{branch}"
        base_sha = self._base_sha()
        holds_work = (
            not on_branch
            or self._is_dirty(path)
            or self._count_commits(base_sha, self._ref(f"refs/heads/{branch}") or base_sha) > 0
        )
        if holds_work:
            raise BranchCollision(
                f"a worktree for {task_id} exists at {path} with work this plan did not make "
                f"(an earlier plan's?); move it (`git worktree move {path} <elsewhere>`) and rename "
                f"its branch (`git branch -m {branch} old/{task_id}`), then re-queue {task_id}"
            )

    def _count_commits(self, base_sha: str, tip: str) -> int:
        """Commits on ``tip`` that the base does not hold."""
        if tip == base_sha:
            return 0
        out = self._check(None, "rev-list", "--count", f"{base_sha}..{tip}",
                          what=f"count the commits of {tip[:12]}")
        return int(out.strip() or 0)

    def branch_descends_from(self, task_id: str, start: str) -> bool:
        """Whether the task's branch still grows from ``start`` (the commit
        its plan made it at): False for a branch made again by someone else,
        or none at all."""
        sha = self._ref(f"refs/heads/{self.branch_for(task_id)}")
        if sha is None:
            return False
        try:
            return sha == start or self._is_ancestor(start, sha)
        except FactoryError:
            return False  # ``start`` is not a commit of this repository

    def _copy_plan(self) -> list[str]:
        plan = []
        for name in self.copy:
            relative = Path(name)
            if not name or relative.is_absolute() or ".." in relative.parts:
                raise ConfigError(
                    f"[worktree] copy: {name!r} must be a path inside the repository "
                    "(relative, without '..')"
                )
            plan.append(name)
        return plan

    def _copy_in(self, path: Path, names: list[str]) -> None:
        for name in names:
            source = self.root / name
            if not source.exists():
                continue  # missing ones are skipped: .env is often optional
            real = source.resolve()
            target = path / name
            # A symlink (in the main checkout or committed in the branch)
            # must not carry a copy to or from outside the repository.
            if not real.is_relative_to(self.root) or not target.parent.resolve().is_relative_to(path):
                raise ConfigError(f"[worktree] copy: {name!r} leads outside the repository; refused")
            if target.exists() or target.is_symlink():
                continue  # the branch has its own version: never overwrite it
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if real.is_dir():
                    shutil.copytree(real, target, symlinks=True)
                else:
                    shutil.copy2(real, target)
            except OSError as error:
                raise FactoryError(
                    f"cannot copy {name} into {path}: {error.strerror or error}"
                ) from None

    def _run_setup(self, path: Path) -> None:
        argv = self.setup or []
        shown = shlex.join(argv)
        try:
            result = subprocess.run(
                argv,
                cwd=path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=False,
            )
        except OSError as error:
            raise FactoryError(
                f"setup command `{shown}` could not start: {error.strerror or error}"
            ) from None
        if result.returncode != 0:
            last = _last_line(result.stdout.decode("utf-8", "replace"))
            tail = f": {last}" if last else ""
            how = (
                f"was killed by signal {-result.returncode}"
                if result.returncode < 0
                else f"failed with exit status {result.returncode}"
            )
            raise FactoryError(f"setup command `{shown}` {how} in {path}{tail}")

    def _discard_new_worktree(self, path: Path, branch: str, *, delete_branch: bool) -> None:
        # Best effort on an error path: the original error is what the user sees.
        self._run(None, "worktree", "remove", "--force", str(path))
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            self._run(None, "worktree", "prune")
        if delete_branch:
            self._run(None, "branch", "-D", branch)

    # --- commit ------------------------------------------------------------

    def commit_all(self, task_id: str, message: str) -> bool:
        """Stage everything in the task's worktree (new, changed and deleted
        files) and commit it. True if a commit was made, False if there was
        nothing to commit."""
        path = self._existing_worktree(task_id)
        return self._commit_all(path, message)

    def commit_all_counted(self, task_id: str, message: str, since: str) -> tuple[bool, bytes | None]:
        """``commit_all``, and while the commit is made (git, in a thread of
        its own) the ``--numstat -z --no-renames`` of what it commits against
        ``since``: the staged work, which is the commit's tree (HEAD's, when
        there was nothing to commit). None in its place when that diff failed.
        (git reads the attributes that say what is binary from the task's
        worktree here.)"""
        path = self._existing_worktree(task_id)
        self._check(path, "add", "-A", what=f"stage the work in {path}")
        counting = Aside(lambda: self._run(
            path, "diff", "--cached", "--numstat", "-z", "--no-renames", "--no-color", "--no-ext-diff", since,
            raw=True, read_only=True), name="numstat")
        try:
            committed = self._commit_staged(path, message)
        finally:
            status, out, _ = counting.result()
        return committed, (out if status == 0 else None)

    def _commit_all(self, path: Path, message: str) -> bool:
        self._check(path, "add", "-A", what=f"stage the work in {path}")
        return self._commit_staged(path, message)

    def _commit_staged(self, path: Path, message: str) -> bool:
        # `commit` itself finds out whether there is anything to commit: one
        # process instead of a status or diff check first. Hooks are skipped
        # so that a hook can never keep work uncommitted.
        status, out, err = self._commit(path, "commit", "-q", "--no-verify", "-m", message)
        if status == 0:
            return True
        if any(phrase in out for phrase in _NOTHING_TO_COMMIT):
            return False
        raise FactoryError(f"cannot commit the work in {path}: {_one_line(err or out)}")

    def _is_dirty(self, path: Path) -> bool:
        """Anything to commit: changed, deleted or untracked (not ignored) files."""
        status, out, err = self._run(path, "status", "--porcelain", "--untracked-files=normal",
                                     read_only=True)
        if status != 0:
            raise FactoryError(f"cannot read the state of {path}: {_one_line(err)}")
        return bool(out.strip())

    def _commit(self, path: Path, *args: str) -> tuple[int, str, str]:
        """Run a command that makes a commit (commit, merge) with the
        repository's identity, or the fallback one when it has none."""
        if self._needs_fallback_identity:
            return self._run(path, *args, config=_fallback_identity())
        status, out, err = self._run(path, *args)
        if status != 0 and any(hint in err for hint in _IDENTITY_HINTS):
            # git checks the identity before it changes anything, so the
            # same command can simply run again.
            with self._identity_lock:
                self._needs_fallback_identity = True
            return self._run(path, *args, config=_fallback_identity())
        if status == 0 and self._needs_fallback_identity is None:
            with self._identity_lock:
                self._needs_fallback_identity = False
        return status, out, err

    # --- diff --------------------------------------------------------------

    def diff_stat(self, task_id: str, *, settled: bool = False) -> DiffStat:
        """Files changed and lines added and removed in the task's worktree
        (committed, uncommitted and untracked) since it left the base branch.

        ``settled`` says nobody is writing in the worktree (no agent runs
        there): the figure of an earlier call is then reused while the
        branch, the worktree's HEAD and index and the base branch are as they
        were, so that a pane scanning every worktree every few seconds runs
        git only for the worktrees that are at work. (A file edited by hand
        without ``git add`` is seen by the next call that is not settled.)"""
        # Read before the diff: a change made while git runs makes the next
        # look differ, never a stale figure pass for a new one.
        key = self._stat_key(task_id)
        known = self._diff_stats.get(task_id)
        if settled and known is not None and known[0] == key:
            return DiffStat(known[1].files, known[1].added, known[1].removed)
        stat = self._diff_stat(task_id)
        if len(self._diff_stats) >= MERGE_CHECK_CACHE:
            self._diff_stats.clear()
        self._diff_stats[task_id] = (key, DiffStat(stat.files, stat.added, stat.removed))
        return stat

    def _stat_key(self, task_id: str) -> tuple:
        """What a worktree's diff stat is read from, found without running
        git: the refs' and the administrative folder's files."""
        path = self.path_for(task_id)
        pointer = _read_text(path / ".git")
        cached = self._admin_dirs.get(path)
        if cached is not None and cached[0] == pointer:
            admin = cached[1]
        else:
            admin = self._admin_dir(path)
            if len(self._admin_dirs) >= MERGE_CHECK_CACHE:
                self._admin_dirs.clear()
            self._admin_dirs[path] = (pointer, admin)
        index = None
        head = None
        if admin is not None:
            head = _read_text(admin / "HEAD")
            try:
                found = (admin / "index").stat()
                index = (found.st_mtime_ns, found.st_size, found.st_ino)
            except OSError:
                pass
        return (self._ref(f"refs/heads/{self.base_branch}"), self.branch_head(task_id), head, index)

    def _diff_stat(self, task_id: str) -> DiffStat:
        with self._diff_scope(task_id) as scope:
            out = scope.diff("--numstat", "-z")
            stat = DiffStat(0, 0, 0)
            for added, removed, _ in _parse_numstat(_split_z(out)):
                stat.files += 1
                stat.added += added
                stat.removed += removed
            for name in scope.untracked():
                data = _read_bytes(scope.where / name)
                stat.files += 1
                stat.added += 0 if _is_binary(data) else _count_lines(data)
        return stat

    def diff(self, task_id: str) -> list[FileDiff]:
        """The same range as ``diff_stat``, per file, with a unified patch
        each; untracked files are shown as added."""
        with self._diff_scope(task_id) as scope:
            entries = _parse_raw_numstat(_split_z(scope.diff("--raw", "--numstat", "-z")))
            # Both listings come from the same diff queue, so the n-th patch
            # belongs to the n-th entry.
            patches = _split_patches(_text(scope.diff())) if entries else []
            files = [
                FileDiff(
                    path=path,
                    status=_STATUS_NAMES.get(letter, "modified"),
                    patch=patches[index] if index < len(patches) else "",
                    added=added,
                    removed=removed,
                )
                for index, (path, letter, added, removed) in enumerate(entries)
            ]
            files.extend(_untracked_diff(scope.where, name) for name in scope.untracked())
        files.sort(key=lambda item: item.path)
        return files

    @contextmanager
    def _diff_scope(self, task_id: str) -> Iterator[_DiffScope]:
        """What a diff of the task compares: the worktree's files against the
        merge-base with the base branch, or, when the folder was deleted by
        hand, what the branch holds."""
        path = self.path_for(task_id)
        branch = self.branch_for(task_id)
        base_ref = f"refs/heads/{self.base_branch}"
        self._base_sha()  # a clear error when the base branch is missing
        admin = self._admin_dir(path)
        if admin is None:
            branch_ref = f"refs/heads/{branch}"
            if self._ref(branch_ref) is None:
                raise FactoryError(f"{task_id} has no worktree and no branch {branch}")
            since = self._merge_base(None, base_ref, branch_ref)
            yield _DiffScope(self, task_id, self.root, since, branch_ref, None)
            return
        since = self._merge_base(path, base_ref, "HEAD")
        # `git diff` against the working tree refreshes the index and writes
        # it back, holding index.lock meanwhile (GIT_OPTIONAL_LOCKS does not
        # stop that). An agent committing at that moment would fail, so the
        # diff reads a scratch copy of the index instead of the real one.
        with tempfile.TemporaryDirectory(prefix="factory-diff-") as scratch:
            index = Path(scratch) / "index"
            try:
                shutil.copyfile(admin / "index", index)
            except FileNotFoundError:
                pass  # no index yet: git treats a missing one as empty
            yield _DiffScope(self, task_id, path, since, None, {"GIT_INDEX_FILE": str(index)})

    def _merge_base(self, where: Path | None, one: str, other: str) -> str:
        status, out, err = self._run(where, "merge-base", one, other, read_only=True)
        if status != 0 or not out:
            raise FactoryError(
                f"cannot find where {other} left {self.base_branch}: "
                f"{_one_line(err) or 'they have no common history'}"
            )
        return out.strip()

    # --- merge -------------------------------------------------------------

    def look_for_uncommitted(self, task_id: str) -> UncommittedLook | None:
        """Start asking git whether the task's worktree holds work not yet
        committed (its own thread), for ``merge`` to take as ``looked``:
        the caller gathers what it needs meanwhile instead of waiting for
        git after it. None when the task has no worktree."""
        path = self.path_for(task_id)
        if self._admin_dir(path) is None:
            return None
        return Aside(lambda: self._is_dirty(path), name="uncommitted-look")

    def merge(self, task_id: str, message: str, *, check: Callable[[str, str], str | None] | None = None,
              looked: UncommittedLook | None = None) -> str:
        """``land``, for a caller that needs only the base branch's new commit."""
        return self.land(task_id, message, check=check, looked=looked).sha

    def land(self, task_id: str, message: str, *, check: Callable[[str, str], str | None] | None = None,
             looked: UncommittedLook | None = None) -> Landed:
        """Land the task branch on the base branch and return the base
        branch's new sha. Fast-forward when allowed and possible, else a merge
        commit made in the task's worktree; the base branch then moves by a
        fast-forward (or a compare-and-swap when nobody has it checked out).

        When the base branch moves while the merge is made (another
        approval landed first, the user committed), nothing is landed and
        the merge is made again on the new base, a few times at most.

        ``check(merge_commit, base_sha)``, when given, is called with a merge
        commit made in the task's worktree before it lands (not for a
        fast-forward: that lands the branch head as it is); whatever it
        raises stops the landing, the base branch and the task's branch
        untouched. It may return another commit with the same tree and
        parents (the one it tested), which then lands instead.

        ``looked``: the answer of ``look_for_uncommitted``, started by the
        caller under the same operator lock, taken instead of asking git
        again (on the first try only: a later one looks afresh). In ``ff``
        mode with the base branch checked out, the fast-forward is made
        while git still looks (it does not touch the task's worktree), and
        work found left uncommitted is committed then and landed by a
        second fast-forward: the base branch ends where committing it first
        would have put it. Should that second step fail (or the look
        itself), the branch's committed work has landed and ``kept`` says
        why the worktree must stay.

        Raises MergeConflict (branch and main checkout unchanged) or
        MergeRefused (nothing changed at all)."""
        with self._merge_lock:
            for _ in range(MERGE_ATTEMPTS):
                try:
                    return self._merge(task_id, message, check, looked)
                except _BaseMoved:
                    looked = None
                    continue
        raise MergeRefused(
            f"{self.base_branch} kept moving while {task_id} was being merged; nothing changed, "
            "try again"
        )

    def _merge(self, task_id: str, message: str, check: Callable[[str, str], str | None] | None = None,
               looked: UncommittedLook | None = None) -> Landed:
        path = self.path_for(task_id)
        branch = self.branch_for(task_id)
        branch_ref = f"refs/heads/{branch}"
        base_sha = self._base_sha()
        admin = self._admin_dir(path)
        # The look for uncommitted work, when its answer can wait until
        # after a fast-forward (see ``land``).
        pending: UncommittedLook | None = None
        if admin is not None:
            head = _read_text(admin / "HEAD").strip()
            if head != f"ref: {branch_ref}":
                raise MergeRefused(
                    f"the worktree of {task_id} is not on its branch {branch} "
                    f"(run `git -C {path} checkout {branch}` after looking at it); nothing merged"
                )
            # Work the agent left uncommitted belongs in the merge. It was
            # usually committed when the agent finished, so look first: one
            # `status` costs less than an `add -A` plus an empty `commit`.
            if looked is not None and self.merge_mode == "ff":
                pending = looked
            elif looked.result() if looked is not None else self._is_dirty(path):
                self._commit_all(path, f"{task_id}: work left uncommitted before the merge")
        branch_sha = self._ref(branch_ref)
        if branch_sha is None:
            raise FactoryError(f"{task_id} has no branch {branch} to merge")
        checkout = self._checked_out_at(f"refs/heads/{self.base_branch}") if self.merge_mode == "ff" else None
        if pending is not None and (branch_sha == base_sha or checkout is None):
            # Nothing to fast-forward while git looks: its answer first.
            if pending.result():
                self._commit_all(path, f"{task_id}: work left uncommitted before the merge")
                branch_sha = self._ref(branch_ref) or branch_sha
            pending = None
        if branch_sha == base_sha:
            return Landed(base_sha)  # nothing to land

        if self.merge_mode == "ff":
            if checkout is not None:
                # Try the fast-forward first: when it works (the usual case)
                # no ancestry check is needed, and git refuses it without
                # touching a file when it cannot be done.
                status, out, err = self._fast_forward(checkout, branch_sha)
                if status == 0:
                    # The base may have moved to a descendant of the branch
                    # meanwhile ("already up to date"): say where it is.
                    landed = self._base_sha()
                    if pending is None:
                        return Landed(landed)
                    return self._land_left_work(task_id, path, checkout, landed, pending)
                self._raise_if_moved(base_sha)
                if self._is_ancestor(base_sha, branch_sha):
                    # It was a fast-forward, so git refused for another reason:
                    # the user's uncommitted changes are in the way.
                    raise MergeRefused(
                        f"cannot fast-forward {self.base_branch} in {checkout}; nothing changed: "
                        f"{_one_line(err or out)}"
                    )
                if pending is not None and pending.result():
                    # A merge commit is made in the worktree: what is left
                    # there is committed to the branch first.
                    self._commit_all(path, f"{task_id}: work left uncommitted before the merge")
            elif self._is_ancestor(base_sha, branch_sha):
                self._land(base_sha, branch_sha, message)
                return Landed(branch_sha)

        # A merge commit is needed. It is made in the task's worktree on a
        # detached HEAD at the base, so its first parent is the base branch
        # and the main checkout is not touched until the result is ready.
        if admin is None:
            # The folder was deleted by hand: the branch still holds the work.
            self._readd(path, branch)
        self._check(path, "checkout", "-q", "--detach", base_sha,
                    what=f"prepare the merge of {task_id}")
        try:
            status, out, err = self._commit(path, "merge", "--no-ff", "--no-verify", "-q",
                                            "-m", message, branch_ref)
            if status != 0:
                self._raise_failed_merge(path, task_id, err or out)
            merged_sha = self._detached_head(path)
            if merged_sha != base_sha:  # equal: the base already held the branch
                if check is not None:
                    # The check may name an equal commit it tested (same
                    # tree, same parents): that one lands, so the base
                    # branch holds the very commit the tests ran on.
                    tested = check(merged_sha, base_sha)
                    if tested and tested != merged_sha:
                        self._check(path, "checkout", "-q", "--detach", tested,
                                    what=f"take the checked merge of {task_id}")
                        merged_sha = tested
                self._land(base_sha, merged_sha, message)
        except BaseException:
            # Back to the branch exactly as it was; the merge commit (if any)
            # is left dangling and git will collect it.
            self._run(path, "checkout", "-q", "-f", branch)
            raise
        # Landed. Put the worktree back on its branch, moved to the merge
        # commit (the branch is now merged, so `remove` may delete it)
        # without touching a file: HEAD is that commit already. This must not
        # raise: the base branch has already moved.
        self._run(path, "checkout", "-q", "-B", branch)
        return Landed(merged_sha)

    def _fast_forward(self, checkout: Path, commit: str) -> tuple[int, str, str]:
        return self._run(checkout, "merge", "--ff-only", "--no-autostash", "-q", commit)

    def _land_left_work(self, task_id: str, path: Path, checkout: Path, landed: str,
                        looked: UncommittedLook) -> Landed:
        """After the fast-forward: the look's answer, and work it found left
        uncommitted in the worktree committed and landed by a second
        fast-forward. Whatever fails here, the branch's committed work has
        landed (``landed``), and the worktree stays (``kept`` says why)."""
        branch = self.branch_for(task_id)
        try:
            if not looked.result():
                return Landed(landed)
            self._commit_all(path, f"{task_id}: work left uncommitted before the merge")
        except FactoryError as error:
            return Landed(landed, kept=f"its worktree could not be looked at or committed ({error})")
        tip = self._ref(f"refs/heads/{branch}")
        if tip is None or tip == landed:
            return Landed(landed)
        status, out, err = self._fast_forward(checkout, tip)
        if status != 0:
            return Landed(landed, kept=(
                f"the work left uncommitted in its worktree is committed to {branch} ({tip[:10]}) but "
                f"did not land on {self.base_branch}: {_one_line(err or out)}"
            ))
        return Landed(self._base_sha())

    def _raise_if_moved(self, base_sha: str) -> None:
        """_BaseMoved if the base branch is no longer at ``base_sha``: a
        landing that failed for that reason is tried again, not refused."""
        if self._ref(f"refs/heads/{self.base_branch}") != base_sha:
            raise _BaseMoved

    def _raise_failed_merge(self, path: Path, task_id: str, output: str) -> None:
        status, names, _ = self._run(path, "diff", "--name-only", "--diff-filter=U", "-z",
                                     raw=True)
        conflicted = sorted(name for name in _split_z(names) if name) if status == 0 else []
        self._run(path, "merge", "--abort")
        if conflicted:
            raise MergeConflict(
                f"{self.branch_for(task_id)} conflicts with {self.base_branch} in "
                f"{', '.join(conflicted)}; nothing merged, the branch is unchanged",
                conflicted,
            )
        raise FactoryError(f"cannot merge {task_id}: {_one_line(output)}")

    def _land(self, old: str, new: str, message: str) -> None:
        """Move the base branch from ``old`` to ``new`` (a descendant)."""
        base_ref = f"refs/heads/{self.base_branch}"
        checkout = self._checked_out_at(base_ref)
        if checkout is None:
            # Nobody's files to protect; compare-and-swap so that a commit made
            # on the base meanwhile is never thrown away.
            status, _, err = self._run(None, "update-ref", "-m", message, base_ref, new, old)
            if status != 0:
                self._raise_if_moved(old)
                raise MergeRefused(
                    f"{self.base_branch} moved while merging; nothing changed: {_one_line(err)}"
                )
            return
        # --ff-only: git moves the files only if it can do so without touching
        # the user's uncommitted changes, and refuses otherwise. --no-autostash:
        # a configured merge.autoStash must not stash and re-apply them.
        status, out, err = self._run(checkout, "merge", "--ff-only", "--no-autostash", "-q", new)
        if status != 0:
            self._raise_if_moved(old)
            raise MergeRefused(
                f"cannot fast-forward {self.base_branch} in {checkout}; nothing changed: "
                f"{_one_line(err or out)}"
            )

    # --- before a merge: a dry run, and the base merged into the branch ------

    def merge_check(self, task_id: str) -> MergeCheck:
        """Whether the task's branch would merge cleanly into the base
        branch now, without touching a file, a ref or an index: ``git
        merge-tree --write-tree`` on the two commits (git 2.38+; older:
        UNKNOWN). Cheap enough for every review row every few seconds: the
        refs are read from their files, and git runs only when one of the
        two commits changed since the last look."""
        try:
            base = self._base_sha()
        except FactoryError as error:
            return MergeCheck(MergeStatus.ERROR, message=str(error))
        head = self.branch_head(task_id)
        if head is None:
            return MergeCheck(MergeStatus.NOTHING, message=f"no branch {self.branch_for(task_id)}", base=base)
        known = self._merge_checks.get((base, head))
        if known is not None:
            return known
        checked = self._merge_check(base, head)
        if checked.status is not MergeStatus.ERROR:
            if len(self._merge_checks) >= MERGE_CHECK_CACHE:
                self._merge_checks.clear()
            self._merge_checks[(base, head)] = checked
        return checked

    def _merge_check(self, base: str, head: str) -> MergeCheck:
        try:
            if head == base or self._is_ancestor(head, base):
                return MergeCheck(MergeStatus.NOTHING, message="the base branch holds all of it",
                                  base=base, head=head)
            if self._git_version() < MERGE_TREE_VERSION:
                return MergeCheck(MergeStatus.UNKNOWN, base=base, head=head)
            status, out, err = self._run(
                None, "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", base, head,
                raw=True, read_only=True,
            )
            fields = _split_z(out)
            tree = fields[0] if fields else ""
            if status not in (0, 1) or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", tree):
                return MergeCheck(MergeStatus.ERROR, message=_one_line(_text(err)) or f"git merge-tree exited {status}",
                                  base=base, head=head)
            if status == 0:
                return MergeCheck(MergeStatus.CLEAN, base=base, head=head,
                                  fast_forward=self._is_ancestor(base, head))
            files = tuple(dict.fromkeys(name for name in fields[1:] if name))
            return MergeCheck(MergeStatus.CONFLICTS, files=files, base=base, head=head)
        except FactoryError as error:
            return MergeCheck(MergeStatus.ERROR, message=str(error), base=base, head=head)

    def _git_version(self) -> tuple[int, ...]:
        import git

        try:
            return tuple(self._repo.git.version_info)
        except (git.GitCommandError, git.GitCommandNotFound, ValueError):
            return (0,)

    def merge_base_in(self, task_id: str, message: str) -> list[str]:
        """Merge the base branch into the task's branch, in its worktree, as
        a developer would before going on: what merges cleanly is committed;
        a conflict is left in progress, with git's markers in the files, and
        the conflicted files are returned (empty: it merged cleanly).

        Left in progress on purpose: ``git status`` then says what a
        developer sees after ``git merge main`` (the unmerged paths, and to
        fix them and commit), a coding agent knows that flow, and its
        ``git add`` and ``git commit`` make a proper merge commit with both
        parents. An agent that does not commit is no problem either: the
        engine's end-of-run commit (``add -A``, ``commit``) concludes the
        merge with whatever the files hold, and the markers left, if any,
        are then found by ``files_with_markers``."""
        path = self._existing_worktree(task_id)
        branch = self.branch_for(task_id)
        admin = self._admin_dir(path)
        head = _read_text(admin / "HEAD").strip() if admin else ""
        if head != f"ref: refs/heads/{branch}":
            raise FactoryError(
                f"the worktree of {task_id} is not on its branch {branch}; "
                f"cannot merge {self.base_branch} into it"
            )
        if self.merging(task_id):
            return self.unmerged_files(task_id)
        base = self._base_sha()
        # git refuses to merge over uncommitted changes: they are the
        # task's work, so they are committed first (as `merge` does).
        if self._is_dirty(path):
            self._commit_all(path, f"{task_id}: work left uncommitted before merging {self.base_branch}")
        status, out, err = self._commit(path, "merge", "--no-ff", "--no-verify", "-q", "-m", message, base)
        if status == 0:
            return []
        conflicted = self.unmerged_files(task_id)
        if not conflicted:
            # Not a conflict (a hook, a broken object …): nothing is left half-done.
            self._run(path, "merge", "--abort")
            raise FactoryError(f"cannot merge {self.base_branch} into {branch}: {_one_line(err or out)}")
        return conflicted

    def merging(self, task_id: str) -> bool:
        """Whether a merge is in progress in the task's worktree."""
        admin = self._admin_dir(self.path_for(task_id))
        return admin is not None and (admin / "MERGE_HEAD").is_file()

    def unmerged_files(self, task_id: str) -> list[str]:
        """The files git holds as conflicted in the task's worktree."""
        path = self._existing_worktree(task_id)
        status, names, err = self._run(path, "diff", "--name-only", "--diff-filter=U", "-z",
                                       raw=True, read_only=True)
        if status != 0:
            raise FactoryError(f"cannot list the conflicts in {path}: {_one_line(_text(err))}")
        return sorted(dict.fromkeys(name for name in _split_z(names) if name))

    def files_with_markers(self, task_id: str, files: Iterable[str]) -> list[str]:
        """Which of ``files`` (paths in the task's worktree) still hold a
        conflict marker (a line starting ``<<<<<<<`` or ``>>>>>>>``). A file
        that is gone, or outside the worktree, holds none."""
        path = self.path_for(task_id)
        root = path.resolve()
        found = []
        for name in files:
            target = path / name
            try:
                if not target.resolve().is_relative_to(root) or not target.is_file():
                    continue
                with open(target, "rb") as handle:
                    data = handle.read(MARKER_SCAN_BYTES)
            except OSError:
                continue
            if _CONFLICT_MARKER.search(data):
                found.append(name)
        return found

    # --- remove ------------------------------------------------------------

    def remove(self, task_id: str, *, delete_branch: bool = False) -> None:
        """Remove the task's worktree after committing what is left in it.
        With ``delete_branch``, the branch goes too, but only if the base
        branch holds all of it; otherwise it is kept."""
        path = self.path_for(task_id)
        branch = self.branch_for(task_id)
        admin = self._admin_dir(path)
        if admin is not None:
            head = _read_text(admin / "HEAD").strip()
            if not head.startswith("ref: "):
                # Commits on a detached HEAD would be lost with the worktree.
                raise FactoryError(
                    f"the worktree of {task_id} has a detached HEAD; check out {branch} "
                    "in it first; nothing was removed"
                )
            # Without --force git refuses a worktree with uncommitted or
            # untracked files, so trying first costs nothing when it is clean
            # (the usual case after a merge) and can never lose work.
            status, _, err = self._run(None, "worktree", "remove", str(path))
            if status != 0:
                if not path.exists():
                    self._run(None, "worktree", "prune")  # removed all but the record
                elif "submodules" in err:
                    self._remove_with_submodules(task_id, path, admin)
                elif not self._commit_all(path, f"{task_id}: work left in the worktree"):
                    raise FactoryError(f"cannot remove the worktree of {task_id}: {_one_line(err)}")
                else:
                    self._check(None, "worktree", "remove", str(path),
                                what=f"remove the worktree of {task_id}")
        elif path.exists():
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            else:
                raise FactoryError(
                    f"{path} is not a worktree of this repository; it was left as it is "
                    "(delete it by hand if it holds nothing you need)"
                )
        elif path in self._registrations():
            # The folder was deleted by hand: only git's record of it is left.
            self._check(None, "worktree", "prune", what=f"prune the worktree of {task_id}")
        if delete_branch:
            self._delete_branch_if_merged(branch)

    def _remove_with_submodules(self, task_id: str, path: Path, admin: Path) -> None:
        """git refuses to remove a worktree with initialised submodules
        unless forced, because their repositories (in the worktree's
        administrative folder) go with it. Forcing is safe once no
        submodule holds uncommitted changes or commits that exist nowhere
        else, and the superproject's own leftovers are committed."""
        kept = "nothing was removed"
        for name in self._live_submodules(path):
            where = path / name
            if self._is_dirty(where):
                raise FactoryError(
                    f"cannot remove the worktree of {task_id}: its submodule {name} has uncommitted "
                    f"changes; commit and push them (or discard them) first; {kept}"
                )
            self._refuse_unique_commits(task_id, where, f"its submodule {name}", kept)
        for gitdir in _module_gitdirs(admin / "modules"):
            # Repositories of submodules not checked out any more go too.
            self._refuse_unique_commits(
                task_id, gitdir, f"the submodule repository {gitdir}", kept,
                env={"GIT_DIR": str(gitdir), "GIT_WORK_TREE": str(gitdir)},
            )
        self._commit_all(path, f"{task_id}: work left in the worktree")
        if self._is_dirty(path):
            raise FactoryError(f"cannot remove the worktree of {task_id}: it still has changes; {kept}")
        # One --force: submodules and ignored files go; a locked worktree
        # (it takes --force twice) is still refused.
        self._check(None, "worktree", "remove", "--force", str(path),
                    what=f"remove the worktree of {task_id}")

    def _live_submodules(self, path: Path) -> list[str]:
        """Checked-out submodules (and repositories added as gitlinks) in the
        checkout at ``path``, nested ones included, as paths relative to it."""
        status, out, err = self._run(path, "ls-files", "--stage", "-z", raw=True, read_only=True)
        if status != 0:
            raise FactoryError(f"cannot list the submodules of {path}: {_one_line(_text(err))}")
        found = []
        for entry in _split_z(out):
            mode, _, rest = entry.partition(" ")
            name = rest.partition("\t")[2]
            if mode != _GITLINK_MODE or not name or not (path / name / ".git").exists():
                continue
            found.append(name)
            found.extend(f"{name}/{nested}" for nested in self._live_submodules(path / name))
        return found

    def _refuse_unique_commits(self, task_id: str, where: Path, what: str, kept: str,
                               env: dict[str, str] | None = None) -> None:
        """Refuse when a repository that is about to be deleted holds commits
        (on any branch, tag, stash or HEAD) that no remote-tracking branch
        holds, that is, commits that exist nowhere else."""
        status, out, err = self._run(where, "rev-list", "--count", "--all", "--not", "--remotes",
                                     read_only=True, env=env)
        if status != 0:
            raise FactoryError(
                f"cannot remove the worktree of {task_id}: cannot read {what}: {_one_line(err)}; {kept}"
            )
        unique = int(out.strip() or 0)
        if unique:
            counted = "1 commit that exists" if unique == 1 else f"{unique} commits that exist"
            raise FactoryError(
                f"cannot remove the worktree of {task_id}: {what} has {counted} nowhere else; "
                f"push {'it' if unique == 1 else 'them'} first; {kept}"
            )

    def delete_merged_branch(self, task_id: str) -> None:
        """Delete the task's branch if the base branch holds all of it
        (``remove``'s ``delete_branch``, for a worktree removed already)."""
        self._delete_branch_if_merged(self.branch_for(task_id))

    def _delete_branch_if_merged(self, branch: str) -> None:
        sha = self._ref(f"refs/heads/{branch}")
        if sha is None:
            return
        base_ref = f"refs/heads/{self.base_branch}"
        if _read_text(self._git_dir / "HEAD").strip() == f"ref: {base_ref}":
            if self._delete_merged_loose_ref(branch, sha):
                return
            # `git branch -d` judges "merged" against the main checkout's HEAD,
            # which is the base here (task branches have no upstream): git's
            # own check, in one process.
            status, out, err = self._run(None, "branch", "-d", branch)
            if status != 0 and "not fully merged" not in (err or out).lower():
                raise FactoryError(f"cannot delete {branch}: {_one_line(err or out)}")
            return
        # The main checkout is on another branch, so `-d` would ask the wrong
        # question: check against the base branch, then delete.
        base_sha = self._ref(base_ref)
        if base_sha is None or not self._is_ancestor(sha, base_sha):
            return
        self._check(None, "branch", "-D", branch, what=f"delete {branch}")

    def _delete_merged_loose_ref(self, branch: str, sha: str) -> bool:
        """Delete the branch without a git process when it is known merged
        without one (at the base branch's commit, or below it through loose
        commits) and its ref is a plain loose file (backends/loose_refs.py
        says when); False: ask git."""
        base_sha = self._ref(f"refs/heads/{self.base_branch}")
        if base_sha is None or not _FULL_SHA.fullmatch(sha):
            return False
        if sha != base_sha and not self.descends_without_git(sha, base_sha):
            return False
        # Every checkout's folder, those being made or removed too.
        registry = self._common_dir / "worktrees"
        try:
            admins = [self._common_dir, *(folder for folder in registry.iterdir() if folder.is_dir())]
        except OSError:
            admins = [self._common_dir]
        return delete_loose_branch(self._common_dir, branch, sha, admins)

    # --- list --------------------------------------------------------------

    def list(self) -> list[WorktreeInfo]:
        """Every task worktree: registered with git under .factory/worktrees
        or on a factory/* branch, and any folder there git does not know."""
        status, out, err = self._run(None, "worktree", "list", "--porcelain", read_only=True)
        if status != 0:
            raise FactoryError(f"cannot list worktrees: {_one_line(err)}")
        found: dict[Path, WorktreeInfo] = {}
        main = True
        for block in out.split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                key, _, value = line.partition(" ")
                fields[key] = value
            if "worktree" not in fields:
                continue
            if main:  # the first entry is the main checkout
                main = False
                continue
            path = Path(fields["worktree"])
            branch_ref = fields.get("branch")
            branch = branch_ref.removeprefix("refs/heads/") if branch_ref else None
            inside = path.parent == self.worktrees_dir
            if not inside and not (branch or "").startswith(BRANCH_PREFIX):
                continue  # the user's own worktree: not ours to show
            task_id: str | None
            if inside:
                task_id = path.name
            else:
                task_id = (branch or "").removeprefix(BRANCH_PREFIX) or None
            found[path] = WorktreeInfo(task_id, path, branch, path.is_dir(), True)
        if self.worktrees_dir.is_dir():
            for folder in self.worktrees_dir.iterdir():
                if folder.is_dir() and folder not in found:
                    found[folder] = WorktreeInfo(folder.name, folder, None, True, False)
        return sorted(found.values(), key=lambda info: (info.task_id or "", str(info.path)))

    # --- git plumbing ----------------------------------------------------------

    @overload
    def _run(
        self,
        where: Path | None,
        command: str,
        *args: str,
        config: Sequence[str] = (),
        raw: Literal[False] = False,
        read_only: bool = False,
        env: dict[str, str] | None = None,
    ) -> tuple[int, str, str]: ...

    @overload
    def _run(
        self,
        where: Path | None,
        command: str,
        *args: str,
        config: Sequence[str] = (),
        raw: Literal[True],
        read_only: bool = False,
        env: dict[str, str] | None = None,
    ) -> tuple[int, bytes, str]: ...

    def _run(
        self,
        where: Path | None,
        command: str,
        *args: str,
        config: Sequence[str] = (),
        raw: bool = False,
        read_only: bool = False,
        env: dict[str, str] | None = None,
    ) -> tuple[int, str | bytes, str]:
        """Run ``git <command> <args>`` in ``where`` (the main checkout when
        None) and return (status, stdout, stderr) without raising; ``raw``:
        stdout as bytes (stderr is text either way).

        ``read_only``: a look that must not take optional locks (the index
        lock above all), so that an agent's own git commands never trip over
        the console looking at its worktree."""
        import git

        if read_only:
            env = {**_NO_OPTIONAL_LOCKS, **(env or {})}
        if where is None and not config:
            runner = self._repo.git
        else:
            # A fresh runner per call: GitPython keeps per-call options on the
            # object, which threads must not share.
            runner = git.Git(str(where or self.root))
            # -C as well as the working directory: if the folder vanished,
            # GitPython would fall back to the process's own cwd.
            runner(C=str(where or self.root), c=list(config))
        # A change to the worktree list waits for the others (QA's clean
        # checkouts too): git does not serialise them.
        changes_worktrees = command == "worktree" and bool(args) and args[0] in ("add", "remove", "prune", "move")
        try:
            with worktree_admin(self.root) if changes_worktrees else nullcontext():
                status, out, err = getattr(runner, command.replace("-", "_"))(
                    *args,
                    with_extended_output=True,
                    with_exceptions=False,
                    stdout_as_string=not raw,
                    env=env,
                )
        except git.GitCommandNotFound:
            raise FactoryError("git is not installed (or not on PATH)") from None
        return status, out, err

    def _check(self, where: Path | None, command: str, *args: str, what: str) -> str:
        status, out, err = self._run(where, command, *args)
        if status != 0:
            raise FactoryError(f"cannot {what}: {_one_line(err or out)}")
        return out

    def _ref(self, refname: str) -> str | None:
        """The sha a ref points at, or None; read from the ref files, which
        is far cheaper than a `git rev-parse` process."""
        if (self._common_dir / "reftable").is_dir():
            status, out, _ = self._run(None, "rev-parse", "--verify", "-q", refname)
            return out.strip() if status == 0 else None
        loose = self._common_dir / refname
        text = _read_text(loose)
        if text:
            text = text.strip()
            if text.startswith("ref: "):
                return self._ref(text[5:])
            return text
        packed = _read_text(self._common_dir / "packed-refs")
        for line in packed.splitlines():
            sha, _, name = line.partition(" ")
            if name == refname and not line.startswith(("#", "^")):
                return sha
        return None

    def _base_sha(self) -> str:
        sha = self._ref(f"refs/heads/{self.base_branch}")
        if sha is None:
            raise FactoryError(
                f"the base branch {self.base_branch!r} does not exist in {self.root}"
            )
        return sha

    def _is_ancestor(self, older: str, newer: str) -> bool:
        by_id = bool(_FULL_SHA.fullmatch(older) and _FULL_SHA.fullmatch(newer))
        key = (older, newer)
        if by_id:
            known = self._ancestry.get(key)
            if known is None and descends_through_loose_commits(self._common_dir, older, newer):
                known = True  # a few fresh commits above it: read, no git process
            if known is not None:
                self._remember_ancestry(key, known)
                return known
        status, _, err = self._run(None, "merge-base", "--is-ancestor", older, newer,
                                   read_only=True)
        if status not in (0, 1):
            raise FactoryError(f"cannot compare {older[:12]} with {newer[:12]}: {_one_line(err)}")
        if by_id:
            self._remember_ancestry(key, status == 0)
        return status == 0

    def _remember_ancestry(self, key: tuple[str, str], answer: bool) -> None:
        if key not in self._ancestry and len(self._ancestry) >= ANCESTRY_KEPT:
            self._ancestry.clear()
        self._ancestry[key] = answer

    def descends_without_git(self, older: str, newer: str) -> bool:
        """True when commit ``newer`` is known, without running git, to
        descend from ``older`` (asked before, or a few loose commits above
        it); False means not known."""
        if self._ancestry.get((older, newer)):
            return True
        if _FULL_SHA.fullmatch(older) and _FULL_SHA.fullmatch(newer) and descends_through_loose_commits(
                self._common_dir, older, newer):
            self._remember_ancestry((older, newer), True)
            return True
        return False

    def _detached_head(self, path: Path) -> str:
        """The commit a detached HEAD is at: in the HEAD file itself, so no
        `git rev-parse` is needed."""
        admin = self._admin_dir(path)
        head = _read_text(admin / "HEAD").strip() if admin else ""
        if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", head):
            return head
        return self._check(path, "rev-parse", "HEAD", what=f"read HEAD in {path}").strip()

    def _existing_worktree(self, task_id: str) -> Path:
        path = self.path_for(task_id)
        if self._admin_dir(path) is None:
            raise FactoryError(f"{task_id} has no worktree at {path}")
        return path

    def _readd(self, path: Path, branch: str) -> None:
        if path in self._registrations():
            self._check(None, "worktree", "prune", what=f"prune the stale worktree at {path}")
        self._check(None, "worktree", "add", str(path), branch, what=f"re-create the worktree at {path}")

    def _admin_dir(self, path: Path) -> Path | None:
        """The worktree's administrative folder in .git/worktrees, if
        ``path`` is a live worktree of this repository."""
        text = _read_text(path / ".git")
        if not text.startswith("gitdir:"):
            return None
        admin = Path(text[len("gitdir:"):].strip())
        if not admin.is_absolute():
            admin = path / admin
        admin = admin.resolve()
        if admin.parent != self._common_dir / "worktrees" or not (admin / "HEAD").is_file():
            return None
        return admin

    def _registrations(self) -> dict[Path, Path]:
        """Registered linked worktrees: folder → administrative folder."""
        return linked_worktrees(self._common_dir)

    def _checked_out_at(self, refname: str) -> Path | None:
        """The checkout (main or linked, whose folder exists) that has
        ``refname`` as its HEAD, if any. A branch in the middle of a rebase
        (HEAD detached, the branch named in rebase-*/head-name) is refused:
        moving it would be undone, or undo our merge, when the rebase ends."""
        wanted = f"ref: {refname}"
        # The main checkout's folder is None: found only when it is needed.
        checkouts: list[tuple[Path | None, Path]] = [(None, self._common_dir)]
        checkouts += [(folder, admin) for folder, admin in self._registrations().items()
                      if folder.is_dir()]
        for folder, admin in checkouts:
            if _read_text(admin / "HEAD").strip() == wanted:
                return folder or self._main_checkout()
            for state in ("rebase-merge", "rebase-apply"):
                if _read_text(admin / state / "head-name").strip() == refname:
                    raise MergeRefused(
                        f"{refname.removeprefix('refs/heads/')} is being rebased in "
                        f"{folder or self._main_checkout()}; finish or abort the rebase first, "
                        "nothing changed"
                    )
        return None

    def _main_checkout(self) -> Path:
        if self._git_dir == self._common_dir:
            return self.root
        # root is itself a linked worktree: ask git where the main one is.
        out = self._check(None, "worktree", "list", "--porcelain", what="list worktrees")
        first = out.split("\n", 1)[0]
        return Path(first.removeprefix("worktree "))


# --- helpers -------------------------------------------------------------------

_STATUS_NAMES = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed",
                 "C": "added", "T": "modified"}


def _check_id(task_id: str) -> str:
    if (
        not isinstance(task_id, str)
        or not _SAFE_ID.fullmatch(task_id)
        or ".." in task_id
        or task_id.endswith((".lock", "."))
    ):
        raise InvalidInput(f"not a usable task id for a worktree: {task_id!r}")
    return task_id


def _module_gitdirs(folder: Path) -> Iterator[Path]:
    """The submodule repositories under a ``modules`` folder of a git
    directory (names may hold slashes; nested ones sit in their parent's
    own ``modules``)."""
    if not folder.is_dir():
        return
    for current, subfolders, _ in os.walk(folder):
        here = Path(current)
        if (here / "HEAD").is_file() and (here / "objects").is_dir():
            yield here
            subfolders[:] = ["modules"] if "modules" in subfolders else []


def _fallback_identity() -> list[str]:
    return [f"user.name={FALLBACK_NAME}", f"user.email={FALLBACK_EMAIL}"]


def linked_worktrees(common: Path) -> dict[Path, Path]:
    """The linked worktrees registered in the git folder ``common``: each
    one's folder → its administrative folder, from
    ``<common>/worktrees/*/gitdir`` (gitrepository-layout(5)). One being
    made or removed (no gitdir yet) is left out, as git's own list does."""
    found: dict[Path, Path] = {}
    registry = common / "worktrees"
    if not registry.is_dir():
        return found
    for admin in sorted(registry.iterdir()):
        folder = registered_folder(admin)
        if folder is not None:
            found[folder] = admin
    return found


def registered_folder(admin: Path) -> Path | None:
    """The worktree folder an administrative folder records (its
    ``gitdir`` file names the worktree's ``.git``), or None while it is
    being made or removed."""
    text = _read_text(admin / "gitdir").strip()
    if not text:
        return None
    dot_git = Path(text)
    if not dot_git.is_absolute():  # worktree.useRelativePaths
        dot_git = admin / dot_git
    return Path(os.path.abspath(dot_git)).parent


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return ""
    except OSError:
        return ""


def _read_bytes(path: Path) -> bytes:
    try:
        if path.is_symlink():
            return os.fsencode(os.readlink(path))
        return path.read_bytes()
    except OSError:
        return b""


def _text(data: str | bytes) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _split_z(data: str | bytes) -> list[str]:
    if isinstance(data, bytes):
        data = os.fsdecode(data)
    if not data:
        return []
    return data.rstrip("\0").split("\0")


def _parse_numstat(tokens: list[str]) -> list[tuple[int, int, str]]:
    """``--numstat -z``: "added\\tremoved\\tpath" or, for a rename,
    "added\\tremoved\\t" followed by the old and new path."""
    entries = []
    position = 0
    while position < len(tokens):
        added, removed, path = (tokens[position].split("\t", 2) + ["", ""])[:3]
        position += 1
        if not path:  # rename or copy: two more tokens
            path = tokens[position + 1] if position + 1 < len(tokens) else ""
            position += 2
        entries.append((_count(added), _count(removed), path))
    return entries


def _parse_raw_numstat(tokens: list[str]) -> list[tuple[str, str, int, int]]:
    """``--raw --numstat -z``: first one raw record per file (":modes shas
    STATUS", then one or two paths), then the numstat records in the same
    order. Returns (path, status letter, added, removed)."""
    raw: list[tuple[str, str]] = []
    position = 0
    while position < len(tokens) and tokens[position].startswith(":"):
        letter = tokens[position].split()[-1][:1]
        if letter in "RC":
            path = tokens[position + 2] if position + 2 < len(tokens) else ""
            position += 3
        else:
            path = tokens[position + 1] if position + 1 < len(tokens) else ""
            position += 2
        raw.append((path, letter))
    counts = _parse_numstat(tokens[position:])
    entries = []
    for index, (path, letter) in enumerate(raw):
        added, removed = counts[index][:2] if index < len(counts) else (0, 0)
        entries.append((path, letter, added, removed))
    return entries


def _count(text: str) -> int:
    return int(text) if text.isdigit() else 0  # "-" for a binary file


def _split_patches(text: str) -> list[str]:
    """One section per file. A content line can never start with "diff --git"
    (it starts with " ", "+" or "-"), so the header marks every boundary."""
    sections: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("diff --git ") and current:
            sections.append("".join(current))
            current = []
        current.append(line)
    if current:
        sections.append("".join(current))
    return sections


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:_BINARY_SNIFF]


def _count_lines(data: bytes) -> int:
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _untracked_diff(where: Path, name: str) -> FileDiff:
    """A new file's patch, written the way `git diff` writes one."""
    full = where / name
    data = _read_bytes(full)
    if full.is_symlink():
        mode = "120000"
    elif os.access(full, os.X_OK):
        mode = "100755"
    else:
        mode = "100644"
    header = f"diff --git a/{name} b/{name}\nnew file mode {mode}\n"
    if _is_binary(data):
        return FileDiff(name, "added", header + f"Binary files /dev/null and b/{name} differ\n", 0, 0)
    # Split on "\n" only, as git does (str.splitlines also splits on \r, \f, …).
    lines = data.decode("utf-8", "replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    count = len(lines)
    if not count:
        return FileDiff(name, "added", header, 0, 0)
    body = "".join(f"+{line}\n" for line in lines)
    if not data.endswith(b"\n"):
        body += "\\ No newline at end of file\n"
    patch = f"{header}--- /dev/null\n+++ b/{name}\n@@ -0,0 +1{',' + str(count) if count != 1 else ''} @@\n{body}"
    return FileDiff(name, "added", patch, count, 0)


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def _one_line(text: str) -> str:
    """git's complaint in one line: the first "fatal:"/"error:" line (without
    that prefix), with any tab-indented file list that follows it joined on;
    hints and advice are dropped."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    files = [line.strip() for line in lines if line.startswith("\t")]
    messages = [line for line in lines if not line.startswith(("\t", "hint:"))]
    chosen = next(
        (line for line in messages if line.startswith(("fatal:", "error:"))),
        messages[-1] if messages else "",
    )
    for prefix in ("fatal: ", "error: "):
        chosen = chosen.removeprefix(prefix)
    chosen = chosen.strip()
    if files and chosen.endswith(":"):
        chosen = f"{chosen} {', '.join(files)}"
    return chosen or "git failed without saying why"
