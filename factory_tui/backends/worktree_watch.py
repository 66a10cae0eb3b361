"""Knowing when a task worktree changed without asking git: git writes
files of its own whenever a worktree's state moves, and those are watched
(backends/watcher.py) instead of running git on every worktree every few
seconds.

What moves, and where git writes it (gitrepository-layout(5)):

* a commit, a checkout, ``git add`` in a worktree: its administrative
  folder ``<common>/worktrees/<name>/`` (HEAD, index, logs/HEAD);
* a task branch moving: ``<common>/refs/heads/factory/<task>``;
* the base branch moving (an approval's merge, the user's own commit):
  ``<common>/refs/heads/<base branch>``;
* a worktree added or removed: a folder appearing in, or leaving,
  ``<common>/worktrees/``.

``touched`` turns a set of changed paths into a ``Touched`` (which tasks'
worktrees to look at again, whether the list of worktrees or the base
branch moved); ``watch_worktrees`` yields one whenever something did. An
idle repository yields nothing, so the Worktrees pane runs no git while
nothing happens. Files edited in a worktree without ``git add`` are not
git's and are not seen here: a running agent's edits are followed through
its progress events in the log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from factory_tui.backends.base import BRANCH_PREFIX
from factory_tui.backends.watcher import watch
from factory_tui.backends.worktrees import registered_folder

# How often the watch comes back with nothing, so that its thread can see
# it was asked to stop.
STEP_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Touched:
    """What a set of changed git files says moved."""

    tasks: frozenset[str] = frozenset()
    listing: bool = False
    base: bool = False

    def __bool__(self) -> bool:
        return bool(self.tasks or self.listing or self.base)


class WorktreeNames:
    """Which task each administrative folder in ``<common>/worktrees/``
    belongs to: the folder of the worktree it records (its ``gitdir``
    file), whose name is the task's id. Usually the two names agree, but git
    makes the administrative name unique with a number (``T-5`` taken:
    ``T-51``), so the file, not the name, says."""

    def __init__(self, common_dir: Path) -> None:
        self.registry = common_dir / "worktrees"
        self._known: dict[str, str] = {}

    def task_of(self, name: str) -> str | None:
        known = self._known.get(name)
        if known is not None:
            return known
        folder = registered_folder(self.registry / name)
        if folder is None:
            return None  # being made or removed: the listing says so
        self._known[name] = folder.name
        return folder.name

    def forget(self, name: str) -> None:
        self._known.pop(name, None)


def touched(changed: set[Path], common_dir: Path, base_branch: str, names: WorktreeNames) -> Touched:
    """What moved, by the paths git wrote."""
    registry = common_dir / "worktrees"
    heads = common_dir / "refs" / "heads"
    tasks: set[str] = set()
    listing = base = False
    for path in changed:
        if path == registry:
            listing = True
            continue
        try:
            inside = path.relative_to(registry).parts
        except ValueError:
            inside = ()
        if inside:
            name = inside[0]
            admin = registry / name
            if len(inside) == 1 or inside[1] == "gitdir" or not admin.is_dir():
                # The folder itself, or its record of where the worktree
                # is: one was added or removed.
                listing = True
                if not admin.is_dir():
                    names.forget(name)
            task_id = names.task_of(name)
            if task_id is not None:
                tasks.add(task_id)
            continue
        try:
            ref = path.relative_to(heads).as_posix().removesuffix(".lock")
        except ValueError:
            continue  # objects, logs, the main checkout's index: not ours
        if ref == base_branch:
            base = True
        elif ref.startswith(BRANCH_PREFIX) and len(ref) > len(BRANCH_PREFIX):
            tasks.add(ref[len(BRANCH_PREFIX):])
    return Touched(frozenset(tasks), listing, base)


def watch_worktrees(common_dir: Path, base_branch: str, *, stop: threading.Event) -> Iterator[Touched]:
    """A ``Touched`` each time git wrote something about the task worktrees,
    until ``stop`` is set (and an empty one every STEP_SECONDS, so that a
    caller's loop can look at its own conditions)."""
    names = WorktreeNames(common_dir)
    # The worktrees' folder appears with the first worktree: until then its
    # parent is watched, and what git writes elsewhere there is not ours.
    folders = [common_dir / "worktrees", common_dir / "refs" / "heads"]
    for changed in watch(folders, stop=stop, step=STEP_SECONDS):
        yield touched(changed, common_dir, base_branch, names) if changed else Touched()
