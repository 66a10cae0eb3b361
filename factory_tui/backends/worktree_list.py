"""The task worktrees listed from git's own files, without running git.

``git worktree list`` reads ``<common>/worktrees/<name>/gitdir`` (where the
worktree's ``.git`` file is) and ``HEAD`` (its branch) for each worktree;
reading them here costs a few small file reads instead of a git process
and GitPython's import, which is what the console's first frame can
afford. The answer is ``Worktrees.list()``'s (backends/worktrees.py, the
one that runs git and stays the reference): task worktrees under
``.factory/worktrees`` or on a ``factory/*`` branch, and folders there git
does not know. A repository laid out otherwise (its own ``.git`` a file:
a worktree itself) gets None: ask git.
"""

from __future__ import annotations

from pathlib import Path

from factory_tui.backends.base import BRANCH_PREFIX
from factory_tui.backends.worktrees import WORKTREES_SUBDIR, WorktreeInfo, linked_worktrees


def common_dir_of(root: Path) -> Path | None:
    """The git folder the worktrees of the main checkout at ``root`` share,
    or None if ``root`` is not laid out that way."""
    dot_git = root / ".git"
    return dot_git if dot_git.is_dir() else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def list_from_files(root: Path) -> list[WorktreeInfo] | None:
    """The task worktrees of the repository whose main checkout is at
    ``root``, as ``Worktrees.list()`` says them; None where only git can
    say (see the module's docstring)."""
    root = Path(root).resolve()
    common = common_dir_of(root)
    if common is None:
        return None
    worktrees_dir = root / WORKTREES_SUBDIR
    found: dict[Path, WorktreeInfo] = {}
    try:
        linked = linked_worktrees(common)
    except OSError:
        return None
    for path, admin in linked.items():
        head = _read(admin / "HEAD") or ""
        branch = head.removeprefix("ref: refs/heads/") if head.startswith("ref: refs/heads/") else None
        inside = path.parent == worktrees_dir
        if not inside and not (branch or "").startswith(BRANCH_PREFIX):
            continue  # the user's own worktree: not ours to show
        task_id = path.name if inside else (branch or "").removeprefix(BRANCH_PREFIX) or None
        found[path] = WorktreeInfo(task_id, path, branch, path.is_dir(), True)
    if worktrees_dir.is_dir():
        for folder in worktrees_dir.iterdir():
            if folder.is_dir() and folder not in found:
                found[folder] = WorktreeInfo(folder.name, folder, None, True, False)
    return sorted(found.values(), key=lambda info: (info.task_id or "", str(info.path)))
