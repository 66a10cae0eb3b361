"""Where a factory base lives on disk: finding ``.factory/`` from a directory,
and creating it with ``factory init``.

``init`` writes only inside ``.factory/`` (its own ``.gitignore`` keeps the
log, the runs and the worktrees out of git), so the user's files are never
touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from factory_tui.config import FactoryConfig, load_config, render_initial_config
from factory_tui.errors import BaseNotFound, FactoryError, NoCommits, NotAGitRepository

FACTORY_DIR = ".factory"
# A task's branch is BRANCH_PREFIX + its id (backends/worktrees.py makes it).
BRANCH_PREFIX = "factory/"
TRANSCRIPT_NAME = "transcript.log"
CONFIG_NAME = "factory.toml"
LOG_NAME = "log.db"

# Tracked folders get a .gitkeep so that git carries them to a fresh clone.
TRACKED_DIRS = ("artifacts", "qa", "mailbox/inbox", "mailbox/outbox")
IGNORED_DIRS = ("runs", "worktrees", "qa-work", "mailbox/quarantine")
GITIGNORE = """\
# Written by `factory init`: the execution log and per-run files stay local.
log.db
log.db-wal
log.db-shm
log.db-journal
*.lock
runs/
worktrees/
qa-work/
engine.log
# Files that came as mail and are no message: kept to look at, never shared.
mailbox/quarantine/
# The session history, rewritten from the log at every landing (tracked, it
# would dirty the checkout approvals merge into).
artifacts/history.md
"""


def task_branch(task_id: str) -> str:
    """The branch a task's work is on."""
    return BRANCH_PREFIX + task_id


@dataclass(frozen=True, slots=True)
class FactoryBase:
    """A repository with a ``.factory/`` folder."""

    root: Path

    @property
    def dir(self) -> Path:
        return self.root / FACTORY_DIR

    @property
    def config_path(self) -> Path:
        return self.dir / CONFIG_NAME

    @property
    def log_path(self) -> Path:
        return self.dir / LOG_NAME

    @property
    def artifacts_dir(self) -> Path:
        return self.dir / "artifacts"

    @property
    def qa_dir(self) -> Path:
        return self.dir / "qa"

    @property
    def inbox_dir(self) -> Path:
        return self.dir / "mailbox" / "inbox"

    @property
    def outbox_dir(self) -> Path:
        return self.dir / "mailbox" / "outbox"

    @property
    def mailbox_dir(self) -> Path:
        return self.dir / "mailbox"

    @property
    def quarantine_dir(self) -> Path:
        """Files that came as mail and are no message, each with a .reason."""
        return self.dir / "mailbox" / "quarantine"

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def worktrees_dir(self) -> Path:
        return self.dir / "worktrees"

    # The one home of the run-folder layout and of a task's names on disk.

    def task_runs_dir(self, task_id: str) -> Path:
        """Every run of a task: ``runs/<task>/``."""
        return self.runs_dir / task_id

    def run_dir(self, task_id: str, attempt: int) -> Path:
        """One run: ``runs/<task>/<attempt>/`` (see backends/runs.py)."""
        return self.runs_dir / task_id / str(attempt)

    # QA: where a check's output is kept, and its scratch space.

    def qa_run_dir(self, task_id: str | None, attempt: int, stamp: str, scenario: str) -> Path:
        """One QA run's output: ``runs/<task>/<attempt>/qa/<stamp>-<scenario>/``
        beside the agent's run it checked; one asked for with no task:
        ``runs/qa/<stamp>-<scenario>/``."""
        where = self.runs_dir / "qa" if task_id is None else self.run_dir(task_id, attempt) / "qa"
        return where / f"{stamp}-{scenario}"

    @property
    def qa_work_dir(self) -> Path:
        """Scratch space of QA (ignored): ``checkouts/`` (a clean checkout of
        each commit under test) and ``base/`` (results on base commits)."""
        return self.dir / "qa-work"

    def transcript_path(self, task_id: str, attempt: int) -> Path:
        return self.run_dir(task_id, attempt) / TRANSCRIPT_NAME

    def worktree_path(self, task_id: str) -> Path:
        return self.worktrees_dir / task_id

    def config(self) -> FactoryConfig:
        return load_config(self.config_path)

    @classmethod
    def find(cls, start: Path | str | None = None) -> FactoryBase:
        """The base at ``start`` or the nearest directory above it."""
        here = Path(start if start is not None else os.getcwd()).expanduser()
        if not here.exists():
            raise BaseNotFound(f"no such directory: {here}")
        here = here.resolve()
        if here.name == FACTORY_DIR and (here / CONFIG_NAME).exists():
            return cls(here.parent)
        for folder in (here, *here.parents):
            if (folder / FACTORY_DIR / CONFIG_NAME).is_file():
                return cls(folder)
        raise BaseNotFound(
            f"no factory base at {here} or above it (run `factory init` in a git repository)"
        )

    @classmethod
    def init(cls, path: Path | str | None = None, *, name: str | None = None) -> tuple[FactoryBase, bool]:
        """Create ``.factory/`` at the top of the git repository holding
        ``path``. Returns the base and whether anything was created or
        added; running it again only fills in what is missing."""
        result = cls.initialise(path, name=name)
        return result.base, result.created or bool(result.rules_added)

    @classmethod
    def initialise(
        cls, path: Path | str | None = None, *, name: str | None = None, allow_unborn: bool = False,
    ) -> Initialised:
        """``init``, saying what it did: whether the base was created, and
        the ignore rules an existing ``.factory/.gitignore`` lacked (a base
        made by an older factory-tui), which are added to it.
        ``allow_unborn``: a repository with no commit yet is fine (the
        caller makes the first commit: ``factory init --spec``)."""
        import git  # GitPython costs ~0.1 s to import: only init needs it here

        start = Path(path if path is not None else os.getcwd()).expanduser()
        if not start.is_dir():
            raise NotAGitRepository(f"no such directory: {start}")
        try:
            repo = git.Repo(start, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise NotAGitRepository(
                f"not a git repository: {start.resolve()} (run `git init` first)"
            ) from None
        if repo.bare or repo.working_tree_dir is None:
            raise NotAGitRepository(f"{start.resolve()} is a bare repository; a base needs a work tree")
        base = cls(Path(repo.working_tree_dir).resolve())
        branch = detect_base_branch(repo)
        if not allow_unborn and not base.config_path.exists() and _head_is_unborn(repo):
            # Task branches start from the base branch's commit: without one
            # the first task would fail, so say now what to do instead.
            raise NoCommits(
                f"{base.root} has no commit on {branch} yet; make a first commit: "
                "git commit --allow-empty -m start"
            )
        created = False
        rules_added: list[str] = []
        try:
            base.dir.mkdir(exist_ok=True)
            for sub in (*TRACKED_DIRS, *IGNORED_DIRS):
                folder = base.dir / sub
                if not folder.is_dir():
                    folder.mkdir(parents=True)
                    created = True
                if sub in TRACKED_DIRS and not any(folder.iterdir()):
                    (folder / ".gitkeep").touch()
            gitignore = base.dir / ".gitignore"
            if not gitignore.exists():
                _write_atomically(gitignore, GITIGNORE)
                created = True
            else:
                rules_added = _add_missing_rules(gitignore)
            if not base.config_path.exists():
                from factory_tui.backends.agents import render_profiles_toml

                _write_atomically(
                    base.config_path,
                    render_initial_config(name or base.root.name, branch, render_profiles_toml()),
                )
                created = True
        except (OSError, UnicodeError) as error:
            raise FactoryError(f"cannot create {base.dir}: {getattr(error, 'strerror', None) or error}") from None
        if not base.log_path.exists():
            from factory_tui.backends.log import ExecutionLog

            ExecutionLog.open(base.log_path, create=True).close()
            created = True
        return Initialised(base, created, tuple(rules_added))


    def leftovers(self) -> Leftovers:
        """Task branches (``factory/*``, mail branches aside) and worktree
        folders that are in the repository: to a new log they belong to
        another plan (an earlier log, another clone's)."""
        import git

        try:
            refs = git.Git(str(self.root)).for_each_ref(
                "--format=%(refname:short)", "refs/heads/factory/"
            )
        except git.GitCommandError:
            refs = ""
        branches = tuple(
            name for name in refs.splitlines()
            if name and not name.startswith("factory/mail/")
        )
        try:
            folders = tuple(
                sorted(
                    entry.name for entry in self.worktrees_dir.iterdir()
                    if not entry.name.startswith(".")
                )
            )
        except OSError:
            folders = ()
        return Leftovers(branches=branches, worktrees=folders)


@dataclass(frozen=True, slots=True)
class Initialised:
    """What ``FactoryBase.initialise`` did."""

    base: FactoryBase
    created: bool
    # Rules of ours that an existing .factory/.gitignore lacked, now added.
    rules_added: tuple[str, ...] = ()


def _head_is_unborn(repo) -> bool:
    """Whether HEAD names a branch that has no commit yet (a repository
    with no commits, or one just switched to with ``--orphan``)."""
    status, _, _ = repo.git.rev_parse(
        "--verify", "-q", "HEAD^{commit}", with_extended_output=True, with_exceptions=False,
    )
    return status != 0


def _add_missing_rules(gitignore: Path) -> list[str]:
    """Append the rules of ``GITIGNORE`` that ``gitignore`` lacks (its
    user's own lines are kept byte for byte); returns those added."""
    data = gitignore.read_bytes()
    present = {line.strip() for line in data.splitlines()}
    missing = [
        rule for rule in GITIGNORE.splitlines()
        if rule.strip() and not rule.startswith("#") and rule.strip().encode() not in present
    ]
    if missing:
        joined = b"" if not data or data.endswith(b"\n") else b"\n"
        added = "# Added by a later `factory init`:\n" + "\n".join(missing) + "\n"
        temporary = gitignore.with_name(f".{gitignore.name}.tmp")
        temporary.write_bytes(data + joined + added.encode())
        os.replace(temporary, gitignore)
    return missing


@dataclass(frozen=True, slots=True)
class Leftovers:
    """Task branches and worktree folders found in a repository."""

    branches: tuple[str, ...] = ()
    worktrees: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.branches or self.worktrees)

    def names(self) -> list[str]:
        return [*self.branches, *(f"{FACTORY_DIR}/worktrees/{name}" for name in self.worktrees)]

    def to_json(self) -> dict:
        return {"branches": list(self.branches), "worktrees": list(self.worktrees)}

    def describe(self, shown: int = 3) -> str:
        """One line for ``factory init``: how many, the first few, and what
        that means for the tasks of the new log."""
        names = self.names()
        listed = ", ".join(names[:shown]) + (", …" if len(names) > shown else "")
        counts = []
        if self.branches:
            counts.append(_count(len(self.branches), "task branch", "task branches"))
        if self.worktrees:
            counts.append(_count(len(self.worktrees), "worktree", "worktrees"))
        return (
            f"Found {' and '.join(counts)} from an earlier plan ({listed}); tasks of this "
            "log with those ids will refuse them until they are renamed or deleted."
        )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


# A detached HEAD says nothing of the base branch; these are the usual names.
USUAL_BASE_BRANCHES = ("main", "master")


def detect_base_branch(repo) -> str:
    """The branch task branches start from, for a new factory.toml: the
    branch HEAD names (a symbolic ref, born or not). On a detached HEAD:
    main or master, whichever exists (both: the one at HEAD, else main);
    else the only local branch; else the branch whose tip is HEAD; else
    "main". Task branches (``factory/*``) are never the base."""
    try:
        return repo.active_branch.name
    except TypeError:  # detached HEAD
        pass
    tips: dict[str, str | None] = {}
    for head in repo.heads:
        if head.name.startswith("factory/"):
            continue
        try:
            tips[head.name] = head.commit.hexsha
        except ValueError:  # a ref that names no commit
            tips[head.name] = None
    try:
        at_head = repo.head.commit.hexsha
    except ValueError:
        at_head = None
    usual = [name for name in USUAL_BASE_BRANCHES if name in tips]
    if len(usual) == 1:
        return usual[0]
    if usual:
        return next((name for name in usual if tips[name] == at_head), usual[0])
    if len(tips) == 1:
        return next(iter(tips))
    return next((name for name in sorted(tips) if tips[name] == at_head), "main")


def _write_atomically(path: Path, text: str) -> None:
    """Write a whole file or none of it: a half-written factory.toml would
    stop every later command."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
