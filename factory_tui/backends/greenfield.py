"""A project that starts from a spec (``factory init --spec SPEC.md``): an
empty folder (or a git repository with no commit yet) becomes a repository
whose first commit holds the spec and the factory base, ready for the plan
to be drafted.

Everything is checked before anything is written: the spec (as
``plan_draft.read_spec`` reads it), the folder (empty but for the spec; or
the top of a repository with no commit and nothing staged), and that the
spec's place in it is free or holds the same bytes. Only then is the
repository made, the spec copied in (never over another file), the base
initialised and the first commit made of the spec and ``.factory/`` alone
(the user's other files, if any, stay untracked).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from factory_tui.backends.base import FACTORY_DIR, FactoryBase
from factory_tui.backends.plan_draft import read_spec
from factory_tui.errors import FactoryError

FIRST_COMMIT = "Start the factory from {spec}\n\nThe spec, and the factory base (factory init --spec)."
DEFAULT_BRANCH = "main"


class WouldClobber(FactoryError):
    """``init --spec`` refused: it would change what is there."""


@dataclass(frozen=True, slots=True)
class Started:
    base: FactoryBase
    spec: Path  # the spec in the repository
    copied_from: Path | None  # where it was copied from (None: it was there)
    made_repository: bool
    branch: str
    commit: str

    def to_json(self) -> dict:
        return {
            "base": str(self.base.root), "spec": str(self.spec),
            "copied_from": str(self.copied_from) if self.copied_from else None,
            "repository_made": self.made_repository, "branch": self.branch, "commit": self.commit,
        }


def start_from_spec(folder: Path, spec: Path, *, name: str | None = None) -> Started:
    import git

    folder = folder.expanduser()
    spec_name = spec.name
    text = read_spec(spec, name=str(spec))
    if spec_name in (FACTORY_DIR, ".git", ".gitignore"):
        raise WouldClobber(f"a spec cannot be named {spec_name}")
    if folder.exists() and not folder.is_dir():
        raise WouldClobber(f"{folder} is a file, not a folder")
    top = folder.resolve()
    repo = _repository(folder)
    if repo is None:
        _check_empty(folder, spec)
    else:
        top = _check_repository(repo, folder)
    if spec.resolve().is_relative_to(top):
        # In the repository already (a repository with no commit, say in
        # docs/): committed where it is.
        target, copy = spec.resolve(), False
    else:
        target = top / spec_name
        copy = _check_target(target, spec)
    # Checked: from here on, things are made.
    made = repo is None
    branch = _default_branch()
    try:
        top.mkdir(parents=True, exist_ok=True)
        if repo is None:
            repo = git.Repo.init(top, initial_branch=branch)
        else:
            branch = _unborn_branch(repo) or branch
        if copy:
            _write_new(target, text)
    except OSError as error:
        raise FactoryError(f"cannot prepare {top}: {error.strerror or error}") from None
    except git.GitCommandError as error:
        raise FactoryError(f"git init failed in {top}: {_git_reason(error)}") from None
    base = FactoryBase.initialise(top, name=name, allow_unborn=True).base
    try:
        relative = str(target.relative_to(top))
        repo.git.add("--", relative, FACTORY_DIR)
        repo.git.commit("-q", "-m", FIRST_COMMIT.format(spec=relative))
        commit = repo.head.commit.hexsha
    except git.GitCommandError as error:
        raise FactoryError(
            f"the base is made in {top}, but the first commit failed: {_git_reason(error)} "
            f"(commit {target.name} and {FACTORY_DIR} yourself, then: factory plan draft {target.name})"
        ) from None
    return Started(base, target, spec.resolve() if copy else None, made, branch, commit)


def _repository(folder: Path):
    import git

    if not folder.exists():
        return None
    try:
        return git.Repo(folder, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def _check_empty(folder: Path, spec: Path) -> None:
    """A folder that is no repository must be empty, or hold the spec alone."""
    if not folder.exists():
        return
    try:
        entries = list(folder.iterdir())
    except OSError as error:
        raise FactoryError(f"cannot read {folder}: {error.strerror or error}") from None
    others = [entry for entry in entries if entry.resolve() != spec.resolve()]
    if others:
        shown = ", ".join(sorted(entry.name for entry in others)[:3]) + (", …" if len(others) > 3 else "")
        raise WouldClobber(
            f"{folder} is not empty ({shown}) and not a git repository; use an empty folder "
            "(or make it a repository with no commit yet: git init)"
        )


def _check_repository(repo, folder: Path) -> Path:
    """The top of a repository with no commit and nothing staged, which is
    ``folder`` itself."""
    if repo.bare or repo.working_tree_dir is None:
        raise WouldClobber(f"{folder} is in a bare repository; a base needs a work tree")
    top = Path(repo.working_tree_dir).resolve()
    if top != folder.resolve():
        raise WouldClobber(f"{folder} is inside the git repository at {top}; run factory init --spec at its top")
    if _unborn_branch(repo) is None:
        raise WouldClobber(
            f"{top} has commits already: make it a base with factory init, then draft the plan with "
            "factory plan draft SPEC.md"
        )
    staged = repo.git.ls_files("--cached").splitlines()
    if staged:
        raise WouldClobber(
            f"{top} has {len(staged)} file(s) staged for its first commit ({staged[0]}…); "
            "commit or unstage them first: the first commit here holds the spec and .factory alone"
        )
    return top


def _check_target(target: Path, spec: Path) -> bool:
    """Whether the spec must be copied to ``target``; WouldClobber if another
    file is there."""
    if target.exists() or target.is_symlink():
        if target.resolve() == spec.resolve():
            return False
        try:
            same = target.is_file() and not target.is_symlink() and target.read_bytes() == spec.read_bytes()
        except OSError:
            same = False
        if same:
            return False
        raise WouldClobber(f"{target} exists and is not {spec}; nothing was changed (move one of them)")
    return True


def _write_new(target: Path, text: str) -> None:
    """Write ``target`` whole, and only if no file is there."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_text(text, encoding="utf-8")
    try:
        os.link(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _unborn_branch(repo) -> str | None:
    """The branch HEAD names when it has no commit yet, else None."""
    status, _, _ = repo.git.rev_parse(
        "--verify", "-q", "HEAD^{commit}", with_extended_output=True, with_exceptions=False,
    )
    if status == 0:
        return None
    status, out, _ = repo.git.symbolic_ref(
        "--short", "HEAD", with_extended_output=True, with_exceptions=False,
    )
    return out.strip() if status == 0 and out.strip() else DEFAULT_BRANCH


def _default_branch() -> str:
    """The user's ``init.defaultBranch``, else main."""
    import git

    status, out, _ = git.Git().config(
        "--get", "init.defaultBranch", with_extended_output=True, with_exceptions=False,
    )
    return out.strip() if status == 0 and out.strip() else DEFAULT_BRANCH


def _git_reason(error) -> str:
    said = (getattr(error, "stderr", "") or "").strip().splitlines()
    said = [line.strip() for line in said if line.strip() and not line.strip().startswith("stderr:")]
    text = said[-1] if said else str(error)
    return " ".join(text.replace("'", "").split())[:300]
